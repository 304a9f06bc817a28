-- id: use_by_other_task
-- title: Task role credentials used from another task's address
-- severity: critical
-- description: An API call with task A's task-role session (session name = A's task ID, issued by A's task role) whose sourceIPAddress (a private IPv4 address, or an ENI's IPv6 address) belongs, at that time and in that address space, to a different task B: one of B's ENI addresses per describe-tasks or the network inventory (owned_addresses), from B's creation to its stop. A private address means something only within its VPC: the call's VPC is its VPC endpoint's (describe-vpc-endpoints), the owner's its subnet's; where either is unknown the two are compared within one region and account (two regions or accounts reusing 10.0.1.0/24 are different addresses). An address that several tasks hold at that time belongs to none of them, and a bridge address (host-local) is never a CloudTrail source. A's credentials were taken and used by the workload of another task.
-- reads: task_session_calls, owned_addresses, vpc_endpoints
-- key: task_arn
-- params:
WITH endpoints AS (
    SELECT vpc_endpoint_id, any_value(vpc_id) AS vpc_id FROM vpc_endpoints GROUP BY vpc_endpoint_id
),
calls AS (
    -- the calls the address tests can match, read once: millions of rows streamed through one
    -- join with the (few) task addresses, so the evidence's columns ride along
    SELECT c.task_arn, c.cluster_arn, c.task_role_arn, c.container_instance_arn, c.event_time,
           c.event_source, c.event_name, c.error_code, c.source_ip, c.vpc_endpoint_id,
           c.user_agent, c.access_key_id, c.event_id, c.aws_region, c.recipient_account_id,
           ep.vpc_id AS call_vpc,
           CASE WHEN contains(c.source_ip, ':') THEN ipv6_hex(c.source_ip) ELSE c.source_ip END AS ip_key
    FROM task_session_calls c
    LEFT JOIN endpoints ep ON ep.vpc_endpoint_id = c.vpc_endpoint_id
    -- a cheap prefix test first: most calls come from public addresses or service names
    WHERE (starts_with(c.source_ip, '10.') OR starts_with(c.source_ip, '172.')
           OR starts_with(c.source_ip, '192.168.') OR contains(c.source_ip, ':'))
      AND (regexp_matches(c.source_ip,
              '^(10\.[0-9]{1,3}|172\.(1[6-9]|2[0-9]|3[01])|192\.168)\.[0-9]{1,3}\.[0-9]{1,3}$')
           OR (contains(c.source_ip, ':') AND ipv6_hex(c.source_ip) IS NOT NULL
               AND NOT regexp_matches(lower(c.source_ip), '^(fe[89ab]|::1$)')))
      AND c.event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND c.event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
),
addresses AS (
    SELECT task_arn AS owner_arn, vpc_id, region, account_id, owned_from,
           coalesce(owned_until, TIMESTAMP 'infinity') AS owned_until, source,
           CASE WHEN family = 'ipv6' THEN ipv6_hex(address) ELSE address END AS ip_key
    FROM owned_addresses
    WHERE host IS NULL
),
foreign_pairs AS (
    -- the calls whose address another task held then (most matches are a task's own address,
    -- so these are few); one row per call (event IDs are unique in the store)
    SELECT DISTINCT c.*
    FROM calls c
    JOIN addresses a
      ON a.ip_key = c.ip_key AND a.owned_from <= c.event_time AND c.event_time <= a.owned_until
     AND same_address_space(c.call_vpc, c.aws_region, c.recipient_account_id,
                            a.vpc_id, a.region, a.account_id)
    WHERE a.owner_arn <> c.task_arn
),
owned AS (
    -- of those calls, the ones whose address exactly one task held then (not the caller's own
    -- too, not shared by several)
    SELECT c.task_arn, c.event_id, any_value(a.owner_arn) AS owner_arn,
           any_value(a.vpc_id) AS owner_vpc, list_sort(list_distinct(list(a.source))) AS how
    FROM foreign_pairs c
    JOIN addresses a
      ON a.ip_key = c.ip_key AND a.owned_from <= c.event_time AND c.event_time <= a.owned_until
     AND same_address_space(c.call_vpc, c.aws_region, c.recipient_account_id,
                            a.vpc_id, a.region, a.account_id)
    GROUP BY c.task_arn, c.event_id
    HAVING count(DISTINCT a.owner_arn) = 1
),
foreign_calls AS (
    SELECT w.task_arn, w.cluster_arn, w.task_role_arn, w.container_instance_arn,
           w.event_time, w.event_source, w.event_name, w.error_code, w.source_ip, w.vpc_endpoint_id,
           w.user_agent, w.access_key_id, w.event_id, w.call_vpc,
           o.owner_arn, o.owner_vpc, o.how,
           row_number() OVER (PARTITION BY w.task_arn ORDER BY w.event_time, w.event_id) AS rn
    FROM foreign_pairs w
    JOIN owned o ON o.task_arn = w.task_arn AND o.event_id = w.event_id
    WHERE o.owner_arn <> w.task_arn
)
SELECT
    'use_by_other_task' AS kind,
    'critical' AS severity,
    format('{} API calls with a task''s role session from another task''s address', count(*)) AS title,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    count(*) AS count,
    any_value(cluster_arn) AS cluster_arn,
    task_arn,
    any_value(task_role_arn) AS role_arn,
    any_value(container_instance_arn) AS host,
    CASE WHEN count(DISTINCT source_ip) = 1 THEN min(source_ip) END AS source_ip,
    json_object(
        'other_task_arns', list_sort(list_distinct(list(owner_arn)))[1:20],
        'addresses', list_sort(list_distinct(list(source_ip)))[1:20],
        'address_space', CASE WHEN bool_and(call_vpc IS NOT NULL AND owner_vpc IS NOT NULL)
                              THEN 'VPC (the call''s VPC endpoint and the owner''s subnet)'
                              ELSE 'region and account (a VPC was unknown)' END,
        'ownership_from', list_sort(list_distinct(flatten(list(how)))),
        'calls', list({'time': strftime(event_time, '%Y-%m-%dT%H:%M:%SZ'),
                       'event_source': event_source, 'event_name': event_name,
                       'error_code': error_code, 'source_ip': source_ip,
                       'other_task_arn': owner_arn, 'vpc_endpoint_id': vpc_endpoint_id,
                       'user_agent': user_agent, 'access_key_id': access_key_id,
                       'event_id': event_id} ORDER BY event_time, event_id)
                 FILTER (WHERE rn <= 20),
        'count', count(*)
    ) AS evidence
FROM foreign_calls
GROUP BY task_arn
