-- A person's recall in one round trip (core/memory/search.py, benchmarks/memory_scale.py).
--
-- Before, a recall took four: the transaction that names the tenant, the scope's index settings, the
-- search, the commit; on a busy machine each waited for a core, and a heavy person's wall time ran three
-- to six times the 7-8 ms the search executes. memory_recall is one statement that does all of it:
--
-- * It names the tenant itself, exactly as core.store.tenancy's opening statement does: role parley_app
--   and the parley.* settings, from its own arguments, which are also what its queries filter on. The
--   function is SECURITY INVOKER, so row-level security applies to every row it reads as it does to any
--   statement of the app; its SET clauses restore every setting when it returns, so a caller inside a
--   transaction (a turn's one_transaction block) keeps the tenant it had. Outside a transaction the
--   statement is its own: no BEGIN and no COMMIT (a read needs none).
-- * It looks up the scope's own partial HNSW index (core/memory/maintenance.py) and, with one, sets
--   hnsw.ef_search for the pool asked for and searches through it; without one, or when the index
--   returns fewer than the pool, it scans the scope exactly.
-- * Both searches run as dynamic SQL: each is planned for its actual values, so the planner proves the
--   partial index's predicate from the person's keys and drops the full-text route outright for a query
--   without words (what plan_cache_mode = force_custom_plan did before).
--
-- The numbers the ranking was tuned with (BM25's k1 and b, the "at the mean" threshold) travel with each
-- call from core/memory/search.py, so retuning them needs no migration.
--
-- Parameters of both searches: $1 platform, $2 workspace_id, $3 user_id, $4 the query vector's model,
-- $5 the query vector, $6 the query's text, $7 its words as an OR tsquery ('' for none), $8 the pool per
-- signal, $9 the newest always taken, $10 BM25 k1, $11 BM25 b, $12 at_mean.
--
-- Shared pieces of both:
-- * query: the tsquery and the query's lexemes, computed once (inline, a plan would parse them per row).
-- * a memory's BM25 from the idf CTE: the query's lexemes of its tsvector (marked A and filtered, since
--   to_tsvector weighs everything D) with their frequency, against each term's idf and the average length.
-- * similarity: the cosine of the query and the memory, both taken relative to the candidates' mean
--   vector mu (the centre CTE), from inner products alone: |d - mu|^2 = d.d - 2 d.mu + mu.mu. NULL for a
--   memory of another model or without a query vector, 0 for a vector at the mean.
-- * candidates are fetched by id through the primary key (= ANY (ARRAY(...))): as a join, the planner's
--   estimate of a scope made it hash all of a heavy person's rows.

-- Edited after release, for a fresh install by an owner that is not a superuser (managed Postgres): a SET
-- parley.* clause needs a superuser, or GRANT SET on the setting, which only a superuser gives. So this
-- definition has none; migration 0037's, which replaces it, names the tenant and restores the caller's in
-- its body. pgvector's library is loaded first, so that hnsw.ef_search is its own setting, which any role
-- may fix, and not an unknown one, which only a superuser may.
DO $$ BEGIN PERFORM '[0]'::vector; END $$;

CREATE FUNCTION memory_recall(
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
SET search_path = pg_catalog, public, pg_temp
AS $function$
DECLARE
    dims integer;
    -- the parts both searches share, formatted into each
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
        RETURN QUERY EXECUTE format($indexed$
WITH %2$s,
near AS (
    SELECT id FROM memories
    WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 AND embedding_model = $4
    ORDER BY embedding::vector(%1$s) <=> $5::vector(%1$s)
    LIMIT $8
),
stats AS (  -- kept by migration 0024's triggers, instead of a count of the scope
    SELECT memories::float8 AS n, greatest(text_length::float8 / memories, 1) AS avgdl
    FROM memory_scope_stats WHERE platform = $1 AND workspace_id = $2 AND user_id = $3
),
hits AS MATERIALIZED (  -- the scoped GIN index of migration 0024, skipped when the query has no words
    SELECT m.id, t.lexeme, greatest(cardinality(t.positions), 1)::float8 AS tf, length(m.tsv)::float8 AS dl
    FROM memory_text_hits((SELECT words FROM query)) m
    CROSS JOIN LATERAL unnest(ts_filter(setweight(m.tsv, 'A', (SELECT words FROM query)), '{a}'))
        AS t(lexeme, positions, weights)
    WHERE $7 <> ''
),
%3$s,
top_text AS (SELECT id, text_score FROM bm25 ORDER BY text_score DESC, id DESC LIMIT $8),
picked AS (SELECT id FROM near UNION SELECT id FROM top_text),
%4$s
SELECT 'hnsw'::text, q.id, q.content, q.created_at, q.thread_id,
       %5$s,
       coalesce(t.text_score, 0)::float8,
       NULL::bigint, NULL::float8, NULL::float8,
       NULL::bigint, NULL::float8, NULL::float8
FROM memories q CROSS JOIN centre c
LEFT JOIN top_text t ON t.id = q.id
WHERE q.id = ANY (ARRAY(SELECT id FROM picked)) AND q.platform = $1 AND q.workspace_id = $2 AND q.user_id = $3
  AND (SELECT count(*) FROM picked) >= $8  -- a short answer: the exact scan below answers instead
$indexed$, dims, query_cte, bm25_ctes, centre_cte, similarity_sql)
        USING memory_recall.platform, memory_recall.workspace_id, memory_recall.user_id, model, query_vector,
              query_text, query_words, pool_size, recent, bm25_k1, bm25_b, at_mean;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    -- The exact scan of the scope: read once (similarity, length, the query's terms of each memory);
    -- everything after works on bounded sets: the $8 best by vector and by BM25, the newest, the thread
    -- neighbours of the best (index probes), so no sort or window runs over the whole scope. With no
    -- signal at all (no query, another model), the newest fill up to $8.
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
REVOKE ALL ON FUNCTION memory_recall(text, text, text, text, vector, text, text, integer, integer, integer,
                                     float8, float8, float8) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memory_recall(text, text, text, text, vector, text, text, integer, integer, integer,
                                        float8, float8, float8) TO parley_app;
