-- Exactly-once replies across crashes.
--
-- Every serving process holds one session-level advisory lock, (PARLEY_LOCK_CLASS, its instance
-- number), on a dedicated connection for its whole life (core/store/instance.py). Postgres drops that
-- lock the moment the process or its connection dies, so `parley_instance_alive(n)` tells, from any
-- instance, whether instance n still runs. A claim records its owner; a retry of an unfinished event
-- whose owner is gone takes the claim over. A turn left `started` by a dead instance is closed as an
-- error `interrupted` (by `parley_close_orphaned_turns`, run by every instance on start and then
-- every minute).

-- Event ids are keyed per workspace: an API client's idempotency key cannot collide with another's.
ALTER TABLE processed_events ADD COLUMN workspace_id text NOT NULL DEFAULT '';
ALTER TABLE processed_events ADD COLUMN owner integer;
ALTER TABLE processed_events ADD COLUMN finished_at timestamptz;
ALTER TABLE processed_events DROP CONSTRAINT processed_events_pkey;
ALTER TABLE processed_events ADD PRIMARY KEY (platform, workspace_id, event_id);

ALTER TABLE turns ADD COLUMN instance integer;
CREATE INDEX turns_event ON turns (platform, workspace_id, event_id);
CREATE INDEX turns_unfinished ON turns (instance) WHERE status = 'started';

-- Instance numbers: positive int4, the second key of the two-key advisory lock.
CREATE SEQUENCE parley_instances AS integer MINVALUE 1 CYCLE;

-- 1885434476 = 'parl' as a big-endian int4: the first key of every instance lock.
CREATE FUNCTION parley_instance_alive(instance integer) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
        SELECT EXISTS (
            SELECT 1 FROM pg_locks
            WHERE locktype = 'advisory' AND classid = 1885434476::oid AND objid = instance::oid
              AND objsubid = 2 AND granted
        )
    $$;

-- Runs before any tenant is known and across tenants, so it is a narrow SECURITY DEFINER function
-- (owned by the migrating owner) rather than a grant: it can only close turns whose process is gone.
CREATE FUNCTION parley_close_orphaned_turns() RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
        WITH closed AS (
            UPDATE turns SET status = 'error', error = 'interrupted'
            WHERE status = 'started' AND instance IS NOT NULL AND NOT parley_instance_alive(instance)
            RETURNING 1
        )
        SELECT count(*)::integer FROM closed
    $$;
REVOKE ALL ON FUNCTION parley_close_orphaned_turns() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION parley_close_orphaned_turns() TO parley_app;
GRANT USAGE ON SEQUENCE parley_instances TO parley_app;
