-- Memory: long-term memories and profiles per (platform, workspace, user), with row-level security.
--
-- Every memory query filters on (platform, workspace_id, user_id) itself; row-level security is the
-- second wall. The memory code runs its queries as the non-superuser role `parley_app` with the
-- scope in transaction-local settings (`parley.platform`, `parley.workspace_id`, `parley.user_id`),
-- so a query that forgot its WHERE clause still sees only that person's rows. Superusers and table
-- owners bypass the policies (RLS is enabled, not forced): migrations, retention and re-embedding
-- work across tenants on purpose.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'parley_app') THEN
        CREATE ROLE parley_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;
GRANT parley_app TO CURRENT_USER;

CREATE TABLE memories (
    id bigserial PRIMARY KEY,
    platform text NOT NULL,
    workspace_id text NOT NULL,
    user_id text NOT NULL,
    content text NOT NULL,
    content_hash bytea NOT NULL,
    kind text NOT NULL DEFAULT 'turn' CHECK (kind IN ('turn', 'fact')),
    thread_id text,
    source_message_id bigint REFERENCES messages (id) ON DELETE SET NULL,
    embedding vector,
    embedding_model text,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- identical content is stored once per person; the index doubles as the scope B-tree
    CONSTRAINT memories_once UNIQUE (platform, workspace_id, user_id, content_hash)
);
CREATE INDEX memories_created ON memories (created_at);
CREATE INDEX memories_tsv ON memories USING gin (tsv);
CREATE INDEX memories_model ON memories (embedding_model);

-- Scopes large enough to get their own partial HNSW index (exact scans serve all others).
CREATE TABLE memory_scope_indexes (
    platform text NOT NULL,
    workspace_id text NOT NULL,
    user_id text NOT NULL,
    embedding_model text NOT NULL,
    dimensions integer NOT NULL,
    index_name text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, workspace_id, user_id, embedding_model)
);

CREATE TABLE profiles (
    platform text NOT NULL,
    workspace_id text NOT NULL,
    user_id text NOT NULL,
    display_name text,
    language text,
    timezone text,
    answer_style text CHECK (answer_style IN ('short', 'detailed')),
    voice_replies boolean NOT NULL DEFAULT false,
    about text,
    extra jsonb NOT NULL DEFAULT '{}'::jsonb,
    forget_requested_at timestamptz,
    forget_request_turn text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, workspace_id, user_id)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON memories, profiles, memory_scope_indexes TO parley_app;
GRANT SELECT, DELETE ON messages, turns, usage, feedback TO parley_app;
GRANT USAGE, SELECT ON SEQUENCE memories_id_seq TO parley_app;
-- tables of later migrations (guard events, ...) may hold a person's rows too: forgetting deletes them
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, DELETE ON TABLES TO parley_app;

ALTER TABLE memories ENABLE ROW LEVEL SECURITY;
ALTER TABLE profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_scope_indexes ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE turns ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE feedback ENABLE ROW LEVEL SECURITY;

CREATE POLICY memories_person ON memories TO parley_app
    USING (platform = current_setting('parley.platform', true)
           AND workspace_id = current_setting('parley.workspace_id', true)
           AND user_id = current_setting('parley.user_id', true))
    WITH CHECK (platform = current_setting('parley.platform', true)
                AND workspace_id = current_setting('parley.workspace_id', true)
                AND user_id = current_setting('parley.user_id', true));
CREATE POLICY profiles_person ON profiles TO parley_app
    USING (platform = current_setting('parley.platform', true)
           AND workspace_id = current_setting('parley.workspace_id', true)
           AND user_id = current_setting('parley.user_id', true))
    WITH CHECK (platform = current_setting('parley.platform', true)
                AND workspace_id = current_setting('parley.workspace_id', true)
                AND user_id = current_setting('parley.user_id', true));
CREATE POLICY memory_scope_indexes_person ON memory_scope_indexes TO parley_app
    USING (platform = current_setting('parley.platform', true)
           AND workspace_id = current_setting('parley.workspace_id', true)
           AND user_id = current_setting('parley.user_id', true));
CREATE POLICY messages_person ON messages TO parley_app
    USING (platform = current_setting('parley.platform', true)
           AND workspace_id = current_setting('parley.workspace_id', true)
           AND user_id = current_setting('parley.user_id', true));
CREATE POLICY turns_person ON turns TO parley_app
    USING (platform = current_setting('parley.platform', true)
           AND workspace_id = current_setting('parley.workspace_id', true)
           AND user_id = current_setting('parley.user_id', true));
CREATE POLICY usage_person ON usage TO parley_app
    USING (platform = current_setting('parley.platform', true)
           AND workspace_id = current_setting('parley.workspace_id', true)
           AND user_id = current_setting('parley.user_id', true));
CREATE POLICY feedback_person ON feedback TO parley_app
    USING (platform = current_setting('parley.platform', true)
           AND workspace_id = current_setting('parley.workspace_id', true)
           AND user_id = current_setting('parley.user_id', true));
