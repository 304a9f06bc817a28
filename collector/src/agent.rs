//! Client for the ECS agent's introspection API (`http://localhost:51678/v1/...`).
//!
//! The collector polls `/v1/tasks` to record which tasks (and containers, and addresses) ran on
//! this container instance, and `/v1/metadata` once to learn the cluster and instance ARN.
//!
//! Parsing is lenient on purpose: the agent's response types (`ecs-agent/introspection/v1/
//! response.go`) grow fields over time and use `omitempty`, so unknown fields are ignored and
//! missing or `null` fields become `None` or an empty string. Only a body that is not JSON, or
//! whose `Tasks` key is absent, is an error: treating such a body as "no tasks" would make every
//! known task look stopped.
//!
//! What the agent actually reports (checked against `agent/handlers/v1/response.go`): only tasks
//! with an ENI (`awsvpc`) get a `Networks` entry; bridge- and host-mode containers have none.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// Largest response body read from the agent; a host runs at most a few hundred tasks.
const MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;

/// How many bytes of an error response body are quoted in the error message.
const ERROR_BODY_EXCERPT: usize = 200;

/// One row of the task inventory: a (task, container, network, IPv4 address) combination.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InventoryRow {
    pub task_arn: String,
    pub family: String,
    /// Task definition revision (the agent calls it `Version`).
    pub revision: String,
    pub known_status: String,
    /// Empty when the agent omits it (it does so while a task is settling).
    pub desired_status: String,
    pub container_name: Option<String>,
    pub docker_id: Option<String>,
    pub network_mode: Option<String>,
    pub ipv4_address: Option<String>,
}

/// The agent's own metadata (`GET /v1/metadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMetadata {
    pub cluster: Option<String>,
    /// `null` until the instance has registered with the cluster.
    pub container_instance_arn: Option<String>,
    /// Free text such as `Amazon ECS Agent - v1.89.2 (0b5c2d3e)`.
    pub version: Option<String>,
}

// Wire types. Every field is optional so that `null`, `omitempty` and renamed fields never fail
// the whole response; unknown fields are ignored (serde's default).

#[derive(Deserialize)]
struct TasksResponse {
    #[serde(rename = "Tasks", default, deserialize_with = "present")]
    tasks: Option<Option<Vec<Option<TaskResponse>>>>,
}

#[derive(Deserialize)]
struct TaskResponse {
    #[serde(rename = "Arn", default)]
    arn: Option<String>,
    #[serde(rename = "DesiredStatus", default)]
    desired_status: Option<String>,
    #[serde(rename = "KnownStatus", default)]
    known_status: Option<String>,
    #[serde(rename = "Family", default)]
    family: Option<String>,
    #[serde(rename = "Version", default)]
    version: Option<Scalar>,
    #[serde(rename = "Containers", default)]
    containers: Option<Vec<Option<ContainerResponse>>>,
}

#[derive(Deserialize)]
struct ContainerResponse {
    #[serde(rename = "DockerId", default)]
    docker_id: Option<String>,
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "Networks", default)]
    networks: Option<Vec<Option<Network>>>,
}

#[derive(Deserialize)]
struct Network {
    #[serde(rename = "NetworkMode", default)]
    network_mode: Option<String>,
    #[serde(rename = "IPv4Addresses", default)]
    ipv4_addresses: Option<Vec<Option<String>>>,
}

#[derive(Deserialize)]
struct MetadataResponse {
    #[serde(rename = "Cluster", default)]
    cluster: Option<String>,
    #[serde(rename = "ContainerInstanceArn", default)]
    container_instance_arn: Option<String>,
    #[serde(rename = "Version", default)]
    version: Option<Scalar>,
}

/// A string the agent might one day send as a number (`"Version": 42`); both are accepted.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// Distinguishes a key that is present (even as `null`) from one that is absent: present keys
/// deserialize to `Some(..)`, absent ones fall back to `default` (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// `None` for a missing or empty string (the agent sends `""` for a container not yet created).
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.is_empty())
}

/// Parses a `GET /v1/tasks` body into inventory rows.
///
/// One row per (task, container, network, IPv4 address); a container with no networks or no
/// addresses gives one row with `None` there; a task with no containers gives one row with the
/// container fields `None`. Rows keep the response order.
pub fn parse_tasks(body: &[u8]) -> Result<Vec<InventoryRow>> {
    let response: TasksResponse =
        serde_json::from_slice(body).context("cannot parse tasks response")?;
    // `{"Tasks":null}` is what the agent writes for an empty list; an absent key means this is
    // not a tasks response at all.
    let Some(tasks) = response.tasks else {
        bail!("tasks response has no \"Tasks\" field");
    };

    let mut rows = Vec::new();
    for task in tasks.into_iter().flatten().flatten() {
        let template = InventoryRow {
            task_arn: task.arn.unwrap_or_default(),
            family: task.family.unwrap_or_default(),
            revision: task.version.map(Scalar::into_string).unwrap_or_default(),
            known_status: task.known_status.unwrap_or_default(),
            desired_status: task.desired_status.unwrap_or_default(),
            container_name: None,
            docker_id: None,
            network_mode: None,
            ipv4_address: None,
        };
        let containers: Vec<ContainerResponse> =
            task.containers.into_iter().flatten().flatten().collect();
        if containers.is_empty() {
            rows.push(template);
            continue;
        }
        for container in containers {
            let container_row = InventoryRow {
                container_name: non_empty(container.name),
                docker_id: non_empty(container.docker_id),
                ..template.clone()
            };
            let networks: Vec<Network> =
                container.networks.into_iter().flatten().flatten().collect();
            if networks.is_empty() {
                rows.push(container_row);
                continue;
            }
            for network in networks {
                let network_row = InventoryRow {
                    network_mode: non_empty(network.network_mode),
                    ..container_row.clone()
                };
                let addresses: Vec<String> = network
                    .ipv4_addresses
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|a| !a.is_empty())
                    .collect();
                if addresses.is_empty() {
                    rows.push(network_row);
                    continue;
                }
                for address in addresses {
                    rows.push(InventoryRow {
                        ipv4_address: Some(address),
                        ..network_row.clone()
                    });
                }
            }
        }
    }
    Ok(rows)
}

/// Parses a `GET /v1/metadata` body.
pub fn parse_metadata(body: &[u8]) -> Result<AgentMetadata> {
    let response: MetadataResponse =
        serde_json::from_slice(body).context("cannot parse metadata response")?;
    Ok(AgentMetadata {
        cluster: non_empty(response.cluster),
        container_instance_arn: non_empty(response.container_instance_arn),
        version: non_empty(response.version.map(Scalar::into_string)),
    })
}

/// Blocking client for the agent's introspection API.
pub struct AgentClient {
    base_url: String,
    agent: ureq::Agent,
}

impl AgentClient {
    /// `base_url` is like `http://localhost:51678`; `timeout` bounds each whole request
    /// (connect, send, receive).
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Status codes are checked here so the error can quote the body.
            .http_status_as_error(false)
            // The agent is on loopback: an HTTP_PROXY in the environment must not apply.
            .proxy(None)
            .max_redirects(0)
            .user_agent(concat!("credtrail-collector/", env!("CARGO_PKG_VERSION")))
            .build();
        AgentClient {
            base_url: base_url.trim_end_matches('/').to_owned(),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// The task inventory (`GET /v1/tasks`).
    pub fn tasks(&self) -> Result<Vec<InventoryRow>> {
        let url = self.url("/v1/tasks");
        let body = self.get(&url)?;
        parse_tasks(&body).with_context(|| format!("bad response from ECS agent at {url}"))
    }

    /// The agent's cluster, instance ARN and version (`GET /v1/metadata`).
    pub fn metadata(&self) -> Result<AgentMetadata> {
        let url = self.url("/v1/metadata");
        let body = self.get(&url)?;
        parse_metadata(&body).with_context(|| format!("bad response from ECS agent at {url}"))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// GETs `url` and returns the body of a 2xx response; anything else is an error naming the
    /// URL (and the status and the start of the body, when there is a response).
    fn get(&self, url: &str) -> Result<Vec<u8>> {
        let response = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .call()
            .with_context(|| format!("cannot reach ECS agent at {url}"))?;
        let status = response.status();
        let mut body = Vec::new();
        let read = response
            .into_body()
            .into_with_config()
            .limit(MAX_BODY_BYTES)
            .reader()
            .read_to_end(&mut body);
        if !status.is_success() {
            let excerpt = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_EXCERPT)])
                .trim()
                .to_owned();
            bail!("ECS agent at {url} answered HTTP {status}: {excerpt}");
        }
        read.with_context(|| format!("cannot read response body from ECS agent at {url}"))?;
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIDGE: &[u8] = include_bytes!("../tests/fixtures/agent/v1_tasks_bridge.json");
    const AWSVPC: &[u8] = include_bytes!("../tests/fixtures/agent/v1_tasks_awsvpc.json");
    const METADATA: &[u8] = include_bytes!("../tests/fixtures/agent/v1_metadata.json");

    fn row(
        task_arn: &str,
        family: &str,
        revision: &str,
        status: (&str, &str),
        container: Option<(&str, &str)>,
        network: Option<(&str, Option<&str>)>,
    ) -> InventoryRow {
        InventoryRow {
            task_arn: task_arn.to_owned(),
            family: family.to_owned(),
            revision: revision.to_owned(),
            known_status: status.0.to_owned(),
            desired_status: status.1.to_owned(),
            container_name: container.map(|c| c.0.to_owned()),
            docker_id: container.map(|c| c.1.to_owned()).filter(|d| !d.is_empty()),
            network_mode: network.map(|n| n.0.to_owned()),
            ipv4_address: network.and_then(|n| n.1.map(str::to_owned)),
        }
    }

    const BILLING: &str =
        "arn:aws:ecs:us-east-1:111122223333:task/prod/0b1c2d3e4f5a46b7a8c9d0e1f2a3b4c5";
    const WORKER: &str =
        "arn:aws:ecs:us-east-1:111122223333:task/prod/7e8f9a0b1c2d4e3f8a9b0c1d2e3f4a5b";
    const PAYMENTS: &str =
        "arn:aws:ecs:us-east-1:111122223333:task/prod/5d6e7f8091a24b3c9d4e5f60718293a4";
    const MIGRATE: &str =
        "arn:aws:ecs:us-east-1:111122223333:task/prod/c4d5e6f708194a2b8c3d4e5f6a7b8c9d";
    const PENDING: &str =
        "arn:aws:ecs:us-east-1:111122223333:task/prod/e1f2a3b4c5d64e7f9a0b1c2d3e4f5a6b";

    #[test]
    fn bridge_fixture_gives_one_row_per_container_without_networks() {
        let rows = parse_tasks(BRIDGE).unwrap();
        assert_eq!(
            rows,
            vec![
                row(
                    BILLING,
                    "billing-api",
                    "42",
                    ("RUNNING", "RUNNING"),
                    Some((
                        "app",
                        "3f1c9b2e7d4a5c6b8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"
                    )),
                    None,
                ),
                row(
                    WORKER,
                    "report-worker",
                    "7",
                    ("RUNNING", "RUNNING"),
                    Some((
                        "worker",
                        "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"
                    )),
                    None,
                ),
                row(
                    WORKER,
                    "report-worker",
                    "7",
                    ("RUNNING", "RUNNING"),
                    Some((
                        "log-router",
                        "5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c"
                    )),
                    None,
                ),
            ]
        );
    }

    #[test]
    fn awsvpc_fixture_covers_two_containers_stopped_and_pending_tasks() {
        let rows = parse_tasks(AWSVPC).unwrap();
        let vpc = Some(("awsvpc", Some("10.0.1.23")));
        assert_eq!(
            rows,
            vec![
                row(
                    PAYMENTS,
                    "payments",
                    "3",
                    ("RUNNING", "RUNNING"),
                    Some((
                        "web",
                        "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
                    )),
                    vpc,
                ),
                row(
                    PAYMENTS,
                    "payments",
                    "3",
                    ("RUNNING", "RUNNING"),
                    Some((
                        "envoy",
                        "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
                    )),
                    vpc,
                ),
                row(
                    MIGRATE,
                    "db-migrate",
                    "12",
                    ("STOPPED", "STOPPED"),
                    Some((
                        "migrate",
                        "7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b"
                    )),
                    None,
                ),
                row(
                    PENDING,
                    "payments",
                    "4",
                    ("PENDING", "RUNNING"),
                    Some(("web", "")),
                    Some(("awsvpc", Some("10.0.2.57"))),
                ),
            ]
        );
    }

    #[test]
    fn spec_example_with_bridge_networks() {
        // formats.md section 5 shows a bridge container with a `Networks` entry; accept that shape.
        let body = br#"{"Tasks":[{"Arn":"arn:aws:ecs:us-east-1:111122223333:task/prod/0b1c","DesiredStatus":"RUNNING","KnownStatus":"RUNNING",
  "Family":"billing-api","Version":"42",
  "Containers":[{"DockerId":"d0","DockerName":"ecs-billing-api-42-app-x","Name":"app","Image":"i","ImageID":"sha256:0",
    "CreatedAt":"2025-01-14T09:12:01Z","StartedAt":"2025-01-14T09:12:03Z","Networks":[{"NetworkMode":"bridge","IPv4Addresses":["172.17.0.5"]}]}]}]}"#;
        let rows = parse_tasks(body).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].network_mode.as_deref(), Some("bridge"));
        assert_eq!(rows[0].ipv4_address.as_deref(), Some("172.17.0.5"));
        assert_eq!(rows[0].docker_id.as_deref(), Some("d0"));
    }

    #[test]
    fn one_row_per_network_and_address() {
        let body = br#"{"Tasks":[{"Arn":"t","Family":"f","Version":"1","KnownStatus":"RUNNING",
            "Containers":[{"Name":"c","DockerId":"d","Networks":[
                {"NetworkMode":"awsvpc","IPv4Addresses":["10.0.0.1","10.0.0.2"]},
                {"NetworkMode":"bridge"},
                {"NetworkMode":"bridge","IPv4Addresses":null}]}]}]}"#;
        let rows = parse_tasks(body).unwrap();
        let pairs: Vec<_> = rows
            .iter()
            .map(|r| (r.network_mode.as_deref(), r.ipv4_address.as_deref()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (Some("awsvpc"), Some("10.0.0.1")),
                (Some("awsvpc"), Some("10.0.0.2")),
                (Some("bridge"), None),
                (Some("bridge"), None),
            ]
        );
        assert!(rows.iter().all(|r| r.desired_status.is_empty()));
    }

    #[test]
    fn lenient_about_nulls_missing_and_unknown_fields() {
        let body = br#"{"Tasks":[
            {"Arn":"a","Family":"f","Version":7,"KnownStatus":"RUNNING","Containers":[
                {"Name":"c","DockerId":"d","Networks":null,"Shiny":{"x":1}}]},
            {"Arn":"b","Containers":null},
            {"Arn":"c","Containers":[]},
            {"Arn":"d"},
            null
        ],"Extra":true}"#;
        let rows = parse_tasks(body).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].revision, "7");
        assert_eq!(rows[0].container_name.as_deref(), Some("c"));
        assert_eq!(rows[0].network_mode, None);
        for (row, arn) in rows[1..].iter().zip(["b", "c", "d"]) {
            assert_eq!(row.task_arn, arn);
            assert_eq!(row.family, "");
            assert_eq!(row.container_name, None);
            assert_eq!(row.docker_id, None);
        }
    }

    #[test]
    fn empty_task_lists() {
        assert!(parse_tasks(br#"{"Tasks":[]}"#).unwrap().is_empty());
        assert!(parse_tasks(br#"{"Tasks":null}"#).unwrap().is_empty());
    }

    #[test]
    fn rejects_bodies_that_are_not_task_lists() {
        for body in [
            &b""[..],
            b"not json",
            b"[]",
            b"{}",
            br#"{"Arn":"x"}"#,
            b"{\"Tasks\":[1]}",
        ] {
            let err = parse_tasks(body).unwrap_err();
            assert!(
                format!("{err:#}").contains("tasks response"),
                "unexpected error for {:?}: {err:#}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn metadata_fixture() {
        assert_eq!(
            parse_metadata(METADATA).unwrap(),
            AgentMetadata {
                cluster: Some("prod".to_owned()),
                container_instance_arn: Some(
                    "arn:aws:ecs:us-east-1:111122223333:container-instance/prod/6f1e2d3c4b5a4968a7b6c5d4e3f2a1b0"
                        .to_owned()
                ),
                version: Some("Amazon ECS Agent - v1.89.2 (0b5c2d3e)".to_owned()),
            }
        );
    }

    #[test]
    fn metadata_before_registration_and_odd_shapes() {
        let unregistered = br#"{"Cluster":"default","ContainerInstanceArn":null,"Version":"Amazon ECS Agent - v1.89.2 (0b5c2d3e)"}"#;
        let m = parse_metadata(unregistered).unwrap();
        assert_eq!(m.cluster.as_deref(), Some("default"));
        assert_eq!(m.container_instance_arn, None);
        let m = parse_metadata(br#"{"Version":3,"New":[]}"#).unwrap();
        assert_eq!(
            m,
            AgentMetadata {
                cluster: None,
                container_instance_arn: None,
                version: Some("3".to_owned()),
            }
        );
        assert!(parse_metadata(b"<html>").is_err());
    }

    #[test]
    fn rows_serialize_with_snake_case_keys() {
        let rows = parse_tasks(AWSVPC).unwrap();
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["task_arn"], PAYMENTS);
        assert_eq!(json["ipv4_address"], "10.0.1.23");
        assert_eq!(json["container_name"], "web");
    }

    /// A throwaway HTTP/1.1 server on 127.0.0.1 that answers every request from `routes`
    /// (path -> status, body), 404 otherwise, then closes the connection.
    mod server {
        use std::io::{BufRead, BufReader, Write};
        use std::net::{TcpListener, TcpStream};
        use std::thread;

        pub type Routes = Vec<(&'static str, u16, Vec<u8>)>;

        pub fn start(routes: Routes) -> String {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    // Errors here only mean the client went away; the test sees that side.
                    let _ = serve(stream, &routes);
                }
            });
            format!("http://{addr}")
        }

        fn serve(mut stream: TcpStream, routes: &Routes) -> std::io::Result<()> {
            let mut reader = BufReader::new(stream.try_clone()?);
            let mut request_line = String::new();
            reader.read_line(&mut request_line)?;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header)? == 0 || header == "\r\n" {
                    break;
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = routes
                .iter()
                .find(|(p, _, _)| *p == path)
                .map(|(_, s, b)| (*s, b.clone()))
                .unwrap_or((404, b"404 page not found\n".to_vec()));
            let reason = match status {
                200 => "OK",
                404 => "Not Found",
                500 => "Internal Server Error",
                _ => "Other",
            };
            write!(
                stream,
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)?;
            stream.flush()
        }

        /// Accepts connections and never answers, holding them open until the client gives up.
        pub fn start_silent() -> String {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            thread::spawn(move || {
                let mut held = Vec::new();
                for stream in listener.incoming().flatten() {
                    held.push(stream);
                }
            });
            format!("http://{addr}")
        }

        /// An address where nothing listens: bind an ephemeral port, then free it.
        pub fn closed_port() -> String {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            drop(listener);
            format!("http://{addr}")
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[test]
    fn client_reads_recorded_responses() {
        let base = server::start(vec![
            ("/v1/tasks", 200, AWSVPC.to_vec()),
            ("/v1/metadata", 200, METADATA.to_vec()),
        ]);
        // A trailing slash on the base URL is tolerated.
        let client = AgentClient::new(&format!("{base}/"), TIMEOUT);
        assert_eq!(client.tasks().unwrap(), parse_tasks(AWSVPC).unwrap());
        assert_eq!(
            client.metadata().unwrap(),
            parse_metadata(METADATA).unwrap()
        );
        // The client is reusable.
        assert_eq!(client.tasks().unwrap().len(), 4);
    }

    #[test]
    fn client_reports_server_errors_with_url_and_status() {
        // What the agent writes when it cannot build the task list.
        let base = server::start(vec![("/v1/tasks", 500, br#"{"Tasks":null}"#.to_vec())]);
        let client = AgentClient::new(&base, TIMEOUT);
        let msg = format!("{:#}", client.tasks().unwrap_err());
        assert!(msg.contains(&format!("{base}/v1/tasks")), "{msg}");
        assert!(msg.contains("500"), "{msg}");
        assert!(msg.contains(r#"{"Tasks":null}"#), "{msg}");
        // No route for metadata on this server: 404.
        let msg = format!("{:#}", client.metadata().unwrap_err());
        assert!(msg.contains("404"), "{msg}");
        assert!(msg.contains(&format!("{base}/v1/metadata")), "{msg}");
    }

    #[test]
    fn client_reports_malformed_bodies_with_url() {
        let base = server::start(vec![
            ("/v1/tasks", 200, b"<html>agent</html>".to_vec()),
            ("/v1/metadata", 200, b"{\"Cluster\":".to_vec()),
        ]);
        let client = AgentClient::new(&base, TIMEOUT);
        let msg = format!("{:#}", client.tasks().unwrap_err());
        assert!(
            msg.contains(&format!("bad response from ECS agent at {base}/v1/tasks")),
            "{msg}"
        );
        let msg = format!("{:#}", client.metadata().unwrap_err());
        assert!(msg.contains(&format!("{base}/v1/metadata")), "{msg}");
    }

    #[test]
    fn unreachable_agent_is_an_error_not_a_panic() {
        let base = server::closed_port();
        let client = AgentClient::new(&base, TIMEOUT);
        let msg = format!("{:#}", client.tasks().unwrap_err());
        assert!(
            msg.starts_with(&format!("cannot reach ECS agent at {base}/v1/tasks")),
            "{msg}"
        );
        assert!(client.metadata().is_err());
    }

    #[test]
    fn silent_agent_times_out() {
        let base = server::start_silent();
        let client = AgentClient::new(&base, Duration::from_millis(300));
        let started = std::time::Instant::now();
        let msg = format!("{:#}", client.tasks().unwrap_err());
        assert!(started.elapsed() < Duration::from_secs(5), "{msg}");
        assert!(msg.starts_with("cannot reach ECS agent at"), "{msg}");
    }

    #[test]
    fn bad_base_url_is_an_error() {
        let client = AgentClient::new("not a url", TIMEOUT);
        assert!(client.tasks().is_err());
    }
}
