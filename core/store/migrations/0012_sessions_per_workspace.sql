-- API sessions are keyed by (workspace, id): an id one workspace chose is never another's to squat,
-- and a session of another workspace is indistinguishable from a missing one.
ALTER TABLE api_sessions DROP CONSTRAINT api_sessions_pkey;
ALTER TABLE api_sessions ADD PRIMARY KEY (platform, workspace_id, session_id);
