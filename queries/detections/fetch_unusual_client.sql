-- id: fetch_unusual_client
-- title: Task credentials fetched by a client that is not an AWS SDK
-- severity: high
-- description: A successful task-role credential fetch whose user agent is not an AWS SDK, the AWS CLI or the ECS agent (curl, Wget, python-requests without botocore, Go-http-client, ...): a person with a shell in the container pulling credentials by hand. SDK user agents with application suffixes are SDKs.
-- reads: credential_requests, audit_hosts
-- key: task_arn
-- params: sdk_pattern=(?i)(^|[\s(])(aws-sdk-[a-z0-9.-]+/|aws-cli/|botocore/|boto3/|amazon ecs agent)
WITH hits AS (
    SELECT event_time, host, source_ip, source_port, user_agent, task_arn, cluster,
        row_number() OVER (PARTITION BY task_arn ORDER BY event_time, byte_offset) AS rn
    FROM credential_requests
    WHERE status BETWEEN 200 AND 299
      AND task_arn IS NOT NULL
      AND coalesce(event_type, 'GetCredentials') = 'GetCredentials'
      AND NOT regexp_matches(user_agent, getvariable('sdk_pattern')::VARCHAR)
      AND event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
      AND event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
)
SELECT
    'fetch_unusual_client' AS kind,
    'high' AS severity,
    format('Task credentials fetched by {}', min(user_agent)) AS title,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    count(*) AS count,
    CASE WHEN regexp_matches(task_arn, ':task/[^/]+/[^/]+$')
         THEN regexp_replace(task_arn, ':task/([^/]+)/.*$', ':cluster/\1') END AS cluster_arn,
    task_arn,
    NULL AS role_arn,
    host_arn(min(host)) AS host,
    CASE WHEN count(DISTINCT source_ip) = 1 THEN min(source_ip) END AS source_ip,
    json_object(
        'user_agents', list_sort(list_distinct(list(user_agent)))[1:20],
        'source_ips', list_sort(list_distinct(list(source_ip)))[1:20],
        'hosts', list_sort(list_distinct(list(host)))[1:20],
        'fetches', list({'time': strftime(event_time, '%Y-%m-%dT%H:%M:%SZ'),
                         'source': source_ip || ':' || source_port, 'user_agent': user_agent}
                        ORDER BY event_time) FILTER (WHERE rn <= 20),
        'total', count(*)
    ) AS evidence
FROM hits
GROUP BY task_arn
