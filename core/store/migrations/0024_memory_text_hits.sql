-- The text route of a large scope's search through the GIN index. Under row-level security Postgres
-- only uses an index condition whose operator is leakproof, and `tsv @@ tsquery` is not, so as
-- parley_app the words of a query were matched by reading every memory of the scope (a 20,000-memory
-- person: 4x the time of the rest of the search). This function runs as the table's owner, which the
-- policy does not bind, and applies the policy's own scope (the same `parley.*` settings), so it
-- returns exactly the rows the caller could read, found through the GIN index and the scope B-tree.
CREATE FUNCTION memory_text_hits(q tsquery) RETURNS TABLE (id bigint, tsv tsvector)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
    SELECT m.id, m.tsv FROM public.memories m
    WHERE m.platform = current_setting('parley.platform', true)
      AND m.workspace_id = current_setting('parley.workspace_id', true)
      AND m.user_id = current_setting('parley.user_id', true)
      AND m.tsv @@ q
$$;
-- Owned by the role that owns `memories` (migration 0027, which runs after this one on a fresh database and
-- creates the role the same way if it is missing).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'parley_maintenance') THEN
        CREATE ROLE parley_maintenance NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;
GRANT parley_maintenance TO CURRENT_USER;
ALTER FUNCTION memory_text_hits(tsquery) OWNER TO parley_maintenance;
REVOKE ALL ON FUNCTION memory_text_hits(tsquery) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memory_text_hits(tsquery) TO parley_app;
