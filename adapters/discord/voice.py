"""Spoken replies as native Discord voice messages: Opus in Ogg, flag 1<<13, a duration and a waveform.

Discord's documented flow: ask for an upload slot (POST /channels/{id}/attachments), PUT the file
to the URL it returns, then post a message whose one attachment names the uploaded file with
`duration_secs` and `waveform` (base64 of up to 256 amplitude bytes) and whose flags carry
IS_VOICE_MESSAGE. Voice messages have no text. The waveform is computed from the audio itself.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from discord.http import HTTPClient, Route

from core.media.audio import SAMPLE_RATE, decode_to_pcm

VOICE_FLAG = 1 << 13
WAVEFORM_POINTS = 256
FILENAME = "voice-message.ogg"
MAX_SECONDS = 3600.0


@dataclass(frozen=True, kw_only=True, slots=True)
class VoiceMeta:
    duration_secs: float
    waveform: str
    """Base64 of one amplitude byte (0-255) per slice of the audio."""


def waveform(pcm: bytes, points: int = WAVEFORM_POINTS) -> bytes:
    """Loudness (RMS) of `points` equal slices of 16-bit mono PCM, scaled so the loudest is 255."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    count = min(points, samples.size)
    if count == 0:
        return b""
    per = samples.size // count
    rms = np.sqrt(np.mean(np.square(samples[: per * count].reshape(count, per)), axis=1))
    peak = float(rms.max())
    scaled = rms / peak * 255 if peak > 0 else rms
    return bytes(np.round(scaled).astype(np.uint8).tolist())


def describe(pcm: bytes) -> VoiceMeta:
    """Duration and waveform of 16 kHz mono PCM."""
    return VoiceMeta(
        duration_secs=round(len(pcm) / 2 / SAMPLE_RATE, 2),
        waveform=base64.b64encode(waveform(pcm)).decode(),
    )


async def measure(audio: bytes, *, timeout_s: float) -> VoiceMeta:
    """Decode the Ogg/Opus reply (ffmpeg, off the event loop) and describe it."""
    pcm = await decode_to_pcm(audio, max_seconds=MAX_SECONDS, timeout_s=timeout_s)
    return await asyncio.to_thread(describe, pcm)


async def send_voice_message(
    http: HTTPClient, uploads: httpx.AsyncClient, *, channel_id: int, audio: bytes, meta: VoiceMeta
) -> dict[str, Any]:
    """Upload `audio` and post it as a voice message; returns Discord's message payload."""
    slots = await http.request(
        Route("POST", "/channels/{channel_id}/attachments", channel_id=channel_id),
        json={"files": [{"id": "0", "filename": FILENAME, "file_size": len(audio)}]},
    )
    slot = slots["attachments"][0]
    uploaded = await uploads.put(slot["upload_url"], content=audio, headers={"Content-Type": "audio/ogg"})
    uploaded.raise_for_status()
    message: dict[str, Any] = await http.request(
        Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id),
        json={
            "flags": VOICE_FLAG,
            "attachments": [
                {
                    "id": "0",
                    "filename": FILENAME,
                    "uploaded_filename": slot["upload_filename"],
                    "duration_secs": meta.duration_secs,
                    "waveform": meta.waveform,
                }
            ],
        },
    )
    return message
