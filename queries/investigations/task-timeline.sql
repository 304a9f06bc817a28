-- id: task-timeline
-- title: Everything about one task, in time order
-- description: One task (--task: its ARN or its ID), oldest first: its ECS lifecycle (created, started, stopping, stopped from describe-tasks; first seen and seen stopped by the agent inventory), every request for its credentials in the audit log (task role and execution role), and every CloudTrail call made with its sessions, marked role_kind task or execution (a session named with the task's ID whose role is neither of the task's roles is shown with role_kind NULL). result is the HTTP status of a fetch, the error code of a call (OK when it succeeded) or the stop reason; detail the host of a fetch, the region and principal of a call; event_id the CloudTrail eventID, or file:offset of the audit line.
-- params: task
-- reads: tasks, fetches, calls
WITH wanted AS (
    SELECT regexp_extract(getvariable('task'), '[^/]+$') AS task_id
),
t AS (
    SELECT tasks.* FROM tasks JOIN wanted ON tasks.task_id = wanted.task_id
),
timeline AS (
    SELECT created_at AS time, 'ecs' AS source, 'created' AS event,
           task_definition_arn AS detail
    FROM t WHERE created_at IS NOT NULL
    UNION ALL BY NAME
    SELECT started_at AS time, 'ecs' AS source, 'started' AS event,
           coalesce(container_instance_arn, host) AS detail
    FROM t WHERE started_at IS NOT NULL
    UNION ALL BY NAME
    SELECT stopping_at AS time, 'ecs' AS source, 'stopping' AS event, NULL AS detail
    FROM t WHERE stopping_at IS NOT NULL
    UNION ALL BY NAME
    SELECT stopped_at AS time, 'ecs' AS source, 'stopped' AS event, stopped_reason AS result
    FROM t WHERE stopped_at IS NOT NULL
    UNION ALL BY NAME
    SELECT first_observed AS time, 'inventory' AS source, 'first seen by the agent' AS event,
           host AS detail
    FROM t WHERE first_observed IS NOT NULL
    UNION ALL BY NAME
    SELECT observed_stopped AS time, 'inventory' AS source, 'seen stopped by the agent' AS event,
           host AS detail
    FROM t WHERE observed_stopped IS NOT NULL
    UNION ALL BY NAME
    SELECT f.event_time AS time, 'audit' AS source,
           coalesce(f.event_type, 'credential request') AS event, f.role_kind,
           f.source_ip || coalesce(':' || f.source_port::VARCHAR, '') AS source_ip,
           f.user_agent, f.status::VARCHAR AS result, f.host AS detail,
           f.source_file || ':' || f.byte_offset::VARCHAR AS event_id
    FROM fetches f JOIN wanted w ON f.task_id = w.task_id
    UNION ALL BY NAME
    SELECT c.event_time AS time, 'cloudtrail' AS source, c.action AS event, c.role_kind,
           c.source_ip, c.user_agent, coalesce(c.error_code, 'OK') AS result,
           c.aws_region || ' ' || c.principal_arn AS detail, c.event_id
    FROM calls c JOIN wanted w
      ON c.task_id = w.task_id OR (c.task_id IS NULL AND c.session_name = w.task_id)
)
SELECT time, source, event, role_kind, source_ip, user_agent, result, detail, event_id
FROM timeline
WHERE time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
  AND time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
ORDER BY time, source, event_id
