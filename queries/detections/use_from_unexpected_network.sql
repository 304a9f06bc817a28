-- id: use_from_unexpected_network
-- title: Task role credentials used from outside the account's networks
-- severity: critical when a network inventory vouches for the account's addresses at the call's time; medium when the verdict rests on learned egress (no inventory for the call's region and account, or one that cannot vouch for that time)
-- description: An API call with task A's task-role session (session name = A's task ID, issued by A's task role) from a sourceIPAddress that is none of: an AWS service acting for the session (invokedBy, a service host name, AWS Internal: anything that is not an IP address); a call through a VPC endpoint (its private address is judged by use_by_other_task); a private address, or an IPv6 address of one of the account's task ENIs (same); one of the account's own egress addresses: the public addresses of its NAT gateways, instances and tasks per the network inventory (egress_addresses, while a snapshot vouches for them), the ranges of expected_egress (CIDRs separated by spaces), or learned ones (seen for at least min_sessions distinct task sessions of the cluster). The inventory vouches for a call when it holds the call's region and account and could have shown A's own egress: A runs in bridge or host mode (its egress is its instance's or a NAT gateway's, vouched for as long as they exist) or A's ENI appears in a snapshot. Otherwise the verdict rests on learned egress, and the finding says so (medium).
-- reads: task_session_calls, tasks, egress_addresses, owned_addresses, network_interfaces
-- key: task_arn
-- params: min_sessions=3, expected_egress=
WITH public_calls AS NOT MATERIALIZED (
    SELECT c.task_arn, c.cluster_arn, c.task_role_arn, c.container_instance_arn,
           c.event_time, c.event_source, c.event_name, c.error_code, c.source_ip, c.user_agent,
           c.access_key_id, c.event_id, c.aws_region, c.recipient_account_id
    FROM task_session_calls c
    WHERE c.invoked_by IS NULL
      AND c.vpc_endpoint_id IS NULL
      -- an address, not a service name: dotted IPv4 (checked cheaply), or IPv6
      AND (regexp_full_match(c.source_ip, '[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}')
           OR (contains(c.source_ip, ':') AND ipv6_hex(c.source_ip) IS NOT NULL))
      AND NOT regexp_matches(lower(c.source_ip),
              '^(10\.|172\.(1[6-9]|2[0-9]|3[01])\.|192\.168\.|127\.|169\.254\.|f[cd][0-9a-f]{2}:|fe[89ab][0-9a-f]:|::1$|::$)')
),
task_ipv6 AS (
    -- IPv6 addresses of the account's task ENIs are task addresses, like private ones
    SELECT DISTINCT ipv6_hex(address) AS ip_key FROM owned_addresses WHERE family = 'ipv6'
),
learned AS (
    -- over all stored calls, not only the judged window: a baseline
    SELECT cluster_arn, source_ip, count(DISTINCT task_arn) AS sessions
    FROM public_calls
    GROUP BY cluster_arn, source_ip
    HAVING count(DISTINCT task_arn) >= getvariable('min_sessions')::BIGINT
),
configured AS (
    -- expected_egress: CIDR ranges (or bare addresses) separated by spaces or commas
    SELECT rng
    FROM unnest(list_filter(regexp_split_to_array(trim(coalesce(getvariable('expected_egress'), '')),
                                                  '[\s,]+'), r -> r <> '')) AS t(rng)
),
inventoried AS (
    SELECT DISTINCT region, account_id FROM network_interfaces
),
task_net AS (
    SELECT t.task_arn, any_value(t.network_mode) AS network_mode,
           bool_or(n.eni_id IS NOT NULL) AS eni_in_inventory
    FROM tasks t
    LEFT JOIN network_interfaces n
      ON n.task_attachment_id = t.attachment_id OR n.eni_id = t.eni_id
    GROUP BY t.task_arn
),
candidates AS MATERIALIZED (
    -- the cheap equality tests first (learned egress, the inventory's egress addresses): they
    -- leave a handful of the millions of public calls for the costlier address tests below
    SELECT p.*
    FROM public_calls p
    WHERE p.event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND p.event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
      AND NOT EXISTS (SELECT 1 FROM learned l
                      WHERE l.cluster_arn IS NOT DISTINCT FROM p.cluster_arn
                        AND l.source_ip = p.source_ip)
      AND NOT EXISTS (SELECT 1 FROM egress_addresses g
                      WHERE g.address = p.source_ip
                        AND p.event_time BETWEEN g.vouched_from AND g.vouched_until)
),
in_expected AS (
    SELECT DISTINCT k.source_ip
    FROM (SELECT DISTINCT source_ip FROM candidates) k
    CROSS JOIN configured g
    WHERE cidr_contains(g.rng, k.source_ip)
),
judged AS (
    SELECT p.*,
           i.region IS NOT NULL AS inventory_here,
           tn.network_mode,
           coalesce(tn.eni_in_inventory, false) AS eni_in_inventory
    FROM candidates p
    LEFT JOIN inventoried i ON i.region = p.aws_region AND i.account_id = p.recipient_account_id
    LEFT JOIN task_net tn ON tn.task_arn = p.task_arn
    WHERE NOT (contains(p.source_ip, ':')
               AND ipv6_hex(p.source_ip) IN (SELECT ip_key FROM task_ipv6))
      AND p.source_ip NOT IN (SELECT source_ip FROM in_expected)
),
unexpected AS (
    SELECT *,
           inventory_here AND (network_mode IN ('bridge', 'host') OR eni_in_inventory) AS vouched,
           row_number() OVER (PARTITION BY task_arn ORDER BY event_time, event_id) AS rn
    FROM judged
),
egress AS (
    SELECT cluster_arn, list_sort(list(source_ip))[1:20] AS ips
    FROM learned GROUP BY cluster_arn
)
SELECT
    'use_from_unexpected_network' AS kind,
    CASE WHEN bool_and(vouched) THEN 'critical' ELSE 'medium' END AS severity,
    format('{} API calls with a task''s role session from {} outside the account''s networks{}',
           count(*), CASE WHEN count(DISTINCT source_ip) = 1 THEN min(source_ip)
                          ELSE format('{} addresses', count(DISTINCT source_ip)) END,
           CASE WHEN bool_and(vouched) THEN ''
                ELSE ' (judged against learned egress only)' END) AS title,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    count(*) AS count,
    any_value(unexpected.cluster_arn) AS cluster_arn,
    unexpected.task_arn,
    any_value(task_role_arn) AS role_arn,
    any_value(container_instance_arn) AS host,
    CASE WHEN count(DISTINCT source_ip) = 1 THEN min(source_ip) END AS source_ip,
    json_object(
        'source_ips', list_sort(list_distinct(list(source_ip)))[1:20],
        'verdict_rests_on', CASE
            WHEN bool_and(vouched) THEN 'network inventory'
            WHEN NOT bool_or(inventory_here) THEN 'learned egress: no network inventory for this region and account'
            ELSE 'learned egress: the network inventory does not show this task''s network interface' END,
        'missing_inputs', list_filter([
            CASE WHEN NOT bool_or(inventory_here) THEN 'network inventory' END,
            CASE WHEN any_value(network_mode) IS NULL THEN 'task definition (network mode)' END],
            x -> x IS NOT NULL),
        'network_mode', any_value(network_mode),
        'learned_egress', any_value(egress.ips),
        'expected_egress', nullif(getvariable('expected_egress'), ''),
        'min_sessions', getvariable('min_sessions')::BIGINT,
        'user_agents', list_sort(list_distinct(list(user_agent)))[1:10],
        'access_key_ids', list_sort(list_distinct(list(access_key_id)))[1:20],
        'calls', list({'time': strftime(event_time, '%Y-%m-%dT%H:%M:%SZ'),
                       'event_source': event_source, 'event_name': event_name,
                       'error_code': error_code, 'source_ip': source_ip,
                       'user_agent': user_agent, 'access_key_id': access_key_id,
                       'event_id': event_id} ORDER BY event_time, event_id)
                 FILTER (WHERE rn <= 20),
        'count', count(*)
    ) AS evidence
FROM unexpected
LEFT JOIN egress ON egress.cluster_arn IS NOT DISTINCT FROM unexpected.cluster_arn
GROUP BY unexpected.task_arn
