-- Recall of a large scope without reading it whole (core/memory/search.py, benchmarks/memory_scale.py).
--
-- memory_scope_stats: each person's number of memories and the sum of their full-text lengths, the n and
-- average length BM25 needs, kept by statement-level triggers on memories instead of counting a scope on
-- every query (13 ms for 20,000 memories). The triggers run as their owner, so the app role's writes,
-- the maintenance role's retention deletes and the owner's bulk loads all keep it; a person's row goes
-- when their last memory does (forgetting leaves nothing behind).
--
-- memory_text_hits: a person's memories with any of a query's lexemes. Under row-level security Postgres
-- only uses an index for leakproof operators, and `@@` is not one: the text route read every row of the
-- scope (20,000 heap rows, 100 ms) instead of the GIN index. The function runs as the table's owner,
-- outside the policies, and applies the policy's own predicate itself, from the same settings
-- (`parley.platform`, `parley.workspace_id`, `parley.user_id`): it returns exactly the rows the policy
-- lets the caller see, no more. Only parley_app may call it.

CREATE TABLE memory_scope_stats (
    platform text NOT NULL,
    workspace_id text NOT NULL,
    user_id text NOT NULL,
    memories bigint NOT NULL,
    text_length bigint NOT NULL,
    PRIMARY KEY (platform, workspace_id, user_id)
);

INSERT INTO memory_scope_stats (platform, workspace_id, user_id, memories, text_length)
SELECT platform, workspace_id, user_id, count(*), sum(length(tsv))
FROM memories GROUP BY platform, workspace_id, user_id;

-- One function for the three events: each branch reads only the transition tables its event has.
-- Changes are applied per scope in key order, so concurrent writers lock rows in the same order.
CREATE FUNCTION memory_scope_stats_keep() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO memory_scope_stats AS s (platform, workspace_id, user_id, memories, text_length)
        SELECT platform, workspace_id, user_id, count(*), sum(length(tsv)) FROM new_rows
        GROUP BY platform, workspace_id, user_id ORDER BY platform, workspace_id, user_id
        ON CONFLICT (platform, workspace_id, user_id) DO UPDATE
            SET memories = s.memories + excluded.memories, text_length = s.text_length + excluded.text_length;
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        INSERT INTO memory_scope_stats AS s (platform, workspace_id, user_id, memories, text_length)
        SELECT platform, workspace_id, user_id, -count(*), -sum(length(tsv)) FROM old_rows
        GROUP BY platform, workspace_id, user_id ORDER BY platform, workspace_id, user_id
        ON CONFLICT (platform, workspace_id, user_id) DO UPDATE
            SET memories = s.memories + excluded.memories, text_length = s.text_length + excluded.text_length;
    ELSE
        -- an UPDATE: re-embedding changes neither scope nor text, and then writes nothing
        INSERT INTO memory_scope_stats AS s (platform, workspace_id, user_id, memories, text_length)
        SELECT platform, workspace_id, user_id, sum(n), sum(len)
        FROM (SELECT platform, workspace_id, user_id, 1 AS n, length(tsv) AS len FROM new_rows
              UNION ALL
              SELECT platform, workspace_id, user_id, -1, -length(tsv) FROM old_rows) c
        GROUP BY platform, workspace_id, user_id HAVING sum(n) <> 0 OR sum(len) <> 0
        ORDER BY platform, workspace_id, user_id
        ON CONFLICT (platform, workspace_id, user_id) DO UPDATE
            SET memories = s.memories + excluded.memories, text_length = s.text_length + excluded.text_length;
    END IF;
    DELETE FROM memory_scope_stats WHERE memories <= 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER memory_scope_stats_insert AFTER INSERT ON memories
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_scope_stats_keep();
CREATE TRIGGER memory_scope_stats_delete AFTER DELETE ON memories
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_scope_stats_keep();
CREATE TRIGGER memory_scope_stats_update AFTER UPDATE ON memories
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_scope_stats_keep();

CREATE FUNCTION memory_scope_stats_clear() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    DELETE FROM memory_scope_stats;
    RETURN NULL;
END
$$;
CREATE TRIGGER memory_scope_stats_truncate AFTER TRUNCATE ON memories
    FOR EACH STATEMENT EXECUTE FUNCTION memory_scope_stats_clear();

-- Each lexeme of a memory prefixed with its scope: one GIN index then holds an inverted index per person,
-- and a query's lexemes find only that person's rows (407 for a 20,000-memory scope) instead of every
-- row of the table with the word (20,604) intersected with the scope's B-tree (20,000). It replaces the
-- plain GIN index on tsv, which row-level security kept every app query from using.
CREATE FUNCTION memory_scoped_lexemes(platform text, workspace_id text, user_id text, lexemes text[])
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY(
    SELECT p.prefix || l
    FROM (SELECT left(pg_catalog.md5(platform || chr(31) || workspace_id || chr(31) || user_id), 16) || ':'
              AS prefix) p,
         pg_catalog.unnest(lexemes) l
);
DROP INDEX memories_tsv;
CREATE INDEX memories_scoped_lexemes ON memories
    USING gin (memory_scoped_lexemes(platform, workspace_id, user_id, tsvector_to_array(tsv)));

-- The scope's own predicate is applied after the index (a prefix could collide; the row's keys cannot),
-- and only then: planned together, the scope's B-tree would be intersected with the index for nothing.
CREATE FUNCTION memory_text_hits(lexemes text[]) RETURNS TABLE (id bigint, tsv tsvector)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH hit AS MATERIALIZED (
        SELECT m.id, m.platform, m.workspace_id, m.user_id, m.tsv FROM public.memories m
        WHERE public.memory_scoped_lexemes(m.platform, m.workspace_id, m.user_id, tsvector_to_array(m.tsv))
              && public.memory_scoped_lexemes(current_setting('parley.platform', true),
                                              current_setting('parley.workspace_id', true),
                                              current_setting('parley.user_id', true), lexemes)
    )
    SELECT id, tsv FROM hit
    WHERE platform = current_setting('parley.platform', true)
      AND workspace_id = current_setting('parley.workspace_id', true)
      AND user_id = current_setting('parley.user_id', true)
$$;
REVOKE ALL ON FUNCTION memory_text_hits(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memory_text_hits(text[]) TO parley_app;
REVOKE ALL ON FUNCTION memory_scope_stats_keep(), memory_scope_stats_clear() FROM PUBLIC;

ALTER TABLE memory_scope_stats ENABLE ROW LEVEL SECURITY;
CREATE POLICY memory_scope_stats_person ON memory_scope_stats TO parley_app
    USING (platform = current_setting('parley.platform', true)
           AND workspace_id = current_setting('parley.workspace_id', true)
           AND user_id = current_setting('parley.user_id', true));
GRANT SELECT ON memory_scope_stats TO parley_app;
