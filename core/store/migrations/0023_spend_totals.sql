-- Spend limits without re-summing a month on every turn, and without the race of concurrent turns.
--
-- spend_totals: the running use per day of every person, channel and workspace a limit names, kept by the
-- turn's own finishing statement; a monthly limit sums at most 31 rows. spend_reservations: the turns let
-- through and not yet finished. The check (in the claim's transaction, after locking the limits that apply)
-- counts each one at the subject's average use per turn, so N turns arriving together at a limit cannot all
-- pass because none of them has finished yet. A reservation is released with its turn's usage, in the same
-- statement; one left by a crashed process stops counting after the turn timeout.

CREATE TABLE spend_totals (
    platform text NOT NULL,
    workspace_id text NOT NULL,
    scope text NOT NULL CHECK (scope IN ('person', 'channel', 'workspace')),
    subject text NOT NULL DEFAULT '',
    day date NOT NULL,
    tokens bigint NOT NULL DEFAULT 0,
    usd numeric(18, 6) NOT NULL DEFAULT 0,
    turns integer NOT NULL DEFAULT 0,
    priced_turns integer NOT NULL DEFAULT 0,
    PRIMARY KEY (platform, workspace_id, scope, subject, day)
);

CREATE TABLE spend_reservations (
    platform text NOT NULL,
    workspace_id text NOT NULL,
    event_id text NOT NULL,
    user_id text NOT NULL,
    channel_id text NOT NULL,
    reserved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, workspace_id, event_id)
);

-- The use so far this month of every subject a limit already names.
INSERT INTO spend_totals (platform, workspace_id, scope, subject, day, tokens, usd, turns, priced_turns)
SELECT l.platform, l.workspace_id, l.scope, l.subject, (t.created_at AT TIME ZONE 'UTC')::date,
       sum(t.input_tokens + t.output_tokens), coalesce(sum(t.cost_usd), 0),
       count(*) FILTER (WHERE t.input_tokens + t.output_tokens > 0), count(t.cost_usd)
FROM (SELECT DISTINCT platform, workspace_id, scope, subject FROM spend_limits) l
JOIN turns t ON t.platform = l.platform AND t.workspace_id = l.workspace_id
    AND (l.scope = 'workspace' OR (l.scope = 'channel' AND t.channel_id = l.subject)
         OR (l.scope = 'person' AND t.user_id = l.subject))
WHERE t.created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
GROUP BY 1, 2, 3, 4, 5;

-- A turn's statements run in a person's scope and must see the workspace's totals and other people's
-- turns in flight: the whole workspace, as for spend_limits.
ALTER TABLE spend_totals ENABLE ROW LEVEL SECURITY;
ALTER TABLE spend_reservations ENABLE ROW LEVEL SECURITY;
CREATE POLICY spend_totals_workspace ON spend_totals TO parley_app
    USING (parley_workspace(platform, workspace_id)) WITH CHECK (parley_workspace(platform, workspace_id));
CREATE POLICY spend_reservations_workspace ON spend_reservations TO parley_app
    USING (parley_workspace(platform, workspace_id)) WITH CHECK (parley_workspace(platform, workspace_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON spend_totals TO parley_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON spend_reservations TO parley_app;
