-- id: fetch_denied_burst
-- title: Burst of refused credential requests from one address
-- severity: high; medium when every refused request was throttled (429)
-- description: At least min_failures non-2xx requests to the task credential endpoint (400 not found, 429 throttled, 5xx) from one requester address on one host within window_minutes: someone guessing credential IDs or hammering the endpoint.
-- reads: credential_requests, audit_hosts
-- key: host, source_ip
-- params: window_minutes=10, min_failures=5
WITH failed AS (
    SELECT event_time, status, host, source_ip, user_agent, request_path
    FROM credential_requests
    WHERE (status < 200 OR status > 299)
      AND event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
),
windowed AS (
    SELECT *,
        count(*) OVER (
            PARTITION BY host, source_ip ORDER BY event_time
            RANGE BETWEEN CURRENT ROW
                AND to_minutes(getvariable('window_minutes')::BIGINT) FOLLOWING
        ) AS in_window
    FROM failed
),
bursts AS (
    SELECT host, source_ip
    FROM windowed
    GROUP BY host, source_ip
    HAVING max(in_window) >= getvariable('min_failures')::BIGINT
),
rows AS (
    SELECT f.*, row_number() OVER (PARTITION BY f.host, f.source_ip ORDER BY f.event_time) AS rn
    FROM failed f
    JOIN bursts b ON f.host = b.host AND f.source_ip IS NOT DISTINCT FROM b.source_ip
)
SELECT
    'fetch_denied_burst' AS kind,
    CASE WHEN bool_and(status = 429) THEN 'medium' ELSE 'high' END AS severity,
    format('{} refused credential requests from {} on one host', count(*), coalesce(source_ip, '-')) AS title,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    count(*) AS count,
    NULL AS cluster_arn,
    NULL AS task_arn,
    NULL AS role_arn,
    host_arn(host) AS host,
    source_ip,
    json_object(
        'host_name', host,
        'max_in_window', (SELECT max(w.in_window) FROM windowed w
                          WHERE w.host = rows.host AND w.source_ip IS NOT DISTINCT FROM rows.source_ip),
        'window_minutes', getvariable('window_minutes')::BIGINT,
        'statuses', (SELECT json_group_object(s::VARCHAR, n) FROM (
                        SELECT r2.status AS s, count(*) AS n FROM rows r2
                        WHERE r2.host = rows.host AND r2.source_ip IS NOT DISTINCT FROM rows.source_ip
                        GROUP BY r2.status ORDER BY r2.status)),
        'user_agents', list_sort(list_distinct(list(user_agent)))[1:20],
        'requests', list({'time': strftime(event_time, '%Y-%m-%dT%H:%M:%SZ'), 'status': status,
                          'path': request_path, 'user_agent': user_agent} ORDER BY event_time)
                    FILTER (WHERE rn <= 20),
        'total', count(*)
    ) AS evidence
FROM rows
GROUP BY host, source_ip
