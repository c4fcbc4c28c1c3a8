-- Large-scope HNSW indexes are now built denser (ef_construction 200 instead of pgvector's 64):
-- recall@10 of a 20,000-memory scope rises from 0.96 to 0.99 at the same ef_search
-- (benchmarks/memory_scale.py). Drop the indexes built before; the hourly maintenance task
-- rebuilds each scope's index, and the exact scan serves those scopes meanwhile.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT index_name FROM memory_scope_indexes LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I', r.index_name);
    END LOOP;
    DELETE FROM memory_scope_indexes;
END
$$;
