"""Slack payloads -> Parley's values, slash command parsing, token hosts, pacing (pure functions)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from adapters.slack.commands import (
    Forget,
    ForgetFact,
    Help,
    SetProfile,
    SetSetting,
    ShowMemory,
    ShowProfile,
    ShowSettings,
    UnsetSetting,
    forget_confirmation_blocks,
    help_text,
    home_view,
    parse_command,
    profile_text,
)
from adapters.slack.events import (
    MalformedEvent,
    is_addressed,
    parse_message,
    parse_reaction,
    strip_mention,
    to_inbound,
)
from adapters.slack.files import file_hosts, token_may_go_to
from adapters.slack.pacing import stream_expired, update_due
from adapters.slack.verify import Refusal, check_signature, declared_too_large, parse_payload, unexpected_shape
from core.seams import Profile

BOT = "UPARLEY"
TEAM = "T1"


def event(**fields: Any) -> dict[str, Any]:
    return {"type": "message", "user": "UALICE", "channel": "C1", "ts": "100.1", "text": "hi", **fields}


def test_a_mention_replies_in_a_thread_started_by_the_mention() -> None:
    message = parse_message(
        event(type="app_mention", text=f"<@{BOT}> what's up?"), team_id=TEAM, bot_user_id=BOT
    )
    assert message is not None
    assert (message.text, message.mentioned, message.is_dm) == ("what's up?", True, False)
    assert (message.reply_thread_ts, message.conversation_id, message.key) == ("100.1", "100.1", "T1:C1:100.1")


def test_a_reply_in_a_thread_stays_in_that_thread() -> None:
    message = parse_message(event(thread_ts="90.0"), team_id=TEAM, bot_user_id=BOT)
    assert message is not None and message.thread_ts == "90.0" and message.reply_thread_ts == "90.0"


def test_a_thread_parent_is_a_top_level_message() -> None:
    message = parse_message(event(thread_ts="100.1"), team_id=TEAM, bot_user_id=BOT)
    assert message is not None and message.thread_ts is None


def test_a_top_level_dm_is_one_conversation_answered_at_the_top_level() -> None:
    message = parse_message(event(channel="D9", channel_type="im"), team_id=TEAM, bot_user_id=BOT)
    assert message is not None and message.is_dm
    assert (message.reply_thread_ts, message.conversation_id) == (None, "D9")


def test_the_same_message_as_mention_and_as_message_has_one_key() -> None:
    as_mention = parse_message(event(type="app_mention", text=f"<@{BOT}> x"), team_id=TEAM, bot_user_id=BOT)
    as_message = parse_message(event(text=f"<@{BOT}> x"), team_id=TEAM, bot_user_id=BOT)
    assert as_mention is not None and as_message is not None
    assert as_mention.key == as_message.key and as_message.mentioned


@pytest.mark.parametrize(
    "fields",
    [
        {"user": BOT},
        {"bot_id": "B1"},
        {"subtype": "message_changed"},
        {"subtype": "message_deleted"},
        {"subtype": "bot_message"},
        {"subtype": "channel_join"},
        {"user": None},
        {"hidden": True},
    ],
)
def test_messages_parley_must_not_answer_are_dropped(fields: dict[str, Any]) -> None:
    assert parse_message(event(**fields), team_id=TEAM, bot_user_id=BOT) is None


def test_files_are_read_from_the_event() -> None:
    raw = {"id": "F1", "name": "clip.m4a", "mimetype": "audio/mp4", "size": 12, "subtype": "slack_audio",
           "url_private": "https://files.slack.com/a", "url_private_download": "https://files.slack.com/a?d=1"}
    hidden = {"id": "F2", "mode": "tombstone"}
    message = parse_message(event(subtype="file_share", files=[raw, hidden]), team_id=TEAM, bot_user_id=BOT)
    assert message is not None
    [file] = message.files
    assert (file.name, file.url, file.size, file.mimetype, file.subtype) == (
        "clip.m4a", "https://files.slack.com/a?d=1", 12, "audio/mp4", "slack_audio"
    )


@pytest.mark.parametrize(
    ("fields", "in_thread", "followups", "answered"),
    [
        ({"channel": "D1", "channel_type": "im"}, False, True, True),
        ({"type": "app_mention", "text": f"<@{BOT}> hi"}, False, True, True),
        ({"thread_ts": "1.0"}, True, True, True),
        ({"thread_ts": "1.0"}, True, False, False),
        ({"thread_ts": "1.0"}, False, True, False),
        ({}, True, True, False),
    ],
)
def test_who_parley_answers(fields: dict[str, Any], in_thread: bool, followups: bool, answered: bool) -> None:
    message = parse_message(event(**fields), team_id=TEAM, bot_user_id=BOT)
    assert message is not None
    assert is_addressed(message, in_parley_thread=in_thread, thread_followups=followups) is answered


def test_strip_mention_removes_only_parleys_mention() -> None:
    assert strip_mention(f"<@{BOT}|parley>  ask <@UBOB> about it", BOT) == "ask <@UBOB> about it"


def test_inbound_carries_the_dedupe_key_and_tenancy() -> None:
    message = parse_message(event(channel="D1", channel_type="im"), team_id=TEAM, bot_user_id=BOT)
    assert message is not None
    inbound = to_inbound(message, ())
    assert (inbound.platform, inbound.workspace_id, inbound.user_id, inbound.event_id, inbound.is_dm) == (
        "slack", TEAM, "UALICE", "T1:D1:100.1", True
    )


def test_a_message_from_another_organisation_in_a_shared_channel_belongs_to_this_installation() -> None:
    message = parse_message(event(team="TOTHER", user_team="TOTHER"), team_id=TEAM, bot_user_id=BOT)
    assert message is not None
    assert to_inbound(message, ()).workspace_id == TEAM and message.key == "T1:C1:100.1"


def test_reactions_count_only_on_parleys_messages() -> None:
    on_parley = {"type": "reaction_added", "user": "UBOB", "reaction": "thumbsup", "item_user": BOT,
                 "item": {"type": "message", "channel": "C1", "ts": "5.5"}}
    parsed = parse_reaction(on_parley, team_id=TEAM, bot_user_id=BOT)
    assert parsed is not None
    reaction = parsed.to_reaction("C1:5.5")
    assert (reaction.emoji, reaction.platform_message_id, reaction.removed) == ("thumbsup", "C1:5.5", False)
    assert parse_reaction({**on_parley, "item_user": "UALICE"}, team_id=TEAM, bot_user_id=BOT) is None
    assert parse_reaction({**on_parley, "item": {"type": "file"}}, team_id=TEAM, bot_user_id=BOT) is None
    removed = parse_reaction({**on_parley, "type": "reaction_removed"}, team_id=TEAM, bot_user_id=BOT)
    assert removed is not None and removed.removed


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("", Help()),
        ("help", Help()),
        ("profile", ShowProfile()),
        ("profile show", ShowProfile()),
        ("profile set language German", SetProfile(field="language", value="German")),
        ("profile set about I build  boats", SetProfile(field="about", value="I build  boats")),
        ("profile set voice on", SetProfile(field="voice_replies", value="on")),
        ("profile clear tz", SetProfile(field="timezone", value="")),
        ("forget", Forget()),
        ("memory", ShowMemory()),
        ("memory history", ShowMemory(history=True)),
        ("memory forget 12", ForgetFact(fact_id=12)),
        ("memory forget twelve", Help(unknown="memory forget twelve")),
        ("memory forget 99999999999999999999", Help(unknown="memory forget 99999999999999999999")),
        ("settings", ShowSettings()),
        ("settings show", ShowSettings()),
        ("settings set system_prompt You are  the support desk.",
         SetSetting(key="system_prompt", value="You are  the support desk.")),
        ("settings set Temperature 0.2", SetSetting(key="temperature", value="0.2")),
        ("settings unset tools", UnsetSetting(key="tools")),
        ("settings set memory", Help(unknown="settings set memory")),
        ("profile set colour blue", Help(unknown="profile set colour blue")),
        ("dance", Help(unknown="dance")),
    ],
)
def test_parley_command_parsing(text: str, command: object) -> None:
    assert parse_command(text) == command


def test_command_texts_escape_what_people_typed() -> None:
    assert "&lt;!channel&gt;" in help_text("<!channel>")
    assert "Name: &lt;b&gt;" in profile_text(Profile(display_name="<b>"), 3)
    assert "remember 1 thing " in profile_text(Profile(), 1)


def test_forget_asks_with_two_buttons_and_home_confirms_in_a_dialog() -> None:
    actions = forget_confirmation_blocks()[1]["elements"]
    assert [a["action_id"] for a in actions] == ["parley_forget_confirm", "parley_forget_cancel"]
    button = home_view(Profile(), 0)["blocks"][-1]["elements"][0]
    assert button["action_id"] == "parley_forget_confirm" and "confirm" in button


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://files.slack.com/files-pri/T1-F1/a.png", True),
        ("https://slack-files.com/x", False),
        ("http://files.slack.com/files-pri/T1-F1/a.png", False),
        ("https://evil.example.com/files.slack.com", False),
        ("https://files.slack.com.evil.example/a", False),
        ("http://127.0.0.1:9000/files-pri/a", True),
    ],
)
def test_the_bot_token_goes_only_to_slack_file_hosts(url: str, allowed: bool) -> None:
    assert token_may_go_to(url, extra_hosts=file_hosts("http://127.0.0.1:9000/api/")) is allowed


def test_edits_are_paced_and_old_streams_expire() -> None:
    assert update_due(last_update=None, now=5.0, interval_s=1.0)
    assert not update_due(last_update=4.5, now=5.0, interval_s=1.0)
    assert update_due(last_update=4.0, now=5.0, interval_s=1.0)
    assert not stream_expired(started=None, now=1000.0, max_age_s=300)
    assert not stream_expired(started=0.0, now=300.0, max_age_s=300)
    assert stream_expired(started=0.0, now=300.5, max_age_s=300)


# --- request checks on raw bytes (adapters/slack/verify.py) ---------------------------------------

SECRET = "verify-secret"
NOW = 1_800_000_000


def signed_headers(body: bytes, *, stamp: int = NOW) -> dict[str, str]:
    signature = "v0=" + hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"x-slack-request-timestamp": str(stamp), "x-slack-signature": signature}


def test_a_signed_body_passes_the_signature_check() -> None:
    body = b'{"type": "event_callback"}'
    assert check_signature(body, signed_headers(body), signing_secret=SECRET, now=NOW) is None


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        ({}, b"{}", 401, "missing Slack signature headers"),
        ({"x-slack-request-timestamp": "soon", "x-slack-signature": "v0=1"}, b"{}", 401, "malformed Slack timestamp"),
        ({"x-slack-request-timestamp": "١٢٣", "x-slack-signature": "v0=1"}, b"{}", 401, "malformed Slack timestamp"),
        (signed_headers(b"{}", stamp=NOW - 301), b"{}", 401, "stale Slack timestamp"),
        (signed_headers(b"{}"), b'{"x": 1}', 401, "invalid Slack signature"),
        (signed_headers(b"\xff"), b"\xff", 400, "body is not UTF-8"),
    ],
    ids=["unsigned", "non-numeric", "non-ascii-digits", "stale", "tampered", "not-utf8"],
)
def test_requests_slack_did_not_sign_are_refused(
    headers: dict[str, str], body: bytes, status: int, reason: str
) -> None:
    assert check_signature(body, headers, signing_secret=SECRET, now=NOW) == Refusal(status=status, reason=reason)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"payload=%7Bnot-json", "application/x-www-form-urlencoded"),
        (b"payload=%5B1%5D", "application/x-www-form-urlencoded"),
        (b"a&&b", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
        (b"[" * 100_000, "application/json"),
    ],
    ids=["garbage-json", "json-array", "bad-payload", "payload-array", "bad-form", "empty", "deep-nesting"],
)
def test_malformed_bodies_are_refused_with_400(body: bytes, content_type: str) -> None:
    refusal = parse_payload(body, content_type)
    assert isinstance(refusal, Refusal) and refusal.status == 400


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"type": "url_verification", "challenge": "c"}', "application/json", {"type": "url_verification"}),
        (b"payload=%7B%22type%22%3A%22block_actions%22%7D", "application/x-www-form-urlencoded", {}),
        (b"command=%2Fparley&text=help", "application/x-www-form-urlencoded", {"command": "/parley"}),
    ],
)
def test_well_formed_bodies_parse_as_bolt_reads_them(body: bytes, content_type: str, expected: dict[str, str]) -> None:
    payload = parse_payload(body, content_type)
    assert isinstance(payload, dict) and expected.items() <= payload.items()


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"type": "event_callback"}, "event_callback without an event object"),
        ({"type": "event_callback", "event": "message"}, "event_callback without an event object"),
        ({"type": "event_callback", "event": {"user": "U1"}}, "event without a type"),
        ({"type": "event_callback", "event": {"type": "message"}, "team_id": 7}, "team_id is not a string"),
        ({"type": "event_callback", "event": {"type": "message"}, "team_id": "T1"}, None),
        ({"type": "url_verification", "challenge": "c"}, None),
    ],
)
def test_signed_payloads_slack_would_not_send_are_named(payload: dict[str, Any], problem: str | None) -> None:
    assert unexpected_shape(payload) == problem


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    assert declared_too_large({"content-length": str(50 * 1024 * 1024)})
    assert not declared_too_large({"content-length": "2048"})
    assert not declared_too_large({})


@pytest.mark.parametrize(
    "fields",
    [
        {"files": ["F1", "F2"]},
        {"files": "F1"},
        {"user": 7},
        {"text": {"rich": True}},
        {"subtype": "file_share", "files": [{"id": "F1", "size": "big"}]},
    ],
)
def test_messages_with_wrong_field_types_are_malformed(fields: dict[str, Any]) -> None:
    with pytest.raises(MalformedEvent):
        parse_message(event(**fields), team_id=TEAM, bot_user_id=BOT)


def test_a_reaction_whose_item_is_not_an_object_is_malformed() -> None:
    with pytest.raises(MalformedEvent):
        parse_reaction({"type": "reaction_added", "user": "U1", "item": "x", "item_user": BOT}, team_id=TEAM,
                       bot_user_id=BOT)
