-- id: fetch_burst
-- title: Burst of credential fetches for one task
-- severity: medium
-- description: More than max_fetches successful credential fetches for one task within window_minutes. SDKs cache task credentials for hours; a burst means a loop or a person fetching by hand.
-- reads: credential_requests, audit_hosts
-- key: task_arn
-- params: window_minutes=5, max_fetches=30
WITH ok AS (
    SELECT event_time, host, source_ip, user_agent, task_arn, event_type
    FROM credential_requests
    WHERE status BETWEEN 200 AND 299
      AND task_arn IS NOT NULL
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
    FROM ok
),
starts AS (
    -- the first moment of the densest window of each bursting task
    SELECT task_arn, arg_min(event_time, event_time) FILTER (WHERE in_window = peak) AS start, any_value(peak) AS peak
    FROM (SELECT *, max(in_window) OVER (PARTITION BY task_arn) AS peak FROM windowed)
    WHERE peak > getvariable('max_fetches')::BIGINT
    GROUP BY task_arn
),
burst AS (
    SELECT o.*, s.peak,
        row_number() OVER (PARTITION BY o.task_arn ORDER BY o.event_time) AS rn
    FROM ok o JOIN starts s ON o.task_arn = s.task_arn
    WHERE o.event_time >= s.start
      AND o.event_time <= s.start + to_minutes(getvariable('window_minutes')::BIGINT)
)
SELECT
    'fetch_burst' AS kind,
    'medium' AS severity,
    format('{} credential fetches for one task within {} minutes', any_value(peak), getvariable('window_minutes')::BIGINT) AS title,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    count(*) AS count,
    CASE WHEN regexp_matches(task_arn, ':task/[^/]+/[^/]+$')
         THEN regexp_replace(task_arn, ':task/([^/]+)/.*$', ':cluster/\1') END AS cluster_arn,
    task_arn,
    NULL AS role_arn,
    host_arn(min(host)) AS host,
    CASE WHEN count(DISTINCT source_ip) = 1 THEN min(source_ip) END AS source_ip,
    json_object(
        'window_minutes', getvariable('window_minutes')::BIGINT,
        'threshold', getvariable('max_fetches')::BIGINT,
        'peak_in_window', any_value(peak),
        'user_agents', list_sort(list_distinct(list(user_agent)))[1:20],
        'source_ips', list_sort(list_distinct(list(source_ip)))[1:20],
        'event_types', list_sort(list_distinct(list(event_type))),
        'fetch_times', list(strftime(event_time, '%Y-%m-%dT%H:%M:%SZ') ORDER BY event_time) FILTER (WHERE rn <= 20),
        'total', count(*)
    ) AS evidence
FROM burst
GROUP BY task_arn
