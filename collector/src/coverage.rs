//! When the host was **covered** (detections.md, Terms): while this collector was running and
//! tailing the agent's log. Recorded in `collector_coverage`, one row per interval, extended in
//! place at every heartbeat (also when no line arrives) and published like every other table.
//!
//! Pure bookkeeping, no I/O: the tailer reports what it read as a [`Reach`] (runs of line times,
//! split where a gap is recorded), [`Coverage::advance`] turns a reach and the moment the end of
//! the log was read into the rows of one transaction, and [`Coverage::applied`] takes them as
//! the truth once that transaction committed.
//!
//! - A run (one process start) starts a new interval; so does a gap, and the agent naming
//!   another container instance.
//! - Lines read as a backlog (written before the collector watched them) cover the host from
//!   the first record of the earliest file read (or, for a file resumed from an earlier run, its
//!   last record read then) to the moment the end was read, unless a gap lies in between: lines
//!   before a gap close an interval at their last record, and the next interval starts at the
//!   first record after it.
//! - A gap whose place among the lines is unknown (a file lost while the collector was stopped,
//!   a file that vanished before its first line was complete) lies before every line of the
//!   files first seen after it: coverage starts again at the earliest of those lines (or at the
//!   moment the gap was found, when there are none), and nothing read before counts.

use std::time::{Duration, Instant};

/// A stretch of lines read with no gap recorded inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub from_us: i64,
    pub until_us: i64,
    /// A gap was recorded just before this run's first line.
    pub after_gap: bool,
}

/// What the tailer read since coverage was last recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// Runs of line times in the order the lines were read (oldest file first).
    pub runs: Vec<Run>,
    /// The next line begins a new run, after a gap.
    gap_pending: bool,
    /// A gap whose place among the lines is unknown was recorded.
    pub lost: bool,
    /// The earliest line read from a file first seen by this process.
    pub first_new_us: Option<i64>,
}

impl Reach {
    /// A line (or, for a resumed file, the last line read before) at `t_us`; `new_source`: from a
    /// file first seen by this process.
    pub fn line(&mut self, t_us: i64, new_source: bool) {
        if new_source {
            self.first_new_us = Some(self.first_new_us.map_or(t_us, |f| f.min(t_us)));
        }
        match self.runs.last_mut() {
            Some(r) if !self.gap_pending => {
                r.from_us = r.from_us.min(t_us);
                r.until_us = r.until_us.max(t_us);
            }
            _ => {
                self.runs.push(Run {
                    from_us: t_us,
                    until_us: t_us,
                    after_gap: self.gap_pending,
                });
                self.gap_pending = false;
            }
        }
    }

    /// A gap lies before the next line read.
    pub fn gap_before_next(&mut self) {
        self.gap_pending = true;
    }

    /// A gap whose place among the lines is unknown.
    pub fn lost(&mut self) {
        self.lost = true;
    }

    /// True when nothing was read and no gap recorded.
    pub fn is_empty(&self) -> bool {
        *self == Reach::default()
    }

    /// After a failed commit: the runs are read again from the files, but a gap recorded since
    /// `committed` is not recorded twice, so it is kept.
    pub fn rolled_back(&mut self, committed: &Reach) {
        let lost = self.lost;
        let gap_pending = self.gap_pending;
        *self = committed.clone();
        self.lost |= lost;
        self.gap_pending |= gap_pending;
    }
}

/// One `collector_coverage` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageRow {
    pub run_id: String,
    pub interval_no: i32,
    pub mode: &'static str,
    pub container_instance_arn: Option<String>,
    pub cluster: Option<String>,
    pub covered_from_us: i64,
    pub covered_until_us: i64,
    pub run_started_us: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    no: i32,
    from_us: i64,
    until_us: i64,
    container_instance_arn: Option<String>,
    cluster: Option<String>,
}

/// The rows of one transaction and the state they leave once committed.
#[derive(Debug, Clone)]
pub struct Pending {
    pub rows: Vec<CoverageRow>,
    current: Interval,
    next_no: i32,
}

/// One run's coverage intervals, as committed.
#[derive(Debug)]
pub struct Coverage {
    run_id: String,
    mode: &'static str,
    run_started_us: i64,
    heartbeat: Duration,
    next_no: i32,
    current: Option<Interval>,
    last_recorded: Option<Instant>,
    /// The agent's latest answer (`/v1/metadata`): container instance ARN and cluster.
    agent: Option<(Option<String>, Option<String>)>,
}

impl Coverage {
    pub fn new(
        run_id: String,
        mode: &'static str,
        run_started_us: i64,
        heartbeat: Duration,
    ) -> Self {
        Coverage {
            run_id,
            mode,
            run_started_us,
            heartbeat,
            next_no: 1,
            current: None,
            last_recorded: None,
            agent: None,
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The agent's container instance ARN and cluster, when it answered.
    pub fn set_agent(&mut self, container_instance_arn: Option<String>, cluster: Option<String>) {
        self.agent = Some((container_instance_arn, cluster));
    }

    /// True when the current interval should be extended now: none is recorded yet, a heartbeat
    /// has passed, or the agent's answer differs from what the interval says.
    pub fn due(&self) -> bool {
        let Some(current) = &self.current else {
            return true;
        };
        if let Some((arn, cluster)) = &self.agent
            && (arn.is_some() && *arn != current.container_instance_arn
                || cluster.is_some() && *cluster != current.cluster)
        {
            return true;
        }
        self.last_recorded
            .is_none_or(|t| t.elapsed() >= self.heartbeat)
    }

    /// The rows that record coverage up to `read_end_us` (the start of the last scan after which
    /// every file was read to its end: every line written before it is stored or in the batch
    /// they commit with), given what was read since coverage was last recorded.
    pub fn advance(&self, reach: &Reach, read_end_us: i64) -> Pending {
        let mut runs = reach.runs.clone();
        if reach.lost {
            // The lost lines lie before every line of the files first seen after them.
            let floor = reach.first_new_us.unwrap_or(read_end_us);
            runs.retain(|r| r.until_us >= floor);
            for r in &mut runs {
                r.from_us = r.from_us.max(floor);
            }
            match runs.first_mut() {
                Some(r) => r.after_gap = true,
                None => runs.push(Run {
                    from_us: floor,
                    until_us: floor,
                    after_gap: true,
                }),
            }
        }
        let (arn, cluster) = match (&self.agent, &self.current) {
            (Some((a, c)), _) => (a.clone(), c.clone()),
            (None, Some(i)) => (i.container_instance_arn.clone(), i.cluster.clone()),
            (None, None) => (None, None),
        };
        let mut rows = Vec::new();
        let mut next_no = self.next_no;
        let open_interval = |from_us: i64, until_us: i64, next_no: &mut i32| {
            let i = Interval {
                no: *next_no,
                from_us,
                until_us: until_us.max(from_us),
                container_instance_arn: arn.clone(),
                cluster: cluster.clone(),
            };
            *next_no += 1;
            i
        };
        let mut rest: &[Run] = &runs;
        let mut cur = match self.current.clone() {
            None => {
                // The run's first record: the backlog, from its first line (or the start).
                let (from, until) = match runs.first() {
                    Some(r) if r.after_gap => (r.from_us, r.until_us),
                    Some(r) => (r.from_us.min(self.run_started_us), r.until_us),
                    None => (self.run_started_us, self.run_started_us),
                };
                if !runs.is_empty() {
                    rest = &runs[1..];
                }
                open_interval(from, until, &mut next_no)
            }
            Some(mut c) => {
                // Lines before the first gap continue the current interval.
                while let Some((r, tail)) = rest.split_first() {
                    if r.after_gap {
                        break;
                    }
                    c.until_us = c.until_us.max(r.until_us);
                    rest = tail;
                }
                c
            }
        };
        for r in rest {
            // A gap: what came before ends at its last line, the next interval starts after it.
            rows.push(self.row(&cur));
            cur = open_interval(r.from_us, r.until_us, &mut next_no);
        }
        let changed = |old: &Option<String>, new: &Option<String>| {
            old.is_some() && new.is_some() && old != new
        };
        if changed(&cur.container_instance_arn, &arn) || changed(&cur.cluster, &cluster) {
            // The agent re-registered: another container instance from now on.
            rows.push(self.row(&cur));
            cur = open_interval(read_end_us, read_end_us, &mut next_no);
        }
        cur.container_instance_arn = cur.container_instance_arn.or(arn);
        cur.cluster = cur.cluster.or(cluster);
        cur.until_us = cur.until_us.max(read_end_us);
        rows.push(self.row(&cur));
        Pending {
            rows,
            current: cur,
            next_no,
        }
    }

    /// The pending rows were committed.
    pub fn applied(&mut self, p: Pending) {
        self.current = Some(p.current);
        self.next_no = p.next_no;
        self.last_recorded = Some(Instant::now());
    }

    fn row(&self, i: &Interval) -> CoverageRow {
        CoverageRow {
            run_id: self.run_id.clone(),
            interval_no: i.no,
            mode: self.mode,
            container_instance_arn: i.container_instance_arn.clone(),
            cluster: i.cluster.clone(),
            covered_from_us: i.from_us,
            covered_until_us: i.until_us,
            run_started_us: self.run_started_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn cov(started: i64) -> Coverage {
        Coverage::new("r".into(), "follow", started, Duration::from_secs(60))
    }

    fn spans(p: &Pending) -> Vec<(i32, i64, i64)> {
        p.rows
            .iter()
            .map(|r| (r.interval_no, r.covered_from_us / S, r.covered_until_us / S))
            .collect()
    }

    #[test]
    fn a_start_with_nothing_to_read_is_covered_from_the_start() {
        let c = cov(100 * S);
        let p = c.advance(&Reach::default(), 101 * S);
        assert_eq!(spans(&p), [(1, 100, 101)]);
    }

    #[test]
    fn a_backlog_covers_from_its_first_line_to_the_read_end() {
        let mut c = cov(1000 * S);
        let mut r = Reach::default();
        r.line(10 * S, true);
        r.line(20 * S, true);
        let p = c.advance(&r, 1001 * S);
        assert_eq!(spans(&p), [(1, 10, 1001)]);
        c.applied(p);
        // A heartbeat with nothing read extends the same interval.
        let p = c.advance(&Reach::default(), 1061 * S);
        assert_eq!(spans(&p), [(1, 10, 1061)]);
    }

    #[test]
    fn a_gap_between_files_splits_the_backlog() {
        let c = cov(1000 * S);
        let mut r = Reach::default();
        r.line(10 * S, true);
        r.line(20 * S, true);
        r.gap_before_next();
        r.line(50 * S, true);
        r.line(60 * S, true);
        let p = c.advance(&r, 1001 * S);
        assert_eq!(spans(&p), [(1, 10, 20), (2, 50, 1001)]);
    }

    #[test]
    fn a_gap_while_following_closes_the_interval() {
        let mut c = cov(1000 * S);
        c.applied(c.advance(&Reach::default(), 1001 * S));
        let mut r = Reach::default();
        r.line(1010 * S, false);
        r.gap_before_next();
        r.line(1030 * S, true);
        let p = c.advance(&r, 1040 * S);
        assert_eq!(spans(&p), [(1, 1000, 1010), (2, 1030, 1040)]);
    }

    #[test]
    fn a_lost_file_moves_the_start_to_the_first_new_line() {
        let c = cov(1000 * S);
        let mut r = Reach::default();
        r.line(5 * S, false); // a resumed file, before the loss
        r.line(40 * S, true); // files first seen now
        r.line(45 * S, true);
        r.lost();
        assert_eq!(spans(&c.advance(&r, 1001 * S)), [(1, 40, 1001)]);
        let mut nothing_new = Reach::default();
        nothing_new.line(5 * S, false);
        nothing_new.lost();
        assert_eq!(spans(&c.advance(&nothing_new, 1001 * S)), [(1, 1001, 1001)]);
    }

    #[test]
    fn another_container_instance_starts_another_interval() {
        let mut c = cov(100 * S);
        c.applied(c.advance(&Reach::default(), 101 * S));
        assert!(!c.due());
        c.set_agent(Some("arn:ci/1".into()), Some("prod".into()));
        assert!(c.due(), "the instance ARN became known");
        let p = c.advance(&Reach::default(), 102 * S);
        assert_eq!(spans(&p), [(1, 100, 102)]);
        assert_eq!(
            p.rows[0].container_instance_arn.as_deref(),
            Some("arn:ci/1")
        );
        c.applied(p);
        c.set_agent(Some("arn:ci/2".into()), Some("prod".into()));
        let p = c.advance(&Reach::default(), 103 * S);
        assert_eq!(spans(&p), [(1, 100, 102), (2, 103, 103)]);
        assert_eq!(
            p.rows[1].container_instance_arn.as_deref(),
            Some("arn:ci/2")
        );
    }

    #[test]
    fn a_rollback_keeps_the_gaps_recorded_since() {
        let committed = Reach::default();
        let mut r = Reach::default();
        r.line(10 * S, true);
        r.lost();
        r.gap_before_next();
        r.rolled_back(&committed);
        assert!(r.runs.is_empty());
        assert!(r.lost);
        r.line(20 * S, true);
        assert!(r.runs[0].after_gap);
    }
}
