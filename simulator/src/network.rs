//! The network inventory: `aws ec2 describe-network-interfaces`, `describe-subnets` and
//! `describe-vpc-endpoints` output (the CLI's JSON, four-space indent) per region and account,
//! as an hourly inventory job would save it (formats.md, "Network inventory").
//!
//! Each snapshot is a directory `network/<YYYYMMDDTHHMMSSZ>/<account>/<region>/` named by the
//! time it was taken (the files themselves carry no time; `credtrail ingest network --taken-at`
//! is given it). A snapshot shows what exists at that instant: every cluster's NAT gateway ENIs
//! (their Elastic IPs are the account's egress), the hosts' primary ENIs, the interface VPC
//! endpoints' ENIs, and the ENI of every `awsvpc` task created and not yet stopped, with the
//! task's attachment ARN as its Description, its public IP (a Fargate task in a public subnet)
//! and its IPv6 address (dual-stack). Gone ENIs are simply absent, as in AWS.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::clock::{compact_second, rfc3339_string};
use super::cluster::{Network, REGIONS, Task, World, ip_str, ip6_str};
use super::ecs::{AZ_LETTERS, private_dns};
use super::rng::{Rng, stream};
use super::write_pretty;

/// Snapshots are taken every hour at this many seconds past the hour.
pub const SNAPSHOT_OFFSET: i64 = 35 * 60;
pub const SNAPSHOT_PERIOD: i64 = 3600;

/// The AWS account ECS uses as the requester of the task ENIs it creates.
const ECS_REQUESTER: &str = "578734482556";

/// One snapshot written.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The snapshot's directory (holding `<account>/<region>/describe-*.json`).
    pub dir: PathBuf,
    /// When it was taken (Unix seconds).
    pub taken_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub snapshots: Vec<Snapshot>,
    pub files: u64,
    /// ENI entries over every snapshot.
    pub interfaces: u64,
}

/// When snapshots are taken, in time order.
pub fn snapshot_times(w: &World) -> Vec<i64> {
    (0..)
        .map(|k| w.start + SNAPSHOT_OFFSET + k * SNAPSHOT_PERIOD)
        .take_while(|&t| t < w.end)
        .collect()
}

/// Whether a snapshot taken at `at` lists the task's ENI (created, not yet stopped).
pub fn eni_listed(t: &Task, at: i64) -> bool {
    t.eni.is_some() && t.created_ms.div_euclid(1000) <= at && t.stopped().is_none_or(|s| at < s)
}

/// Whether the inventory can vouch for a task's own egress: a bridge task's is its host's NAT
/// gateway (listed in every snapshot), an `awsvpc` task's needs its ENI in some snapshot.
pub fn vouches_for(w: &World, task: usize) -> bool {
    let t = &w.tasks[task];
    w.taskdefs[t.taskdef].network == Network::Bridge
        || snapshot_times(w).into_iter().any(|at| eni_listed(t, at))
}

fn id(rng: &mut Rng, prefix: &str) -> String {
    format!("{prefix}-0{}", rng.hex(16))
}

fn az(region: &str, az: usize) -> String {
    format!("{region}{}", AZ_LETTERS[az])
}

/// A `10.x.y.z` address's private DNS name and its `PrivateIpAddresses` entry.
fn private_entry(ip: u32, region: &str, public: Option<&Value>) -> Value {
    let mut v = json!({
        "Primary": true,
        "PrivateDnsName": private_dns(ip, region),
        "PrivateIpAddress": ip_str(ip),
    });
    if let Some(a) = public {
        v["Association"] = a.clone();
    }
    v
}

fn public_dns(ip: u32, region: &str) -> String {
    let [a, b, c, d] = ip.to_be_bytes();
    if region == "us-east-1" {
        format!("ec2-{a}-{b}-{c}-{d}.compute-1.amazonaws.com")
    } else {
        format!("ec2-{a}-{b}-{c}-{d}.{region}.compute.amazonaws.com")
    }
}

#[expect(clippy::too_many_arguments, reason = "one argument per ENI field")]
fn eni(
    w: &World,
    region: &str,
    zone: usize,
    eni_id: &str,
    mac: &str,
    kind: &str,
    description: &str,
    ip: u32,
    subnet: &str,
    vpc: &str,
    requester: Option<&str>,
    attachment: Value,
    association: Option<Value>,
    ipv6: Option<u128>,
) -> Value {
    let mut v = json!({
        "Attachment": attachment,
        "AvailabilityZone": az(region, zone),
        "Description": description,
        "Groups": [],
        "InterfaceType": kind,
        "Ipv6Addresses": ipv6.map(|a| vec![json!({"Ipv6Address": ip6_str(a), "IsPrimaryIpv6": false})])
            .unwrap_or_default(),
        "MacAddress": mac,
        "NetworkInterfaceId": eni_id,
        "OwnerId": w.account,
        "PrivateDnsName": private_dns(ip, region),
        "PrivateIpAddress": ip_str(ip),
        "PrivateIpAddresses": [private_entry(ip, region, association.as_ref())],
        "RequesterManaged": requester.is_some(),
        "SourceDestCheck": kind != "nat_gateway",
        "Status": "in-use",
        "SubnetId": subnet,
        "TagSet": [],
        "VpcId": vpc,
    });
    if let Some(a) = association {
        v["Association"] = a;
    }
    if let Some(r) = requester {
        v["RequesterId"] = json!(r);
    }
    v
}

fn mac(rng: &mut Rng) -> String {
    let b: Vec<String> = (0..5).map(|_| rng.hex(2)).collect();
    format!("0a:{}", b.join(":"))
}

/// The NAT gateway of each zone: (gateway ID, ENI ID, MAC, private address in the public subnet).
fn nat_gateways(w: &World, c: usize) -> [(String, String, String, u32); 3] {
    let octet = w.clusters[c].vpc_octet;
    [0, 1, 2].map(|z| {
        let mut rng = Rng::derive(w.seed, &[stream::NETWORK, 2, c as u64, z as u64]);
        (
            id(&mut rng, "nat"),
            id(&mut rng, "eni"),
            mac(&mut rng),
            u32::from_be_bytes([10, octet, 96 + z as u8, 254]),
        )
    })
}

/// The interface endpoint's ENI in each zone: (ENI ID, MAC, private address).
fn endpoint_enis(w: &World, e: usize) -> [(String, String, u32); 3] {
    let octet = w.clusters[w.endpoints[e].cluster].vpc_octet;
    [0, 1, 2].map(|z| {
        let mut rng = Rng::derive(w.seed, &[stream::NETWORK, 4, e as u64, z as u64]);
        (
            id(&mut rng, "eni"),
            mac(&mut rng),
            u32::from_be_bytes([10, octet, z as u8 * 32 + 31, 250 - e as u8 % 64]),
        )
    })
}

fn interface_endpoint(w: &World, e: usize) -> bool {
    w.endpoints[e].service != "s3"
}

/// `describe-network-interfaces` of one region at `at`.
fn network_interfaces(w: &World, region: u8, at: i64) -> Value {
    let name = REGIONS[region as usize];
    let mut enis = Vec::new();
    for (c, cl) in w.clusters.iter().enumerate() {
        if cl.region != region {
            continue;
        }
        for (z, (nat, eni_id, mac, ip)) in nat_gateways(w, c).into_iter().enumerate() {
            let mut rng = Rng::derive(w.seed, &[stream::NETWORK, 5, c as u64, z as u64]);
            let public = cl.nat[z];
            let assoc = json!({
                "AllocationId": id(&mut rng, "eipalloc"),
                "AssociationId": id(&mut rng, "eipassoc"),
                "IpOwnerId": w.account,
                "PublicDnsName": public_dns(public, name),
                "PublicIp": ip_str(public),
            });
            enis.push(eni(
                w,
                name,
                z,
                &eni_id,
                &mac,
                "nat_gateway",
                &format!("Interface for NAT Gateway {nat}"),
                ip,
                &cl.public_subnets[z],
                &cl.vpc_id,
                Some("AROAZ6IHGV4BKJ7XNATGW:nat-gateway"),
                json!({"AttachmentId": id(&mut rng, "ela-attach"), "DeleteOnTermination": false,
                       "DeviceIndex": 1, "InstanceOwnerId": "amazon-aws", "Status": "attached"}),
                Some(assoc),
                None,
            ));
        }
        for &e in &cl.endpoints {
            if !interface_endpoint(w, e) {
                continue;
            }
            for (z, (eni_id, mac, ip)) in endpoint_enis(w, e).into_iter().enumerate() {
                let mut rng = Rng::derive(w.seed, &[stream::NETWORK, 6, e as u64, z as u64]);
                enis.push(eni(
                    w,
                    name,
                    z,
                    &eni_id,
                    &mac,
                    "vpc_endpoint",
                    &format!("VPC Endpoint Interface {}", w.endpoints[e].id),
                    ip,
                    &cl.subnets[z],
                    &cl.vpc_id,
                    Some("AROAZ6IHGV4BKJ7XVPCE:vpce"),
                    json!({"AttachmentId": id(&mut rng, "ela-attach"), "DeleteOnTermination": false,
                           "DeviceIndex": 1, "InstanceOwnerId": "amazon-aws", "Status": "attached"}),
                    None,
                    None,
                ));
            }
        }
        for &h in &cl.hosts {
            let host = &w.hosts[h];
            let mut rng = Rng::derive(w.seed, &[stream::NETWORK, 3, h as u64]);
            enis.push(eni(
                w,
                name,
                host.az,
                &id(&mut rng, "eni"),
                &mac(&mut rng),
                "interface",
                "",
                host.private_ip,
                &cl.subnets[host.az],
                &cl.vpc_id,
                None,
                json!({"AttachTime": rfc3339_string(w.start - 86_400), "AttachmentId": id(&mut rng, "eni-attach"),
                       "DeleteOnTermination": true, "DeviceIndex": 0, "InstanceId": host.instance_id,
                       "InstanceOwnerId": w.account, "NetworkCardIndex": 0, "Status": "attached"}),
                None,
                None,
            ));
        }
    }
    for (ti, t) in w.tasks.iter().enumerate() {
        let cl = &w.clusters[t.cluster];
        if cl.region != region || !eni_listed(t, at) {
            continue;
        }
        let Some(e) = &t.eni else { continue };
        let host = &w.hosts[t.host];
        let mut rng = Rng::derive(w.seed, &[stream::NETWORK, 7, ti as u64]);
        let attach_id = id(&mut rng, "eni-attach");
        let attach_time = rfc3339_string(t.created_ms.div_euclid(1000) + 1);
        let attachment = if t.fargate {
            json!({"AttachTime": attach_time, "AttachmentId": attach_id, "DeleteOnTermination": false,
                   "DeviceIndex": 1, "InstanceOwnerId": ECS_REQUESTER, "NetworkCardIndex": 0,
                   "Status": "attached"})
        } else {
            json!({"AttachTime": attach_time, "AttachmentId": attach_id, "DeleteOnTermination": false,
                   "DeviceIndex": 1, "InstanceId": host.instance_id, "InstanceOwnerId": w.account,
                   "NetworkCardIndex": 0, "Status": "attached"})
        };
        let assoc = t.public_ip.map(|p| {
            json!({"IpOwnerId": "amazon", "PublicDnsName": public_dns(p, name), "PublicIp": ip_str(p)})
        });
        enis.push(eni(
            w,
            name,
            host.az,
            &e.id,
            &e.mac,
            "interface",
            &format!(
                "arn:aws:ecs:{name}:{}:attachment/{}",
                w.account, e.attachment_id
            ),
            e.ip,
            &e.subnet,
            &cl.vpc_id,
            Some(ECS_REQUESTER),
            attachment,
            assoc,
            t.ipv6,
        ));
    }
    json!({ "NetworkInterfaces": enis })
}

/// `describe-subnets` of one region: each cluster's private and public subnets.
fn subnets(w: &World, region: u8) -> Value {
    let name = REGIONS[region as usize];
    let mut out = Vec::new();
    for (c, cl) in w.clusters.iter().enumerate() {
        if cl.region != region {
            continue;
        }
        for (z, letter) in AZ_LETTERS.iter().enumerate() {
            for public in [false, true] {
                let mut rng = Rng::derive(
                    w.seed,
                    &[stream::NETWORK, 8, c as u64, z as u64, u64::from(public)],
                );
                let (subnet, cidr) = if public {
                    (
                        &cl.public_subnets[z],
                        format!("10.{}.{}.0/24", cl.vpc_octet, 96 + z),
                    )
                } else {
                    (
                        &cl.subnets[z],
                        format!("10.{}.{}.0/19", cl.vpc_octet, z * 32),
                    )
                };
                let v6 = cl.ipv6_prefix | ((z as u128 * 2 + u128::from(public)) << 64);
                out.push(json!({
                    "AvailabilityZone": format!("{name}{letter}"),
                    "AvailabilityZoneId": format!("{}-az{}", region_zone_prefix(name), z + 1),
                    "AvailableIpAddressCount": if public { 240 } else { 8_000 },
                    "CidrBlock": cidr,
                    "DefaultForAz": false,
                    "MapPublicIpOnLaunch": public,
                    "MapCustomerOwnedIpOnLaunch": false,
                    "State": "available",
                    "SubnetId": subnet,
                    "VpcId": cl.vpc_id,
                    "OwnerId": w.account,
                    "AssignIpv6AddressOnCreation": false,
                    "Ipv6CidrBlockAssociationSet": [{
                        "AssociationId": id(&mut rng, "subnet-cidr-assoc"),
                        "Ipv6CidrBlock": format!("{}/64", ip6_str(v6)),
                        "Ipv6CidrBlockState": {"State": "associated"},
                    }],
                    "Tags": [{"Key": "Name", "Value": format!("{}-{}-{}", cl.name,
                        if public { "public" } else { "private" }, letter)}],
                    "SubnetArn": format!("arn:aws:ec2:{name}:{}:subnet/{subnet}", w.account),
                    "EnableDns64": false,
                    "Ipv6Native": false,
                    "PrivateDnsNameOptionsOnLaunch": {"HostnameType": "ip-name",
                        "EnableResourceNameDnsARecord": false, "EnableResourceNameDnsAAAARecord": false},
                }));
            }
        }
    }
    json!({ "Subnets": out })
}

fn region_zone_prefix(region: &str) -> &'static str {
    match region {
        "us-east-1" => "use1",
        "eu-west-1" => "euw1",
        _ => "usw2",
    }
}

/// `describe-vpc-endpoints` of one region: S3's gateway endpoint and the interface endpoints.
fn vpc_endpoints(w: &World, region: u8) -> Value {
    let name = REGIONS[region as usize];
    let mut out = Vec::new();
    for (e, ep) in w.endpoints.iter().enumerate() {
        let cl = &w.clusters[ep.cluster];
        if cl.region != region {
            continue;
        }
        let mut rng = Rng::derive(w.seed, &[stream::NETWORK, 9, e as u64]);
        let interface = interface_endpoint(w, e);
        let (enis, subnets): (Vec<String>, Vec<String>) = if interface {
            endpoint_enis(w, e)
                .into_iter()
                .enumerate()
                .map(|(z, (id, _, _))| (id, cl.subnets[z].clone()))
                .unzip()
        } else {
            (Vec::new(), Vec::new())
        };
        out.push(json!({
            "VpcEndpointId": ep.id,
            "VpcEndpointType": if interface { "Interface" } else { "Gateway" },
            "VpcId": cl.vpc_id,
            "ServiceName": format!("com.amazonaws.{name}.{}", ep.service),
            "State": "available",
            "PolicyDocument": "{\"Version\":\"2008-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"*\",\"Resource\":\"*\"}]}",
            "RouteTableIds": if interface { Vec::new() } else {
                (0..3).map(|_| id(&mut rng, "rtb")).collect::<Vec<_>>() },
            "SubnetIds": subnets,
            "Groups": if interface { json!([{"GroupId": id(&mut rng, "sg"), "GroupName": "vpc-endpoints"}]) } else { json!([]) },
            "IpAddressType": "ipv4",
            "DnsOptions": {"DnsRecordIpType": "ipv4"},
            "PrivateDnsEnabled": interface,
            "RequesterManaged": false,
            "NetworkInterfaceIds": enis,
            "DnsEntries": [],
            "CreationTimestamp": rfc3339_string(w.start - 30 * 86_400).replace('Z', ".000Z"),
            "Tags": [],
            "OwnerId": w.account,
        }));
    }
    json!({ "VpcEndpoints": out })
}

/// Writes every snapshot under `out/network/`.
pub fn write(w: &World, out: &Path) -> Result<Stats> {
    let mut stats = Stats::default();
    let mut regions: Vec<u8> = w.clusters.iter().map(|c| c.region).collect();
    regions.sort_unstable();
    regions.dedup();
    for at in snapshot_times(w) {
        let dir = out.join("network").join(compact_second(at));
        for &r in &regions {
            let d = dir.join(&w.account).join(REGIONS[r as usize]);
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            let interfaces = network_interfaces(w, r, at);
            stats.interfaces += interfaces["NetworkInterfaces"]
                .as_array()
                .map_or(0, |a| a.len() as u64);
            write_pretty(&d.join("describe-network-interfaces.json"), &interfaces)?;
            write_pretty(&d.join("describe-subnets.json"), &subnets(w, r))?;
            write_pretty(&d.join("describe-vpc-endpoints.json"), &vpc_endpoints(w, r))?;
            stats.files += 3;
        }
        stats.snapshots.push(Snapshot { dir, taken_at: at });
    }
    Ok(stats)
}
