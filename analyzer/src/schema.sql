-- The analyzer's store. A public interface: detections and users write SQL against these names.
-- No PRIMARY KEY or UNIQUE on the fact tables (ART indexes cost memory); every ingest path
-- dedupes at insert instead (event_id for CloudTrail, (host, source_id, byte_offset) for audit
-- rows) and the tests check it.
-- credential_requests, rejected_lines and task_inventory are created from the collector's own
-- schema.sql (see store.rs): their columns are the collector's, by construction.

-- cloudtrail_events: one row per CloudTrail record, deduplicated on event_id across runs. It is
-- a view over Parquet files ("parts", written by the parse threads, listed in cloudtrail_parts);
-- this table stays empty: it defines the view's columns, and is what the view shows before the
-- first part. A test checks that the parts read back with exactly these names and types.
CREATE TABLE IF NOT EXISTS cloudtrail_event_columns (
    event_id             VARCHAR NOT NULL,
    event_time           TIMESTAMP NOT NULL,  -- UTC
    event_source         VARCHAR,             -- e.g. s3.amazonaws.com (not always the IAM prefix: see catalog)
    event_name           VARCHAR,
    aws_region           VARCHAR,
    source_ip            VARCHAR,             -- sourceIPAddress: an IP, or a service name / 'AWS Internal'
    user_agent           VARCHAR,             -- untrusted
    error_code           VARCHAR,             -- NULL when the call succeeded
    error_message        VARCHAR,             -- untrusted
    read_only            BOOLEAN,
    event_type           VARCHAR,             -- AwsApiCall | AwsServiceEvent | AwsConsoleSignIn | ...
    event_category       VARCHAR,             -- Management | Data | Insight (eventVersion >= 1.07)
    management_event     BOOLEAN,
    identity_type        VARCHAR,             -- userIdentity.type: AssumedRole | IAMUser | AWSService | ...
    principal_id         VARCHAR,             -- AROA…:<session name> for assumed roles
    principal_arn        VARCHAR,             -- arn:aws:sts::ACCT:assumed-role/ROLE/SESSION
    account_id           VARCHAR,             -- userIdentity.accountId
    access_key_id        VARCHAR,             -- ASIA… for temporary credentials
    session_issuer_arn   VARCHAR,             -- the role: sessionContext.sessionIssuer.arn
    session_name         VARCHAR,             -- role session name (= the task ID for task sessions)
    session_created      TIMESTAMP,           -- sessionContext.attributes.creationDate
    invoked_by           VARCHAR,             -- userIdentity.invokedBy (service acting on the principal's behalf)
    vpc_endpoint_id      VARCHAR,
    recipient_account_id VARCHAR,
    request_parameters   JSON,
    response_elements    JSON,
    resources            JSON,
    record               JSON NOT NULL,       -- the full record as delivered
    source_file          VARCHAR NOT NULL,    -- where this copy came from (file path, s3:// URL or lookup:REGION)
    ingested_at          TIMESTAMP NOT NULL
);

-- The files that hold cloudtrail_events, in <store>.parts/cloudtrail_events/. A file belongs to
-- the store once its row here is committed (see analyzer/src/cloudtrail/part.rs).
CREATE TABLE IF NOT EXISTS cloudtrail_parts (
    file       VARCHAR NOT NULL,  -- file name in the parts directory
    rows       BIGINT NOT NULL,
    min_time   TIMESTAMP NOT NULL, -- event_time range of its rows
    max_time   TIMESTAMP NOT NULL,
    bytes      BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- Records that could not be stored as events, with why; nothing is dropped silently.
CREATE TABLE IF NOT EXISTS cloudtrail_rejects (
    source_file  VARCHAR NOT NULL,
    record_index BIGINT,            -- position of the record in its file (0-based), NULL when unknown
    byte_offset  BIGINT,            -- offset of the record in the decompressed file
    raw          BLOB NOT NULL,     -- exact bytes of the record (or of the unreadable rest of the file)
    reason       VARCHAR NOT NULL,
    ingested_at  TIMESTAMP NOT NULL
);

-- One row per input read by `ingest cloudtrail`: what it held and what was new.
CREATE TABLE IF NOT EXISTS cloudtrail_files (
    source_file VARCHAR NOT NULL,
    bytes       BIGINT NOT NULL,    -- as stored (compressed size for .gz)
    records     BIGINT NOT NULL,    -- records stored as new events
    duplicates  BIGINT NOT NULL,    -- records whose event_id was already stored
    rejects     BIGINT NOT NULL,
    ingested_at TIMESTAMP NOT NULL
);

-- What each trail logs (`aws cloudtrail get-event-selectors` output met among CloudTrail files):
-- the coverage every "unused" verdict depends on. One row per trail, the newest snapshot.
CREATE TABLE IF NOT EXISTS cloudtrail_event_selectors (
    trail_arn                VARCHAR,
    event_selectors          JSON,
    advanced_event_selectors JSON,
    document                 JSON NOT NULL,
    source_file              VARCHAR NOT NULL,
    ingested_at              TIMESTAMP NOT NULL
);

-- What each trail is (`aws cloudtrail describe-trails` output met among CloudTrail files): one
-- row per trail ARN, the newest snapshot (a shadow trail listed from another region is the same
-- trail).
CREATE TABLE IF NOT EXISTS cloudtrail_trails (
    trail_arn             VARCHAR NOT NULL,
    name                  VARCHAR,
    home_region           VARCHAR,
    multi_region          BOOLEAN,
    organization          BOOLEAN,
    global_service_events BOOLEAN,
    custom_selectors      BOOLEAN,
    document              JSON NOT NULL,
    source_file           VARCHAR NOT NULL,
    ingested_at           TIMESTAMP NOT NULL
);

-- The trail coverage model (trail.rs `refresh`, from cloudtrail_trails,
-- cloudtrail_event_selectors and the LookupEvents regions): what each source of CloudTrail
-- events covers. `trail_scopes`: one row per trail (its ARN), per LookupEvents region
-- (`LookupEvents <region>`), or, when no trail is known, the files read (`CloudTrail files`);
-- NULL `regions` / `accounts`: every one. `selectors_known` false: its selectors were not read
-- (management events assumed, data events judged by their presence).
CREATE TABLE IF NOT EXISTS trail_scopes (
    trail           VARCHAR NOT NULL,
    origin          VARCHAR NOT NULL,   -- trail | lookup | files
    regions         VARCHAR[],
    accounts        VARCHAR[],
    selectors_known BOOLEAN NOT NULL
);
-- Every selector of every trail as advanced field selectors (basic selectors converted): an event
-- is logged when, for some selector of a trail, every one of its fields holds.
CREATE TABLE IF NOT EXISTS trail_selector_fields (
    trail    VARCHAR NOT NULL,
    selector INTEGER NOT NULL,
    field    VARCHAR NOT NULL,
    operator VARCHAR NOT NULL,   -- Equals | NotEquals | StartsWith | NotStartsWith | EndsWith | NotEndsWith
    vals     VARCHAR[] NOT NULL
);

-- Incremental LookupEvents: the newest event time fetched per region.
CREATE TABLE IF NOT EXISTS cloudtrail_watermarks (
    region          VARCHAR NOT NULL,
    last_event_time TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);

-- When a LookupEvents run last sent a request to a region (whether or not it found events or
-- succeeded), so the next run's first request keeps the 2 requests/s spacing.
CREATE TABLE IF NOT EXISTS cloudtrail_lookup_requests (
    region          VARCHAR NOT NULL,
    last_request_at TIMESTAMP NOT NULL
);

-- ECS: one row per task per describe-tasks snapshot source; the `tasks` view merges them.
CREATE TABLE IF NOT EXISTS ecs_tasks (
    task_arn               VARCHAR NOT NULL,
    task_id                VARCHAR NOT NULL,   -- last segment of the ARN (32 hex or UUID)
    cluster_arn            VARCHAR,
    task_definition_arn    VARCHAR,
    family                 VARCHAR,
    revision               INTEGER,
    task_role_override     VARCHAR,            -- overrides.taskRoleArn
    execution_role_override VARCHAR,           -- overrides.executionRoleArn
    launch_type            VARCHAR,
    container_instance_arn VARCHAR,
    task_group             VARCHAR,            -- service:NAME | family:NAME
    last_status            VARCHAR,
    desired_status         VARCHAR,
    private_ips            VARCHAR[],          -- ENI attachment and container network interface addresses
    eni_id                 VARCHAR,
    created_at             TIMESTAMP,
    started_at             TIMESTAMP,
    stopping_at            TIMESTAMP,
    stopped_at             TIMESTAMP,
    stopped_reason         VARCHAR,            -- untrusted-ish (contains user text)
    source_file            VARCHAR NOT NULL,
    ingested_at            TIMESTAMP NOT NULL,
    -- Added after the first release: existing stores get them from the ALTERs below, at the end
    -- of the table in both cases (so the column order is the same, and inserts name columns).
    pull_started_at        TIMESTAMP,          -- pullStartedAt: image pulls begin (execution-role calls from here)
    pull_stopped_at        TIMESTAMP,          -- pullStoppedAt
    subnet_id              VARCHAR,            -- the ENI attachment's subnetId detail
    attachment_id          VARCHAR,            -- the ENI attachment's id (= the uuid in the ENI's Description ARN)
    ipv6_addresses         VARCHAR[],          -- the attachment's IPv6 details and containers' networkInterfaces[].ipv6Address
    region                 VARCHAR,            -- from the task ARN
    account_id             VARCHAR             -- from the task ARN
);
ALTER TABLE ecs_tasks ADD COLUMN IF NOT EXISTS pull_started_at TIMESTAMP;
ALTER TABLE ecs_tasks ADD COLUMN IF NOT EXISTS pull_stopped_at TIMESTAMP;
ALTER TABLE ecs_tasks ADD COLUMN IF NOT EXISTS subnet_id VARCHAR;
ALTER TABLE ecs_tasks ADD COLUMN IF NOT EXISTS attachment_id VARCHAR;
ALTER TABLE ecs_tasks ADD COLUMN IF NOT EXISTS ipv6_addresses VARCHAR[];
ALTER TABLE ecs_tasks ADD COLUMN IF NOT EXISTS region VARCHAR;
ALTER TABLE ecs_tasks ADD COLUMN IF NOT EXISTS account_id VARCHAR;
-- credential_requests (created from the collector's segments.sql) gained its last column later.
ALTER TABLE credential_requests ADD COLUMN IF NOT EXISTS truncated BOOLEAN;

-- The network inventory (`credtrail ingest network`): `aws ec2 describe-network-interfaces`,
-- `describe-vpc-endpoints` and `describe-subnets` output. Each file is one snapshot, taken at
-- `taken_at` (`--taken-at`, else the file's modification time: `taken_at_source` 'flag' | 'mtime').
-- A snapshot says what held when it was taken; nothing here says what held before or after.

-- One row per file ingested; a file whose content and snapshot time are stored is not read again.
CREATE TABLE IF NOT EXISTS network_snapshots (
    source_file     VARCHAR NOT NULL,
    content_hash    VARCHAR NOT NULL,   -- xxh3-128 of the file's bytes, hex
    kinds           VARCHAR NOT NULL,   -- the top-level keys it held: NetworkInterfaces, VpcEndpoints, Subnets
    items           BIGINT NOT NULL,    -- ENIs + endpoints + subnets stored from it
    taken_at        TIMESTAMP NOT NULL,
    taken_at_source VARCHAR NOT NULL,   -- flag | mtime
    ingested_at     TIMESTAMP NOT NULL
);

-- One row per ENI per snapshot.
CREATE TABLE IF NOT EXISTS network_interfaces (
    eni_id                 VARCHAR NOT NULL,   -- NetworkInterfaceId
    interface_type         VARCHAR,            -- InterfaceType: interface | nat_gateway | vpc_endpoint | network_load_balancer | lambda | efa | trunk | branch | …
    vpc_id                 VARCHAR,
    subnet_id              VARCHAR,
    availability_zone      VARCHAR,
    region                 VARCHAR,            -- the availability zone without its zone letter, else --region
    account_id             VARCHAR,            -- OwnerId, else --account
    description            VARCHAR,            -- untrusted (set by whoever created the ENI)
    status                 VARCHAR,            -- in-use | available | …
    requester_id           VARCHAR,            -- RequesterId: the service or principal that created it
    requester_managed      BOOLEAN,
    attachment_instance_id VARCHAR,            -- Attachment.InstanceId
    attachment_instance_owner_id VARCHAR,      -- Attachment.InstanceOwnerId
    private_ip             VARCHAR,            -- PrivateIpAddress (the primary private IPv4)
    public_ip              VARCHAR,            -- Association.PublicIp (the primary private IPv4's association)
    public_ip_owner_id     VARCHAR,            -- Association.IpOwnerId: 'amazon' (auto-assigned) or the Elastic IP's account
    task_attachment_id     VARCHAR,            -- the uuid of an ECS task ENI's Description arn:aws:ecs:<region>:<account>:attachment/<uuid>
    task_attachment_arn    VARCHAR,            -- that whole ARN
    taken_at               TIMESTAMP NOT NULL,
    taken_at_source        VARCHAR NOT NULL,   -- flag | mtime
    source_file            VARCHAR NOT NULL,
    ingested_at            TIMESTAMP NOT NULL
);

-- One row per address per ENI per snapshot: its private IPv4 addresses ('private'), the public
-- IPv4 associated with each ('public', `private_address` says which), its IPv6 addresses ('ipv6').
CREATE TABLE IF NOT EXISTS network_addresses (
    eni_id                 VARCHAR NOT NULL,
    address                VARCHAR NOT NULL,   -- IPv6 in lower case, as the CLI prints it
    family                 VARCHAR NOT NULL,   -- ipv4 | ipv6
    kind                   VARCHAR NOT NULL,   -- private | public | ipv6
    is_primary             BOOLEAN,            -- Primary (private IPv4), IsPrimaryIpv6 (IPv6)
    private_address        VARCHAR,            -- for a public address: the private IPv4 it is associated with
    vpc_id                 VARCHAR,
    subnet_id              VARCHAR,
    region                 VARCHAR,
    account_id             VARCHAR,
    interface_type         VARCHAR,
    attachment_instance_id VARCHAR,
    task_attachment_id     VARCHAR,
    taken_at               TIMESTAMP NOT NULL,
    source_file            VARCHAR NOT NULL
);

-- One row per VPC endpoint per snapshot (`describe-vpc-endpoints`): which VPC a CloudTrail
-- `vpcEndpointId` is in.
CREATE TABLE IF NOT EXISTS vpc_endpoints (
    vpc_endpoint_id       VARCHAR NOT NULL,
    vpc_id                VARCHAR,
    service_name          VARCHAR,             -- com.amazonaws.<region>.<service>
    endpoint_type         VARCHAR,             -- VpcEndpointType: Interface | Gateway | GatewayLoadBalancer | …
    state                 VARCHAR,
    subnet_ids            VARCHAR[],
    network_interface_ids VARCHAR[],
    region                VARCHAR,             -- --region, else the service name's region
    account_id            VARCHAR,             -- OwnerId, else --account
    taken_at              TIMESTAMP NOT NULL,
    taken_at_source       VARCHAR NOT NULL,
    source_file           VARCHAR NOT NULL,
    ingested_at           TIMESTAMP NOT NULL
);

-- One row per subnet per snapshot (`describe-subnets`): which VPC a stopped task's subnet is in.
CREATE TABLE IF NOT EXISTS subnets (
    subnet_id         VARCHAR NOT NULL,
    vpc_id            VARCHAR,
    cidr_block        VARCHAR,
    ipv6_cidr_blocks  VARCHAR[],               -- Ipv6CidrBlockAssociationSet[].Ipv6CidrBlock
    availability_zone VARCHAR,
    region            VARCHAR,                 -- the availability zone without its zone letter, else --region
    account_id        VARCHAR,                 -- OwnerId, else --account
    taken_at          TIMESTAMP NOT NULL,
    taken_at_source   VARCHAR NOT NULL,
    source_file       VARCHAR NOT NULL,
    ingested_at       TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS task_definitions (
    task_definition_arn VARCHAR NOT NULL,
    family              VARCHAR NOT NULL,
    revision            INTEGER NOT NULL,
    task_role_arn       VARCHAR,
    execution_role_arn  VARCHAR,
    network_mode        VARCHAR,
    registered_at       TIMESTAMP,
    document            JSON NOT NULL,
    source_file         VARCHAR NOT NULL,
    ingested_at         TIMESTAMP NOT NULL
);

-- IAM (get-account-authorization-details): roles, policies, and the expanded grants.
CREATE TABLE IF NOT EXISTS iam_roles (
    role_arn                 VARCHAR NOT NULL,
    role_name                VARCHAR NOT NULL,
    role_id                  VARCHAR,
    path                     VARCHAR,
    create_date              TIMESTAMP,
    assume_role_policy       JSON,
    permissions_boundary_arn VARCHAR,
    last_used_date           TIMESTAMP,
    last_used_region         VARCHAR,
    source_file              VARCHAR NOT NULL,
    ingested_at              TIMESTAMP NOT NULL
);

-- Managed policies (default version document) and inline role policies.
CREATE TABLE IF NOT EXISTS iam_policies (
    policy_id      VARCHAR NOT NULL,  -- managed: the policy ARN; inline: ROLE_ARN#inline/NAME
    policy_name    VARCHAR NOT NULL,
    kind           VARCHAR NOT NULL,  -- managed | inline
    aws_managed    BOOLEAN NOT NULL,
    version_id     VARCHAR,
    document       JSON,
    source_file    VARCHAR NOT NULL,
    ingested_at    TIMESTAMP NOT NULL
);

-- Which policies apply to which role, and how (identity policy or permissions boundary).
CREATE TABLE IF NOT EXISTS iam_role_policies (
    role_arn  VARCHAR NOT NULL,
    policy_id VARCHAR NOT NULL,
    kind      VARCHAR NOT NULL,       -- inline | managed | boundary
    resolved  BOOLEAN NOT NULL        -- false: the managed policy's document was not in the file
);

-- One row per (role, policy, statement, catalog action). NotAction statements are expanded to
-- every catalog action the statement does not exclude. Patterns that match no catalog action
-- are kept with in_catalog = false (a typo, or an action newer than the catalog).
CREATE TABLE IF NOT EXISTS iam_grants (
    role_arn        VARCHAR NOT NULL,
    policy_id       VARCHAR NOT NULL,
    policy_kind     VARCHAR NOT NULL, -- inline | managed | boundary
    statement_index INTEGER NOT NULL,
    sid             VARCHAR,
    effect          VARCHAR NOT NULL, -- Allow | Deny
    action          VARCHAR NOT NULL, -- canonical service:ActionName (as in the catalog)
    access_level    VARCHAR,          -- List | Read | Write | Permissions management | Tagging
    pattern         VARCHAR NOT NULL, -- the Action/NotAction entry this came from ('NotAction' for NotAction expansion)
    via_not_action  BOOLEAN NOT NULL,
    in_catalog      BOOLEAN NOT NULL,
    resources       VARCHAR[] NOT NULL,
    not_resource    BOOLEAN NOT NULL, -- resources are NotResource
    has_condition   BOOLEAN NOT NULL,
    condition       JSON
);

-- Which version of the action catalog the grants were expanded with.
CREATE TABLE IF NOT EXISTS analyzer_meta (
    key   VARCHAR NOT NULL,
    value VARCHAR
);

-- The IAM action catalog and CloudTrail mapping (catalog.rs `install` replaces them with the
-- built-in data); created empty here so the views below always prepare.
CREATE TABLE IF NOT EXISTS iam_actions (
    action VARCHAR NOT NULL, prefix VARCHAR NOT NULL, name VARCHAR NOT NULL,
    access_level VARCHAR NOT NULL, resource_types VARCHAR[] NOT NULL,
    required_resource_types VARCHAR[] NOT NULL, dependent_actions VARCHAR[] NOT NULL,
    observability VARCHAR NOT NULL, note VARCHAR, data_resource_type VARCHAR
);
ALTER TABLE iam_actions ADD COLUMN IF NOT EXISTS data_resource_type VARCHAR;
CREATE TABLE IF NOT EXISTS cloudtrail_event_actions (
    event_source VARCHAR NOT NULL, event_name VARCHAR NOT NULL, action VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS cloudtrail_source_prefixes (
    event_source VARCHAR NOT NULL, prefix VARCHAR NOT NULL
);

-- Every (eventSource, eventName) stored, with the IAM action(s) it shows were used (one row per
-- action; none when the catalog knows no mapping). Filled by privilege.rs from the catalog before
-- detections run, so the mapping rules (exceptions, API-version suffixes) live in one place.
CREATE TABLE IF NOT EXISTS cloudtrail_event_map (
    event_source VARCHAR NOT NULL,
    event_name   VARCHAR NOT NULL,
    action       VARCHAR              -- canonical service:ActionName; NULL: no known mapping
);

-- Every recorded analysis (findings.rs): `analyze` and `report` without --since/--until. The
-- window is the event time the store held (earliest and latest event of the audit log and
-- CloudTrail): each run re-analyses all of it, so a finding not produced is resolved.
CREATE TABLE IF NOT EXISTS analysis_runs (
    run_id            BIGINT NOT NULL,
    command           VARCHAR NOT NULL,   -- analyze | report
    started_at        TIMESTAMP NOT NULL,
    finished_at       TIMESTAMP NOT NULL,
    window_from       TIMESTAMP,          -- earliest event analysed
    data_watermark    TIMESTAMP,          -- latest event analysed
    findings          BIGINT NOT NULL,    -- current after the run
    new_findings      BIGINT NOT NULL,
    ongoing_findings  BIGINT NOT NULL,
    resolved_findings BIGINT NOT NULL,
    severity_changed  BIGINT NOT NULL,
    failed_detections VARCHAR[] NOT NULL  -- their findings kept their state
);
ALTER TABLE analysis_runs ADD COLUMN IF NOT EXISTS mode VARCHAR;           -- full | incremental
ALTER TABLE analysis_runs ADD COLUMN IF NOT EXISTS judged_since TIMESTAMP; -- incremental: events from
ALTER TABLE analysis_runs ADD COLUMN IF NOT EXISTS fingerprint VARCHAR;    -- increment.rs

-- One row per finding (kind, key) ever recorded, with its state after the latest run.
CREATE TABLE IF NOT EXISTS findings (
    kind              VARCHAR NOT NULL,
    finding_key       VARCHAR NOT NULL,   -- JSON object of the detection's key columns
    severity          VARCHAR NOT NULL,   -- as reported (after the configuration)
    previous_severity VARCHAR,            -- before the run that changed it
    state             VARCHAR NOT NULL,   -- new | ongoing | resolved
    state_run         BIGINT NOT NULL,    -- the run that set the state
    first_seen_run    BIGINT NOT NULL,
    first_seen_at     TIMESTAMP NOT NULL, -- when that run started
    last_seen_run     BIGINT NOT NULL,
    last_seen_at      TIMESTAMP NOT NULL,
    event_first_seen  TIMESTAMP,          -- the finding's own first and last event
    event_last_seen   TIMESTAMP,
    count             BIGINT NOT NULL,
    finding           JSON NOT NULL       -- the finding as last produced (output shape)
);
