"""The two ways the media stage reports trouble.

`Unreadable` never leaves the package: `Media.extract` turns it into `AttachmentText.error`.
`SpeechError` is what `Media.speak` raises when no voice could be made at all.
"""

from __future__ import annotations


class Unreadable(Exception):
    """One attachment could not be read; `reason` is shown to the person as is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SpeechError(RuntimeError):
    """Text-to-speech failed with every available engine; the message says why, without secrets."""
