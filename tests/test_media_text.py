"""The pure parts of the media stage: type sniffing, size and duration wording, trimming, speakable text,
and config validation. No files, no subprocesses."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.media import ElevenLabsConfig, MediaConfig, MediaLimits, MediaTimeouts
from core.media.sniff import decode_text, sniff
from core.media.text import cut_for_speech, human_bytes, human_duration, speakable, trim_note, trim_text


@pytest.mark.parametrize(
    ("n", "expected"),
    [(25_300_000, "25.3 MB"), (20_000_000, "20 MB"), (1_500, "1.5 kB"), (12, "12 bytes"), (1, "1 byte"),
     (3_000_000_000, "3 GB")],
)
def test_sizes_are_worded_in_decimal_units(n: int, expected: str) -> None:
    assert human_bytes(n) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(600, "10 minutes"), (60, "1 minute"), (90, "90 seconds"), (1, "1 second"), (2.5, "2.5 seconds")],
)
def test_durations_are_worded_for_people(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


WEBM_HEAD = b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\xf2\x81\x04B\xf3\x81\x08B\x82\x84webm"
"""The EBML header ffmpeg writes for WebM."""


@pytest.mark.parametrize(
    ("head", "kind", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "image", "image/png"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 32, "image", "image/jpeg"),
        (b"GIF89a" + b"\0" * 32, "image", "image/gif"),
        (b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 32, "image", "image/webp"),
        (b"%PDF-1.7\n" + b"\0" * 32, "document", "application/pdf"),
        (b"OggS" + b"\0" * 32, "audio", "audio/ogg"),
        (b"ID3\x04" + b"\0" * 32, "audio", "audio/mpeg"),
        (b"\xff\xfb\x90\x64" + b"\0" * 32, "audio", "audio/mpeg"),
        (b"\xff\xf1\x50\x80" + b"\0" * 32, "audio", "audio/aac"),
        (b"RIFF\0\0\0\0WAVEfmt " + b"\0" * 32, "audio", "audio/x-wav"),
        (WEBM_HEAD + b"\0" * 32, "audio", "video/webm"),
        (b"\0\0\0\x20ftypM4A " + b"\0" * 32, "audio", "audio/mp4"),
        (b"PK\x03\x04" + b"\0" * 32, "unknown", "application/zip"),
        (b"\x7fELF" + b"\0" * 60, "unknown", "application/x-executable"),
    ],
)
def test_type_is_decided_by_magic_bytes(head: bytes, kind: str, mime: str) -> None:
    found = sniff(head)
    assert (found.kind, found.mime) == (kind, mime)


@pytest.mark.parametrize(
    "data",
    [
        b"# Notes\n\n- one\n- two\n",
        b"name,qty\napples,3\n",
        "caf\u00e9 na\u00efve \u2603\n".encode(),
        "caf\u00e9\n".encode("latin-1"),
        "\ufeffBOM text".encode(),
        "UTF-16 text".encode("utf-16"),
        "cut in the middle of \u00e9".encode()[:-1],
    ],
)
def test_text_files_are_recognised_in_common_encodings(data: bytes) -> None:
    assert sniff(data).kind == "document"
    assert sniff(data).mime == "text/plain"
    assert decode_text(data)


@pytest.mark.parametrize("data", [bytes(range(256)) * 4, b"\0\1\2\3" * 100, b"\x00text\x00with\x00nuls\x00"])
def test_binary_data_is_not_taken_for_text(data: bytes) -> None:
    assert sniff(data).kind == "unknown"
    assert decode_text(data) is None


def test_trim_leaves_short_text_alone() -> None:
    assert trim_text("short", 100) == "short"


def test_trim_names_how_much_was_left_out() -> None:
    text = "word " * 5_000
    out = trim_text(text, 1_000)
    kept = out.split("\n[...")[0]
    assert out.endswith(trim_note(len(text) - len(kept)))
    assert "more characters not shown]" in out
    assert len(kept) <= 1_000


@given(text=st.text(min_size=0, max_size=400), budget=st.integers(min_value=1, max_value=300))
def test_trim_keeps_a_prefix_within_budget_and_counts_the_rest(text: str, budget: int) -> None:
    out = trim_text(text, budget)
    if len(text) <= budget:
        assert out == text
        return
    kept, _, note = out.rpartition("[... trimmed: ")
    kept = kept.removesuffix("\n")
    assert text.startswith(kept)
    assert len(kept) <= budget
    assert note == f"{len(text) - len(kept):,} more characters not shown]"


@pytest.mark.parametrize(
    ("markdown", "spoken"),
    [
        ("**Bold** and _it_ and `code`", "Bold and it and code"),
        ("See [the docs](https://example.com/x) now", "See the docs now"),
        ("Go to https://example.com/a?b=c please", "Go to a link please"),
        ("# Title\n- one\n- two", "Title\none\ntwo"),
        ("Run:\n```bash\nrm -rf /\n```\nDone.", "Run:\n(code omitted)\nDone."),
        ("Hi <@U123ABC>!", "Hi !"),
    ],
)
def test_speakable_drops_markup_code_and_urls(markdown: str, spoken: str) -> None:
    assert speakable(markdown) == spoken


@pytest.mark.parametrize("opener", ["[a](", "![a](", "<a"])
def test_speakable_reads_thousands_of_unclosed_links_or_tags_in_linear_time(opener: str) -> None:
    started = time.perf_counter()
    speakable(opener * 40_000)
    assert time.perf_counter() - started < 1.0  # each opener scanned to the end: 2 to 6 s before


def test_speech_is_cut_at_a_sentence_end() -> None:
    text = "First sentence here. Second one is longer than the budget allows."
    assert cut_for_speech(text, 30) == "First sentence here."


@given(text=st.text(max_size=300), budget=st.integers(min_value=1, max_value=200))
def test_speech_cut_stays_within_budget(text: str, budget: int) -> None:
    out = cut_for_speech(text, budget)
    assert len(out) <= budget
    assert out in text or out == text.strip()


@pytest.mark.parametrize(
    "make",
    [
        lambda: MediaLimits(max_file_bytes=0),
        lambda: MediaLimits(max_audio_seconds=-1),
        lambda: MediaTimeouts(ocr_s=0),
        lambda: ElevenLabsConfig(api_key=""),
        lambda: MediaConfig(parallel=0),
    ],
)
def test_nonsense_config_fails_at_construction(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_api_key_stays_out_of_config_repr() -> None:
    config = MediaConfig(elevenlabs=ElevenLabsConfig(api_key="sk-very-secret"))
    assert "sk-very-secret" not in repr(config)
