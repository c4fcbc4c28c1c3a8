"""Voice out, offline: espeak-ng speaks replies as Ogg/Opus or MP3 (properties 46 and 48)."""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.media import Media, MediaConfig, MediaLimits, SpeechError, VoiceFormat
from core.models import Attachment

CODECS = {"ogg": ("ogg", "opus"), "mp3": ("mp3", "mp3")}


def probe(audio: bytes) -> tuple[str, str, float]:
    """(container, codec, seconds) of `audio` as ffprobe reads it: proof that it plays."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=format_name,duration:stream=codec_name",
         "-of", "json", "pipe:0"],
        input=audio, capture_output=True, check=True, timeout=30,
    ).stdout
    info = json.loads(out)
    duration = float(info["format"].get("duration", 0) or 0)
    if duration == 0:  # ogg streamed through a pipe may not say; decode to count
        pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", "pipe:0", "-ac", "1", "-ar", "16000", "-f", "s16le",
                              "pipe:1"], input=audio, capture_output=True, check=True, timeout=30).stdout
        duration = len(pcm) / 32_000
    return info["format"]["format_name"], info["streams"][0]["codec_name"], duration


@pytest.fixture(scope="module")
def media() -> Media:
    return Media(MediaConfig())


async def test_reply_is_spoken_as_ogg_opus_by_default(media: Media) -> None:
    audio, fmt = await media.speak("The launch code is pineapple.")
    assert fmt == "ogg"
    assert audio.startswith(b"OggS")
    container, codec, seconds = probe(audio)
    assert (container, codec) == ("ogg", "opus")
    assert 1.0 < seconds < 5.0


async def test_spoken_reply_is_heard_back_by_offline_transcription(media: Media) -> None:
    audio, fmt = await media.speak("one two three four five")
    [heard] = await media.extract([Attachment(name=f"reply.{fmt}", data=audio)])
    assert heard.kind == "audio"
    assert heard.text is not None
    assert sum(word in heard.text.split() for word in ["one", "two", "three", "four", "five"]) >= 3, heard.text


async def test_long_reply_is_cut_at_a_sentence_for_speech() -> None:
    brief = Media(MediaConfig(limits=MediaLimits(max_speech_chars=40)))
    text = "This first sentence is spoken. " + "This part is only in the text reply. " * 20
    audio, _ = await brief.speak(text)
    assert probe(audio)[2] < 4.0


@pytest.mark.parametrize("text", ["", "   ", "*** --- ***", "<@U123> ![](chart.png)"])
async def test_text_without_words_cannot_be_spoken(media: Media, text: str) -> None:
    with pytest.raises(SpeechError, match="nothing to say"):
        await media.speak(text)


words = st.text(alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "Zs", "S"]), min_size=1,
                max_size=120).filter(lambda t: sum(ch.isascii() and ch.isalpha() for ch in t) >= 2)


@settings(max_examples=8, deadline=None)
@given(text=words)
async def test_p46_any_text_with_words_becomes_playable_speech(media: Media, text: str) -> None:
    audio, fmt = await media.speak(text)
    container, codec, seconds = probe(audio)
    assert (container, codec) == CODECS[fmt]
    assert seconds > 0


@settings(max_examples=5, deadline=None)
@given(text=words, formats=st.lists(st.sampled_from(["ogg", "mp3"]), min_size=1, max_size=2, unique=True))
async def test_p48_every_requested_voice_format_is_produced(media: Media, text: str,
                                                            formats: list[VoiceFormat]) -> None:
    made = {fmt: await media.speak(text, fmt=fmt) for fmt in formats}
    durations = []
    for wanted, (audio, fmt) in made.items():
        assert fmt == wanted
        container, codec, seconds = probe(audio)
        assert (container, codec) == CODECS[fmt]
        durations.append(seconds)
    assert max(durations) - min(durations) < 0.5  # the same speech, whatever the container
