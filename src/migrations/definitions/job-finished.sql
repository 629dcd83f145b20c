-- The `job.finished` notifications of executions that have just ended (docs/api.md#jobfinished), written to the outbox
-- in the transaction that ends them: the relay publishes them after commit, at least once, to `jobs.finished.<client>`.
-- The same notification is owed to each job alert the execution matches (its job, its client, and FAILED or
-- COMPLETED_WITH_SKIPS as the alert asks): a delivery each, which the alert delivery loop calls the webhook with.
CREATE OR REPLACE FUNCTION batch.job_finished(ids bigint[])
 RETURNS void
 LANGUAGE sql
AS $$
  WITH finished AS (
    SELECT e.id, e.job, e.client_id, e.status, e.exit_code, c.name AS client,
           json_build_object(
             'type', 'job.finished', 'client', c.name, 'executionId', e.id::text, 'job', e.job,
             'instanceId', e.instance_id::text, 'parameters', e.parameters, 'status', e.status,
             'exitStatus', json_build_object('code', e.exit_code, 'description', e.exit_description),
             'readCount', t.read_count, 'writeCount', t.write_count, 'skipCount', t.skip_count,
             'startedAt', to_char(e.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
             'endedAt', to_char(e.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) AS event
      FROM batch.job_executions e
      JOIN batch.clients c ON c.id = e.client_id
     CROSS JOIN LATERAL (
       SELECT coalesce(sum(s.read_count), 0) AS read_count, coalesce(sum(s.write_count), 0) AS write_count,
              coalesce(sum(s.read_skip_count + s.process_skip_count + s.write_skip_count), 0) AS skip_count
         FROM batch.step_executions s WHERE s.job_execution_id = e.id) t
     WHERE e.id = ANY (ids)
  ), notified AS (
    INSERT INTO batch.outbox (routing_key, payload, client_id)
    SELECT 'jobs.finished.' || f.client, f.event::text, f.client_id FROM finished f ORDER BY f.id
  )
  INSERT INTO batch.alert_deliveries (alert, execution_id, event)
  SELECT a.name, f.id, f.event::jsonb
    FROM finished f
    JOIN batch.job_alerts a
      ON (a.job IS NULL OR a.job = f.job) AND (a.client_id IS NULL OR a.client_id = f.client_id)
     AND (f.status = 'FAILED' AND 'FAILED' = ANY (a.on_exit)
          OR f.status = 'COMPLETED' AND f.exit_code = 'COMPLETED_WITH_SKIPS' AND 'COMPLETED_WITH_SKIPS' = ANY (a.on_exit))
   ORDER BY f.id, a.name
$$;
COMMENT ON FUNCTION batch.job_finished(bigint[]) IS 'Writes the job.finished notifications of executions that have just ended to the outbox, and the deliveries owed to the job alerts they match, in the transaction that ends them. Called wherever an execution ends: by its worker, a stop or abandon, the reaping of lost leases.';
