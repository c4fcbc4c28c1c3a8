-- A turn's context read, start and finish, each one statement that names its tenant itself (issue #22,
-- fifteenth stop). Each write of a turn was a transaction of BEGIN (with the tenant settings), its
-- statements and COMMIT: three round trips or more, and every round trip wakes Postgres and the worker.
--
-- parley_turn_context: the person's profile, the facts in force for the turn (the person's own, the
--     workspace's and, outside a DM, the channel's: core/memory/facts.py `in_force`) and the recall's
--     candidates (memory_recall, called with the same arguments core/memory/search.py gives it), read in one
--     statement where a transaction read them in three (no recall for a pool of 0). The first row holds the profile (`has_profile` false
--     where the person has none) and the oldest fact; each further fact a row of its own, oldest first; then
--     each candidate a row, in the recall's columns, every other column NULL.
-- parley_start_turn: core/turns.py `start_turn`'s statement (the message stored with its turn, an
--     interrupted earlier copy of it removed), its own transaction.
-- parley_finish_turn: core/turns.py `finish_turn`'s statement (reply, usage rows, spend totals, latency,
--     event done, reservation released) and the message's memory row (core/memory/store.py
--     `insert_memory`), in one call and so in one transaction: both are stored or neither is. Where the
--     model's fact extraction will learn the message, it returns the person's facts the model is shown, read
--     in the same transaction (they were a statement of the finish's transaction before).
--
-- The form is 0037's: SECURITY INVOKER, run as parley_app (row-level security applies to every row),
-- the tenant named by parley_swap_tenant from the function's own arguments, the caller's put back before
-- it returns; a caller inside a transaction keeps the scope it had.

CREATE FUNCTION parley_turn_context(
    platform text, workspace_id text, user_id text, channel_id text, at timestamptz,
    model text, query_vector vector, query_text text, query_words text, pool_size integer, recent integer,
    ef_search integer, bm25_k1 float8, bm25_b float8, at_mean float8
)
RETURNS TABLE (
    has_profile boolean, display_name text, language text, timezone text, answer_style text,
    voice_replies boolean, about text, extra jsonb,
    fact_id bigint, fact_scope text, fact_user_id text, fact_channel_id text, fact_content text,
    fact_subject text, fact_author_id text, fact_said_in text, fact_said_at timestamptz,
    fact_valid_to timestamptz, fact_expires_at timestamptz, fact_superseded_by bigint,
    path text, id bigint, content text, created_at timestamptz, thread_id text,
    similarity float8, text_score float8,
    prev_id bigint, prev_similarity float8, prev_text float8,
    next_id bigint, next_similarity float8, next_text float8
)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET role = 'parley_app'
SET search_path = pg_catalog, public, pg_temp
AS $function$
#variable_conflict use_column
DECLARE
    caller text[] := parley_swap_tenant(ARRAY[$1, $2, $3, $4]);
BEGIN
    -- first the profile with the facts, one a row (at least one row: the profile's)
    RETURN QUERY
SELECT p.user_id IS NOT NULL, p.display_name, p.language, p.timezone, p.answer_style, p.voice_replies, p.about,
       p.extra, f.id, f.scope, f.user_id, f.channel_id, f.content, f.subject, f.author_id, f.said_in, f.said_at,
       f.valid_to, f.expires_at, f.superseded_by,
       NULL::text, NULL::bigint, NULL::text, NULL::timestamptz, NULL::text, NULL::float8, NULL::float8,
       NULL::bigint, NULL::float8, NULL::float8, NULL::bigint, NULL::float8, NULL::float8
FROM (SELECT 1) one
LEFT JOIN public.profiles p ON p.platform = $1 AND p.workspace_id = $2 AND p.user_id = $3
LEFT JOIN LATERAL (
    SELECT x.* FROM public.facts x
    WHERE x.platform = $1 AND x.workspace_id = $2
      AND (x.user_id, x.channel_id) IN (($3, ''), ('', ''), ('', $4))
      AND x.valid_to IS NULL AND (x.expires_at IS NULL OR x.expires_at > $5)
) f ON true
ORDER BY f.said_at, f.id;
    -- then the recall's candidates (it names the person's scope itself, and puts this one back); none asked for
    -- (a pool of 0: memories off): no recall
    IF $10 > 0 THEN
        RETURN QUERY
SELECT NULL::boolean, NULL::text, NULL::text, NULL::text, NULL::text, NULL::boolean, NULL::text, NULL::jsonb,
       NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
       NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::bigint,
       r.path, r.id, r.content, r.created_at, r.thread_id, r.similarity, r.text_score,
       r.prev_id, r.prev_similarity, r.prev_text, r.next_id, r.next_similarity, r.next_text
FROM memory_recall($1, $2, $3, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) r;
    END IF;
    PERFORM parley_swap_tenant(caller);
END
$function$;

CREATE FUNCTION parley_start_turn(
    platform text, workspace_id text, channel_id text, thread_id text, user_id text, event_id text, model text,
    content text, instance integer
)
RETURNS TABLE (started_turn bigint, started_message bigint)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET role = 'parley_app'
SET search_path = pg_catalog, public, pg_temp
AS $function$
#variable_conflict use_column
DECLARE
    caller text[] := parley_swap_tenant(ARRAY[$1, $2, $5, '']);
BEGIN
    RETURN QUERY
WITH orphan AS (
    DELETE FROM public.messages m USING public.turns t
    WHERE m.platform = $1 AND m.workspace_id = $2 AND m.channel_id = $3 AND m.thread_id = $4
      AND m.user_id = $5 AND m.role = 'user' AND m.content = $8 AND t.id = m.turn_id
      AND ((t.status = 'error' AND t.error = 'interrupted')
           OR (t.status = 'started' AND t.instance IS NOT NULL AND NOT parley_instance_alive(t.instance)))
),
turn AS (
    INSERT INTO public.turns AS t (platform, workspace_id, channel_id, thread_id, user_id, event_id, model, instance)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $9) RETURNING t.id
)
INSERT INTO public.messages AS m (platform, workspace_id, channel_id, thread_id, user_id, role, content, turn_id)
SELECT $1, $2, $3, $4, $5, 'user', $8, turn.id FROM turn
RETURNING m.turn_id, m.id;
    PERFORM parley_swap_tenant(caller);
END
$function$;

CREATE FUNCTION parley_finish_turn(
    turn_id bigint, platform text, workspace_id text, user_id text, status text, blocked boolean, block_rail text,
    error text, latency_ms real, input_tokens integer, output_tokens integer, cost_usd float8, trace_id text,
    channel_id text, thread_id text, reply text, answered boolean, call_models text[], call_inputs integer[],
    call_outputs integer[], call_costs float8[], steps jsonb, event_id text,
    memory_content text, memory_hash bytea, memory_embedding vector, memory_model text, memory_source bigint,
    memory_thread text, known_facts integer
)
RETURNS TABLE (
    fact_id bigint, fact_scope text, fact_user_id text, fact_channel_id text, fact_content text,
    fact_subject text, fact_author_id text, fact_said_in text, fact_said_at timestamptz,
    fact_valid_to timestamptz, fact_expires_at timestamptz, fact_superseded_by bigint
)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET role = 'parley_app'
SET search_path = pg_catalog, public, pg_temp
AS $function$
#variable_conflict use_column
DECLARE
    caller text[] := parley_swap_tenant(ARRAY[$2, $3, $4, '']);
BEGIN
    WITH done AS (
        UPDATE public.processed_events e SET finished_at = now()
        WHERE e.platform = $2 AND e.workspace_id = $3 AND e.event_id = $23
    ),
    reply AS (
        INSERT INTO public.messages (platform, workspace_id, channel_id, thread_id, user_id, role, content, turn_id)
        SELECT $2, $3, $14, $15, $4, 'assistant', $16, $1 WHERE $17
    ),
    calls AS (
        INSERT INTO public.usage
            (turn_id, platform, workspace_id, user_id, model, input_tokens, output_tokens, cost_usd)
        SELECT $1, $2, $3, $4, c.model, c.input_tokens, c.output_tokens, c.cost_usd
        FROM unnest($18, $19, $20, $21) AS c (model, input_tokens, output_tokens, cost_usd)
    ),
    tally AS (
        INSERT INTO public.spend_totals AS s
            (platform, workspace_id, scope, subject, day, tokens, usd, turns, priced_turns)
        SELECT $2, $3, l.scope, l.subject, (now() AT TIME ZONE 'UTC')::date, $10 + $11,
               coalesce($12, 0), ($10 + $11 > 0)::int, ($12 IS NOT NULL)::int
        FROM (SELECT DISTINCT x.scope, x.subject FROM public.spend_limits x
              WHERE x.platform = $2 AND x.workspace_id = $3
                AND (x.scope = 'workspace' OR (x.scope = 'channel' AND x.subject = $14)
                     OR (x.scope = 'person' AND x.subject = $4))
              ORDER BY x.scope, x.subject) l
        ON CONFLICT ON CONSTRAINT spend_totals_pkey DO UPDATE
        SET tokens = s.tokens + EXCLUDED.tokens, usd = s.usd + EXCLUDED.usd,
            turns = s.turns + EXCLUDED.turns, priced_turns = s.priced_turns + EXCLUDED.priced_turns
    ),
    released AS (
        DELETE FROM public.spend_reservations r WHERE r.platform = $2 AND r.workspace_id = $3 AND r.event_id = $23
    )
    UPDATE public.turns t SET status = $5, blocked = $6, block_rail = $7, error = $8, latency_ms = $9,
        input_tokens = $10, output_tokens = $11, cost_usd = $12, trace_id = $13, steps = $22
    WHERE t.id = $1;
    IF $24 IS NOT NULL THEN
        INSERT INTO public.memories (platform, workspace_id, user_id, content, content_hash, kind, thread_id,
                                     source_message_id, embedding, embedding_model)
        VALUES ($2, $3, $4, $24, $25, 'turn',
                coalesce($29, (SELECT m.thread_id FROM public.messages m
                               WHERE m.id = $28 AND m.platform = $2 AND m.workspace_id = $3)),
                (SELECT m.id FROM public.messages m WHERE m.id = $28 AND m.platform = $2 AND m.workspace_id = $3),
                $26, $27)
        ON CONFLICT ON CONSTRAINT memories_once DO NOTHING;
    END IF;
    -- the person's newest facts not closed, as the same transaction sees them: what the model's fact
    -- extraction is shown (core/memory/facts.py `listing` of the person's own); none where none are asked
    RETURN QUERY
SELECT x.id, x.scope, x.user_id, x.channel_id, x.content, x.subject, x.author_id, x.said_in, x.said_at,
       x.valid_to, x.expires_at, x.superseded_by
FROM public.facts x
WHERE $30 > 0 AND x.platform = $2 AND x.workspace_id = $3 AND x.user_id = $4 AND x.channel_id = ''
  AND x.valid_to IS NULL
ORDER BY x.said_at DESC, x.id DESC
LIMIT $30;
    PERFORM parley_swap_tenant(caller);
END
$function$;
