-- Facts: what Parley knows, as short sentences in the person's words, apart from the raw turns
-- (which stay in `memories` for recall). A fact belongs to one scope:
--   person    (user_id = the person): private, only ever in that person's prompts;
--   channel   (user_id = '', channel_id set): told for a channel, in every prompt in that channel;
--   workspace (user_id = '', channel_id = ''): told for the workspace, in every prompt in it.
-- Facts are never rewritten: a correction closes the old row (`valid_to`, `superseded_by`) and adds a
-- new one, so the history stays; `expires_at` ends a fact by itself ("on holiday until Friday").
-- `author_id` is who said it; forgetting a person deletes their person facts and blanks their
-- authorship of shared facts (the team's fact stays).
CREATE TABLE facts (
    id bigserial,
    platform text NOT NULL,
    workspace_id text NOT NULL,
    scope text NOT NULL CHECK (scope IN ('person', 'channel', 'workspace')),
    user_id text NOT NULL DEFAULT '',
    channel_id text NOT NULL DEFAULT '',
    content text NOT NULL,
    subject text,
    author_id text,
    said_in text,
    source_message_id bigint,
    said_at timestamptz NOT NULL DEFAULT now(),
    valid_to timestamptz,
    expires_at timestamptz,
    superseded_by bigint,
    CHECK ((scope = 'person') = (user_id <> '')),
    CHECK ((scope = 'channel') = (channel_id <> '')),
    -- keys hold the distribution columns, (platform, workspace_id): docs/deployment.md, "Past one primary"
    PRIMARY KEY (platform, workspace_id, id),
    FOREIGN KEY (platform, workspace_id, source_message_id) REFERENCES messages (platform, workspace_id, id)
        ON DELETE SET NULL (source_message_id),
    FOREIGN KEY (platform, workspace_id, superseded_by) REFERENCES facts (platform, workspace_id, id)
        ON DELETE SET NULL (superseded_by)
);
CREATE INDEX facts_id ON facts (id);
-- The facts in force for a person or a channel: the prompt reads these on every turn.
CREATE INDEX facts_current ON facts (platform, workspace_id, user_id, channel_id) WHERE valid_to IS NULL;
CREATE INDEX facts_scope ON facts (platform, workspace_id, user_id, channel_id, said_at);
CREATE INDEX facts_author ON facts (platform, workspace_id, author_id) WHERE author_id IS NOT NULL;
-- at most one fact in force per content and scope
CREATE UNIQUE INDEX facts_once ON facts (platform, workspace_id, user_id, channel_id, lower(content))
    WHERE valid_to IS NULL;

-- Row-level security: a workspace's scope sees all of its facts; a person's scope (user set) sees their
-- own, the workspace's, and the channel's named in `parley.channel_id` (the channel of the turn).
CREATE FUNCTION parley_fact_visible(row_platform text, row_workspace text, row_scope text, row_user text,
                                    row_channel text) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
        SELECT parley_workspace(row_platform, row_workspace)
           AND CASE row_scope
               WHEN 'person' THEN coalesce(nullif(current_setting('parley.user_id', true), ''), row_user) = row_user
               WHEN 'channel' THEN nullif(current_setting('parley.user_id', true), '') IS NULL
                                   OR row_channel = current_setting('parley.channel_id', true)
               ELSE true
           END
    $$;

ALTER TABLE facts ENABLE ROW LEVEL SECURITY;
CREATE POLICY facts_scope ON facts TO parley_app
    USING (parley_fact_visible(platform, workspace_id, scope, user_id, channel_id))
    WITH CHECK (parley_fact_visible(platform, workspace_id, scope, user_id, channel_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON facts TO parley_app;
GRANT USAGE, SELECT ON SEQUENCE facts_id_seq TO parley_app;

-- Facts the model extracted before are moved out of the raw memories.
INSERT INTO facts (platform, workspace_id, scope, user_id, content, author_id, source_message_id, said_at)
SELECT DISTINCT ON (platform, workspace_id, user_id, lower(content))
       platform, workspace_id, 'person', user_id, content, user_id, source_message_id, created_at
FROM memories WHERE kind = 'fact'
ORDER BY platform, workspace_id, user_id, lower(content), created_at;
DELETE FROM memories WHERE kind = 'fact';
