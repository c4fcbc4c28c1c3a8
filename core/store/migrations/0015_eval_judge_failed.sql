-- A judge metric the judge could not measure is recorded as 'judge failed', neither passed nor failed.
ALTER TABLE eval_metric_results DROP CONSTRAINT eval_metric_results_status_check;
ALTER TABLE eval_metric_results
    ADD CONSTRAINT eval_metric_results_status_check CHECK (status IN ('passed', 'failed', 'skipped', 'judge failed'));
