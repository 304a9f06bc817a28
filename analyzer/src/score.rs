//! Scoring a run against a simulation's truth: which findings are the planted ones
//! (`credtrail demo` and the fleet benchmark).

use std::collections::BTreeMap;

use credtrail_sim::truth::{KINDS, Truth};

use crate::detect::Finding;

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
pub fn score(truth: &[Truth], findings: &[Finding]) -> BTreeMap<&'static str, KindScore> {
    let mut out: BTreeMap<&'static str, KindScore> =
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
