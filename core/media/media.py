"""`Media`, the pipeline's media stage: attachments in, text out; reply text in, voice out.

Every attachment gets an `AttachmentText`, with text or with an error naming the reason; nothing a
sender can upload makes `extract` raise, and one bad file does not spoil the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from core.media.audio import decode_to_pcm, encode_speech
from core.media.config import MediaConfig, VoiceFormat
from core.media.documents import read_pdf, read_text
from core.media.elevenlabs import ElevenLabsFailed, scribe
from core.media.elevenlabs import speak as eleven_speak
from core.media.errors import SpeechError, Unreadable
from core.media.espeak import espeak
from core.media.images import read_image
from core.media.proc import ToolFailed
from core.media.sniff import PDF, Sniffed, sniff
from core.media.sphinx import SphinxTranscriber
from core.media.text import cut_for_speech, human_bytes, speakable, trim_text
from core.models import Attachment, AttachmentText

log = logging.getLogger(__name__)
T = TypeVar("T")

OFF_LOOP_BYTES = 1_000_000
"""From this size a file is sniffed, and text decoded, on a thread: 19 MB of text is about 40 ms of CPU, and
five such files in one message held the event loop 215 ms in one stretch."""

_TIMED_OUT = {
    "image": "timed out reading the image",
    "document": "timed out reading the document",
    "audio": "timed out transcribing the audio",
    "unknown": "timed out reading the file",
}


class Media:
    """OCR, document text, speech-to-text and text-to-speech within the limits of one `MediaConfig`.

    Implements `core.seams.MediaSeam`. With `config.elevenlabs` set, Scribe transcribes and
    ElevenLabs speaks; otherwise pocketsphinx and espeak-ng do, offline.
    """

    def __init__(self, config: MediaConfig | None = None) -> None:
        self.config = config or MediaConfig()
        self._sphinx = SphinxTranscriber()
        self._gate = asyncio.Semaphore(self.config.parallel)

    async def extract(self, attachments: Sequence[Attachment]) -> list[AttachmentText]:
        """One result per attachment, in order; read at most `config.parallel` at a time."""
        return list(await asyncio.gather(*(self._extract_one(a) for a in attachments)))

    async def speak(self, text: str, *, fmt: VoiceFormat | None = None) -> tuple[bytes, str]:
        """Speech of a reply as (audio, 'ogg' | 'mp3'). ElevenLabs when configured, falling back to
        espeak-ng if it fails. Raises SpeechError when there is nothing to say or no engine works."""
        fmt = fmt or self.config.voice_format
        spoken = cut_for_speech(speakable(text), self.config.limits.max_speech_chars)
        if not any(ch.isalnum() for ch in spoken):
            raise SpeechError("nothing to say: the text has no words")
        timeout = self.config.timeouts.speak_s
        account = self.config.elevenlabs
        if account is not None:
            try:
                mp3 = await asyncio.wait_for(eleven_speak(account, spoken, timeout_s=timeout), timeout)
                if fmt == "mp3":
                    return mp3, "mp3"
                return await encode_speech(mp3, fmt="ogg", timeout_s=self.config.timeouts.decode_s), "ogg"
            except (ElevenLabsFailed, ToolFailed, TimeoutError) as exc:
                log.warning("ElevenLabs speech failed, speaking with espeak-ng instead: %s", _reason(exc))
        try:
            audio = await espeak(spoken, voice=self.config.espeak_voice, fmt=fmt, timeout_s=timeout)
        except (ToolFailed, FileNotFoundError, TimeoutError) as exc:
            raise SpeechError(f"text-to-speech failed: {_reason(exc)}") from exc
        return audio, fmt

    async def _extract_one(self, attachment: Attachment) -> AttachmentText:
        found = Sniffed(kind="unknown", mime="application/octet-stream")
        async with self._gate:
            try:
                found = await self._off_loop_if_large(attachment.data, self._check, attachment.data)
                return await self._read(attachment, found)
            except Unreadable as exc:
                error = exc.reason
            except TimeoutError:
                error = _TIMED_OUT[found.kind]
            except Exception:
                log.exception("media stage failed on a %s (%s, %d bytes)", found.kind, found.mime,
                              len(attachment.data))
                error = "could not read the file (internal error)"
        log.info("attachment unreadable: %s (%s, %d bytes)", error, found.mime, len(attachment.data))
        return AttachmentText(name=attachment.name, kind=found.kind, error=error)

    def _check(self, data: bytes) -> Sniffed:
        """Size limits first (cheap, and before any parser sees the bytes), then the type by content."""
        if not data:
            raise Unreadable("empty file")
        limit = self.config.limits.max_file_bytes
        if len(data) > limit:
            raise Unreadable(f"too large: {human_bytes(len(data))} > {human_bytes(limit)}")
        return sniff(data)

    async def _read(self, attachment: Attachment, found: Sniffed) -> AttachmentText:
        budget = self.config.limits.max_document_chars
        name = attachment.name
        match found.kind:
            case "image":
                image = await read_image(attachment.data, self.config)
                return AttachmentText(
                    name=name, kind="image", text=trim_text(image.text, budget),
                    image=image.image, image_media_type=image.media_type,
                )
            case "document" if found.mime == PDF:
                return AttachmentText(name=name, kind="document", text=await read_pdf(attachment.data, self.config))
            case "document":
                text = await self._off_loop_if_large(attachment.data, read_text, attachment.data, self.config)
                return AttachmentText(name=name, kind="document", text=text)
            case "audio":
                transcript = await self._transcribe(attachment.data, found.mime)
                return AttachmentText(name=name, kind="audio", text=trim_text(transcript, budget))
            case _:
                raise Unreadable(f"unsupported type {found.mime}")

    @staticmethod
    async def _off_loop_if_large(data: bytes, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` here for a small file, on a thread for a large one (a hop costs more than a small file)."""
        if len(data) < OFF_LOOP_BYTES:
            return work(*args)
        return await asyncio.to_thread(work, *args)

    async def _transcribe(self, data: bytes, mime: str) -> str:
        """Decode first in every case: it proves the file is audio and within the length limit
        before a paid API sees it."""
        timeouts = self.config.timeouts
        pcm = await decode_to_pcm(data, max_seconds=self.config.limits.max_audio_seconds,
                                  timeout_s=timeouts.decode_s)
        account = self.config.elevenlabs
        if account is None:
            text = await self._sphinx.transcribe(pcm, timeout_s=timeouts.transcribe_s)
        else:
            try:
                text = await asyncio.wait_for(
                    scribe(account, data, filename="audio", mime=mime, timeout_s=timeouts.transcribe_s),
                    timeouts.transcribe_s,
                )
            except ElevenLabsFailed as exc:
                raise Unreadable(str(exc)) from exc
        if not text.strip():
            raise Unreadable("no speech recognised")
        return text


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename or 'a speech tool'} is not installed"
    return str(exc) or type(exc).__name__
