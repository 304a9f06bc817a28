//! `truth.jsonl`: what was planted, one line per injected attack or planted unused permission,
//! in the findings shape of detections.md so a run of the analyzer can be scored against it.

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

/// Whether an analyzer finding is the one a truth line expects: same kind and same key, and for
/// `unused_permissions` every planted unused action among the finding's unused actions.
pub fn matches(t: &Truth, f: &crate::detect::Finding) -> bool {
    t.kind == f.kind
        && match t.kind {
            "fetch_denied_burst" => f.host == t.host && f.source_ip == t.source_ip,
            "unused_permissions" => {
                f.role_arn == t.role_arn
                    && t.evidence["planted_unused_actions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .all(|a| {
                            f.evidence["unused_actions"]
                                .as_array()
                                .is_some_and(|u| u.contains(a))
                        })
            }
            "unused_role" => f.role_arn == t.role_arn,
            _ => f.task_arn == t.task_arn,
        }
}

/// Per finding kind: planted findings found (true positives), planted ones missed, and findings
/// matching nothing planted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindScore {
    pub found: u64,
    pub missed: u64,
    pub unplanted: u64,
}

impl KindScore {
    /// found / (found + missed); `None` when nothing was planted.
    pub fn recall(&self) -> Option<f64> {
        let n = self.found + self.missed;
        (n > 0).then(|| self.found as f64 / n as f64)
    }

    /// found / (found + unplanted); `None` when nothing was reported.
    pub fn precision(&self) -> Option<f64> {
        let n = self.found + self.unplanted;
        (n > 0).then(|| self.found as f64 / n as f64)
    }

    pub fn add(&mut self, o: &KindScore) {
        self.found += o.found;
        self.missed += o.missed;
        self.unplanted += o.unplanted;
    }
}

/// Scores findings against truth, per kind (every kind of [`KINDS`] present).
pub fn score(
    truth: &[Truth],
    findings: &[crate::detect::Finding],
) -> std::collections::BTreeMap<&'static str, KindScore> {
    let mut out: std::collections::BTreeMap<&'static str, KindScore> =
        KINDS.iter().map(|k| (*k, KindScore::default())).collect();
    for t in truth {
        let s = out.entry(t.kind).or_default();
        if findings.iter().any(|f| matches(t, f)) {
            s.found += 1;
        } else {
            s.missed += 1;
        }
    }
    for f in findings {
        if !truth.iter().any(|t| matches(t, f))
            && let Some(k) = KINDS.iter().find(|k| **k == f.kind)
        {
            out.entry(k).or_default().unplanted += 1;
        }
    }
    out
}
