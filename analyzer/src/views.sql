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
       split_part(e.event_source, '.', 1) || ':' || e.event_name AS action,
       e.aws_region,
       e.source_ip,
       e.user_agent,
       e.error_code,
       e.error_message,
       e.error_code IS NULL AS ok,
       coalesce(e.error_code ILIKE '%AccessDenied%' OR e.error_code ILIKE '%Unauthorized%',
                false) AS denied,
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
