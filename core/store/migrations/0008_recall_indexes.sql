-- Recall: find a memory's neighbours in its thread (the previous and next memory by id) with two
-- index probes, so a search ranks its candidates without sorting the person's whole history.
CREATE INDEX memories_thread ON memories (platform, workspace_id, user_id, thread_id, id)
    WHERE thread_id IS NOT NULL;
