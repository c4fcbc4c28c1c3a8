-- The one record of which platform message carried which turn's reply, and in which conversation
-- (core/deliveries.py). Reactions and feedback buttons find their turn here, and "is Parley in this
-- thread" is a query on it. It replaces four copies of the same mapping: turns.platform_message_id,
-- messages.platform_message_id, slack_messages, and the rows of discord_messages Parley sent.
-- `channel_id` and `thread_id` are the conversation's (the turn's), not where a platform placed the
-- message; `user_id` is the person whose turn it answered, so forgetting them removes these rows too.
CREATE TABLE deliveries (
    platform text NOT NULL,
    workspace_id text NOT NULL,
    message_id text NOT NULL,
    user_id text NOT NULL,
    channel_id text NOT NULL,
    thread_id text NOT NULL,
    turn_id bigint NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
    position smallint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, workspace_id, message_id)
);
CREATE INDEX deliveries_conversation ON deliveries (platform, workspace_id, channel_id, thread_id);
CREATE INDEX deliveries_user ON deliveries (platform, workspace_id, user_id);
CREATE INDEX deliveries_turn ON deliveries (turn_id);

-- What the old tables knew, carried over: every chunk of a reply, keyed on the turn it belongs to.
INSERT INTO deliveries (platform, workspace_id, message_id, user_id, channel_id, thread_id, turn_id)
SELECT t.platform, t.workspace_id, s.channel_id || ':' || s.ts, t.user_id, t.channel_id, t.thread_id, t.id
FROM slack_messages s
JOIN turns t ON t.platform = 'slack' AND t.workspace_id = s.workspace_id AND t.platform_message_id = s.reply_message_id
ON CONFLICT DO NOTHING;
INSERT INTO deliveries (platform, workspace_id, message_id, user_id, channel_id, thread_id, turn_id)
SELECT t.platform, t.workspace_id, d.message_id, t.user_id, t.channel_id, t.thread_id, t.id
FROM discord_messages d
JOIN turns t ON t.platform = 'discord' AND t.workspace_id = d.workspace_id AND t.platform_message_id = d.reply_message_id
WHERE d.from_parley
ON CONFLICT DO NOTHING;
INSERT INTO deliveries (platform, workspace_id, message_id, user_id, channel_id, thread_id, turn_id)
SELECT platform, workspace_id, platform_message_id, user_id, channel_id, thread_id, id
FROM turns WHERE platform_message_id IS NOT NULL
ON CONFLICT DO NOTHING;

DROP FUNCTION parley_record_delivery(bigint, text);
DROP TABLE slack_messages;
DELETE FROM discord_messages WHERE from_parley;
DROP INDEX discord_messages_conversation;
ALTER TABLE discord_messages DROP COLUMN from_parley, DROP COLUMN reply_message_id;
CREATE INDEX discord_messages_conversation ON discord_messages (workspace_id, thread_id);
DROP INDEX turns_reply_message;
ALTER TABLE turns DROP COLUMN platform_message_id;
ALTER TABLE messages DROP COLUMN platform_message_id;

-- The application role: a person's rows within a workspace, like turns (migration 0011).
GRANT SELECT, INSERT, DELETE ON deliveries TO parley_app;
ALTER TABLE deliveries ENABLE ROW LEVEL SECURITY;
CREATE POLICY deliveries_scope ON deliveries TO parley_app
    USING (parley_scope(platform, workspace_id, user_id))
    WITH CHECK (parley_scope(platform, workspace_id, user_id));
