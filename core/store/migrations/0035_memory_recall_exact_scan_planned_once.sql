-- An ordinary person's recall is planned once per connection, whatever the number of partial indexes on
-- memories (core/memory/search.py, docs/memory.md "Tenth round").
--
-- The exact scan (everyone without a scope index of their own: almost everyone) was dynamic SQL, planned on
-- every call. Planning opens every index of each table it names and tests each partial index's predicate
-- against the query's quals; the exact scan names memories nine times, so each scope's partial HNSW index
-- (maintenance.ensure_scope_indexes: one per person from MemoryConfig.large_scope_rows memories) cost every
-- ordinary recall about 23 us of CPU (ninth round: 2.0 ms at no extra index, 6.3 ms at 200, 11.2 ms at 400).
--
-- Nothing in the exact scan needs its values at planning time: it reads the scope through the B-tree on the
-- person's keys, and a partial index is exactly what it must not use. So it is static SQL here, planned once
-- per connection with a generic plan (the function's plan_cache_mode = force_generic_plan, as 0031's
-- statement after the walk), which no partial index's predicate can match. A new index on memories
-- invalidates the kept plan, and the next call plans it again.
--
-- A generic plan cannot size a scope either: like 0031's before it, it read the candidates by id
-- (`id = ANY (...)` with the scope's keys) through memories_once over the whole scope, three times (EXPLAIN
-- ANALYZE for a 5,000-memory person: 4,800 rows removed by the filter each time). Each read by id (the seeds
-- of the thread neighbours, the candidates' mean, the candidates with their links, their scores) is one probe
-- of memories_id per candidate instead, a LATERAL ... LIMIT 1 that is never flattened into a join over the
-- scope. Otherwise the statement is 0030's exact scan, its parameters renumbered to the function's own ($11
-- k1, $12 b, $13 at_mean): it returns what it returned (tests/test_memory_recall_plan.py).
--
-- The walk stays dynamic (its partial index needs the person's keys), and so does its one-off enable_sort
-- (0033). CREATE OR REPLACE replaces the function's SET clauses, so 0032's and 0033's are repeated here;
-- otherwise the function is 0033's.

-- Edited after release, for a fresh install by an owner that is not a superuser (managed Postgres): a SET
-- parley.* clause needs a superuser, or GRANT SET on the setting, which only a superuser gives. So this
-- definition has none; migration 0037's, which replaces it, names the tenant and restores the caller's in
-- its body. pgvector's library is loaded first, so that hnsw.ef_search is its own setting, which any role
-- may fix, and not an unknown one, which only a superuser may.
DO $$ BEGIN PERFORM '[0]'::vector; END $$;

CREATE OR REPLACE FUNCTION memory_recall(
    platform text, workspace_id text, user_id text, model text, query_vector vector, query_text text,
    query_words text, pool_size integer, recent integer, ef_search integer,
    bm25_k1 float8, bm25_b float8, at_mean float8
)
RETURNS TABLE (
    path text, id bigint, content text, created_at timestamptz, thread_id text,
    similarity float8, text_score float8,
    prev_id bigint, prev_similarity float8, prev_text float8,
    next_id bigint, next_similarity float8, next_text float8
)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET role = 'parley_app'
SET hnsw.ef_search = 40
SET plan_cache_mode = force_generic_plan
SET search_path = pg_catalog, public, pg_temp
SET max_parallel_workers_per_gather = 0
SET jit = off
SET enable_sort = on
AS $function$
#variable_conflict use_column
DECLARE
    dims integer;
    near bigint[];
BEGIN
    PERFORM set_config('parley.platform', memory_recall.platform, true),
            set_config('parley.workspace_id', memory_recall.workspace_id, true),
            set_config('parley.user_id', memory_recall.user_id, true);
    SELECT s.dimensions INTO dims FROM public.memory_scope_indexes s
    WHERE s.platform = memory_recall.platform AND s.workspace_id = memory_recall.workspace_id
      AND s.user_id = memory_recall.user_id AND s.embedding_model = memory_recall.model;
    IF dims IS NOT NULL AND query_vector IS NOT NULL AND vector_dims(query_vector) = dims THEN
        -- pgvector's default 40 gives recall@10 near 0.4 on a 20k scope; its maximum is 1000
        PERFORM set_config('hnsw.ef_search', least(greatest(ef_search, 2 * pool_size), 1000)::text, true);
        -- the walk, never a sort of the scope: see the head of migration 0033
        PERFORM set_config('enable_sort', 'off', true);
        EXECUTE format($near$
SELECT ARRAY(
    SELECT id FROM memories
    WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 AND embedding_model = $4
    ORDER BY embedding::vector(%1$s) <=> $5::vector(%1$s)
    LIMIT $6
)$near$, dims)
        INTO near
        USING memory_recall.platform, memory_recall.workspace_id, memory_recall.user_id, model, query_vector,
              pool_size;
        PERFORM set_config('enable_sort', 'on', true);  -- before the static statement is planned
        RETURN QUERY
WITH words AS MATERIALIZED (
    SELECT tsvector_to_array(to_tsvector('english', $6)) AS words
),
stats AS (  -- kept by migration 0024's triggers, instead of a count of the scope
    SELECT st.memories::float8 AS n, greatest(st.text_length::float8 / st.memories, 1) AS avgdl
    FROM memory_scope_stats st WHERE st.platform = $1 AND st.workspace_id = $2 AND st.user_id = $3
),
hits AS MATERIALIZED (  -- the scoped GIN index of migration 0024, skipped when the query has no words
    SELECT m.id, t.lexeme, greatest(cardinality(t.positions), 1)::float8 AS tf, length(m.tsv)::float8 AS dl
    FROM memory_text_hits((SELECT w.words FROM words w)) m
    CROSS JOIN LATERAL unnest(ts_filter(setweight(m.tsv, 'A', (SELECT w.words FROM words w)), '{a}'))
        AS t(lexeme, positions, weights)
    WHERE $7 <> ''
),
idf AS MATERIALIZED (
    SELECT d.lexeme, ln(1 + (st.n - d.df + 0.5) / (d.df + 0.5)) AS idf, st.avgdl
    FROM (SELECT h.lexeme, count(*)::float8 AS df FROM hits h GROUP BY h.lexeme) d CROSS JOIN stats st
),
bm25 AS MATERIALIZED (
    SELECT h.id, sum(i.idf * h.tf * ($11 + 1) / (h.tf + $11 * (1 - $12 + $12 * h.dl / i.avgdl))) AS text_score
    FROM hits h JOIN idf i ON i.lexeme = h.lexeme GROUP BY h.id
),
top_text AS MATERIALIZED (SELECT b.id, b.text_score FROM bm25 b ORDER BY b.text_score DESC, b.id DESC LIMIT $8),
picked AS MATERIALIZED (SELECT n.id FROM unnest(near) AS n(id) UNION SELECT t.id FROM top_text t),
candidates AS MATERIALIZED (  -- each candidate's row, read once
    SELECT q.id, q.content, q.created_at, q.thread_id, q.embedding
    FROM picked p
    CROSS JOIN LATERAL (  -- one probe by id per candidate (LIMIT 1: never flattened into a join over the scope)
        SELECT m.id, m.content, m.created_at, m.thread_id,
               CASE WHEN m.embedding_model = $4 THEN m.embedding END AS embedding
        FROM memories m
        WHERE m.platform = $1 AND m.workspace_id = $2 AND m.id = p.id AND m.user_id = $3
        LIMIT 1
    ) q
),
centre AS MATERIALIZED (  -- the candidates' mean mu = s / n: its products with itself and the query
    SELECT a.s, a.n, -(a.s <#> $5) / a.n AS qm, -(a.s <#> a.s) / (a.n * a.n) AS mm, -($5 <#> $5) AS qq,
           -($5 <#> $5) + 2 * (a.s <#> $5) / a.n - (a.s <#> a.s) / (a.n * a.n) AS qq_c
    FROM (SELECT sum(c.embedding) AS s, nullif(count(c.embedding), 0)::float8 AS n FROM candidates c) a
),
products AS MATERIALIZED (  -- each candidate's inner products with the mean, itself and the query, once
    SELECT c.id, c.content, c.created_at, c.thread_id, c.embedding IS NOT NULL AS comparable,
           -(c.embedding <#> ce.s) / ce.n AS dm, -(c.embedding <#> c.embedding) AS dd, -(c.embedding <#> $5) AS dq
    FROM candidates c CROSS JOIN centre ce
)
SELECT 'hnsw'::text, p.id, p.content, p.created_at, p.thread_id,
       CASE WHEN p.comparable AND $5 IS NOT NULL THEN
           CASE WHEN p.dd - 2 * p.dm + ce.mm > ($13 * $13) * p.dd AND ce.qq_c > ($13 * $13) * ce.qq
                THEN (p.dq - p.dm - ce.qm + ce.mm) / sqrt((p.dd - 2 * p.dm + ce.mm) * ce.qq_c)
                ELSE 0 END END,
       coalesce(t.text_score, 0)::float8,
       NULL::bigint, NULL::float8, NULL::float8,
       NULL::bigint, NULL::float8, NULL::float8
FROM products p CROSS JOIN centre ce
LEFT JOIN top_text t ON t.id = p.id
WHERE (SELECT count(*) FROM picked) >= $8;  -- a short answer: the exact scan below answers instead
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    -- The exact scan of the scope, 0030's: read once (similarity, length, the query's terms of each
    -- memory); everything after works on bounded sets: the $8 best by vector and by BM25, the newest, the
    -- thread neighbours of the best (index probes), so no sort or window runs over the whole scope. With no
    -- signal at all (no query, another model), the newest fill up to $8. Static: planned once per
    -- connection, with a generic plan (head of migration 0035).
    RETURN QUERY
WITH query AS MATERIALIZED (
    SELECT CASE WHEN $7 <> '' THEN to_tsquery('english', $7) END AS tsq,
           tsvector_to_array(to_tsvector('english', $6)) AS words
),
scope AS MATERIALIZED (
    SELECT id, created_at, length(tsv) AS dl,
           CASE WHEN embedding_model = $4 THEN 1 - (embedding <=> $5) END AS similarity,
           CASE WHEN tsv @@ (SELECT tsq FROM query)
                THEN ts_filter(setweight(tsv, 'A', (SELECT words FROM query)), '{a}') END AS terms
    FROM memories
    WHERE platform = $1 AND workspace_id = $2 AND user_id = $3
),
stats AS MATERIALIZED (
    SELECT count(*)::float8 AS n, greatest(avg(dl), 1)::float8 AS avgdl
    FROM scope
),
hits AS MATERIALIZED (
    SELECT s.id, t.lexeme, greatest(cardinality(t.positions), 1)::float8 AS tf, s.dl::float8 AS dl
    FROM scope s CROSS JOIN LATERAL unnest(s.terms) AS t(lexeme, positions, weights)
    WHERE s.terms IS NOT NULL
),
idf AS MATERIALIZED (
    SELECT d.lexeme, ln(1 + (st.n - d.df + 0.5) / (d.df + 0.5)) AS idf, st.avgdl
    FROM (SELECT lexeme, count(*)::float8 AS df FROM hits GROUP BY lexeme) d CROSS JOIN stats st
),
bm25 AS MATERIALIZED (
    SELECT h.id, sum(i.idf * h.tf * ($11 + 1) / (h.tf + $11 * (1 - $12 + $12 * h.dl / i.avgdl))) AS text_score
    FROM hits h JOIN idf i USING (lexeme) GROUP BY h.id
),
best AS (
    (SELECT id FROM scope WHERE similarity IS NOT NULL ORDER BY similarity DESC, id DESC LIMIT $8)
    UNION
    (SELECT id FROM bm25 ORDER BY text_score DESC, id DESC LIMIT $8)
),
newest AS (
    SELECT id, row_number() OVER (ORDER BY created_at DESC, id DESC) AS by_time,
           similarity IS NULL AND id NOT IN (SELECT id FROM bm25) AS silent
    FROM (SELECT id, created_at, similarity FROM scope ORDER BY created_at DESC, id DESC
          LIMIT greatest($8, $9)) s
),
around AS (
    SELECT n.id
    FROM best b
    CROSS JOIN LATERAL (  -- one probe by id per memory (head of this migration)
        SELECT m.id, m.thread_id FROM memories m
        WHERE m.platform = $1 AND m.workspace_id = $2 AND m.id = b.id AND m.user_id = $3
        LIMIT 1
    ) m
    CROSS JOIN LATERAL (
        (SELECT p.id FROM memories p
         WHERE p.platform = $1 AND p.workspace_id = $2 AND p.user_id = $3
           AND p.thread_id = m.thread_id AND p.id < m.id ORDER BY p.id DESC LIMIT 1)
        UNION ALL
        (SELECT p.id FROM memories p
         WHERE p.platform = $1 AND p.workspace_id = $2 AND p.user_id = $3
           AND p.thread_id = m.thread_id AND p.id > m.id ORDER BY p.id LIMIT 1)
    ) n
    WHERE m.thread_id IS NOT NULL
),
picked AS (
    SELECT id FROM best
    UNION SELECT id FROM newest WHERE by_time <= $9 OR (silent AND by_time <= $8)
    UNION SELECT id FROM around
),
centre AS MATERIALIZED (
    SELECT mu, -(mu <#> $5) AS qm, -(mu <#> mu) AS mm, -($5 <#> $5) AS qq,
           -($5 <#> $5) + 2 * (mu <#> $5) - (mu <#> mu) AS qq_c
    FROM (SELECT avg(c.embedding) FILTER (WHERE c.embedding_model = $4) AS mu
          FROM picked p
          CROSS JOIN LATERAL (
              SELECT c.embedding, c.embedding_model FROM memories c
              WHERE c.platform = $1 AND c.workspace_id = $2 AND c.id = p.id AND c.user_id = $3
              LIMIT 1
          ) c) a
),
links AS MATERIALIZED (  -- each candidate and the previous and next memory of its thread
    SELECT m.id, m.content, m.created_at, m.thread_id, pl.id AS prev_id, nl.id AS next_id
    FROM picked p
    CROSS JOIN LATERAL (
        SELECT m.id, m.content, m.created_at, m.thread_id FROM memories m
        WHERE m.platform = $1 AND m.workspace_id = $2 AND m.id = p.id AND m.user_id = $3
        LIMIT 1
    ) m
    LEFT JOIN LATERAL (
        SELECT q.id FROM memories q
        WHERE q.platform = $1 AND q.workspace_id = $2 AND q.user_id = $3
          AND q.thread_id = m.thread_id AND q.id < m.id
        ORDER BY q.id DESC LIMIT 1
    ) pl ON true
    LEFT JOIN LATERAL (
        SELECT q.id FROM memories q
        WHERE q.platform = $1 AND q.workspace_id = $2 AND q.user_id = $3
          AND q.thread_id = m.thread_id AND q.id > m.id
        ORDER BY q.id LIMIT 1
    ) nl ON true
),
scored AS MATERIALIZED (  -- the signals of the candidates and of their neighbours
    SELECT q.id,
           CASE WHEN q.embedding_model = $4 AND $5 IS NOT NULL THEN
               CASE WHEN ((q.embedding <#> c.mu) * 2 - (q.embedding <#> q.embedding) + c.mm)
                         > -($13 * $13) * (q.embedding <#> q.embedding)
                         AND c.qq_c > ($13 * $13) * c.qq
                    THEN ((q.embedding <#> c.mu) - (q.embedding <#> $5) - c.qm + c.mm)
                         / sqrt(((q.embedding <#> c.mu) * 2 - (q.embedding <#> q.embedding) + c.mm) * c.qq_c)
                    ELSE 0 END END AS similarity,
           CASE WHEN q.tsv @@ (SELECT tsq FROM query) THEN (
                SELECT sum(i.idf * h.tf * ($11 + 1) / (h.tf + $11 * (1 - $12 + $12 * h.dl / i.avgdl)))
                FROM (SELECT lexeme, greatest(cardinality(positions), 1)::float8 AS tf, length(q.tsv)::float8 AS dl
                      FROM unnest(ts_filter(setweight(q.tsv, 'A', (SELECT words FROM query)), '{a}'))) h
                JOIN idf i USING (lexeme)) END AS text_score
    FROM (SELECT l.id FROM links l UNION SELECT l.prev_id FROM links l UNION SELECT l.next_id FROM links l) x
    CROSS JOIN LATERAL (
        SELECT q.id, q.embedding_model, q.embedding, q.tsv FROM memories q
        WHERE q.platform = $1 AND q.workspace_id = $2 AND q.id = x.id AND q.user_id = $3
        LIMIT 1
    ) q
    CROSS JOIN centre c
)
SELECT 'exact'::text, l.id, l.content, l.created_at, l.thread_id, s.similarity, s.text_score,
       l.prev_id, p.similarity, p.text_score, l.next_id, n.similarity, n.text_score
FROM links l JOIN scored s ON s.id = l.id
LEFT JOIN scored p ON p.id = l.prev_id
LEFT JOIN scored n ON n.id = l.next_id;
END
$function$;
