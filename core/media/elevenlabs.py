"""ElevenLabs: Scribe speech-to-text and text-to-speech through the official async SDK.

The key and address are passed explicitly (the SDK would otherwise read ELEVENLABS_API_KEY when
it is imported). A client is made per call: voice notes are rare and this keeps no connection
pool alive across event loops. Failures become `ElevenLabsFailed` with a message fit for the
person; the API key never appears in it.

Retries are ours, not the SDK's: in elevenlabs 2.78 a retried request is re-sent without its form
fields, so a retried speech-to-text call loses `model_id` and fails with 422.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from core.media.config import ElevenLabsConfig

if TYPE_CHECKING:
    from elevenlabs.client import AsyncElevenLabs
    from elevenlabs.core.request_options import RequestOptions

TTS_OUTPUT_FORMAT = "mp3_44100_128"
_NO_SDK_RETRIES: RequestOptions = {"max_retries": 0}
_RETRY_STATUSES = frozenset({408, 409, 429})


class ElevenLabsFailed(Exception):
    """ElevenLabs answered with an error or could not be reached; str() is the reason to show."""


async def scribe(
    account: ElevenLabsConfig, audio: bytes, *, filename: str, mime: str, timeout_s: float
) -> str:
    """The transcript of `audio` (the file as received) by Scribe."""
    from elevenlabs.core.api_error import ApiError

    async with _client(account, timeout_s) as client:
        try:
            async for attempt in _retrying(account):
                with attempt:
                    result = await client.speech_to_text.convert(
                        model_id=account.stt_model,
                        file=(filename, audio, mime),
                        request_options=_NO_SDK_RETRIES,
                    )
        except (ApiError, httpx.HTTPError) as exc:
            raise ElevenLabsFailed(describe_failure(exc, "speech-to-text")) from exc
    return transcript_of(result)


async def speak(account: ElevenLabsConfig, text: str, *, timeout_s: float) -> bytes:
    """MP3 speech of `text` in the configured voice."""
    from elevenlabs.core.api_error import ApiError

    async with _client(account, timeout_s) as client:
        try:
            async for attempt in _retrying(account):
                with attempt:
                    chunks = [
                        chunk
                        async for chunk in client.text_to_speech.convert(
                            account.voice_id,
                            text=text,
                            model_id=account.tts_model,
                            output_format=TTS_OUTPUT_FORMAT,
                            request_options=_NO_SDK_RETRIES,
                        )
                    ]
        except (ApiError, httpx.HTTPError) as exc:
            raise ElevenLabsFailed(describe_failure(exc, "text-to-speech")) from exc
    audio = b"".join(chunks)
    if not audio:
        raise ElevenLabsFailed("ElevenLabs text-to-speech returned no audio")
    return audio


def _retrying(account: ElevenLabsConfig) -> AsyncRetrying:
    """Retry rate limits, server errors and connection failures with a short exponential backoff;
    the caller's timeout bounds the whole."""
    return AsyncRetrying(
        stop=stop_after_attempt(account.max_retries + 1),
        wait=wait_exponential(multiplier=0.5, max=4),
        retry=retry_if_exception(is_transient),
        reraise=True,
    )


def is_transient(exc: BaseException) -> bool:
    from elevenlabs.core.api_error import ApiError

    if isinstance(exc, httpx.TransportError):
        return True
    status = getattr(exc, "status_code", None) if isinstance(exc, ApiError) else None
    return isinstance(status, int) and (status in _RETRY_STATUSES or status >= 500)


@asynccontextmanager
async def _client(account: ElevenLabsConfig, timeout_s: float) -> AsyncIterator[AsyncElevenLabs]:
    """An AsyncElevenLabs over an httpx client that is closed when the call ends. The SDK (half a second
    to import) is imported on the first call, not by every process that has a voice to offer."""
    from elevenlabs.client import AsyncElevenLabs

    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=True) as http:
        yield AsyncElevenLabs(api_key=account.api_key, base_url=account.base_url, httpx_client=http)


def transcript_of(result: object) -> str:
    """The text of any Scribe answer shape: one transcript, or one per channel."""
    text = getattr(result, "text", None)
    if isinstance(text, str):
        return text.strip()
    channels = getattr(result, "transcripts", None)
    if isinstance(channels, list):
        return "\n".join(str(getattr(c, "text", "")).strip() for c in channels).strip()
    raise ElevenLabsFailed("ElevenLabs speech-to-text returned no transcript")


def describe_failure(exc: Exception, service: str) -> str:
    """A short reason naming the HTTP status, with no headers, body or key."""
    if isinstance(exc, httpx.TimeoutException):
        return f"ElevenLabs {service} timed out"
    if isinstance(exc, httpx.HTTPError):
        return f"ElevenLabs {service} could not be reached"
    status = getattr(exc, "status_code", None)
    if status == 401:
        return f"ElevenLabs {service} rejected the API key (HTTP 401)"
    if status == 429:
        return f"ElevenLabs {service} is rate limited or out of quota (HTTP 429)"
    if isinstance(status, int) and status >= 500:
        return f"ElevenLabs {service} is unavailable (HTTP {status})"
    return f"ElevenLabs {service} failed (HTTP {status})"
