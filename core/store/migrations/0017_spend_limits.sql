-- Spend limits: tokens or USD, per day or per month (UTC), for a person, a channel or a whole workspace.
-- A turn is checked against the limits that apply to it in one statement before the model is called;
-- usage is summed from `turns` (shared by every worker and instance). A turn whose cost is unknown
-- counts towards token limits only.

CREATE TABLE spend_limits (
    id bigserial,
    platform text NOT NULL,
    workspace_id text NOT NULL,
    scope text NOT NULL CHECK (scope IN ('person', 'channel', 'workspace')),
    subject text NOT NULL DEFAULT '',
    metric text NOT NULL CHECK (metric IN ('tokens', 'usd')),
    period text NOT NULL CHECK (period IN ('day', 'month')),
    amount numeric(18, 6) NOT NULL CHECK (amount >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, workspace_id, id),  -- keys hold the distribution columns (docs/deployment.md)
    UNIQUE (platform, workspace_id, scope, subject, metric, period),
    CHECK ((scope = 'workspace') = (subject = ''))
);

-- The 80 % warning goes to a person once per limit and period.
CREATE TABLE spend_warnings (
    platform text NOT NULL,
    workspace_id text NOT NULL,
    user_id text NOT NULL,
    limit_id bigint NOT NULL,
    period_start timestamptz NOT NULL,
    PRIMARY KEY (platform, workspace_id, user_id, limit_id, period_start),
    FOREIGN KEY (platform, workspace_id, limit_id) REFERENCES spend_limits (platform, workspace_id, id) ON DELETE CASCADE
);

-- The sums behind channel and workspace limits (a person's use the existing turns_user index).
CREATE INDEX turns_channel_created ON turns (platform, workspace_id, channel_id, created_at);
CREATE INDEX turns_workspace_created ON turns (platform, workspace_id, created_at);

ALTER TABLE spend_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE spend_warnings ENABLE ROW LEVEL SECURITY;
CREATE POLICY spend_limits_workspace ON spend_limits TO parley_app
    USING (parley_workspace(platform, workspace_id)) WITH CHECK (parley_workspace(platform, workspace_id));
CREATE POLICY spend_warnings_scope ON spend_warnings TO parley_app
    USING (parley_scope(platform, workspace_id, user_id)) WITH CHECK (parley_scope(platform, workspace_id, user_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON spend_limits TO parley_app;
GRANT SELECT, INSERT, DELETE ON spend_warnings TO parley_app;
GRANT USAGE, SELECT ON SEQUENCE spend_limits_id_seq TO parley_app;
