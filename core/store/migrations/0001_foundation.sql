-- Foundation: turns, messages, usage, feedback, dedupe, settings overrides, response cache.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE workspace_settings (
    platform text NOT NULL,
    workspace_id text NOT NULL,
    key text NOT NULL,
    value jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, workspace_id, key)
);

CREATE TABLE processed_events (
    platform text NOT NULL,
    event_id text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, event_id)
);
CREATE INDEX processed_events_seen_at ON processed_events (seen_at);

CREATE TABLE turns (
    id bigserial PRIMARY KEY,
    platform text NOT NULL,
    workspace_id text NOT NULL,
    channel_id text NOT NULL,
    thread_id text NOT NULL,
    user_id text NOT NULL,
    event_id text,
    status text NOT NULL DEFAULT 'started',
    blocked boolean NOT NULL DEFAULT false,
    block_rail text,
    error text,
    model text,
    latency_ms real,
    input_tokens integer NOT NULL DEFAULT 0,
    output_tokens integer NOT NULL DEFAULT 0,
    cost_usd numeric(14, 8),
    trace_id text,
    steps jsonb NOT NULL DEFAULT '[]'::jsonb,
    platform_message_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX turns_user ON turns (platform, workspace_id, user_id, created_at);
CREATE INDEX turns_reply_message ON turns (platform, workspace_id, platform_message_id);

CREATE TABLE messages (
    id bigserial PRIMARY KEY,
    platform text NOT NULL,
    workspace_id text NOT NULL,
    channel_id text NOT NULL,
    thread_id text NOT NULL,
    user_id text NOT NULL,
    role text NOT NULL CHECK (role IN ('user', 'assistant')),
    content text NOT NULL,
    turn_id bigint REFERENCES turns (id) ON DELETE CASCADE,
    platform_message_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_thread ON messages (platform, workspace_id, channel_id, thread_id, id);
CREATE INDEX messages_user ON messages (platform, workspace_id, user_id, created_at);

CREATE TABLE usage (
    id bigserial PRIMARY KEY,
    turn_id bigint REFERENCES turns (id) ON DELETE CASCADE,
    platform text NOT NULL,
    workspace_id text NOT NULL,
    user_id text NOT NULL,
    model text NOT NULL,
    input_tokens integer NOT NULL,
    output_tokens integer NOT NULL,
    cost_usd numeric(14, 8),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_workspace ON usage (platform, workspace_id, created_at);

CREATE TABLE feedback (
    id bigserial PRIMARY KEY,
    platform text NOT NULL,
    workspace_id text NOT NULL,
    user_id text NOT NULL,
    turn_id bigint NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
    score smallint NOT NULL CHECK (score IN (-1, 1)),
    source text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform, workspace_id, user_id, turn_id)
);
CREATE INDEX feedback_created ON feedback (created_at);

CREATE TABLE response_cache (
    key text PRIMARY KEY,
    workspace_id text NOT NULL,
    response jsonb NOT NULL,
    expires_at timestamptz NOT NULL
);
