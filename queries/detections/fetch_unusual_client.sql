-- id: fetch_unusual_client
-- title: Task credentials fetched by a client the task family does not use
-- severity: high for a hand tool (curl, Wget, HTTPie, PowerShell, Go-http-client); medium otherwise
-- description: A successful task-role fetch by a client family (the user agent's first product token; the empty user agent is a family) that is not in the task family's baseline: the client families of the family's earlier successful task-role fetches, all its tasks, up to baseline_hours back. A person with a shell in the container pulling credentials by hand, or new code. A hand tool is judged even with no baseline; any other family only against a non-empty baseline that has been learned for at least learn_minutes since the family's first fetch in the store (on the day the collector is installed, the several containers of a task start their clients minutes apart, and none of them is news). Real SDK families are never unusual: boto3 and the AWS CLI v1 send only python-urllib3/<version>, the JavaScript SDK v3 sends no user agent at all, the others name themselves (aws-sdk-*). HTTP libraries apps use themselves (Zend_Http_Client, GuzzleHttp, python-requests, okhttp) are judged against the baseline. Tasks whose family is unknown (no task description or inventory) are their own family.
-- reads: audit_lines, tasks
-- key: task_arn
-- params: baseline_hours=24, learn_minutes=60
WITH ok AS (
    SELECT r.event_time, r.instance AS host, r.source_ip, r.source_port, r.user_agent, r.task_arn, r.byte_offset,
           coalesce(t.family, r.task_arn) AS family_key, t.family,
           client_family(r.user_agent) AS client
    FROM audit_lines r
    LEFT JOIN (SELECT task_arn, any_value(family) AS family FROM tasks GROUP BY task_arn) t
      ON t.task_arn = r.task_arn
    WHERE r.status BETWEEN 200 AND 299
      AND r.task_arn IS NOT NULL
      AND coalesce(r.event_type, 'GetCredentials') = 'GetCredentials'
),
judged AS (
    SELECT *,
        -- the family's last earlier fetch by this client family, and by any client family
        lag(event_time) OVER (PARTITION BY family_key, client ORDER BY event_time, byte_offset) AS prev_same,
        lag(event_time) OVER (PARTITION BY family_key ORDER BY event_time, byte_offset) AS prev_any,
        min(event_time) OVER (PARTITION BY family_key) AS family_first
    FROM ok
),
unusual AS (
    -- (task, client family) pairs whose first fetch was not in the family's baseline
    SELECT j.task_arn, j.client, min(j.event_time) AS since
    FROM judged j
    WHERE NOT sdk_client_family(j.client)
      AND (j.prev_same IS NULL
           OR j.prev_same < j.event_time - to_hours(getvariable('baseline_hours')::BIGINT))
      AND (hand_tool_client(j.user_agent)
           OR (j.prev_any >= j.event_time - to_hours(getvariable('baseline_hours')::BIGINT)
               AND j.event_time >= j.family_first + to_minutes(getvariable('learn_minutes')::BIGINT)))
      AND j.event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND j.event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
    GROUP BY j.task_arn, j.client
),
hits AS (
    -- every fetch of the task by those clients from then on
    SELECT o.*, hand_tool_client(o.user_agent) AS hand_tool,
           row_number() OVER (PARTITION BY o.task_arn ORDER BY o.event_time, o.byte_offset) AS rn
    FROM ok o
    JOIN unusual u ON u.task_arn = o.task_arn AND u.client = o.client AND o.event_time >= u.since
    WHERE o.event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
),
baseline AS (
    -- what the family's clients were before the first unusual fetch of each task
    SELECT h.task_arn,
           list_sort(list_distinct(list(o.client))) AS clients,
           count(o.event_time) AS fetches
    FROM (SELECT task_arn, any_value(family_key) AS family_key, min(event_time) AS first_hit
          FROM hits GROUP BY task_arn) h
    LEFT JOIN ok o
      ON o.family_key = h.family_key
     AND o.event_time < h.first_hit
     AND o.event_time >= h.first_hit - to_hours(getvariable('baseline_hours')::BIGINT)
    GROUP BY h.task_arn
)
SELECT
    'fetch_unusual_client' AS kind,
    CASE WHEN bool_or(hand_tool) THEN 'high' ELSE 'medium' END AS severity,
    format('Task credentials fetched by {}, a client its family does not use',
           min(user_agent) FILTER (WHERE rn = 1)) AS title,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    count(*) AS count,
    CASE WHEN regexp_matches(hits.task_arn, ':task/[^/]+/[^/]+$')
         THEN regexp_replace(hits.task_arn, ':task/([^/]+)/.*$', ':cluster/\1') END AS cluster_arn,
    hits.task_arn,
    NULL AS role_arn,
    min(host) AS host,
    CASE WHEN count(DISTINCT source_ip) = 1 THEN min(source_ip) END AS source_ip,
    json_object(
        'family', any_value(family),
        'client_families', list_sort(list_distinct(list(client))),
        'hand_tool', bool_or(hand_tool),
        'baseline_client_families', any_value(b.clients),
        'baseline_fetches', any_value(b.fetches),
        'baseline_hours', getvariable('baseline_hours')::BIGINT,
        'user_agents', list_sort(list_distinct(list(user_agent)))[1:20],
        'source_ips', list_sort(list_distinct(list(source_ip)))[1:20],
        'hosts', list_sort(list_distinct(list(host)))[1:20],
        'fetches', list({'time': strftime(event_time, '%Y-%m-%dT%H:%M:%SZ'),
                         'source': source_ip || ':' || source_port, 'user_agent': user_agent}
                        ORDER BY event_time) FILTER (WHERE rn <= 20),
        'total', count(*)
    ) AS evidence
FROM hits
LEFT JOIN baseline b ON b.task_arn = hits.task_arn
GROUP BY hits.task_arn
