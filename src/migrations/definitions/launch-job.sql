-- A launch of a job instance (docs/jobs.md#the-model), decided here so that concurrent launches race in the database:
-- the instance's row is inserted or locked first, so launches of one instance take turns, and each sees the
-- executions the one before committed. Answers the new execution and LAUNCHED, or the execution that stands in the
-- way and why: JOB_EXECUTION_RUNNING (one not ended), JOB_INSTANCE_COMPLETE (one COMPLETED or ABANDONED),
-- JOB_NOT_RESTARTABLE (the job is never started twice), START_LIMIT_EXCEEDED (as many starts as the job allows).
CREATE OR REPLACE FUNCTION batch.launch_job(
  client_id bigint, job text, identity text, parameters jsonb, options jsonb, start_limit integer,
  restartable boolean)
 RETURNS TABLE(execution_id bigint, outcome text)
 LANGUAGE plpgsql
AS $$
  DECLARE
    instance bigint;
    blocking record;
    starts integer;
    latest bigint;
  BEGIN
    INSERT INTO batch.job_instances AS i (job, client_id, identity, parameters)
    VALUES (launch_job.job, launch_job.client_id, launch_job.identity, launch_job.parameters)
    ON CONFLICT ON CONSTRAINT job_instances_identity DO UPDATE SET job = i.job
    RETURNING i.id INTO instance;
    SELECT e.id, e.status INTO blocking FROM batch.job_executions e
     WHERE e.instance_id = instance AND e.status IN ('STARTING', 'STARTED', 'STOPPING', 'COMPLETED', 'ABANDONED')
     ORDER BY e.id DESC LIMIT 1;
    IF FOUND THEN
      RETURN QUERY SELECT blocking.id,
        CASE WHEN blocking.status IN ('COMPLETED', 'ABANDONED') THEN 'JOB_INSTANCE_COMPLETE' ELSE 'JOB_EXECUTION_RUNNING' END;
      RETURN;
    END IF;
    SELECT count(*), max(e.id) INTO starts, latest FROM batch.job_executions e WHERE e.instance_id = instance;
    IF starts > 0 AND NOT restartable THEN
      RETURN QUERY SELECT latest, 'JOB_NOT_RESTARTABLE';
    ELSIF starts >= start_limit THEN
      RETURN QUERY SELECT latest, 'START_LIMIT_EXCEEDED';
    ELSE
      RETURN QUERY
        INSERT INTO batch.job_executions (instance_id, job, client_id, parameters, options, status, start_count)
        VALUES (instance, launch_job.job, launch_job.client_id, launch_job.parameters, launch_job.options, 'STARTING',
                starts + 1)
        RETURNING id, 'LAUNCHED';
    END IF;
  END
$$;
COMMENT ON FUNCTION batch.launch_job(bigint, text, text, jsonb, jsonb, integer, boolean) IS 'Launches a job instance, or answers the execution in the way and why, so that concurrent launches race in the database. Called by the job operator.';
