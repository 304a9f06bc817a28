//! collector.md's property test: random sequences of what happens to the audit directory and to
//! the collector (append, partial append, hourly and size-mode rolls, truncation, deletion of a
//! roll, a failed commit, a kill, a restart, the store deleted and rebuilt, publication) run
//! against a model of which lines must be stored and published. After every drain the store's
//! multiset of lines equals the model's; at the end, so do the published segments' (read back
//! with DuckDB, one row per (host, source_id, byte_offset), as the analyzer keeps them).
//!
//! Each line carries a unique number, so a multiset with a number twice is a duplicate. A line
//! may be missing only when the model says its bytes were gone before the collector could read
//! them: in a roll deleted, or a file truncated, before a scan of a running collector held it
//! open (or while a batch holding it failed to commit).
//!
//! Each case runs with a small batch size or the default: with small batches a drain commits
//! batch after batch while it reads the next one, so a commit can fail with lines read beyond it.
//!
//! `PROPTEST_CASES` runs more cases than the default (which keeps the suite fast).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Env, assert_same_lines, check_invariants, line};
use credtrail_collector::{Collector, Config, fault};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Action {
    /// Complete lines appended to `audit.log` (completing a partial line first).
    Append(u8),
    /// The first bytes of the next line, no newline yet.
    PartialAppend,
    /// `audit.log` renamed to the next hourly name.
    RollHourly,
    /// `audit.log` renamed to the next size-mode index.
    RollSize,
    /// `audit.log` truncated to zero bytes in place.
    Truncate,
    /// The oldest roll deleted.
    DeleteOldestRoll,
    /// The collector scans, reads and commits everything.
    Drain,
    /// The next commit fails (a full disk, or any write error).
    FailNextCommit,
    /// The collector process dies.
    Kill,
    /// The collector starts.
    Restart,
    /// The collector is stopped and its store deleted (an operator's reset).
    RebuildStore,
    /// Segments are published.
    Publish,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (1u8..30).prop_map(Action::Append),
        1 => Just(Action::PartialAppend),
        2 => Just(Action::RollHourly),
        2 => Just(Action::RollSize),
        1 => Just(Action::Truncate),
        2 => Just(Action::DeleteOldestRoll),
        5 => Just(Action::Drain),
        2 => Just(Action::FailNextCommit),
        1 => Just(Action::Kill),
        1 => Just(Action::Restart),
        1 => Just(Action::RebuildStore),
        2 => Just(Action::Publish),
    ]
}

/// One file of the directory (or deleted, still held open by the collector), as the model sees it.
#[derive(Debug, Clone)]
struct File {
    name: String,
    /// Complete lines, in order.
    lines: Vec<u64>,
    /// How many of `lines` the store holds.
    committed: usize,
    /// A started line (its number) with no newline yet.
    partial: Option<u64>,
    /// The running collector has it open (a scan found it since the collector started).
    held: bool,
}

struct Model {
    files: Vec<File>,
    /// Deleted files the collector still holds open.
    held_deleted: Vec<File>,
    store: Vec<u64>,
    published: BTreeSet<u64>,
    next_line: u64,
    next_hour: u32,
    next_index: u64,
    failing_commits: u32,
}

impl Model {
    fn live(&mut self) -> Option<&mut File> {
        self.files.iter_mut().find(|f| f.name == "audit.log")
    }

    fn live_or_new(&mut self) -> &mut File {
        if self.live().is_none() {
            self.files.push(File {
                name: "audit.log".into(),
                lines: Vec::new(),
                committed: 0,
                partial: None,
                held: false,
            });
        }
        self.live().unwrap()
    }

    /// A drain that committed: everything complete in every file held or present is stored.
    fn drained(&mut self) {
        for f in self.files.iter_mut().chain(self.held_deleted.iter_mut()) {
            self.store.extend_from_slice(&f.lines[f.committed..]);
            f.committed = f.lines.len();
            f.held = true;
        }
        self.held_deleted.clear();
    }

    /// A drain whose commit failed: nothing stored, but every file present is held now.
    fn drain_failed(&mut self) {
        for f in &mut self.files {
            f.held = true;
        }
    }

    /// The collector's descriptors are closed: deleted files not read to the end are lost.
    fn stopped(&mut self) {
        self.held_deleted.clear();
        for f in &mut self.files {
            f.held = false;
        }
    }
}

fn dated(hour: u32) -> String {
    format!("audit.log.2026-11-{:02}-{:02}", 1 + hour / 24, hour % 24)
}

fn rolls_oldest_first(files: &[File]) -> Vec<usize> {
    let mut rolls: Vec<usize> = (0..files.len())
        .filter(|&i| files[i].name != "audit.log")
        .collect();
    // Dated names sort by time; size-mode indices by number; dated ones are older (roll order).
    rolls.sort_by_key(|&i| {
        let suffix = files[i].name.trim_start_matches("audit.log.");
        match suffix.parse::<u64>() {
            Ok(n) => (1, n, String::new()),
            Err(_) => (0, 0, suffix.to_string()),
        }
    });
    rolls
}

fn open(config: &Config) -> Collector {
    Collector::open(config, Some(Duration::from_secs(10))).unwrap()
}

fn stored(c: &Collector) -> Vec<u64> {
    common::stored_numbers(c.store().unwrap().conn())
}

/// Published lines, one per (host, source_id, byte_offset), as the analyzer keeps them.
fn published(env: &Env) -> Vec<u64> {
    let Some(from) = common::published_table(&env.segments, "credential_requests") else {
        return Vec::new();
    };
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT CAST(regexp_extract(any_value(user_agent), 'n=(\\d+)$', 1) AS UBIGINT)
             FROM {from} GROUP BY host, source_id, byte_offset ORDER BY 1"
        ))
        .unwrap();
    stmt.query_map([], |r| r.get::<_, u64>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

fn run(actions: &[Action]) {
    run_with(actions, default_batch_rows());
}

/// The collector's default `--batch-rows`.
fn default_batch_rows() -> usize {
    Config::new("audit", "store.duckdb").batch_rows
}

/// `run` with batches committed at `batch_rows` rows.
fn run_with(actions: &[Action], batch_rows: usize) {
    let env = Env::new();
    let mut config = env.config();
    config.batch_rows = batch_rows;
    fault::fail_commits(&config.store, 0);
    let mut m = Model {
        files: Vec::new(),
        held_deleted: Vec::new(),
        store: Vec::new(),
        published: BTreeSet::new(),
        next_line: 0,
        next_hour: 0,
        next_index: 1,
        failing_commits: 0,
    };
    let mut c: Option<Collector> = Some(open(&config));
    for (step, a) in actions.iter().enumerate() {
        match a {
            Action::Append(k) => {
                let f = m.live_or_new();
                let mut text = String::new();
                if let Some(n) = f.partial.take() {
                    let l = line(n);
                    text.push_str(&l[l.len() / 2..]);
                    text.push('\n');
                    f.lines.push(n);
                }
                for _ in 0..*k {
                    let n = m.next_line;
                    m.next_line += 1;
                    text.push_str(&line(n));
                    text.push('\n');
                    m.live().unwrap().lines.push(n);
                }
                env.append("audit.log", text.as_bytes());
            }
            Action::PartialAppend => {
                if m.live().is_some_and(|f| f.partial.is_some()) {
                    continue;
                }
                let n = m.next_line;
                m.next_line += 1;
                let l = line(n);
                env.append("audit.log", &l.as_bytes()[..l.len() / 2]);
                m.live_or_new().partial = Some(n);
            }
            Action::RollHourly | Action::RollSize => {
                if m.live().is_none() {
                    continue;
                }
                let to = if matches!(a, Action::RollHourly) {
                    m.next_hour += 1;
                    dated(m.next_hour)
                } else {
                    // The agent's next index: one past the highest present.
                    let max = m
                        .files
                        .iter()
                        .filter_map(|f| f.name.trim_start_matches("audit.log.").parse::<u64>().ok())
                        .max()
                        .unwrap_or(0);
                    m.next_index = max + 1;
                    format!("audit.log.{}", m.next_index)
                };
                env.rename("audit.log", &to);
                m.live().unwrap().name = to;
            }
            Action::Truncate => {
                let Some(f) = m.live() else { continue };
                // Bytes not committed are gone; what is stored stays stored.
                f.lines.clear();
                f.committed = 0;
                f.partial = None;
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(env.path("audit.log"))
                    .unwrap()
                    .set_len(0)
                    .unwrap();
            }
            Action::DeleteOldestRoll => {
                let Some(&i) = rolls_oldest_first(&m.files).first() else {
                    continue;
                };
                let f = m.files.remove(i);
                env.remove(&f.name);
                if f.held && c.is_some() {
                    m.held_deleted.push(f);
                }
            }
            Action::Drain => {
                let Some(col) = c.as_mut() else { continue };
                let result = col.drain(false);
                if m.failing_commits > 0 {
                    m.failing_commits -= 1;
                    assert!(result.is_err(), "step {step}: the commit was to fail");
                    m.drain_failed();
                } else {
                    result.unwrap_or_else(|e| panic!("step {step}: {e:#}"));
                    m.drained();
                }
                assert_same_lines(&stored(col), &sorted(m.store.clone()));
                check_invariants(col.store().unwrap().conn());
            }
            Action::FailNextCommit => {
                m.failing_commits += 1;
                fault::fail_commits(&config.store, m.failing_commits);
            }
            Action::Kill => {
                if c.take().is_some() {
                    m.stopped();
                }
            }
            Action::Restart => {
                if c.is_none() {
                    c = Some(open(&config));
                }
            }
            Action::RebuildStore => {
                if c.take().is_some() {
                    m.stopped();
                }
                std::fs::remove_dir_all(env.store.parent().unwrap()).unwrap();
                m.store.clear();
                for f in &mut m.files {
                    f.committed = 0;
                }
                c = Some(open(&config));
            }
            Action::Publish => {
                let Some(col) = c.as_mut() else { continue };
                col.publish()
                    .unwrap_or_else(|e| panic!("step {step}: {e:#}"));
                m.published.extend(m.store.iter().copied());
            }
        }
    }
    // The end: the disk has space, the collector runs, reads everything and publishes.
    fault::fail_commits(&config.store, 0);
    m.failing_commits = 0;
    let mut col = c.take().unwrap_or_else(|| {
        m.stopped();
        open(&config)
    });
    col.drain(false)
        .unwrap_or_else(|e| panic!("the last drain: {e:#}"));
    m.drained();
    col.publish().unwrap();
    m.published.extend(m.store.iter().copied());
    assert_same_lines(&stored(&col), &sorted(m.store.clone()));
    check_invariants(col.store().unwrap().conn());
    assert_same_lines(
        &published(&env),
        &m.published.iter().copied().collect::<Vec<_>>(),
    );
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_line_is_stored_and_published_exactly_once(
        actions in proptest::collection::vec(action(), 1..40),
        batch_rows in prop_oneof![Just(3usize), Just(8), Just(default_batch_rows())],
    ) {
        run_with(&actions, batch_rows);
    }
}

/// A sequence that once went wrong, kept as a plain test.
#[test]
fn a_truncation_between_two_failed_commits_and_a_rebuild() {
    use Action::*;
    run(&[
        Append(5),
        Drain,
        Truncate,
        Append(7),
        FailNextCommit,
        FailNextCommit,
        Drain,
        Drain,
        Publish,
        RollSize,
        Append(3),
        Drain,
        Publish,
        RebuildStore,
        Append(2),
        Drain,
        Publish,
    ]);
}

/// A failed drain, then a drain whose first poll has nothing to commit (a deleted roll's state
/// waits three scans): it once reported a failure that no longer was.
#[test]
fn a_failed_drain_then_a_first_poll_with_nothing_to_commit() {
    use Action::*;
    run(&[
        Append(4),
        RollSize,
        Append(3),
        Drain,
        Kill,
        DeleteOldestRoll,
        Restart,
        FailNextCommit,
        Drain,
        Drain,
    ]);
}

/// A backlog of several batches whose first commit fails while the second is read, then a
/// truncation, more lines and a kill: the read-ahead lines are read again, stored once.
#[test]
fn a_commit_fails_while_the_next_batch_is_read() {
    use Action::*;
    run_with(
        &[
            Append(29),
            FailNextCommit,
            Drain,
            Append(6),
            Drain,
            Truncate,
            Append(11),
            FailNextCommit,
            FailNextCommit,
            Drain,
            RollSize,
            Append(9),
            Drain,
            Kill,
            Append(7),
            Restart,
            Drain,
            Publish,
        ],
        4,
    );
}
