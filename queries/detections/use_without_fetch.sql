-- id: use_without_fetch
-- title: Task role credentials used without a fetch by the task
-- severity: medium
-- description: An API call with task A's task-role session (session name = A's task ID, issued by A's task role) while A's container instance is covered by the collector (from its first credential_requests row to the last row collected), with no successful (200) GetCredentials fetch for A at or before the call (allowing skew_seconds of clock skew). The credentials reached the caller some other way than the task's own fetch: copied from another host, or from a log or dump.
-- reads: task_session_calls, credential_requests
-- key: task_arn
-- params: skew_seconds=60
WITH coverage AS (
    SELECT container_instance_arn, min(event_time) AS covered_from
    FROM credential_requests
    WHERE container_instance_arn IS NOT NULL
    GROUP BY container_instance_arn
),
data_end AS (
    SELECT max(event_time) AS covered_until FROM credential_requests
),
fetches AS (
    SELECT task_arn, min(event_time) AS first_fetch
    FROM credential_requests
    WHERE status = 200 AND event_type = 'GetCredentials' AND task_arn IS NOT NULL
    GROUP BY task_arn
),
unfetched AS (
    SELECT c.task_arn, c.cluster_arn, c.task_role_arn, c.container_instance_arn,
           c.event_time, c.event_source, c.event_name, c.error_code, c.source_ip,
           c.user_agent, c.access_key_id, c.event_id,
           v.covered_from, d.covered_until, f.first_fetch,
           row_number() OVER (PARTITION BY c.task_arn ORDER BY c.event_time, c.event_id) AS rn
    FROM task_session_calls c
    JOIN coverage v ON v.container_instance_arn = c.container_instance_arn
    CROSS JOIN data_end d
    LEFT JOIN fetches f ON f.task_arn = c.task_arn
    WHERE c.event_time >= v.covered_from
      AND c.event_time <= d.covered_until
      AND (f.first_fetch IS NULL
           OR f.first_fetch > c.event_time + to_seconds(getvariable('skew_seconds')::BIGINT))
      AND c.event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND c.event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
)
SELECT
    'use_without_fetch' AS kind,
    'medium' AS severity,
    format('{} API calls with a task''s role session before any fetch of its credentials on a covered host', count(*)) AS title,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    count(*) AS count,
    any_value(cluster_arn) AS cluster_arn,
    task_arn,
    any_value(task_role_arn) AS role_arn,
    any_value(container_instance_arn) AS host,
    CASE WHEN count(DISTINCT source_ip) = 1 THEN min(source_ip) END AS source_ip,
    json_object(
        'covered_from', strftime(any_value(covered_from), '%Y-%m-%dT%H:%M:%SZ'),
        'covered_until', strftime(any_value(covered_until), '%Y-%m-%dT%H:%M:%SZ'),
        'first_fetch', strftime(any_value(first_fetch), '%Y-%m-%dT%H:%M:%SZ'),
        'skew_seconds', getvariable('skew_seconds')::BIGINT,
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
FROM unfetched
GROUP BY task_arn
