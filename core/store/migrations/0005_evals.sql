-- Evals: suite runs and their per-metric results (trends, --compare), and online scores of live turns.
--
-- eval_runs / eval_metric_results hold scores over Parley's own goldens: no one's data.
-- turn_scores belong to a person's turn: they carry its scope, follow row-level security like the
-- other per-person tables, and go when the turn goes (forgetting a person deletes their turns).

CREATE TABLE eval_runs (
    id bigserial PRIMARY KEY,
    suite text NOT NULL,
    model text,
    judge text,
    candidate jsonb NOT NULL DEFAULT '{}'::jsonb,
    release text,
    git_ref text,
    passed boolean NOT NULL,
    failing text[] NOT NULL DEFAULT '{}',
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX eval_runs_suite ON eval_runs (suite, finished_at);
CREATE INDEX eval_runs_release ON eval_runs (finished_at) WHERE release IS NOT NULL;

CREATE TABLE eval_metric_results (
    run_id bigint NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
    metric text NOT NULL,
    kind text,
    status text NOT NULL CHECK (status IN ('passed', 'failed', 'skipped')),
    score double precision,
    threshold double precision NOT NULL,
    direction text NOT NULL CHECK (direction IN ('min', 'max')),
    cases integer NOT NULL DEFAULT 0,
    failures integer NOT NULL DEFAULT 0,
    reason text,
    PRIMARY KEY (run_id, metric)
);

CREATE TABLE turn_scores (
    id bigserial PRIMARY KEY,
    turn_id bigint NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
    platform text NOT NULL,
    workspace_id text NOT NULL,
    user_id text NOT NULL,
    metric text NOT NULL,
    score double precision,
    reason text,
    error text,
    judge text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (turn_id, metric)
);
CREATE INDEX turn_scores_workspace ON turn_scores (platform, workspace_id, created_at);
CREATE INDEX turn_scores_user ON turn_scores (platform, workspace_id, user_id);

ALTER TABLE turn_scores ENABLE ROW LEVEL SECURITY;
CREATE POLICY turn_scores_person ON turn_scores TO parley_app
    USING (platform = current_setting('parley.platform', true)
           AND workspace_id = current_setting('parley.workspace_id', true)
           AND user_id = current_setting('parley.user_id', true));
