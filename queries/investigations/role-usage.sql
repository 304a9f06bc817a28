-- id: role-usage
-- title: What one role's sessions did, per action
-- description: Every CloudTrail call made with a session of --role (the role ARN, or its name), one row per IAM action (service prefix from eventSource plus eventName) in the order they were first used: calls, succeeded, denied (authorization errors) and failed otherwise, first call, last success, last call, role_kinds (task, execution: which of the tasks' roles the sessions were), the task families and how many sessions, the first 10 task IDs, and the error codes met.
-- params: role
-- reads: calls
WITH c AS (
    SELECT *
    FROM calls
    WHERE (role_arn = getvariable('role')
           OR regexp_extract(role_arn, '[^/]+$') = getvariable('role'))
      AND event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
)
SELECT action,
       role_arn,
       count(*) AS calls,
       count(*) FILTER (WHERE ok) AS succeeded,
       count(*) FILTER (WHERE denied) AS denied,
       count(*) FILTER (WHERE NOT ok AND NOT denied) AS failed,
       min(event_time) AS first_call,
       max(event_time) FILTER (WHERE ok) AS last_success,
       max(event_time) AS last_call,
       list_sort(list(DISTINCT role_kind) FILTER (WHERE role_kind IS NOT NULL)) AS role_kinds,
       list_sort(list(DISTINCT family) FILTER (WHERE family IS NOT NULL)) AS families,
       count(DISTINCT session_name) AS sessions,
       list_sort(list(DISTINCT task_id) FILTER (WHERE task_id IS NOT NULL))[1:10] AS task_ids,
       list_sort(list(DISTINCT error_code) FILTER (WHERE error_code IS NOT NULL)) AS errors
FROM c
GROUP BY action, role_arn
ORDER BY first_call, action, role_arn
