-- Admin API keys: `parley apikey create --admin`. Only they open /v1/admin/* and the /admin page;
-- an ordinary key gets 403 there. Authentication now also says whether the key is an admin's.

ALTER TABLE api_keys ADD COLUMN admin boolean NOT NULL DEFAULT false;

DROP FUNCTION parley_authenticate_key(text, bytea, text, integer, integer);
CREATE FUNCTION parley_authenticate_key(presented_key_id text, presented_hash bytea, address text,
                                        per_key integer, invalid_per_address integer)
    RETURNS TABLE (key_id text, platform text, workspace_id text, name text, created_at timestamptz,
                   last_used_at timestamptz, revoked_at timestamptz, admin boolean, wait_s double precision)
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
                                NULL::timestamptz, NULL::timestamptz, false, waiting;
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
                            found.last_used_at, found.revoked_at, found.admin,
                            parley_rate_take(ARRAY['api-key:' || found.key_id], ARRAY[per_key], 60);
    END
    $$;
REVOKE ALL ON FUNCTION parley_authenticate_key(text, bytea, text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION parley_authenticate_key(text, bytea, text, integer, integer) TO parley_app;
