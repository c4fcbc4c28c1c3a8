-- A scope with its own HNSW index is walked, whatever the planner guesses of its size (core/memory/search.py,
-- docs/memory.md "Ninth round").
--
-- The walk (0031's dynamic statement: the person's rows of one model, ORDER BY distance LIMIT the pool) can be
-- planned two ways: the scope's partial HNSW index, or the (platform, workspace_id, user_id, content_hash)
-- B-tree over the whole scope and a top-N sort. The planner sizes the scope from its three keys as if they
-- were independent, so a person alone in a small workspace is estimated at a handful of rows (89 for a
-- 10,000-memory person on a 1,000,000-memory table), and once the LIMIT is above that estimate the sort looks
-- cheaper than the index's start-up cost: a turn's pool of 100 then sorted all 10,000 rows (EXPLAIN ANALYZE:
-- memories_once, 10,142 buffers, 20.4 ms, against the index's 4,732 buffers and 9.8 ms). With scopes indexed
-- from 5,000 memories (MemoryConfig.large_scope_rows) that is most indexed people at a turn's pool. The sort
-- is switched off for the walk alone (set_config, local; the function's SET clause restores the caller's
-- value as it returns) and back on before the static statement after it is planned, whose cached plan must
-- not be made without sorts. The exact scan never runs with it off.
--
-- CREATE OR REPLACE replaces the function's SET clauses, so 0032's (no parallel workers, no JIT) are repeated
-- here; otherwise the function is 0031's.

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
    -- the parts of the exact scan, formatted into it (as in 0030)
    query_cte constant text := $sql$query AS MATERIALIZED (
    SELECT CASE WHEN $7 <> '' THEN to_tsquery('english', $7) END AS tsq,
           tsvector_to_array(to_tsvector('english', $6)) AS words
)$sql$;
    bm25_ctes constant text := $sql$idf AS MATERIALIZED (
    SELECT d.lexeme, ln(1 + (st.n - d.df + 0.5) / (d.df + 0.5)) AS idf, st.avgdl
    FROM (SELECT lexeme, count(*)::float8 AS df FROM hits GROUP BY lexeme) d CROSS JOIN stats st
),
bm25 AS MATERIALIZED (
    SELECT h.id, sum(i.idf * h.tf * ($10 + 1) / (h.tf + $10 * (1 - $11 + $11 * h.dl / i.avgdl))) AS text_score
    FROM hits h JOIN idf i USING (lexeme) GROUP BY h.id
)$sql$;
    centre_cte constant text := $sql$centre AS MATERIALIZED (
    SELECT mu, -(mu <#> $5) AS qm, -(mu <#> mu) AS mm, -($5 <#> $5) AS qq,
           -($5 <#> $5) + 2 * (mu <#> $5) - (mu <#> mu) AS qq_c
    FROM (SELECT avg(c.embedding) FILTER (WHERE c.embedding_model = $4) AS mu
          FROM memories c
          WHERE c.id = ANY (ARRAY(SELECT id FROM picked))
            AND c.platform = $1 AND c.workspace_id = $2 AND c.user_id = $3) a
)$sql$;
    similarity_sql constant text := $sql$CASE WHEN q.embedding_model = $4 AND $5 IS NOT NULL THEN
    CASE WHEN ((q.embedding <#> c.mu) * 2 - (q.embedding <#> q.embedding) + c.mm) > -($12 * $12) * (q.embedding <#> q.embedding)
              AND c.qq_c > ($12 * $12) * c.qq
         THEN ((q.embedding <#> c.mu) - (q.embedding <#> $5) - c.qm + c.mm)
              / sqrt(((q.embedding <#> c.mu) * 2 - (q.embedding <#> q.embedding) + c.mm) * c.qq_c)
         ELSE 0 END END$sql$;
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
    -- signal at all (no query, another model), the newest fill up to $8. Its parameters are numbered as
    -- the USING list gives them: $10 k1, $11 b, $12 at_mean.
    RETURN QUERY EXECUTE format($exact$
WITH %2$s,
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
%3$s,
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
    FROM memories m
    CROSS JOIN LATERAL (
        (SELECT p.id FROM memories p
         WHERE p.platform = $1 AND p.workspace_id = $2 AND p.user_id = $3
           AND p.thread_id = m.thread_id AND p.id < m.id ORDER BY p.id DESC LIMIT 1)
        UNION ALL
        (SELECT p.id FROM memories p
         WHERE p.platform = $1 AND p.workspace_id = $2 AND p.user_id = $3
           AND p.thread_id = m.thread_id AND p.id > m.id ORDER BY p.id LIMIT 1)
    ) n
    WHERE m.id = ANY (ARRAY(SELECT id FROM best))
      AND m.platform = $1 AND m.workspace_id = $2 AND m.user_id = $3 AND m.thread_id IS NOT NULL
),
picked AS (
    SELECT id FROM best
    UNION SELECT id FROM newest WHERE by_time <= $9 OR (silent AND by_time <= $8)
    UNION SELECT id FROM around
),
%4$s,
links AS MATERIALIZED (  -- each candidate and the previous and next memory of its thread
    SELECT m.id, m.content, m.created_at, m.thread_id, pl.id AS prev_id, nl.id AS next_id
    FROM memories m
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
    WHERE m.id = ANY (ARRAY(SELECT id FROM picked)) AND m.platform = $1 AND m.workspace_id = $2 AND m.user_id = $3
),
scored AS MATERIALIZED (  -- the signals of the candidates and of their neighbours
    SELECT q.id,
           %5$s AS similarity,
           CASE WHEN q.tsv @@ (SELECT tsq FROM query) THEN (
                SELECT sum(i.idf * h.tf * ($10 + 1) / (h.tf + $10 * (1 - $11 + $11 * h.dl / i.avgdl)))
                FROM (SELECT lexeme, greatest(cardinality(positions), 1)::float8 AS tf, length(q.tsv)::float8 AS dl
                      FROM unnest(ts_filter(setweight(q.tsv, 'A', (SELECT words FROM query)), '{a}'))) h
                JOIN idf i USING (lexeme)) END AS text_score
    FROM memories q CROSS JOIN centre c
    WHERE q.id = ANY (ARRAY(SELECT id FROM links UNION SELECT prev_id FROM links UNION SELECT next_id FROM links))
      AND q.platform = $1 AND q.workspace_id = $2 AND q.user_id = $3
)
SELECT 'exact'::text, l.id, l.content, l.created_at, l.thread_id, s.similarity, s.text_score,
       l.prev_id, p.similarity, p.text_score, l.next_id, n.similarity, n.text_score
FROM links l JOIN scored s ON s.id = l.id
LEFT JOIN scored p ON p.id = l.prev_id
LEFT JOIN scored n ON n.id = l.next_id
$exact$, NULL, query_cte, bm25_ctes, centre_cte, similarity_sql)
        USING memory_recall.platform, memory_recall.workspace_id, memory_recall.user_id, model, query_vector,
              query_text, query_words, pool_size, recent, bm25_k1, bm25_b, at_mean;
END
$function$;
