//! The event IDs one ingest has taken so far, shared by all its parse threads.
//!
//! CloudTrail delivers some records twice, in different files, and two files of one stretch
//! of time are usually parsed by different threads. Without a set shared by the threads, each
//! copy went into a part of its own, and every part holding one was found out only when it was
//! registered: a lookup of its IDs in the other parts of its time range through DuckDB, then a
//! rewrite of the whole part without the copies (on the simulated 100-host day, 2,992 copies
//! among 9.8 M records made every part a rewrite, and DuckDB's lookups and rewrites were a third
//! of the ingest's CPU time). With this set a copy is dropped by the thread that reads it, and
//! a part whose every ID went through the set needs no lookup in the other parts this run wrote
//! ([`Coverage`]); only parts of earlier runs are looked up.
//!
//! Memory is bounded: past [`SeenIds::new`]'s capacity no ID is added any more, the set only
//! answers for those it holds, and the parts written after that are looked up through DuckDB
//! as before (correct, only slower).

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use credtrail_collector::store::PassHasher;

/// Keys are xxh3-128 hashes of event IDs already: their low 64 bits are the hash as they are.
type IdHash = std::hash::BuildHasherDefault<PassHasher>;

/// Shards, chosen by the hash's top bits (the set's own hash uses the low ones).
const SHARDS: usize = 64;
/// IDs per shard: 7/8 of 2^18, the most a table of 2^18 slots holds before it doubles. 64
/// shards hold 14.7 M IDs in at most 64 × 2^18 × 17 bytes = 285 MB.
const SHARD_CAP: usize = (1 << 18) / 8 * 7;

/// What [`SeenIds::insert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not taken before in this run: now it is.
    New,
    /// Taken before in this run (a copy).
    Repeated,
    /// Not in the set, and the set is full: the caller must find copies another way.
    Full,
}

/// Whether a part's IDs all went through the run's set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Every ID the part holds was added to the run's set (so no other part of this run holds
    /// it, whichever was written first, as long as the other part is also `Complete`).
    Complete,
    /// Some IDs were not added (the set was full), or the part did not come from this run.
    Partial,
}

/// Event ID hashes taken by one ingest.
pub struct SeenIds {
    shards: Vec<Mutex<HashSet<u128, IdHash>>>,
    shard_cap: usize,
}

impl Default for SeenIds {
    fn default() -> Self {
        Self::new(SHARD_CAP * SHARDS)
    }
}

impl SeenIds {
    /// A set that holds at most about `capacity` IDs (rounded down to a multiple of the shard
    /// count; IDs are spread over the shards by hash, so one shard can fill first).
    pub fn new(capacity: usize) -> SeenIds {
        SeenIds {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashSet::with_hasher(IdHash::default())))
                .collect(),
            shard_cap: capacity / SHARDS,
        }
    }

    /// Adds the hash of an event ID, telling whether it was there.
    pub fn insert(&self, id_hash: u128) -> Seen {
        let shard = &self.shards[(id_hash >> 122) as usize % SHARDS];
        let mut set = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if set.contains(&id_hash) {
            Seen::Repeated
        } else if set.len() >= self.shard_cap {
            Seen::Full
        } else {
            set.insert(id_hash);
            Seen::New
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u64) -> u128 {
        xxhash_rust::xxh3::xxh3_128(format!("id-{n}").as_bytes())
    }

    #[test]
    fn a_second_insert_is_a_repeat() {
        let s = SeenIds::default();
        assert_eq!(s.insert(h(1)), Seen::New);
        assert_eq!(s.insert(h(2)), Seen::New);
        assert_eq!(s.insert(h(1)), Seen::Repeated);
    }

    #[test]
    fn a_full_set_still_answers_for_what_it_holds() {
        let s = SeenIds::new(SHARDS);
        let (mut new, mut full) = (Vec::new(), Vec::new());
        for n in 0..10_000 {
            match s.insert(h(n)) {
                Seen::New => new.push(n),
                Seen::Full => full.push(n),
                Seen::Repeated => panic!("{n} was not inserted before"),
            }
        }
        assert_eq!(new.len(), SHARDS, "one ID per shard");
        assert!(!full.is_empty());
        for n in &new {
            assert_eq!(s.insert(h(*n)), Seen::Repeated);
        }
        for n in &full {
            assert_eq!(
                s.insert(h(*n)),
                Seen::Full,
                "never added, so never a repeat"
            );
        }
    }

    #[test]
    fn threads_share_it() {
        let s = SeenIds::default();
        let new: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| (0..5_000).filter(|n| s.insert(h(*n)) == Seen::New).count())
                })
                .collect();
            handles.into_iter().map(|t| t.join().unwrap()).sum()
        });
        assert_eq!(
            new, 5_000,
            "each ID is new exactly once, whichever thread saw it first"
        );
    }
}
