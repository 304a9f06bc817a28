-- id: who-fetched
-- title: Every fetch of one task's credentials, and who asked
-- description: Every request to the credential endpoint for one task (--task: its ARN or its ID), oldest first: time, host, requester address:port, user agent, HTTP status, event type and role_kind (task or execution role), and requester_task_arn, the task that held the requester address at that time when known. owner_source says how it is known: describe-tasks or inventory (the task_addresses view; an address several tasks held then is `shared` and belongs to none), or `audit log` (the address of a task's first own fetch on that host, from then until another task's first fetch comes from it). same_task is false when the credentials were fetched from another task's address.
-- params: task
-- reads: fetches, task_addresses
WITH wanted AS (
    SELECT regexp_extract(getvariable('task'), '[^/]+$') AS task_id
),
f AS (
    SELECT f.*
    FROM fetches f JOIN wanted w ON f.task_id = w.task_id
    WHERE f.event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND f.event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
),
held AS (
    SELECT f.host, f.source_id, f.byte_offset,
           list(DISTINCT a.task_arn) AS owners, min(a.source) AS how
    FROM f
    JOIN task_addresses a
      ON a.ip = f.source_ip
     AND (a.host IS NULL OR a.host = f.host)
     AND f.event_time >= coalesce(a.owned_from, TIMESTAMP '-infinity')
     AND f.event_time <= coalesce(a.owned_until, TIMESTAMP 'infinity')
    GROUP BY ALL
),
homes AS (
    SELECT host, task_arn, arg_min(source_ip, event_time) AS ip, min(event_time) AS since
    FROM fetches
    WHERE ok AND role_kind = 'task' AND source_ip IS NOT NULL
    GROUP BY host, task_arn
),
learned AS (
    -- a task owns its first fetch's address from then until another task's first fetch comes
    -- from it (a replacement task often gets its stopped predecessor's bridge address)
    SELECT host, ip, task_arn AS owner, since,
           lead(since) OVER (PARTITION BY host, ip ORDER BY since, task_arn) AS next_since
    FROM homes
),
attributed AS (
    SELECT f.*,
           CASE WHEN len(h.owners) = 1 THEN h.owners[1]
                WHEN h.owners IS NULL THEN l.owner END AS requester_task_arn,
           CASE WHEN len(h.owners) = 1 THEN h.how
                WHEN len(h.owners) > 1 THEN 'shared'
                WHEN l.owner IS NOT NULL THEN 'audit log' END AS owner_source
    FROM f
    LEFT JOIN held h
      ON h.host = f.host AND h.source_id = f.source_id AND h.byte_offset = f.byte_offset
    LEFT JOIN learned l
      ON l.host = f.host AND l.ip = f.source_ip
     AND f.event_time >= l.since AND (l.next_since IS NULL OR f.event_time < l.next_since)
)
SELECT event_time AS time, host,
       source_ip || coalesce(':' || source_port::VARCHAR, '') AS requester,
       user_agent, status, event_type, role_kind, requester_task_arn, owner_source,
       requester_task_arn = task_arn AS same_task,
       source_file || ':' || byte_offset::VARCHAR AS event_id
FROM attributed
ORDER BY event_time, source_id, byte_offset
