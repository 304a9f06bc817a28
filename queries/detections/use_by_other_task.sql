-- id: use_by_other_task
-- title: Task role credentials used from another task's address
-- severity: critical
-- description: An API call with task A's task-role session (session name = A's task ID, issued by A's task role) whose private (RFC 1918) sourceIPAddress belongs at that time to a different task B: one of B's ENI addresses (tasks.private_ips) while B was running (started_at <= call time <= stopped_at, or still running). Calls through a VPC endpoint count too. An address that several tasks hold at that time belongs to none of them. A's credentials were taken and used by the workload of another task.
-- reads: task_session_calls, tasks
-- key: task_arn
-- params:
WITH calls AS (
    SELECT task_arn, cluster_arn, task_role_arn, container_instance_arn,
           event_time, event_source, event_name, error_code, source_ip, vpc_endpoint_id,
           user_agent, access_key_id, event_id
    FROM task_session_calls
    WHERE regexp_matches(source_ip,
              '^(10\.[0-9]{1,3}|172\.(1[6-9]|2[0-9]|3[01])|192\.168)\.[0-9]{1,3}\.[0-9]{1,3}$')
      AND event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
),
addresses AS (
    SELECT task_arn AS owner_arn, unnest(private_ips) AS ip,
           coalesce(started_at, first_observed) AS owned_from,
           coalesce(stopped_at, observed_stopped, TIMESTAMP 'infinity') AS owned_until
    FROM tasks
),
owned AS (
    SELECT c.task_arn, c.event_id, any_value(a.owner_arn) AS owner_arn
    FROM calls c
    JOIN addresses a
      ON a.ip = c.source_ip AND a.owned_from <= c.event_time AND c.event_time <= a.owned_until
    GROUP BY c.task_arn, c.event_id
    HAVING count(DISTINCT a.owner_arn) = 1
),
foreign_calls AS (
    SELECT c.*, o.owner_arn,
           row_number() OVER (PARTITION BY c.task_arn ORDER BY c.event_time, c.event_id) AS rn
    FROM calls c
    JOIN owned o ON o.task_arn = c.task_arn AND o.event_id = c.event_id
    WHERE o.owner_arn <> c.task_arn
)
SELECT
    'use_by_other_task' AS kind,
    'critical' AS severity,
    format('{} API calls with a task''s role session from another task''s address', count(*)) AS title,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    count(*) AS count,
    any_value(cluster_arn) AS cluster_arn,
    task_arn,
    any_value(task_role_arn) AS role_arn,
    any_value(container_instance_arn) AS host,
    CASE WHEN count(DISTINCT source_ip) = 1 THEN min(source_ip) END AS source_ip,
    json_object(
        'other_task_arns', list_sort(list_distinct(list(owner_arn)))[1:20],
        'addresses', list_sort(list_distinct(list(source_ip)))[1:20],
        'calls', list({'time': strftime(event_time, '%Y-%m-%dT%H:%M:%SZ'),
                       'event_source': event_source, 'event_name': event_name,
                       'error_code': error_code, 'source_ip': source_ip,
                       'other_task_arn': owner_arn, 'vpc_endpoint_id': vpc_endpoint_id,
                       'user_agent': user_agent, 'access_key_id': access_key_id,
                       'event_id': event_id} ORDER BY event_time, event_id)
                 FILTER (WHERE rn <= 20),
        'count', count(*)
    ) AS evidence
FROM foreign_calls
GROUP BY task_arn
