-- The `job.finished` notifications of executions that have just ended (docs/api.md#jobfinished), written to the outbox
-- in the transaction that ends them: the relay publishes them after commit, at least once, to `jobs.finished.<client>`.
CREATE OR REPLACE FUNCTION batch.job_finished(ids bigint[])
 RETURNS void
 LANGUAGE sql
AS $$
  INSERT INTO batch.outbox (routing_key, payload, client_id)
  SELECT 'jobs.finished.' || c.name,
         json_build_object(
           'type', 'job.finished', 'client', c.name, 'executionId', e.id::text, 'job', e.job,
           'instanceId', e.instance_id::text, 'parameters', e.parameters, 'status', e.status,
           'exitStatus', json_build_object('code', e.exit_code, 'description', e.exit_description),
           'readCount', t.read_count, 'writeCount', t.write_count, 'skipCount', t.skip_count,
           'startedAt', to_char(e.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'endedAt', to_char(e.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text,
         c.id
    FROM batch.job_executions e
    JOIN batch.clients c ON c.id = e.client_id
   CROSS JOIN LATERAL (
     SELECT coalesce(sum(s.read_count), 0) AS read_count, coalesce(sum(s.write_count), 0) AS write_count,
            coalesce(sum(s.read_skip_count + s.process_skip_count + s.write_skip_count), 0) AS skip_count
       FROM batch.step_executions s WHERE s.job_execution_id = e.id) t
   WHERE e.id = ANY (ids)
   ORDER BY e.id
$$;
COMMENT ON FUNCTION batch.job_finished(bigint[]) IS 'Writes the job.finished notifications of executions that have just ended to the outbox, in the transaction that ends them. Called wherever an execution ends: by its worker, a stop or abandon, the reaping of lost leases.';
