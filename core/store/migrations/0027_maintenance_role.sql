-- The memory maintenance of a serving process (retention deletes, per-person HNSW index builds, the
-- re-embed after a model change) logs in as `parley_maintenance`, never as the owner: no superuser
-- connection stays open while serving (core/store/roles.py makes its login, as for `parley_app`).
--
-- Building an index (CREATE INDEX CONCURRENTLY, which no function may run) and ANALYZE need the table's
-- owner and CREATE on its schema, so the role owns the two tables it keeps, and nothing else: it is no
-- superuser, has no BYPASSRLS (creating such a role needs one; managed owners often lack it) and no grant
-- on any other table. As their owner it is outside their row-level-security policies, which bind
-- `parley_app`. CREATE on the schema also lets it create other objects there: the maintenance code creates
-- only indexes, and the role logs in only from serving processes.
-- The migrating owner is made a member, so later migrations and the operator commands keep owning
-- them (PostgreSQL 16 gives a role's creator admin over it, enough to grant it to itself).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'parley_maintenance') THEN
        CREATE ROLE parley_maintenance NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;
GRANT parley_maintenance TO CURRENT_USER;
GRANT USAGE, CREATE ON SCHEMA public TO parley_maintenance;
ALTER TABLE memories OWNER TO parley_maintenance;
ALTER TABLE memory_scope_indexes OWNER TO parley_maintenance;
