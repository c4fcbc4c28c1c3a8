-- An API turn's key check and its session in one statement (issue #22, sixteenth stop). They were a
-- transaction of four round trips: BEGIN (naming the key gate's scope), parley_authenticate_key,
-- parley_open_session, COMMIT. Outside a transaction this call is a transaction of its own.
--
-- parley_authenticate_session: parley_authenticate_key (migration 0036's, unchanged: the address's invalid
--     keys and the key's own rate limit counted and refused as before, the hash compared in the database and
--     never returned, an unknown key id and a wrong secret alike: no row), then, only for a live key within
--     its limit, parley_open_session (0037's: in the key's workspace scope, row-level security on every row it
--     touches) for the person the request acts for. That person is adapters/api/deps.py `acting_for`'s: a
--     workspace-wide key acts for the user the request names, else for 'key-<key id>'; a key bound to one
--     person for them, when the request names no one else; a request naming anyone else opens nothing (its
--     session columns are NULL) and is refused by `acting_for` after this call has counted it.
--
-- The form is 0037's: SECURITY INVOKER, run as parley_app; it names no tenant of its own (the key's lookup
-- is SECURITY DEFINER and sees no tenant, the session's call names the key's workspace and puts the caller's
-- tenant back), so a caller inside a transaction keeps the scope it had. It fixes no parley.* setting in a
-- SET clause, so an owner that is not a superuser (managed Postgres) installs it.

CREATE FUNCTION parley_authenticate_session(
    presented_key_id text, presented_hash bytea, address text, per_key integer, invalid_per_address integer,
    wanted_session text, on_platform text, requested_user text
)
RETURNS TABLE (
    key_id text, platform text, workspace_id text, name text, created_at timestamptz, last_used_at timestamptz,
    revoked_at timestamptz, admin boolean, user_id text, wait_s float8,
    session_id text, session_user_id text, session_created_at timestamptz
)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET role = 'parley_app'
SET search_path = pg_catalog, public, pg_temp
AS $function$
DECLARE
    k record;
    acting text;
    opened_id text;
    opened_by text;
    opened_at timestamptz;
BEGIN
    SELECT * INTO k FROM public.parley_authenticate_key(presented_key_id, presented_hash, address, per_key,
                                                        invalid_per_address);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF k.key_id IS NOT NULL AND k.wait_s = 0 THEN
        acting := CASE WHEN k.user_id IS NULL THEN coalesce(requested_user, 'key-' || k.key_id)
                       WHEN requested_user IS NULL OR requested_user = k.user_id THEN k.user_id END;
        IF acting IS NOT NULL THEN
            SELECT s.session_id, s.user_id, s.created_at INTO opened_id, opened_by, opened_at
            FROM public.parley_open_session(wanted_session, on_platform, k.workspace_id, acting) AS s;
        END IF;
    END IF;
    RETURN QUERY SELECT k.key_id, k.platform, k.workspace_id, k.name, k.created_at, k.last_used_at, k.revoked_at,
                        k.admin, k.user_id, k.wait_s, opened_id, opened_by, opened_at;
END
$function$;

REVOKE ALL ON FUNCTION parley_authenticate_session(text, bytea, text, integer, integer, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION parley_authenticate_session(text, bytea, text, integer, integer, text, text, text)
    TO parley_app;
