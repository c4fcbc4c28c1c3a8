-- API sessions are keyed by (workspace, id): an id one workspace chose is never another's to squat,
-- and a session of another workspace is indistinguishable from a missing one.
ALTER TABLE api_sessions DROP CONSTRAINT api_sessions_pkey;
ALTER TABLE api_sessions ADD PRIMARY KEY (platform, workspace_id, session_id);

-- Rate limits shared by every worker and instance: a sliding window per bucket ('user:slack/T1/U1',
-- 'workspace:slack/T1', 'api-key:<id>', 'address:<ip>'), the accepted hits of the last window kept as
-- an array. `parley_rate_take` checks several buckets at once, all or nothing (a person refused does
-- not use up the workspace's share), in one statement under row locks taken in bucket order.
-- It returns the seconds to wait (0: accepted and, with `record`, counted). `at` NULL means now.
CREATE TABLE rate_hits (
    bucket text PRIMARY KEY,
    hits timestamptz[] NOT NULL DEFAULT '{}'
);
ALTER TABLE rate_hits ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION parley_rate_take(buckets text[], limits integer[], window_s double precision,
                                 at timestamptz DEFAULT NULL, record boolean DEFAULT true)
    RETURNS double precision
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
    DECLARE
        moment timestamptz := coalesce(at, clock_timestamp());
        horizon timestamptz := coalesce(at, clock_timestamp()) - make_interval(secs => window_s);
        kept timestamptz[];
        wait double precision := 0;
        i integer;
    BEGIN
        IF cardinality(buckets) IS NULL THEN
            RETURN 0;
        END IF;
        INSERT INTO rate_hits (bucket) SELECT b FROM unnest(buckets) AS b ORDER BY b ON CONFLICT DO NOTHING;
        PERFORM 1 FROM rate_hits WHERE bucket = ANY (buckets) ORDER BY bucket FOR UPDATE;
        FOR i IN 1 .. cardinality(buckets) LOOP
            SELECT coalesce(array_agg(h ORDER BY h), '{}') INTO kept
            FROM rate_hits AS r, unnest(r.hits) AS h WHERE r.bucket = buckets[i] AND h > horizon;
            IF cardinality(kept) >= limits[i] THEN
                wait := greatest(wait, window_s - extract(epoch FROM moment - kept[cardinality(kept) - limits[i] + 1]));
            END IF;
            UPDATE rate_hits SET hits = kept WHERE bucket = buckets[i];
        END LOOP;
        IF wait = 0 AND record THEN
            UPDATE rate_hits SET hits = hits || moment WHERE bucket = ANY (buckets);
        END IF;
        RETURN wait;
    END
    $$;

-- An API key by its public id, before the workspace is known, and its rate limit, in one round trip.
-- An address with too many invalid keys in the last minute is refused before any lookup; an invalid key
-- counts against its address; a valid one against its own per-minute limit. The row comes back only
-- when the presented key's hash matches a live key (the hash never leaves); `last_used_at` is touched
-- at most once a minute. `wait_s` > 0 means: refused, retry after that many seconds.
CREATE FUNCTION parley_authenticate_key(presented_key_id text, presented_hash bytea, address text,
                                        per_key integer, invalid_per_address integer)
    RETURNS TABLE (key_id text, platform text, workspace_id text, name text, created_at timestamptz,
                   last_used_at timestamptz, revoked_at timestamptz, wait_s double precision)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
    DECLARE
        found api_keys%ROWTYPE;
        waiting double precision;
    BEGIN
        waiting := parley_rate_take(ARRAY['address:' || address], ARRAY[invalid_per_address], 60, NULL, false);
        IF waiting > 0 THEN
            RETURN QUERY SELECT NULL::text, NULL::text, NULL::text, NULL::text, NULL::timestamptz,
                                NULL::timestamptz, NULL::timestamptz, waiting;
            RETURN;
        END IF;
        SELECT * INTO found FROM api_keys AS k
        WHERE k.key_id = presented_key_id AND k.key_hash = presented_hash AND k.revoked_at IS NULL;
        IF found.id IS NULL THEN
            PERFORM parley_rate_take(ARRAY['address:' || address], ARRAY[invalid_per_address], 60);
            RETURN;
        END IF;
        IF found.last_used_at IS NULL OR found.last_used_at < now() - interval '1 minute' THEN
            UPDATE api_keys SET last_used_at = now() WHERE id = found.id;
        END IF;
        RETURN QUERY SELECT found.key_id, found.platform, found.workspace_id, found.name, found.created_at,
                            found.last_used_at, found.revoked_at,
                            parley_rate_take(ARRAY['api-key:' || found.key_id], ARRAY[per_key], 60);
    END
    $$;

REVOKE ALL ON FUNCTION parley_rate_take(text[], integer[], double precision, timestamptz, boolean),
    parley_authenticate_key(text, bytea, text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION parley_rate_take(text[], integer[], double precision, timestamptz, boolean),
    parley_authenticate_key(text, bytea, text, integer, integer) TO parley_app;
