-- A turn's messages by turn: recording a reply's delivery updates them by turn_id, which without
-- this index scanned the whole messages table on every delivery (seen under load).
CREATE INDEX messages_turn ON messages (turn_id);
