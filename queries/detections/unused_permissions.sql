-- id: unused_permissions
-- title: Role grants actions that no session used
-- severity: low; medium when an unused action is Write or Permissions management level
-- description: A task or execution role (named by the task definition of a task that ran in the observation window) grants actions, after expanding wildcards and NotAction with the IAM action catalog and subtracting unconditional denies and the permissions boundary, that no session of the role used in an authorized call during the window. Actions CloudTrail cannot show (never logged, actions the catalog does not know, and events the trail coverage model says the trails and LookupEvents regions read do not cover in every region the role's tasks ran in: management events off, a source excluded such as KMS, read-only or write events not logged, data events not selected for the action's resource type or for all its granted resources; without trail documents, data events when the trail read holds none of that service) are listed as unverifiable with the reason, never as unused. Denied calls are not use; calls AWS made on the role's behalf (invokedBy) are. unused_actions lists at most max_listed names (unused_actions_total counts them all); used and unverifiable actions are always listed whole, since the policy is built from them. The analyzer adds recommended_policy to the evidence (privilege.rs) from used_actions and unverifiable_actions. A role none of whose grants was used is left to unused_role (min_used=1). `credtrail recommend` runs this query with min_unused=0 and min_used=0 to cover every role.
-- reads: role_action_status, task_roles
-- key: role_arn
-- params: min_unused=1, min_used=1, max_resources=20, max_listed=500
-- judges: window
WITH win AS (
    SELECT coalesce(getvariable('since')::TIMESTAMP, min(event_time)) AS window_start,
           coalesce(getvariable('until')::TIMESTAMP, max(event_time)) AS window_end
    FROM cloudtrail_events
),
roles AS (
    SELECT r.role_arn,
           list_sort(list_distinct(list(r.role_kind))) AS role_kinds,
           list_sort(list_distinct(flatten(list(r.families)))) AS families,
           list_sort(list_distinct(flatten(list(r.clusters)))) AS clusters,
           count(DISTINCT t.task_arn) AS tasks
    FROM task_roles r, win, unnest(r.runs) AS u(t)
    WHERE t.ran_from <= win.window_end AND t.ran_until >= win.window_start
    GROUP BY r.role_arn
),
s AS (
    SELECT a.*, roles.role_kinds, roles.families AS role_families, roles.clusters, roles.tasks
    FROM role_action_status a JOIN roles ON roles.role_arn = a.role_arn
),
per_role AS (
    SELECT role_arn,
           count(*) FILTER (WHERE status = 'unused') AS unused,
           count(*) FILTER (WHERE status = 'used') AS used,
           count(*) FILTER (WHERE status = 'unverifiable') AS unverifiable,
           count(*) AS granted,
           bool_or(status = 'unused' AND (access_level ILIKE '%Write%'
                                          OR access_level ILIKE '%Permissions management%')) AS unused_write,
           any_value(window_start) AS window_start,
           any_value(window_end) AS window_end,
           any_value(role_kinds) AS role_kinds,
           any_value(role_families) AS role_families,
           any_value(clusters) AS clusters,
           any_value(tasks) AS tasks,
           list(action ORDER BY action) FILTER (WHERE status = 'unused') AS unused_actions,
           list(action ORDER BY action) FILTER (WHERE status = 'unused'
               AND (access_level ILIKE '%Write%' OR access_level ILIKE '%Permissions management%'))
               AS unused_write_actions,
           list({'action': action, 'reason': reason, 'granted_resources': granted_resources,
                 'conditions': conditions} ORDER BY action)
               FILTER (WHERE status = 'unverifiable') AS unverifiable_actions,
           list({'action': action, 'count': calls,
                 'last_used': strftime(last_used, '%Y-%m-%dT%H:%M:%SZ'),
                 'families': families,
                 'resource_level': resource_level,
                 'resources_seen': seen_resources[1:getvariable('max_resources')::BIGINT],
                 'resources_seen_total': len(seen_resources),
                 'granted_resources': granted_resources,
                 'conditions': conditions} ORDER BY action)
               FILTER (WHERE status = 'used') AS used_actions
    FROM s
    GROUP BY role_arn
)
SELECT
    'unused_permissions' AS kind,
    CASE WHEN unused_write THEN 'medium' ELSE 'low' END AS severity,
    format('{} grants {} actions no session used ({} used, {} unverifiable, of {} granted)',
           regexp_extract(role_arn, '[^/]+$'), unused, used, unverifiable, granted) AS title,
    window_start AS first_seen,
    window_end AS last_seen,
    unused AS count,
    CASE WHEN len(clusters) = 1 THEN clusters[1] END AS cluster_arn,
    NULL AS task_arn,
    role_arn,
    NULL AS host,
    NULL AS source_ip,
    json_object(
        'role_kinds', role_kinds,
        'families', role_families,
        'clusters', clusters,
        'tasks_in_window', tasks,
        'window_start', strftime(window_start, '%Y-%m-%dT%H:%M:%SZ'),
        'window_end', strftime(window_end, '%Y-%m-%dT%H:%M:%SZ'),
        'granted', granted,
        'unused_actions', coalesce(unused_actions, []::VARCHAR[])[1:getvariable('max_listed')::BIGINT],
        'unused_actions_total', unused,
        'unused_write_actions', coalesce(unused_write_actions, []::VARCHAR[])[1:getvariable('max_listed')::BIGINT],
        'unverifiable_actions', coalesce(unverifiable_actions, []),
        'used_actions', coalesce(used_actions, [])
    ) AS evidence
FROM per_role
WHERE unused >= getvariable('min_unused')::BIGINT
  AND used >= getvariable('min_used')::BIGINT
