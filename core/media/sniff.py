"""Decide what a file is from its bytes: magic numbers first, then a text sniff. Names and claimed
content types are ignored, because both are chosen by whoever sent the file."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

import filetype

SniffedKind = Literal["image", "document", "audio", "unknown"]

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff"})
AUDIO_TYPES = frozenset({
    "audio/ogg", "audio/mpeg", "audio/x-wav", "audio/mp4", "audio/m4a", "audio/x-flac", "audio/aac",
    "audio/amr", "audio/x-aiff",
    "video/mp4", "video/x-m4v", "video/webm", "video/x-matroska", "video/quicktime", "video/3gpp",
})
"""Containers ffmpeg reads; video containers count because voice notes arrive as mp4 or webm."""
PDF = "application/pdf"
TEXT = "text/plain"

_SNIFF_BYTES = 8192
_MIN_PRINTABLE = 0.95


@dataclass(frozen=True, kw_only=True, slots=True)
class Sniffed:
    """The kind the media stage will treat a file as, and the MIME type it found."""

    kind: SniffedKind
    mime: str


def sniff(data: bytes) -> Sniffed:
    """Image, audio, PDF or text by content; anything else is 'unknown' with the best MIME guess."""
    head = data[:_SNIFF_BYTES]
    mime = _magic_mime(head)
    if mime in IMAGE_TYPES:
        return Sniffed(kind="image", mime=mime)
    if mime in AUDIO_TYPES:
        return Sniffed(kind="audio", mime=mime)
    if mime == PDF:
        return Sniffed(kind="document", mime=PDF)
    if mime is None and decode_text(data) is not None:
        return Sniffed(kind="document", mime=TEXT)
    return Sniffed(kind="unknown", mime=mime or "application/octet-stream")


def _magic_mime(head: bytes) -> str | None:
    guess = filetype.guess(head)
    if guess is not None:
        return str(guess.mime)
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "audio/aac"  # ADTS frame sync, which filetype does not know
    if _mp3_frame(head):
        return "audio/mpeg"
    if head.lstrip()[:5] == b"%PDF-":
        return PDF  # PDFs with leading junk, which readers accept
    return None


def _mp3_frame(head: bytes) -> bool:
    """An MPEG layer III frame header without an ID3 tag (which filetype only partly knows).

    Strict on version, layer and bitrate bits so that a UTF-16 byte-order mark is not mistaken for one.
    """
    if len(head) < 3 or head[0] != 0xFF:
        return False
    sync, version, layer, bitrate = head[1] & 0xE0, head[1] & 0x18, head[1] & 0x06, head[2] >> 4
    return sync == 0xE0 and version != 0x08 and layer == 0x02 and bitrate not in (0x0, 0xF)


def decode_text(data: bytes) -> str | None:
    """The text of a plain-text file (UTF-8, UTF-16 with BOM, else Latin-1), or None if it looks binary."""
    text: str | None = None
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            text = _try_decode(data, codec)
            break
    else:
        text = _try_decode(data, "utf-8")
        if text is None:
            text = data.decode("latin-1")
    if text is None or not _looks_printable(text):
        return None
    return text


def _try_decode(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        if exc.start < len(data) - 3:
            return None
        # only the last character is broken: a truncated upload of a text file is still text
        return data[: exc.start].decode(codec, errors="replace")


def _looks_printable(text: str) -> bool:
    sample = text[:_SNIFF_BYTES]
    if not sample:
        return False
    printable = sum(1 for ch in sample if ch in "\t\n\r" or unicodedata.category(ch)[0] != "C")
    return printable / len(sample) >= _MIN_PRINTABLE
