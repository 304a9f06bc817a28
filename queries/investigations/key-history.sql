-- id: key-history
-- title: Every CloudTrail call made with one access key
-- description: Every CloudTrail event whose userIdentity.accessKeyId is --access-key-id (an ASIA… key of a role session, or an AKIA… user key), oldest first: time, principal, session name, role_kind (task or execution when the session is a known task's), IAM action (service prefix from eventSource plus eventName), source address, user agent, error code (NULL when it succeeded), and the task, family and region it maps to.
-- params: access_key_id
-- reads: calls
SELECT event_time AS time, principal_arn, session_name, role_kind, action, source_ip,
       user_agent, error_code, task_arn, family, aws_region, event_id
FROM calls
WHERE access_key_id = getvariable('access_key_id')
  AND event_time >= coalesce(getvariable('since')::TIMESTAMP, TIMESTAMP '-infinity')
  AND event_time < coalesce(getvariable('until')::TIMESTAMP, TIMESTAMP 'infinity')
ORDER BY event_time, event_id
