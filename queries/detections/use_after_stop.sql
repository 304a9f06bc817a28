-- id: use_after_stop
-- title: Task role credentials used after the task stopped
-- severity: critical
-- description: An API call with task A's task-role session (session name = A's task ID, issued by A's task role) more than grace_minutes after A's stoppedAt. Task credentials outlive the task by hours; a call after the stop means they were copied out of the task.
-- reads: task_session_calls
-- key: task_arn
-- params: grace_minutes=5
WITH late AS (
    SELECT task_arn, cluster_arn, task_role_arn, container_instance_arn, stopped_at,
           event_time, event_source, event_name, error_code, source_ip,
           user_agent, access_key_id, event_id,
           row_number() OVER (PARTITION BY task_arn ORDER BY event_time, event_id) AS rn
    FROM task_session_calls
    WHERE stopped_at IS NOT NULL
      AND event_time > stopped_at + to_minutes(getvariable('grace_minutes')::BIGINT)
      AND event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
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
