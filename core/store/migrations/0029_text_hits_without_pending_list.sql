-- memory_text_hits (migration 0024) reads the GIN index of scope-prefixed lexemes. With GIN's default
-- fast update, new entries wait in the index's pending list (up to 4 MB) until a vacuum or a full list
-- moves them into the tree, and every search reads the whole pending list: after 20,000 memories written
-- anywhere in the table, a person's text hits took 7.3 ms instead of 1.1 ms (median of 30 queries,
-- docs/memory.md). A busy table is never long without such a list, and the insert threshold that makes
-- autovacuum flush it grows with the table (20 % of a million rows). Written through, each insert puts
-- its lexemes straight into the tree (20,000 inserts: 1.32 s against 1.24 s), and a search reads only
-- the entries of its lexemes. The list already there is flushed now (PERFORM: a migration prints no rows).
ALTER INDEX memories_scoped_lexemes SET (fastupdate = off);
DO $$
BEGIN
    PERFORM gin_clean_pending_list('memories_scoped_lexemes'::regclass);
END
$$;
