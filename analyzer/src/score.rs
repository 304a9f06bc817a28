//! Scoring a run against a simulation's truth: which findings are the planted ones
//! (`credtrail demo` and the fleet benchmark).

use std::collections::BTreeMap;

use credtrail_sim::truth::{KINDS, Truth};

use crate::detect::{Finding, Severity};

/// Whether an analyzer finding is the one a truth line expects: same kind and same key, and for
/// `unused_permissions` every planted unused action among the finding's unused actions.
pub fn matches(t: &Truth, f: &Finding) -> bool {
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
/// matching nothing planted; of those found, how many at another severity than the truth line
/// states, and of those unplanted, how many at medium or above.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindScore {
    pub found: u64,
    pub missed: u64,
    pub unplanted: u64,
    pub other_severity: u64,
    pub unplanted_medium_up: u64,
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
        self.other_severity += o.other_severity;
        self.unplanted_medium_up += o.unplanted_medium_up;
    }
}

/// Scores findings against truth, per kind (every kind of [`KINDS`] present).
pub fn score(truth: &[Truth], findings: &[Finding]) -> BTreeMap<&'static str, KindScore> {
    let mut out: BTreeMap<&'static str, KindScore> =
        KINDS.iter().map(|k| (*k, KindScore::default())).collect();
    for t in truth {
        let s = out.entry(t.kind).or_default();
        let found: Vec<&Finding> = findings.iter().filter(|f| matches(t, f)).collect();
        if found.is_empty() {
            s.missed += 1;
        } else {
            s.found += 1;
            if !found.iter().any(|f| f.severity.as_str() == t.severity) {
                s.other_severity += 1;
            }
        }
    }
    for f in findings {
        if !truth.iter().any(|t| matches(t, f))
            && let Some(k) = KINDS.iter().find(|k| **k == f.kind)
        {
            let s = out.entry(k).or_default();
            s.unplanted += 1;
            if f.severity >= Severity::Medium {
                s.unplanted_medium_up += 1;
            }
        }
    }
    out
}
