-- Keys that let the tenant tables be sharded by workspace (docs/deployment.md, "Past one primary"):
-- a distributed Postgres (Citus) needs every primary key, unique key and foreign key between sharded
-- tables to include the distribution columns, (platform, workspace_id). The serial ids stay unique on
-- their own (one sequence each); a plain index on `id` keeps lookups by id as fast as the old keys.
ALTER TABLE messages DROP CONSTRAINT messages_turn_id_fkey;
ALTER TABLE usage DROP CONSTRAINT usage_turn_id_fkey;
ALTER TABLE feedback DROP CONSTRAINT feedback_turn_id_fkey;
ALTER TABLE turn_scores DROP CONSTRAINT turn_scores_turn_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_turn_id_fkey;
ALTER TABLE memories DROP CONSTRAINT memories_source_message_id_fkey;

ALTER TABLE turns DROP CONSTRAINT turns_pkey, ADD PRIMARY KEY (platform, workspace_id, id);
ALTER TABLE messages DROP CONSTRAINT messages_pkey, ADD PRIMARY KEY (platform, workspace_id, id);
ALTER TABLE usage DROP CONSTRAINT usage_pkey, ADD PRIMARY KEY (platform, workspace_id, id);
ALTER TABLE feedback DROP CONSTRAINT feedback_pkey, ADD PRIMARY KEY (platform, workspace_id, id);
ALTER TABLE turn_scores DROP CONSTRAINT turn_scores_pkey, ADD PRIMARY KEY (platform, workspace_id, id);
ALTER TABLE guard_events DROP CONSTRAINT guard_events_pkey, ADD PRIMARY KEY (platform, workspace_id, id);
ALTER TABLE memories DROP CONSTRAINT memories_pkey, ADD PRIMARY KEY (platform, workspace_id, id);
CREATE INDEX turns_id ON turns (id);
CREATE INDEX messages_id ON messages (id);
CREATE INDEX memories_id ON memories (id);
CREATE INDEX feedback_turn ON feedback (turn_id);
CREATE INDEX turn_scores_turn ON turn_scores (turn_id);

ALTER TABLE turn_scores DROP CONSTRAINT turn_scores_turn_id_metric_key,
    ADD CONSTRAINT turn_scores_once UNIQUE (platform, workspace_id, turn_id, metric);
ALTER TABLE memory_scope_indexes DROP CONSTRAINT memory_scope_indexes_index_name_key,
    ADD CONSTRAINT memory_scope_indexes_name UNIQUE (platform, workspace_id, index_name);
ALTER TABLE discord_messages DROP CONSTRAINT discord_messages_pkey, ADD PRIMARY KEY (platform, workspace_id, message_id);
ALTER TABLE discord_threads DROP CONSTRAINT discord_threads_pkey, ADD PRIMARY KEY (platform, workspace_id, thread_id);

ALTER TABLE messages ADD CONSTRAINT messages_turn FOREIGN KEY (platform, workspace_id, turn_id)
    REFERENCES turns (platform, workspace_id, id) ON DELETE CASCADE;
ALTER TABLE usage ADD CONSTRAINT usage_turn FOREIGN KEY (platform, workspace_id, turn_id)
    REFERENCES turns (platform, workspace_id, id) ON DELETE CASCADE;
ALTER TABLE feedback ADD CONSTRAINT feedback_turn FOREIGN KEY (platform, workspace_id, turn_id)
    REFERENCES turns (platform, workspace_id, id) ON DELETE CASCADE;
ALTER TABLE turn_scores ADD CONSTRAINT turn_scores_turn FOREIGN KEY (platform, workspace_id, turn_id)
    REFERENCES turns (platform, workspace_id, id) ON DELETE CASCADE;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_turn_fk FOREIGN KEY (platform, workspace_id, turn_id)
    REFERENCES turns (platform, workspace_id, id) ON DELETE CASCADE;
ALTER TABLE memories ADD CONSTRAINT memories_source_message FOREIGN KEY (platform, workspace_id, source_message_id)
    REFERENCES messages (platform, workspace_id, id) ON DELETE SET NULL (source_message_id);
