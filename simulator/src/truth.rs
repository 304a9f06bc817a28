//! `truth.jsonl`: what was planted, one line per injected attack or planted unused permission,
//! in the findings shape of detections.md so a run of the analyzer can be scored against it
//! (the analyzer's `score` module does that).

use serde::Serialize;

/// Every finding kind detections.md defines.
pub const KINDS: [&str; 11] = [
    "fetch_denied_burst",
    "fetch_unusual_client",
    "fetch_burst",
    "fetch_foreign_source",
    "use_from_unexpected_network",
    "use_by_other_task",
    "use_after_stop",
    "use_without_fetch",
    "access_denied_burst",
    "unused_permissions",
    "unused_role",
];

/// One expected finding. Field order and names follow detections.md's output shape.
#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    pub kind: &'static str,
    pub severity: &'static str,
    pub title: String,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
    pub cluster_arn: Option<String>,
    pub task_arn: Option<String>,
    pub role_arn: Option<String>,
    pub host: Option<String>,
    pub source_ip: Option<String>,
    /// Kind-specific detail; always has `scenario` (the attack's name).
    pub evidence: serde_json::Value,
}

impl Truth {
    /// The detections.md key of this finding (what makes two findings the same one).
    pub fn key(&self) -> String {
        match self.kind {
            "fetch_denied_burst" => format!(
                "{}|{}",
                self.host.as_deref().unwrap_or(""),
                self.source_ip.as_deref().unwrap_or("")
            ),
            "unused_permissions" | "unused_role" => self.role_arn.clone().unwrap_or_default(),
            _ => self.task_arn.clone().unwrap_or_default(),
        }
    }
}

/// Render truth lines sorted by (kind, key), newline-terminated.
pub fn render(truth: &[Truth]) -> serde_json::Result<Vec<u8>> {
    let mut sorted: Vec<&Truth> = truth.iter().collect();
    sorted.sort_by(|a, b| (a.kind, a.key()).cmp(&(b.kind, b.key())));
    let mut out = Vec::new();
    for t in sorted {
        serde_json::to_writer(&mut out, t)?;
        out.push(b'\n');
    }
    Ok(out)
}
