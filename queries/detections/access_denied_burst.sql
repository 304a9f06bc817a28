-- id: access_denied_burst
-- title: Burst of authorization errors by one task's role session
-- severity: high
-- description: At least min_denied API calls by one task session (session name = the ID of a known task, issued by that task's task role, never its execution role) ending in an authorization error (the one definition, macro authorization_error: AccessDenied*, *UnauthorizedOperation, *NotAuthorized*, SNS's AuthorizationError, Forbidden*, refused credentials) within window_minutes: task credentials used to probe what they may do, or a task calling outside its policy.
-- reads: task_session_calls
-- key: task_arn
-- params: window_minutes=10, min_denied=5
-- judges: keys
WITH denied AS (
    SELECT task_arn, cluster_arn, task_role_arn, container_instance_arn,
           event_time, event_source, event_name, error_code, source_ip,
           user_agent, access_key_id, event_id
    FROM task_session_calls
    WHERE authorization_error(error_code)
      AND event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
),
windowed AS (
    SELECT *,
        count(*) OVER (
            PARTITION BY task_arn ORDER BY event_time
            RANGE BETWEEN CURRENT ROW
                AND to_minutes(getvariable('window_minutes')::BIGINT) FOLLOWING
        ) AS in_window
    FROM denied
),
bursts AS (
    SELECT task_arn, max(in_window) AS peak
    FROM windowed
    GROUP BY task_arn
    HAVING max(in_window) >= getvariable('min_denied')::BIGINT
),
rows AS (
    SELECT d.*, b.peak,
        row_number() OVER (PARTITION BY d.task_arn ORDER BY d.event_time, d.event_id) AS rn
    FROM denied d JOIN bursts b ON d.task_arn = b.task_arn
)
SELECT
    'access_denied_burst' AS kind,
    'high' AS severity,
    format('{} API calls refused as unauthorized for one task''s role within {} minutes',
           any_value(peak), getvariable('window_minutes')::BIGINT) AS title,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    count(*) AS count,
    any_value(cluster_arn) AS cluster_arn,
    task_arn,
    any_value(task_role_arn) AS role_arn,
    any_value(container_instance_arn) AS host,
    CASE WHEN count(DISTINCT source_ip) = 1 THEN min(source_ip) END AS source_ip,
    json_object(
        'window_minutes', getvariable('window_minutes')::BIGINT,
        'threshold', getvariable('min_denied')::BIGINT,
        'peak_in_window', any_value(peak),
        'error_codes', list_sort(list_distinct(list(error_code)))[1:20],
        'source_ips', list_sort(list_distinct(list(source_ip)))[1:20],
        'calls', list({'time': strftime(event_time, '%Y-%m-%dT%H:%M:%SZ'),
                       'event_source': event_source, 'event_name': event_name,
                       'error_code': error_code, 'source_ip': source_ip,
                       'event_id': event_id} ORDER BY event_time, event_id)
                 FILTER (WHERE rn <= 20),
        'total', count(*)
    ) AS evidence
FROM rows
GROUP BY task_arn
