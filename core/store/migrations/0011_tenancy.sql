-- Row-level security on every table, and the application role's grants table by table.
--
-- `parley serve` connects as the non-superuser role `parley_app` (see core/store/roles.py); the owner
-- (who runs the migrations and the operator commands) bypasses the policies. The app role sees a row
-- only inside a tenant scope (core/store/tenancy.py): transaction-local settings `parley.platform`,
-- `parley.workspace_id` and, for a person's scope, `parley.user_id`. With no tenant set it reads,
-- changes and deletes nothing. Lookups that must happen before the tenant is known (an API key by
-- its id (migration 0012), an OAuth state, the delivery of a finished turn) go through the narrow SECURITY DEFINER
-- functions at the end, never through a blanket bypass.

-- A workspace's scope: both keys set and equal to the row's.
CREATE FUNCTION parley_workspace(row_platform text, row_workspace text) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
        SELECT row_workspace <> ''
           AND row_platform = current_setting('parley.platform', true)
           AND row_workspace = current_setting('parley.workspace_id', true)
    $$;

-- A workspace's scope sees all of its rows; a person's scope (user set too) only that person's.
CREATE FUNCTION parley_scope(row_platform text, row_workspace text, row_user text) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
        SELECT parley_workspace(row_platform, row_workspace)
           AND coalesce(nullif(current_setting('parley.user_id', true), ''), row_user) = row_user
    $$;

-- Start from nothing: no default grants, no grant on yoyo's bookkeeping or the eval history.
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, DELETE ON TABLES FROM parley_app;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM parley_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM parley_app;

-- The response cache is keyed per workspace, so one workspace's entry can never answer another.
DELETE FROM response_cache;
ALTER TABLE response_cache ADD COLUMN platform text NOT NULL DEFAULT '';
ALTER TABLE response_cache DROP CONSTRAINT response_cache_pkey;
ALTER TABLE response_cache ADD PRIMARY KEY (platform, workspace_id, key);

-- Per-person tables: migration 0002's policies (memories, profiles, scope indexes) stay; the rest move
-- to `parley_scope`, which a person's scope narrows to that person.
DROP POLICY messages_person ON messages;
DROP POLICY turns_person ON turns;
DROP POLICY usage_person ON usage;
DROP POLICY feedback_person ON feedback;
DROP POLICY turn_scores_person ON turn_scores;

GRANT SELECT, INSERT, UPDATE, DELETE ON memories, profiles, memory_scope_indexes TO parley_app;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON turns, messages, usage, feedback, turn_scores, guard_events, discord_messages, discord_threads, api_sessions
    TO parley_app;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON workspace_settings, processed_events, response_cache, slack_messages, api_keys
    TO parley_app;
GRANT SELECT, INSERT, DELETE ON slack_installations, slack_bots TO parley_app;
GRANT USAGE, SELECT ON SEQUENCE
    memories_id_seq, turns_id_seq, messages_id_seq, usage_id_seq, feedback_id_seq, turn_scores_id_seq,
    guard_events_id_seq, api_keys_id_seq, slack_installations_id_seq, slack_bots_id_seq, parley_instances
    TO parley_app;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['turns', 'messages', 'usage', 'feedback', 'turn_scores', 'guard_events',
                             'discord_messages', 'discord_threads', 'api_sessions'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY %I ON %I TO parley_app USING (parley_scope(platform, workspace_id, user_id))'
            ' WITH CHECK (parley_scope(platform, workspace_id, user_id))', t || '_scope', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['workspace_settings', 'processed_events', 'response_cache', 'slack_messages',
                             'api_keys'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY %I ON %I TO parley_app USING (parley_workspace(platform, workspace_id))'
            ' WITH CHECK (parley_workspace(platform, workspace_id))', t || '_workspace', t);
    END LOOP;
    -- Slack keys an org-wide install by its enterprise (team ''): the scope is the team or the org.
    FOREACH t IN ARRAY ARRAY['slack_installations', 'slack_bots'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY %I ON %I TO parley_app'
            ' USING (parley_workspace(''slack'', CASE WHEN team_id = '''' THEN enterprise_id ELSE team_id END))'
            ' WITH CHECK (parley_workspace(''slack'', CASE WHEN team_id = '''' THEN enterprise_id ELSE team_id END))',
            t || '_workspace', t);
    END LOOP;
END
$$;
-- No grant, and RLS on as a second wall: OAuth states (functions below), eval history (operators only).
ALTER TABLE slack_oauth_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE eval_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE eval_metric_results ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION parley_issue_oauth_state(new_state text, ttl interval) RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
        DELETE FROM slack_oauth_states WHERE expires_at < now();
        INSERT INTO slack_oauth_states (state, expires_at) VALUES (new_state, now() + ttl);
    $$;

CREATE FUNCTION parley_consume_oauth_state(presented text) RETURNS boolean
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
        WITH gone AS (DELETE FROM slack_oauth_states WHERE state = presented AND expires_at >= now() RETURNING 1)
        SELECT EXISTS (SELECT 1 FROM gone)
    $$;

-- The platform message that carried a finished turn's reply (adapters know the turn, not its scope).
-- It only fills an empty slot: a delivery already recorded is never rewritten.
CREATE FUNCTION parley_record_delivery(delivered_turn bigint, message_id text) RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
        WITH turn AS (
            UPDATE turns SET platform_message_id = message_id
            WHERE id = delivered_turn AND platform_message_id IS NULL AND status <> 'started'
            RETURNING id
        )
        UPDATE messages SET platform_message_id = message_id
        WHERE turn_id IN (SELECT id FROM turn) AND role = 'assistant';
    $$;

REVOKE ALL ON FUNCTION parley_issue_oauth_state(text, interval),
    parley_consume_oauth_state(text), parley_record_delivery(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION parley_issue_oauth_state(text, interval),
    parley_consume_oauth_state(text), parley_record_delivery(bigint, text) TO parley_app;
GRANT USAGE ON SCHEMA public TO parley_app;
