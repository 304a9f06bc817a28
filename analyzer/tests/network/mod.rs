//! Issue 11, item 2: the network inventory (`credtrail ingest network`), the describe-tasks
//! network fields, and the views the address rules read (`owned_addresses`, `egress_addresses`,
//! `cidr_contains`). Fixtures: `tests/data/network/` (describe-network-interfaces, -subnets and
//! -vpc-endpoints output in two regions whose VPCs both use 10.0.1.0/24) and
//! `tests/data/network-ecs/` (describe-tasks of the tasks those ENIs belong to).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use credtrail::store::Store;

const TASK_A: &str =
    "arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef0123456789abcdef";
const TASK_B: &str =
    "arn:aws:ecs:eu-west-1:111122223333:task/reports/fedcba9876543210fedcba9876543210";
const TASK_C: &str =
    "arn:aws:ecs:us-east-1:111122223333:task/prod/aaaabbbbccccddddeeeeffff00001111";
const TAKEN_AT: &str = "2026-11-20T10:30:00Z";

fn data(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir)
}

fn credtrail(store: &Path, args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .arg("--store")
        .arg(store)
        .args(args)
        .args(paths)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Rows of `sql` as text (NULL as "NULL"), every column cast to VARCHAR and joined by '|'.
fn rows(store: &Store, sql: &str) -> Vec<String> {
    let mut stmt = store
        .conn()
        .prepare(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    let mut r = stmt.query([]).unwrap();
    while let Some(row) = r.next().unwrap() {
        let n = row.as_ref().column_count();
        let cols: Vec<String> = (0..n)
            .map(|i| {
                row.get::<_, Option<String>>(i)
                    .unwrap_or_else(|e| panic!("{sql}: column {i} is not text: {e}"))
                    .unwrap_or_else(|| "NULL".into())
            })
            .collect();
        out.push(cols.join("|"));
    }
    out
}

fn one(store: &Store, sql: &str) -> String {
    let r = rows(store, sql);
    assert_eq!(r.len(), 1, "{sql}: {r:?}");
    r.into_iter().next().unwrap()
}

/// A store with both describe-tasks files and the whole network inventory, through the binary.
fn loaded(dir: &Path) -> PathBuf {
    let store = dir.join("net.duckdb");
    ok(&credtrail(
        &store,
        &["ingest", "ecs"],
        &[&data("network-ecs")],
    ));
    ok(&credtrail(
        &store,
        &[
            "ingest",
            "network",
            "--taken-at",
            TAKEN_AT,
            "--region",
            "us-east-1",
        ],
        &[&data("network")],
    ));
    store
}

#[test]
fn network_inventory_files_load_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("net.duckdb");
    let args = [
        "ingest",
        "network",
        "--taken-at",
        TAKEN_AT,
        "--region",
        "us-east-1",
    ];
    let text = ok(&credtrail(&store, &args, &[&data("network")]));
    assert!(
        text.contains(
            "network: 4 files (0 already stored), 5 ENIs with 9 addresses, 2 VPC endpoints, 1 subnets stored"
        ),
        "{text}"
    );
    let again = ok(&credtrail(&store, &args, &[&data("network")]));
    assert!(
        again.contains(
            "network: 4 files (4 already stored), 0 ENIs with 0 addresses, 0 VPC endpoints, 0 subnets stored"
        ),
        "{again}"
    );

    let s = Store::open(&store).unwrap();
    let counts = one(
        &s,
        "SELECT (SELECT count(*) FROM network_interfaces)::VARCHAR, (SELECT count(*) FROM network_addresses)::VARCHAR,
                (SELECT count(*) FROM vpc_endpoints)::VARCHAR, (SELECT count(*) FROM subnets)::VARCHAR,
                (SELECT count(*) FROM network_snapshots)::VARCHAR",
    );
    assert_eq!(counts, "5|9|2|1|4");
    // Region from the zone, even though --region says us-east-1; account from OwnerId; the task
    // attachment from the Description ARN; the snapshot time from the flag.
    assert_eq!(
        one(
            &s,
            "SELECT interface_type, vpc_id, subnet_id, availability_zone, region, account_id, status,
                    requester_id, requester_managed::VARCHAR, private_ip, public_ip, public_ip_owner_id,
                    task_attachment_id, task_attachment_arn, taken_at::VARCHAR, taken_at_source,
                    regexp_extract(source_file, '[^/]+/[^/]+$')
             FROM network_interfaces WHERE eni_id = 'eni-0a1b2c3d4e5f60718'"
        ),
        "interface|vpc-0aaa1111bbbb2222c|subnet-0aa11bb22cc33dd44|us-east-1a|us-east-1|111122223333|in-use|\
         578734482556|true|10.0.1.23|203.0.113.10|amazon|6f2c1a4e-3b5d-4c7e-9a1f-2b3c4d5e6f70|\
         arn:aws:ecs:us-east-1:111122223333:attachment/6f2c1a4e-3b5d-4c7e-9a1f-2b3c4d5e6f70|\
         2026-11-20 10:30:00|flag|us-east-1/describe-network-interfaces.json"
    );
    assert_eq!(
        one(
            &s,
            "SELECT region, vpc_id FROM network_interfaces WHERE eni_id = 'eni-0f1e2d3c4b5a69788'"
        ),
        "eu-west-1|vpc-0bbb3333cccc4444d"
    );
    assert_eq!(
        one(
            &s,
            "SELECT attachment_instance_id, task_attachment_id, public_ip
             FROM network_interfaces WHERE interface_type = 'interface' AND eni_id = 'eni-0d0d0d0d0d0d0d0d0'"
        ),
        "i-0fedcba9876543210|NULL|198.51.100.20"
    );
    assert_eq!(
        rows(
            &s,
            "SELECT address || ' ' || family || ' ' || kind || ' ' || coalesce(private_address, '-')
             FROM network_addresses WHERE eni_id = 'eni-0a1b2c3d4e5f60718' ORDER BY kind, address"
        ),
        [
            "2600:1f18:4a3:6902:8c5e:7d12:aa0b:1e2f ipv6 ipv6 -",
            "10.0.1.23 ipv4 private -",
            "203.0.113.10 ipv4 public 10.0.1.23",
        ]
    );
    assert_eq!(
        rows(
            &s,
            "SELECT vpc_endpoint_id || ' ' || endpoint_type || ' ' || service_name || ' ' || region || ' '
                    || account_id || ' ' || '[' || array_to_string(network_interface_ids, ',') || ']'
             FROM vpc_endpoints ORDER BY vpc_endpoint_id"
        ),
        [
            "vpce-0b1c2d3e4f5a60718 Interface com.amazonaws.us-east-1.sts us-east-1 111122223333 [eni-0e0e0e0e0e0e0e0e0]",
            "vpce-0c2d3e4f5a6b70819 Gateway com.amazonaws.us-east-1.s3 us-east-1 111122223333 []",
        ]
    );
    assert_eq!(
        one(
            &s,
            "SELECT subnet_id, vpc_id, cidr_block, '[' || array_to_string(ipv6_cidr_blocks, ',') || ']', region, account_id FROM subnets"
        ),
        "subnet-0aa11bb22cc33dd44|vpc-0aaa1111bbbb2222c|10.0.1.0/24|[2600:1f18:4a3:6902::/64]|us-east-1|111122223333"
    );
    drop(s);

    // Without --taken-at the snapshot is the file's modification time; entries without an
    // OwnerId or zone take --account and --region.
    let f = tmp.path().join("old-cli-subnets.json");
    std::fs::write(
        &f,
        r#"{"Subnets": [{"CidrBlock": "10.9.0.0/24", "SubnetId": "subnet-0123", "VpcId": "vpc-0123"}]}"#,
    )
    .unwrap();
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    ok(&credtrail(
        &store,
        &[
            "ingest",
            "network",
            "--region",
            "ap-south-1",
            "--account",
            "444455556666",
        ],
        &[&f],
    ));
    let again = ok(&credtrail(&store, &["ingest", "network"], &[&f]));
    assert!(again.contains("1 files (1 already stored)"), "{again}");
    let s = Store::open(&store).unwrap();
    assert_eq!(
        one(
            &s,
            "SELECT region, account_id, epoch(taken_at)::BIGINT::VARCHAR, taken_at_source
             FROM subnets WHERE subnet_id = 'subnet-0123'"
        ),
        "ap-south-1|444455556666|1795000000|mtime"
    );
}

#[test]
fn a_file_that_is_no_network_inventory_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inventory");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        data("network/us-east-1/describe-subnets.json"),
        dir.join("describe-subnets.json"),
    )
    .unwrap();
    std::fs::write(
        dir.join("describe-instances.json"),
        r#"{"Reservations": [{"Instances": [], "OwnerId": "111122223333"}]}"#,
    )
    .unwrap();
    let store = tmp.path().join("net.duckdb");
    let out = credtrail(&store, &["ingest", "network"], &[&dir]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("describe-instances.json") && err.contains("NetworkInterfaces"),
        "{err}"
    );
    // Nothing of the run is stored, not even the good file.
    let s = Store::open(&store).unwrap();
    assert_eq!(s.count("SELECT count(*) FROM subnets").unwrap(), 0);
    assert_eq!(
        s.count("SELECT count(*) FROM network_snapshots").unwrap(),
        0
    );
    drop(s);
    let bad = tmp.path().join("bad-time.json");
    std::fs::copy(data("network/us-east-1/describe-subnets.json"), &bad).unwrap();
    let out = credtrail(
        &store,
        &["ingest", "network", "--taken-at", "yesterday"],
        &[&bad],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--taken-at"));
}

#[test]
fn describe_tasks_network_fields_and_the_task_eni_map_to_the_task() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::open(&loaded(tmp.path())).unwrap();
    // describe-tasks' own fields.
    assert_eq!(
        one(
            &s,
            &format!(
                "SELECT pull_started_at::VARCHAR, pull_stopped_at::VARCHAR, subnet_id, attachment_id,
                        '[' || array_to_string(ipv6_addresses, ',') || ']', region, account_id
                 FROM ecs_tasks WHERE task_arn = '{TASK_A}'"
            )
        ),
        "2026-11-20 09:58:10.5|2026-11-20 09:58:31.25|subnet-0aa11bb22cc33dd44|\
         6f2c1a4e-3b5d-4c7e-9a1f-2b3c4d5e6f70|[2600:1f18:4a3:6902:8c5e:7d12:aa0b:1e2f]|us-east-1|111122223333"
    );
    // The tasks view: A's VPC from describe-subnets (its subnet), B's from its ENI, found by the
    // attachment ID in the ENI's Description; C's subnet is in neither, so its VPC is unknown.
    let q = |arn: &str| {
        one(
            &s,
            &format!(
                "SELECT pull_started_at::VARCHAR, subnet_id, vpc_id, attachment_id, '[' || array_to_string(ipv6_addresses, ',') || ']',
                        region, account_id
                 FROM tasks WHERE task_arn = '{arn}'"
            ),
        )
    };
    assert_eq!(
        q(TASK_A),
        "2026-11-20 09:58:10.5|subnet-0aa11bb22cc33dd44|vpc-0aaa1111bbbb2222c|\
         6f2c1a4e-3b5d-4c7e-9a1f-2b3c4d5e6f70|[2600:1f18:4a3:6902:8c5e:7d12:aa0b:1e2f]|us-east-1|111122223333"
    );
    assert_eq!(
        q(TASK_B),
        "2026-11-20 09:30:15|subnet-0bb11cc22dd33ee44|vpc-0bbb3333cccc4444d|\
         0b9e8d7c-6a5b-4c3d-8e2f-1a0b9c8d7e6f|[]|eu-west-1|111122223333"
    );
    assert_eq!(
        q(TASK_C),
        "2026-11-19 22:00:10|subnet-0cc44dd55ee66ff77|NULL|\
         1d2c3b4a-5e6f-4a7b-8c9d-0e1f2a3b4c5d|[]|us-east-1|111122223333"
    );
    // The account's own egress addresses: the NAT gateway's and the instance's for as long as
    // they exist, task A's public and IPv6 addresses while A runs (its ENI keeps them for the
    // task's life, and describe-tasks knows no stop yet).
    assert_eq!(
        rows(
            &s,
            "SELECT address || ' ' || kind || ' ' || region || ' ' || coalesce(task_arn, '-') || ' '
                    || vouched_from::VARCHAR || ' ' || vouched_until::VARCHAR
             FROM egress_addresses ORDER BY address"
        ),
        [
            "198.51.100.10 nat_gateway us-east-1 - -infinity infinity".to_string(),
            "198.51.100.20 instance us-east-1 - -infinity infinity".to_string(),
            format!("203.0.113.10 task us-east-1 {TASK_A} 2026-11-20 09:57:58.101 infinity"),
            format!(
                "2600:1f18:4a3:6902:8c5e:7d12:aa0b:1e2f task us-east-1 {TASK_A} 2026-11-20 09:57:58.101 infinity"
            ),
        ]
    );
}

#[test]
fn two_vpcs_reusing_a_range_give_distinct_owned_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::open(&loaded(tmp.path())).unwrap();
    let owners = rows(
        &s,
        "SELECT regexp_extract(task_arn, '[^/]+$') || ' ' || coalesce(vpc_id, '-') || ' ' || region || ' '
                || account_id || ' ' || owned_from::VARCHAR || ' ' || coalesce(owned_until::VARCHAR, 'running')
                || ' ' || source
         FROM owned_addresses WHERE address = '10.0.1.23' AND family = 'ipv4'
         ORDER BY 1",
    );
    assert_eq!(
        owners,
        [
            "0123456789abcdef0123456789abcdef vpc-0aaa1111bbbb2222c us-east-1 111122223333 2026-11-20 09:57:58.101 running describe-tasks",
            "0123456789abcdef0123456789abcdef vpc-0aaa1111bbbb2222c us-east-1 111122223333 2026-11-20 09:57:58.101 running network-inventory",
            "aaaabbbbccccddddeeeeffff00001111 - us-east-1 111122223333 2026-11-19 22:00:00 2026-11-20 08:00:40 describe-tasks",
            "fedcba9876543210fedcba9876543210 vpc-0bbb3333cccc4444d eu-west-1 111122223333 2026-11-20 09:30:00 2026-11-20 11:00:31 describe-tasks",
            "fedcba9876543210fedcba9876543210 vpc-0bbb3333cccc4444d eu-west-1 111122223333 2026-11-20 09:30:00 2026-11-20 11:00:31 network-inventory",
        ]
    );
    // A and B held 10.0.1.23 at the same time, in different VPCs: never the same address. A and
    // C share region and account and C's VPC is unknown: the same address space, at other times.
    let clashes = |at: &str| {
        rows(
            &s,
            &format!(
                "SELECT DISTINCT regexp_extract(x.task_arn, '[^/]+$') || ' ' || regexp_extract(y.task_arn, '[^/]+$')
                 FROM owned_addresses x JOIN owned_addresses y
                   ON x.address = y.address AND x.task_arn < y.task_arn
                  AND same_address_space(x.vpc_id, x.region, x.account_id, y.vpc_id, y.region, y.account_id)
                 WHERE TIMESTAMP '{at}' BETWEEN x.owned_from AND coalesce(x.owned_until, 'infinity')
                   AND TIMESTAMP '{at}' BETWEEN y.owned_from AND coalesce(y.owned_until, 'infinity')"
            ),
        )
    };
    assert_eq!(clashes("2026-11-20 10:00:00"), Vec::<String>::new());
    assert_eq!(
        rows(
            &s,
            "SELECT DISTINCT regexp_extract(x.task_arn, '[^/]+$') || ' ' || regexp_extract(y.task_arn, '[^/]+$')
             FROM owned_addresses x JOIN owned_addresses y
               ON x.address = y.address AND x.task_arn < y.task_arn
              AND same_address_space(x.vpc_id, x.region, x.account_id, y.vpc_id, y.region, y.account_id)"
        ),
        ["0123456789abcdef0123456789abcdef aaaabbbbccccddddeeeeffff00001111"]
    );
    // A's IPv6 address is its own, from describe-tasks and from its ENI.
    assert_eq!(
        rows(
            &s,
            "SELECT source FROM owned_addresses WHERE family = 'ipv6' ORDER BY source"
        ),
        ["describe-tasks", "network-inventory"]
    );
}

#[test]
fn cidr_contains_matches_ipv4_and_ipv6_ranges() {
    let s = Store::open_in_memory().unwrap();
    let cases: &[(&str, &str, Option<bool>)] = &[
        ("10.0.0.0/8", "10.200.3.4", Some(true)),
        ("10.0.0.0/8", "11.0.0.1", Some(false)),
        ("10.0.1.0/24", "10.0.1.255", Some(true)),
        ("10.0.1.0/24", "10.0.2.0", Some(false)),
        ("203.0.113.7", "203.0.113.7", Some(true)),
        ("203.0.113.7", "203.0.113.70", Some(false)),
        ("203.0.113.7/32", "203.0.113.8", Some(false)),
        ("0.0.0.0/0", "198.51.100.1", Some(true)),
        ("172.16.0.0/12", "172.31.255.255", Some(true)),
        ("172.16.0.0/12", "172.32.0.0", Some(false)),
        ("192.168.0.0/23", "192.168.1.9", Some(true)),
        ("192.168.0.0/23", "192.168.2.9", Some(false)),
        (
            "2600:1f18:4a3:6900::/56",
            "2600:1f18:4a3:6902:8c5e:7d12:aa0b:1e2f",
            Some(true),
        ),
        (
            "2600:1f18:4a3:6900::/56",
            "2600:1f18:4a3:6a02::1",
            Some(false),
        ),
        (
            "2600:1F18:04A3:6902::/64",
            "2600:1f18:4a3:6902::9",
            Some(true),
        ),
        ("2001:db8::/33", "2001:db8:7fff::1", Some(true)),
        ("2001:db8::/33", "2001:db8:8000::1", Some(false)),
        ("::/0", "::1", Some(true)),
        ("::ffff:0:0/96", "::ffff:198.51.100.7", Some(true)),
        (
            "2001:db8::1",
            "2001:0db8:0000:0000:0000:0000:0000:0001",
            Some(true),
        ),
        ("fe80::/10", "fe80::1%eth0", Some(true)),
        ("10.0.0.0/8", "2001:db8::1", Some(false)),
        ("::/0", "10.0.0.1", Some(false)),
        ("10.0.0.0/8", "AWS Internal", Some(false)),
        ("10.0.0.0/8", "s3.amazonaws.com", Some(false)),
        ("10.0.0.0/8", "010.0.0.1", Some(false)),
        ("10.0.0.0/8", "10.0.0.256", Some(false)),
        ("2001:db8::/32", "2001:db8::1::2", Some(false)),
        ("2001:db8::/32", "2001:db8:1:2:3:4:5:6:7", Some(false)),
        ("10.0.0.0/8", "", Some(false)),
    ];
    for (cidr, ip, want) in cases {
        let got: Option<bool> = s
            .conn()
            .query_row("SELECT cidr_contains(?, ?)", [cidr, ip], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{cidr} {ip}: {e}"));
        assert_eq!(got, *want, "cidr_contains({cidr:?}, {ip:?})");
    }
    let null: Option<bool> = s
        .conn()
        .query_row("SELECT cidr_contains('10.0.0.0/8', NULL)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(null, None);
    for bad in [
        "10.0.0.0/33",
        "10.0.0/8",
        "nonsense",
        "2001:db8::/129",
        "10.0.0.0/x",
    ] {
        let e = s
            .conn()
            .query_row("SELECT cidr_contains(?, '10.0.0.1')", [bad], |r| {
                r.get::<_, Option<bool>>(0)
            })
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a CIDR range") && e.contains(bad),
            "{bad}: {e}"
        );
    }
    // The expected_egress list: ranges separated by spaces or commas; over a column.
    let hits: Vec<bool> = {
        let mut stmt = s
            .conn()
            .prepare(
                "SELECT cidr_list_contains('203.0.113.0/24, 198.51.100.7 2600:1f18::/32', ip)
                 FROM (VALUES ('203.0.113.9'), ('198.51.100.7'), ('198.51.100.8'), ('2600:1f18:1::5'),
                              ('AWS Internal')) v(ip)",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(hits, [true, true, false, true, false]);
    let empty: bool = s
        .conn()
        .query_row("SELECT cidr_list_contains(NULL, '10.0.0.1')", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(!empty);
}

#[test]
fn the_address_macros_work_in_read_only_sql() {
    let tmp = tempfile::tempdir().unwrap();
    let store = loaded(tmp.path());
    let text = ok(&credtrail(
        &store,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT address FROM egress_addresses WHERE cidr_list_contains('198.51.100.0/24', address) ORDER BY 1",
        ],
        &[],
    ));
    assert_eq!(text, "address\n198.51.100.10\n198.51.100.20\n");
}

#[test]
fn stores_from_before_the_network_inventory_open_and_fill_the_new_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("old.duckdb");
    {
        let s = Store::open(&path).unwrap();
        // As an older version left it: ecs_tasks without the new columns, no network tables,
        // and a describe-tasks snapshot stored without them.
        s.conn()
            .execute_batch(
                "DROP VIEW tasks; DROP VIEW owned_addresses; DROP VIEW egress_addresses;
                 DROP TABLE network_interfaces; DROP TABLE network_addresses; DROP TABLE subnets;
                 DROP TABLE vpc_endpoints; DROP TABLE network_snapshots;
                 ALTER TABLE ecs_tasks DROP COLUMN pull_started_at; ALTER TABLE ecs_tasks DROP COLUMN pull_stopped_at;
                 ALTER TABLE ecs_tasks DROP COLUMN subnet_id; ALTER TABLE ecs_tasks DROP COLUMN attachment_id;
                 ALTER TABLE ecs_tasks DROP COLUMN ipv6_addresses; ALTER TABLE ecs_tasks DROP COLUMN region;
                 ALTER TABLE ecs_tasks DROP COLUMN account_id;
                 UPDATE analyzer_meta SET value = 'old' WHERE key = 'views_version';",
            )
            .unwrap();
        assert_eq!(
            s.count("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'ecs_tasks'")
                .unwrap(),
            22
        );
    }
    {
        // Read-only (`sql`, `query`): the store cannot be upgraded, so what this version adds
        // is stood in for, and its views work.
        let s = Store::open_read_only(&path).unwrap();
        for sql in [
            "SELECT count(*) FROM tasks WHERE vpc_id IS NULL",
            "SELECT count(*) FROM owned_addresses",
            "SELECT count(*) FROM egress_addresses",
            "SELECT count(*) FROM ecs_tasks WHERE pull_started_at IS NULL",
        ] {
            assert_eq!(s.count(sql).unwrap_or_else(|e| panic!("{sql}: {e}")), 0);
        }
    }
    {
        let s = Store::open(&path).unwrap();
        assert_eq!(
            s.count("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'ecs_tasks'")
                .unwrap(),
            29
        );
        // A row as the older version stored it.
        credtrail::ecs::ingest(&s, &[data("network-ecs")]).unwrap();
        s.conn()
            .execute_batch(
                "UPDATE ecs_tasks SET pull_started_at = NULL, pull_stopped_at = NULL, subnet_id = NULL,
                     attachment_id = NULL, ipv6_addresses = NULL, region = NULL, account_id = NULL",
            )
            .unwrap();
        let again = credtrail::ecs::ingest(&s, &[data("network-ecs")]).unwrap();
        assert_eq!((again.tasks, again.tasks_unchanged), (0, 3), "{again}");
        assert_eq!(
            one(
                &s,
                &format!(
                    "SELECT subnet_id, attachment_id, region, pull_started_at::VARCHAR
                     FROM ecs_tasks WHERE task_arn = '{TASK_B}'"
                )
            ),
            "subnet-0bb11cc22dd33ee44|0b9e8d7c-6a5b-4c3d-8e2f-1a0b9c8d7e6f|eu-west-1|2026-11-20 09:30:15"
        );
        assert_eq!(s.count("SELECT count(*) FROM ecs_tasks").unwrap(), 3);
    }
}
