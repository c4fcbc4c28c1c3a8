"""Attachments in: OCR, documents, offline speech-to-text, limits, and hostile files (properties 44, 45, 47).

Every sample is generated here: text drawn with a TTF font, PDFs written by pypdf, speech spoken by
espeak-ng and encoded by ffmpeg. Nothing is mocked; tesseract, ffmpeg and pocketsphinx really run.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import time
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont
from pocketsphinx import Decoder
from pypdf import PdfWriter
from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject, NumberObject

from core.media import Media, MediaConfig, MediaLimits, MediaTimeouts
from core.media.audio import decode_to_pcm
from core.models import Attachment, AttachmentText
from tests.fakes.elevenlabs import synthesize

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
LAUNCH = "The launch code is PINEAPPLE"
DIGITS = ["one", "two", "three", "four", "five"]


# ---------------------------------------------------------------- samples


def text_image(text: str, *, fmt: str = "PNG", size: int = 36, transparent: bool = False,
               exif: Image.Exif | None = None, rotate: int = 0) -> bytes:
    """`text` drawn in black DejaVu Sans on white (or on nothing), encoded as `fmt`."""
    font = ImageFont.truetype(str(FONT), size)
    lines = text.split("\n")
    width = 60 + int(max(font.getlength(line) for line in lines))
    height = 40 + int(size * 1.5) * len(lines)
    image = Image.new("RGBA" if transparent else "RGB", (width, height), (0, 0, 0, 0) if transparent else "white")
    ImageDraw.Draw(image).multiline_text((30, 20), text, font=font, fill="black", spacing=size // 2)
    if rotate:
        image = image.rotate(rotate, expand=True, fillcolor="white")
    if fmt in ("JPEG", "BMP") and image.mode == "RGBA":
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, format=fmt, **({"exif": exif} if exif is not None else {}))
    return out.getvalue()


def text_pdf(pages: list[str], *, user_password: str | None = None, owner_password: str = "owner") -> bytes:
    """A PDF with a real text layer (Helvetica), one string per page, optionally encrypted."""
    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"),
        NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    }))
    for text in pages:
        page = writer.add_blank_page(612, 792)
        lines = " T* ".join(f"({_pdf_escape(line)}) Tj" for line in text.split("\n"))
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 14 TL 72 720 Td {lines} ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject({
            NameObject("/Font"): DictionaryObject({NameObject("/F1"): font}),
        })
    if user_password is not None:
        writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def nested_form_pdf(draws: int, ops: int = 3000) -> bytes:
    """A PDF of a few kilobytes whose one page draws a text-heavy form `draws` times: pypdf parses the
    form anew at each draw, minutes of work in all."""
    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"),
        NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    }))
    form = DecodedStreamObject()
    form.set_data(b"BT /F1 12 Tf 10 10 Td (A) Tj ET\n" * ops)
    form.update({
        NameObject("/Type"): NameObject("/XObject"),
        NameObject("/Subtype"): NameObject("/Form"),
        NameObject("/BBox"): ArrayObject([NumberObject(0), NumberObject(0), NumberObject(612), NumberObject(792)]),
        NameObject("/Resources"): DictionaryObject({
            NameObject("/Font"): DictionaryObject({NameObject("/F1"): font}),
        }),
    })
    page = writer.add_blank_page(612, 792)
    content = DecodedStreamObject()
    content.set_data(b"/X Do " * draws)
    page[NameObject("/Contents")] = writer._add_object(content.flate_encode())
    page[NameObject("/Resources")] = DictionaryObject({
        NameObject("/XObject"): DictionaryObject({NameObject("/X"): writer._add_object(form.flate_encode())}),
    })
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _pdf_escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def encode_audio(wav: bytes, fmt: str, folder: Path) -> bytes:
    """WAV -> a voice-note container. M4A goes through a file so its index sits at the end, as phones write it."""
    codecs = {
        "ogg": ["-c:a", "libopus", "-f", "ogg"],
        "mp3": ["-c:a", "libmp3lame", "-f", "mp3"],
        "webm": ["-c:a", "libopus", "-f", "webm"],
        "m4a": ["-c:a", "aac", "-f", "mp4"],
        "wav": ["-f", "wav"],
    }[fmt]
    target = folder / f"sample.{fmt}"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", "pipe:0", *codecs, str(target)],
                   input=wav, check=True, timeout=30)
    return target.read_bytes()


def silent_wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(b"\x80" * int(seconds * rate))
    return out.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A PNG header claiming `width` x `height` pixels, with almost no data behind it."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


def jpeg_scan_bomb(side: int, scans: int) -> bytes:
    """A progressive JPEG of `side` x `side` grey pixels whose second scan is repeated `scans` times, each with
    two bytes of data: libjpeg passes over every block of the image once a scan."""
    out = io.BytesIO()
    Image.new("L", (side, side), 128).save(out, format="JPEG", progressive=True)
    data = out.getvalue()
    second = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)
    length = int.from_bytes(data[second + 2 : second + 4], "big")
    scan = data[second : second + 2 + length] + b"\0\0"
    return data[:second] + scan * scans + b"\xff\xd9"


def att(name: str, data: bytes, content_type: str | None = None) -> Attachment:
    return Attachment(name=name, data=data, content_type=content_type)


@pytest.fixture(scope="module")
def media() -> Media:
    return Media(MediaConfig())


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="module")
def digits_wav() -> bytes:
    return synthesize(" ".join(DIGITS), "wav")


async def one(media: Media, attachment: Attachment) -> AttachmentText:
    [result] = await media.extract([attachment])
    return result


# ---------------------------------------------------------------- images


async def test_ocr_reads_the_exact_text_of_a_screenshot(media: Media) -> None:
    result = await one(media, att("note.png", text_image(LAUNCH)))
    assert result.kind == "image"
    assert result.error is None
    assert result.text == LAUNCH
    assert result.image is not None and result.image_media_type == "image/png"
    assert Image.open(io.BytesIO(result.image)).format == "PNG"


WORDS = ["apple", "river", "Seven", "MARKET", "window", "garden", "Planet", "silver", "ORANGE", "yellow",
         "morning", "bridge", "Coffee", "number", "PARLEY", "winter"]


@settings(max_examples=6, deadline=None)
@given(lines=st.lists(st.lists(st.sampled_from(WORDS), min_size=2, max_size=5), min_size=1, max_size=3))
async def test_p47_ocr_extracts_the_text_of_any_generated_image(media: Media, lines: list[list[str]]) -> None:
    text = "\n".join(" ".join(words) for words in lines)
    result = await one(media, att("words.png", text_image(text)))
    # Tesseract may read two identical lines as two paragraphs (a blank line between): layout, not text.
    assert [line for line in result.text.splitlines() if line] == text.splitlines()


async def test_text_on_a_transparent_background_is_read(media: Media) -> None:
    result = await one(media, att("sticker.png", text_image(LAUNCH, transparent=True)))
    assert result.text == LAUNCH


async def test_photo_copy_is_upright_and_carries_no_exif(media: Media) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned, display rotated 90° clockwise
    exif[0x010F] = "PhoneMaker"
    photo = text_image(LAUNCH, fmt="JPEG", rotate=90, exif=exif)
    result = await one(media, att("IMG_0001.jpg", photo))
    assert result.text == LAUNCH
    assert result.image_media_type == "image/jpeg"
    copy = Image.open(io.BytesIO(result.image or b""))
    assert copy.width > copy.height
    assert not copy.getexif()


async def test_copy_for_vision_models_is_scaled_down() -> None:
    small = Media(MediaConfig(vision_max_side=256))
    result = await one(small, att("wide.png", text_image(LAUNCH, size=60)))
    copy = Image.open(io.BytesIO(result.image or b""))
    assert max(copy.size) == 256
    assert result.text == LAUNCH


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "BMP", "TIFF"])
async def test_other_image_formats_are_read(media: Media, fmt: str) -> None:
    result = await one(media, att("x", text_image(LAUNCH, fmt=fmt)))
    assert (result.kind, result.text, result.image_media_type) == ("image", LAUNCH, "image/png")


# ---------------------------------------------------------------- type by content


async def test_type_is_decided_by_content_not_by_name(media: Media) -> None:
    disguised_image = att("notes.txt", text_image(LAUNCH), content_type="text/plain")
    disguised_text = att("photo.png", b"just some text\n", content_type="image/png")
    image, text = await media.extract([disguised_image, disguised_text])
    assert (image.kind, image.text) == ("image", LAUNCH)
    assert (text.kind, text.text) == ("document", "just some text\n")


# ---------------------------------------------------------------- documents


@pytest.mark.parametrize(
    "body",
    ["# Plan\n\n- ship *media*\n- test it\n", "name,qty\napples,3\npears,5\n", "plain words\r\non two lines\r\n"],
)
async def test_text_markdown_and_csv_are_read_as_is(media: Media, body: str) -> None:
    result = await one(media, att("doc", body.encode()))
    assert result.kind == "document"
    assert result.text == body.replace("\r\n", "\n")


async def test_long_document_is_trimmed_with_a_note() -> None:
    small = Media(MediaConfig(limits=MediaLimits(max_document_chars=1_000)))
    body = "lorem ipsum " * 2_000
    result = await one(small, att("long.md", body.encode()))
    assert result.text is not None
    kept, note = result.text.rsplit("\n", 1)
    assert len(kept) <= 1_000
    assert note == f"[... trimmed: {len(body) - len(kept):,} more characters not shown]"


async def test_large_text_files_are_read_without_holding_the_event_loop(media: Media) -> None:
    files = [att(f"log{i}.txt", (f"{i} a line of a log, café\n" * 700_000).encode()) for i in range(5)]
    stalls: list[float] = []
    reading = asyncio.create_task(media.extract(files))
    while not reading.done():
        started = time.perf_counter()
        await asyncio.sleep(0.005)
        stalls.append(time.perf_counter() - started - 0.005)
    assert [r.error for r in await reading] == [None] * 5
    assert max(stalls) < 0.1  # decoded on the loop, the five held it 215 ms in one stretch


async def test_whitespace_only_text_says_so(media: Media) -> None:
    assert (await one(media, att("blank.txt", b" \n\t\n"))).error == "no text in file"


async def test_pdf_text_is_extracted_from_every_page(media: Media) -> None:
    pdf = text_pdf(["Quarterly report\nRevenue grew 12 percent", "Page two says PINEAPPLE"])
    result = await one(media, att("report.pdf", pdf))
    assert result.kind == "document"
    assert result.error is None
    assert result.text is not None
    for phrase in ("Quarterly report", "Revenue grew 12 percent", "Page two says PINEAPPLE"):
        assert phrase in result.text


async def test_pdf_with_a_password_is_refused_as_encrypted(media: Media) -> None:
    result = await one(media, att("secret.pdf", text_pdf(["hidden"], user_password="hunter2")))
    assert (result.kind, result.error) == ("document", "encrypted PDF")


async def test_pdf_encrypted_without_a_user_password_is_read(media: Media) -> None:
    result = await one(media, att("locked-for-editing.pdf", text_pdf(["open to read"], user_password="")))
    assert result.text == "open to read"


async def test_pdf_pages_past_the_limit_are_noted() -> None:
    few = Media(MediaConfig(limits=MediaLimits(max_pdf_pages=2)))
    result = await one(few, att("book.pdf", text_pdf([f"chapter {i}" for i in range(1, 6)])))
    assert result.text is not None
    assert "chapter 1" in result.text and "chapter 2" in result.text and "chapter 3" not in result.text
    assert result.text.endswith("[... 3 more pages not read: page or text limit reached]")


async def test_scanned_pdf_is_read_by_ocr(media: Media) -> None:
    scan = Image.open(io.BytesIO(text_image(LAUNCH, size=48)))
    out = io.BytesIO()
    scan.save(out, format="PDF", resolution=150)
    result = await one(media, att("scan.pdf", out.getvalue()))
    assert result.text == LAUNCH


@pytest.mark.parametrize("data", [b"%PDF-1.7\n%%EOF", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\n", b"%PDF-"])
async def test_broken_pdf_is_reported_as_corrupt(media: Media, data: bytes) -> None:
    result = await one(media, att("broken.pdf", data))
    assert result.kind == "document"
    assert result.error in {"corrupt PDF", "PDF has no pages", "empty file"}


# ---------------------------------------------------------------- audio, offline


async def test_voice_note_is_transcribed_offline(media: Media, digits_wav: bytes, audio_dir: Path) -> None:
    result = await one(media, att("voice-message.ogg", encode_audio(digits_wav, "ogg", audio_dir)))
    assert result.kind == "audio"
    assert result.text is not None
    heard = result.text.split()
    assert sum(word in heard for word in DIGITS) >= 3, result.text


@pytest.mark.parametrize("fmt", ["wav", "ogg", "mp3", "m4a", "webm"])
async def test_every_voice_container_is_decoded(media: Media, digits_wav: bytes, audio_dir: Path,
                                                fmt: str) -> None:
    pcm = await decode_to_pcm(encode_audio(digits_wav, fmt, audio_dir), max_seconds=60, timeout_s=30)
    assert 1.5 < len(pcm) / 32_000 < 4.0
    result = await one(media, att(f"voice.{fmt}", encode_audio(digits_wav, fmt, audio_dir)))
    assert (result.kind, result.error) == ("audio", None)
    assert result.text


async def test_decoded_speech_matches_its_sentence_in_a_grammar(audio_dir: Path) -> None:
    """pocketsphinx's free-form accuracy is low; a grammar check proves the decoded audio is clean speech."""
    voice = encode_audio(synthesize(LAUNCH.lower(), "wav"), "ogg", audio_dir)
    pcm = await decode_to_pcm(voice, max_seconds=60, timeout_s=30)
    decoder = Decoder(loglevel="FATAL")
    decoder.add_jsgf_string(
        "codes", "#JSGF V1.0; grammar codes; public <s> = the launch code is (pineapple | banana | orange | grape);"
    )
    decoder.activate_search("codes")
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    assert decoder.hyp() is not None
    assert decoder.hyp().hypstr == "the launch code is pineapple"


async def test_audio_over_ten_minutes_is_refused(media: Media) -> None:
    result = await one(media, att("meeting.wav", silent_wav(601)))
    assert (result.kind, result.error) == ("audio", "audio longer than 10 minutes")


async def test_video_without_a_sound_track_says_so(media: Media, audio_dir: Path) -> None:
    target = audio_dir / "silent.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=d=1:s=64x64",
                    "-c:v", "mpeg4", str(target)], check=True, timeout=30)
    result = await one(media, att("screen-recording.mp4", target.read_bytes()))
    assert (result.kind, result.error) == ("audio", "no audio in file")


async def test_silence_gives_a_clear_error(media: Media) -> None:
    result = await one(media, att("quiet.wav", silent_wav(1)))
    assert (result.kind, result.error) == ("audio", "no speech recognised")


# ---------------------------------------------------------------- limits and bad input


async def test_empty_file_is_named_as_empty(media: Media) -> None:
    assert (await one(media, att("empty.pdf", b""))).error == "empty file"


async def test_oversized_file_is_refused_before_parsing(media: Media) -> None:
    result = await one(media, att("huge.pdf", b"%PDF-1.7\n" + b"\0" * 25_300_000))
    assert result.error == "too large: 25.3 MB > 20 MB"


async def test_a_pdf_that_parses_for_minutes_costs_nothing_after_its_deadline() -> None:
    hostile = nested_form_pdf(draws=2000)
    assert len(hostile) < 5000
    quick = Media(MediaConfig(timeouts=MediaTimeouts(pdf_s=0.5, ocr_s=0.5)))
    assert (await one(quick, att("forms.pdf", hostile))).error == "timed out reading the document"
    cpu = time.process_time()
    await asyncio.sleep(3)
    assert time.process_time() - cpu < 0.3  # nothing in this process is still reading it


async def test_decompression_bomb_is_refused_from_its_header(media: Media) -> None:
    result = await one(media, att("bomb.png", png_bomb(100_000, 100_000)))
    assert result.kind == "image"
    assert result.error is not None and result.error.startswith("image too large")


async def test_a_jpeg_of_thousands_of_empty_scans_is_refused_before_decoding(media: Media) -> None:
    bomb = jpeg_scan_bomb(2000, 10_000)
    cpu = time.process_time()
    result = await one(media, att("photo.jpg", bomb))
    assert result.error is not None and result.error.startswith("image refused: 10,00")
    assert time.process_time() - cpu < 1.0  # libjpeg read all 10,000 scans: 2 s of a core before


async def test_a_progressive_jpeg_is_read(media: Media) -> None:
    out = io.BytesIO()
    Image.open(io.BytesIO(text_image(LAUNCH))).save(out, format="JPEG", progressive=True, quality=95)
    result = await one(media, att("photo.jpg", out.getvalue()))
    assert (result.kind, result.error) == ("image", None)


async def test_image_over_the_pixel_limit_is_refused() -> None:
    strict = Media(MediaConfig(limits=MediaLimits(max_image_pixels=10_000)))
    result = await one(strict, att("big.png", text_image(LAUNCH)))
    assert result.error is not None
    assert result.error.startswith("image too large: ") and result.error.endswith(" > 10,000 pixels")


async def test_unsupported_type_is_named(media: Media) -> None:
    result = await one(media, att("archive.zip", b"PK\x03\x04" + b"\0" * 200))
    assert (result.kind, result.error) == ("unknown", "unsupported type application/zip")


async def test_slow_ocr_times_out_with_a_clear_error() -> None:
    hasty = Media(MediaConfig(timeouts=MediaTimeouts(ocr_s=0.001)))
    result = await one(hasty, att("note.png", text_image(LAUNCH)))
    assert (result.kind, result.error) == ("image", "timed out reading the image")


async def test_slow_decoding_times_out_with_a_clear_error(digits_wav: bytes) -> None:
    hasty = Media(MediaConfig(timeouts=MediaTimeouts(decode_s=0.001)))
    result = await one(hasty, att("voice.wav", digits_wav))
    assert (result.kind, result.error) == ("audio", "timed out transcribing the audio")


async def test_one_bad_file_does_not_spoil_the_others(media: Media) -> None:
    results = await media.extract([
        att("a.png", text_image(LAUNCH)),
        att("b.pdf", b"%PDF-1.7 garbage"),
        att("c.txt", b"still here"),
        att("d.bin", b""),
    ])
    assert [r.name for r in results] == ["a.png", "b.pdf", "c.txt", "d.bin"]
    assert results[0].text == LAUNCH
    assert results[1].error == "corrupt PDF"
    assert results[2].text == "still here"
    assert results[3].error == "empty file"


# ---------------------------------------------------------------- hostile files never raise


@st.composite
def damaged(draw: st.DrawFn, sample: bytes) -> bytes:
    """`sample` truncated, bit-flipped, spliced with junk, or its magic followed by junk."""
    how = draw(st.sampled_from(["truncate", "flip", "splice", "magic_then_junk"]))
    if how == "truncate":
        return sample[: draw(st.integers(0, len(sample) - 1))]
    if how == "flip":
        data = bytearray(sample)
        for at in draw(st.lists(st.integers(0, len(sample) - 1), min_size=1, max_size=24)):
            data[at] ^= draw(st.integers(1, 255))
        return bytes(data)
    if how == "splice":
        at = draw(st.integers(0, len(sample)))
        return sample[:at] + draw(st.binary(min_size=1, max_size=512)) + sample[at:]
    return sample[: draw(st.integers(2, 64))] + draw(st.binary(max_size=2_048))


def assert_clean_outcome(result: AttachmentText, name: str) -> None:
    """Text or a named reason, and never the catch-all: every failure mode has its own message."""
    assert result.name == name
    assert (result.text is None) != (result.error is None)
    if result.error is not None:
        assert result.error.strip()
        assert "internal error" not in result.error, result.error


def _samples(build: Callable[[str], bytes], kinds: list[str]) -> dict[str, bytes]:
    return {kind: build(kind) for kind in kinds}


IMAGE_SAMPLES = _samples(lambda fmt: text_image("Hi 42", fmt=fmt, size=20), ["PNG", "JPEG", "GIF", "WEBP", "BMP",
                                                                              "TIFF"])
HOSTILE = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HOSTILE
@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns about the damage it tolerates
@given(data=st.data(), fmt=st.sampled_from(sorted(IMAGE_SAMPLES)))
async def test_p44_damaged_images_never_raise(media: Media, data: st.DataObject, fmt: str) -> None:
    blob = data.draw(damaged(IMAGE_SAMPLES[fmt]))
    assert_clean_outcome(await one(media, att(f"x.{fmt.lower()}", blob)), f"x.{fmt.lower()}")


@pytest.fixture(scope="module")
def audio_samples(audio_dir: Path) -> dict[str, bytes]:
    wav = synthesize("hello", "wav")
    return {fmt: encode_audio(wav, fmt, audio_dir) for fmt in ["wav", "ogg", "mp3", "m4a", "webm"]}


SHORT_AUDIO = Media(MediaConfig(limits=MediaLimits(max_audio_seconds=5)))
"""A damaged header can claim a far lower sample rate: hours of noise that the limit must cut short."""


@HOSTILE
@given(data=st.data(), fmt=st.sampled_from(["wav", "ogg", "mp3", "m4a", "webm"]))
async def test_p45_damaged_audio_never_raises(audio_samples: dict[str, bytes], data: st.DataObject,
                                              fmt: str) -> None:
    blob = data.draw(damaged(audio_samples[fmt]))
    assert_clean_outcome(await one(SHORT_AUDIO, att(f"voice.{fmt}", blob)), f"voice.{fmt}")


DOCUMENT_SAMPLES = {
    "pdf": text_pdf(["A short page", "and another"]),
    "encrypted.pdf": text_pdf(["secret"], user_password="pw"),
    "md": "# Title\n\nSome *markdown* text, é and ü.\n".encode(),
}


@HOSTILE
@given(data=st.data(), kind=st.sampled_from(sorted(DOCUMENT_SAMPLES)))
async def test_damaged_documents_never_raise(media: Media, data: st.DataObject, kind: str) -> None:
    blob = data.draw(damaged(DOCUMENT_SAMPLES[kind]))
    assert_clean_outcome(await one(media, att(f"doc.{kind}", blob)), f"doc.{kind}")


@settings(max_examples=40, deadline=None)
@given(blob=st.binary(max_size=4_096))
async def test_p44_arbitrary_bytes_never_raise(media: Media, blob: bytes) -> None:
    assert_clean_outcome(await one(media, att("anything", blob)), "anything")
