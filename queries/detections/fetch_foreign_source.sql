-- id: fetch_foreign_source
-- title: Task credentials fetched from another task's address
-- severity: critical
-- description: A successful task-role fetch for task A from a requester address that belongs, at that time, to a different task B on the same host: per the agent inventory where recorded (observations within slack_minutes, never past the task's stop, when the address is free for the next task), unless the address is also the fetching task's own at that time, otherwise learned from the audit log (the addresses B's own credentials were fetched from in B's first home_minutes, one per container, B's until another task makes them its home or B stops; an address several tasks keep fetching from, like a host address, is no one's). Execution-role fetches come from the host side and are ignored.
-- reads: audit_lines, inventory_lines, tasks
-- key: task_arn
-- params: slack_minutes=10, home_minutes=10
WITH ok AS (
    -- `host` is the container instance that wrote the line (audit_lines): host names can repeat
    SELECT event_time, instance AS host, source_ip, source_port, user_agent, task_arn, byte_offset
    FROM audit_lines
    WHERE status BETWEEN 200 AND 299
      AND task_arn IS NOT NULL
      AND source_ip IS NOT NULL
      AND coalesce(event_type, 'GetCredentials') = 'GetCredentials'
),
-- addresses learned from the audit log: a task's homes are the addresses its own credentials
-- were fetched from in its first home_minutes (each container's SDK fetches at start-up); it owns
-- each from then until another task makes it a home, or it stops. An address where a home task
-- keeps fetching after another task's start is shared (a host address): no one's.
firsts AS (
    SELECT host, task_arn, min(event_time) AS first_fetch FROM ok GROUP BY host, task_arn
),
homes AS (
    SELECT o.host, o.task_arn, o.source_ip, min(o.event_time) AS since
    FROM ok o
    JOIN firsts f ON f.host = o.host AND f.task_arn = o.task_arn
    WHERE o.event_time <= f.first_fetch + to_minutes(getvariable('home_minutes')::BIGINT)
    GROUP BY o.host, o.task_arn, o.source_ip
),
spans AS (
    SELECT host, source_ip, task_arn AS owner, since,
        lead(since) OVER (PARTITION BY host, source_ip ORDER BY since, task_arn) AS next_start
    FROM homes
),
shared AS (
    SELECT DISTINCT s.host, s.source_ip
    FROM spans s JOIN ok o
      ON o.host = s.host AND o.source_ip = s.source_ip AND o.task_arn = s.owner
    WHERE s.next_start IS NOT NULL AND o.event_time >= s.next_start
),
stops AS (
    SELECT task_arn, coalesce(stopped_at, observed_stopped) AS stopped FROM tasks
),
learned AS (
    SELECT s.host, s.source_ip, s.owner, s.since,
           CASE WHEN st.stopped IS NULL THEN s.next_start
                ELSE least(coalesce(s.next_start, TIMESTAMP 'infinity'),
                           st.stopped + to_minutes(getvariable('slack_minutes')::BIGINT))
           END AS until
    FROM spans s
    LEFT JOIN stops st ON st.task_arn = s.owner
    LEFT JOIN shared x ON x.host = s.host AND x.source_ip = s.source_ip
    WHERE x.host IS NULL
),
inventory AS (
    -- the agent's snapshots: a task holds the address from slack_minutes before the first
    -- snapshot that shows it running to slack_minutes after the last, never past its stop (the
    -- address is then free for the next task: a replacement often gets its predecessor's)
    SELECT i.instance AS host, i.ipv4_address AS source_ip, i.task_arn AS owner,
        min(i.observed_at) - to_minutes(getvariable('slack_minutes')::BIGINT) AS since,
        least(max(i.observed_at) + to_minutes(getvariable('slack_minutes')::BIGINT),
              coalesce(any_value(st.stopped), TIMESTAMP 'infinity')) AS until
    FROM inventory_lines i
    LEFT JOIN stops st ON st.task_arn = i.task_arn
    WHERE i.ipv4_address IS NOT NULL AND i.ipv4_address <> ''
      AND coalesce(i.known_status, '') <> 'STOPPED'
    GROUP BY i.instance, i.ipv4_address, i.task_arn
),
owners AS (
    SELECT host, source_ip, owner, since, until, 'inventory' AS how FROM inventory
    UNION ALL
    SELECT l.host, l.source_ip, l.owner, l.since, l.until, 'audit_log' AS how FROM learned l
    WHERE NOT EXISTS (SELECT 1 FROM inventory i WHERE i.host = l.host AND i.source_ip = l.source_ip)
),
hits AS (
    SELECT o.*, w.owner, w.how,
        row_number() OVER (PARTITION BY o.task_arn ORDER BY o.event_time, o.byte_offset) AS rn
    FROM ok o
    JOIN owners w ON o.host = w.host AND o.source_ip = w.source_ip
    WHERE w.owner <> o.task_arn
      AND o.event_time >= w.since
      AND (w.until IS NULL OR o.event_time < w.until)
      -- an address that is the fetching task's own at that time too is shared, not foreign
      AND NOT EXISTS (SELECT 1 FROM owners m
                      WHERE m.host = o.host AND m.source_ip = o.source_ip AND m.owner = o.task_arn
                        AND o.event_time >= m.since AND (m.until IS NULL OR o.event_time < m.until))
      AND o.event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND o.event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
)
SELECT
    'fetch_foreign_source' AS kind,
    'critical' AS severity,
    format('Task credentials fetched from the address of task {}', min(owner)) AS title,
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
        'address_owners', list_sort(list_distinct(list({'source_ip': source_ip, 'task_arn': owner, 'how': how}))),
        'user_agents', list_sort(list_distinct(list(user_agent)))[1:20],
        'fetches', list({'time': strftime(event_time, '%Y-%m-%dT%H:%M:%SZ'),
                         'source': source_ip || ':' || source_port, 'owner': owner,
                         'user_agent': user_agent} ORDER BY event_time) FILTER (WHERE rn <= 20),
        'total', count(*)
    ) AS evidence
FROM hits
GROUP BY task_arn
