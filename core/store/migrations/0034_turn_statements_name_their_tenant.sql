-- Three statements of every turn that name their tenant themselves (issue #22, ninth stop).
--
-- A statement run through core.store.tenancy's `scoped` costs three: the BEGIN that names the tenant,
-- the statement, the COMMIT. Each of these functions is one statement that does what that scope did,
-- exactly as migration 0030's memory_recall does: it is SECURITY INVOKER, its SET clauses make it run
-- as parley_app (so row-level security applies to every row it touches) and restore every setting when
-- it returns, and it names the tenant from its own arguments, which are also what its statements filter
-- on. Outside a transaction the call is a transaction of its own (no BEGIN, no COMMIT); inside one (a
-- turn's one_transaction block) the caller keeps the tenant it had.
--
-- * parley_claim_turn: a turn's claim (core/turns.py), in its workspace's scope: the event claimed (or
--   taken over from a dead instance, closing its turn as interrupted), a hit from each rate budget, the
--   settings of the channel and its workspace, how many spend limits apply, and the last messages of the
--   turn's thread, which the context read took in a statement (and a tenant switch) of its own. Spend
--   limits are no longer locked here: a statement that is its own transaction holds no lock after it, so
--   a turn that has limits locks them and checks them in a transaction of its own (core/limits.py).
-- * parley_open_session: an API session opened or found (core/sessions.py), in its workspace's scope;
--   inside the key check's transaction it needs no statement to switch the tenant.
-- * parley_record_delivery_messages: the platform messages that carried a reply (core/deliveries.py), in
--   the person's scope.

-- Edited after release, for a fresh install by an owner that is not a superuser (managed Postgres): a SET
-- parley.* clause needs a superuser, or GRANT SET on the setting, which only a superuser gives. So these
-- definitions have none; migration 0037's, which replace them, name the tenant and restore the caller's in
-- their bodies.
CREATE FUNCTION parley_claim_turn(
    platform text, workspace_id text, event_id text, owner integer, buckets text[], rates integer[],
    window_s float8, channel_id text, user_id text, thread_id text, history integer
)
RETURNS TABLE (
    claimed boolean, wait_s float8, channels text[], keys text[], vals text[], limits bigint,
    message_ids bigint[], message_roles text[], message_contents text[]
)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET role = 'parley_app'
SET search_path = pg_catalog, public, pg_temp
AS $function$
#variable_conflict use_column
BEGIN
    PERFORM set_config('parley.platform', $1, true), set_config('parley.workspace_id', $2, true);
    RETURN QUERY
WITH claim AS (
    INSERT INTO processed_events AS e (platform, workspace_id, event_id, owner) VALUES ($1, $2, $3, $4)
    ON CONFLICT (platform, workspace_id, event_id) DO UPDATE SET owner = EXCLUDED.owner, seen_at = now()
    WHERE e.finished_at IS NULL AND e.owner IS NOT NULL AND EXCLUDED.owner IS NOT NULL
      AND e.owner <> EXCLUDED.owner AND NOT parley_instance_alive(e.owner)
    RETURNING xmax <> 0 AS took_over
),
interrupted AS (
    UPDATE turns t SET status = 'error', error = 'interrupted'
    WHERE t.platform = $1 AND t.workspace_id = $2 AND t.event_id = $3 AND t.status = 'started'
      AND EXISTS (SELECT 1 FROM claim WHERE took_over)
),
claimed AS (SELECT count(*) > 0 AS claimed FROM claim),
settings AS (
    SELECT array_agg(s.channel_id) AS channels, array_agg(s.key) AS keys, array_agg(s.value::text) AS vals
    FROM workspace_settings s WHERE s.platform = $1 AND s.workspace_id = $2 AND s.channel_id IN ('', $8)
),
recent AS (
    SELECT array_agg(r.id ORDER BY r.id) AS ids, array_agg(r.role ORDER BY r.id) AS roles,
           array_agg(r.content ORDER BY r.id) AS contents
    FROM (SELECT m.id, m.role, m.content FROM messages m
          WHERE m.platform = $1 AND m.workspace_id = $2 AND m.channel_id = $8 AND m.thread_id = $10
          ORDER BY m.id DESC LIMIT $11) r
)
SELECT c.claimed,
       CASE WHEN c.claimed AND cardinality($5) > 0 THEN parley_rate_take($5, $6, $7) ELSE 0 END,
       s.channels, s.keys, s.vals,
       (SELECT count(*) FROM spend_limits l
        WHERE l.platform = $1 AND l.workspace_id = $2
          AND (l.scope = 'workspace' OR (l.scope = 'channel' AND l.subject = $8)
               OR (l.scope = 'person' AND l.subject = $9))),
       h.ids, h.roles, h.contents
FROM claimed c, settings s, recent h;
END
$function$;

CREATE FUNCTION parley_open_session(wanted_session text, on_platform text, in_workspace text, by_user text)
RETURNS TABLE (session_id text, workspace_id text, user_id text, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET role = 'parley_app'
SET search_path = pg_catalog, public, pg_temp
AS $function$
#variable_conflict use_column
BEGIN
    PERFORM set_config('parley.platform', $2, true), set_config('parley.workspace_id', $3, true);
    RETURN QUERY
WITH added AS (
    INSERT INTO api_sessions (session_id, platform, workspace_id, user_id) VALUES ($1, $2, $3, $4)
    ON CONFLICT (platform, workspace_id, session_id) DO NOTHING
    RETURNING session_id, workspace_id, user_id, created_at
)
SELECT a.session_id, a.workspace_id, a.user_id, a.created_at FROM added a
UNION ALL
SELECT s.session_id, s.workspace_id, s.user_id, s.created_at FROM api_sessions s
WHERE s.platform = $2 AND s.workspace_id = $3 AND s.session_id = $1
LIMIT 1;
END
$function$;

CREATE FUNCTION parley_record_delivery_messages(
    platform text, workspace_id text, user_id text, channel_id text, thread_id text, turn_id bigint,
    message_ids text[]
)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET role = 'parley_app'
SET search_path = pg_catalog, public, pg_temp
AS $function$
#variable_conflict use_column
BEGIN
    PERFORM set_config('parley.platform', $1, true), set_config('parley.workspace_id', $2, true),
            set_config('parley.user_id', $3, true);
    INSERT INTO deliveries (platform, workspace_id, message_id, user_id, channel_id, thread_id, turn_id, position)
    SELECT $1, $2, m.id, $3, $4, $5, $6, m.position - 1
    FROM unnest($7) WITH ORDINALITY AS m (id, position)
    ON CONFLICT DO NOTHING;
END
$function$;

REVOKE ALL ON FUNCTION parley_claim_turn(text, text, text, integer, text[], integer[], float8, text, text, text,
                                         integer),
    parley_open_session(text, text, text, text),
    parley_record_delivery_messages(text, text, text, text, text, bigint, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION parley_claim_turn(text, text, text, integer, text[], integer[], float8, text, text, text,
                                            integer),
    parley_open_session(text, text, text, text),
    parley_record_delivery_messages(text, text, text, text, text, bigint, text[]) TO parley_app;
