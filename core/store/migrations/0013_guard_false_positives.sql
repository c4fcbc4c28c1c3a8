-- Guard: operators mark refusals that were mistakes (`parley guard events --false-positive ID`).
-- Marked events are exported as benign rows for the classifier's development set
-- (datasets/safety/false_positives.jsonl) and show in the events list.

ALTER TABLE guard_events ADD COLUMN false_positive_at timestamptz;
CREATE INDEX guard_events_false_positive ON guard_events (false_positive_at) WHERE false_positive_at IS NOT NULL;
