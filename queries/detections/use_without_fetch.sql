-- id: use_without_fetch
-- title: Task role credentials used without a fetch by the task
-- severity: medium
-- description: An API call with task A's task-role session (session name = A's task ID, issued by A's task role) while A is covered (task_coverage: its host's collector was running and tailing, and A started inside that coverage), with no successful task-role fetch (GetCredentials, 200) of A's credentials at or before the call (allowing skew_seconds of clock skew). The credentials reached the caller some other way than the task's own fetch: copied from another host, or from a log or dump. A task that was already running when coverage began is never judged: SDKs cache credentials and refresh lazily, so its first fetch may come hours later, and once it fetched every later call has a fetch before it. Nothing outside coverage is evidence (hosts whose collector was stopped, Fargate tasks). When one role is both task and execution role, the agent's calls before the containers start are not the task's (task_session_calls).
-- reads: task_session_calls, task_coverage, credential_requests
-- key: task_arn
-- params: skew_seconds=60
WITH fetched AS (
    SELECT task_arn, event_time
    FROM credential_requests
    WHERE status BETWEEN 200 AND 299 AND event_type = 'GetCredentials' AND task_arn IS NOT NULL
),
first_fetches AS (
    SELECT task_arn, min(event_time) AS first_fetch FROM fetched GROUP BY task_arn
),
covered AS (
    SELECT task_arn, covered_from, covered_until
    FROM task_coverage
    WHERE covered_since = 'started_at'
),
unfetched AS (
    SELECT c.task_arn, c.cluster_arn, c.task_role_arn, c.container_instance_arn,
           c.event_time, c.event_source, c.event_name, c.error_code, c.source_ip,
           c.user_agent, c.access_key_id, c.event_id,
           v.covered_from, v.covered_until, f.first_fetch,
           row_number() OVER (PARTITION BY c.task_arn ORDER BY c.event_time, c.event_id) AS rn
    FROM task_session_calls c
    JOIN covered v
      ON v.task_arn = c.task_arn AND c.event_time >= v.covered_from AND c.event_time <= v.covered_until
    LEFT JOIN first_fetches f ON f.task_arn = c.task_arn
    WHERE (f.first_fetch IS NULL
           OR f.first_fetch > c.event_time + to_seconds(getvariable('skew_seconds')::BIGINT))
      AND c.event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND c.event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
)
SELECT
    'use_without_fetch' AS kind,
    'medium' AS severity,
    format('{} API calls with a task''s role session before any fetch of its credentials while its host was covered', count(*)) AS title,
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
