-- id: use_after_stop
-- title: Task role credentials used after the task stopped
-- severity: critical
-- description: An API call with task A's task-role session (session name = A's task ID, issued by A's task role) more than grace_minutes after A's stoppedAt. Task credentials outlive the task by hours; a call after the stop means they were copied out of the task.
-- reads: cloudtrail_events, tasks
-- key: task_arn
-- params: grace_minutes=5
WITH late AS (
    SELECT t.task_arn, t.cluster_arn, t.task_role_arn, t.container_instance_arn, t.stopped_at,
           e.event_time, e.event_source, e.event_name, e.error_code, e.source_ip,
           e.user_agent, e.access_key_id, e.event_id,
           row_number() OVER (PARTITION BY t.task_arn ORDER BY e.event_time, e.event_id) AS rn
    FROM cloudtrail_events e
    JOIN tasks t
      ON e.session_name = t.task_id
     AND e.session_issuer_arn = t.task_role_arn
    WHERE t.stopped_at IS NOT NULL
      AND e.event_time > t.stopped_at + to_minutes(getvariable('grace_minutes')::BIGINT)
      AND e.event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND e.event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
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
