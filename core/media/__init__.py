"""Parley's eyes and ears: OCR, document text, speech-to-text and text-to-speech, within limits.

`Media` is the pipeline's media stage (`core.seams.MediaSeam`); `bot/` builds its `MediaConfig`.
"""

from core.media.config import ElevenLabsConfig, MediaConfig, MediaLimits, MediaTimeouts, VoiceFormat
from core.media.errors import SpeechError
from core.media.media import Media

__all__ = [
    "ElevenLabsConfig",
    "Media",
    "MediaConfig",
    "MediaLimits",
    "MediaTimeouts",
    "SpeechError",
    "VoiceFormat",
]
