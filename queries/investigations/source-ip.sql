-- id: source-ip
-- title: Everything that came from one address
-- description: Everything about --ip, oldest first: which tasks held it (from the task_addresses view: describe-tasks ENI addresses and agent inventory addresses, with until when), every credential request the audit log has from it (requester address; detail is host and port), and every CloudTrail call whose sourceIPAddress it is, with the task (task_arn, role_kind) or principal behind each, the user agent, and the result (HTTP status of a fetch, error code of a call or OK).
-- params: ip
-- reads: task_addresses, fetches, calls
WITH timeline AS (
    SELECT owned_from AS time, 'ecs' AS source, 'held by task (' || source || ')' AS event,
           task_arn,
           'until ' || coalesce(strftime(owned_until, '%Y-%m-%dT%H:%M:%SZ'), 'now')
               || coalesce(' on ' || host, '') AS detail
    FROM task_addresses
    WHERE ip = getvariable('ip') AND owned_from IS NOT NULL
    UNION ALL BY NAME
    SELECT event_time AS time, 'audit' AS source,
           coalesce(event_type, 'credential request') AS event, task_arn, role_kind,
           role_arn AS principal, user_agent, status::VARCHAR AS result,
           host || coalesce(' port ' || source_port::VARCHAR, '') AS detail,
           source_file || ':' || byte_offset::VARCHAR AS event_id
    FROM fetches
    WHERE source_ip = getvariable('ip')
    UNION ALL BY NAME
    SELECT event_time AS time, 'cloudtrail' AS source, action AS event, task_arn, role_kind,
           principal_arn AS principal, user_agent, coalesce(error_code, 'OK') AS result,
           aws_region || coalesce(' via ' || vpc_endpoint_id, '') AS detail, event_id
    FROM calls
    WHERE source_ip = getvariable('ip')
)
SELECT time, source, event, task_arn, role_kind, principal, user_agent, result, detail, event_id
FROM timeline
WHERE time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
  AND time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
ORDER BY time, source, event_id
