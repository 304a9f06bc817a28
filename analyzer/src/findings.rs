//! Findings kept in the store across runs, with a state, and the record of each analysis
//! (`findings` and `analysis_runs` in `schema.sql`).
//!
//! A recorded run (`analyze` or `report` without `--since`/`--until`) judges either the whole
//! history the store holds (a full run) or, incrementally (increment.rs), the events since the
//! previous run's data watermark less the horizon, plus, for each finding those events touch or
//! that was still current then, its whole span. A finding (kind, key: the detection's `key`
//! columns) is `new` the first run that produces it (again after it was resolved), `ongoing`
//! while later runs produce it or leave it unjudged (its events all older than the horizon), and
//! `resolved` when a run that judged its key no longer produces it (more data made it benign: a
//! learned egress address, a baseline that grew). A detection that failed in a run leaves its
//! findings as they were: it analysed nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, Result};
use duckdb::params;
use serde::{Deserialize, Serialize};

use crate::detect::{Detection, Finding, Severity};
use crate::store::{Store, now_us, ts};

/// A finding's state after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    New,
    Ongoing,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Ongoing => "ongoing",
            State::Resolved => "resolved",
        }
    }

    fn parse(s: &str) -> Result<State> {
        match s {
            "new" => Ok(State::New),
            "ongoing" => Ok(State::Ongoing),
            "resolved" => Ok(State::Resolved),
            _ => anyhow::bail!("unknown finding state {s:?} in the store"),
        }
    }
}

/// What a run changed about one finding (printed by `analyze --since-last-run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub state: State,
    /// The severity before this run, when the run changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_severity: Option<Severity>,
    /// The run that first produced the finding.
    pub first_seen_run: i64,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.state.as_str())?;
        if let Some(p) = self.previous_severity {
            write!(f, ", was {}", p.as_str())?;
        }
        Ok(())
    }
}

/// The run before this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousRun {
    pub run_id: i64,
    pub command: String,
    pub finished_at: String,
}

/// One recorded run and what it changed.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub run_id: i64,
    pub previous: Option<PreviousRun>,
    /// Findings first produced by this run (or produced again after being resolved).
    pub new: Vec<Finding>,
    /// Findings produced again whose severity changed.
    pub changed: Vec<Finding>,
    /// Findings produced again, severity changed or not.
    pub ongoing: usize,
    /// Findings an earlier run produced and this run's detections no longer do, as last seen.
    pub resolved: Vec<Finding>,
    /// The earliest and latest event the store held.
    pub window_from: Option<String>,
    pub data_watermark: Option<String>,
    /// The start of the events an incremental run judged; `None`: a full run.
    pub judged_since: Option<String>,
    /// Every current finding after the run (as stored: after the configuration of the run that
    /// last judged it), without its change.
    pub current: Vec<Finding>,
}

impl Recorded {
    /// New, then severity changed, then resolved: each with its [`Change`].
    pub fn changes(&self) -> Vec<Finding> {
        self.new
            .iter()
            .chain(&self.changed)
            .chain(&self.resolved)
            .cloned()
            .collect()
    }

    /// The changes as the report lists them: a title and its findings, in order.
    pub fn groups(&self) -> [(&'static str, &[Finding]); 3] {
        [
            ("New", &self.new),
            ("Severity changed", &self.changed),
            ("Resolved", &self.resolved),
        ]
    }

    /// One line: which run, since which, what it judged, and the counts.
    pub fn summary(&self) -> String {
        let since = match &self.previous {
            Some(p) => format!(
                "since run {} ({} at {})",
                p.run_id, p.command, p.finished_at
            ),
            None => "first recorded run".to_string(),
        };
        let judged = match &self.judged_since {
            Some(t) => format!("incremental, events from {t}"),
            None => "full".to_string(),
        };
        format!(
            "run {} ({judged}), {since}: {} new, {} resolved, {} ongoing ({} with a changed severity)",
            self.run_id,
            self.new.len(),
            self.resolved.len(),
            self.ongoing,
            self.changed.len()
        )
    }
}

/// The (kind, key) a finding is identified by: the detection's `key` columns as a JSON object
/// (every key column when the kind is not among `dets`).
pub fn key_of(dets: &[Detection], f: &Finding) -> String {
    let all = crate::detect::KEY_COLUMNS
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>();
    let cols = dets
        .iter()
        .find(|d| d.id == f.kind)
        .map_or(&all, |d| &d.key);
    let obj: BTreeMap<&str, Option<&str>> =
        cols.iter().map(|c| (c.as_str(), f.column(c))).collect();
    serde_json::to_string(&obj).expect("a map of strings serializes")
}

/// A stored row.
struct Row {
    kind: String,
    key: String,
    severity: Severity,
    previous_severity: Option<Severity>,
    state: State,
    state_run: i64,
    first_seen_run: i64,
    first_seen_at: i64,
    last_seen_run: i64,
    last_seen_at: i64,
    finding: Finding,
}

fn severity(s: &str) -> Result<Severity> {
    Severity::parse(s).with_context(|| format!("unknown severity {s:?} in the findings table"))
}

fn load(conn: &duckdb::Connection) -> Result<Vec<Row>> {
    let mut stmt = conn.prepare(
        "SELECT kind, finding_key, severity, previous_severity, state, state_run, first_seen_run,
                epoch_us(first_seen_at), last_seen_run, epoch_us(last_seen_at), finding::VARCHAR
         FROM findings ORDER BY kind, finding_key",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, i64>(8)?,
            r.get::<_, i64>(9)?,
            r.get::<_, String>(10)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, key, sev, prev, state, state_run, fsr, fsa, lsr, lsa, json) = row?;
        let finding: Finding = serde_json::from_str(&json)
            .with_context(|| format!("stored finding {kind} {key} is not a finding"))?;
        out.push(Row {
            kind,
            key,
            severity: severity(&sev)?,
            previous_severity: prev.as_deref().map(severity).transpose()?,
            state: State::parse(&state)?,
            state_run,
            first_seen_run: fsr,
            first_seen_at: fsa,
            last_seen_run: lsr,
            last_seen_at: lsa,
            finding,
        });
    }
    Ok(out)
}

fn insert(conn: &duckdb::Connection, r: &Row) -> Result<()> {
    let mut stored = r.finding.clone();
    stored.change = None;
    conn.execute(
        "INSERT INTO findings (kind, finding_key, severity, previous_severity, state, state_run,
             first_seen_run, first_seen_at, last_seen_run, last_seen_at, event_first_seen,
             event_last_seen, count, finding)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::TIMESTAMP, ?::TIMESTAMP, ?, ?)",
        params![
            r.kind,
            r.key,
            r.severity.as_str(),
            r.previous_severity.map(Severity::as_str),
            r.state.as_str(),
            r.state_run,
            r.first_seen_run,
            ts(r.first_seen_at),
            r.last_seen_run,
            ts(r.last_seen_at),
            stored.first_seen,
            stored.last_seen,
            stored.count,
            serde_json::to_string(&stored)?,
        ],
    )?;
    Ok(())
}

/// The earliest and latest event time the store holds (audit log and CloudTrail).
pub(crate) fn data_window(conn: &duckdb::Connection) -> Result<(Option<String>, Option<String>)> {
    Ok(conn.query_row(
        "SELECT strftime(min(lo), '%Y-%m-%dT%H:%M:%SZ'), strftime(max(hi), '%Y-%m-%dT%H:%M:%SZ')
         FROM (SELECT min(event_time) AS lo, max(event_time) AS hi FROM credential_requests
               UNION ALL
               SELECT min(event_time), max(event_time) FROM cloudtrail_events)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// What a recorded run was: its command, when it started, and what it judged.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    /// `analyze` or `report`.
    pub command: String,
    pub started_us: i64,
    /// The start of the events an incremental run judged; `None`: a full run.
    pub judged_since: Option<String>,
    /// What the run's judgement depends on besides the data (increment.rs): the next run is
    /// incremental only when it is the same.
    pub fingerprint: Option<String>,
    /// Detection id → the keys (as [`key_of`] gives them) it judged again; a detection absent
    /// here judged every key.
    pub judged_keys: HashMap<String, HashSet<String>>,
}

impl RunRecord {
    /// A full run of `command` started at `started_us`.
    pub fn full(command: &str, started_us: i64) -> RunRecord {
        RunRecord {
            command: command.to_string(),
            started_us,
            ..RunRecord::default()
        }
    }

    fn judged(&self, kind: &str, key: &str) -> bool {
        self.judged_keys.get(kind).is_none_or(|k| k.contains(key))
    }
}

/// A current finding's span in event time, for an incremental run to judge it again.
#[derive(Debug, Clone)]
pub struct Span {
    pub key: String,
    /// `None`: unknown.
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
}

/// Every current (not resolved) finding's span, by kind.
pub fn spans(store: &Store) -> Result<HashMap<String, Vec<Span>>> {
    let mut stmt = store.conn().prepare(
        "SELECT kind, finding_key, strftime(event_first_seen, '%Y-%m-%dT%H:%M:%SZ'),
                strftime(event_last_seen, '%Y-%m-%dT%H:%M:%SZ')
         FROM findings WHERE state <> 'resolved'",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Span {
                key: r.get(1)?,
                first_seen: r.get(2)?,
                last_seen: r.get(3)?,
            },
        ))
    })?;
    let mut out: HashMap<String, Vec<Span>> = HashMap::new();
    for row in rows {
        let (kind, span) = row?;
        out.entry(kind).or_default().push(span);
    }
    Ok(out)
}

/// Record one run: `findings` are the findings of `dets` the run judged, as reported (after the
/// configuration), `failed` the files of detections that failed (their findings keep their
/// state). Returns what changed; the findings in it carry their [`Change`].
pub fn record(
    store: &Store,
    run: &RunRecord,
    dets: &[Detection],
    findings: &[Finding],
    failed: &[String],
) -> Result<Recorded> {
    let (command, started_us) = (run.command.as_str(), run.started_us);
    let failed: HashSet<&str> = failed.iter().map(String::as_str).collect();
    let analysed: HashSet<&str> = dets
        .iter()
        .filter(|d| !failed.contains(d.file.as_str()))
        .map(|d| d.id.as_str())
        .collect();
    let failed_ids: Vec<String> = dets
        .iter()
        .filter(|d| failed.contains(d.file.as_str()))
        .map(|d| d.id.clone())
        .collect();
    store
        .transaction(|conn| {
            let run_id: i64 = conn.query_row(
                "SELECT coalesce(max(run_id), 0) + 1 FROM analysis_runs",
                [],
                |r| r.get(0),
            )?;
            let previous = conn
                .query_row(
                    "SELECT run_id, command, strftime(finished_at, '%Y-%m-%dT%H:%M:%SZ')
                     FROM analysis_runs ORDER BY run_id DESC LIMIT 1",
                    [],
                    |r| {
                        Ok(PreviousRun {
                            run_id: r.get(0)?,
                            command: r.get(1)?,
                            finished_at: r.get(2)?,
                        })
                    },
                )
                .ok();
            let (window_from, data_watermark) = data_window(conn)?;
            let mut stored: HashMap<(String, String), Row> = load(conn)?
                .into_iter()
                .map(|r| ((r.kind.clone(), r.key.clone()), r))
                .collect();
            let mut rec = Recorded {
                run_id,
                previous,
                window_from: window_from.clone(),
                data_watermark: data_watermark.clone(),
                judged_since: run.judged_since.clone(),
                ..Recorded::default()
            };
            let mut rows = Vec::new();
            for f in findings {
                let key = key_of(dets, f);
                let now = started_us;
                let row = match stored.remove(&(f.kind.clone(), key.clone())) {
                    Some(old) if old.state != State::Resolved => {
                        rec.ongoing += 1;
                        let changed = old.severity != f.severity;
                        let mut shown = f.clone();
                        shown.change = Some(Change {
                            state: State::Ongoing,
                            previous_severity: changed.then_some(old.severity),
                            first_seen_run: old.first_seen_run,
                        });
                        if changed {
                            rec.changed.push(shown);
                        }
                        Row {
                            severity: f.severity,
                            previous_severity: if changed {
                                Some(old.severity)
                            } else {
                                old.previous_severity
                            },
                            state: State::Ongoing,
                            state_run: if old.state == State::Ongoing {
                                old.state_run
                            } else {
                                run_id
                            },
                            last_seen_run: run_id,
                            last_seen_at: now,
                            finding: f.clone(),
                            ..old
                        }
                    }
                    old => {
                        let (first_run, first_at) =
                            old.map_or((run_id, now), |o| (o.first_seen_run, o.first_seen_at));
                        let mut shown = f.clone();
                        shown.change = Some(Change {
                            state: State::New,
                            previous_severity: None,
                            first_seen_run: first_run,
                        });
                        rec.new.push(shown);
                        Row {
                            kind: f.kind.clone(),
                            key,
                            severity: f.severity,
                            previous_severity: None,
                            state: State::New,
                            state_run: run_id,
                            first_seen_run: first_run,
                            first_seen_at: first_at,
                            last_seen_run: run_id,
                            last_seen_at: now,
                            finding: f.clone(),
                        }
                    }
                };
                rows.push(row);
            }
            // What is left was not produced by this run.
            let mut left: Vec<Row> = stored.into_values().collect();
            left.sort_by(|a, b| (&a.kind, &a.key).cmp(&(&b.kind, &b.key)));
            for mut old in left {
                if old.state == State::Resolved || !analysed.contains(old.kind.as_str()) {
                    rows.push(old);
                    continue;
                }
                if !run.judged(&old.kind, &old.key) {
                    // Not judged again (all its events older than the horizon): still current,
                    // as a full run that produced it again would leave it.
                    rec.ongoing += 1;
                    if old.state == State::New {
                        old.state = State::Ongoing;
                        old.state_run = run_id;
                    }
                    old.last_seen_run = run_id;
                    old.last_seen_at = started_us;
                } else {
                    old.state = State::Resolved;
                    old.state_run = run_id;
                    let mut shown = old.finding.clone();
                    shown.change = Some(Change {
                        state: State::Resolved,
                        previous_severity: None,
                        first_seen_run: old.first_seen_run,
                    });
                    rec.resolved.push(shown);
                }
                rows.push(old);
            }
            conn.execute_batch("DELETE FROM findings")?;
            for r in &rows {
                insert(conn, r)?;
            }
            let current = rows.iter().filter(|r| r.state != State::Resolved).count();
            let failed_list = failed_ids
                .iter()
                .map(|s| crate::store::sql_string(s))
                .collect::<Vec<_>>()
                .join(", ");
            conn.execute(
                &format!(
                    "INSERT INTO analysis_runs (run_id, command, started_at, finished_at,
                         window_from, data_watermark, findings, new_findings, ongoing_findings,
                         resolved_findings, severity_changed, failed_detections, mode,
                         judged_since, fingerprint)
                     VALUES (?, ?, ?, ?, ?::TIMESTAMP, ?::TIMESTAMP, ?, ?, ?, ?, ?,
                             [{failed_list}]::VARCHAR[], ?, ?::TIMESTAMP, ?)"
                ),
                params![
                    run_id,
                    command,
                    ts(started_us),
                    ts(now_us()),
                    window_from,
                    data_watermark,
                    current as i64,
                    rec.new.len() as i64,
                    rec.ongoing as i64,
                    rec.resolved.len() as i64,
                    rec.changed.len() as i64,
                    if run.judged_since.is_some() {
                        "incremental"
                    } else {
                        "full"
                    },
                    run.judged_since,
                    run.fingerprint,
                ],
            )?;
            // A failed detection's findings keep their state, but this run did not judge them.
            rec.current = rows
                .iter()
                .filter(|r| r.state != State::Resolved && analysed.contains(r.kind.as_str()))
                .map(|r| r.finding.clone())
                .collect();
            crate::detect::sort(&mut rec.current);
            crate::detect::sort(&mut rec.new);
            crate::detect::sort(&mut rec.changed);
            crate::detect::sort(&mut rec.resolved);
            Ok(rec)
        })
        .context("recording the run's findings in the store")
}

/// The findings the store holds as current (not resolved) after the latest run, sorted.
pub fn current(store: &Store) -> Result<Vec<Finding>> {
    let mut out: Vec<Finding> = load(store.conn())?
        .into_iter()
        .filter(|r| r.state != State::Resolved)
        .map(|r| {
            let mut f = r.finding;
            f.change = Some(Change {
                state: r.state,
                previous_severity: r.previous_severity,
                first_seen_run: r.first_seen_run,
            });
            f
        })
        .collect();
    crate::detect::sort(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detection(id: &str, key: &str) -> Detection {
        let text = format!(
            "-- id: {id}\n-- title: t\n-- severity: high\n-- description: d\n-- reads: audit_lines\n\
             -- key: {key}\n-- params:\nSELECT 1\n"
        );
        crate::detect::parse(&format!("{id}.sql"), &text).unwrap()
    }

    fn finding(kind: &str, task: &str, host: &str, severity: Severity, count: i64) -> Finding {
        Finding {
            kind: kind.into(),
            severity,
            title: format!("{kind} {task}"),
            first_seen: Some("2026-11-16T00:10:00Z".into()),
            last_seen: Some("2026-11-16T00:20:00Z".into()),
            count,
            cluster_arn: None,
            task_arn: Some(task.into()),
            role_arn: None,
            host: Some(host.into()),
            source_ip: None,
            evidence: json!({"total": count}),
            detected_severity: None,
            suppressed: None,
            change: None,
        }
    }

    fn states(store: &Store) -> Vec<(String, String, String, i64, i64)> {
        let mut stmt = store
            .conn()
            .prepare(
                "SELECT kind, json_extract_string(finding_key, '$.task_arn'), state,
                        first_seen_run, count
                 FROM findings ORDER BY ALL",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    fn row(
        kind: &str,
        task: &str,
        state: &str,
        first: i64,
        count: i64,
    ) -> (String, String, String, i64, i64) {
        (kind.into(), task.into(), state.into(), first, count)
    }

    #[test]
    fn runs_move_findings_through_their_states() {
        let store = Store::open_in_memory().unwrap();
        let dets = [detection("a", "task_arn"), detection("b", "task_arn")];
        let (high, low) = (Severity::High, Severity::Low);

        let r1 = record(
            &store,
            &RunRecord::full("analyze", 0),
            &dets,
            &[
                finding("a", "t1", "h1", high, 1),
                finding("a", "t2", "h1", high, 2),
            ],
            &[],
        )
        .unwrap();
        assert_eq!((r1.run_id, r1.new.len(), r1.ongoing), (1, 2, 0));
        assert!(r1.previous.is_none());
        assert!(
            r1.new
                .iter()
                .all(|f| f.change.as_ref().unwrap().state == State::New)
        );

        // t1 again, on another host (not a key column of `a`) and with more events: the same
        // finding, ongoing, with the new count; t2 is gone: resolved; t3 is new.
        let r2 = record(
            &store,
            &RunRecord::full("report", 1),
            &dets,
            &[
                finding("a", "t1", "h2", high, 5),
                finding("a", "t3", "h1", low, 1),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(r2.previous.as_ref().map(|p| p.run_id), Some(1));
        assert_eq!((r2.new.len(), r2.ongoing, r2.changed.len()), (1, 1, 0));
        assert_eq!(r2.new[0].task_arn.as_deref(), Some("t3"));
        assert_eq!(r2.resolved.len(), 1);
        assert_eq!(r2.resolved[0].task_arn.as_deref(), Some("t2"));
        assert_eq!(r2.resolved[0].count, 2, "resolved as last seen");
        assert_eq!(
            states(&store),
            [
                row("a", "t1", "ongoing", 1, 5),
                row("a", "t2", "resolved", 1, 2),
                row("a", "t3", "new", 2, 1)
            ]
        );

        // Detection `a` fails: its findings keep their state. `b` produces t1 (another kind).
        // t2 comes back: new again, first seen in run 1.
        let r3 = record(
            &store,
            &RunRecord::full("analyze", 2),
            &dets,
            &[finding("b", "t1", "h1", high, 1)],
            &["a.sql".to_string()],
        )
        .unwrap();
        assert_eq!((r3.new.len(), r3.resolved.len()), (1, 0));
        let r4 = record(
            &store,
            &RunRecord::full("analyze", 3),
            &dets,
            &[
                finding("a", "t1", "h1", high, 5),
                finding("a", "t2", "h1", high, 2),
                finding("a", "t3", "h1", high, 1),
                finding("b", "t1", "h1", high, 1),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(r4.new.len(), 1);
        assert_eq!(r4.new[0].change.as_ref().unwrap().first_seen_run, 1);
        assert_eq!(r4.changed.len(), 1, "t3 went from low to high");
        assert_eq!(
            r4.changed[0].change.as_ref().unwrap().previous_severity,
            Some(low)
        );
        assert_eq!(
            states(&store),
            [
                row("a", "t1", "ongoing", 1, 5),
                row("a", "t2", "new", 1, 2),
                row("a", "t3", "ongoing", 2, 1),
                row("b", "t1", "ongoing", 3, 1),
            ]
        );
        let runs: Vec<(i64, i64, i64, Vec<String>)> = store
            .conn()
            .prepare(
                "SELECT run_id, new_findings, resolved_findings, failed_detections
                 FROM analysis_runs ORDER BY run_id",
            )
            .unwrap()
            .query_map([], |r| {
                let failed: duckdb::types::Value = r.get(3)?;
                let failed = match failed {
                    duckdb::types::Value::List(l) => l
                        .into_iter()
                        .map(|v| match v {
                            duckdb::types::Value::Text(s) => s,
                            v => panic!("{v:?}"),
                        })
                        .collect(),
                    v => panic!("{v:?}"),
                };
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, failed))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            runs,
            [
                (1, 2, 0, vec![]),
                (2, 1, 1, vec![]),
                (3, 1, 0, vec!["a".to_string()]),
                (4, 1, 0, vec![]),
            ]
        );
        let current = current(&store).unwrap();
        assert_eq!(current.len(), 4);
    }
}
