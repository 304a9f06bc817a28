//! Immutable Parquet segments: how the analyzer (which never opens the live store) and S3 get
//! the data.
//!
//! A segment is a range of `seq` values. The range is recorded (`pending_export`) *before* any
//! file is written, so a crash halfway re-exports exactly the same range under exactly the same
//! names, replacing rather than duplicating. Each file is written under a temporary name,
//! synced, and renamed into
//! `<table>/date=YYYY-MM-DD/hour=HH/<host>-<store_id>-<from>-<to>.parquet`; the store ID (created with
//! the store) keeps a rebuilt store, whose seq starts again, from replacing earlier segments.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::store::Store;

/// The tables published, each with the timestamp column that partitions it.
/// `collector_coverage` rows are extended in place under a new seq: an interval is published
/// again with every extension (under the hour of its `covered_until`), and readers keep its row
/// with the latest `covered_until`.
pub const TABLES: [(&str, &str); 4] = [
    ("credential_requests", "event_time"),
    ("rejected_lines", "ingested_at"),
    ("task_inventory", "observed_at"),
    ("collector_coverage", "covered_until"),
];

const EXPORTED_UPTO: &str = "exported_upto";
const PENDING_EXPORT: &str = "pending_export";

/// Publishes every committed row not yet published. Returns the number of files written.
pub fn publish(store: &Store, dir: &Path, host: &str) -> Result<u64> {
    let (from, to) = match store.meta(PENDING_EXPORT)? {
        Some(range) => parse_range(&range)?,
        None => {
            let done: i64 = store
                .meta(EXPORTED_UPTO)?
                .map(|v| v.parse())
                .transpose()
                .context("collector_meta.exported_upto is not a number")?
                .unwrap_or(0);
            let last = store.next_seq()? - 1;
            if last <= done {
                return Ok(0);
            }
            let range = (done + 1, last);
            store.set_meta(&[(PENDING_EXPORT, Some(&format!("{}-{}", range.0, range.1)))])?;
            range
        }
    };
    let mut files = 0;
    // The store's ID makes a name unique to this store's life: a rebuilt store's seq starts
    // again at 1, and must publish beside, never over, what an earlier store published.
    let prefix = format!("{}-{}", sanitize(host), sanitize(&store.store_id()?));
    for (table, time_col) in TABLES {
        files += export_table(store, dir, &prefix, table, time_col, from, to)
            .with_context(|| format!("publishing {table} rows {from}..={to}"))?;
    }
    sync_dir(dir)?;
    let upto = to.to_string();
    store.set_meta(&[(EXPORTED_UPTO, Some(&upto)), (PENDING_EXPORT, None)])?;
    Ok(files)
}

fn export_table(
    store: &Store,
    dir: &Path,
    prefix: &str,
    table: &str,
    time_col: &str,
    from: i64,
    to: i64,
) -> Result<u64> {
    let conn = store.conn();
    let mut stmt = conn.prepare(&format!(
        "SELECT DISTINCT strftime({time_col}, '%Y-%m-%d'), hour({time_col}),
                epoch_us(date_trunc('hour', {time_col}))
         FROM {table} WHERE seq BETWEEN ? AND ? ORDER BY 3"
    ))?;
    let hours: Vec<(String, i64, i64)> = stmt
        .query_map([from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut files = 0;
    for (date, hour, start_us) in hours {
        let part = dir
            .join(table)
            .join(format!("date={date}"))
            .join(format!("hour={hour:02}"));
        std::fs::create_dir_all(&part).with_context(|| format!("creating {}", part.display()))?;
        let name = format!("{prefix}-{from:012}-{to:012}.parquet");
        let final_path = part.join(&name);
        let tmp_path = part.join(format!(".{name}.tmp"));
        let sql = format!(
            "COPY (SELECT * FROM {table}
                   WHERE seq BETWEEN {from} AND {to}
                     AND {time_col} >= make_timestamp({start_us})
                     AND {time_col} < make_timestamp({start_us}) + INTERVAL 1 HOUR
                   ORDER BY seq)
             TO {} (FORMAT parquet, COMPRESSION zstd)",
            sql_string(&tmp_path)?
        );
        conn.execute_batch(&sql)
            .with_context(|| format!("writing {}", tmp_path.display()))?;
        File::open(&tmp_path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", tmp_path.display()))?;
        std::fs::rename(&tmp_path, &final_path)
            .with_context(|| format!("renaming into {}", final_path.display()))?;
        sync_dir(&part)?;
        files += 1;
    }
    Ok(files)
}

fn parse_range(s: &str) -> Result<(i64, i64)> {
    let Some((a, b)) = s.split_once('-') else {
        bail!("collector_meta.pending_export {s:?} is not FROM-TO");
    };
    Ok((a.parse()?, b.parse()?))
}

/// Host names become part of file names: keep them to a safe alphabet.
fn sanitize(host: &str) -> String {
    let s: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "host".into() } else { s }
}

fn sql_string(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("path {} is not UTF-8", path.display()))?;
    Ok(format!("'{}'", s.replace('\'', "''")))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Every segment file under `dir` for one table (for tests and tools).
pub fn files_of(dir: &Path, table: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join(table)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_safe_in_file_names() {
        assert_eq!(
            sanitize("ip-10-0-1-2.ec2.internal"),
            "ip-10-0-1-2.ec2.internal"
        );
        assert_eq!(sanitize("a/b c"), "a_b_c");
        assert_eq!(sanitize("../../etc"), ".._.._etc");
        assert_eq!(sanitize(""), "host");
    }

    #[test]
    fn ranges_round_trip() {
        assert_eq!(parse_range("5-17").unwrap(), (5, 17));
        assert!(parse_range("5").is_err());
    }
}
