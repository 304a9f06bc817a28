//! Which files in the audit directory are audit-log files, in which order they were written,
//! and how one file is recognised again (device, inode and a content fingerprint; never its name).

use std::cmp::Ordering;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use xxhash_rust::xxh3::xxh3_64;

/// The live file's name. Rolled files carry a suffix.
pub const LIVE_NAME: &str = "audit.log";

/// Longest prefix hashed for a file's fingerprint.
pub const FINGERPRINT_MAX: usize = 1024;

/// Bytes before the committed offset hashed to check that the file still holds what was read.
pub const CHECK_WINDOW: u64 = 256;

/// How the ECS agent named a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileName {
    /// `audit.log`: the live file of agents 1.36 and later.
    Live,
    /// `audit.log.YYYY-MM-DD-HH`: an hourly roll, or the live file of agents before 1.36.
    Dated {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
    },
    /// `audit.log.N`: a size-mode roll; higher is newer.
    Numbered(u64),
}

impl FileName {
    /// Classifies a directory entry name; `None` for anything the agent does not write.
    pub fn classify(name: &str) -> Option<FileName> {
        if name == LIVE_NAME {
            return Some(FileName::Live);
        }
        let suffix = name.strip_prefix(LIVE_NAME)?.strip_prefix('.')?;
        if !suffix.is_empty() && suffix.len() <= 20 && suffix.bytes().all(|b| b.is_ascii_digit()) {
            return suffix.parse().ok().map(FileName::Numbered);
        }
        let b = suffix.as_bytes();
        if b.len() == 13
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'-'
            && [0..4, 5..7, 8..10, 11..13]
                .iter()
                .all(|r| b[r.clone()].iter().all(u8::is_ascii_digit))
        {
            let year = suffix[0..4].parse().ok()?;
            let month = suffix[5..7].parse().ok()?;
            let day = suffix[8..10].parse().ok()?;
            let hour = suffix[11..13].parse().ok()?;
            if (1..=12).contains(&month) && (1..=31).contains(&day) && hour < 24 {
                return Some(FileName::Dated {
                    year,
                    month,
                    day,
                    hour,
                });
            }
        }
        None
    }

    /// Writing order: dated files (older agents, or hourly mode) by date, then size rolls by
    /// index, then the live file. Only used to read a backlog oldest first.
    pub fn roll_order(&self, other: &FileName) -> Ordering {
        self.rank().cmp(&other.rank())
    }

    /// Sort key behind [`FileName::roll_order`].
    pub fn rank(&self) -> (u8, u64) {
        match self {
            FileName::Dated {
                year,
                month,
                day,
                hour,
            } => (
                0,
                u64::from(*year) * 1_000_000
                    + u64::from(*month) * 10_000
                    + u64::from(*day) * 100
                    + u64::from(*hour),
            ),
            FileName::Numbered(n) => (1, *n),
            FileName::Live => (2, 0),
        }
    }
}

/// What identifies a file's content: the hash of its first line (at most [`FINGERPRINT_MAX`]
/// bytes), taken once that line is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub len: u32,
    pub hash: u64,
}

/// Reads the fingerprint of an open file. `Ok(None)` while the first line is still incomplete
/// and shorter than [`FINGERPRINT_MAX`]: such a file cannot be told apart yet and is not read.
pub fn fingerprint(file: &File) -> io::Result<Option<Fingerprint>> {
    let mut buf = [0u8; FINGERPRINT_MAX];
    let n = read_full_at(file, &mut buf, 0)?;
    let len = match buf[..n].iter().position(|&b| b == b'\n') {
        Some(i) => i + 1,
        None if n == FINGERPRINT_MAX => FINGERPRINT_MAX,
        None => return Ok(None),
    };
    Ok(Some(Fingerprint {
        len: len as u32,
        hash: xxh3_64(&buf[..len]),
    }))
}

/// Re-hashes the first `fp.len` bytes; true when the file still starts as it did.
pub fn fingerprint_matches(file: &File, fp: Fingerprint) -> io::Result<bool> {
    let mut buf = vec![0u8; fp.len as usize];
    let n = read_full_at(file, &mut buf, 0)?;
    Ok(n == buf.len() && xxh3_64(&buf) == fp.hash)
}

/// Hash of the [`CHECK_WINDOW`] bytes that end at `offset` (the tail of what was committed).
pub fn check_hash(file: &File, offset: u64) -> io::Result<Option<u64>> {
    let start = offset.saturating_sub(CHECK_WINDOW);
    let mut buf = vec![0u8; (offset - start) as usize];
    let n = read_full_at(file, &mut buf, start)?;
    if n < buf.len() {
        return Ok(None);
    }
    Ok(Some(xxh3_64(&buf)))
}

/// `read_at` until `buf` is full or end of file; returns the bytes read.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_name_the_agent_writes() {
        assert_eq!(FileName::classify("audit.log"), Some(FileName::Live));
        assert_eq!(
            FileName::classify("audit.log.17"),
            Some(FileName::Numbered(17))
        );
        assert_eq!(
            FileName::classify("audit.log.2026-11-20-07"),
            Some(FileName::Dated {
                year: 2026,
                month: 11,
                day: 20,
                hour: 7
            })
        );
        for other in [
            "audit.log.gz",
            "audit.log.",
            "audit.logx",
            "ecs-agent.log",
            "audit.log.2026-13-20-07",
            "audit.log.2026-11-20-24",
            "audit.log.2026-11-20",
            "audit.log.1.gz",
        ] {
            assert_eq!(FileName::classify(other), None, "{other}");
        }
    }

    #[test]
    fn roll_order_is_oldest_first() {
        let mut names = [
            "audit.log",
            "audit.log.10",
            "audit.log.9",
            "audit.log.2026-11-20-07",
            "audit.log.2026-11-19-23",
        ]
        .map(|n| FileName::classify(n).unwrap());
        names.sort_by(|a, b| a.roll_order(b));
        assert_eq!(
            names,
            [
                FileName::Dated {
                    year: 2026,
                    month: 11,
                    day: 19,
                    hour: 23
                },
                FileName::Dated {
                    year: 2026,
                    month: 11,
                    day: 20,
                    hour: 7
                },
                FileName::Numbered(9),
                FileName::Numbered(10),
                FileName::Live
            ]
        );
    }

    #[test]
    fn fingerprint_waits_for_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, b"abc").unwrap();
        let f = File::open(&path).unwrap();
        assert_eq!(fingerprint(&f).unwrap(), None);
        std::fs::write(&path, b"abc\ndef").unwrap();
        let fp = fingerprint(&f).unwrap().unwrap();
        assert_eq!(fp.len, 4);
        assert!(fingerprint_matches(&f, fp).unwrap());
        std::fs::write(&path, b"abd\ndef").unwrap();
        assert!(!fingerprint_matches(&f, fp).unwrap());
        std::fs::write(&path, vec![b'x'; 5000]).unwrap();
        assert_eq!(
            fingerprint(&f).unwrap().unwrap().len as usize,
            FINGERPRINT_MAX
        );
    }
}
