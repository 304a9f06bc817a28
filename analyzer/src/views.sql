-- Views over the analyzer's tables; recreated on every open, so they always match the tables.

-- One row per task known from any source: describe-tasks output (the newest snapshot, preferring
-- one that knows the stop), the collector's task inventory (agent /v1/tasks snapshots) and the
-- audit log itself, with roles resolved from the override or the task definition.
CREATE OR REPLACE VIEW tasks AS
WITH described AS (
    SELECT * FROM ecs_tasks
    QUALIFY row_number() OVER (PARTITION BY task_arn
                               ORDER BY (stopped_at IS NOT NULL) DESC, ingested_at DESC) = 1
),
inv AS (
    SELECT task_arn,
           arg_max(family, observed_at) AS family,
           arg_max(TRY_CAST(revision AS INTEGER), observed_at) AS revision,
           arg_max(network_mode, observed_at) AS network_mode,
           list_sort(list(DISTINCT ipv4_address) FILTER (WHERE ipv4_address IS NOT NULL)) AS ips,
           arg_max(host, observed_at) AS host,
           min(observed_at) AS first_observed,
           max(observed_at) AS last_observed,
           min(observed_at) FILTER (WHERE known_status = 'STOPPED') AS observed_stopped
    FROM task_inventory GROUP BY task_arn
),
audit AS (
    SELECT task_arn,
           arg_max(container_instance_arn, event_time) AS container_instance_arn,
           arg_max(host, event_time) AS host,
           arg_max(cluster, event_time) AS cluster
    FROM credential_requests WHERE task_arn IS NOT NULL GROUP BY task_arn
),
td AS (
    SELECT * FROM task_definitions
    QUALIFY row_number() OVER (PARTITION BY task_definition_arn ORDER BY ingested_at DESC) = 1
),
merged AS (
    SELECT coalesce(d.task_arn, i.task_arn) AS task_arn,
           d.cluster_arn, d.task_definition_arn, d.family, d.revision, d.task_role_override,
           d.execution_role_override, d.launch_type, d.container_instance_arn, d.task_group,
           d.last_status, d.private_ips, d.eni_id, d.created_at, d.started_at, d.stopping_at,
           d.stopped_at, d.stopped_reason, d.source_file,
           i.family AS inv_family, i.revision AS inv_revision, i.network_mode AS inv_network_mode,
           i.ips, i.host AS inv_host, i.first_observed, i.last_observed, i.observed_stopped
    FROM described d FULL OUTER JOIN inv i ON d.task_arn = i.task_arn
)
SELECT m.task_arn,
       regexp_extract(m.task_arn, '[^/]+$') AS task_id,
       coalesce(m.cluster_arn,
                CASE WHEN m.task_arn LIKE 'arn:%:task/%/%'
                     THEN regexp_replace(regexp_replace(m.task_arn, ':task/', ':cluster/'), '/[^/]+$', '')
                END) AS cluster_arn,
       coalesce(regexp_extract(m.cluster_arn, '[^/]+$'),
                CASE WHEN m.task_arn LIKE 'arn:%:task/%/%' THEN split_part(m.task_arn, '/', 2) END,
                a.cluster) AS cluster,
       coalesce(m.family, t.family, m.inv_family) AS family,
       coalesce(m.revision, t.revision, m.inv_revision) AS revision,
       coalesce(m.task_definition_arn, t.task_definition_arn) AS task_definition_arn,
       coalesce(m.task_role_override, t.task_role_arn) AS task_role_arn,
       coalesce(m.execution_role_override, t.execution_role_arn) AS execution_role_arn,
       m.launch_type,
       coalesce(t.network_mode, m.inv_network_mode,
                CASE WHEN m.eni_id IS NOT NULL THEN 'awsvpc' END) AS network_mode,
       list_sort(list_distinct(list_concat(coalesce(m.private_ips, []::VARCHAR[]),
                                           coalesce(m.ips, []::VARCHAR[])))) AS private_ips,
       m.eni_id,
       coalesce(m.inv_host, a.host) AS host,
       coalesce(m.container_instance_arn, a.container_instance_arn) AS container_instance_arn,
       m.task_group,
       m.last_status,
       m.created_at,
       m.started_at,
       m.stopping_at,
       m.stopped_at,
       m.stopped_reason,
       m.first_observed,
       m.last_observed,
       m.observed_stopped,
       concat_ws(',', CASE WHEN m.source_file IS NOT NULL THEN 'describe-tasks' END,
                      CASE WHEN m.first_observed IS NOT NULL THEN 'inventory' END) AS sources
FROM merged m
LEFT JOIN td t
  ON t.task_definition_arn = m.task_definition_arn
  OR (m.task_definition_arn IS NULL AND t.family = m.inv_family AND t.revision = m.inv_revision)
LEFT JOIN audit a ON a.task_arn = m.task_arn;

-- Calls made with a task's own task-role credentials: CloudTrail sessions named with the task's ID
-- and issued by that task's task role. Execution-role sessions carry the same name but are the
-- agent's and Docker's (image pulls, log streams), never the task's, so they are not here. The
-- detections of credential use read this view.
CREATE OR REPLACE VIEW task_session_calls AS
SELECT t.task_arn, t.task_id, t.cluster_arn, t.task_role_arn, t.container_instance_arn,
       t.started_at, t.stopped_at, e.*
FROM cloudtrail_events e
JOIN tasks t
  ON e.session_name = t.task_id
 AND e.session_issuer_arn = t.task_role_arn;

-- True when a CloudTrail errorCode says the caller was not allowed (or not authenticated): such a
-- call never counts as use of a permission. Other errors (a missing key, a throttle) were authorized.
CREATE OR REPLACE MACRO authorization_error(code) AS
    code IS NOT NULL
    AND (code ILIKE '%AccessDenied%' OR code ILIKE '%Unauthorized%' OR code ILIKE '%NotAuthorized%'
         OR code ILIKE '%Forbidden%'
         OR code IN ('AuthFailure', 'InvalidClientTokenId', 'ExpiredToken', 'ExpiredTokenException',
                     'SignatureDoesNotMatch', 'UnrecognizedClientException', 'InvalidAccessKeyId'));

-- Every CloudTrail call made with a role session (task, execution or any other role), one row per
-- IAM action the call shows was used (cloudtrail_event_map), with the resources it touched: the
-- record's `resources` ARNs plus the ARNs its requestParameters name for the common services.
-- Calls AWS made on the session's behalf (`invoked_by`) are here too: they use the action too.
CREATE OR REPLACE VIEW role_calls AS
SELECT e.session_issuer_arn AS role_arn, m.action, e.event_time, e.event_id, e.event_source,
       e.event_name, e.error_code, authorization_error(e.error_code) AS denied, e.session_name,
       e.invoked_by, e.source_ip, e.aws_region, e.event_category, e.access_key_id,
       list_filter(list_concat(
           coalesce(json_extract_string(e.resources, '$[*].ARN'), []::VARCHAR[]),
           [CASE
               WHEN e.event_source = 'dynamodb.amazonaws.com'
                    AND json_extract_string(e.request_parameters, '$.tableName') IS NOT NULL
                 THEN format('arn:{}:dynamodb:{}:{}:table/{}', split_part(e.session_issuer_arn, ':', 2),
                             e.aws_region, e.recipient_account_id, json_extract_string(e.request_parameters, '$.tableName'))
               WHEN e.event_source = 'sqs.amazonaws.com'
                    AND json_extract_string(e.request_parameters, '$.queueUrl') IS NOT NULL
                 THEN format('arn:{}:sqs:{}:{}:{}', split_part(e.session_issuer_arn, ':', 2),
                             e.aws_region,
                             regexp_extract(json_extract_string(e.request_parameters, '$.queueUrl'), '/([0-9]{12})/[^/]+$', 1),
                             regexp_extract(json_extract_string(e.request_parameters, '$.queueUrl'), '/([^/]+)$', 1))
               WHEN e.event_source = 'sns.amazonaws.com'
                 THEN json_extract_string(e.request_parameters, '$.topicArn')
               WHEN e.event_source = 'secretsmanager.amazonaws.com'
                    AND json_extract_string(e.request_parameters, '$.secretId') LIKE 'arn:%'
                 THEN json_extract_string(e.request_parameters, '$.secretId')
               WHEN e.event_source = 'secretsmanager.amazonaws.com'
                    AND json_extract_string(e.request_parameters, '$.secretId') IS NOT NULL
                 THEN format('arn:{}:secretsmanager:{}:{}:secret:{}-*',
                             split_part(e.session_issuer_arn, ':', 2), e.aws_region,
                             e.recipient_account_id, json_extract_string(e.request_parameters, '$.secretId'))
               WHEN e.event_source = 'ssm.amazonaws.com'
                    AND json_extract_string(e.request_parameters, '$.name') IS NOT NULL
                 THEN format('arn:{}:ssm:{}:{}:parameter/{}', split_part(e.session_issuer_arn, ':', 2),
                             e.aws_region, e.recipient_account_id,
                             ltrim(json_extract_string(e.request_parameters, '$.name'), '/'))
               WHEN e.event_source = 'logs.amazonaws.com'
                    AND json_extract_string(e.request_parameters, '$.logGroupName') IS NOT NULL
                 THEN format('arn:{}:logs:{}:{}:log-group:{}:*', split_part(e.session_issuer_arn, ':', 2),
                             e.aws_region, e.recipient_account_id,
                             json_extract_string(e.request_parameters, '$.logGroupName'))
           END]), x -> x IS NOT NULL AND x LIKE 'arn:%') AS raw_arns,
       -- S3 object ARNs as bucket/* (keys are data, not policy).
       CASE WHEN e.event_source = 's3.amazonaws.com'
            THEN list_distinct(list_transform(raw_arns,
                     x -> regexp_replace(x, '^(arn:[^:]+:s3:::[^/]+)/.+$', '\1/*')))
            ELSE raw_arns END AS resource_arns
FROM cloudtrail_events e
JOIN cloudtrail_event_map m
  ON m.event_source = e.event_source AND m.event_name = e.event_name AND m.action IS NOT NULL
WHERE e.session_issuer_arn IS NOT NULL;

-- Roles that task definitions name, one row per (role, kind): `task` (the task role) or
-- `execution` (the agent's role for image pulls and logs), with the families and clusters whose
-- tasks use it and when those tasks ran.
CREATE OR REPLACE VIEW task_roles AS
WITH r AS (
    SELECT task_role_arn AS role_arn, 'task' AS role_kind, task_arn, family, cluster_arn,
           coalesce(started_at, first_observed, created_at) AS ran_from,
           coalesce(stopped_at, observed_stopped, TIMESTAMP 'infinity') AS ran_until,
           started_at
    FROM tasks WHERE task_role_arn IS NOT NULL
    UNION ALL
    SELECT execution_role_arn, 'execution', task_arn, family, cluster_arn,
           coalesce(started_at, first_observed, created_at),
           coalesce(stopped_at, observed_stopped, TIMESTAMP 'infinity'), started_at
    FROM tasks WHERE execution_role_arn IS NOT NULL
)
SELECT role_arn, role_kind,
       list_sort(list_distinct(list(family))) AS families,
       list_sort(list_distinct(list(cluster_arn))) AS clusters,
       list_sort(list_distinct(list(task_arn))) AS task_arns,
       min(ran_from) AS first_ran, max(ran_until) AS last_ran,
       list(struct_pack(task_arn := task_arn, ran_from := ran_from, ran_until := ran_until,
                        started_at := started_at)) AS runs
FROM r GROUP BY role_arn, role_kind;

-- What each role may do: its identity policies' Allow statements expanded to catalog actions,
-- minus actions an unconditional `Deny` on every resource removes, intersected with the
-- permissions boundary when the role has one whose document was in the IAM file.
CREATE OR REPLACE VIEW role_grants AS
WITH allowed AS (
    SELECT role_arn, action,
           any_value(access_level) AS access_level,
           bool_and(in_catalog) AS in_catalog,
           bool_and(has_condition) AS only_conditional,
           list_sort(list_distinct(flatten(list(resources) FILTER (WHERE NOT not_resource)))) AS resources,
           list_sort(list_distinct(list(policy_id))) AS policies,
           list_distinct(list(condition) FILTER (WHERE has_condition)) AS conditions
    FROM iam_grants
    WHERE effect = 'Allow' AND policy_kind <> 'boundary'
    GROUP BY role_arn, action
),
denied AS (
    SELECT DISTINCT role_arn, action FROM iam_grants
    WHERE effect = 'Deny' AND NOT has_condition AND NOT not_resource AND list_contains(resources, '*')
),
bounded AS (
    SELECT DISTINCT role_arn FROM iam_role_policies WHERE kind = 'boundary' AND resolved
),
boundary_allows AS (
    SELECT DISTINCT role_arn, action FROM iam_grants WHERE effect = 'Allow' AND policy_kind = 'boundary'
)
SELECT a.*
FROM allowed a
WHERE NOT EXISTS (SELECT 1 FROM denied d WHERE d.role_arn = a.role_arn AND d.action = a.action)
  AND (a.role_arn NOT IN (SELECT role_arn FROM bounded)
       OR EXISTS (SELECT 1 FROM boundary_allows b WHERE b.role_arn = a.role_arn AND b.action = a.action));

-- Granted vs used vs unverifiable, per role and action, over the observation window: `--since`
-- (else the first CloudTrail event) to `--until` (else the last). `used`: an authorized call of a
-- session of the role recorded the action; `unverifiable`: the trail that was read could not show
-- a use (never logged, a data event while the trail holds none of that service, or an action the
-- catalog does not know); `unused`: everything else granted.
CREATE OR REPLACE VIEW role_action_status AS
WITH win AS (
    SELECT coalesce(getvariable('since')::TIMESTAMP, min(event_time)) AS window_start,
           coalesce(getvariable('until')::TIMESTAMP, max(event_time)) AS window_end
    FROM cloudtrail_events
),
calls AS (
    SELECT c.role_arn, c.action, c.event_time, c.session_name, c.resource_arns
    FROM role_calls c, win
    WHERE NOT c.denied AND c.event_time >= win.window_start AND c.event_time <= win.window_end
      AND c.role_arn IN (SELECT role_arn FROM role_grants)
),
session_family AS (
    SELECT s.role_arn, s.session_name, any_value(t.family) AS family
    FROM (SELECT DISTINCT role_arn, session_name FROM calls) s
    JOIN tasks t
      ON t.task_id = s.session_name
     AND (t.task_role_arn = s.role_arn OR t.execution_role_arn = s.role_arn)
    GROUP BY s.role_arn, s.session_name
),
used AS (
    SELECT c.role_arn, c.action, count(*) AS calls, max(c.event_time) AS last_used,
           list_sort(list_distinct(list(f.family) FILTER (WHERE f.family IS NOT NULL))) AS families
    FROM calls c
    LEFT JOIN session_family f ON f.role_arn = c.role_arn AND f.session_name = c.session_name
    GROUP BY c.role_arn, c.action
),
touched AS (
    SELECT role_arn, action, list(arn ORDER BY arn) AS resources
    FROM (SELECT DISTINCT role_arn, action, unnest(resource_arns) AS arn FROM calls)
    GROUP BY role_arn, action
),
data_prefixes AS (
    SELECT DISTINCT split_part(m.action, ':', 1) AS prefix
    FROM (SELECT DISTINCT e.event_source, e.event_name
          FROM cloudtrail_events e, win
          WHERE e.event_category = 'Data'
            AND e.event_time >= win.window_start AND e.event_time <= win.window_end) d
    JOIN cloudtrail_event_map m
      ON m.event_source = d.event_source AND m.event_name = d.event_name AND m.action IS NOT NULL
)
SELECT g.role_arn, g.action,
       coalesce(a.access_level, g.access_level) AS access_level,
       CASE
           WHEN u.action IS NOT NULL THEN 'used'
           WHEN a.action IS NULL THEN 'unverifiable'
           WHEN a.observability = 'unlogged' THEN 'unverifiable'
           WHEN a.observability = 'data' AND dp.prefix IS NULL THEN 'unverifiable'
           ELSE 'unused'
       END AS status,
       CASE
           WHEN u.action IS NOT NULL THEN NULL
           WHEN a.action IS NULL THEN 'not in the IAM action catalog'
           WHEN a.observability = 'unlogged' THEN coalesce('CloudTrail never logs it: ' || a.note,
                                                           'CloudTrail never logs it')
           WHEN a.observability = 'data' AND dp.prefix IS NULL
             THEN format('a data event, and the trail read holds no {} data events', a.prefix)
       END AS reason,
       u.calls, u.last_used, coalesce(u.families, []::VARCHAR[]) AS families,
       -- S3 object-level actions keep object ARNs (bucket/*), bucket-level ones bucket ARNs.
       list_filter(coalesce(r.resources, []::VARCHAR[]), x ->
           CASE WHEN g.action NOT LIKE 's3:%' THEN true
                WHEN list_contains(a.resource_types, 'object') THEN x LIKE 'arn:%:s3:::%/%'
                ELSE x NOT LIKE 'arn:%:s3:::%/%' END) AS seen_resources,
       g.resources AS granted_resources,
       coalesce(len(a.resource_types), 0) > 0 AS resource_level,
       g.only_conditional,
       CASE WHEN g.only_conditional THEN g.conditions ELSE []::JSON[] END AS conditions,
       w.window_start, w.window_end
FROM role_grants g
CROSS JOIN win w
LEFT JOIN iam_actions a ON a.action = g.action
LEFT JOIN used u ON u.role_arn = g.role_arn AND u.action = g.action
LEFT JOIN touched r ON r.role_arn = g.role_arn AND r.action = g.action
LEFT JOIN data_prefixes dp ON dp.prefix = a.prefix;

-- The collector's host names with the container instance each one's audit lines name (the most
-- frequent, should a host have been re-registered) and its cluster.
CREATE OR REPLACE VIEW audit_hosts AS
SELECT host,
       arg_max(container_instance_arn, n) AS container_instance_arn,
       arg_max(cluster, n) AS cluster
FROM (SELECT host, container_instance_arn, cluster, count(*) AS n
      FROM credential_requests
      WHERE container_instance_arn IS NOT NULL
      GROUP BY host, container_instance_arn, cluster)
GROUP BY host;

-- A finding's `host`: the container instance ARN of a collector host name when its lines name
-- one, else the name itself.
CREATE OR REPLACE MACRO host_arn(h) AS
    coalesce((SELECT a.container_instance_arn FROM audit_hosts a WHERE a.host = h), h);
-- The views below are for people writing SQL (`credtrail sql`, `credtrail query`): stable names
-- over the raw tables, documented in queries/README.md.

-- One row per credential request in the audit log, with the task whose credentials were asked
-- for, which of its roles (`role_kind`: task | execution) and that task's family and role ARN.
CREATE OR REPLACE VIEW fetches AS
SELECT r.event_time,
       r.host,
       r.cluster,
       r.container_instance_arn,
       r.status,
       r.status BETWEEN 200 AND 299 AS ok,
       r.source_ip,
       r.source_port,
       r.user_agent,
       r.event_type,
       CASE WHEN r.event_type = 'GetCredentialsExecutionRole' THEN 'execution'
            WHEN r.task_arn IS NOT NULL THEN 'task' END AS role_kind,
       r.task_arn,
       regexp_extract(r.task_arn, '[^/]+$') AS task_id,
       t.family,
       CASE WHEN r.event_type = 'GetCredentialsExecutionRole' THEN t.execution_role_arn
            WHEN r.task_arn IS NOT NULL THEN t.task_role_arn END AS role_arn,
       r.request_path,
       r.source_file,
       r.source_id,
       r.byte_offset
FROM credential_requests r
LEFT JOIN tasks t ON t.task_arn = r.task_arn;

-- One row per CloudTrail event, with the task whose session made it where the session name is a
-- known task's ID and the issuer is that task's task role (`role_kind` task) or execution role
-- (`role_kind` execution); NULL for every other principal.
CREATE OR REPLACE VIEW calls AS
SELECT e.event_time,
       e.event_id,
       e.event_source,
       e.event_name,
       coalesce((SELECT min(m.action) FROM cloudtrail_event_map m
                 WHERE m.event_source = e.event_source AND m.event_name = e.event_name),
                split_part(e.event_source, '.', 1) || ':' || e.event_name) AS action,
       e.aws_region,
       e.source_ip,
       e.user_agent,
       e.error_code,
       e.error_message,
       e.error_code IS NULL AS ok,
       authorization_error(e.error_code) AS denied,
       e.read_only,
       e.event_type,
       e.identity_type,
       e.principal_arn,
       e.access_key_id,
       e.session_issuer_arn AS role_arn,
       e.session_name,
       e.invoked_by,
       e.vpc_endpoint_id,
       t.task_arn,
       t.task_id,
       t.family,
       t.cluster_arn,
       CASE WHEN t.task_arn IS NULL THEN NULL
            WHEN e.session_issuer_arn = t.task_role_arn THEN 'task'
            ELSE 'execution' END AS role_kind,
       e.request_parameters,
       e.resources
FROM cloudtrail_events e
LEFT JOIN tasks t
  ON e.session_name = t.task_id
 AND (e.session_issuer_arn = t.task_role_arn OR e.session_issuer_arn = t.execution_role_arn);

-- Which task held which address when: ENI addresses from describe-tasks (VPC-wide, `host` NULL)
-- from the task's start to its stop, and container addresses from the agent inventory (local to
-- `host`) from 10 minutes before the first snapshot that shows them to 10 minutes after the last
-- (or the task's start and stop, when known). NULL `owned_until`: still held.
CREATE OR REPLACE VIEW task_addresses AS
WITH described AS (
    SELECT DISTINCT task_arn, unnest(private_ips) AS ip FROM ecs_tasks
),
inventory AS (
    SELECT task_arn, host, ipv4_address AS ip,
           min(observed_at) AS first_observed, max(observed_at) AS last_observed
    FROM task_inventory
    WHERE ipv4_address IS NOT NULL AND ipv4_address <> ''
    GROUP BY ALL
)
SELECT t.task_arn, t.task_id, t.cluster_arn, d.ip, NULL::VARCHAR AS host,
       coalesce(t.started_at, t.created_at, t.first_observed) AS owned_from,
       coalesce(t.stopped_at, t.observed_stopped) AS owned_until,
       'describe-tasks' AS source
FROM described d JOIN tasks t ON t.task_arn = d.task_arn
UNION ALL
SELECT t.task_arn, t.task_id, t.cluster_arn, i.ip, i.host,
       coalesce(t.started_at, i.first_observed - INTERVAL 10 MINUTE) AS owned_from,
       coalesce(t.stopped_at, t.observed_stopped, i.last_observed + INTERVAL 10 MINUTE) AS owned_until,
       'inventory' AS source
FROM inventory i JOIN tasks t ON t.task_arn = i.task_arn;

-- Coverage (detections.md, Terms: "covered"): when a host's audit log was being collected, so
-- that a fetch missing there means something. Nothing outside coverage is evidence of a missing
-- fetch.

-- Which container instances each host name stood for (from the audit lines and the collector's
-- coverage rows). A name can repeat across container instances (an instance replaced by one
-- with the same private address): such names are never merged and never matched on alone.
CREATE OR REPLACE VIEW host_instances AS
SELECT host,
       list_sort(list(DISTINCT container_instance_arn)) AS container_instance_arns,
       count(DISTINCT container_instance_arn) AS instances
FROM (SELECT DISTINCT host, container_instance_arn FROM credential_requests
      WHERE container_instance_arn IS NOT NULL
      UNION ALL
      SELECT DISTINCT host, container_instance_arn FROM collector_coverage
      WHERE container_instance_arn IS NOT NULL)
GROUP BY host;

-- Every coverage interval as recorded, before merging. `source`: `collector` (a collector
-- following the log), `backlog` (a collector run with --once, e.g. over copied logs) or
-- `raw_file` (audit files given to `ingest audit`).
CREATE OR REPLACE VIEW coverage_intervals AS
WITH collector AS (
    -- Segments publish an interval again each time it is extended: its latest row counts.
    SELECT host, run_id, interval_no, container_instance_arn, cluster, covered_from,
           covered_until, CASE WHEN mode = 'once' THEN 'backlog' ELSE 'collector' END AS source
    FROM collector_coverage
    QUALIFY row_number() OVER (PARTITION BY host, run_id, interval_no
                               ORDER BY covered_until DESC, seq DESC) = 1
),
in_lines AS (
    -- The container instance the lines of a collector interval name, when the agent could not
    -- be asked and they name exactly one.
    SELECT c.host, c.run_id, c.interval_no,
           CASE WHEN count(DISTINCT r.container_instance_arn) = 1
                THEN any_value(r.container_instance_arn) END AS container_instance_arn
    FROM collector c
    JOIN credential_requests r
      ON r.host = c.host AND r.event_time >= c.covered_from AND r.event_time <= c.covered_until
     AND r.container_instance_arn IS NOT NULL
    WHERE c.container_instance_arn IS NULL
    GROUP BY ALL
),
raw AS (
    -- Raw audit files (no collector): from the first record of the host's earliest file to its
    -- last record. When a copied file's end was read is unknown, so its last record's time
    -- stands for it; and no gap between copied files can be seen (an hour without requests has
    -- no file), so the files of one host count as one stretch.
    SELECT r.host,
           coalesce(r.container_instance_arn,
                    CASE WHEN h.instances = 1 THEN h.container_instance_arns[1] END)
               AS container_instance_arn,
           any_value(r.cluster) AS cluster,
           min(r.event_time) AS covered_from, max(r.event_time) AS covered_until
    FROM credential_requests r
    LEFT JOIN host_instances h ON h.host = r.host
    WHERE r.source_id LIKE 'file-%'
    GROUP BY ALL
)
SELECT c.host,
       coalesce(c.container_instance_arn, l.container_instance_arn,
                CASE WHEN h.instances = 1 THEN h.container_instance_arns[1] END)
           AS container_instance_arn,
       c.cluster, c.covered_from, c.covered_until, c.source, c.run_id, c.interval_no
FROM collector c
LEFT JOIN in_lines l
  ON l.host = c.host AND l.run_id = c.run_id AND l.interval_no = c.interval_no
LEFT JOIN host_instances h ON h.host = c.host
UNION ALL
SELECT host, container_instance_arn, cluster, covered_from, covered_until, 'raw_file', NULL, NULL
FROM raw;

-- Each host's coverage: intervals of one (host, container instance) that overlap or lie within
-- two minutes of each other merged into one. `source` lists where the merged intervals came
-- from (collector, backlog, raw_file), comma-separated.
CREATE OR REPLACE VIEW host_coverage AS
WITH ordered AS (
    SELECT *,
           max(covered_until) OVER (PARTITION BY host, container_instance_arn
                                    ORDER BY covered_from, covered_until
                                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach_before
    FROM coverage_intervals
),
islands AS (
    SELECT *,
           sum(CASE WHEN reach_before IS NULL
                     OR covered_from > reach_before + INTERVAL 2 MINUTE THEN 1 ELSE 0 END)
               OVER (PARTITION BY host, container_instance_arn
                     ORDER BY covered_from, covered_until ROWS UNBOUNDED PRECEDING) AS island
    FROM ordered
)
SELECT host, container_instance_arn, any_value(cluster) AS cluster,
       min(covered_from) AS covered_from, max(covered_until) AS covered_until,
       array_to_string(list_sort(list(DISTINCT source)), ',') AS source
FROM islands
GROUP BY host, container_instance_arn, island;

-- Each task with every merged coverage interval of its host: matched by container instance
-- ARN where both sides know it, by host name only where one side does not and that name
-- stands for one container instance at most (never merging instances that share a name).
CREATE OR REPLACE VIEW task_host_coverage AS
WITH t AS (
    SELECT task_arn, host, container_instance_arn, started_at,
           coalesce(stopped_at, observed_stopped) AS stopped_at
    FROM tasks
),
hc AS (
    SELECT c.*, coalesce(h.instances, 0) AS name_instances
    FROM host_coverage c LEFT JOIN host_instances h ON h.host = c.host
)
SELECT t.task_arn, t.started_at, t.stopped_at, c.host, c.container_instance_arn,
       c.covered_from, c.covered_until
FROM t JOIN hc c ON t.container_instance_arn = c.container_instance_arn
UNION ALL
SELECT t.task_arn, t.started_at, t.stopped_at, c.host, c.container_instance_arn,
       c.covered_from, c.covered_until
FROM t JOIN hc c ON t.host = c.host
WHERE (t.container_instance_arn IS NULL OR c.container_instance_arn IS NULL)
  AND c.name_instances <= 1;

-- When each task was covered: from its `started_at` when it started inside its host's
-- coverage; when it was already running as coverage began (or its start is unknown), only from
-- its first successful fetch (either role) inside that coverage (SDKs refresh lazily, so such a
-- task may not fetch for hours); until the coverage ends or the task stops. One row per covered
-- stretch; `covered_since` says which rule set its start (started_at | first_fetch).
CREATE OR REPLACE VIEW task_coverage AS
WITH first_fetch AS (
    SELECT m.task_arn, m.host, m.covered_from, min(r.event_time) AS fetched_at
    FROM task_host_coverage m
    JOIN credential_requests r
      ON r.task_arn = m.task_arn AND r.status = 200
     AND r.event_type IN ('GetCredentials', 'GetCredentialsExecutionRole')
     AND r.event_time >= m.covered_from AND r.event_time <= m.covered_until
    GROUP BY ALL
),
spans AS (
    SELECT m.task_arn, m.host, m.container_instance_arn,
           CASE WHEN m.started_at >= m.covered_from AND m.started_at <= m.covered_until
                THEN m.started_at ELSE f.fetched_at END AS covered_from,
           least(m.covered_until, coalesce(m.stopped_at, m.covered_until)) AS covered_until,
           CASE WHEN m.started_at >= m.covered_from AND m.started_at <= m.covered_until
                THEN 'started_at' ELSE 'first_fetch' END AS covered_since
    FROM task_host_coverage m
    LEFT JOIN first_fetch f
      ON f.task_arn = m.task_arn AND f.host = m.host AND f.covered_from = m.covered_from
)
SELECT task_arn, covered_from, covered_until, covered_since, host, container_instance_arn
FROM spans
WHERE covered_from IS NOT NULL AND covered_from <= covered_until;
