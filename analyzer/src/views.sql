-- Views over the analyzer's tables; recreated on every open, so they always match the tables.

-- One row per task known from any source: describe-tasks output (the newest snapshot, preferring
-- one that knows the stop), the collector's task inventory (agent /v1/tasks snapshots) and the
-- audit log itself, with roles resolved from the override or the task definition, and the
-- task's network (subnet, VPC, IPv6 addresses) from describe-tasks and the network inventory.
CREATE OR REPLACE VIEW tasks AS
WITH described AS (
    SELECT * FROM ecs_tasks
    QUALIFY row_number() OVER (PARTITION BY task_arn
                               ORDER BY (stopped_at IS NOT NULL) DESC, ingested_at DESC) = 1
),
-- What any snapshot of the task said about its network and image pull (a stopped task's
-- snapshot may have lost its attachment details).
described_net AS (
    SELECT task_arn,
           arg_max(pull_started_at, ingested_at) FILTER (WHERE pull_started_at IS NOT NULL) AS pull_started_at,
           arg_max(pull_stopped_at, ingested_at) FILTER (WHERE pull_stopped_at IS NOT NULL) AS pull_stopped_at,
           arg_max(subnet_id, ingested_at) FILTER (WHERE subnet_id IS NOT NULL) AS subnet_id,
           arg_max(attachment_id, ingested_at) FILTER (WHERE attachment_id IS NOT NULL) AS attachment_id,
           arg_max(eni_id, ingested_at) FILTER (WHERE eni_id IS NOT NULL) AS eni_id,
           list_distinct(flatten(list(coalesce(ipv6_addresses, []::VARCHAR[])))) AS ipv6_addresses
    FROM ecs_tasks GROUP BY task_arn
),
-- The network inventory's ECS task ENIs, by attachment ID (their Description) and by ENI ID.
eni_by_attachment AS (
    SELECT task_attachment_id,
           arg_max(eni_id, taken_at) AS eni_id,
           arg_max(vpc_id, taken_at) AS vpc_id,
           arg_max(subnet_id, taken_at) AS subnet_id
    FROM network_interfaces WHERE task_attachment_id IS NOT NULL GROUP BY task_attachment_id
),
eni_by_id AS (
    SELECT eni_id, arg_max(vpc_id, taken_at) AS vpc_id, arg_max(subnet_id, taken_at) AS subnet_id
    FROM network_interfaces GROUP BY eni_id
),
subnet_vpc AS (
    SELECT subnet_id, arg_max(vpc_id, taken_at) AS vpc_id FROM subnets GROUP BY subnet_id
),
eni_ipv6 AS (
    SELECT eni_id, list_sort(list(DISTINCT address)) AS ipv6_addresses
    FROM network_addresses WHERE family = 'ipv6' GROUP BY eni_id
),
net AS (
    SELECT n.task_arn, n.pull_started_at, n.pull_stopped_at, n.attachment_id,
           coalesce(n.subnet_id, ba.subnet_id, bi.subnet_id) AS subnet_id,
           coalesce(sv.vpc_id, ba.vpc_id, bi.vpc_id) AS vpc_id,
           list_sort(list_distinct(list_concat(n.ipv6_addresses,
                                               coalesce(v6.ipv6_addresses, []::VARCHAR[])))) AS ipv6_addresses
    FROM described_net n
    LEFT JOIN eni_by_attachment ba ON ba.task_attachment_id = n.attachment_id
    LEFT JOIN eni_by_id bi ON bi.eni_id = n.eni_id
    LEFT JOIN subnet_vpc sv ON sv.subnet_id = coalesce(n.subnet_id, ba.subnet_id, bi.subnet_id)
    LEFT JOIN eni_ipv6 v6 ON v6.eni_id = coalesce(n.eni_id, ba.eni_id)
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
                      CASE WHEN m.first_observed IS NOT NULL THEN 'inventory' END) AS sources,
       n.pull_started_at,
       n.pull_stopped_at,
       n.attachment_id,
       n.subnet_id,
       n.vpc_id,
       coalesce(n.ipv6_addresses, []::VARCHAR[]) AS ipv6_addresses,
       CASE WHEN m.task_arn LIKE 'arn:%:%:%:%:%' THEN nullif(split_part(m.task_arn, ':', 4), '') END AS region,
       CASE WHEN m.task_arn LIKE 'arn:%:%:%:%:%' THEN nullif(split_part(m.task_arn, ':', 5), '') END AS account_id
FROM merged m
LEFT JOIN td t
  ON t.task_definition_arn = m.task_definition_arn
  OR (m.task_definition_arn IS NULL AND t.family = m.inv_family AND t.revision = m.inv_revision)
LEFT JOIN audit a ON a.task_arn = m.task_arn
LEFT JOIN net n ON n.task_arn = m.task_arn;

-- What the ECS agent and Docker do with a task's execution role before its containers start:
-- image pulls and registry tokens, log streams, the secrets and parameters injected.
CREATE OR REPLACE MACRO agent_execution_call(src, name) AS
    (src = 'ecr.amazonaws.com' AND name IN ('GetAuthorizationToken', 'BatchGetImage',
                                            'GetDownloadUrlForLayer', 'BatchCheckLayerAvailability'))
    OR (src = 'logs.amazonaws.com' AND name IN ('CreateLogStream', 'CreateLogGroup'))
    OR (src = 'secretsmanager.amazonaws.com' AND name = 'GetSecretValue')
    OR (src = 'ssm.amazonaws.com' AND name IN ('GetParameters', 'GetParameter'))
    OR (src = 'kms.amazonaws.com' AND name = 'Decrypt');

-- True for a call the agent made for a task whose task role is also its execution role: one of
-- the agent's calls (agent_execution_call) from pullStartedAt to startedAt, both ends included at
-- CloudTrail's one-second resolution, or at any time when describe-tasks gave no pull or start
-- time (it cannot be placed, and is never evidence of misuse).
CREATE OR REPLACE MACRO execution_side(task_role, execution_role, pull_started, started,
                                       src, name, called_at) AS
    execution_role IS NOT DISTINCT FROM task_role
    AND agent_execution_call(src, name)
    AND (pull_started IS NULL OR started IS NULL
         OR (called_at >= date_trunc('second', pull_started)
             AND called_at <= date_trunc('second', started + INTERVAL 999999 MICROSECOND)));

-- Calls made with a task's own task-role credentials: CloudTrail sessions named with the task's ID
-- and issued by that task's task role. Execution-role sessions carry the same name but are the
-- agent's and Docker's (image pulls, log streams), never the task's, so they are not here; nor
-- are the agent's calls under a role that is both (execution_side). The detections of credential
-- use read this view.
CREATE OR REPLACE VIEW task_session_calls AS
SELECT t.task_arn, t.task_id, t.cluster_arn, t.task_role_arn, t.container_instance_arn,
       t.started_at, t.stopped_at, e.*
FROM cloudtrail_events e
JOIN tasks t
  ON e.session_name = t.task_id
 AND e.session_issuer_arn = t.task_role_arn
-- (the first test alone settles most calls: an OR stops at it, a NOT of the macro would not)
WHERE t.execution_role_arn IS DISTINCT FROM t.task_role_arn
   OR NOT execution_side(t.task_role_arn, t.execution_role_arn, t.pull_started_at, t.started_at,
                         e.event_source, e.event_name, e.event_time);

-- The one definition of an authorization error (detections.md, Terms), shared by
-- `access_denied_burst` and least privilege: any errorCode AWS uses for a refused authorization
-- (`AccessDenied*`, `*UnauthorizedOperation`, `*NotAuthorized*`, SNS's `AuthorizationError`,
-- `Forbidden*`, …), and the refusals of a request whose credentials were not accepted at all.
-- Such a call never counts as use of a permission. Other errors (a missing key, a throttle)
-- were authorized.
CREATE OR REPLACE MACRO authorization_error(code) AS
    code IS NOT NULL
    AND (code ILIKE '%AccessDenied%' OR code ILIKE '%Unauthorized%' OR code ILIKE '%NotAuthorized%'
         OR code ILIKE '%AuthorizationError%' OR code ILIKE 'Forbidden%' OR code ILIKE '%.Forbidden%'
         OR code IN ('AuthFailure', 'InvalidClientTokenId', 'ExpiredToken', 'ExpiredTokenException',
                     'SignatureDoesNotMatch', 'UnrecognizedClientException', 'InvalidAccessKeyId',
                     'AllAccessDisabled'));

-- A credential fetch's client family: the user agent's first product token without its version
-- (`python-urllib3/2.8.0` → `python-urllib3`), lower case; the empty user agent is a family of
-- its own (''), the one the JavaScript SDK v3 sends.
CREATE OR REPLACE MACRO client_family(ua) AS
    lower(split_part(split_part(trim(coalesce(ua, '')), ' ', 1), '/', 1));

-- Families real AWS SDKs send to the credential endpoint (formats.md §1, measured in
-- shared/data/sdk-credential-fetches): botocore-based clients (boto3, AWS CLI v1) send only
-- `python-urllib3/…`, JS v3 sends nothing, the others name themselves (`aws-sdk-nodejs`,
-- `aws-sdk-go`, `aws-sdk-java`, …). Never unusual.
CREATE OR REPLACE MACRO sdk_client_family(family) AS
    family = '' OR family = 'python-urllib3' OR family LIKE 'aws-sdk-%' OR family LIKE 'aws-cli%'
    OR family IN ('boto3', 'botocore', 'aws-chalice', 'amazon-ecs-agent');

-- Tools a person uses by hand to pull credentials: judged even where a family has no baseline.
CREATE OR REPLACE MACRO hand_tool_client(ua) AS
    regexp_matches(coalesce(ua, ''), '^(curl|wget|httpie|go-http-client)/|powershell/', 'i');

-- The ARN a call's request parameters name, for the common services whose records leave it
-- out of `resources` (DynamoDB, SQS, SNS, Secrets Manager, SSM, Logs); NULL for the others.
-- `role` is the session's issuer (its partition is the resource's), `region` and `account` the
-- call's.
CREATE OR REPLACE MACRO call_parameter_arn(src, role, region, account, params) AS
    CASE
        WHEN src = 'dynamodb.amazonaws.com'
             AND json_extract_string(params, '$.tableName') IS NOT NULL
          THEN format('arn:{}:dynamodb:{}:{}:table/{}', split_part(role, ':', 2),
                      region, account, json_extract_string(params, '$.tableName'))
        WHEN src = 'sqs.amazonaws.com'
             AND json_extract_string(params, '$.queueUrl') IS NOT NULL
          THEN format('arn:{}:sqs:{}:{}:{}', split_part(role, ':', 2),
                      region,
                      regexp_extract(json_extract_string(params, '$.queueUrl'), '/([0-9]{12})/[^/]+$', 1),
                      regexp_extract(json_extract_string(params, '$.queueUrl'), '/([^/]+)$', 1))
        WHEN src = 'sns.amazonaws.com'
          THEN json_extract_string(params, '$.topicArn')
        WHEN src = 'secretsmanager.amazonaws.com'
             AND json_extract_string(params, '$.secretId') LIKE 'arn:%'
          THEN json_extract_string(params, '$.secretId')
        WHEN src = 'secretsmanager.amazonaws.com'
             AND json_extract_string(params, '$.secretId') IS NOT NULL
          THEN format('arn:{}:secretsmanager:{}:{}:secret:{}-*',
                      split_part(role, ':', 2), region,
                      account, json_extract_string(params, '$.secretId'))
        WHEN src = 'ssm.amazonaws.com'
             AND json_extract_string(params, '$.name') IS NOT NULL
          THEN format('arn:{}:ssm:{}:{}:parameter/{}', split_part(role, ':', 2),
                      region, account,
                      ltrim(json_extract_string(params, '$.name'), '/'))
        WHEN src = 'logs.amazonaws.com'
             AND json_extract_string(params, '$.logGroupName') IS NOT NULL
          THEN format('arn:{}:logs:{}:{}:log-group:{}:*', split_part(role, ':', 2),
                      region, account,
                      json_extract_string(params, '$.logGroupName'))
    END;

-- What a call names as touched, unfiltered: the record's `resources` ARNs plus the one its
-- request parameters name (call_parameter_arn, which may be NULL). Only elements that are ARNs
-- (`LIKE 'arn:%'`) count.
CREATE OR REPLACE MACRO call_arns(src, role, region, account, resources, params) AS
    list_concat(coalesce(json_extract_string(resources, '$[*].ARN'), []::VARCHAR[]),
                [call_parameter_arn(src, role, region, account, params)]);

-- A touched resource's ARN as a policy names it: an S3 object's as bucket/* (keys are data, not
-- policy); any other unchanged.
CREATE OR REPLACE MACRO policy_resource_arn(src, arn) AS
    CASE WHEN src = 's3.amazonaws.com' AND contains(arn, '/')
         THEN regexp_replace(arn, '^(arn:[^:]+:s3:::[^/]+)/.+$', '\1/*')
         ELSE arn END;

-- Every CloudTrail call made with a role session (task, execution or any other role), one row per
-- IAM action the call shows was used (cloudtrail_event_map), with the resources it touched: the
-- record's `resources` ARNs plus the ARNs its requestParameters name for the common services
-- (call_arns). Calls AWS made on the session's behalf (`invoked_by`) are here too: they use the
-- action too.
CREATE OR REPLACE VIEW role_calls AS
SELECT e.session_issuer_arn AS role_arn, m.action, e.event_time, e.event_id, e.event_source,
       e.event_name, e.error_code, authorization_error(e.error_code) AS denied, e.session_name,
       e.invoked_by, e.source_ip, e.aws_region, e.event_category, e.access_key_id,
       list_filter(call_arns(e.event_source, e.session_issuer_arn, e.aws_region,
                             e.recipient_account_id, e.resources, e.request_parameters),
                   x -> x IS NOT NULL AND x LIKE 'arn:%') AS raw_arns,
       CASE WHEN e.event_source = 's3.amazonaws.com'
            THEN list_distinct(list_transform(raw_arns, x -> policy_resource_arn(e.event_source, x)))
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

-- Whether a value of an event field meets one condition of a trail's advanced field selector.
CREATE OR REPLACE MACRO trail_field_holds(op, vals, x) AS coalesce(CASE op
    WHEN 'Equals' THEN len(list_filter(vals, v -> v = x)) > 0
    WHEN 'NotEquals' THEN len(list_filter(vals, v -> v = x)) = 0
    WHEN 'StartsWith' THEN len(list_filter(vals, v -> starts_with(x, v))) > 0
    WHEN 'NotStartsWith' THEN len(list_filter(vals, v -> starts_with(x, v))) = 0
    WHEN 'EndsWith' THEN len(list_filter(vals, v -> ends_with(x, v))) > 0
    WHEN 'NotEndsWith' THEN len(list_filter(vals, v -> ends_with(x, v))) = 0
    ELSE false END AND x IS NOT NULL, false);

-- The literal start of an IAM resource pattern: up to its first wildcard or policy variable.
CREATE OR REPLACE MACRO arn_pattern_literal(p) AS regexp_extract(p, '^[^*?$]*');

-- Whether every ARN an IAM resource pattern can name meets one `resources.ARN` condition (a
-- pattern with a wildcard is judged by its literal start; where that cannot decide, it does not).
CREATE OR REPLACE MACRO trail_arn_holds(op, vals, p) AS coalesce(CASE op
    WHEN 'Equals' THEN NOT regexp_matches(p, '[*?$]') AND len(list_filter(vals, v -> v = p)) > 0
    WHEN 'StartsWith' THEN len(list_filter(vals, v -> starts_with(arn_pattern_literal(p), v))) > 0
    WHEN 'EndsWith' THEN NOT regexp_matches(p, '[*?$]')
                         AND len(list_filter(vals, v -> ends_with(p, v))) > 0
    WHEN 'NotEquals' THEN len(list_filter(vals, v -> CASE WHEN regexp_matches(p, '[*?$]')
                                                         THEN starts_with(v, arn_pattern_literal(p))
                                                         ELSE v = p END)) = 0
    WHEN 'NotStartsWith' THEN len(list_filter(vals, v ->
                                  starts_with(arn_pattern_literal(p), v)
                                  OR (regexp_matches(p, '[*?$]')
                                      AND starts_with(v, arn_pattern_literal(p))))) = 0
    WHEN 'NotEndsWith' THEN NOT regexp_matches(p, '[*?$]')
                            AND len(list_filter(vals, v -> ends_with(p, v))) = 0
    ELSE false END, false);

-- Whether the trail that was read could show each granted action, over the observation window
-- (`--since`, else the first CloudTrail event, to `--until`, else the last), with the reason when
-- it could not: the catalog does not know the action, no API operation is known to record it
-- (catalog.rs), CloudTrail never logs it, or the trail coverage model (trail.rs: `trail_scopes`,
-- `trail_selector_fields`) says no source of events read covers its event in every region the
-- role's tasks ran in (IAM's global events: us-east-1) for the role's account: management events
-- off, its event source excluded, read-only or write events not logged, data events of its
-- resource type not selected, or selected only for ARNs that do not hold every resource the role
-- is granted it on. A source whose selectors were not read (the files of an undescribed trail)
-- covers management events, and data events of a service when the trail read holds some in the
-- window. Cheap (no per-call work): what `unused_role` asks of a role before calling it unused.
CREATE OR REPLACE VIEW grant_visibility AS
WITH win AS (
    SELECT coalesce(getvariable('since')::TIMESTAMP, min(event_time)) AS window_start,
           coalesce(getvariable('until')::TIMESTAMP, max(event_time)) AS window_end
    FROM cloudtrail_events
),
data_prefixes AS (
    SELECT DISTINCT split_part(m.action, ':', 1) AS prefix
    FROM (SELECT DISTINCT e.event_source, e.event_name
          FROM cloudtrail_events e, win
          WHERE e.event_category = 'Data'
            AND e.event_time >= win.window_start AND e.event_time <= win.window_end) d
    JOIN cloudtrail_event_map m
      ON m.event_source = d.event_source AND m.event_name = d.event_name AND m.action IS NOT NULL
),
-- The granted actions CloudTrail records, with what a selector can look at: category, event
-- sources and names, read-only (IAM access level Read or List), data resource type.
acts AS (
    SELECT a.action, a.prefix, a.observability, a.data_resource_type,
           CASE WHEN a.observability = 'data' THEN 'Data' ELSE 'Management' END AS category,
           a.access_level IN ('Read', 'List') AS read_only,
           list_distinct(coalesce(src.sources, [a.prefix || '.amazonaws.com'])
                         || coalesce(ex.sources, [])) AS event_sources,
           list_distinct([a.name] || coalesce(ex.names, [])) AS event_names
    FROM (SELECT DISTINCT action FROM role_grants) g
    JOIN iam_actions a ON a.action = g.action
    LEFT JOIN (SELECT prefix, list(DISTINCT event_source) AS sources
               FROM cloudtrail_source_prefixes GROUP BY prefix) src ON src.prefix = a.prefix
    LEFT JOIN (SELECT action, list(DISTINCT event_source) AS sources,
                      list(DISTINCT event_name) AS names
               FROM cloudtrail_event_actions GROUP BY action) ex ON ex.action = a.action
    WHERE a.observability IN ('management', 'data')
),
-- The resources each role is granted each action on that the action can name: not an ARN of
-- another service (a statement may list a queue beside a bucket's objects; a data action's ARN
-- service is its prefix, but EBS snapshots' `ec2` and CloudTrail channels' `cloudtrail`), and
-- of S3's, objects for object actions and buckets for bucket actions (none left: the
-- statement's resources as they are).
grant_resources AS (
    SELECT g.role_arn, g.action,
           coalesce(nullif(list_filter(rs, x ->
               CASE WHEN x NOT LIKE 'arn:%' OR regexp_matches(split_part(x, ':', 3), '[*?$]')
                      THEN true
                    WHEN split_part(x, ':', 3) <> a.prefix
                         AND NOT (a.prefix = 'ebs' AND split_part(x, ':', 3) = 'ec2')
                         AND NOT (a.prefix = 'cloudtrail-data' AND split_part(x, ':', 3) = 'cloudtrail')
                      THEN false
                    WHEN a.prefix <> 's3' THEN true
                    WHEN list_contains(i.resource_types, 'object') THEN x LIKE 'arn:%:s3:::%/%'
                    ELSE x NOT LIKE 'arn:%:s3:::%/%' END), []::VARCHAR[]), rs) AS resources
    FROM (SELECT role_arn, action,
                 CASE WHEN len(resources) = 0 THEN ['*'] ELSE resources END AS rs
          FROM role_grants) g
    JOIN acts a ON a.action = g.action
    JOIN iam_actions i ON i.action = g.action
),
-- One row per (action, granted resource pattern) for data events, per action for management
-- events (their resources do not decide what is logged).
targets AS (
    SELECT DISTINCT g.action, CASE WHEN a.observability = 'data' THEN r END AS resource
    FROM grant_resources g
    JOIN acts a ON a.action = g.action,
         unnest(g.resources) AS u(r)
),
checks AS (
    SELECT t.action, t.resource, f.trail, f.selector, f.field,
           f.field IN ('eventCategory', 'resources.type') AS selecting,
           CASE f.field
               WHEN 'eventCategory' THEN trail_field_holds(f.operator, f.vals, a.category)
               WHEN 'resources.type' THEN trail_field_holds(f.operator, f.vals, a.data_resource_type)
               WHEN 'readOnly' THEN trail_field_holds(f.operator, list_transform(f.vals, v -> lower(v)),
                                                      CASE WHEN a.read_only THEN 'true' ELSE 'false' END)
               WHEN 'eventSource' THEN len(list_filter(a.event_sources,
                                           s -> NOT trail_field_holds(f.operator, f.vals, s))) = 0
               WHEN 'eventName' THEN len(list_filter(a.event_names,
                                         n -> NOT trail_field_holds(f.operator, f.vals, n))) = 0
               WHEN 'resources.ARN' THEN t.resource IS NOT NULL
                                         AND trail_arn_holds(f.operator, f.vals, t.resource)
               ELSE false
           END AS holds,
           CASE f.field
               WHEN 'readOnly' THEN CASE WHEN a.read_only THEN 'read-only' ELSE 'write' END
                   || format(' {} events are not logged (readOnly {} {})', lower(a.category),
                             f.operator, array_to_string(f.vals, ', '))
               WHEN 'eventSource' THEN format('{} {} events are not logged (eventSource {} {})',
                   array_to_string(a.event_sources, ', '), lower(a.category), f.operator,
                   array_to_string(f.vals, ', '))
               WHEN 'eventName' THEN format('not every event recording it ({}) is logged (eventName {} {})',
                   array_to_string(a.event_names, ', '), f.operator, array_to_string(f.vals, ', '))
               WHEN 'resources.ARN' THEN format('{} data events are logged only where resources.ARN {} {}, not for every resource of {}',
                   a.data_resource_type, f.operator, array_to_string(f.vals, ', '), t.resource)
               ELSE format('a selector filters on {}, which cannot be judged here', f.field)
           END AS why
    FROM targets t
    JOIN acts a ON a.action = t.action
    CROSS JOIN trail_selector_fields f
),
selectors AS (
    SELECT action, resource, trail, selector,
           bool_and(holds) AS logs,
           bool_and(holds) FILTER (WHERE selecting) AS selects,
           list(why ORDER BY why) FILTER (WHERE NOT holds AND NOT selecting) AS whys
    FROM checks GROUP BY action, resource, trail, selector
),
-- Per source of events and (action, resource): covered, or why not.
per_scope AS (
    SELECT s.trail, s.origin, s.regions, s.accounts, t.action, t.resource,
           CASE WHEN NOT s.selectors_known
                THEN a.observability = 'management' OR dp.prefix IS NOT NULL
                ELSE coalesce(bool_or(x.logs), false) END AS covered,
           CASE
               WHEN NOT s.selectors_known
                 THEN format('a data event, and the trail read holds no {} data events', a.prefix)
               WHEN s.origin = 'lookup' AND a.observability = 'data'
                 THEN format('a data event, and {} returns management events only', s.trail)
               WHEN NOT coalesce(bool_or(x.selects), false) AND a.observability = 'data'
                    AND a.data_resource_type IS NULL
                 THEN 'a data event of no resource type known here, so no selector is known to log it'
               WHEN NOT coalesce(bool_or(x.selects), false) AND a.observability = 'data'
                 THEN format('the trail logs no {} data events', a.data_resource_type)
               WHEN NOT coalesce(bool_or(x.selects), false)
                 THEN 'the trail logs no management events (IncludeManagementEvents false)'
               ELSE array_to_string(list_sort(list_distinct(flatten(
                        list(x.whys) FILTER (WHERE x.selects AND x.whys IS NOT NULL)))), '; ')
           END AS why
    FROM trail_scopes s
    CROSS JOIN targets t
    JOIN acts a ON a.action = t.action
    LEFT JOIN data_prefixes dp ON dp.prefix = a.prefix
    LEFT JOIN selectors x ON x.trail = s.trail AND x.action = t.action
                         AND x.resource IS NOT DISTINCT FROM t.resource
    GROUP BY s.trail, s.origin, s.regions, s.accounts, s.selectors_known, t.action, t.resource,
             a.observability, a.prefix, a.data_resource_type, dp.prefix
),
-- Where each role acts: its account, and the regions its tasks ran in (none known: any).
role_where AS (
    SELECT g.role_arn, split_part(g.role_arn, ':', 5) AS account,
           coalesce(r.regions, [NULL::VARCHAR]) AS regions
    FROM (SELECT DISTINCT role_arn FROM role_grants) g
    LEFT JOIN (SELECT role_arn,
                      nullif(list_sort(list_distinct(list(split_part(t, ':', 4))
                                                     FILTER (WHERE split_part(t, ':', 4) <> ''))),
                             []::VARCHAR[]) AS regions
               FROM task_roles, unnest(task_arns) AS u(t) GROUP BY role_arn) r
      ON r.role_arn = g.role_arn
),
-- Per (role, action, region): covered when some source of events covering that region and
-- account covers the action on every resource the role is granted it on.
grant_regions AS (
    -- each grant in each region the role's tasks ran in (IAM's global events: us-east-1)
    SELECT g.role_arn, g.action, w.account, reg.region
    FROM role_grants g
    JOIN acts a ON a.action = g.action
    JOIN role_where w ON w.role_arn = g.role_arn
    CROSS JOIN LATERAL (SELECT unnest(CASE WHEN a.prefix IN ('iam', 'cloudfront', 'route53', 'organizations')
                                           THEN ['us-east-1'] ELSE w.regions END) AS region) reg
),
scopes_here AS (
    -- the sources of events that read that region and account (an inner join, so it is a hash
    -- join on role and action; the outer join below only adds the grants no source reads)
    SELECT gr.role_arn, gr.action, gr.region, p.trail, p.covered_all, p.why
    FROM grant_regions gr
    JOIN (SELECT p.trail, p.regions, p.accounts, g2.role_arn, g2.action,
                 bool_and(p.covered) AS covered_all,
                 array_to_string(list_sort(list_distinct(list(p.why) FILTER (WHERE NOT p.covered))), '; ') AS why
          FROM grant_resources g2
          JOIN per_scope p ON p.action = g2.action
           AND (p.resource IS NULL OR list_contains(g2.resources, p.resource))
          GROUP BY p.trail, p.regions, p.accounts, g2.role_arn, g2.action) p
      ON p.role_arn = gr.role_arn AND p.action = gr.action
    WHERE (p.regions IS NULL OR gr.region IS NULL OR list_contains(p.regions, gr.region))
      AND (p.accounts IS NULL OR list_contains(p.accounts, gr.account))
),
per_region AS (
    SELECT gr.role_arn, gr.action, gr.region,
           coalesce(bool_or(p.covered_all), false) AS covered,
           array_to_string(list_sort(list_distinct(list(p.why) FILTER (WHERE p.why <> ''))), '; ') AS why,
           count(p.trail) AS scopes
    FROM grant_regions gr
    LEFT JOIN scopes_here p
      ON p.role_arn = gr.role_arn AND p.action = gr.action
     AND p.region IS NOT DISTINCT FROM gr.region
    GROUP BY gr.role_arn, gr.action, gr.region
),
coverage AS (
    SELECT role_arn, action, bool_and(covered) AS covered,
           CASE WHEN bool_and(NOT covered AND scopes > 0) AND count(DISTINCT why) = 1
                THEN any_value(why)
                ELSE array_to_string(list_sort(list(
                    CASE WHEN scopes = 0 AND region IS NULL
                           THEN 'no trail read covers its account'
                         WHEN scopes = 0 THEN format('no trail read covers {}', region)
                         WHEN region IS NULL THEN why
                         ELSE format('{}: {}', region, why) END) FILTER (WHERE NOT covered)), '; ')
           END AS why
    FROM per_region GROUP BY role_arn, action
)
SELECT g.role_arn, g.action,
       CASE
           WHEN a.action IS NULL THEN 'not in the IAM action catalog'
           WHEN a.observability = 'unlogged' THEN coalesce('CloudTrail never logs it: ' || a.note,
                                                           'CloudTrail never logs it')
           WHEN a.observability = 'unknown' THEN coalesce(a.note, 'no CloudTrail event is known to record it')
           WHEN NOT coalesce(c.covered, false) THEN coalesce(nullif(c.why, ''), 'no trail read covers it')
       END AS unverifiable_reason
FROM role_grants g
LEFT JOIN iam_actions a ON a.action = g.action
LEFT JOIN coverage c ON c.role_arn = g.role_arn AND c.action = g.action;

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
-- The authorized calls in the window, one pass: counted per role session, API and the resources
-- each call touched as a policy names them (role_calls.resource_arns), before any join (millions
-- of calls, thousands of rows: an S3 object's ARN becomes its bucket's `/*`), of the granted roles.
call_groups AS (
    SELECT *
    FROM (SELECT e.session_issuer_arn AS role_arn, e.event_source, e.event_name, e.session_name,
                 list_transform(list_filter(call_arns(e.event_source, e.session_issuer_arn,
                                                      e.aws_region, e.recipient_account_id,
                                                      e.resources, e.request_parameters),
                                            x -> x LIKE 'arn:%'),
                                x -> policy_resource_arn(e.event_source, x)) AS arns,
                 count(*) AS calls, max(e.event_time) AS last_used
          FROM cloudtrail_events e, win
          WHERE NOT authorization_error(e.error_code)
            AND e.event_time >= win.window_start AND e.event_time <= win.window_end
          GROUP BY ALL)
    WHERE role_arn IN (SELECT role_arn FROM role_grants)
),
calls AS (
    SELECT role_arn, event_source, event_name, session_name, sum(calls) AS calls,
           max(last_used) AS last_used
    FROM call_groups GROUP BY ALL
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
    SELECT c.role_arn, m.action, sum(c.calls)::BIGINT AS calls, max(c.last_used) AS last_used,
           list_sort(list_distinct(list(f.family) FILTER (WHERE f.family IS NOT NULL))) AS families
    FROM calls c
    JOIN cloudtrail_event_map m
      ON m.event_source = c.event_source AND m.event_name = c.event_name AND m.action IS NOT NULL
    LEFT JOIN session_family f ON f.role_arn = c.role_arn AND f.session_name = c.session_name
    GROUP BY c.role_arn, m.action
),
-- The resources those calls touched, per role and API.
api_resources AS (
    SELECT DISTINCT role_arn, event_source, event_name, arn
    FROM (SELECT role_arn, event_source, event_name, unnest(arns) AS arn FROM call_groups)
),
touched AS (
    SELECT role_arn, action, list(arn ORDER BY arn) AS resources
    FROM (SELECT DISTINCT r.role_arn, m.action, r.arn
          FROM api_resources r
          JOIN cloudtrail_event_map m
            ON m.event_source = r.event_source AND m.event_name = r.event_name
           AND m.action IS NOT NULL)
    GROUP BY role_arn, action
)
SELECT g.role_arn, g.action,
       coalesce(a.access_level, g.access_level) AS access_level,
       CASE
           WHEN u.action IS NOT NULL THEN 'used'
           WHEN v.unverifiable_reason IS NOT NULL THEN 'unverifiable'
           ELSE 'unused'
       END AS status,
       CASE WHEN u.action IS NULL THEN v.unverifiable_reason END AS reason,
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
LEFT JOIN grant_visibility v ON v.role_arn = g.role_arn AND v.action = g.action;

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

-- Audit lines with the container instance that wrote them (`instance`): the one the line names,
-- else the one its source file's lines name (refused requests name none), else the one its host
-- name stands for when that name stood for a single instance, else the host name. Host names can
-- repeat across container instances (an image whose /etc/hostname was baked in, an address
-- reused by a replacement instance); source files never do, so lines of two instances that share
-- a name are never merged.
CREATE OR REPLACE VIEW audit_lines AS
WITH sources AS (
    SELECT host, source_id, arg_max(container_instance_arn, n) AS container_instance_arn
    FROM (SELECT host, source_id, container_instance_arn, count(*) AS n
          FROM credential_requests WHERE container_instance_arn IS NOT NULL
          GROUP BY host, source_id, container_instance_arn)
    GROUP BY host, source_id
),
names AS (
    -- the one container instance a host name stands for (host_instances), if it is one
    SELECT host, CASE WHEN instances = 1 THEN container_instance_arns[1] END AS container_instance_arn
    FROM host_instances
)
SELECT r.*,
       coalesce(r.container_instance_arn, s.container_instance_arn, n.container_instance_arn,
                r.host) AS instance
FROM credential_requests r
LEFT JOIN sources s ON s.host = r.host AND s.source_id = r.source_id
LEFT JOIN names n ON n.host = r.host;

-- Agent inventory snapshots with the container instance they were taken on: the task's own
-- (describe-tasks, or the audit lines that name it), else the one the host name stands for.
CREATE OR REPLACE VIEW inventory_lines AS
WITH names AS (
    -- the one container instance a host name stands for (host_instances), if it is one
    SELECT host, CASE WHEN instances = 1 THEN container_instance_arns[1] END AS container_instance_arn
    FROM host_instances
),
task_instances AS (
    SELECT task_arn, any_value(container_instance_arn) AS container_instance_arn
    FROM tasks WHERE container_instance_arn IS NOT NULL GROUP BY task_arn
)
SELECT i.*, coalesce(t.container_instance_arn, n.container_instance_arn, i.host) AS instance
FROM task_inventory i
LEFT JOIN task_instances t ON t.task_arn = i.task_arn
LEFT JOIN names n ON n.host = i.host;

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
            WHEN e.session_issuer_arn = t.task_role_arn
                 AND NOT execution_side(t.task_role_arn, t.execution_role_arn, t.pull_started_at,
                                        t.started_at, e.event_source, e.event_name, e.event_time)
              THEN 'task'
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

-- Address arithmetic for the address rules, in plain SQL: DuckDB's inet extension cannot be
-- loaded (extension auto-loading is off and there is no network), and these macros also work in
-- `credtrail sql` sessions over a read-only store.
-- An IPv4 address in dotted-quad form (no leading zeros, as AWS writes them) as an integer;
-- NULL for anything else.
CREATE OR REPLACE MACRO ipv4_to_int(ip) AS (
    CASE WHEN regexp_full_match(ip, '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}')
         THEN TRY_CAST(split_part(ip, '.', 1) AS BIGINT) * 16777216
              + TRY_CAST(split_part(ip, '.', 2) AS BIGINT) * 65536
              + TRY_CAST(split_part(ip, '.', 3) AS BIGINT) * 256
              + TRY_CAST(split_part(ip, '.', 4) AS BIGINT)
    END);

-- Lower-case hex digits as a string of '0' and '1' (4 per digit); NULL stays NULL.
CREATE OR REPLACE MACRO hex_to_bits(h) AS
    array_to_string(list_transform(string_split(h, ''), hd ->
        ['0000', '0001', '0010', '0011', '0100', '0101', '0110', '0111',
         '1000', '1001', '1010', '1011', '1100', '1101', '1110', '1111'][position(hd IN '0123456789abcdef')]), '');

-- An IPv6 address in any RFC 4291 text form (`::` abbreviation, an embedded dotted IPv4 tail,
-- a `%zone` suffix, either case) as its 32 hex digits; NULL for anything else.
CREATE OR REPLACE MACRO ipv6_hex(ip) AS
    list_transform(
        -- The text without the zone, with a dotted IPv4 tail rewritten as two hex groups.
        [CASE WHEN regexp_matches(split_part(lower(trim(ip)), '%', 1), ':[0-9]+\.[0-9.]+$')
              THEN regexp_replace(split_part(lower(trim(ip)), '%', 1), '[0-9.]+$', '')
                   || format('{:x}:{:x}',
                             ipv4_to_int(regexp_extract(split_part(trim(ip), '%', 1), '[0-9.]+$')) // 65536,
                             ipv4_to_int(regexp_extract(split_part(trim(ip), '%', 1), '[0-9.]+$')) % 65536)
              ELSE split_part(lower(trim(ip)), '%', 1) END],
        v6p -> CASE
            WHEN v6p IS NULL OR NOT regexp_full_match(v6p, '[0-9a-f:]+') OR NOT contains(v6p, ':')
                 OR length(v6p) - length(replace(v6p, '::', '')) > 2
              THEN NULL
            ELSE list_transform(
                [CASE WHEN contains(v6p, '::')
                      THEN list_concat(
                               CASE WHEN split_part(v6p, '::', 1) = '' THEN []::VARCHAR[]
                                    ELSE string_split(split_part(v6p, '::', 1), ':') END,
                               list_concat(
                                   list_transform(range(8 - len(CASE WHEN split_part(v6p, '::', 1) = '' THEN []::VARCHAR[]
                                                                     ELSE string_split(split_part(v6p, '::', 1), ':') END)
                                                          - len(CASE WHEN split_part(v6p, '::', 2) = '' THEN []::VARCHAR[]
                                                                     ELSE string_split(split_part(v6p, '::', 2), ':') END)),
                                                  v6z -> '0'),
                                   CASE WHEN split_part(v6p, '::', 2) = '' THEN []::VARCHAR[]
                                        ELSE string_split(split_part(v6p, '::', 2), ':') END))
                      ELSE string_split(v6p, ':') END],
                v6g -> CASE WHEN len(v6g) = 8
                               AND list_bool_and(list_transform(v6g, v6x -> regexp_full_match(v6x, '[0-9a-f]{1,4}')))
                          THEN array_to_string(list_transform(v6g, v6x -> lpad(v6x, 4, '0')), '') END)[1]
        END)[1];

-- An address's bits as a string of '0' and '1': 32 for IPv4, 128 for IPv6; NULL when the text is
-- no address (a service name such as `AWS Internal`, a host name, garbage).
CREATE OR REPLACE MACRO ip_bits(ip) AS (
    CASE WHEN ipv4_to_int(trim(ip)) IS NOT NULL
         THEN hex_to_bits(format('{:08x}', ipv4_to_int(trim(ip))))
         ELSE hex_to_bits(ipv6_hex(ip)) END);

-- True when `ip` is inside `cidr` (`10.0.0.0/8`, `2600:1f18:abcd::/56`; a bare address is its own
-- /32 or /128). An address of the other family, or text that is no address, is never inside.
-- NULL when either is NULL; a `cidr` that is no CIDR range is an error that names it.
CREATE OR REPLACE MACRO cidr_contains(cidr, ip) AS
    list_transform(
        [struct_pack(cidr_text := cidr,
                     net := ip_bits(split_part(trim(cidr), '/', 1)),
                     slash := contains(cidr, '/'),
                     plen := TRY_CAST(trim(split_part(cidr, '/', 2)) AS INTEGER),
                     addr := ip_bits(ip),
                     ip_null := ip IS NULL)],
        cc -> CASE
            WHEN cc.cidr_text IS NULL OR cc.ip_null THEN NULL
            WHEN cc.net IS NULL OR (cc.slash AND (cc.plen IS NULL OR cc.plen < 0 OR cc.plen > length(cc.net)))
              THEN error('not a CIDR range: ' || cc.cidr_text)::BOOLEAN
            WHEN cc.addr IS NULL OR length(cc.addr) <> length(cc.net) THEN false
            ELSE left(cc.addr, CASE WHEN cc.slash THEN cc.plen ELSE length(cc.net) END)
                 = left(cc.net, CASE WHEN cc.slash THEN cc.plen ELSE length(cc.net) END)
        END)[1];

-- True when `ip` is inside any range of `cidrs`, a list separated by spaces or commas (the
-- `expected_egress` parameter: `--param expected_egress='203.0.113.0/24 198.51.100.7'`); false
-- for an empty or NULL list.
CREATE OR REPLACE MACRO cidr_list_contains(cidrs, ip) AS
    coalesce(list_bool_or(list_transform(
        list_filter(regexp_split_to_array(trim(coalesce(cidrs, '')), '[\s,]+'), rng -> rng <> ''),
        rng -> coalesce(cidr_contains(rng, ip), false))), false);

-- Whether two private addresses are in the same address space (detections.md, "belongs to"): a
-- private address means something only within its VPC; where either VPC is unknown, within the
-- same region and account.
CREATE OR REPLACE MACRO same_address_space(vpc_a, region_a, account_a, vpc_b, region_b, account_b) AS (
    CASE WHEN vpc_a IS NOT NULL AND vpc_b IS NOT NULL THEN vpc_a = vpc_b
         ELSE region_a IS NOT DISTINCT FROM region_b AND account_a IS NOT DISTINCT FROM account_b END);

-- Which task owned which address when (detections.md, "belongs to"), VPC-scoped: ENI addresses
-- (private IPv4 and IPv6) from describe-tasks (`describe-tasks`) and from the network inventory's
-- ENIs whose Description names the task's attachment (`network-inventory`), and container
-- addresses from the agent inventory (`inventory`: bridge addresses, which mean something only on
-- that `host`; an awsvpc task's are its ENI's, in its VPC). Ownership runs from the task's creation (else its pull, start, or first agent
-- snapshot) to its stop: `stoppedAt`, else its first STOPPED agent snapshot, else the first
-- snapshot of its host that no longer lists it; NULL `owned_until` while it runs. Public
-- addresses are in `egress_addresses`.
CREATE OR REPLACE VIEW owned_addresses AS
WITH gone AS (
    SELECT i.task_arn, min(s.observed_at) AS observed_gone
    FROM (SELECT task_arn, host, max(observed_at) AS last_observed FROM task_inventory GROUP BY ALL) i
    ASOF JOIN (SELECT DISTINCT host, observed_at FROM task_inventory) s
      ON s.host = i.host AND s.observed_at > i.last_observed
    GROUP BY i.task_arn
),
life AS (
    SELECT t.task_arn, t.vpc_id, t.region, t.account_id, t.attachment_id, t.eni_id,
           coalesce(t.created_at, t.pull_started_at, t.started_at, t.first_observed) AS owned_from,
           coalesce(t.stopped_at, t.observed_stopped, g.observed_gone) AS owned_until
    FROM tasks t LEFT JOIN gone g ON g.task_arn = t.task_arn
),
described AS (
    SELECT DISTINCT task_arn,
           unnest(list_concat(coalesce(private_ips, []::VARCHAR[]),
                              coalesce(ipv6_addresses, []::VARCHAR[]))) AS address
    FROM ecs_tasks
),
enis AS (
    SELECT l.task_arn, a.address, any_value(a.vpc_id) AS vpc_id, any_value(a.region) AS region,
           any_value(a.account_id) AS account_id, min(a.taken_at) AS first_seen
    FROM network_addresses a
    JOIN life l ON a.task_attachment_id = l.attachment_id OR a.eni_id = l.eni_id
    WHERE a.kind IN ('private', 'ipv6')
    GROUP BY l.task_arn, a.address
),
agent AS (
    SELECT task_arn, host, ipv4_address AS address, min(observed_at) AS first_observed,
           bool_or(network_mode = 'awsvpc') AS awsvpc
    FROM task_inventory
    WHERE ipv4_address IS NOT NULL AND ipv4_address <> ''
    GROUP BY task_arn, host, ipv4_address
)
SELECT l.task_arn, d.address,
       CASE WHEN contains(d.address, ':') THEN 'ipv6' ELSE 'ipv4' END AS family,
       l.vpc_id, l.region, l.account_id, NULL::VARCHAR AS host,
       l.owned_from, l.owned_until, 'describe-tasks' AS source
FROM described d JOIN life l ON l.task_arn = d.task_arn
UNION ALL
SELECT l.task_arn, e.address,
       CASE WHEN contains(e.address, ':') THEN 'ipv6' ELSE 'ipv4' END,
       coalesce(e.vpc_id, l.vpc_id), coalesce(e.region, l.region), coalesce(e.account_id, l.account_id),
       NULL::VARCHAR, coalesce(l.owned_from, e.first_seen), l.owned_until, 'network-inventory'
FROM enis e JOIN life l ON l.task_arn = e.task_arn
UNION ALL
SELECT l.task_arn, a.address,
       CASE WHEN contains(a.address, ':') THEN 'ipv6' ELSE 'ipv4' END,
       CASE WHEN a.awsvpc THEN l.vpc_id END, l.region, l.account_id,
       CASE WHEN a.awsvpc THEN NULL ELSE a.host END,
       coalesce(l.owned_from, a.first_observed), l.owned_until, 'inventory'
FROM agent a JOIN life l ON l.task_arn = a.task_arn;

-- The account's own egress addresses per the network inventory (detections.md, "own egress
-- addresses"): the public IPv4 and the IPv6 addresses of its ENIs, by what the ENI serves
-- (`kind`): `nat_gateway`, `instance` (attached to an EC2 instance), `task` (an ECS task ENI:
-- its Description is the task's attachment ARN), `other` (load balancers, endpoints, Lambda, …).
-- A snapshot vouches for NAT gateways and instances as long as they exist (`vouched_from`
-- -infinity to `vouched_until` infinity), for a task's address while that task appears in it:
-- the life of the task when describe-tasks knows it (its ENI and address are the task's from
-- creation to stop; a task still running at its last snapshot, to that snapshot), else the first
-- to the last snapshot showing the address; for `other` addresses, the first to the last snapshot.
-- Ranges configured with `--param expected_egress` are matched with `cidr_list_contains`.
CREATE OR REPLACE VIEW egress_addresses AS
WITH a AS (
    SELECT a.*,
           CASE WHEN a.interface_type = 'nat_gateway' THEN 'nat_gateway'
                WHEN a.task_attachment_id IS NOT NULL THEN 'task'
                WHEN a.attachment_instance_id IS NOT NULL THEN 'instance'
                ELSE 'other' END AS egress_kind
    FROM network_addresses a
    WHERE a.kind IN ('public', 'ipv6')
),
g AS (
    SELECT address, family, region, account_id, egress_kind AS kind, eni_id,
           any_value(vpc_id) AS vpc_id, any_value(task_attachment_id) AS task_attachment_id,
           any_value(attachment_instance_id) AS instance_id,
           min(taken_at) AS first_snapshot, max(taken_at) AS last_snapshot
    FROM a GROUP BY address, family, region, account_id, egress_kind, eni_id
),
tk AS (
    SELECT attachment_id, any_value(task_arn) AS task_arn,
           min(coalesce(created_at, pull_started_at, started_at, first_observed)) AS task_from,
           max(coalesce(stopped_at, observed_stopped)) AS task_until
    FROM tasks WHERE attachment_id IS NOT NULL GROUP BY attachment_id
)
SELECT g.address, g.family, g.region, g.account_id, g.kind, g.eni_id, g.vpc_id,
       g.task_attachment_id, tk.task_arn, g.instance_id, g.first_snapshot, g.last_snapshot,
       CASE WHEN g.kind IN ('nat_gateway', 'instance') THEN '-infinity'::TIMESTAMP
            WHEN g.kind = 'task' THEN least(coalesce(tk.task_from, g.first_snapshot), g.first_snapshot)
            ELSE g.first_snapshot END AS vouched_from,
       CASE WHEN g.kind IN ('nat_gateway', 'instance') THEN 'infinity'::TIMESTAMP
            -- an ENI keeps its public address for the task's life: while describe-tasks shows the
            -- task running, the inventory vouches until it stops
            WHEN g.kind = 'task' AND tk.task_arn IS NOT NULL
              THEN greatest(coalesce(tk.task_until, 'infinity'::TIMESTAMP), g.last_snapshot)
            WHEN g.kind = 'task' THEN g.last_snapshot
            ELSE g.last_snapshot END AS vouched_until
FROM g LEFT JOIN tk ON tk.attachment_id = g.task_attachment_id;

-- Coverage (detections.md, Terms: "covered"): when a host's audit log was being collected, so
-- that a fetch missing there means something. Nothing outside coverage is evidence of a missing
-- fetch.


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

-- Each host's coverage: intervals of one (host, container instance) that overlap or touch merged
-- into one. Nothing bridges a hole, however short: a restart that lost nothing overlaps the run
-- before it (a resumed file covers from the last record read then), so a hole between two
-- intervals is a recorded gap or a stretch nobody watched. `source` lists where the merged
-- intervals came from (collector, backlog, raw_file), comma-separated.
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
                     OR covered_from > reach_before THEN 1 ELSE 0 END)
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
