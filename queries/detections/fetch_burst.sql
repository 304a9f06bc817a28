-- id: fetch_burst
-- title: Burst of credential fetches for one task
-- severity: medium
-- description: More than max_fetches successful credential fetches for one task within window_minutes, and more than family_ratio times the median of the task family's non-empty window_minutes buckets (per task) in the judged time. SDKs cache task credentials for minutes to hours, so a burst is a loop or a person fetching by hand; but some families fetch per command or per call by design (a shell loop of AWS CLI commands, a new boto3 Session per request), and those are judged against their own rate. Tasks whose family is unknown are their own family.
-- reads: audit_lines, tasks
-- key: task_arn
-- params: window_minutes=5, max_fetches=30, family_ratio=10
-- judges: window
WITH ok AS (
    SELECT r.event_time, r.instance AS host, r.source_ip, r.user_agent, r.task_arn, r.event_type,
           coalesce(t.family, r.task_arn) AS family_key, t.family
    FROM audit_lines r
    LEFT JOIN (SELECT task_arn, any_value(family) AS family FROM tasks GROUP BY task_arn) t
      ON t.task_arn = r.task_arn
    WHERE r.status BETWEEN 200 AND 299
      AND r.task_arn IS NOT NULL
      AND r.event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND r.event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
),
family_rate AS (
    -- the family's usual rate: the median of its tasks' non-empty buckets
    SELECT family_key, median(n) AS median_per_window, count(*) AS buckets
    FROM (SELECT family_key, task_arn,
                 time_bucket(to_minutes(getvariable('window_minutes')::BIGINT), event_time) AS b,
                 count(*) AS n
          FROM ok GROUP BY ALL)
    GROUP BY family_key
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
    SELECT w.task_arn, arg_min(w.event_time, w.event_time) FILTER (WHERE w.in_window = w.peak) AS start,
           any_value(w.peak) AS peak, any_value(f.median_per_window) AS family_median,
           any_value(f.buckets) AS family_buckets
    FROM (SELECT *, max(in_window) OVER (PARTITION BY task_arn) AS peak FROM windowed) w
    JOIN family_rate f ON f.family_key = w.family_key
    WHERE w.peak > getvariable('max_fetches')::BIGINT
      AND w.peak > getvariable('family_ratio')::DOUBLE * f.median_per_window
    GROUP BY w.task_arn
),
burst AS (
    SELECT o.*, s.peak, s.family_median, s.family_buckets,
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
    min(host) AS host,
    CASE WHEN count(DISTINCT source_ip) = 1 THEN min(source_ip) END AS source_ip,
    json_object(
        'window_minutes', getvariable('window_minutes')::BIGINT,
        'threshold', getvariable('max_fetches')::BIGINT,
        'peak_in_window', any_value(peak),
        'family', any_value(family),
        'family_median_per_window', any_value(family_median),
        'family_buckets', any_value(family_buckets),
        'family_ratio', getvariable('family_ratio')::DOUBLE,
        'user_agents', list_sort(list_distinct(list(user_agent)))[1:20],
        'source_ips', list_sort(list_distinct(list(source_ip)))[1:20],
        'event_types', list_sort(list_distinct(list(event_type))),
        'fetch_times', list(strftime(event_time, '%Y-%m-%dT%H:%M:%SZ') ORDER BY event_time) FILTER (WHERE rn <= 20),
        'total', count(*)
    ) AS evidence
FROM burst
GROUP BY task_arn
