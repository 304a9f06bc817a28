//! IAM: the roles' policies and `iam/authorization-details.json` as
//! `aws iam get-account-authorization-details --filter Role User Group LocalManagedPolicy AWSManagedPolicy`
//! prints it (formats.md §7); also the resources (buckets, keys, secrets…) policies and calls name.

use serde_json::{Value, json};

use super::calls::Profile;
use super::clock::iso_offset;
use super::cluster::{REGIONS, RoleKind, World};
use super::rng::{ALNUM, Rng, UPPER_ALNUM, stream};

/// Actions planted in task roles that the simulated services never use (with `unused-permissions`).
/// All are observable in a trail with management events and S3 data events.
pub fn planted_unused(p: Profile) -> &'static [&'static str] {
    match p {
        Profile::OrdersApi => &["secretsmanager:PutSecretValue"],
        Profile::CatalogApi => &["dynamodb:UpdateTable"],
        Profile::OrdersWorker => &["s3:DeleteObject", "sqs:PurgeQueue"],
        Profile::MediaWorker => &["s3:DeleteObjectTagging"],
        Profile::BillingApi => &["ssm:PutParameter", "kms:CreateGrant"],
        Profile::IngestGateway => &["logs:DeleteLogGroup"],
        Profile::ReportBuilder => &["glue:DeleteTable"],
        Profile::LegacySidekick
        | Profile::Migration
        | Profile::QueueDrainer
        | Profile::WebhooksApi
        | Profile::Notifier
        | Profile::Storefront => &[],
    }
}

/// Names and ARNs of the resources one service works with.
#[derive(Debug, Clone)]
pub struct Resources {
    pub region: &'static str,
    pub bucket: String,
    pub key_arn: String,
    pub secret_name: String,
    pub secret_arn: String,
    pub table: String,
    pub table_arn: String,
    pub queue: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub parameter: String,
    pub parameter_arn: String,
    pub log_group: String,
}

pub fn resources(w: &World, service: usize) -> Resources {
    let s = &w.services[service];
    let region = REGIONS[w.clusters[s.cluster].region as usize];
    let mut rng = Rng::derive(w.seed, &[stream::IAM, service as u64]);
    let acct = &w.account;
    let family = s.profile.family();
    let bucket = match s.profile {
        Profile::OrdersApi | Profile::Migration => "acme-app-config",
        Profile::CatalogApi => "acme-catalog-assets",
        Profile::OrdersWorker => "acme-orders-archive",
        Profile::MediaWorker => "acme-media",
        Profile::ReportBuilder => "acme-reports",
        _ => "acme-misc",
    };
    let bucket = format!("{bucket}-{acct}-{region}");
    let secret_name = format!("prod/{family}/db");
    let table = match s.profile {
        Profile::OrdersApi | Profile::Migration => "orders".to_string(),
        Profile::CatalogApi => "catalog-items".to_string(),
        _ => format!("{family}-state"),
    };
    let queue = format!("{family}-jobs");
    let parameter = format!("/prod/{family}/config");
    Resources {
        region,
        key_arn: format!("arn:aws:kms:{region}:{acct}:key/{}", rng.uuid()),
        secret_arn: format!(
            "arn:aws:secretsmanager:{region}:{acct}:secret:{secret_name}-{}",
            rng.chars(ALNUM, 6)
        ),
        secret_name,
        table_arn: format!("arn:aws:dynamodb:{region}:{acct}:table/{table}"),
        table,
        queue_url: format!("https://sqs.{region}.amazonaws.com/{acct}/{queue}"),
        queue_arn: format!("arn:aws:sqs:{region}:{acct}:{queue}"),
        queue,
        parameter_arn: format!("arn:aws:ssm:{region}:{acct}:parameter{parameter}"),
        parameter,
        log_group: format!("/ecs/{family}"),
        bucket,
    }
}

fn allow(sid: &str, action: Value, resource: Value) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource})
}

fn doc(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn task_policy_for(w: &World, service: usize, p: Profile) -> Value {
    task_policy_inner(w, service, p, false)
}

/// The inline policy of a task role.
fn task_policy(w: &World, service: usize, planted: bool) -> Value {
    task_policy_inner(w, service, w.services[service].profile, planted)
}

fn task_policy_inner(w: &World, service: usize, p: Profile, planted: bool) -> Value {
    let r = resources(w, service);
    let objects = format!("arn:aws:s3:::{}/*", r.bucket);
    let bucket = format!("arn:aws:s3:::{}", r.bucket);
    let mut st = match p {
        Profile::OrdersApi => vec![
            allow(
                "ReadDbSecret",
                json!([
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:DescribeSecret"
                ]),
                json!(r.secret_arn),
            ),
            allow("DecryptSecrets", json!("kms:Decrypt"), json!(r.key_arn)),
            allow(
                "OrdersTable",
                json!([
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:Query",
                    "dynamodb:UpdateItem",
                    "dynamodb:DescribeTable"
                ]),
                json!(r.table_arn),
            ),
            allow("ReadConfig", json!("s3:GetObject"), json!(objects)),
        ],
        Profile::CatalogApi => vec![
            allow(
                "Assets",
                json!(["s3:GetObject", "s3:ListBucket"]),
                json!([bucket, objects]),
            ),
            allow(
                "Secret",
                json!("secretsmanager:GetSecretValue"),
                json!(r.secret_arn),
            ),
            allow("Decrypt", json!("kms:Decrypt"), json!(r.key_arn)),
            allow(
                "Items",
                json!([
                    "dynamodb:DescribeTable",
                    "dynamodb:GetItem",
                    "dynamodb:Query",
                    "dynamodb:batchGetItem"
                ]),
                json!(r.table_arn),
            ),
        ],
        Profile::OrdersWorker => vec![
            allow(
                "Jobs",
                json!([
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueUrl",
                    "sqs:GetQueueAttributes",
                    "sqs:ChangeMessageVisibility"
                ]),
                json!(r.queue_arn),
            ),
            allow(
                "Archive",
                json!(["s3:PutObject", "s3:GetObject"]),
                json!(objects),
            ),
            allow(
                "ArchiveKey",
                json!(["kms:GenerateDataKey", "kms:Decrypt"]),
                json!(r.key_arn),
            ),
            json!({"Sid": "NeverDeleteBuckets", "Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"}),
        ],
        Profile::MediaWorker => vec![
            allow("ReadMedia", json!("s3:Get*"), json!([bucket, objects])),
            allow("WriteMedia", json!("s3:PutObject"), json!(objects)),
            allow(
                "MediaKey",
                json!(["kms:GenerateDataKey*", "kms:Decrypt"]),
                json!(r.key_arn),
            ),
        ],
        Profile::BillingApi => vec![allow(
            "Describe",
            json!("kms:DescribeKey"),
            json!(r.key_arn),
        )],
        Profile::IngestGateway => vec![
            allow(
                "Envelope",
                json!(["kms:Encrypt", "kms:GenerateDataKey*"]),
                json!(r.key_arn),
            ),
            allow(
                "Secret",
                json!("secretsmanager:GetSecretValue"),
                json!(r.secret_arn),
            ),
            allow(
                "Forward",
                json!(["sqs:SendMessage", "kinesis:PutRecord", "kinesis:PutRecords"]),
                json!("*"),
            ),
        ],
        Profile::ReportBuilder => vec![
            allow(
                "Athena",
                json!("athena:*"),
                json!(format!(
                    "arn:aws:athena:{}:{}:workgroup/reports",
                    r.region, w.account
                )),
            ),
            allow(
                "Catalog",
                json!(["glue:GetTable", "glue:GetDatabase", "glue:GetPartitions"]),
                json!([
                    format!("arn:aws:glue:{}:{}:catalog", r.region, w.account),
                    format!("arn:aws:glue:{}:{}:database/analytics", r.region, w.account),
                    format!("arn:aws:glue:{}:{}:table/analytics/*", r.region, w.account)
                ]),
            ),
            allow(
                "Reports",
                json!([
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:ListBucket",
                    "s3:GetBucketLocation"
                ]),
                json!([bucket, objects]),
            ),
            allow(
                "ReportsKey",
                json!(["kms:GenerateDataKey", "kms:Decrypt"]),
                json!(r.key_arn),
            ),
        ],
        Profile::LegacySidekick => {
            // One statement object (not a list), NotAction: the "power user" pattern.
            return json!({"Version": "2012-10-17", "Statement": {
                "Effect": "Allow",
                "NotAction": ["iam:*", "organizations:*", "account:*"],
                "Resource": "*"
            }});
        }
        Profile::QueueDrainer => vec![
            allow("Queue", json!("sqs:GetQueueAttributes"), json!(r.queue_arn)),
            allow("Drain", json!("s3:PutObject"), json!(objects)),
            allow("DrainKey", json!("kms:GenerateDataKey"), json!(r.key_arn)),
        ],
        Profile::WebhooksApi => vec![
            allow("Payloads", json!("s3:PutObject"), json!(objects)),
            allow("PayloadKey", json!("kms:GenerateDataKey"), json!(r.key_arn)),
            allow("Queue", json!("sqs:GetQueueUrl"), json!(r.queue_arn)),
        ],
        Profile::Notifier => vec![
            allow(
                "Queue",
                json!(["sqs:GetQueueUrl", "sqs:GetQueueAttributes"]),
                json!(r.queue_arn),
            ),
            allow(
                "Secret",
                json!("secretsmanager:GetSecretValue"),
                json!(r.secret_arn),
            ),
            allow("Decrypt", json!("kms:Decrypt"), json!(r.key_arn)),
        ],
        Profile::Storefront => vec![
            allow(
                "Assets",
                json!(["s3:GetObject", "s3:PutObject"]),
                json!(objects),
            ),
            allow(
                "AssetsKey",
                json!(["kms:Decrypt", "kms:GenerateDataKey"]),
                json!(r.key_arn),
            ),
            allow(
                "Secret",
                json!("secretsmanager:GetSecretValue"),
                json!(r.secret_arn),
            ),
        ],
        Profile::Migration => vec![allow(
            "Migrate",
            json!([
                "dynamodb:DescribeTable",
                "dynamodb:UpdateTable",
                "dynamodb:UpdateTimeToLive"
            ]),
            json!(r.table_arn),
        )],
    };
    if planted {
        let extra = planted_unused(p);
        if !extra.is_empty() {
            let resource = match p {
                Profile::OrdersApi => json!(r.secret_arn),
                Profile::CatalogApi => json!(r.table_arn),
                Profile::OrdersWorker => json!([objects, r.queue_arn]),
                Profile::MediaWorker => json!(objects),
                Profile::BillingApi => json!([r.parameter_arn, r.key_arn]),
                Profile::IngestGateway => json!(format!(
                    "arn:aws:logs:{}:{}:log-group:/ecs/*",
                    r.region, w.account
                )),
                Profile::ReportBuilder => json!("*"),
                _ => json!("*"),
            };
            st.push(allow("Maintenance", json!(extra), resource));
        }
    }
    doc(st)
}

fn ecs_trust(w: &World) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "",
        "Effect": "Allow",
        "Principal": {"Service": "ecs-tasks.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {
            "ArnLike": {"aws:SourceArn": format!("arn:aws:ecs:*:{}:*", w.account)},
            "StringEquals": {"aws:SourceAccount": w.account}
        }
    }]})
}

struct Managed {
    name: &'static str,
    path: &'static str,
    aws: bool,
    versions: Vec<Value>,
    description: &'static str,
}

fn managed_policies(w: &World) -> Vec<Managed> {
    let acct = &w.account;
    vec![
        Managed {
            name: "app-config-read",
            path: "/",
            aws: false,
            description: "Read application parameters",
            versions: vec![
                doc(vec![allow("Params", json!("ssm:*"), json!("*"))]),
                doc(vec![
                    allow(
                        "Params",
                        json!([
                            "ssm:GetParameter",
                            "ssm:GetParameters",
                            "ssm:GetParametersByPath"
                        ]),
                        json!(format!("arn:aws:ssm:*:{acct}:parameter/prod/*")),
                    ),
                    allow(
                        "DecryptParams",
                        json!("kms:Decrypt"),
                        json!(format!("arn:aws:kms:*:{acct}:alias/aws/ssm")),
                    ),
                ]),
            ],
        },
        Managed {
            name: "billing-signing",
            path: "/",
            aws: false,
            description: "Sign and verify invoices",
            versions: vec![doc(vec![
                allow(
                    "Sign",
                    json!(["kms:Sign", "kms:Verify", "kms:GetPublicKey"]),
                    json!(format!("arn:aws:kms:*:{acct}:key/*")),
                ),
                json!({"Sid": "NoKeyDestruction", "Effect": "Deny",
                    "Action": ["kms:ScheduleKeyDeletion", "kms:DisableKey"], "Resource": "*"}),
            ])],
        },
        Managed {
            name: "workload-boundary",
            path: "/boundaries/",
            aws: false,
            description: "Permissions boundary for batch workloads",
            versions: vec![json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "NotAction": ["iam:*", "organizations:*", "account:*"],
                "Resource": "*"
            }]})],
        },
        Managed {
            name: "AmazonECSTaskExecutionRolePolicy",
            path: "/service-role/",
            aws: true,
            description: "Provides access to other AWS service resources that are required to run Amazon ECS tasks",
            versions: vec![doc(vec![json!({"Effect": "Allow", "Action": [
                "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage",
                "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"})])],
        },
        Managed {
            name: "AmazonEC2ContainerServiceforEC2Role",
            path: "/service-role/",
            aws: true,
            description: "Default policy for the Amazon EC2 Role for Amazon EC2 Container Service.",
            versions: vec![doc(vec![json!({"Effect": "Allow", "Action": [
                "ec2:DescribeTags", "ecs:CreateCluster", "ecs:DeregisterContainerInstance",
                "ecs:DiscoverPollEndpoint", "ecs:Poll", "ecs:RegisterContainerInstance",
                "ecs:StartTelemetrySession", "ecs:UpdateContainerInstancesState", "ecs:Submit*",
                "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage",
                "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"})])],
        },
        Managed {
            name: "AmazonECSServiceRolePolicy",
            path: "/aws-service-role/",
            aws: true,
            description: "Policy to enable Amazon ECS to manage your cluster.",
            versions: vec![doc(vec![
                json!({"Sid": "ECSTaskManagement", "Effect": "Allow", "Action": [
                "ec2:AttachNetworkInterface", "ec2:CreateNetworkInterface",
                "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission", "ec2:Describe*",
                "ec2:DetachNetworkInterface", "elasticloadbalancing:DeregisterTargets",
                "elasticloadbalancing:Describe*", "elasticloadbalancing:RegisterTargets",
                "route53:ChangeResourceRecordSets", "servicediscovery:RegisterInstance",
                "servicediscovery:DeregisterInstance"], "Resource": "*"}),
            ])],
        },
    ]
}

fn managed_arn(w: &World, m: &Managed) -> String {
    if m.aws {
        format!("arn:aws:iam::aws:policy{}{}", m.path, m.name)
    } else {
        format!("arn:aws:iam::{}:policy{}{}", w.account, m.path, m.name)
    }
}

/// Render `iam/authorization-details.json`.
pub fn authorization_details(w: &World) -> Value {
    let mut rng = Rng::derive(w.seed, &[stream::IAM, u64::MAX]);
    let managed = managed_policies(w);
    let arn_of = |name: &str| -> Value {
        let m = managed
            .iter()
            .find(|m| m.name == name)
            .map(|m| managed_arn(w, m));
        json!({"PolicyName": name, "PolicyArn": m})
    };
    let mut attachments: std::collections::BTreeMap<&str, u32> = Default::default();
    let mut boundary_uses: std::collections::BTreeMap<&str, u32> = Default::default();
    let mut roles = Vec::new();
    for (ri, role) in w.roles.iter().enumerate() {
        let mut inline: Vec<Value> = Vec::new();
        let mut attached: Vec<&str> = Vec::new();
        let mut boundary: Option<&str> = None;
        let trust = match role.kind {
            RoleKind::Task(p) => {
                let service = w
                    .services
                    .iter()
                    .position(|s| s.task_role == Some(ri))
                    .or_else(|| {
                        w.services
                            .iter()
                            .position(|s| s.profile == Profile::OrdersApi)
                    });
                if let Some(s) = service {
                    let policy = if p == Profile::Migration {
                        // Override role for the orders-api image: the orders table only.
                        task_policy_for(w, s, Profile::Migration)
                    } else {
                        task_policy(w, s, w.flags.planted_unused)
                    };
                    inline.push(json!({"PolicyName": format!("{}-runtime", p.family()), "PolicyDocument": policy}));
                }
                match p {
                    Profile::OrdersApi | Profile::IngestGateway => attached.push("app-config-read"),
                    Profile::BillingApi => {
                        attached.push("app-config-read");
                        attached.push("billing-signing");
                    }
                    Profile::ReportBuilder => boundary = Some("workload-boundary"),
                    // One role as task and execution role: it also pulls images and writes logs.
                    p if p.shares_execution_role() => {
                        attached.push("AmazonECSTaskExecutionRolePolicy")
                    }
                    _ => {}
                }
                ecs_trust(w)
            }
            RoleKind::Execution => {
                attached.push("AmazonECSTaskExecutionRolePolicy");
                inline.push(
                    json!({"PolicyName": "read-app-secrets", "PolicyDocument": doc(vec![
                        allow("Secrets", json!("secretsmanager:GetSecretValue"),
                            json!(format!("arn:aws:secretsmanager:*:{}:secret:prod/*", w.account))),
                        allow("Decrypt", json!("kms:Decrypt"), json!("*")),
                    ])}),
                );
                ecs_trust(w)
            }
            RoleKind::Instance => {
                attached.push("AmazonEC2ContainerServiceforEC2Role");
                json!({"Version": "2008-10-17", "Statement": [{"Sid": "", "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
            }
            RoleKind::EcsServiceLinked => {
                attached.push("AmazonECSServiceRolePolicy");
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Principal": {"Service": "ecs.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
            }
            RoleKind::CiDeploy => {
                let task_roles: Vec<String> = w
                    .roles
                    .iter()
                    .filter(|r| matches!(r.kind, RoleKind::Task(_) | RoleKind::Execution))
                    .map(|r| r.arn.clone())
                    .collect();
                inline.push(json!({"PolicyName": "deploy", "PolicyDocument": doc(vec![
                    allow("Deploy", json!(["ecs:RegisterTaskDefinition", "ecs:UpdateService",
                        "ecs:DescribeServices", "ecs:DescribeTaskDefinition"]), json!("*")),
                    allow("PassTaskRoles", json!("iam:PassRole"), json!(task_roles)),
                ])}));
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Principal": {"Federated": format!("arn:aws:iam::{}:oidc-provider/token.actions.githubusercontent.com", w.account)},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                        "StringLike": {"token.actions.githubusercontent.com:sub": "repo:acme/*:ref:refs/heads/main"}}}]})
            }
            RoleKind::Lambda => {
                inline.push(json!({"PolicyName": "thumbnails", "PolicyDocument": doc(vec![
                    allow("Objects", json!(["s3:GetObject", "s3:PutObject"]),
                        json!(format!("arn:aws:s3:::acme-thumbnails-{}/*", w.account))),
                    allow("Logs", json!(["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]), json!("*")),
                ])}));
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
            }
        };
        for a in &attached {
            *attachments.entry(a).or_default() += 1;
        }
        if let Some(b) = boundary {
            *boundary_uses.entry(b).or_default() += 1;
        }
        let last_used = w
            .keys
            .iter()
            .filter(|k| k.role as usize == ri)
            .map(|k| k.issued)
            .max();
        let mut entry = json!({
            "Path": role.path,
            "RoleName": role.name,
            "RoleId": role.id,
            "Arn": role.arn,
            "CreateDate": iso_offset(role.created),
            "AssumeRolePolicyDocument": trust,
            "InstanceProfileList": [],
            "RolePolicyList": inline,
            "AttachedManagedPolicies": attached.iter().map(|a| arn_of(a)).collect::<Vec<_>>(),
            "Tags": [],
            "RoleLastUsed": match last_used {
                Some(t) => json!({"LastUsedDate": iso_offset(t), "Region": REGIONS[0]}),
                None => json!({}),
            },
        });
        if let Some(b) = boundary
            && let Some(obj) = entry.as_object_mut()
        {
            let arn = arn_of(b)["PolicyArn"].clone();
            obj.insert(
                "PermissionsBoundary".to_string(),
                json!({"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": arn}),
            );
        }
        if role.kind == RoleKind::Instance
            && let Some(obj) = entry.as_object_mut()
        {
            obj.insert(
                "InstanceProfileList".to_string(),
                json!([{"Path": "/", "InstanceProfileName": "ecsInstanceRole",
                    "InstanceProfileId": format!("AIPA{}", rng.chars(UPPER_ALNUM, 17)),
                    "Arn": format!("arn:aws:iam::{}:instance-profile/ecsInstanceRole", w.account),
                    "CreateDate": iso_offset(role.created), "Roles": []}]),
            );
        }
        roles.push(entry);
    }
    let created = w.start - 400 * 86_400;
    let policies: Vec<Value> = managed
        .iter()
        .map(|m| {
            let n = m.versions.len();
            let versions: Vec<Value> = m
                .versions
                .iter()
                .enumerate()
                .rev()
                .map(|(i, d)| {
                    json!({"Document": d, "VersionId": format!("v{}", i + 1),
                        "IsDefaultVersion": i + 1 == n,
                        "CreateDate": iso_offset(created + i as i64 * 30 * 86_400)})
                })
                .collect();
            json!({
                "PolicyName": m.name,
                "PolicyId": format!("ANPA{}", rng.chars(UPPER_ALNUM, 17)),
                "Arn": managed_arn(w, m),
                "Path": m.path,
                "DefaultVersionId": format!("v{n}"),
                "AttachmentCount": attachments.get(m.name).copied().unwrap_or(0),
                "PermissionsBoundaryUsageCount": boundary_uses.get(m.name).copied().unwrap_or(0),
                "IsAttachable": true,
                "Description": m.description,
                "CreateDate": iso_offset(created),
                "UpdateDate": iso_offset(created + (n as i64 - 1) * 30 * 86_400),
                "PolicyVersionList": versions,
            })
        })
        .collect();
    let group_policy = doc(vec![allow(
        "OpsRead",
        json!([
            "ecs:Describe*",
            "ecs:List*",
            "cloudtrail:LookupEvents",
            "iam:Get*",
            "iam:List*",
            "ec2:Describe*",
            "logs:Get*",
            "logs:FilterLogEvents"
        ]),
        json!("*"),
    )]);
    json!({
        "UserDetailList": [{
            "Path": "/",
            "UserName": "ops-alice",
            "UserId": w.alice_id,
            "Arn": format!("arn:aws:iam::{}:user/ops-alice", w.account),
            "CreateDate": iso_offset(created),
            "UserPolicyList": [],
            "GroupList": ["ops"],
            "AttachedManagedPolicies": [],
            "Tags": []
        }],
        "GroupDetailList": [{
            "Path": "/",
            "GroupName": "ops",
            "GroupId": format!("AGPA{}", rng.chars(UPPER_ALNUM, 17)),
            "Arn": format!("arn:aws:iam::{}:group/ops", w.account),
            "CreateDate": iso_offset(created),
            "GroupPolicyList": [{"PolicyName": "ops-read", "PolicyDocument": group_policy}],
            "AttachedManagedPolicies": []
        }],
        "RoleDetailList": roles,
        "Policies": policies,
    })
}
