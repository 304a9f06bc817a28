-- id: fetch_denied_burst
-- title: Burst of refused credential requests from one address
-- severity: high when the address made no successful fetch within near_minutes either side of the burst (nothing there owns credentials: probing) or a hand tool sent the requests; medium otherwise (a client stuck on a stale credential ID), and medium whenever every request was throttled (429)
-- description: At least min_failures refused requests to the task credential endpoint (400: no or unknown credential ID; 429: throttled) from one requester address on one host within window_minutes. A 5xx means the agent could not serve (it restarts, it has no credentials yet) and never counts: real SDKs retry 3 to 5 times on every API call while the agent is unavailable. A client holding a wrong credential ID repeats its bursts on every call, indefinitely: from an address whose other clients fetch fine, that is a misconfiguration (medium); from an address that never fetched successfully, or with curl, Wget and the like, it is someone guessing IDs (high).
-- reads: audit_lines
-- key: host, source_ip
-- params: window_minutes=10, min_failures=5, near_minutes=60
-- judges: keys
WITH refused AS (
    -- `host` is the container instance that wrote the line (audit_lines): host names can repeat
    SELECT event_time, status, instance AS host, host AS host_name, source_ip, user_agent, request_path
    FROM audit_lines
    WHERE status IN (400, 429)
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
    FROM refused
),
bursts AS (
    SELECT host, source_ip, max(in_window) AS peak
    FROM windowed
    GROUP BY host, source_ip
    HAVING max(in_window) >= getvariable('min_failures')::BIGINT
),
rows AS (
    SELECT f.*, b.peak, row_number() OVER (PARTITION BY f.host, f.source_ip ORDER BY f.event_time) AS rn
    FROM refused f
    JOIN bursts b ON f.host = b.host AND f.source_ip IS NOT DISTINCT FROM b.source_ip
),
spans AS (
    SELECT host, source_ip, min(event_time) AS first_refused, max(event_time) AS last_refused
    FROM rows GROUP BY host, source_ip
),
-- successful fetches from the same address near the burst: a client there holds credentials
near AS (
    SELECT s.host, s.source_ip, count(c.event_time) AS ok_fetches,
           list_sort(list_distinct(list(c.task_arn) FILTER (WHERE c.task_arn IS NOT NULL)))[1:20] AS tasks
    FROM spans s
    LEFT JOIN audit_lines c
      ON c.instance = s.host AND c.source_ip = s.source_ip
     AND c.status BETWEEN 200 AND 299
     AND c.event_time >= s.first_refused - to_minutes(getvariable('near_minutes')::BIGINT)
     AND c.event_time <= s.last_refused + to_minutes(getvariable('near_minutes')::BIGINT)
    GROUP BY s.host, s.source_ip
),
statuses AS (
    SELECT host, source_ip, json_group_object(status::VARCHAR, n) AS by_status
    FROM (SELECT host, source_ip, status, count(*) AS n FROM rows GROUP BY ALL ORDER BY status)
    GROUP BY host, source_ip
)
SELECT
    'fetch_denied_burst' AS kind,
    CASE WHEN bool_and(r.status = 429) THEN 'medium'
         WHEN bool_or(hand_tool_client(r.user_agent)) THEN 'high'
         WHEN any_value(n.ok_fetches) = 0 THEN 'high'
         ELSE 'medium' END AS severity,
    format('{} refused credential requests from {} on one host{}', count(*),
           coalesce(r.source_ip, '-'),
           CASE WHEN bool_and(r.status = 429) THEN ' (throttled)'
                WHEN bool_or(hand_tool_client(r.user_agent)) THEN ' by a hand tool'
                WHEN any_value(n.ok_fetches) = 0 THEN ', which never fetched successfully'
                ELSE ', whose other requests succeed (a stale credential ID?)' END) AS title,
    min(r.event_time) AS first_seen,
    max(r.event_time) AS last_seen,
    count(*) AS count,
    NULL AS cluster_arn,
    NULL AS task_arn,
    NULL AS role_arn,
    r.host,
    r.source_ip,
    json_object(
        'host_name', any_value(r.host_name),
        'max_in_window', any_value(r.peak),
        'window_minutes', getvariable('window_minutes')::BIGINT,
        'statuses', any_value(s.by_status),
        'successful_fetches_nearby', any_value(n.ok_fetches),
        'near_minutes', getvariable('near_minutes')::BIGINT,
        'tasks_fetching_from_address', any_value(n.tasks),
        'hand_tool', bool_or(hand_tool_client(r.user_agent)),
        'user_agents', list_sort(list_distinct(list(r.user_agent)))[1:20],
        'requests', list({'time': strftime(r.event_time, '%Y-%m-%dT%H:%M:%SZ'), 'status': r.status,
                          'path': r.request_path, 'user_agent': r.user_agent} ORDER BY r.event_time)
                    FILTER (WHERE r.rn <= 20),
        'total', count(*)
    ) AS evidence
FROM rows r
JOIN near n ON n.host = r.host AND n.source_ip IS NOT DISTINCT FROM r.source_ip
JOIN statuses s ON s.host = r.host AND s.source_ip IS NOT DISTINCT FROM r.source_ip
GROUP BY r.host, r.source_ip
