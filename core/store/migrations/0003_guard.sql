-- Guard: one row per safety-rail activation (seed property 34): what fired, why, on what (masked).
--
-- `excerpt` is always the masked text (secrets and personal data replaced by tags), cut short.
-- `action` says what the rail did: 'blocked' the message or reply, 'masked' sensitive data in it,
-- or 'error' when the rail failed and the failure policy let the text through.

CREATE TABLE guard_events (
    id bigserial PRIMARY KEY,
    platform text NOT NULL,
    workspace_id text NOT NULL,
    user_id text NOT NULL,
    stage text NOT NULL CHECK (stage IN ('input', 'output')),
    rail text NOT NULL,
    action text NOT NULL CHECK (action IN ('blocked', 'masked', 'error')),
    reason text NOT NULL,
    excerpt text NOT NULL DEFAULT '',
    score real NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX guard_events_created ON guard_events (created_at);
CREATE INDEX guard_events_scope ON guard_events (platform, workspace_id, created_at);
CREATE INDEX guard_events_user ON guard_events (platform, workspace_id, user_id);
