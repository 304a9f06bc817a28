//! Incremental analysis: which events and findings a recorded run judges again.
//!
//! A recorded run (`analyze`, `report`, `run-schedule` over the whole store) is **full** when
//! asked (`--full`), when it is the store's first, when anything its judgement depends on
//! besides the data changed since the previous run (the [`fingerprint`]: program version,
//! views, detections, their parameters, the horizon), when the previous run had failed
//! detections, or when the store now holds events older than any the previous run saw (a
//! backfill). Otherwise it is **incremental** from
//! `since` = the previous run's data watermark − the horizon − [`MARGIN_HOURS`]:
//!
//! - a `judges: window` detection (a statement about the whole window: unused grants, a
//!   family's baseline) runs whole, as in a full run;
//! - a `judges: keys` detection (a burst qualifies a key, and then every event of the key
//!   counts) runs whole when it has a current finding, and otherwise runs from `since` and,
//!   only when that finds a burst, whole;
//! - a `judges: events` detection runs whole when one of its current findings has events at or
//!   after `since` and began before it: a detection may judge a key over its whole history
//!   (every refused fetch of an address once it burst), and what older events belong to can
//!   change with newer data (a host's instance learned later), so no shorter span is safe.
//!   Otherwise it runs over the events since `since`; when that finds a key with no current
//!   finding, it runs whole too (that finding may count older events). Otherwise what it found
//!   is whole: it judged the keys found and the current findings last seen since `since`
//!   (those it no longer finds are resolved). Findings it did not judge (all their events
//!   older than `since`) stay as they are (findings.rs).
//!
//! So an incremental run gives what a full run gives, except for findings whose events all lie
//! before `since` and whose judgement the newer data would change (context read from the whole
//! store: a learned egress address, a grown baseline), and for events delivered more than the
//! horizon late. `--full` judges those; a weekly full run with daily incremental ones is the
//! schedule the week replay test (tests/week.rs) checks.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};

use crate::detect::{Detection, Finding, Judges, Report, RunOptions, run_one};
use crate::findings::{RunRecord, Span, key_of};
use crate::store::Store;

/// The default of `[analyze] horizon_hours`: how late an event may be stored (CloudTrail's
/// late deliveries, a collector's backlog) and still be judged by the next incremental run.
pub const DEFAULT_HORIZON_HOURS: u32 = 24;

/// Hours judged before `since`: longer than any span over which a detection judges events
/// together (bursts: `window_minutes`, `near_minutes` ≤ 60).
pub const MARGIN_HOURS: i64 = 2;

/// How a recorded run judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Everything; with why.
    Full(String),
    /// Events from `since` (`%Y-%m-%dT%H:%M:%SZ`), and the findings they touch.
    Incremental { since: String },
}

/// What a recorded run will do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    pub fingerprint: String,
}

/// What a run's judgement depends on besides the data: the program's version, the views, each
/// detection's SQL, header and parameter values, and the horizon.
pub fn fingerprint(dets: &[Detection], opts: &RunOptions, horizon_hours: u32) -> String {
    let mut text = format!(
        "{}\n{}\nhorizon={horizon_hours}\n",
        env!("CARGO_PKG_VERSION"),
        crate::store::VIEWS
    );
    let mut sorted: Vec<&Detection> = dets.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for d in sorted {
        text.push_str(&format!(
            "{}\n{:?}\n{:?}\n{:?}\n{}\n",
            d.id,
            d.key,
            d.judges,
            crate::detect::effective_params(d, opts),
            d.sql
        ));
    }
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

/// The previous recorded run, as planning needs it.
struct Previous {
    run_id: i64,
    window_from: Option<String>,
    since: Option<String>,
    fingerprint: Option<String>,
    failed: usize,
}

/// Decide how the next recorded run judges (`full`: `--full` was given).
pub fn plan(
    store: &Store,
    dets: &[Detection],
    opts: &RunOptions,
    full: bool,
    horizon_hours: u32,
) -> Result<Plan> {
    let fingerprint = fingerprint(dets, opts, horizon_hours);
    let full_because = |why: String| {
        Ok(Plan {
            mode: Mode::Full(why),
            fingerprint: fingerprint.clone(),
        })
    };
    if full {
        return full_because("--full".into());
    }
    let conn = store.conn();
    let previous = conn
        .query_row(
            "SELECT run_id, strftime(window_from, '%Y-%m-%dT%H:%M:%SZ'),
                    strftime(data_watermark - to_hours(?::BIGINT), '%Y-%m-%dT%H:%M:%SZ'),
                    fingerprint, len(failed_detections)
             FROM analysis_runs ORDER BY run_id DESC LIMIT 1",
            [i64::from(horizon_hours) + MARGIN_HOURS],
            |r| {
                Ok(Previous {
                    run_id: r.get(0)?,
                    window_from: r.get(1)?,
                    since: r.get(2)?,
                    fingerprint: r.get(3)?,
                    failed: r.get::<_, i64>(4)? as usize,
                })
            },
        )
        .map(Some)
        .or_else(|e| match e {
            duckdb::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .context("reading the previous run")?;
    let Some(p) = previous else {
        return full_because("the store's first recorded run".into());
    };
    if p.fingerprint.as_deref() != Some(fingerprint.as_str()) {
        return full_because(format!(
            "the program, detections, parameters or horizon changed since run {}",
            p.run_id
        ));
    }
    if p.failed > 0 {
        return full_because(format!("run {} had failed detections", p.run_id));
    }
    let Some(since) = p.since else {
        return full_because(format!("run {} saw no events", p.run_id));
    };
    let (earliest, _) = crate::findings::data_window(conn)?;
    if let (Some(now), Some(then)) = (&earliest, &p.window_from)
        && now < then
    {
        return full_because(format!(
            "the store now holds events from {now}, before run {}'s earliest ({then})",
            p.run_id
        ));
    }
    Ok(Plan {
        mode: Mode::Incremental { since },
        fingerprint,
    })
}

/// Run the detections as `plan` says. Returns the findings judged (deduped and sorted, as
/// [`crate::detect::run`] gives them) and the run's record for findings.rs.
pub fn run(
    store: &Store,
    dets: &[Detection],
    opts: &RunOptions,
    plan: &Plan,
    command: &str,
    started_us: i64,
) -> Result<(Report, RunRecord)> {
    let mut record = RunRecord {
        command: command.to_string(),
        started_us,
        judged_since: None,
        fingerprint: Some(plan.fingerprint.clone()),
        judged_keys: HashMap::new(),
    };
    let Mode::Incremental { since } = &plan.mode else {
        return Ok((crate::detect::run(store, dets, opts), record));
    };
    record.judged_since = Some(since.clone());
    let spans = crate::findings::spans(store)?;
    let mut report = crate::detect::start(store);
    let mut keyed = Vec::new();
    for d in dets {
        let judged = crate::detect::timed(&mut report, d, || match d.judges {
            Judges::Window => Ok((run_one(store, d, opts)?, None)),
            Judges::Keys => {
                let current = spans.get(&d.id).map_or(0, Vec::len);
                judge_keys(store, d, opts, since, current)
            }
            Judges::Events => {
                let current = spans.get(&d.id).map_or(&[][..], Vec::as_slice);
                judge_since(store, d, opts, since, current)
            }
        });
        if let Some((found, keys)) = judged {
            if let Some(keys) = keys {
                record.judged_keys.insert(d.id.clone(), keys);
            }
            keyed.extend(found.into_iter().map(|f| (d.key.clone(), f)));
        }
    }
    Ok((crate::detect::finish(report, keyed), record))
}

/// One `judges: events` detection, incrementally: its findings for the keys it judged again,
/// and those keys (`None`: every key, it ran whole).
fn judge_since(
    store: &Store,
    d: &Detection,
    opts: &RunOptions,
    since: &str,
    current: &[Span],
) -> Result<(Vec<Finding>, Option<HashSet<String>>)> {
    // A current finding with events since `since` that began before it is judged over its
    // whole history, as a full run would: a detection may judge a key over everything the
    // store holds (every refused fetch of an address once it burst), and what a key's older
    // events belong to can change with newer data (a host's instance learned later), so no
    // shorter span is safe. Then the detection runs whole.
    let live = |s: &Span| s.last_seen.as_deref().is_none_or(|l| l >= since);
    let began_before = |s: &Span| s.first_seen.as_deref().is_none_or(|f| f < since);
    if current.iter().any(|s| live(s) && began_before(s)) {
        return Ok((run_one(store, d, opts)?, None));
    }
    let one = std::slice::from_ref(d);
    let from_since = RunOptions {
        since: Some(since.to_string()),
        ..opts.clone()
    };
    let found = run_one(store, d, &from_since)?;
    let mut keys: HashSet<String> = found.iter().map(|f| key_of(one, f)).collect();
    let known: HashSet<&str> = current.iter().map(|s| s.key.as_str()).collect();
    if keys.iter().any(|k| !known.contains(k.as_str())) {
        // A key found for the first time may have older events its finding counts.
        return Ok((
            run_one(store, d, opts)
                .with_context(|| format!("{}: judging a new finding's whole history", d.file))?,
            None,
        ));
    }
    // Every key found has a current finding, and none of those began before `since`: this
    // run's findings are whole. Current findings it did not find, last seen since `since`,
    // were judged too (their events there no longer count).
    keys.extend(current.iter().filter(|s| live(s)).map(|s| s.key.clone()));
    Ok((found, Some(keys)))
}

/// One `judges: keys` detection, incrementally. With a current finding, it runs whole (any new
/// event of that key counts, burst or not). Without one, only a burst at or after `since` can
/// make a finding (an earlier one was judged by an earlier run: `since` precedes the previous
/// run's latest event by more than any burst window), so it runs from `since` and, when that
/// finds a burst, whole (the new finding counts the key's older events too).
fn judge_keys(
    store: &Store,
    d: &Detection,
    opts: &RunOptions,
    since: &str,
    current: usize,
) -> Result<(Vec<Finding>, Option<HashSet<String>>)> {
    if current == 0 {
        let from_since = RunOptions {
            since: Some(since.to_string()),
            ..opts.clone()
        };
        if run_one(store, d, &from_since)?.is_empty() {
            return Ok((Vec::new(), None));
        }
    }
    Ok((run_one(store, d, opts)?, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{RunRecord, record};

    fn detection(id: &str, params: &str) -> Detection {
        let text = format!(
            "-- id: {id}\n-- title: t\n-- severity: high\n-- description: d\n-- reads: audit_lines\n\
             -- key: task_arn\n-- params: {params}\nSELECT 1\n"
        );
        crate::detect::parse(&format!("{id}.sql"), &text).unwrap()
    }

    fn fetch_at(store: &Store, t: &str) {
        store
            .conn()
            .execute(
                "INSERT INTO credential_requests (event_time, status, request_path, user_agent,
                     host, source_file, source_id, byte_offset, line_len, seq, incomplete,
                     ingested_at)
                 VALUES (?::TIMESTAMP, 200, '/v2/credentials/x', 'ua', 'h', 'audit.log', 's', 0,
                         1, 0, false, now())",
                [t],
            )
            .unwrap();
    }

    fn recorded_run(store: &Store, dets: &[Detection], plan: &Plan, failed: &[String]) {
        let run = RunRecord {
            judged_since: match &plan.mode {
                Mode::Incremental { since } => Some(since.clone()),
                Mode::Full(_) => None,
            },
            fingerprint: Some(plan.fingerprint.clone()),
            ..RunRecord::full("analyze", 0)
        };
        record(store, &run, dets, &[], failed).unwrap();
    }

    #[test]
    fn a_run_is_incremental_only_after_a_clean_run_of_the_same_judgement() {
        let store = Store::open_in_memory().unwrap();
        let dets = [detection("a", "n=1")];
        let opts = RunOptions::default();
        let full = |p: &Plan| matches!(&p.mode, Mode::Full(_));

        let p = plan(&store, &dets, &opts, false, 24).unwrap();
        assert_eq!(p.mode, Mode::Full("the store's first recorded run".into()));
        fetch_at(&store, "2026-11-16 10:00:00");
        fetch_at(&store, "2026-11-17 12:00:00");
        recorded_run(&store, &dets, &p, &[]);

        // The same judgement: from the watermark less the horizon and the margin.
        let p = plan(&store, &dets, &opts, false, 24).unwrap();
        assert_eq!(
            p.mode,
            Mode::Incremental {
                since: "2026-11-16T10:00:00Z".into()
            }
        );
        assert!(
            full(&plan(&store, &dets, &opts, true, 24).unwrap()),
            "--full"
        );
        let other_horizon = plan(&store, &dets, &opts, false, 6).unwrap();
        assert!(full(&other_horizon), "{other_horizon:?}");
        let mut params = opts.clone();
        params.params.insert("n".into(), "2".into());
        assert!(full(&plan(&store, &dets, &params, false, 24).unwrap()));
        let other = [detection("a", "n=1"), detection("b", "")];
        assert!(full(&plan(&store, &other, &opts, false, 24).unwrap()));

        // Older events than the previous run saw: a backfill.
        fetch_at(&store, "2026-11-01 00:00:00");
        let p = plan(&store, &dets, &opts, false, 24).unwrap();
        assert!(
            matches!(&p.mode, Mode::Full(why) if why.contains("before run 1's earliest")),
            "{p:?}"
        );
        recorded_run(&store, &dets, &p, &[]);
        let p = plan(&store, &dets, &opts, false, 24).unwrap();
        assert!(!full(&p), "{p:?}");

        // A run with a failed detection left its findings unjudged: the next one is full.
        recorded_run(&store, &dets, &p, &["a.sql".to_string()]);
        let p = plan(&store, &dets, &opts, false, 24).unwrap();
        assert!(
            matches!(&p.mode, Mode::Full(why) if why.contains("failed")),
            "{p:?}"
        );
    }
}
