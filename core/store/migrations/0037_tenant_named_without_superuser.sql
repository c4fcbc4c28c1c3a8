-- Parley installs on a managed Postgres whose administrator is not a superuser (RDS, Cloud SQL, Azure,
-- Neon, Supabase: a role with CREATEROLE and CREATEDB, docs/deployment.md "Postgres with pgvector").
--
-- The functions that name their tenant themselves (memory_recall, 0030-0035; parley_claim_turn,
-- parley_open_session and parley_record_delivery_messages, 0034) fixed the four parley.* settings in SET
-- clauses, so that the tenant they named was put back as they returned. Postgres lets a function fix a
-- setting that no loaded library defines only to a superuser, or to a role granted SET on it, which only a
-- superuser may grant: such an owner was refused ("permission denied to set parameter parley.platform")
-- and could not install Parley at all. Here each names its tenant with set_config, local to the
-- transaction, through parley_swap_tenant, which returns the caller's four values, and puts them back the
-- same way before it returns. On an error nothing needs putting back: the transaction or savepoint that
-- fails undoes every set_config made in it. As before, a caller inside a transaction (a turn's
-- one_transaction block) keeps the tenant it had, and the functions run as parley_app (their SET role
-- clause, which needs only SET membership in parley_app: migration 0002 grants it to the owner).
--
-- hnsw.ef_search stays in memory_recall's SET clause: once pgvector's library is loaded in this session
-- (the DO block below) it is the library's own setting, which any role may fix. Every other SET clause
-- (role, plan_cache_mode, search_path, parallel workers, jit, enable_sort) is an ordinary setting.
--
-- 0030-0035 were edited the same way for fresh installs (yoyo knows a migration by its file name, so an
-- applied one never runs again); this migration brings databases migrated before that to the same
-- definitions, and on a fresh install replaces those migrations' interim ones. Otherwise the functions
-- are 0034's and 0035's: same statements, same plans.

CREATE FUNCTION parley_swap_tenant(tenant text[]) RETURNS text[]
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $function$
DECLARE
    names constant text[] := ARRAY['parley.platform', 'parley.workspace_id', 'parley.user_id', 'parley.channel_id'];
    before text[] := ARRAY[]::text[];
BEGIN
    FOR i IN 1 .. 4 LOOP
        before := before || current_setting(names[i], true);
        PERFORM set_config(names[i], tenant[i], true);
    END LOOP;
    RETURN before;
END
$function$;

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
    caller text[];
BEGIN
    caller := parley_swap_tenant(ARRAY[memory_recall.platform, memory_recall.workspace_id, memory_recall.user_id, '']);
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
            PERFORM parley_swap_tenant(caller);
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
    PERFORM parley_swap_tenant(caller);
END
$function$;

CREATE OR REPLACE FUNCTION parley_claim_turn(
    platform text, workspace_id text, event_id text, owner integer, buckets text[], rates integer[],
    window_s float8, channel_id text, user_id text, thread_id text, history integer
)
RETURNS TABLE (
    claimed boolean, wait_s float8, channels text[], keys text[], vals text[], limits bigint,
    message_ids bigint[], message_roles text[], message_contents text[]
)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET role = 'parley_app'
SET search_path = pg_catalog, public, pg_temp
AS $function$
#variable_conflict use_column
DECLARE
    caller text[] := parley_swap_tenant(ARRAY[$1, $2, '', '']);
BEGIN
    RETURN QUERY
WITH claim AS (
    INSERT INTO processed_events AS e (platform, workspace_id, event_id, owner) VALUES ($1, $2, $3, $4)
    ON CONFLICT (platform, workspace_id, event_id) DO UPDATE SET owner = EXCLUDED.owner, seen_at = now()
    WHERE e.finished_at IS NULL AND e.owner IS NOT NULL AND EXCLUDED.owner IS NOT NULL
      AND e.owner <> EXCLUDED.owner AND NOT parley_instance_alive(e.owner)
    RETURNING xmax <> 0 AS took_over
),
interrupted AS (
    UPDATE turns t SET status = 'error', error = 'interrupted'
    WHERE t.platform = $1 AND t.workspace_id = $2 AND t.event_id = $3 AND t.status = 'started'
      AND EXISTS (SELECT 1 FROM claim WHERE took_over)
),
claimed AS (SELECT count(*) > 0 AS claimed FROM claim),
settings AS (
    SELECT array_agg(s.channel_id) AS channels, array_agg(s.key) AS keys, array_agg(s.value::text) AS vals
    FROM workspace_settings s WHERE s.platform = $1 AND s.workspace_id = $2 AND s.channel_id IN ('', $8)
),
recent AS (
    SELECT array_agg(r.id ORDER BY r.id) AS ids, array_agg(r.role ORDER BY r.id) AS roles,
           array_agg(r.content ORDER BY r.id) AS contents
    FROM (SELECT m.id, m.role, m.content FROM messages m
          WHERE m.platform = $1 AND m.workspace_id = $2 AND m.channel_id = $8 AND m.thread_id = $10
          ORDER BY m.id DESC LIMIT $11) r
)
SELECT c.claimed,
       CASE WHEN c.claimed AND cardinality($5) > 0 THEN parley_rate_take($5, $6, $7) ELSE 0 END,
       s.channels, s.keys, s.vals,
       (SELECT count(*) FROM spend_limits l
        WHERE l.platform = $1 AND l.workspace_id = $2
          AND (l.scope = 'workspace' OR (l.scope = 'channel' AND l.subject = $8)
               OR (l.scope = 'person' AND l.subject = $9))),
       h.ids, h.roles, h.contents
FROM claimed c, settings s, recent h;
    PERFORM parley_swap_tenant(caller);
END
$function$;

CREATE OR REPLACE FUNCTION parley_open_session(wanted_session text, on_platform text, in_workspace text, by_user text)
RETURNS TABLE (session_id text, workspace_id text, user_id text, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET role = 'parley_app'
SET search_path = pg_catalog, public, pg_temp
AS $function$
#variable_conflict use_column
DECLARE
    caller text[] := parley_swap_tenant(ARRAY[$2, $3, '', '']);
BEGIN
    RETURN QUERY
WITH added AS (
    INSERT INTO api_sessions (session_id, platform, workspace_id, user_id) VALUES ($1, $2, $3, $4)
    ON CONFLICT (platform, workspace_id, session_id) DO NOTHING
    RETURNING session_id, workspace_id, user_id, created_at
)
SELECT a.session_id, a.workspace_id, a.user_id, a.created_at FROM added a
UNION ALL
SELECT s.session_id, s.workspace_id, s.user_id, s.created_at FROM api_sessions s
WHERE s.platform = $2 AND s.workspace_id = $3 AND s.session_id = $1
LIMIT 1;
    PERFORM parley_swap_tenant(caller);
END
$function$;

CREATE OR REPLACE FUNCTION parley_record_delivery_messages(
    platform text, workspace_id text, user_id text, channel_id text, thread_id text, turn_id bigint,
    message_ids text[]
)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET role = 'parley_app'
SET search_path = pg_catalog, public, pg_temp
AS $function$
#variable_conflict use_column
DECLARE
    caller text[] := parley_swap_tenant(ARRAY[$1, $2, $3, '']);
BEGIN
    INSERT INTO deliveries (platform, workspace_id, message_id, user_id, channel_id, thread_id, turn_id, position)
    SELECT $1, $2, m.id, $3, $4, $5, $6, m.position - 1
    FROM unnest($7) WITH ORDINALITY AS m (id, position)
    ON CONFLICT DO NOTHING;
    PERFORM parley_swap_tenant(caller);
END
$function$;

