//! Exactly-once under store failures: a commit that fails (a full disk, injected at the store with
//! `credtrail_collector::fault`) while the batch holds decisions about files (a truncation, a file
//! rewritten while the collector was stopped), a full disk at start-up, a store deleted and
//! rebuilt, a corrupt store. Driven through the library; the invariant checks run after each.

mod common;

use std::time::Duration;

use common::{Env, assert_same_lines, check_invariants, count, segment_numbers, sorted};
use credtrail_collector::{Collector, Config, fault};

fn open(config: &Config) -> Collector {
    Collector::open(config, Some(Duration::from_secs(5))).unwrap()
}

fn numbers(c: &Collector) -> Vec<u64> {
    common::stored_numbers(c.store().unwrap().conn())
}

fn sql(c: &Collector, q: &str) -> i64 {
    count(c.store().unwrap().conn(), q)
}

/// Drains until a drain succeeds (at most `tries`), returning how many failed.
fn drain_until_ok(c: &mut Collector, tries: u32) -> u32 {
    for failed in 0..tries {
        if c.drain(false).is_ok() {
            return failed;
        }
    }
    panic!("no drain succeeded in {tries} tries");
}

fn truncate(env: &Env, name: &str) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(env.path(name))
        .unwrap()
        .set_len(0)
        .unwrap();
}

#[test]
fn a_truncation_seen_in_a_failed_commit_is_stored_once_when_space_returns() {
    let env = Env::new();
    let config = env.config();
    let mut c = open(&config);
    let mut expected = env.lines("audit.log", 0, 10);
    c.drain(false).unwrap();
    truncate(&env, "audit.log");
    expected.extend(env.lines("audit.log", 100, 700));
    fault::fail_commits(&config.store, 2);
    assert_eq!(drain_until_ok(&mut c, 5), 2, "two commits failed");
    assert_same_lines(&numbers(&c), &sorted(expected.clone()));
    check_invariants(c.store().unwrap().conn());
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_events WHERE kind = 'truncated'"
        ),
        1,
        "the truncation found in the failed batch is recorded once, on the retry"
    );
    assert_eq!(
        sql(
            &c,
            "SELECT count(DISTINCT source_id) FROM credential_requests"
        ),
        2
    );
    c.finish();
    // and a restart reads nothing again
    let mut c = open(&config);
    c.drain(false).unwrap();
    assert_same_lines(&numbers(&c), &sorted(expected));
    check_invariants(c.store().unwrap().conn());
}

#[test]
fn a_file_rewritten_while_stopped_and_a_failed_first_commit_leave_one_source() {
    let env = Env::new();
    let config = env.config();
    let mut expected = env.lines("audit.log", 0, 10);
    let mut c = open(&config);
    c.drain(false).unwrap();
    c.finish();
    // While stopped: the file is rewritten in place (same inode), with other lines.
    let body: String = (1000..1600)
        .map(|n| format!("{}\n", common::line(n)))
        .collect();
    std::fs::write(env.path("audit.log"), body).unwrap();
    expected.extend(1000..1600);
    let mut c = open(&config);
    fault::fail_commits(&config.store, 1);
    assert_eq!(drain_until_ok(&mut c, 5), 1);
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_state WHERE status = 'active'"
        ),
        1,
        "one active source for the one file"
    );
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_gaps WHERE kind = 'source_lost'"
        ),
        1,
        "the unread end of the rewritten file is recorded lost once, on the retry"
    );
    c.finish();
    let mut c = open(&config);
    env.lines("audit.log", 2000, 2005);
    expected.extend(2000..2005);
    c.drain(false).unwrap();
    assert_same_lines(&numbers(&c), &sorted(expected));
    check_invariants(c.store().unwrap().conn());
}

#[test]
fn gaps_and_events_of_a_failed_batch_are_recorded_on_the_retry() {
    let env = Env::new();
    let config = env.config();
    env.lines("audit.log.1", 0, 5);
    // audit.log.2 was deleted unread; a file vanished before its first line was complete.
    env.lines("audit.log.3", 10, 15);
    env.lines("audit.log", 20, 25);
    let mut c = open(&config);
    fault::fail_commits(&config.store, 1);
    assert_eq!(drain_until_ok(&mut c, 5), 1);
    assert_eq!(
        numbers(&c),
        sorted((0..5).chain(10..15).chain(20..25).collect())
    );
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_gaps WHERE kind = 'missing_rolls'"
        ),
        1,
        "the missing roll found in the failed batch is recorded on the retry"
    );
    // An unterminated file that vanishes while a commit fails.
    env.append("audit.log.9", b"no newline yet");
    c.poll(true, false).unwrap();
    env.remove("audit.log.9");
    fault::fail_commits(&config.store, 1);
    assert_eq!(drain_until_ok(&mut c, 5), 1);
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_gaps WHERE kind = 'unterminated_file'"
        ),
        1
    );
    check_invariants(c.store().unwrap().conn());
}

#[test]
fn a_full_disk_at_start_up_is_waited_out() {
    let env = Env::new();
    let config = env.config();
    env.lines("audit.log", 0, 20);
    fault::fail_opens(&config.store, 3);
    let mut c = Collector::open(&config, Some(Duration::from_secs(60)))
        .expect("a full disk at start-up is waited out, not an error");
    c.drain(false).unwrap();
    assert_eq!(numbers(&c), (0..20).collect::<Vec<_>>());
    check_invariants(c.store().unwrap().conn());
}

#[test]
fn a_corrupt_store_is_reported_as_corrupt() {
    let env = Env::new();
    let config = env.config();
    std::fs::create_dir_all(env.store.parent().unwrap()).unwrap();
    {
        let c = open(&config);
        c.finish();
    }
    // Damage every block after the header.
    let mut bytes = std::fs::read(&env.store).unwrap();
    for b in bytes.iter_mut().skip(4096) {
        *b = b.wrapping_mul(7).wrapping_add(13);
    }
    std::fs::write(&env.store, bytes).unwrap();
    let err = Collector::open(&config, Some(Duration::from_secs(2)))
        .err()
        .expect("a corrupt store is an error at once, even when told to wait for a lock");
    let text = format!("{err:#}");
    assert!(text.contains("corrupt"), "{text}");
    assert!(!text.contains("locked"), "{text}");
    // Not a DuckDB file at all
    std::fs::write(&env.store, b"garbage".repeat(1000)).unwrap();
    let text = format!(
        "{:#}",
        Collector::open(&config, Some(Duration::from_secs(2)))
            .err()
            .expect("not a database")
    );
    assert!(text.contains("corrupt or not a DuckDB database"), "{text}");
}

#[test]
fn a_rebuilt_store_publishes_beside_earlier_segments() {
    let env = Env::new();
    let config = env.config();
    let mut expected = env.lines("audit.log", 0, 100);
    let mut c = open(&config);
    c.drain(false).unwrap();
    c.publish().unwrap();
    c.finish();
    // The roll is gone and the store is deleted (an operator's reset): a new store starts.
    env.rename("audit.log", "audit.log.1");
    env.remove("audit.log.1");
    std::fs::remove_dir_all(env.store.parent().unwrap()).unwrap();
    expected.extend(env.lines("audit.log", 100, 200));
    let mut c = open(&config);
    c.drain(false).unwrap();
    c.publish().unwrap();
    c.finish();
    assert_same_lines(&segment_numbers(&env.segments), &sorted(expected));
}

#[test]
fn a_line_read_again_into_a_rebuilt_store_keeps_its_source_id() {
    let env = Env::new();
    let config = env.config();
    env.lines("audit.log", 0, 10);
    let ids = |c: &Collector| -> Vec<(String, i64)> {
        let conn = c.store().unwrap().conn();
        let mut stmt = conn
            .prepare("SELECT source_id, byte_offset FROM credential_requests ORDER BY 2")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut c = open(&config);
    c.drain(false).unwrap();
    let before = ids(&c);
    c.finish();
    std::fs::remove_dir_all(env.store.parent().unwrap()).unwrap();
    let mut c = open(&config);
    c.drain(false).unwrap();
    assert_eq!(
        ids(&c),
        before,
        "(source_id, byte_offset) names the same line in every store's life"
    );
}

#[test]
fn a_drain_after_a_failed_one_succeeds_when_its_first_poll_has_nothing_to_commit() {
    let env = Env::new();
    let config = env.config();
    env.lines("audit.log.1", 0, 5);
    env.lines("audit.log", 5, 10);
    let mut c = open(&config);
    c.drain(false).unwrap();
    c.finish();
    // While stopped the roll is deleted: its state waits three scans before it counts as gone,
    // and until then a poll has nothing to commit.
    env.remove("audit.log.1");
    let mut c = open(&config);
    fault::fail_commits(&config.store, 1);
    assert!(c.drain(false).is_err());
    c.drain(false)
        .expect("nothing fails any more: the drain succeeds");
    assert_eq!(numbers(&c), (0..10).collect::<Vec<_>>());
    assert_eq!(
        sql(&c, "SELECT count(*) FROM ingest_state"),
        1,
        "the deleted roll's state is gone"
    );
    check_invariants(c.store().unwrap().conn());
}
