-- Two doors an attacker could walk through twice, or wider than meant.
--
-- Slack replays: a slash command or a button click is signed (HMAC of `v0:timestamp:body`) and accepted for five
-- minutes, so a request captured in transit could be sent again within them and run again (`/parley forget`,
-- `/parley settings set`, a feedback click). Events are answered once by the turn's own dedupe; commands and
-- interactions had none. Each one's signature is kept here until its window is surely over, across workers and
-- restarts: Slack signs every delivery afresh (a retry of its own carries a new timestamp, so a new signature),
-- and no one without the signing secret can make another signature for the same body. The table holds no tenant
-- data and has no grant: the app role claims a signature only through the SECURITY DEFINER function below, which
-- also deletes the claims whose window is over.
CREATE TABLE slack_requests_seen (
    signature text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX slack_requests_seen_expires ON slack_requests_seen (expires_at);
ALTER TABLE slack_requests_seen ENABLE ROW LEVEL SECURITY;

-- True the first time a signature is presented within `keep_s` seconds, false for a replay.
CREATE FUNCTION parley_first_slack_request(presented text, keep_s integer) RETURNS boolean
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
        DELETE FROM slack_requests_seen WHERE expires_at < now();
        WITH fresh AS (
            INSERT INTO slack_requests_seen (signature, expires_at)
            VALUES (presented, now() + make_interval(secs => keep_s))
            ON CONFLICT (signature) DO NOTHING
            RETURNING 1
        )
        SELECT EXISTS (SELECT 1 FROM fresh);
    $$;
REVOKE ALL ON FUNCTION parley_first_slack_request(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION parley_first_slack_request(text, integer) TO parley_app;

-- API keys bound to one person: `parley apikey create --user U`. Such a key acts only for that user_id
-- (403 for any other); NULL keeps a key workspace-wide, as every key made before this migration stays.
ALTER TABLE api_keys ADD COLUMN user_id text;

DROP FUNCTION parley_authenticate_key(text, bytea, text, integer, integer);
CREATE FUNCTION parley_authenticate_key(presented_key_id text, presented_hash bytea, address text,
                                        per_key integer, invalid_per_address integer)
    RETURNS TABLE (key_id text, platform text, workspace_id text, name text, created_at timestamptz,
                   last_used_at timestamptz, revoked_at timestamptz, admin boolean, user_id text,
                   wait_s double precision)
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
                                NULL::timestamptz, NULL::timestamptz, false, NULL::text, waiting;
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
                            found.last_used_at, found.revoked_at, found.admin, found.user_id,
                            parley_rate_take(ARRAY['api-key:' || found.key_id], ARRAY[per_key], 60);
    END
    $$;
REVOKE ALL ON FUNCTION parley_authenticate_key(text, bytea, text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION parley_authenticate_key(text, bytea, text, integer, integer) TO parley_app;
