"""A fake ElevenLabs API on 127.0.0.1 that the real `elevenlabs` SDK talks to.

It serves the paths the SDK calls for text-to-speech (`POST /v1/text-to-speech/{voice_id}` and
`.../stream`) and Scribe speech-to-text (`POST /v1/speech-to-text`, multipart), checks the
`xi-api-key` header (401 otherwise, in ElevenLabs' error shape), records every request, and
answers with injected errors on demand. Speech is real audio: espeak-ng speaks the requested text
and ffmpeg encodes it in the requested output format (cached per text and format).

    with FakeElevenLabs(api_key="k", transcript="hello there") as fake:
        client = ElevenLabs(api_key="k", base_url=fake.base_url)
        fake.fail_next(429)          # the next request gets a 429
        fake.requests[-1].form       # what the SDK sent

It runs its own event loop in a background thread, so sync and async tests can both use it.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.background import BackgroundApp

_ERROR_STATUS = {
    400: "invalid_request",
    401: "invalid_api_key",
    404: "voice_not_found",
    408: "request_timeout",
    422: "unprocessable_entity",
    429: "too_many_concurrent_requests",
    500: "internal_server_error",
    503: "service_unavailable",
}
_GENERATION = web.RequestKey("generation", int)
_AUDIO_TYPES = {"mp3": "audio/mpeg", "ogg": "audio/ogg", "wav": "audio/wav"}


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    json: dict[str, Any] | None = None
    form: dict[str, str] = field(default_factory=dict)
    """Multipart text fields (speech-to-text: model_id, ...)."""
    files: dict[str, bytes] = field(default_factory=dict)
    """Multipart file parts by field name (speech-to-text: file)."""
    status: int = 200


@dataclass(frozen=True, kw_only=True, slots=True)
class InjectedError:
    status: int
    message: str
    retry_after: float | None = None


def synthesize(text: str, fmt: str = "mp3") -> bytes:
    """Real speech of `text` as 'mp3', 'ogg' (Opus) or 'wav', by espeak-ng and ffmpeg; cached."""
    return _synthesize(text, fmt)


@lru_cache(maxsize=64)
def _synthesize(text: str, fmt: str) -> bytes:
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "130", "--stdout", "--stdin"],
        input=text.encode(), capture_output=True, check=True, timeout=30,
    ).stdout
    if fmt == "wav":
        return wav
    codec = ["-c:a", "libopus", "-f", "ogg"] if fmt == "ogg" else ["-c:a", "libmp3lame", "-f", "mp3"]
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", "pipe:0", *codec, "pipe:1"],
        input=wav, capture_output=True, check=True, timeout=30,
    ).stdout


def output_format_to_container(output_format: str) -> str | None:
    """ElevenLabs output_format names ('mp3_44100_128', 'opus_48000_64', 'wav_16000') -> our formats."""
    family = output_format.split("_", 1)[0]
    return {"mp3": "mp3", "opus": "ogg", "wav": "wav"}.get(family)


class FakeElevenLabs:
    """The fake server; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        api_key: str = "test-elevenlabs-key",
        transcript: str = "hello from the fake scribe",
        language_code: str = "eng",
    ) -> None:
        self.api_key = api_key
        self.transcript = transcript
        self.language_code = language_code
        self.delay_s = 0.0
        """Seconds every answer waits before it is sent (for timeout tests)."""
        self.requests: list[RecordedRequest] = []
        self._errors: deque[InjectedError] = deque()
        self._generation = 0
        """Bumped by reset(): a slow request that arrived before it is not recorded after it."""
        self._lock = threading.Lock()
        self._server = BackgroundApp("fake-elevenlabs")
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, status: int, *, times: int = 1, message: str | None = None,
                  retry_after: float | None = None) -> None:
        """The next `times` requests (after the key check) get `status` with an ElevenLabs error body."""
        with self._lock:
            for _ in range(times):
                self._errors.append(InjectedError(
                    status=status, message=message or f"injected {status}", retry_after=retry_after,
                ))

    def reset(self) -> None:
        """Forget recorded requests, pending errors and delays; keep the key and transcript."""
        with self._lock:
            self.requests.clear()
            self._errors.clear()
            self.delay_s = 0.0
            self._generation += 1

    def requests_to(self, path_prefix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    def start(self) -> FakeElevenLabs:
        self.port = self._server.start(self._app)
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeElevenLabs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._stamp])
        app.router.add_post("/v1/text-to-speech/{voice_id}", self._tts)
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self._tts)
        app.router.add_post("/v1/speech-to-text", self._stt)
        return app

    @web.middleware
    async def _stamp(self, request: web.Request, handler: Any) -> web.StreamResponse:
        request[_GENERATION] = self._generation
        response: web.StreamResponse = await handler(request)
        return response

    async def _tts(self, request: web.Request) -> web.StreamResponse:
        body: dict[str, Any] | None
        try:
            body = await request.json()
        except ValueError:
            body = None
        early = await self._gate(request, json=body)
        if early is not None:
            return early
        container = output_format_to_container(request.query.get("output_format", "mp3_44100_128"))
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip() or container is None:
            return self._record_error(request, 422, "text and a supported output_format are required", json=body)
        audio = await asyncio.to_thread(synthesize, text, container)
        self._record(request, 200, json=body)
        return web.Response(body=audio, content_type=_AUDIO_TYPES[container])

    async def _stt(self, request: web.Request) -> web.StreamResponse:
        form: dict[str, str] = {}
        files: dict[str, bytes] = {}
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.filename is not None:
                    files[part.name] = bytes(await part.read())
                else:
                    form[part.name] = await part.text()
        early = await self._gate(request, form=form, files=files)
        if early is not None:
            return early
        if not form.get("model_id") or "file" not in files or not files["file"]:
            return self._record_error(request, 422, "model_id and a file are required", form=form, files=files)
        self._record(request, 200, form=form, files=files)
        return web.json_response(self._transcript_body())

    def _transcript_body(self) -> dict[str, Any]:
        words: list[dict[str, Any]] = []
        clock = 0.0
        for i, word in enumerate(self.transcript.split()):
            if i:
                words.append({"text": " ", "start": clock, "end": clock, "type": "spacing", "logprob": 0.0})
            words.append({"text": word, "start": clock, "end": clock + 0.4, "type": "word",
                          "speaker_id": "speaker_0", "logprob": -0.05})
            clock += 0.5
        return {
            "language_code": self.language_code,
            "language_probability": 0.98,
            "text": self.transcript,
            "words": words,
            "transcription_id": uuid.uuid4().hex,
        }

    async def _gate(self, request: web.Request, **captured: Any) -> web.Response | None:
        """Delay, key check, then any injected error; None lets the request through."""
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if request.headers.get("xi-api-key") != self.api_key:
            return self._record_error(request, 401, "Invalid API key", **captured)
        with self._lock:
            injected = self._errors.popleft() if self._errors else None
        if injected is None:
            return None
        response = self._record_error(request, injected.status, injected.message, **captured)
        if injected.retry_after is not None:
            response.headers["Retry-After"] = str(injected.retry_after)
        return response

    def _record(self, request: web.Request, status: int, **captured: Any) -> None:
        with self._lock:
            if request.get(_GENERATION) != self._generation:
                return
            self.requests.append(RecordedRequest(
                method=request.method,
                path=request.path,
                headers=dict(request.headers),
                query=dict(request.query),
                status=status,
                **captured,
            ))

    def _record_error(self, request: web.Request, status: int, message: str, **captured: Any) -> web.Response:
        self._record(request, status, **captured)
        detail = {"status": _ERROR_STATUS.get(status, "error"), "message": message}
        return web.json_response({"detail": detail}, status=status)
