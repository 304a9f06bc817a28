//! The AWS API calls the simulated cluster makes, and each service's usage profile.

/// One CloudTrail-visible API operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Api {
    S3GetObject,
    S3PutObject,
    S3HeadObject,
    S3DeleteObject,
    S3ListBuckets,
    KmsDecrypt,
    KmsEncrypt,
    KmsGenerateDataKey,
    KmsSign,
    KmsVerify,
    KmsGetPublicKey,
    SmGetSecretValue,
    SmDescribeSecret,
    SmListSecrets,
    StsGetCallerIdentity,
    StsGetCallerIdentityGlobal,
    StsAssumeRole,
    StsAssumeRoleWithWebIdentity,
    SsmGetParameter,
    SsmGetParameters,
    DdbDescribeTable,
    DdbUpdateTable,
    DdbListTables,
    SqsGetQueueUrl,
    SqsGetQueueAttributes,
    AthenaStartQueryExecution,
    AthenaGetQueryExecution,
    AthenaGetQueryResults,
    GlueGetTable,
    EcrGetAuthorizationToken,
    EcrBatchGetImage,
    EcrGetDownloadUrlForLayer,
    LogsCreateLogStream,
    EcsDiscoverPollEndpoint,
    EcsSubmitTaskStateChange,
    EcsSubmitContainerStateChange,
    EcsRegisterTaskDefinition,
    EcsUpdateService,
    EcsDescribeServices,
    EcsListTasks,
    EcsDescribeTasks,
    Ec2CreateNetworkInterface,
    Ec2AttachNetworkInterface,
    Ec2DeleteNetworkInterface,
    Ec2DescribeInstances,
    IamListRoles,
    IamListUsers,
    IamGetRole,
    LambdaListFunctions,
    CloudTrailLookupEvents,
    ConsoleLogin,
}

/// What CloudTrail says about an operation.
#[derive(Debug, Clone, Copy)]
pub struct ApiSpec {
    /// Service prefix in `eventSource` (`s3` → `s3.amazonaws.com`).
    pub service: &'static str,
    pub event_source: &'static str,
    pub event_name: &'static str,
    pub read_only: bool,
    /// A data event (logged only with data-event selectors; here: S3 objects).
    pub data: bool,
    /// Logged in us-east-1 whatever the caller's region (IAM, STS global endpoint, sign-in).
    pub global: bool,
    pub event_version: &'static str,
}

const fn spec(
    service: &'static str,
    event_source: &'static str,
    event_name: &'static str,
    read_only: bool,
    data: bool,
    global: bool,
) -> ApiSpec {
    ApiSpec {
        service,
        event_source,
        event_name,
        read_only,
        data,
        global,
        event_version: if data { "1.10" } else { "1.09" },
    }
}

impl Api {
    pub fn spec(self) -> ApiSpec {
        use Api::*;
        const S3: &str = "s3.amazonaws.com";
        const KMS: &str = "kms.amazonaws.com";
        const SM: &str = "secretsmanager.amazonaws.com";
        const STS: &str = "sts.amazonaws.com";
        const SSM: &str = "ssm.amazonaws.com";
        const DDB: &str = "dynamodb.amazonaws.com";
        const SQS: &str = "sqs.amazonaws.com";
        const ATH: &str = "athena.amazonaws.com";
        const ECR: &str = "ecr.amazonaws.com";
        const ECS: &str = "ecs.amazonaws.com";
        const EC2: &str = "ec2.amazonaws.com";
        const IAM: &str = "iam.amazonaws.com";
        let mut s = match self {
            S3GetObject => spec("s3", S3, "GetObject", true, true, false),
            S3PutObject => spec("s3", S3, "PutObject", false, true, false),
            S3HeadObject => spec("s3", S3, "HeadObject", true, true, false),
            S3DeleteObject => spec("s3", S3, "DeleteObject", false, true, false),
            S3ListBuckets => spec("s3", S3, "ListBuckets", true, false, false),
            KmsDecrypt => spec("kms", KMS, "Decrypt", true, false, false),
            KmsEncrypt => spec("kms", KMS, "Encrypt", true, false, false),
            KmsGenerateDataKey => spec("kms", KMS, "GenerateDataKey", true, false, false),
            KmsSign => spec("kms", KMS, "Sign", true, false, false),
            KmsVerify => spec("kms", KMS, "Verify", true, false, false),
            KmsGetPublicKey => spec("kms", KMS, "GetPublicKey", true, false, false),
            SmGetSecretValue => spec("secretsmanager", SM, "GetSecretValue", true, false, false),
            SmDescribeSecret => spec("secretsmanager", SM, "DescribeSecret", true, false, false),
            SmListSecrets => spec("secretsmanager", SM, "ListSecrets", true, false, false),
            StsGetCallerIdentity => spec("sts", STS, "GetCallerIdentity", true, false, false),
            StsGetCallerIdentityGlobal => spec("sts", STS, "GetCallerIdentity", true, false, true),
            StsAssumeRole => spec("sts", STS, "AssumeRole", true, false, false),
            StsAssumeRoleWithWebIdentity => {
                spec("sts", STS, "AssumeRoleWithWebIdentity", true, false, true)
            }
            SsmGetParameter => spec("ssm", SSM, "GetParameter", true, false, false),
            SsmGetParameters => spec("ssm", SSM, "GetParameters", true, false, false),
            DdbDescribeTable => spec("dynamodb", DDB, "DescribeTable", true, false, false),
            DdbUpdateTable => spec("dynamodb", DDB, "UpdateTable", false, false, false),
            DdbListTables => spec("dynamodb", DDB, "ListTables", true, false, false),
            SqsGetQueueUrl => spec("sqs", SQS, "GetQueueUrl", true, false, false),
            SqsGetQueueAttributes => spec("sqs", SQS, "GetQueueAttributes", true, false, false),
            AthenaStartQueryExecution => {
                spec("athena", ATH, "StartQueryExecution", false, false, false)
            }
            AthenaGetQueryExecution => spec("athena", ATH, "GetQueryExecution", true, false, false),
            AthenaGetQueryResults => spec("athena", ATH, "GetQueryResults", true, false, false),
            GlueGetTable => spec("glue", "glue.amazonaws.com", "GetTable", true, false, false),
            EcrGetAuthorizationToken => {
                spec("ecr", ECR, "GetAuthorizationToken", true, false, false)
            }
            EcrBatchGetImage => spec("ecr", ECR, "BatchGetImage", true, false, false),
            EcrGetDownloadUrlForLayer => {
                spec("ecr", ECR, "GetDownloadUrlForLayer", true, false, false)
            }
            LogsCreateLogStream => spec(
                "logs",
                "logs.amazonaws.com",
                "CreateLogStream",
                false,
                false,
                false,
            ),
            EcsDiscoverPollEndpoint => spec("ecs", ECS, "DiscoverPollEndpoint", true, false, false),
            EcsSubmitTaskStateChange => {
                spec("ecs", ECS, "SubmitTaskStateChange", false, false, false)
            }
            EcsSubmitContainerStateChange => spec(
                "ecs",
                ECS,
                "SubmitContainerStateChange",
                false,
                false,
                false,
            ),
            EcsRegisterTaskDefinition => {
                spec("ecs", ECS, "RegisterTaskDefinition", false, false, false)
            }
            EcsUpdateService => spec("ecs", ECS, "UpdateService", false, false, false),
            EcsDescribeServices => spec("ecs", ECS, "DescribeServices", true, false, false),
            EcsListTasks => spec("ecs", ECS, "ListTasks", true, false, false),
            EcsDescribeTasks => spec("ecs", ECS, "DescribeTasks", true, false, false),
            Ec2CreateNetworkInterface => {
                spec("ec2", EC2, "CreateNetworkInterface", false, false, false)
            }
            Ec2AttachNetworkInterface => {
                spec("ec2", EC2, "AttachNetworkInterface", false, false, false)
            }
            Ec2DeleteNetworkInterface => {
                spec("ec2", EC2, "DeleteNetworkInterface", false, false, false)
            }
            Ec2DescribeInstances => spec("ec2", EC2, "DescribeInstances", true, false, false),
            IamListRoles => spec("iam", IAM, "ListRoles", true, false, true),
            IamListUsers => spec("iam", IAM, "ListUsers", true, false, true),
            IamGetRole => spec("iam", IAM, "GetRole", true, false, true),
            LambdaListFunctions => spec(
                "lambda",
                "lambda.amazonaws.com",
                "ListFunctions20150331",
                true,
                false,
                false,
            ),
            CloudTrailLookupEvents => spec(
                "cloudtrail",
                "cloudtrail.amazonaws.com",
                "LookupEvents",
                true,
                false,
                false,
            ),
            ConsoleLogin => spec(
                "signin",
                "signin.amazonaws.com",
                "ConsoleLogin",
                false,
                false,
                true,
            ),
        };
        if s.service == "sts" || s.service == "signin" {
            s.event_version = "1.08";
        }
        s
    }

    /// The IAM action the call needs (what least-privilege analysis should count as used).
    pub fn iam_action(self) -> &'static str {
        use Api::*;
        match self {
            S3GetObject | S3HeadObject => "s3:GetObject",
            S3PutObject => "s3:PutObject",
            S3DeleteObject => "s3:DeleteObject",
            S3ListBuckets => "s3:ListAllMyBuckets",
            KmsDecrypt => "kms:Decrypt",
            KmsEncrypt => "kms:Encrypt",
            KmsGenerateDataKey => "kms:GenerateDataKey",
            KmsSign => "kms:Sign",
            KmsVerify => "kms:Verify",
            KmsGetPublicKey => "kms:GetPublicKey",
            SmGetSecretValue => "secretsmanager:GetSecretValue",
            SmDescribeSecret => "secretsmanager:DescribeSecret",
            SmListSecrets => "secretsmanager:ListSecrets",
            StsGetCallerIdentity | StsGetCallerIdentityGlobal => "sts:GetCallerIdentity",
            StsAssumeRole => "sts:AssumeRole",
            StsAssumeRoleWithWebIdentity => "sts:AssumeRoleWithWebIdentity",
            SsmGetParameter => "ssm:GetParameter",
            SsmGetParameters => "ssm:GetParameters",
            DdbDescribeTable => "dynamodb:DescribeTable",
            DdbUpdateTable => "dynamodb:UpdateTable",
            DdbListTables => "dynamodb:ListTables",
            SqsGetQueueUrl => "sqs:GetQueueUrl",
            SqsGetQueueAttributes => "sqs:GetQueueAttributes",
            AthenaStartQueryExecution => "athena:StartQueryExecution",
            AthenaGetQueryExecution => "athena:GetQueryExecution",
            AthenaGetQueryResults => "athena:GetQueryResults",
            GlueGetTable => "glue:GetTable",
            EcrGetAuthorizationToken => "ecr:GetAuthorizationToken",
            EcrBatchGetImage => "ecr:BatchGetImage",
            EcrGetDownloadUrlForLayer => "ecr:GetDownloadUrlForLayer",
            LogsCreateLogStream => "logs:CreateLogStream",
            EcsDiscoverPollEndpoint => "ecs:DiscoverPollEndpoint",
            EcsSubmitTaskStateChange => "ecs:SubmitTaskStateChange",
            EcsSubmitContainerStateChange => "ecs:SubmitContainerStateChange",
            EcsRegisterTaskDefinition => "ecs:RegisterTaskDefinition",
            EcsUpdateService => "ecs:UpdateService",
            EcsDescribeServices => "ecs:DescribeServices",
            EcsListTasks => "ecs:ListTasks",
            EcsDescribeTasks => "ecs:DescribeTasks",
            Ec2CreateNetworkInterface => "ec2:CreateNetworkInterface",
            Ec2AttachNetworkInterface => "ec2:AttachNetworkInterface",
            Ec2DeleteNetworkInterface => "ec2:DeleteNetworkInterface",
            Ec2DescribeInstances => "ec2:DescribeInstances",
            IamListRoles => "iam:ListRoles",
            IamListUsers => "iam:ListUsers",
            IamGetRole => "iam:GetRole",
            LambdaListFunctions => "lambda:ListFunctions",
            CloudTrailLookupEvents => "cloudtrail:LookupEvents",
            ConsoleLogin => "signin:ConsoleLogin",
        }
    }

    /// A call AWS makes on the caller's behalf right after this one (`invokedBy`), with the
    /// caller's session: S3 and Secrets Manager decrypting with KMS, Athena reading Glue.
    pub fn follow_up(self) -> Option<(Api, &'static str)> {
        match self {
            Api::S3PutObject => Some((Api::KmsGenerateDataKey, "s3.amazonaws.com")),
            Api::S3GetObject => Some((Api::KmsDecrypt, "s3.amazonaws.com")),
            Api::SmGetSecretValue => Some((Api::KmsDecrypt, "secretsmanager.amazonaws.com")),
            Api::AthenaStartQueryExecution => Some((Api::GlueGetTable, "athena.amazonaws.com")),
            _ => None,
        }
    }
}

/// The SDK a service is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Java,
    Node,
    Python,
    GoV2,
    GoV1,
    DotNet,
    Ruby,
}

const KERNEL: &str = "5.10.228-219.884.amzn2.x86_64";

impl Lang {
    /// User agent of the SDK's container-credentials provider (what the audit log shows).
    pub fn fetch_user_agent(self) -> String {
        match self {
            Lang::Java => format!(
                "aws-sdk-java/2.29.9 Linux/{KERNEL} OpenJDK_64-Bit_Server_VM/21.0.5+11-LTS Java/21.0.5 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy"
            ),
            Lang::Node => "aws-sdk-js/3.693.0".to_string(),
            Lang::Python => "python-urllib3/2.2.3 Botocore/1.35.63".to_string(),
            Lang::GoV2 => "aws-sdk-go-v2/1.32.4 os/linux lang/go#1.23.3 md/GOOS#linux md/GOARCH#amd64 exec-env/AWS_ECS_EC2".to_string(),
            Lang::GoV1 => "aws-sdk-go/1.55.5 (go1.22.9; linux; amd64)".to_string(),
            Lang::DotNet => format!(
                "aws-sdk-dotnet-coreclr/3.7.400.54 aws-sdk-dotnet-core/3.7.400.54 .NET_Core/8.0.11 OS/Linux_{KERNEL}_#1_SMP_Tue_Nov_5_2024 ClientSync"
            ),
            Lang::Ruby => "aws-sdk-ruby3/3.213.0 ruby/3.3.6 x86_64-linux".to_string(),
        }
    }

    /// User agent of the SDK's API calls (what CloudTrail shows).
    pub fn call_user_agent(self, service: &str) -> String {
        match self {
            Lang::Java => format!(
                "aws-sdk-java/2.29.9 ua/2.1 os/Linux#{KERNEL} lang/java#21.0.5 md/OpenJDK_64-Bit_Server_VM#21.0.5+11-LTS md/vendor#Amazon.com_Inc. exec-env/AWS_ECS_EC2 md/internal io/sync http/Apache cfg/retry-mode#legacy"
            ),
            Lang::Node => format!(
                "aws-sdk-js/3.693.0 ua/2.1 os/linux#{KERNEL} lang/js md/nodejs#20.18.0 api/{service}#3.693.0 m/E exec-env/AWS_ECS_EC2"
            ),
            Lang::Python => format!(
                "Boto3/1.35.63 md/Botocore#1.35.63 ua/2.0 os/linux#{KERNEL} md/arch#x86_64 lang/python#3.12.7 md/pyimpl#CPython exec-env/AWS_ECS_EC2 cfg/retry-mode#legacy Botocore/1.35.63"
            ),
            Lang::GoV2 => format!(
                "aws-sdk-go-v2/1.32.4 ua/2.1 os/linux lang/go#1.23.3 md/GOOS#linux md/GOARCH#amd64 exec-env/AWS_ECS_EC2 api/{service}#1.37.6 m/E"
            ),
            Lang::GoV1 => {
                "aws-sdk-go/1.55.5 (go1.22.9; linux; amd64) exec-env/AWS_ECS_EC2".to_string()
            }
            Lang::DotNet => format!(
                "aws-sdk-dotnet-coreclr/3.7.400.54 ua/2.0 os/linux#{KERNEL} md/arch#x64 lang/.NET_Core#8.0.11 exec-env/AWS_ECS_EC2 api/{service}#3.7.400.54 cfg/retry-mode#legacy ClientSync"
            ),
            Lang::Ruby => format!(
                "aws-sdk-ruby3/3.213.0 ua/2.1 api/{service}#1.0 os/linux md/x86_64 lang/ruby#3.3.6 md/3.3.6 exec-env/AWS_ECS_EC2"
            ),
        }
    }

    /// How long before expiry the SDK fetches fresh credentials (seconds).
    pub fn refresh_margin(self) -> i64 {
        match self {
            Lang::Python => 15 * 60,
            Lang::Java | Lang::DotNet => 5 * 60,
            Lang::Node | Lang::Ruby => 5 * 60,
            Lang::GoV2 | Lang::GoV1 => 10 * 60,
        }
    }

    /// Time from container start to the application's first credential fetch (seconds).
    pub fn boot_range(self) -> (i64, i64) {
        match self {
            Lang::Java => (15, 45),
            Lang::DotNet => (6, 20),
            _ => (2, 12),
        }
    }
}

/// What a service does: one usage profile per kind of workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Profile {
    /// Java API: reads its DB secret, config objects; a health-check sidecar calls STS.
    OrdersApi,
    /// Node API serving a catalog from S3.
    CatalogApi,
    /// Python worker: reads a queue, writes objects.
    OrdersWorker,
    /// Go worker transcoding media objects.
    MediaWorker,
    /// Go API signing invoices with KMS.
    BillingApi,
    /// .NET gateway encrypting payloads; has a health-check sidecar.
    IngestGateway,
    /// Python batch job run every two hours by EventBridge (Athena queries).
    ReportBuilder,
    /// A service that never calls AWS although its task definition names a task role.
    LegacySidekick,
    /// A one-off `run-task` of the orders-api image with an overridden task role.
    Migration,
}

/// Calls per task-hour and the shape of one service's traffic.
#[derive(Debug, Clone, Copy)]
pub struct Behavior {
    pub lang: Lang,
    /// Calls each application process makes right after its first credential fetch.
    pub boot: &'static [Api],
    /// Steady calls: (api, calls per task-hour).
    pub steady: &'static [(Api, f64)],
    /// Application processes in the app container (each caches its own credentials).
    pub procs: u8,
    /// A health-check sidecar runs `aws sts get-caller-identity` every 30 s.
    pub healthcheck: bool,
    pub uses_aws: bool,
}

impl Profile {
    pub const TEMPLATES: [Profile; 8] = [
        Profile::OrdersApi,
        Profile::CatalogApi,
        Profile::OrdersWorker,
        Profile::MediaWorker,
        Profile::BillingApi,
        Profile::IngestGateway,
        Profile::ReportBuilder,
        Profile::LegacySidekick,
    ];

    pub fn family(self) -> &'static str {
        match self {
            Profile::OrdersApi | Profile::Migration => "orders-api",
            Profile::CatalogApi => "catalog-api",
            Profile::OrdersWorker => "orders-worker",
            Profile::MediaWorker => "media-worker",
            Profile::BillingApi => "billing-api",
            Profile::IngestGateway => "ingest-gateway",
            Profile::ReportBuilder => "report-builder",
            Profile::LegacySidekick => "legacy-sidekick",
        }
    }

    pub fn awsvpc(self) -> bool {
        matches!(
            self,
            Profile::OrdersApi
                | Profile::CatalogApi
                | Profile::BillingApi
                | Profile::ReportBuilder
                | Profile::Migration
        )
    }

    /// Desired tasks per container instance of the cluster.
    pub fn tasks_per_host(self) -> f64 {
        match self {
            Profile::OrdersApi | Profile::CatalogApi => 1.5,
            Profile::OrdersWorker | Profile::MediaWorker => 2.0,
            Profile::BillingApi | Profile::IngestGateway => 1.0,
            _ => 0.0,
        }
    }

    pub fn behavior(self) -> Behavior {
        use Api::*;
        match self {
            Profile::OrdersApi => Behavior {
                lang: Lang::Java,
                boot: &[DdbDescribeTable, SmGetSecretValue, SsmGetParameters],
                steady: &[
                    (SmGetSecretValue, 12.0),
                    (S3GetObject, 300.0),
                    (SmDescribeSecret, 0.15),
                ],
                procs: 1,
                healthcheck: true,
                uses_aws: true,
            },
            Profile::CatalogApi => Behavior {
                lang: Lang::Node,
                boot: &[DdbDescribeTable, SmGetSecretValue],
                steady: &[
                    (S3GetObject, 480.0),
                    (SmGetSecretValue, 6.0),
                    (DdbDescribeTable, 2.0),
                ],
                procs: 2,
                healthcheck: false,
                uses_aws: true,
            },
            Profile::OrdersWorker => Behavior {
                lang: Lang::Python,
                boot: &[SqsGetQueueUrl, SqsGetQueueAttributes],
                steady: &[
                    (S3PutObject, 350.0),
                    (S3GetObject, 80.0),
                    (SqsGetQueueAttributes, 6.0),
                ],
                procs: 3,
                healthcheck: false,
                uses_aws: true,
            },
            Profile::MediaWorker => Behavior {
                lang: Lang::GoV2,
                boot: &[S3HeadObject],
                steady: &[
                    (S3GetObject, 250.0),
                    (S3PutObject, 250.0),
                    (S3HeadObject, 100.0),
                ],
                procs: 1,
                healthcheck: false,
                uses_aws: true,
            },
            Profile::BillingApi => Behavior {
                lang: Lang::GoV1,
                boot: &[SsmGetParameters, KmsGetPublicKey],
                steady: &[(KmsSign, 600.0), (SsmGetParameters, 4.0), (KmsVerify, 0.1)],
                procs: 1,
                healthcheck: false,
                uses_aws: true,
            },
            Profile::IngestGateway => Behavior {
                lang: Lang::DotNet,
                boot: &[SsmGetParameter, SmGetSecretValue],
                steady: &[
                    (KmsEncrypt, 400.0),
                    (KmsGenerateDataKey, 200.0),
                    (SmGetSecretValue, 6.0),
                ],
                procs: 1,
                healthcheck: true,
                uses_aws: true,
            },
            Profile::ReportBuilder => Behavior {
                lang: Lang::Python,
                boot: &[StsGetCallerIdentity],
                steady: &[
                    (AthenaStartQueryExecution, 60.0),
                    (AthenaGetQueryExecution, 900.0),
                    (AthenaGetQueryResults, 60.0),
                    (S3PutObject, 30.0),
                ],
                procs: 1,
                healthcheck: false,
                uses_aws: true,
            },
            Profile::LegacySidekick => Behavior {
                lang: Lang::Ruby,
                boot: &[],
                steady: &[],
                procs: 1,
                healthcheck: false,
                uses_aws: false,
            },
            Profile::Migration => Behavior {
                lang: Lang::Java,
                boot: &[DdbDescribeTable, DdbUpdateTable],
                steady: &[(DdbDescribeTable, 120.0), (DdbUpdateTable, 12.0)],
                procs: 1,
                healthcheck: false,
                uses_aws: true,
            },
        }
    }
}

/// The health-check sidecar's user agent: the AWS CLI with an application ID, still an SDK.
pub const HEALTHCHECK_USER_AGENT: &str = "aws-cli/2.22.4 md/awscrt#0.22.0 ua/2.0 os/linux#5.10.228-219.884.amzn2.x86_64 md/arch#x86_64 lang/python#3.12.6 md/pyimpl#CPython exec-env/AWS_ECS_EC2 cfg/retry-mode#standard md/installer#exe md/distrib#amzn.2 md/prompt#off md/command#sts.get-caller-identity app/healthcheck-1.4";
/// Docker's awslogs driver fetching execution-role credentials.
pub const AWSLOGS_USER_AGENT: &str = "aws-sdk-go/1.44.327 (go1.21.13; linux; amd64)";
/// The ECS agent's own SDK.
pub const AGENT_USER_AGENT: &str = "aws-sdk-go/1.55.5 (go1.22.9; linux; amd64)";
/// Docker pulling layers with an ECR token.
pub const DOCKER_USER_AGENT: &str = "docker/25.0.6 go/go1.22.7 git-commit/b08a51f kernel/5.10.228-219.884.amzn2.x86_64 os/linux arch/amd64 UpstreamClient(Go-http-client/1.1)";
