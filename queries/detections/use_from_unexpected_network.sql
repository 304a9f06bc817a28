-- id: use_from_unexpected_network
-- title: Task role credentials used from outside the cluster's networks
-- severity: critical
-- description: An API call with task A's task-role session (session name = A's task ID, issued by A's task role) from a public sourceIPAddress that is none of: an AWS service acting for the session (invokedBy, a service host name, AWS Internal: anything that is not an IP address); a call through a VPC endpoint (its private address is judged by use_by_other_task); a private address (same); an egress address expected for A's cluster, either listed in expected_egress (space-separated addresses) or seen in the calls of at least min_sessions distinct task sessions of that cluster (NAT gateways and the like). Task credentials in use from somewhere else were taken out of the task.
-- reads: task_session_calls
-- key: task_arn
-- params: min_sessions=3, expected_egress=
WITH public_calls AS (
    SELECT task_arn, cluster_arn, task_role_arn, container_instance_arn,
           event_time, event_source, event_name, error_code, source_ip, user_agent,
           access_key_id, event_id
    FROM task_session_calls
    WHERE invoked_by IS NULL
      AND vpc_endpoint_id IS NULL
      AND (regexp_matches(source_ip, '^[0-9]{1,3}(\.[0-9]{1,3}){3}$')
           OR regexp_matches(source_ip, '^[0-9a-fA-F:]+:[0-9a-fA-F:.]*$'))
      AND NOT regexp_matches(source_ip,
              '^(10\.|172\.(1[6-9]|2[0-9]|3[01])\.|192\.168\.|127\.|169\.254\.|[fF][cdCD][0-9a-fA-F]{2}:|[fF][eE]80:|::1$)')
),
learned AS (
    -- Over all stored calls, not only the judged window: a baseline.
    SELECT cluster_arn, source_ip, count(DISTINCT task_arn) AS sessions
    FROM public_calls
    GROUP BY cluster_arn, source_ip
    HAVING count(DISTINCT task_arn) >= getvariable('min_sessions')::BIGINT
),
configured AS (
    SELECT DISTINCT trim(ip) AS source_ip
    FROM unnest(string_split(coalesce(getvariable('expected_egress'), ''), ' ')) AS s(ip)
    WHERE trim(ip) <> ''
),
egress AS (
    SELECT cluster_arn, list_sort(list(source_ip))[1:20] AS ips
    FROM learned GROUP BY cluster_arn
),
unexpected AS (
    SELECT p.*,
           row_number() OVER (PARTITION BY p.task_arn ORDER BY p.event_time, p.event_id) AS rn
    FROM public_calls p
    WHERE p.event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND p.event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
      AND NOT EXISTS (SELECT 1 FROM learned l
                      WHERE l.cluster_arn IS NOT DISTINCT FROM p.cluster_arn
                        AND l.source_ip = p.source_ip)
      AND p.source_ip NOT IN (SELECT source_ip FROM configured)
)
SELECT
    'use_from_unexpected_network' AS kind,
    'critical' AS severity,
    format('{} API calls with a task''s role session from {} outside the cluster''s networks',
           count(*), CASE WHEN count(DISTINCT source_ip) = 1 THEN min(source_ip)
                          ELSE format('{} addresses', count(DISTINCT source_ip)) END) AS title,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    count(*) AS count,
    any_value(unexpected.cluster_arn) AS cluster_arn,
    unexpected.task_arn,
    any_value(task_role_arn) AS role_arn,
    any_value(container_instance_arn) AS host,
    CASE WHEN count(DISTINCT source_ip) = 1 THEN min(source_ip) END AS source_ip,
    json_object(
        'source_ips', list_sort(list_distinct(list(source_ip)))[1:20],
        'expected_egress', any_value(egress.ips),
        'min_sessions', getvariable('min_sessions')::BIGINT,
        'user_agents', list_sort(list_distinct(list(user_agent)))[1:10],
        'access_key_ids', list_sort(list_distinct(list(access_key_id)))[1:20],
        'calls', list({'time': strftime(event_time, '%Y-%m-%dT%H:%M:%SZ'),
                       'event_source': event_source, 'event_name': event_name,
                       'error_code': error_code, 'source_ip': source_ip,
                       'user_agent': user_agent, 'access_key_id': access_key_id,
                       'event_id': event_id} ORDER BY event_time, event_id)
                 FILTER (WHERE rn <= 20),
        'count', count(*)
    ) AS evidence
FROM unexpected
LEFT JOIN egress ON egress.cluster_arn IS NOT DISTINCT FROM unexpected.cluster_arn
GROUP BY unexpected.task_arn
