-- REST API: keys per workspace (stored hashed, shown once) and the sessions they own.
--
-- A key is `parley_<key_id>_<secret>`; `key_id` is public and indexed, only the SHA-256 of the
-- whole key is stored and compared in constant time. A session is an API conversation
-- (messages.thread_id = session_id, channel 'api'); it belongs to one workspace for good.

CREATE TABLE api_keys (
    id bigserial PRIMARY KEY,
    key_id text NOT NULL UNIQUE,
    key_hash bytea NOT NULL,
    platform text NOT NULL DEFAULT 'api',
    workspace_id text NOT NULL,
    name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX api_keys_workspace ON api_keys (platform, workspace_id);

CREATE TABLE api_sessions (
    session_id text PRIMARY KEY,
    platform text NOT NULL DEFAULT 'api',
    workspace_id text NOT NULL,
    user_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_sessions_workspace ON api_sessions (platform, workspace_id, user_id);
