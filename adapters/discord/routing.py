"""Whether Parley answers a Discord message, and which conversation it belongs to.

Pure functions over plain facts the client gathers from discord.py and Parley's own records:

- DMs are always answered; the DM channel is one conversation.
- In a guild, a message that mentions Parley is answered as a reply. A reply chain is one
  conversation, named by the id of its first message; a thread is one conversation, named by the
  thread's id (or by the reply chain it was moved out of).
- Without a mention, Parley answers replies to its own messages and anything said in a thread it
  started. Voice messages cannot mention anyone, so in a guild they are answered only there.
- In a channel whose settings answer without a mention (core.channel_settings.answers_unmentioned),
  every ordinary message is answered as if it mentioned Parley.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Reason = Literal["dm", "mention", "parley_thread", "reply_to_parley", "unmentioned"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ThreadFacts:
    """The thread a message was posted in."""

    thread_id: str
    started_by_parley: bool
    conversation_id: str | None = None
    """Set when Parley moved a reply chain into this thread: the chain's conversation goes on."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplyFacts:
    """The message a reply points to."""

    message_id: str
    to_parley: bool
    conversation_id: str | None = None
    """The conversation that message belongs to, when Parley knows it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageFacts:
    message_id: str
    channel_id: str
    is_dm: bool
    from_bot: bool
    """Bots (Parley included) are never answered: no loops between bots."""
    ordinary: bool
    """A default message or a reply (not a pin notice, thread-created notice, ...)."""
    mentions_parley: bool
    thread: ThreadFacts | None = None
    reply_to: ReplyFacts | None = None
    answers_unmentioned: bool = False
    """The channel's settings answer messages that do not mention Parley."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """Answer this message, in this conversation."""

    thread_id: str
    reason: Reason


def route(facts: MessageFacts) -> Target | None:
    """The conversation to answer in, or None when Parley stays silent."""
    if facts.from_bot or not facts.ordinary:
        return None
    if facts.is_dm:
        return Target(thread_id=facts.channel_id, reason="dm")
    reply = facts.reply_to
    if facts.thread is not None:
        conversation = facts.thread.conversation_id or facts.thread.thread_id
        if facts.thread.started_by_parley:
            return Target(thread_id=conversation, reason="parley_thread")
        if facts.mentions_parley:
            return Target(thread_id=conversation, reason="mention")
        if reply is not None and reply.to_parley:
            return Target(thread_id=conversation, reason="reply_to_parley")
        return Target(thread_id=conversation, reason="unmentioned") if facts.answers_unmentioned else None
    if reply is not None and reply.to_parley:
        return Target(thread_id=reply.conversation_id or reply.message_id, reason="reply_to_parley")
    if facts.mentions_parley or facts.answers_unmentioned:
        root = (reply.conversation_id or reply.message_id) if reply is not None else facts.message_id
        return Target(thread_id=root, reason="mention" if facts.mentions_parley else "unmentioned")
    return None


def moves_to_thread(*, enabled: bool, target: Target, in_thread: bool, user_messages: int, after: int) -> bool:
    """Whether to move this conversation into a new thread before answering.

    Only guild conversations outside threads move, once they reach `after` messages from people
    (this one included); `after=1` gives every new conversation its own thread.
    """
    return enabled and target.reason != "dm" and not in_thread and user_messages + 1 >= after


def thread_name(text: str, *, limit: int = 80) -> str:
    """A thread title from the message that starts it: its first line, cut at a word."""
    first = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    if not first:
        return "Conversation with Parley"
    if len(first) <= limit:
        return first
    cut = first[: limit - 1].rsplit(" ", 1)[0] or first[: limit - 1]
    return cut + "…"
