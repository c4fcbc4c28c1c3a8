-- A recall runs in its caller's process: no parallel workers, no JIT (core/memory/search.py, docs/memory.md
-- "Eighth round").
--
-- The text route's statement inside memory_text_hits (0031) is planned once per connection with a generic
-- plan, which cannot see how few rows a person's lexemes match: it estimates 1 % of the table (10,199 rows of
-- 1,000,000 for a heavy person's 385 hits) and chooses a Gather over a Parallel Bitmap Heap Scan with two
-- workers. Every recall with words then asked the postmaster for two background workers, set up two
-- dynamic shared memory segments and slept on its latch until the workers had started and finished: on two
-- cores 6-8 ms of a recall's wall time, off the backend's CPU and so missed by the benchmark's server CPU
-- (strace of the backend: 2 SIGUSR1 to the postmaster, 2 /dev/shm segments, epoll waits; EXPLAIN ANALYZE of
-- the statement: 19.0 ms with the workers, 2.4 ms without). No part of a recall is large enough to gain
-- from workers (the walk reads ~4,500 buffers, the text route ~400), so neither function may plan any.
--
-- jit is off for the same reason: the text route's generic estimate grows with the table (cost 39,500 at
-- 1,000,000 memories; jit_above_cost is 100,000), and a Postgres built with LLVM would compile that statement
-- on every call past about 2.5 million memories. The embedded server has no JIT provider; a managed one does.
--
-- ALTER FUNCTION ... SET adds to each function's SET clauses (memory_recall keeps running as parley_app):
-- the settings hold while the function runs, so the statements planned inside it, memory_text_hits' and the
-- dynamic walk and exact scan included, are planned serial, and are restored as it returns. Changing the
-- function makes every connection compile it, and plan its statements, afresh.
ALTER FUNCTION memory_recall(text, text, text, text, vector, text, text, integer, integer, integer,
                             float8, float8, float8)
    SET max_parallel_workers_per_gather = 0
    SET jit = off;
ALTER FUNCTION memory_text_hits(text[])
    SET max_parallel_workers_per_gather = 0
    SET jit = off;
