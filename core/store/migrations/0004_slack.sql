-- Slack: OAuth installations and state, and the messages Parley posted (thread membership, reactions).

-- One row per installation (history kept; the newest wins), as Bolt's installation store reads them.
CREATE TABLE slack_installations (
    id bigserial PRIMARY KEY,
    client_id text NOT NULL,
    enterprise_id text NOT NULL DEFAULT '',
    team_id text NOT NULL DEFAULT '',
    user_id text NOT NULL,
    is_enterprise_install boolean NOT NULL DEFAULT false,
    data jsonb NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX slack_installations_team ON slack_installations (client_id, enterprise_id, team_id, installed_at DESC);
CREATE INDEX slack_installations_user
    ON slack_installations (client_id, enterprise_id, team_id, user_id, installed_at DESC);

-- The bot token of each workspace (or org); updated on reinstall and token rotation.
CREATE TABLE slack_bots (
    id bigserial PRIMARY KEY,
    client_id text NOT NULL,
    enterprise_id text NOT NULL DEFAULT '',
    team_id text NOT NULL DEFAULT '',
    is_enterprise_install boolean NOT NULL DEFAULT false,
    data jsonb NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX slack_bots_team ON slack_bots (client_id, enterprise_id, team_id, installed_at DESC);

-- OAuth `state` values: issued on /slack/install, consumed once on /slack/oauth_redirect.
CREATE TABLE slack_oauth_states (
    state text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX slack_oauth_states_expiry ON slack_oauth_states (expires_at);

-- Every message Parley posted: a reaction on any chunk of a reply finds the reply's first message
-- (the platform message id recorded on the turn), and a thread with a row here is one Parley is in.
CREATE TABLE slack_messages (
    platform text NOT NULL DEFAULT 'slack',
    workspace_id text NOT NULL,
    channel_id text NOT NULL,
    ts text NOT NULL,
    thread_ts text,
    reply_message_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, channel_id, ts)
);
CREATE INDEX slack_messages_thread ON slack_messages (workspace_id, channel_id, thread_ts);
CREATE INDEX slack_messages_created ON slack_messages (created_at);
