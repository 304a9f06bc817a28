//! `credtrail ingest network FILE|DIR…`: the network inventory. `aws ec2
//! describe-network-interfaces`, `describe-vpc-endpoints` and `describe-subnets` output (the CLI's
//! JSON, recognised by its top-level key: `NetworkInterfaces`, `VpcEndpoints`, `Subnets`) into
//! `network_interfaces`, `network_addresses`, `vpc_endpoints` and `subnets`; the address rules read
//! them through the views `owned_addresses`, `egress_addresses` and `tasks`.
//!
//! Each file is one snapshot: it says what held when it was taken, `--taken-at`, else the file's
//! modification time (`taken_at_source` says which). Region and account come from each entry
//! (an availability zone without its zone letter; `OwnerId`), and from `--region` / `--account`
//! for entries that do not carry them. A file that is none of the three is an error naming it,
//! and nothing of that run is stored. A file whose content and snapshot time are stored already
//! (`network_snapshots`) adds nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use duckdb::params;
use serde_json::Value;

use crate::store::{Store, now_us, ts};

/// Flags that apply to every file of one run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Region of entries that name none (VPC endpoints; ENIs and subnets without a zone).
    pub region: Option<String>,
    /// Account of entries without an `OwnerId`.
    pub account: Option<String>,
    /// The snapshot time (µs since the epoch); `None`: each file's modification time.
    pub taken_at_us: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: u64,
    /// Files whose content and snapshot time were stored already.
    pub files_known: u64,
    pub interfaces: u64,
    pub addresses: u64,
    pub endpoints: u64,
    pub subnets: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "network: {} files ({} already stored), {} ENIs with {} addresses, {} VPC endpoints, {} subnets stored",
            self.files,
            self.files_known,
            self.interfaces,
            self.addresses,
            self.endpoints,
            self.subnets
        )
    }
}

/// One address of an ENI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub address: String,
    /// `ipv4` | `ipv6`
    pub family: &'static str,
    /// `private` | `public` | `ipv6`
    pub kind: &'static str,
    pub is_primary: Option<bool>,
    /// For a public address: the private IPv4 it is associated with.
    pub private_address: Option<String>,
}

/// One ENI as `describe-network-interfaces` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub eni_id: String,
    pub interface_type: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub availability_zone: Option<String>,
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub requester_id: Option<String>,
    pub requester_managed: Option<bool>,
    pub instance_id: Option<String>,
    pub instance_owner_id: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub public_ip_owner_id: Option<String>,
    pub task_attachment_id: Option<String>,
    pub task_attachment_arn: Option<String>,
    pub addresses: Vec<Address>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub vpc_endpoint_id: String,
    pub vpc_id: Option<String>,
    pub service_name: Option<String>,
    pub endpoint_type: Option<String>,
    pub state: Option<String>,
    pub subnet_ids: Vec<String>,
    pub network_interface_ids: Vec<String>,
    pub region: Option<String>,
    pub account_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subnet {
    pub subnet_id: String,
    pub vpc_id: Option<String>,
    pub cidr_block: Option<String>,
    pub ipv6_cidr_blocks: Vec<String>,
    pub availability_zone: Option<String>,
    pub region: Option<String>,
    pub account_id: Option<String>,
}

/// Everything one file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The top-level keys found, in the order checked.
    pub kinds: Vec<&'static str>,
    pub interfaces: Vec<Interface>,
    pub endpoints: Vec<Endpoint>,
    pub subnets: Vec<Subnet>,
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
}

fn strings(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn objects<'a>(v: &'a Value, k: &str) -> impl Iterator<Item = &'a Value> {
    v.get(k).and_then(Value::as_array).into_iter().flatten()
}

/// The region of an availability zone: `us-east-1a` → `us-east-1`, `us-gov-west-1b` →
/// `us-gov-west-1`, `us-west-2-lax-1a` (a Local Zone) → `us-west-2`. `None` when the name has no
/// region shape.
pub fn region_of_zone(zone: &str) -> Option<String> {
    let parts: Vec<&str> = zone.split('-').collect();
    for (i, p) in parts.iter().enumerate().skip(2) {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            let head = &parts[..i];
            if head[0].len() == 2
                && head
                    .iter()
                    .all(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_lowercase()))
            {
                return Some(format!("{}-{digits}", head.join("-")));
            }
            return None;
        }
    }
    None
}

/// The region named inside a VPC endpoint's service name (`com.amazonaws.us-east-1.s3`,
/// `com.amazonaws.vpce.eu-west-1.vpce-svc-…`).
pub fn region_of_service(name: &str) -> Option<String> {
    name.split('.')
        .find(|p| region_of_zone(&format!("{p}a")).as_deref() == Some(p))
        .map(str::to_string)
}

/// An ECS task ENI's Description: `arn:<partition>:ecs:<region>:<account>:attachment/<uuid>` →
/// the uuid (the task's `attachments[].id` in describe-tasks).
pub fn task_attachment(description: &str) -> Option<String> {
    let parts: Vec<&str> = description.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "ecs" {
        return None;
    }
    let id = parts[5].strip_prefix("attachment/")?;
    (!id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        .then(|| id.to_ascii_lowercase())
}

fn address(
    address: &str,
    kind: &'static str,
    primary: Option<bool>,
    private: Option<&str>,
) -> Address {
    let ipv6 = address.contains(':');
    Address {
        address: if ipv6 {
            address.to_ascii_lowercase()
        } else {
            address.to_string()
        },
        family: if ipv6 { "ipv6" } else { "ipv4" },
        kind,
        is_primary: primary,
        private_address: private.map(str::to_string),
    }
}

pub fn parse_interface(v: &Value, opts: &Options) -> Result<Interface> {
    let eni_id =
        s(v, "NetworkInterfaceId").context("network interface has no NetworkInterfaceId")?;
    let zone = s(v, "AvailabilityZone");
    let association = v.get("Association");
    let attachment = v.get("Attachment");
    let description = s(v, "Description");
    let task_attachment_id = description.as_deref().and_then(task_attachment);
    let private_ip = s(v, "PrivateIpAddress");
    let public_ip = association.and_then(|a| s(a, "PublicIp"));

    let mut addresses: Vec<Address> = Vec::new();
    for p in objects(v, "PrivateIpAddresses") {
        let Some(ip) = s(p, "PrivateIpAddress") else {
            continue;
        };
        let primary = p.get("Primary").and_then(Value::as_bool);
        addresses.push(address(&ip, "private", primary, None));
        if let Some(public) = p.get("Association").and_then(|a| s(a, "PublicIp")) {
            addresses.push(address(&public, "public", primary, Some(&ip)));
        }
    }
    if let Some(ip) = &private_ip
        && !addresses
            .iter()
            .any(|a| a.kind == "private" && &a.address == ip)
    {
        addresses.push(address(ip, "private", Some(true), None));
    }
    if let Some(public) = &public_ip
        && !addresses
            .iter()
            .any(|a| a.kind == "public" && &a.address == public)
    {
        addresses.push(address(public, "public", Some(true), private_ip.as_deref()));
    }
    for a in objects(v, "Ipv6Addresses") {
        if let Some(ip) = s(a, "Ipv6Address") {
            let primary = a.get("IsPrimaryIpv6").and_then(Value::as_bool);
            addresses.push(address(&ip, "ipv6", primary, None));
        }
    }
    if let Some(ip) = s(v, "Ipv6Address")
        && !addresses
            .iter()
            .any(|a| a.kind == "ipv6" && a.address == ip.to_ascii_lowercase())
    {
        addresses.push(address(&ip, "ipv6", Some(true), None));
    }

    Ok(Interface {
        eni_id,
        interface_type: s(v, "InterfaceType"),
        vpc_id: s(v, "VpcId"),
        subnet_id: s(v, "SubnetId"),
        region: zone
            .as_deref()
            .and_then(region_of_zone)
            .or_else(|| opts.region.clone()),
        availability_zone: zone,
        account_id: s(v, "OwnerId").or_else(|| opts.account.clone()),
        task_attachment_arn: task_attachment_id.as_ref().and(description.clone()),
        task_attachment_id,
        description,
        status: s(v, "Status"),
        requester_id: s(v, "RequesterId"),
        requester_managed: v.get("RequesterManaged").and_then(Value::as_bool),
        instance_id: attachment.and_then(|a| s(a, "InstanceId")),
        instance_owner_id: attachment.and_then(|a| s(a, "InstanceOwnerId")),
        private_ip,
        public_ip,
        public_ip_owner_id: association.and_then(|a| s(a, "IpOwnerId")),
        addresses,
    })
}

pub fn parse_endpoint(v: &Value, opts: &Options) -> Result<Endpoint> {
    let id = s(v, "VpcEndpointId").context("VPC endpoint has no VpcEndpointId")?;
    let service_name = s(v, "ServiceName");
    Ok(Endpoint {
        vpc_endpoint_id: id,
        vpc_id: s(v, "VpcId"),
        // The file names no region: the flag says where it was listed; the service name's region
        // is the endpoint's own except for cross-region endpoints.
        region: opts
            .region
            .clone()
            .or_else(|| service_name.as_deref().and_then(region_of_service)),
        service_name,
        endpoint_type: s(v, "VpcEndpointType"),
        state: s(v, "State"),
        subnet_ids: strings(v, "SubnetIds"),
        network_interface_ids: strings(v, "NetworkInterfaceIds"),
        account_id: s(v, "OwnerId").or_else(|| opts.account.clone()),
    })
}

pub fn parse_subnet(v: &Value, opts: &Options) -> Result<Subnet> {
    let id = s(v, "SubnetId").context("subnet has no SubnetId")?;
    let zone = s(v, "AvailabilityZone");
    Ok(Subnet {
        subnet_id: id,
        vpc_id: s(v, "VpcId"),
        cidr_block: s(v, "CidrBlock"),
        ipv6_cidr_blocks: objects(v, "Ipv6CidrBlockAssociationSet")
            .filter_map(|a| s(a, "Ipv6CidrBlock"))
            .collect(),
        region: zone
            .as_deref()
            .and_then(region_of_zone)
            .or_else(|| opts.region.clone()),
        availability_zone: zone,
        account_id: s(v, "OwnerId").or_else(|| opts.account.clone()),
    })
}

/// Reads one file's JSON. An object without any of the three lists is an error.
pub fn parse(v: &Value, opts: &Options) -> Result<Snapshot> {
    const WHAT: &str = "not describe-network-interfaces, describe-vpc-endpoints or describe-subnets \
                        output (no NetworkInterfaces, VpcEndpoints or Subnets list)";
    let Some(o) = v.as_object() else {
        bail!(WHAT);
    };
    fn list<'a>(o: &'a serde_json::Map<String, Value>, key: &str) -> Result<Option<&'a [Value]>> {
        match o.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => bail!("{key} is not a list"),
        }
    }
    let mut out = Snapshot::default();
    if let Some(items) = list(o, "NetworkInterfaces")? {
        out.kinds.push("NetworkInterfaces");
        for (i, item) in items.iter().enumerate() {
            out.interfaces.push(
                parse_interface(item, opts).with_context(|| format!("NetworkInterfaces[{i}]"))?,
            );
        }
    }
    if let Some(items) = list(o, "VpcEndpoints")? {
        out.kinds.push("VpcEndpoints");
        for (i, item) in items.iter().enumerate() {
            out.endpoints
                .push(parse_endpoint(item, opts).with_context(|| format!("VpcEndpoints[{i}]"))?);
        }
    }
    if let Some(items) = list(o, "Subnets")? {
        out.kinds.push("Subnets");
        for (i, item) in items.iter().enumerate() {
            out.subnets
                .push(parse_subnet(item, opts).with_context(|| format!("Subnets[{i}]"))?);
        }
    }
    if out.kinds.is_empty() {
        bail!(WHAT);
    }
    Ok(out)
}

/// One file, read and parsed, before it is compared with the store.
struct File {
    source: String,
    hash: String,
    taken_at_us: i64,
    taken_at_source: &'static str,
    snapshot: Snapshot,
}

fn read(path: &Path, opts: &Options) -> Result<File> {
    let bytes = std::fs::read(path).context("cannot read")?;
    let (taken_at_us, taken_at_source) = match opts.taken_at_us {
        Some(t) => (t, "flag"),
        None => {
            let modified = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .context("no modification time (give --taken-at)")?;
            let us = match modified.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => d.as_micros() as i64,
                Err(e) => -(e.duration().as_micros() as i64),
            };
            (us, "mtime")
        }
    };
    let v: Value = serde_json::from_slice(&bytes).context("not JSON")?;
    Ok(File {
        source: path.display().to_string(),
        hash: format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes)),
        taken_at_us,
        taken_at_source,
        snapshot: parse(&v, opts)?,
    })
}

/// Ingests files and directories (walked for `.json`). Every file is read before anything is
/// stored; a file that cannot be read or is not one of the three outputs is an error naming it.
pub fn ingest(store: &Store, paths: &[PathBuf], opts: &Options) -> Result<Summary> {
    let list = crate::ecs::files(paths)?;
    if list.is_empty() {
        bail!("no .json files in {}", paths_text(paths));
    }
    let mut files = Vec::with_capacity(list.len());
    for path in &list {
        files.push(read(path, opts).with_context(|| path.display().to_string())?);
    }
    let now = now_us();
    let mut summary = Summary::default();
    store.transaction(|conn| {
        let mut seen = HashSet::new();
        let mut app_eni = conn.appender("network_interfaces")?;
        let mut app_addr = conn.appender("network_addresses")?;
        let mut endpoint = conn.prepare(
            "INSERT INTO vpc_endpoints (vpc_endpoint_id, vpc_id, service_name, endpoint_type, state,
                 subnet_ids, network_interface_ids, region, account_id, taken_at, taken_at_source,
                 source_file, ingested_at)
             VALUES (?, ?, ?, ?, ?, from_json(?, '[\"VARCHAR\"]'), from_json(?, '[\"VARCHAR\"]'),
                     ?, ?, ?, ?, ?, ?)",
        )?;
        let mut subnet = conn.prepare(
            "INSERT INTO subnets (subnet_id, vpc_id, cidr_block, ipv6_cidr_blocks,
                 availability_zone, region, account_id, taken_at, taken_at_source, source_file,
                 ingested_at)
             VALUES (?, ?, ?, from_json(?, '[\"VARCHAR\"]'), ?, ?, ?, ?, ?, ?, ?)",
        )?;
        for f in &files {
            summary.files += 1;
            let known: i64 = conn.query_row(
                "SELECT count(*) FROM network_snapshots WHERE content_hash = ? AND taken_at = ?",
                params![f.hash, ts(f.taken_at_us)],
                |r| r.get(0),
            )?;
            if known > 0 || !seen.insert((f.hash.clone(), f.taken_at_us)) {
                summary.files_known += 1;
                continue;
            }
            let taken = ts(f.taken_at_us);
            let snap = &f.snapshot;
            for i in &snap.interfaces {
                app_eni.append_row(params![
                    i.eni_id,
                    i.interface_type,
                    i.vpc_id,
                    i.subnet_id,
                    i.availability_zone,
                    i.region,
                    i.account_id,
                    i.description,
                    i.status,
                    i.requester_id,
                    i.requester_managed,
                    i.instance_id,
                    i.instance_owner_id,
                    i.private_ip,
                    i.public_ip,
                    i.public_ip_owner_id,
                    i.task_attachment_id,
                    i.task_attachment_arn,
                    taken,
                    f.taken_at_source,
                    f.source,
                    ts(now)
                ])?;
                for a in &i.addresses {
                    app_addr.append_row(params![
                        i.eni_id,
                        a.address,
                        a.family,
                        a.kind,
                        a.is_primary,
                        a.private_address,
                        i.vpc_id,
                        i.subnet_id,
                        i.region,
                        i.account_id,
                        i.interface_type,
                        i.instance_id,
                        i.task_attachment_id,
                        taken,
                        f.source
                    ])?;
                    summary.addresses += 1;
                }
                summary.interfaces += 1;
            }
            for e in &snap.endpoints {
                endpoint.execute(params![
                    e.vpc_endpoint_id,
                    e.vpc_id,
                    e.service_name,
                    e.endpoint_type,
                    e.state,
                    serde_json::to_string(&e.subnet_ids)?,
                    serde_json::to_string(&e.network_interface_ids)?,
                    e.region,
                    e.account_id,
                    taken,
                    f.taken_at_source,
                    f.source,
                    ts(now)
                ])?;
                summary.endpoints += 1;
            }
            for n in &snap.subnets {
                subnet.execute(params![
                    n.subnet_id,
                    n.vpc_id,
                    n.cidr_block,
                    serde_json::to_string(&n.ipv6_cidr_blocks)?,
                    n.availability_zone,
                    n.region,
                    n.account_id,
                    taken,
                    f.taken_at_source,
                    f.source,
                    ts(now)
                ])?;
                summary.subnets += 1;
            }
            conn.execute(
                "INSERT INTO network_snapshots (source_file, content_hash, kinds, items, taken_at,
                     taken_at_source, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                params![
                    f.source,
                    f.hash,
                    snap.kinds.join(","),
                    (snap.interfaces.len() + snap.endpoints.len() + snap.subnets.len()) as i64,
                    taken,
                    f.taken_at_source,
                    ts(now)
                ],
            )?;
        }
        app_eni.flush()?;
        app_addr.flush()?;
        Ok(())
    })?;
    Ok(summary)
}

fn paths_text(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn regions_come_from_zone_names() {
        assert_eq!(region_of_zone("us-east-1a").as_deref(), Some("us-east-1"));
        assert_eq!(
            region_of_zone("us-gov-west-1b").as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(
            region_of_zone("us-west-2-lax-1a").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(
            region_of_zone("ap-southeast-2c").as_deref(),
            Some("ap-southeast-2")
        );
        assert_eq!(region_of_zone("use1-az4"), None);
        assert_eq!(region_of_zone("nonsense"), None);
        assert_eq!(
            region_of_service("com.amazonaws.eu-west-1.s3").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_of_service("com.amazonaws.vpce.us-east-2.vpce-svc-0123").as_deref(),
            Some("us-east-2")
        );
        assert_eq!(region_of_service("com.example.service"), None);
    }

    #[test]
    fn task_attachments_come_from_the_description_arn_only() {
        assert_eq!(
            task_attachment(
                "arn:aws:ecs:eu-west-2:583957734022:attachment/665d4fbe-1dd1-426e-9f20-b8af371fcf97"
            )
            .as_deref(),
            Some("665d4fbe-1dd1-426e-9f20-b8af371fcf97")
        );
        assert_eq!(task_attachment("Interface for NAT Gateway nat-0abc"), None);
        assert_eq!(
            task_attachment("arn:aws:ecs:eu-west-2:583957734022:task/x/665d4fbe"),
            None
        );
        assert_eq!(
            task_attachment("arn:aws:ecs:eu-west-2:1:attachment/not a uuid"),
            None
        );
    }

    #[test]
    fn every_address_of_an_eni_is_listed_once() {
        let v = json!({"NetworkInterfaceId": "eni-1", "AvailabilityZone": "eu-west-1b",
            "OwnerId": "111122223333", "PrivateIpAddress": "10.0.1.5",
            "Association": {"PublicIp": "203.0.113.5", "IpOwnerId": "amazon"},
            "PrivateIpAddresses": [
                {"PrivateIpAddress": "10.0.1.5", "Primary": true, "Association": {"PublicIp": "203.0.113.5"}},
                {"PrivateIpAddress": "10.0.1.6", "Primary": false}],
            "Ipv6Address": "2A05:D018::1",
            "Ipv6Addresses": [{"Ipv6Address": "2a05:d018::1", "IsPrimaryIpv6": true}, {"Ipv6Address": "2a05:d018::2"}]});
        let i = parse_interface(&v, &Options::default()).unwrap();
        assert_eq!(i.region.as_deref(), Some("eu-west-1"));
        let got: Vec<(&str, &str, Option<&str>)> = i
            .addresses
            .iter()
            .map(|a| (a.kind, a.address.as_str(), a.private_address.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("private", "10.0.1.5", None),
                ("public", "203.0.113.5", Some("10.0.1.5")),
                ("private", "10.0.1.6", None),
                ("ipv6", "2a05:d018::1", None),
                ("ipv6", "2a05:d018::2", None),
            ]
        );
    }
}
