-- id: use_after_stop
-- title: Task role credentials used after the task stopped
-- severity: critical
-- description: An API call with task A's task-role session (session name = A's task ID, issued by A's task role) more than grace_minutes after A stopped (its stoppedAt, else its first STOPPED inventory snapshot), not made by an AWS service on A's behalf (invokedBy: a service finishing work the task started). Task credentials outlive the task by hours; a call after the stop means they were copied out of the task.
-- reads: task_session_calls, tasks
-- key: task_arn
-- params: grace_minutes=5
WITH stops AS (
    SELECT task_arn, coalesce(stopped_at, observed_stopped) AS stopped_at,
           CASE WHEN stopped_at IS NOT NULL THEN 'describe-tasks' ELSE 'inventory' END AS stop_source
    FROM tasks
    WHERE coalesce(stopped_at, observed_stopped) IS NOT NULL
),
late AS (
    SELECT c.task_arn, c.cluster_arn, c.task_role_arn, c.container_instance_arn, s.stopped_at,
           s.stop_source, c.event_time, c.event_source, c.event_name, c.error_code, c.source_ip,
           c.user_agent, c.access_key_id, c.event_id,
           row_number() OVER (PARTITION BY c.task_arn ORDER BY c.event_time, c.event_id) AS rn
    FROM task_session_calls c
    JOIN stops s ON s.task_arn = c.task_arn
    WHERE c.invoked_by IS NULL
      AND c.event_time > s.stopped_at + to_minutes(getvariable('grace_minutes')::BIGINT)
      AND c.event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND c.event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
)
SELECT
    'use_after_stop' AS kind,
    'critical' AS severity,
    format('{} API calls with a task''s role session after the task stopped', count(*)) AS title,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    count(*) AS count,
    any_value(cluster_arn) AS cluster_arn,
    task_arn,
    any_value(task_role_arn) AS role_arn,
    any_value(container_instance_arn) AS host,
    CASE WHEN count(DISTINCT source_ip) = 1 THEN min(source_ip) END AS source_ip,
    json_object(
        'stopped_at', strftime(any_value(stopped_at), '%Y-%m-%dT%H:%M:%SZ'),
        'stop_source', any_value(stop_source),
        'grace_minutes', getvariable('grace_minutes')::BIGINT,
        'source_ips', list_sort(list_distinct(list(source_ip)))[1:20],
        'access_key_ids', list_sort(list_distinct(list(access_key_id)))[1:20],
        'calls', list({'time': strftime(event_time, '%Y-%m-%dT%H:%M:%SZ'),
                       'event_source': event_source, 'event_name': event_name,
                       'error_code': error_code, 'source_ip': source_ip,
                       'user_agent': user_agent, 'access_key_id': access_key_id,
                       'event_id': event_id} ORDER BY event_time, event_id)
                 FILTER (WHERE rn <= 20),
        'count', count(*)
    ) AS evidence
FROM late
GROUP BY task_arn
