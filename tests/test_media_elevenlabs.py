"""ElevenLabs Scribe and text-to-speech through the real SDK against the fake API on 127.0.0.1:
paths, the `xi-api-key` header, what is sent, and every failure becoming a clear message."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.media import ElevenLabsConfig, Media, MediaConfig, MediaLimits, MediaTimeouts
from core.models import Attachment
from tests.fakes.elevenlabs import FakeElevenLabs, synthesize

KEY = "xi-test-key-123"
VOICE_PATH = "/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeElevenLabs]:
    with FakeElevenLabs(api_key=KEY, transcript="the launch code is pineapple") as fake:
        yield fake


@pytest.fixture
def fake(server: FakeElevenLabs) -> FakeElevenLabs:
    server.reset()
    server.transcript = "the launch code is pineapple"
    return server


def eleven(fake: FakeElevenLabs, *, key: str = KEY, base_url: str | None = None, retries: int = 0,
           limits: MediaLimits | None = None, timeouts: MediaTimeouts | None = None) -> Media:
    account = ElevenLabsConfig(api_key=key, base_url=base_url or fake.base_url, max_retries=retries)
    return Media(MediaConfig(elevenlabs=account, limits=limits or MediaLimits(),
                             timeouts=timeouts or MediaTimeouts()))


@pytest.fixture(scope="module")
def voice_note() -> bytes:
    return synthesize("what is the launch code", "ogg")


# ---------------------------------------------------------------- Scribe


async def test_voice_note_is_transcribed_by_scribe(fake: FakeElevenLabs, voice_note: bytes) -> None:
    [result] = await eleven(fake).extract([Attachment(name="voice-message.ogg", data=voice_note)])
    assert (result.kind, result.text, result.error) == ("audio", "the launch code is pineapple", None)
    [request] = fake.requests
    assert (request.method, request.path, request.status) == ("POST", "/v1/speech-to-text", 200)
    assert request.headers["xi-api-key"] == KEY
    assert request.form["model_id"] == "scribe_v2"
    assert request.files["file"] == voice_note


@settings(max_examples=10, deadline=None)
@given(transcript=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1,
                          max_size=200).filter(str.strip),
       fmt=st.sampled_from(["ogg", "mp3", "wav"]))
async def test_p45_any_transcript_scribe_returns_becomes_the_attachment_text(
    server: FakeElevenLabs, transcript: str, fmt: str
) -> None:
    server.transcript = transcript
    [result] = await eleven(server).extract([Attachment(name=f"note.{fmt}", data=synthesize("hello", fmt))])
    assert result.text == transcript.strip()


async def test_audio_over_the_limit_never_reaches_scribe(fake: FakeElevenLabs, voice_note: bytes) -> None:
    media = eleven(fake, limits=MediaLimits(max_audio_seconds=0.5))
    [result] = await media.extract([Attachment(name="long.ogg", data=voice_note)])
    assert result.error == "audio longer than 0.5 seconds"
    assert fake.requests == []


async def test_corrupt_audio_never_reaches_scribe(fake: FakeElevenLabs, voice_note: bytes) -> None:
    [result] = await eleven(fake).extract([Attachment(name="bad.ogg", data=voice_note[:64] + b"\x00" * 500)])
    assert (result.kind, result.error) == ("audio", "corrupt or unreadable audio")
    assert fake.requests == []


async def test_rejected_key_gives_a_clear_error_without_the_key(fake: FakeElevenLabs, voice_note: bytes) -> None:
    [result] = await eleven(fake, key="sk-wrong-key").extract([Attachment(name="v.ogg", data=voice_note)])
    assert result.error == "ElevenLabs speech-to-text rejected the API key (HTTP 401)"
    assert "sk-wrong-key" not in (result.error or "")
    assert [r.status for r in fake.requests] == [401]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, "ElevenLabs speech-to-text is rate limited or out of quota (HTTP 429)"),
        (500, "ElevenLabs speech-to-text is unavailable (HTTP 500)"),
        (503, "ElevenLabs speech-to-text is unavailable (HTTP 503)"),
        (422, "ElevenLabs speech-to-text failed (HTTP 422)"),
    ],
)
async def test_scribe_errors_become_clear_attachment_errors(fake: FakeElevenLabs, voice_note: bytes,
                                                            status: int, error: str) -> None:
    fake.fail_next(status)
    [result] = await eleven(fake).extract([Attachment(name="v.ogg", data=voice_note)])
    assert (result.kind, result.text, result.error) == ("audio", None, error)


async def test_transient_scribe_error_is_retried(fake: FakeElevenLabs, voice_note: bytes) -> None:
    fake.fail_next(503)
    [result] = await eleven(fake, retries=1).extract([Attachment(name="v.ogg", data=voice_note)])
    assert result.text == "the launch code is pineapple"
    assert [r.status for r in fake.requests] == [503, 200]


async def test_slow_scribe_times_out_with_a_clear_error(fake: FakeElevenLabs, voice_note: bytes) -> None:
    fake.delay_s = 2.0
    media = eleven(fake, timeouts=MediaTimeouts(transcribe_s=0.3))
    [result] = await media.extract([Attachment(name="v.ogg", data=voice_note)])
    assert result.error is not None and "timed out" in result.error


async def test_unreachable_elevenlabs_gives_a_clear_error(fake: FakeElevenLabs, voice_note: bytes) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    [result] = await eleven(fake, base_url=closed).extract([Attachment(name="v.ogg", data=voice_note)])
    assert result.error == "ElevenLabs speech-to-text could not be reached"


# ---------------------------------------------------------------- text-to-speech


async def test_reply_is_spoken_by_elevenlabs_as_mp3(fake: FakeElevenLabs) -> None:
    audio, fmt = await eleven(fake).speak("The launch code is pineapple.", fmt="mp3")
    assert fmt == "mp3"
    assert audio == synthesize("The launch code is pineapple.", "mp3")
    [request] = fake.requests
    assert (request.path, request.status) == (VOICE_PATH, 200)
    assert request.headers["xi-api-key"] == KEY
    assert request.query["output_format"] == "mp3_44100_128"
    assert request.json == {"text": "The launch code is pineapple.", "model_id": "eleven_multilingual_v2"}


async def test_elevenlabs_speech_is_converted_to_ogg_opus_for_voice_messages(fake: FakeElevenLabs) -> None:
    audio, fmt = await eleven(fake).speak("Hello there.")
    assert fmt == "ogg"
    assert audio.startswith(b"OggS") and b"OpusHead" in audio[:200]
    assert [r.path for r in fake.requests] == [VOICE_PATH]


async def test_markup_is_not_sent_to_be_spoken(fake: FakeElevenLabs) -> None:
    await eleven(fake).speak("**Done**: see [the guide](https://example.com/guide).\n```\nrm -rf /\n```")
    assert fake.requests[0].json is not None
    assert fake.requests[0].json["text"] == "Done: see the guide.\n(code omitted)"


@pytest.mark.parametrize("status", [401, 429, 500])
async def test_elevenlabs_speech_failure_falls_back_to_espeak(fake: FakeElevenLabs, status: int) -> None:
    fake.fail_next(status)
    key = "sk-wrong-key" if status == 401 else KEY
    audio, fmt = await eleven(fake, key=key).speak("Still spoken.")
    assert fmt == "ogg" and audio.startswith(b"OggS")
    assert [r.status for r in fake.requests] == [status]
