-- Settings per channel on top of per workspace (the nearest wins: channel, workspace, environment), and
-- an audit log of every change an operator or a person makes: settings, limits, API keys, forgetting.
--
-- A workspace's own settings keep channel_id '' (one table, one vocabulary); a channel's carry its id.

ALTER TABLE workspace_settings ADD COLUMN channel_id text NOT NULL DEFAULT '';
ALTER TABLE workspace_settings DROP CONSTRAINT workspace_settings_pkey;
ALTER TABLE workspace_settings ADD PRIMARY KEY (platform, workspace_id, channel_id, key);

-- Append-only for the application: it may write and read entries of its tenant, never change or drop one.
CREATE TABLE audit_log (
    id bigserial,
    platform text NOT NULL,
    workspace_id text NOT NULL,
    actor text NOT NULL,
    door text NOT NULL CHECK (door IN ('cli', 'api', 'admin page', 'slack', 'discord', 'console', 'chat')),
    action text NOT NULL,
    target text NOT NULL DEFAULT '',
    old_value jsonb,
    new_value jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, workspace_id, id)  -- keys hold the distribution columns (docs/deployment.md)
);
CREATE INDEX audit_log_created ON audit_log (created_at);
CREATE INDEX audit_log_workspace ON audit_log (platform, workspace_id, created_at);

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_log_workspace ON audit_log TO parley_app
    USING (parley_workspace(platform, workspace_id)) WITH CHECK (parley_workspace(platform, workspace_id));
GRANT SELECT, INSERT ON audit_log TO parley_app;
GRANT USAGE, SELECT ON SEQUENCE audit_log_id_seq TO parley_app;
