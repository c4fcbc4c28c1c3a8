"""What the media stage may do: limits, timeouts and the optional ElevenLabs account.

Plain values handed in by `bot/`; nothing here reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

VoiceFormat = Literal["ogg", "mp3"]


def _require_positive(obj: object) -> None:
    """Fail at construction, not in the middle of a turn, when a limit is zero or negative."""
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
            raise ValueError(f"{type(obj).__name__}.{f.name} must be positive, got {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaLimits:
    """Bounds that keep one hostile or huge file from costing more than a normal one."""

    max_file_bytes: int = 20_000_000
    """Files above this are refused before any parsing (decimal megabytes in messages)."""
    max_audio_seconds: float = 600.0
    """Longer audio is refused; decoding stops just past this point, so length costs nothing extra."""
    max_image_pixels: int = 50_000_000
    """Decompression-bomb guard, checked from the image header before pixels are decoded."""
    max_pdf_pages: int = 200
    """Pages past this are not read; the text says how many were skipped."""
    max_document_chars: int = 30_000
    """Text budget of one attachment (document, OCR text, transcript); the rest is noted, not shown."""
    max_speech_chars: int = 3_000
    """Text-to-speech reads at most this much, cut at a sentence end; the full text stays in the reply."""

    def __post_init__(self) -> None:
        _require_positive(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaTimeouts:
    """Seconds each external tool may take before the attachment gets a 'timed out' error."""

    ocr_s: float = 30.0
    pdf_s: float = 30.0
    decode_s: float = 60.0
    """ffmpeg decoding or encoding one file."""
    transcribe_s: float = 120.0
    speak_s: float = 60.0

    def __post_init__(self) -> None:
        _require_positive(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class ElevenLabsConfig:
    """An ElevenLabs account: when present, Scribe transcribes and ElevenLabs speaks."""

    api_key: str = field(repr=False)
    """Passed to the SDK explicitly; it reads ELEVENLABS_API_KEY at import time otherwise."""
    base_url: str | None = None
    """None means the SDK's production address."""
    stt_model: str = "scribe_v2"
    tts_model: str = "eleven_multilingual_v2"
    voice_id: str = "JBFqnCBsd6RMkjVDRZzb"
    max_retries: int = 2
    """Retries of 408, 409, 429 and 5xx answers and connection failures, with exponential backoff."""

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("ElevenLabsConfig.api_key must not be empty; pass None for no account")
        if self.max_retries < 0:
            raise ValueError("ElevenLabsConfig.max_retries must not be negative")


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaConfig:
    """Everything `Media` needs, built once by `bot/` from the settings."""

    limits: MediaLimits = field(default_factory=MediaLimits)
    timeouts: MediaTimeouts = field(default_factory=MediaTimeouts)
    elevenlabs: ElevenLabsConfig | None = None
    """None: offline speech (pocketsphinx in, espeak-ng out)."""
    ocr_languages: str = "eng"
    """Tesseract language codes joined by '+', e.g. 'eng+deu'; each needs its Debian package."""
    espeak_voice: str = "en-us"
    voice_format: VoiceFormat = "ogg"
    """What `speak` returns unless asked for another: Ogg/Opus (Discord voice messages) or MP3."""
    vision_max_side: int = 2048
    """The copy of an image handed to vision models is scaled down to this many pixels a side."""
    parallel: int = 2
    """Attachments of one message read at the same time (each may run tesseract or ffmpeg)."""

    def __post_init__(self) -> None:
        if self.vision_max_side <= 0 or self.parallel <= 0:
            raise ValueError("MediaConfig.vision_max_side and MediaConfig.parallel must be positive")
