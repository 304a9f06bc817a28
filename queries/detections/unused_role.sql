-- id: unused_role
-- title: Role named by task definitions but never used by their tasks
-- severity: low
-- description: A role that task definitions name (as task role, or as execution role) whose tasks ran in the observation window, but no session of the role made an authorized API call in the window, unless every action the role grants is unverifiable in the trail that was read (never logged, data events the trail does not hold, sources or regions it does not cover): such a role may be busy where CloudTrail cannot see. Or, for a task role, some of its tasks started inside their host's coverage (task_coverage) and none of those ever fetched the role's credentials; tasks already running when coverage began say nothing (SDKs refresh lazily). The role (and its grants) can likely be removed from the task definition. Execution roles are judged only by their calls (the agent fetches their credentials itself), and only when one of their tasks started in the window.
-- reads: task_roles, cloudtrail_events, credential_requests, task_coverage, grant_visibility
-- key: role_arn
-- params:
-- judges: window
WITH win AS (
    SELECT coalesce(getvariable('since')::TIMESTAMP, min(event_time)) AS window_start,
           coalesce(getvariable('until')::TIMESTAMP, max(event_time)) AS window_end
    FROM cloudtrail_events
),
runs AS (
    SELECT r.role_arn, r.role_kind, r.families, r.clusters, t.task_arn, t.ran_from, t.ran_until,
           t.started_at
    FROM task_roles r, win, unnest(r.runs) AS u(t)
    WHERE t.ran_from <= win.window_end AND t.ran_until >= win.window_start
      AND (r.role_kind = 'task' OR t.started_at BETWEEN win.window_start AND win.window_end)
),
roles AS (
    SELECT role_arn,
           list_sort(list_distinct(list(role_kind))) AS role_kinds,
           bool_or(role_kind = 'task') AS is_task_role,
           list_sort(list_distinct(flatten(list(families)))) AS families,
           list_sort(list_distinct(flatten(list(clusters)))) AS clusters,
           list_sort(list_distinct(list(task_arn))) AS task_arns
    FROM runs GROUP BY role_arn
),
calls AS (
    -- every role's calls counted first, then the roles kept: a filter per call costs more
    SELECT *
    FROM (SELECT e.session_issuer_arn AS role_arn,
                 count(*) FILTER (WHERE NOT authorization_error(e.error_code)) AS authorized,
                 count(*) FILTER (WHERE authorization_error(e.error_code)) AS denied,
                 max(e.event_time) FILTER (WHERE NOT authorization_error(e.error_code)) AS last_call
          FROM cloudtrail_events e, win
          WHERE e.event_time >= win.window_start AND e.event_time <= win.window_end
          GROUP BY e.session_issuer_arn)
    WHERE role_arn IN (SELECT role_arn FROM roles)
),
started_covered AS (
    -- task-role tasks that started inside their host's coverage: each should fetch
    SELECT DISTINCT r.role_arn, r.task_arn
    FROM runs r
    JOIN task_coverage v ON v.task_arn = r.task_arn AND v.covered_since = 'started_at'
    WHERE r.role_kind = 'task'
),
task_fetches AS (
    SELECT task_arn, count(*) AS n
    FROM credential_requests
    WHERE status BETWEEN 200 AND 299
      AND coalesce(event_type, 'GetCredentials') = 'GetCredentials'
      AND task_arn IN (SELECT task_arn FROM started_covered)
    GROUP BY task_arn
),
fetches AS (
    SELECT s.role_arn,
           count(DISTINCT s.task_arn) AS covered_tasks,
           coalesce(sum(tf.n), 0) AS fetched
    FROM started_covered s LEFT JOIN task_fetches tf ON tf.task_arn = s.task_arn
    GROUP BY s.role_arn
),
visibility AS (
    -- a role whose every granted action the trail could not show is not judged by its calls
    SELECT role_arn, count(*) AS granted,
           count(*) FILTER (WHERE unverifiable_reason IS NOT NULL) AS unverifiable
    FROM grant_visibility
    WHERE role_arn IN (SELECT role_arn FROM roles)
    GROUP BY role_arn
)
SELECT
    'unused_role' AS kind,
    'low' AS severity,
    CASE WHEN coalesce(c.authorized, 0) = 0
         THEN format('{} is named by {} but no session of it made an authorized call',
                     regexp_extract(r.role_arn, '[^/]+$'), array_to_string(r.families, ', '))
         ELSE format('{} is named by {} but its tasks that started while their hosts were covered never fetched its credentials',
                     regexp_extract(r.role_arn, '[^/]+$'), array_to_string(r.families, ', '))
    END AS title,
    w.window_start AS first_seen,
    w.window_end AS last_seen,
    len(r.task_arns) AS count,
    CASE WHEN len(r.clusters) = 1 THEN r.clusters[1] END AS cluster_arn,
    NULL AS task_arn,
    r.role_arn,
    NULL AS host,
    NULL AS source_ip,
    json_object(
        'role_kinds', r.role_kinds,
        'families', r.families,
        'clusters', r.clusters,
        'window_start', strftime(w.window_start, '%Y-%m-%dT%H:%M:%SZ'),
        'window_end', strftime(w.window_end, '%Y-%m-%dT%H:%M:%SZ'),
        'tasks', r.task_arns[1:20],
        'tasks_total', len(r.task_arns),
        'authorized_calls', coalesce(c.authorized, 0),
        'denied_calls', coalesce(c.denied, 0),
        'last_authorized_call', strftime(c.last_call, '%Y-%m-%dT%H:%M:%SZ'),
        'tasks_started_in_coverage', coalesce(f.covered_tasks, 0),
        'credential_fetches', f.fetched,
        'granted_actions', v.granted,
        'unverifiable_actions', v.unverifiable
    ) AS evidence
FROM roles r
CROSS JOIN win w
LEFT JOIN calls c ON c.role_arn = r.role_arn
LEFT JOIN fetches f ON f.role_arn = r.role_arn
LEFT JOIN visibility v ON v.role_arn = r.role_arn
WHERE (coalesce(c.authorized, 0) = 0
       AND NOT (coalesce(v.granted, 0) > 0 AND v.granted = v.unverifiable))
   OR (r.is_task_role AND coalesce(f.covered_tasks, 0) > 0 AND f.fetched = 0)
