"""The Discord adapter's pure parts: splitting, routing, streaming plans, text clean-up, invite URL."""

from __future__ import annotations

import base64
import itertools
import re
from urllib.parse import parse_qs, urlsplit

import discord
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.discord.chunking import DISCORD_LIMIT, split_message
from adapters.discord.config import DiscordConfig, parse_shard_ids
from adapters.discord.convert import SkippedFile, clean_text, notes, with_quote
from adapters.discord.invite import SCOPES, invite_url, required_intents, required_permissions, user_install_url
from adapters.discord.routing import MessageFacts, ReplyFacts, Target, ThreadFacts, moves_to_thread, route, thread_name
from adapters.discord.streaming import EMPTY_REPLY, Delete, Edit, Send, Streamer, Throttle, diff
from adapters.discord.voice import describe, waveform
from core.chunking import plan_pieces, toggles
from core.models import AttachmentText

# -- splitting -----------------------------------------------------------------------------------

fragments = st.one_of(
    st.text(alphabet="abc xyz.\n", min_size=1, max_size=60),
    st.sampled_from(["\n```\n", "\n```python\n", "```", "\n\n", " ", "\n``` inline ```\n", "`", "\n  ```js\n"]),
    st.text(alphabet="q", min_size=50, max_size=2600),
    st.text(min_size=1, max_size=30),
)


def fences_balanced(chunk: str) -> bool:
    return sum(toggles(line) for line in chunk.split("\n")) % 2 == 0


@given(st.lists(fragments, max_size=80).map("".join), st.sampled_from([DISCORD_LIMIT, 300, 120]))
def test_p13_chunks_fit_discord_keep_the_text_and_never_end_inside_code(text: str, limit: int) -> None:
    pieces = plan_pieces(text, limit)
    assert "".join(p.text for p in pieces) == text
    chunks = split_message(text, limit)
    assert all(0 < len(c) <= limit and c.strip() for c in chunks)
    assert all(fences_balanced(c) for c in chunks)
    assert bool(chunks) == bool(text.strip())


@given(st.text(alphabet="ab \n", max_size=DISCORD_LIMIT))
def test_p13_text_that_fits_is_one_message_unchanged(text: str) -> None:
    assert split_message(text) == ([text.lstrip("\n").rstrip()] if text.strip() else [])


def test_a_long_answer_splits_at_paragraphs() -> None:
    paragraphs = [f"Paragraph {i}." + " Some words here." * 40 for i in range(8)]
    chunks = split_message("\n\n".join(paragraphs))
    assert "\n\n".join(chunks) == "\n\n".join(paragraphs)
    assert all(c.startswith("Paragraph") and c.endswith(".") for c in chunks)


def test_a_code_block_that_fits_one_message_moves_whole_to_the_next() -> None:
    code = "```python\n" + "\n".join(f"x = {i}" for i in range(150)) + "\n```"
    chunks = split_message("Intro. " * 200 + "\n" + code + "\nThat is all.")
    assert any(c.startswith("```python\nx = 0") and c.endswith("x = 149\n```\nThat is all.") for c in chunks)


def test_a_code_block_longer_than_a_message_is_closed_and_reopened_with_its_language() -> None:
    code = "```python\n" + "\n".join(f"print({i})" for i in range(600)) + "\n```"
    chunks = split_message("Here:\n\n" + code)
    assert len(chunks) >= 3
    assert all(fences_balanced(c) for c in chunks)
    assert all(c.startswith("```python\n") for c in chunks[1:])
    assert all(c.endswith("```") for c in chunks[:-1])


def test_a_word_longer_than_a_message_is_cut_hard_using_the_whole_message() -> None:
    assert [len(c) for c in split_message("x" * 4500)] == [2000, 2000, 500]


# -- routing -------------------------------------------------------------------------------------


def facts(**overrides: object) -> MessageFacts:
    values: dict[str, object] = {
        "message_id": "100", "channel_id": "10", "is_dm": False, "from_bot": False, "ordinary": True,
        "mentions_parley": False,
    }
    return MessageFacts(**{**values, **overrides})  # type: ignore[arg-type]


parley_reply = ReplyFacts(message_id="90", to_parley=True, conversation_id="80")
other_reply = ReplyFacts(message_id="91", to_parley=False)
parley_thread = ThreadFacts(thread_id="20", started_by_parley=True)
moved_thread = ThreadFacts(thread_id="21", started_by_parley=True, conversation_id="80")
someones_thread = ThreadFacts(thread_id="22", started_by_parley=False)


@pytest.mark.parametrize(
    ("given_facts", "expected"),
    [
        (facts(), None),
        (facts(mentions_parley=True), Target(thread_id="100", reason="mention")),
        (facts(mentions_parley=True, from_bot=True), None),
        (facts(mentions_parley=True, ordinary=False), None),
        (facts(is_dm=True), Target(thread_id="10", reason="dm")),
        (facts(is_dm=True, from_bot=True), None),
        (facts(reply_to=parley_reply), Target(thread_id="80", reason="reply_to_parley")),
        (facts(reply_to=ReplyFacts(message_id="90", to_parley=True)), Target(thread_id="90", reason="reply_to_parley")),
        (facts(reply_to=other_reply), None),
        (facts(reply_to=other_reply, mentions_parley=True), Target(thread_id="91", reason="mention")),
        (facts(thread=parley_thread), Target(thread_id="20", reason="parley_thread")),
        (facts(thread=moved_thread), Target(thread_id="80", reason="parley_thread")),
        (facts(thread=someones_thread), None),
        (facts(thread=someones_thread, mentions_parley=True), Target(thread_id="22", reason="mention")),
        (facts(thread=someones_thread, reply_to=parley_reply), Target(thread_id="22", reason="reply_to_parley")),
        (facts(answers_unmentioned=True), Target(thread_id="100", reason="unmentioned")),
        (facts(answers_unmentioned=True, reply_to=other_reply), Target(thread_id="91", reason="unmentioned")),
        (facts(answers_unmentioned=True, thread=someones_thread), Target(thread_id="22", reason="unmentioned")),
        (facts(answers_unmentioned=True, from_bot=True), None),
        (facts(answers_unmentioned=True, ordinary=False), None),
    ],
)
def test_route_decides_who_is_answered_and_in_which_conversation(
    given_facts: MessageFacts, expected: Target | None
) -> None:
    assert route(given_facts) == expected


@pytest.mark.parametrize(
    ("enabled", "reason", "in_thread", "messages", "after", "moves"),
    [
        (False, "mention", False, 0, 1, False),
        (True, "mention", False, 0, 1, True),
        (True, "dm", False, 0, 1, False),
        (True, "mention", True, 0, 1, False),
        (True, "reply_to_parley", False, 1, 3, False),
        (True, "reply_to_parley", False, 2, 3, True),
    ],
)
def test_conversations_move_into_threads_when_long_enough(
    enabled: bool, reason: str, in_thread: bool, messages: int, after: int, moves: bool
) -> None:
    target = Target(thread_id="1", reason=reason)  # type: ignore[arg-type]
    assert moves_to_thread(enabled=enabled, target=target, in_thread=in_thread, user_messages=messages,
                           after=after) is moves


def test_thread_names_come_from_the_first_line_cut_at_a_word() -> None:
    assert thread_name("  how do   I deploy?\nmore details") == "how do I deploy?"
    assert thread_name("") == "Conversation with Parley"
    long = thread_name("word " * 40)
    assert len(long) <= 80 and long.endswith("…") and not long.endswith(" …")


# -- streaming -----------------------------------------------------------------------------------


def test_diff_sends_edits_and_deletes_only_what_changed() -> None:
    assert diff(["a", "b"], ["a", "B", "c"]) == [Edit(index=1, content="B"), Send(index=2, content="c")]
    assert diff(["a", "b", "c"], ["x"]) == [Edit(index=0, content="x"), Delete(index=2), Delete(index=1)]
    assert diff(["a"], ["a"]) == []


def test_throttle_allows_one_burst_per_interval() -> None:
    throttle = Throttle(interval=1.0)
    assert throttle.wait(10.0) == 0
    throttle.mark(10.0)
    assert throttle.wait(10.4) == pytest.approx(0.6)
    assert throttle.wait(11.0) == 0


class RecordingSurface:
    """Where a test streamer writes: a list of what would be on screen, and every write made."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.screen: list[str] = []
        self.writes: list[tuple[float, str, int]] = []
        self.views: dict[int, discord.ui.View] = {}
        """The view each message was written with, by its index."""

    async def send(self, index: int, content: str, view: discord.ui.View | None = None) -> None:
        self.writes.append((self.clock[0], "send", index))
        self.screen.append(content)
        if view is not None:
            self.views[index] = view

    async def edit(self, index: int, content: str, view: discord.ui.View | None = None) -> None:
        self.writes.append((self.clock[0], "edit", index))
        self.screen[index] = content
        if view is not None:
            self.views[index] = view

    async def delete(self, index: int) -> None:
        self.writes.append((self.clock[0], "delete", index))
        del self.screen[index]


def streamer_on(surface: RecordingSurface, clock: list[float]) -> Streamer:
    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    return Streamer(surface, interval=1.0, limit=200, clock=lambda: clock[0], sleep=sleep)


async def test_streaming_writes_at_most_once_a_second_and_ends_with_the_final_text() -> None:
    clock = [0.0]
    surface = RecordingSurface(clock)
    streamer = streamer_on(surface, clock)
    words = [f"word{i} " for i in range(120)]
    for word in words:
        await streamer.on_delta(word)
        clock[0] += 0.05
    await streamer.finish("".join(words))
    bursts = sorted({at for at, _, _ in surface.writes})
    assert len(bursts) >= 5
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(bursts))
    assert surface.screen == split_message("".join(words), 200)


async def test_a_blocked_reply_replaces_what_streamed() -> None:
    clock = [0.0]
    surface = RecordingSurface(clock)
    streamer = streamer_on(surface, clock)
    await streamer.on_delta("x " * 150)
    assert len(surface.screen) == 2
    await streamer.finish("Sorry, I can't help with that one.")
    assert surface.screen == ["Sorry, I can't help with that one."]


async def test_the_view_rides_on_the_final_edit_of_a_streamed_reply() -> None:
    clock = [0.0]
    surface = RecordingSurface(clock)
    streamer = streamer_on(surface, clock)
    await streamer.on_delta("Hello")
    await streamer.on_delta(", world")
    view = discord.ui.View()
    assert await streamer.finish("Hello, world", view=view)
    assert [(kind, index) for _, kind, index in surface.writes] == [("send", 0), ("edit", 0)]
    assert surface.views == {0: view}


async def test_the_view_goes_on_the_last_message_of_a_split_reply_only() -> None:
    clock = [0.0]
    surface = RecordingSurface(clock)
    view = discord.ui.View()
    assert await streamer_on(surface, clock).finish("x " * 150, view=view)
    assert len(surface.screen) == 2
    assert surface.views == {1: view}


async def test_the_view_rides_on_a_last_message_that_a_shorter_final_text_leaves() -> None:
    clock = [0.0]
    surface = RecordingSurface(clock)
    streamer = streamer_on(surface, clock)
    await streamer.on_delta("x " * 150)
    view = discord.ui.View()
    assert await streamer.finish("Sorry, I can't help with that one.", view=view)
    assert surface.screen == ["Sorry, I can't help with that one."]
    assert surface.views == {0: view}


async def test_a_final_text_already_on_screen_writes_nothing_and_leaves_the_view_unsent() -> None:
    clock = [0.0]
    surface = RecordingSurface(clock)
    streamer = streamer_on(surface, clock)
    await streamer.on_delta("Hello")
    assert not await streamer.finish("Hello", view=discord.ui.View())
    assert [(kind, index) for _, kind, index in surface.writes] == [("send", 0)]
    assert surface.views == {}


async def test_an_empty_reply_still_sends_a_message() -> None:
    clock = [0.0]
    surface = RecordingSurface(clock)
    await streamer_on(surface, clock).finish("  ")
    assert surface.screen == [EMPTY_REPLY]


# -- text in and notes out -------------------------------------------------------------------------


def test_clean_text_drops_parleys_mentions_and_names_people() -> None:
    text = "<@1> hey <@!1> ask <@2> and <@&7> about <@3>, not <@&9>"
    assert clean_text(text, parley_ids={1, 7}, names={2: "Ada"}) == "hey ask @Ada and about <@3>, not <@&9>"


def test_a_quoted_message_is_marked_as_someone_elses() -> None:
    assert with_quote("translate this", author="Bob", quoted="hola\nmundo") == (
        "translate this\n\n(replying to Bob:)\n> hola\n> mundo"
    )
    assert with_quote("hi", author="Bob", quoted="  ") == "hi"


def test_notes_name_every_file_that_was_not_read() -> None:
    out = notes(
        [SkippedFile(name="big_file.zip", reason="too large (30 MB; the limit is 20 MB), not read")],
        [AttachmentText(name="a.png", kind="image", text="hi"), AttachmentText(name="b.pdf", kind="document",
                                                                             error="encrypted")],
    )
    assert out.splitlines() == [
        "-# ⚠️ big\\_file.zip: too large (30 MB; the limit is 20 MB), not read",
        "-# ⚠️ b.pdf: encrypted",
    ]


# -- invite, intents, configuration ----------------------------------------------------------------


def test_invite_url_asks_for_exactly_the_scopes_and_permissions_parley_uses() -> None:
    url = urlsplit(invite_url("123456789012345678", auto_thread=False))
    query = parse_qs(url.query)
    assert (url.netloc, url.path) == ("discord.com", "/oauth2/authorize")
    assert query["client_id"] == ["123456789012345678"]
    assert query["scope"] == [" ".join(SCOPES)] == ["bot applications.commands"]
    view, send, attach, history, in_threads, voice = 1 << 10, 1 << 11, 1 << 15, 1 << 16, 1 << 38, 1 << 46
    assert query["permissions"] == [str(view | send | attach | history | in_threads | voice)] == ["70643622185984"]


def test_the_user_install_url_asks_for_commands_only() -> None:
    query = parse_qs(urlsplit(user_install_url("123456789012345678")).query)
    assert query == {"client_id": ["123456789012345678"], "integration_type": ["1"], "scope": ["applications.commands"]}


def test_auto_threads_add_only_the_create_public_threads_permission() -> None:
    without = required_permissions(auto_thread=False).value
    assert required_permissions(auto_thread=True).value == without | (1 << 35)
    assert "permissions=70677981924352" in invite_url("1", auto_thread=True)


def test_message_content_intent_is_requested_and_nothing_more_privileged() -> None:
    intents = required_intents()
    assert intents.message_content and intents.guild_messages and intents.dm_messages and intents.guild_reactions
    assert not intents.members and not intents.presences


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"token": ""}, "DISCORD_TOKEN"),
        ({"shard_ids": (0,)}, "--shard-count"),
        ({"shard_ids": (2,), "shard_count": 2}, "between 0 and 1"),
        ({"shard_count": 0}, "at least 1"),
        ({"edit_interval_s": 0}, "positive"),
    ],
)
def test_bad_discord_configuration_fails_at_once(overrides: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"token": "t", **overrides}
    with pytest.raises(ValueError, match=re.escape(message)):
        DiscordConfig(**values)  # type: ignore[arg-type]


def test_shard_ids_accept_lists_and_ranges() -> None:
    assert parse_shard_ids("0, 2-4,3") == (0, 2, 3, 4)
    for bad in ("", "a", "3-1", "-1"):
        with pytest.raises(ValueError):
            parse_shard_ids(bad)


def test_the_token_never_shows_in_the_configs_repr() -> None:
    assert "secret-token" not in repr(DiscordConfig(token="secret-token"))


# -- voice messages ------------------------------------------------------------------------------


def test_the_waveform_follows_the_loudness_of_the_audio_in_at_most_256_bytes() -> None:
    quiet, loud = np.full(16_000, 300, dtype="<i2"), np.full(16_000, 12_000, dtype="<i2")
    shape = waveform(np.concatenate([quiet, loud, quiet]).tobytes())
    assert len(shape) == 256
    assert max(shape) == 255 and shape[128] == 255 and shape[0] < 20 and shape[-1] < 20


def test_short_and_silent_audio_give_short_or_flat_waveforms() -> None:
    assert waveform(b"") == b""
    assert waveform(np.zeros(100, dtype="<i2").tobytes()) == bytes(100)


def test_voice_metadata_has_the_duration_and_a_base64_waveform() -> None:
    meta = describe(np.full(24_000, 1000, dtype="<i2").tobytes())
    assert meta.duration_secs == 1.5
    assert base64.b64decode(meta.waveform) == bytes([255] * 256)
