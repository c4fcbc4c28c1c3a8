"""The media stage inside a real turn: the fake model server, the fake ElevenLabs API, real Postgres.

What an attachment says must reach the model as text, a broken file must not stop the answer, and a
voice reply must come back as audio (property 48: text and voice when both are asked for).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import asyncpg
import pytest
from PIL import Image, ImageDraw, ImageFont

from bot.app import Seams
from core.media import ElevenLabsConfig, Media, MediaConfig
from core.models import Attachment
from core.pipeline import Pipeline
from core.seams import NoGuard, NoMemory
from tests.fakes.elevenlabs import FakeElevenLabs, synthesize
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import build_pipeline, message, settings_for

KEY = "xi-pipeline-key"

pytestmark = pytest.mark.usefixtures("allow_model_requests")


@pytest.fixture(scope="module")
def elevenlabs() -> Iterator[FakeElevenLabs]:
    with FakeElevenLabs(api_key=KEY, transcript="please summarise the launch plan") as fake:
        yield fake


@pytest.fixture
def pipeline(pool: asyncpg.Pool, openai_server: FakeOpenAI, elevenlabs: FakeElevenLabs) -> Pipeline:
    elevenlabs.reset()
    media = Media(MediaConfig(elevenlabs=ElevenLabsConfig(api_key=KEY, base_url=elevenlabs.base_url)))
    seams = Seams(media=media, guard=NoGuard(), memory=NoMemory())
    return build_pipeline(settings_for(openai_server), pool, seams=seams)


def note_png(text: str) -> bytes:
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 36)
    image = Image.new("RGB", (60 + int(font.getlength(text)), 100), "white")
    ImageDraw.Draw(image).text((30, 30), text, font=font, fill="black")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def test_text_in_an_image_reaches_the_model(pipeline: Pipeline, openai_server: FakeOpenAI) -> None:
    reply = await pipeline.run(message("What does it say?", attachments=(
        Attachment(name="note.png", data=note_png("The launch code is PINEAPPLE")),
    )))
    assert reply.error is None
    assert reply.attachments[0].text == "The launch code is PINEAPPLE"
    assert "PINEAPPLE" in str(openai_server.requests[-1]["messages"])


async def test_a_voice_note_reaches_the_model_as_its_transcript(
    pipeline: Pipeline, openai_server: FakeOpenAI, elevenlabs: FakeElevenLabs
) -> None:
    voice = synthesize("please summarise the launch plan", "ogg")
    reply = await pipeline.run(message("", attachments=(Attachment(name="voice-message.ogg", data=voice),)))
    assert reply.error is None
    assert (reply.attachments[0].kind, reply.attachments[0].text) == ("audio", "please summarise the launch plan")
    assert "please summarise the launch plan" in str(openai_server.requests[-1]["messages"])
    assert [r.path for r in elevenlabs.requests] == ["/v1/speech-to-text"]


async def test_a_corrupt_file_is_named_and_the_message_still_answered(
    pipeline: Pipeline, openai_server: FakeOpenAI
) -> None:
    reply = await pipeline.run(message("Here is the report", attachments=(
        Attachment(name="report.pdf", data=b"%PDF-1.7 this is not really a pdf"),
    )))
    assert reply.error is None and reply.text
    assert (reply.attachments[0].name, reply.attachments[0].error) == ("report.pdf", "corrupt PDF")
    sent = str(openai_server.requests[-1]["messages"])
    assert "Here is the report" in sent and "corrupt PDF" in sent


async def test_p48_a_voice_reply_comes_with_its_text(
    pipeline: Pipeline, openai_server: FakeOpenAI, elevenlabs: FakeElevenLabs
) -> None:
    reply = await pipeline.run(message("say hello", voice_reply=True))
    assert reply.text
    assert reply.audio is not None and reply.audio_format == "ogg"
    assert reply.audio.startswith(b"OggS")
    assert [r.path for r in elevenlabs.requests] == ["/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb"]
