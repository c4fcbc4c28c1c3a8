"""Offline speech-to-text with pocketsphinx (its wheel carries the US English model).

Accuracy on free speech is modest; it is the fallback when no ElevenLabs key is set. The decoder
is built once (about 0.3 s) and shared under a lock: it is not thread-safe. Audio is split at
pauses by pocketsphinx's voice-activity segmenter and decoded one segment at a time, checking
between segments whether the caller has given up.
"""

from __future__ import annotations

import asyncio
import io
import threading

from pocketsphinx import Decoder, Segmenter

from core.media.audio import SAMPLE_RATE


class SphinxTranscriber:
    """Transcribes 16 kHz mono PCM; safe to share across tasks."""

    def __init__(self) -> None:
        self._decoder: Decoder | None = None
        self._lock = threading.Lock()

    async def transcribe(self, pcm: bytes, *, timeout_s: float) -> str:
        """The transcript (may be empty when nothing was recognised). Raises TimeoutError."""
        cancelled = threading.Event()
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._decode, pcm, cancelled), timeout=timeout_s)
        except TimeoutError:
            cancelled.set()
            raise

    def _decode(self, pcm: bytes, cancelled: threading.Event) -> str:
        words: list[str] = []
        with self._lock:
            if self._decoder is None:
                self._decoder = Decoder(loglevel="FATAL")
            decoder = self._decoder
            for segment in Segmenter(sample_rate=SAMPLE_RATE).segment(io.BytesIO(pcm)):
                if cancelled.is_set():
                    break
                decoder.start_utt()
                decoder.process_raw(segment.pcm, full_utt=True)
                decoder.end_utt()
                hyp = decoder.hyp()
                if hyp is not None and hyp.hypstr:
                    words.append(hyp.hypstr)
        return " ".join(words)
