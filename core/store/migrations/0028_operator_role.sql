-- The admin API (/v1/admin and the /admin page) reads across workspaces: usage, feedback, refusals,
-- evaluation runs, the audit log, limits. A serving process does that as `parley_operator`, never as the
-- owner, so no superuser connection is opened while serving (core/store/roles.py makes its login, as for
-- `parley_app`). The role is no superuser and has no BYPASSRLS: it reads the report tables through
-- SELECT policies of its own, may mark a refusal as a false positive, and changes settings and limits the
-- way a turn does, inside a tenant scope as `parley_app` (it is a member, so the scope can SET ROLE).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'parley_operator') THEN
        CREATE ROLE parley_operator NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;
GRANT parley_app TO parley_operator;
GRANT USAGE ON SCHEMA public TO parley_operator;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['turns', 'messages', 'usage', 'feedback', 'guard_events', 'audit_log',
                             'spend_limits', 'workspace_settings', 'eval_runs', 'eval_metric_results']
    LOOP
        EXECUTE format('GRANT SELECT ON %I TO parley_operator', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT TO parley_operator USING (true)', t || '_operator', t);
    END LOOP;
END
$$;
GRANT UPDATE (false_positive_at) ON guard_events TO parley_operator;
CREATE POLICY guard_events_operator_marks ON guard_events FOR UPDATE TO parley_operator USING (true) WITH CHECK (true);
