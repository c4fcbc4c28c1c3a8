-- Discord: where each conversation lives, so reply chains, Parley's threads and reactions find it
-- again on any shard or instance. Ids only, no message text.

-- Messages of a conversation: those people sent Parley and those Parley sent back. A reply to
-- one of them continues its conversation; a reaction on one of Parley's finds the turn through
-- `reply_message_id` (the message the turn's delivery was recorded with).
CREATE TABLE discord_messages (
    platform text NOT NULL DEFAULT 'discord',
    workspace_id text NOT NULL,
    user_id text NOT NULL,
    channel_id text NOT NULL,
    message_id text NOT NULL,
    thread_id text NOT NULL,
    from_parley boolean NOT NULL,
    reply_message_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, message_id)
);
CREATE INDEX discord_messages_conversation ON discord_messages (workspace_id, thread_id) WHERE NOT from_parley;
CREATE INDEX discord_messages_user ON discord_messages (platform, workspace_id, user_id);
CREATE INDEX discord_messages_created ON discord_messages (created_at);

-- Threads Parley started; messages in them are answered without a mention. `conversation_id` is
-- the conversation that moved into the thread (the thread's own id for a new one).
CREATE TABLE discord_threads (
    platform text NOT NULL DEFAULT 'discord',
    workspace_id text NOT NULL,
    user_id text NOT NULL,
    thread_id text NOT NULL,
    parent_channel_id text NOT NULL,
    conversation_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, thread_id)
);
CREATE INDEX discord_threads_user ON discord_threads (platform, workspace_id, user_id);
