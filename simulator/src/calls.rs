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

/// A client of the agent's credential endpoint: an AWS SDK, or an HTTP library an application
/// uses itself. What each sends and how it retries is measured for the SDKs that
/// `shared/data/sdk-credential-fetches/` captured (botocore, AWS CLI v1, JS v2 and v3); the
/// others (Java, Go v2, .NET, Ruby, PHP) are not measured, only kept plausible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lang {
    /// AWS SDK for Java v2 (not measured).
    Java,
    /// AWS SDK for JavaScript v3, default provider chain (measured: 3.1178.0).
    NodeV3,
    /// AWS SDK for JavaScript v2 (measured: 2.1693.0 on Node 20.20.2).
    NodeV2,
    /// boto3 1.35 / botocore on a current image: urllib3 2.8.0 (measured).
    Python,
    /// boto3 1.28 / botocore 1.31 on an older image: urllib3 2.0.7 (measured).
    PythonLegacy,
    /// AWS CLI v1 1.46 (bundled botocore 1.43; measured): one fetch per command.
    AwsCliV1,
    /// AWS SDK for Go v2 (not measured).
    GoV2,
    /// AWS SDK for Go v1 (issue aws-sdk-go#1780 shows its user agent).
    GoV1,
    /// AWS SDK for .NET (not measured).
    DotNet,
    /// AWS SDK for Ruby v3 (not measured).
    Ruby,
    /// A PHP application fetching credentials itself with Guzzle 7 (not measured).
    PhpGuzzle,
    /// A PHP (Zend Framework 1) application fetching credentials itself (formats.md §1's real line).
    PhpZend,
    /// The AWS CLI v2 of the health-check sidecar: botocore on its bundled urllib3 1.26 (not measured).
    AwsCliV2,
}

const KERNEL: &str = "5.10.228-219.884.amzn2.x86_64";

/// One attempt of a failed credential resolution: milliseconds after the first attempt, and
/// whether it opens a new connection (a new source port).
pub type Attempt = (i64, bool);

impl Lang {
    /// User agent the client sends to the credential endpoint (what the audit log shows); `""`
    /// when it sends none.
    pub fn fetch_user_agent(self) -> &'static str {
        match self {
            Lang::Java => {
                "aws-sdk-java/2.29.9 Linux/5.10.228-219.884.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/21.0.5+11-LTS Java/21.0.5 vendor/Amazon.com_Inc. io/sync http/UrlConnection cfg/retry-mode/legacy"
            }
            // JS v3 sends no User-Agent header at all; the agent logs `""`.
            Lang::NodeV3 => "",
            Lang::NodeV2 => "aws-sdk-nodejs/2.1693.0 linux/v20.20.2 exec-env/AWS_ECS_EC2",
            Lang::Python | Lang::AwsCliV1 => "python-urllib3/2.8.0",
            Lang::PythonLegacy => "python-urllib3/2.0.7",
            Lang::AwsCliV2 => "python-urllib3/1.26.20",
            Lang::GoV2 => {
                "aws-sdk-go-v2/1.32.4 os/linux lang/go#1.23.3 md/GOOS#linux md/GOARCH#amd64 exec-env/AWS_ECS_EC2"
            }
            Lang::GoV1 => "aws-sdk-go/1.55.5 (go1.22.9; linux; amd64)",
            Lang::DotNet => {
                "aws-sdk-dotnet-coreclr/3.7.400.54 aws-sdk-dotnet-core/3.7.400.54 .NET_Core/8.0.11 OS/Linux_5.10.228-219.884.amzn2.x86_64_#1_SMP_Tue_Nov_5_2024 ClientSync"
            }
            Lang::Ruby => "aws-sdk-ruby3/3.213.0 ruby/3.3.6 x86_64-linux",
            Lang::PhpGuzzle => "GuzzleHttp/7",
            Lang::PhpZend => "Zend_Http_Client",
        }
    }

    /// User agent of the client's API calls (what CloudTrail shows): SDK-like for every SDK.
    pub fn call_user_agent(self, service: &str) -> String {
        match self {
            Lang::Java => format!(
                "aws-sdk-java/2.29.9 ua/2.1 os/Linux#{KERNEL} lang/java#21.0.5 md/OpenJDK_64-Bit_Server_VM#21.0.5+11-LTS md/vendor#Amazon.com_Inc. exec-env/AWS_ECS_EC2 md/internal io/sync http/Apache cfg/retry-mode#legacy"
            ),
            Lang::NodeV3 => format!(
                "aws-sdk-js/3.693.0 ua/2.1 os/linux#{KERNEL} lang/js md/nodejs#20.18.0 api/{service}#3.693.0 m/E exec-env/AWS_ECS_EC2"
            ),
            Lang::NodeV2 => {
                "aws-sdk-nodejs/2.1693.0 linux/v20.20.2 exec-env/AWS_ECS_EC2 promise".to_string()
            }
            Lang::Python => format!(
                "Boto3/1.35.63 md/Botocore#1.35.63 ua/2.0 os/linux#{KERNEL} md/arch#x86_64 lang/python#3.12.7 md/pyimpl#CPython exec-env/AWS_ECS_EC2 cfg/retry-mode#legacy Botocore/1.35.63"
            ),
            Lang::PythonLegacy => format!(
                "Boto3/1.28.85 md/Botocore#1.31.85 ua/2.0 os/linux#{KERNEL} md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython exec-env/AWS_ECS_EC2 cfg/retry-mode#legacy Botocore/1.31.85"
            ),
            Lang::AwsCliV1 => {
                let command = match service {
                    "sqs" => "sqs.get-queue-attributes",
                    _ => "s3.cp",
                };
                format!(
                    "aws-cli/1.46.3 md/Botocore#1.43.62 ua/2.1 os/linux#{KERNEL} md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython exec-env/AWS_ECS_EC2 cfg/retry-mode#legacy botocore/1.43.62 md/command#{command}"
                )
            }
            Lang::AwsCliV2 => HEALTHCHECK_USER_AGENT.to_string(),
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
            Lang::PhpGuzzle => format!(
                "aws-sdk-php/3.325.2 ua/2.1 os/linux#{KERNEL} lang/php#8.3.13 GuzzleHttp/7 exec-env/AWS_ECS_EC2 api/{service}#3.325.2"
            ),
            Lang::PhpZend => "Zend_Http_Client".to_string(),
        }
    }

    /// Seconds before expiry from which the next API call fetches new credentials (the SDK's
    /// refresh window): botocore and the CLI 900 s, JS v3 300 s, JS v2 15 s (measured); the
    /// others from their sources.
    pub fn refresh_margin(self) -> i64 {
        match self {
            Lang::Python | Lang::PythonLegacy | Lang::AwsCliV1 | Lang::AwsCliV2 => 15 * 60,
            Lang::NodeV3 | Lang::Java | Lang::DotNet | Lang::Ruby => 5 * 60,
            Lang::NodeV2 => 15,
            Lang::GoV2 | Lang::GoV1 => 10 * 60,
            Lang::PhpGuzzle | Lang::PhpZend => 60,
        }
    }

    /// JS v3 refreshes in the background: the call that triggers a refresh is still signed with
    /// the old key. Every other client blocks the call until the fetch is done.
    pub fn refreshes_in_background(self) -> bool {
        self == Lang::NodeV3
    }

    /// A failed refresh fails the API call (JS v2 fails at once although its key has 15 s
    /// left); botocore and JS v3 keep using the old key inside their refresh window.
    pub fn refresh_failure_fails_call(self) -> bool {
        matches!(self, Lang::NodeV2 | Lang::Java | Lang::GoV1 | Lang::GoV2)
    }

    /// The client keeps its connection to the agent open between requests (the agent closes it
    /// after 5 s idle). JS v2 sends `Connection: close`; the PHP apps and Ruby open one each time.
    pub fn keeps_alive(self) -> bool {
        !matches!(
            self,
            Lang::NodeV2 | Lang::Ruby | Lang::PhpGuzzle | Lang::PhpZend
        )
    }

    /// The attempts one credential resolution makes when the agent answers `status`:
    /// botocore and the CLI 3 attempts 1 s apart on one connection (also for 400); JS v3's
    /// default chain 4 attempts 1 s apart on a new connection, then one by its next provider on
    /// a connection of its own (also for 400); JS v2 1 + 3 retries within about 0.5 s, each on a new connection, and no
    /// retry on 400. The others are not measured: Java retries 5xx 5 times at once, Go v1 and v2
    /// use their default retryers, Ruby retries with exponential backoff; none retries a 400.
    pub fn failed_round(
        self,
        status: u16,
        jitter: &mut impl FnMut(i64, i64) -> i64,
    ) -> Vec<Attempt> {
        let retryable = status != 400;
        match self {
            Lang::Python | Lang::PythonLegacy | Lang::AwsCliV1 | Lang::AwsCliV2 => {
                vec![
                    (0, false),
                    (1000 + jitter(0, 12), false),
                    (2000 + jitter(0, 25), false),
                ]
            }
            Lang::NodeV3 => {
                let last = 3000 + jitter(0, 20);
                vec![
                    (0, true),
                    (1000 + jitter(0, 8), false),
                    (2000 + jitter(0, 12), false),
                    (last, false),
                    (last + jitter(2, 15), true),
                ]
            }
            _ if !retryable => vec![(0, self == Lang::NodeV2)],
            Lang::NodeV2 => {
                let mut at = 0;
                let mut v = vec![(0, true)];
                for _ in 0..3 {
                    at += jitter(10, 390).min(500 - at - 1).max(1);
                    v.push((at, true));
                }
                v
            }
            Lang::Java => (0..6).map(|k| (k * jitter(2, 20), false)).collect(),
            Lang::GoV1 => {
                let a = jitter(30, 120);
                let b = a + jitter(60, 240);
                vec![
                    (0, false),
                    (a, false),
                    (b, false),
                    (b + jitter(120, 480), false),
                ]
            }
            Lang::GoV2 => {
                let a = jitter(0, 1000);
                vec![(0, false), (a, false), (a + jitter(0, 2000), false)]
            }
            Lang::DotNet => {
                let a = jitter(100, 300);
                vec![(0, false), (a, false), (a + jitter(100, 300), false)]
            }
            Lang::Ruby => {
                let mut at = 0;
                let mut v = vec![(0, true)];
                for k in 0..5 {
                    at += 100 << k;
                    v.push((at, true));
                }
                v
            }
            Lang::PhpGuzzle | Lang::PhpZend => vec![(0, true)],
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

/// How a client holds credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Long-lived processes, each caching its credentials and refreshing lazily: on the first
    /// API call inside the SDK's refresh window. An idle process makes no request.
    Cached {
        procs: u8,
        /// Credential providers per process (Java apps that build one provider per service
        /// client fetch once per client, back to back on one connection).
        providers: u8,
    },
    /// A new process or SDK session per API call (a new boto3 `Session` per request, a PHP-FPM
    /// request): one fetch per call, each on a new connection.
    PerCall,
    /// A shell loop of AWS CLI commands, one every `period` seconds or so: one fetch per command.
    Loop { period: i64 },
}

/// One credential client of a task definition's containers.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub lang: Lang,
    pub mode: Mode,
    /// Calls each process makes right after its first credential fetch.
    pub boot: &'static [Api],
    /// Steady calls: (api, calls per task-hour; for `Loop`, the share of commands).
    pub steady: &'static [(Api, f64)],
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
    /// A shell loop of AWS CLI v1 commands draining a queue into S3: one fetch per command.
    QueueDrainer,
    /// A Flask API creating a new boto3 `Session` for every request: one fetch per call.
    WebhooksApi,
    /// A mostly idle Node (JS v2) notifier whose one role is both task and execution role.
    Notifier,
    /// A PHP storefront: Guzzle fetching credentials per request, and a legacy Zend module.
    Storefront,
    /// A one-off `run-task` of the orders-api image with an overridden task role.
    Migration,
}

/// Calls per task-hour and the shape of one service's traffic.
#[derive(Debug, Clone, Copy)]
pub struct Behavior {
    pub clients: &'static [Client],
    /// A health-check sidecar runs `aws sts get-caller-identity` every 30 s.
    pub healthcheck: bool,
    pub uses_aws: bool,
}

impl Behavior {
    /// The main client's SDK.
    pub fn lang(&self) -> Lang {
        self.clients.first().map_or(Lang::Ruby, |c| c.lang)
    }

    /// Every API the application calls on its own (boot calls first).
    pub fn apis(&self) -> Vec<Api> {
        let mut v = Vec::new();
        for c in self.clients {
            v.extend(c.boot.iter().copied());
            v.extend(c.steady.iter().map(|s| s.0));
        }
        v
    }
}

const fn cached(
    lang: Lang,
    procs: u8,
    boot: &'static [Api],
    steady: &'static [(Api, f64)],
) -> Client {
    Client {
        lang,
        mode: Mode::Cached {
            procs,
            providers: 1,
        },
        boot,
        steady,
    }
}

impl Profile {
    pub const TEMPLATES: [Profile; 12] = [
        Profile::OrdersApi,
        Profile::CatalogApi,
        Profile::OrdersWorker,
        Profile::MediaWorker,
        Profile::BillingApi,
        Profile::IngestGateway,
        Profile::ReportBuilder,
        Profile::LegacySidekick,
        Profile::QueueDrainer,
        Profile::WebhooksApi,
        Profile::Notifier,
        Profile::Storefront,
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
            Profile::QueueDrainer => "queue-drainer",
            Profile::WebhooksApi => "webhooks-api",
            Profile::Notifier => "notifier",
            Profile::Storefront => "storefront",
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
                | Profile::WebhooksApi
        )
    }

    /// Desired tasks per container instance of the cluster.
    pub fn tasks_per_host(self) -> f64 {
        match self {
            Profile::OrdersApi | Profile::CatalogApi => 1.5,
            Profile::OrdersWorker | Profile::MediaWorker => 2.0,
            Profile::BillingApi | Profile::IngestGateway => 1.0,
            Profile::WebhooksApi | Profile::Storefront => 0.5,
            Profile::QueueDrainer | Profile::Notifier => 0.2,
            _ => 0.0,
        }
    }

    /// Runs on Fargate (the scheduled report job): no container instance and no audit log.
    pub fn fargate(self) -> bool {
        self == Profile::ReportBuilder
    }

    /// Its tasks run in a public subnet with a public IP of their own (no NAT gateway).
    pub fn public_ip(self) -> bool {
        self == Profile::ReportBuilder
    }

    /// Its tasks' ENIs are dual-stack: calls to AWS leave over IPv6 from the ENI's address.
    pub fn dual_stack(self) -> bool {
        self == Profile::WebhooksApi
    }

    /// The task definition names its task role as its execution role too.
    pub fn shares_execution_role(self) -> bool {
        self == Profile::Notifier
    }

    pub fn behavior(self) -> Behavior {
        use Api::*;
        match self {
            Profile::OrdersApi => Behavior {
                clients: &[Client {
                    lang: Lang::Java,
                    mode: Mode::Cached {
                        procs: 1,
                        providers: 4,
                    },
                    boot: &[DdbDescribeTable, SmGetSecretValue, SsmGetParameters],
                    steady: &[
                        (SmGetSecretValue, 12.0),
                        (S3GetObject, 300.0),
                        (SmDescribeSecret, 0.15),
                    ],
                }],
                healthcheck: true,
                uses_aws: true,
            },
            Profile::CatalogApi => Behavior {
                clients: const {
                    &[cached(
                        Lang::NodeV3,
                        2,
                        &[DdbDescribeTable, SmGetSecretValue],
                        &[
                            (S3GetObject, 480.0),
                            (SmGetSecretValue, 6.0),
                            (DdbDescribeTable, 2.0),
                        ],
                    )]
                },
                healthcheck: false,
                uses_aws: true,
            },
            Profile::OrdersWorker => Behavior {
                clients: const {
                    &[cached(
                        Lang::Python,
                        3,
                        &[SqsGetQueueUrl, SqsGetQueueAttributes],
                        &[
                            (S3PutObject, 350.0),
                            (S3GetObject, 80.0),
                            (SqsGetQueueAttributes, 6.0),
                        ],
                    )]
                },
                healthcheck: false,
                uses_aws: true,
            },
            Profile::MediaWorker => Behavior {
                clients: const {
                    &[cached(
                        Lang::GoV2,
                        1,
                        &[S3HeadObject],
                        &[
                            (S3GetObject, 250.0),
                            (S3PutObject, 250.0),
                            (S3HeadObject, 100.0),
                        ],
                    )]
                },
                healthcheck: false,
                uses_aws: true,
            },
            Profile::BillingApi => Behavior {
                clients: const {
                    &[cached(
                        Lang::GoV1,
                        1,
                        &[SsmGetParameters, KmsGetPublicKey],
                        &[(KmsSign, 600.0), (SsmGetParameters, 4.0), (KmsVerify, 0.1)],
                    )]
                },
                healthcheck: false,
                uses_aws: true,
            },
            Profile::IngestGateway => Behavior {
                clients: const {
                    &[cached(
                        Lang::DotNet,
                        1,
                        &[SsmGetParameter, SmGetSecretValue],
                        &[
                            (KmsEncrypt, 400.0),
                            (KmsGenerateDataKey, 200.0),
                            (SmGetSecretValue, 6.0),
                        ],
                    )]
                },
                healthcheck: true,
                uses_aws: true,
            },
            Profile::ReportBuilder => Behavior {
                clients: const {
                    &[cached(
                        Lang::PythonLegacy,
                        1,
                        &[StsGetCallerIdentity],
                        &[
                            (AthenaStartQueryExecution, 60.0),
                            (AthenaGetQueryExecution, 900.0),
                            (AthenaGetQueryResults, 60.0),
                            (S3PutObject, 30.0),
                        ],
                    )]
                },
                healthcheck: false,
                uses_aws: true,
            },
            Profile::LegacySidekick => Behavior {
                clients: const { &[cached(Lang::Ruby, 1, &[], &[])] },
                healthcheck: false,
                uses_aws: false,
            },
            Profile::QueueDrainer => Behavior {
                clients: &[Client {
                    lang: Lang::AwsCliV1,
                    mode: Mode::Loop { period: 6 },
                    boot: &[],
                    steady: &[(SqsGetQueueAttributes, 3.0), (S3PutObject, 1.0)],
                }],
                healthcheck: false,
                uses_aws: true,
            },
            Profile::WebhooksApi => Behavior {
                clients: &[Client {
                    lang: Lang::PythonLegacy,
                    mode: Mode::PerCall,
                    boot: &[],
                    steady: &[(S3PutObject, 90.0), (SqsGetQueueUrl, 30.0)],
                }],
                healthcheck: false,
                uses_aws: true,
            },
            Profile::Notifier => Behavior {
                clients: const {
                    &[cached(
                        Lang::NodeV2,
                        1,
                        &[SqsGetQueueUrl, SmGetSecretValue],
                        &[(SqsGetQueueAttributes, 3.0), (SmGetSecretValue, 0.5)],
                    )]
                },
                healthcheck: false,
                uses_aws: true,
            },
            Profile::Storefront => Behavior {
                clients: &[
                    Client {
                        lang: Lang::PhpGuzzle,
                        mode: Mode::PerCall,
                        boot: &[],
                        steady: &[(S3GetObject, 60.0), (SmGetSecretValue, 10.0)],
                    },
                    Client {
                        lang: Lang::PhpZend,
                        mode: Mode::PerCall,
                        boot: &[],
                        steady: &[(S3PutObject, 8.0)],
                    },
                ],
                healthcheck: false,
                uses_aws: true,
            },
            Profile::Migration => Behavior {
                clients: const {
                    &[cached(
                        Lang::Java,
                        1,
                        &[DdbDescribeTable, DdbUpdateTable],
                        &[(DdbDescribeTable, 120.0), (DdbUpdateTable, 12.0)],
                    )]
                },
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
