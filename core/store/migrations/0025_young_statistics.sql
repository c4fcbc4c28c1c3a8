-- Statistics for a young database (issue #22). Until a table has been analyzed the planner knows
-- nothing of its columns: every equality looks equally selective and each index scan is estimated at
-- one row, so the history read of a thread picked the messages primary key or messages_user and
-- filtered out every other thread's rows (hundreds to thousands read for two). Autovacuum analyzes a
-- table only after 50 changes plus 10 % and at most once a minute per database, so a new install, or a
-- table that grows fast while small, serves its first minutes on plans made without statistics.
--
-- `parley_analyze_grown()` analyzes every table of this schema that holds twice the rows it held when it
-- was last analyzed (at least 50): right after its first rows, then at each doubling. Serving instances
-- call it every few seconds (core/store/instance.py); a table past its first few doublings grows too
-- slowly to qualify again (and one that only churns, such as the rate windows, never does), so
-- autovacuum alone looks after a grown database. One caller at a time: another instance calling
-- meanwhile skips its round.
CREATE FUNCTION parley_analyze_grown() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
DECLARE
    grown regclass;
    analyzed integer := 0;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('parley_analyze_grown')) THEN
        RETURN 0;
    END IF;
    FOR grown IN
        SELECT c.oid::regclass FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
          AND pg_stat_get_live_tuples(c.oid) >= 2 * greatest(25, c.reltuples)
          AND pg_has_role(c.relowner, 'USAGE')
        ORDER BY c.relname
    LOOP
        EXECUTE format('ANALYZE %s', grown);
        analyzed := analyzed + 1;
    END LOOP;
    RETURN analyzed;
END
$$;

REVOKE ALL ON FUNCTION parley_analyze_grown() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION parley_analyze_grown() TO parley_app;
