//! `credtrail ingest audit PATH…`: the collector's Parquet segments, and raw ECS agent audit log
//! files (an incident responder's copy of `/var/log/ecs`), into `credential_requests`,
//! `rejected_lines`, `task_inventory` and `collector_coverage` with the collector's schema.
//! Idempotent: a row is identified by (host, source_id, byte_offset) — inventory rows by (host,
//! seq, task_arn, observed_at, container_name, ipv4_address) — and stored at most once. A
//! coverage interval (host, run_id, interval_no) is published again each time the collector
//! extends it: one row per interval is kept, the one with the latest `covered_until` (then seq),
//! so segments read twice, out of order or overlapping neither double an interval nor shorten it.
//! Raw files need no table of their own for coverage: the `coverage_intervals` view derives it
//! from their rows.
//!
//! Raw files are parsed with the collector's own parser. Their `source_id` is
//! `file-<xxh3 of the first line>` (the collector's content fingerprint, so a file copied or
//! renamed is the same source and a grown copy adds only its new lines), `seq` is the line's
//! number in the file, and `host` is `--host` or, by default, the container instance ARN the
//! file's lines name. A host should be loaded from segments or from raw files, not both: the two
//! give the same lines different source IDs.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use credtrail_collector::parse::parse_line;
use credtrail_collector::source::{FileName, fingerprint};
use credtrail_collector::store::{Provenance, RequestColumns};
use duckdb::params;

use crate::store::{AUDIT_TABLES, Store, now_us, sql_string, ts};

/// What one audit ingest stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub segment_files: u64,
    pub raw_files: u64,
    /// Rows added per table, in [`AUDIT_TABLES`] order (for `collector_coverage`: intervals
    /// added or extended).
    pub added: [u64; 4],
    /// Raw lines already stored.
    pub duplicates: u64,
    /// Raw lines stored in `rejected_lines` by this run.
    pub rejected: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "audit: {} segment files, {} raw files; {} credential requests, {} rejected lines, {} inventory rows added; {} coverage intervals added or extended; {} raw lines already stored",
            self.segment_files,
            self.raw_files,
            self.added[0],
            self.added[1],
            self.added[2],
            self.added[3],
            self.duplicates
        )
    }
}

/// (byte offset, length, bytes, reason, seq, incomplete) of a line the parser refused.
type RejectedLine = (u64, u64, Vec<u8>, String, i64, bool);

/// Options of an audit ingest.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `host` of rows from raw files (default: the container instance ARN in the file).
    pub host: Option<String>,
    /// A local directory that stands for a remote location (S3 objects downloaded under their
    /// keys): a raw file under it is recorded as `source_file` = the location followed by the
    /// rest of its path, not under the temporary path it was read from.
    pub origin: Option<(PathBuf, String)>,
}

impl Options {
    /// The `source_file` recorded for a raw file.
    fn source_name(&self, path: &Path) -> String {
        if let Some((dir, location)) = &self.origin
            && let Ok(rest) = path.strip_prefix(dir)
        {
            let rest: Vec<_> = rest
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            return format!("{location}{}", rest.join("/"));
        }
        path.display().to_string()
    }
}

enum Found {
    Segment { table: &'static str, path: PathBuf },
    Raw(PathBuf),
}

/// The collector table a segment file belongs to, from its path (`<table>/date=…/…parquet`).
fn segment_table(path: &Path) -> Option<&'static str> {
    path.components().rev().skip(1).find_map(|c| {
        let name = c.as_os_str().to_str()?;
        AUDIT_TABLES.iter().copied().find(|t| *t == name)
    })
}

fn find(paths: &[PathBuf]) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    let mut add = |path: PathBuf, explicit: bool| -> Result<()> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.ends_with(".parquet") && !name.starts_with('.') {
            let table = segment_table(&path).with_context(|| {
                format!(
                    "{}: a Parquet file outside credential_requests/, rejected_lines/, task_inventory/ or collector_coverage/",
                    path.display()
                )
            })?;
            out.push(Found::Segment { table, path });
        } else if explicit || FileName::classify(&name).is_some() {
            out.push(Found::Raw(path));
        }
        Ok(())
    };
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            let mut files = Vec::new();
            while let Some(d) = stack.pop() {
                for e in
                    std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?
                {
                    let path = e?.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else {
                        files.push(path);
                    }
                }
            }
            files.sort();
            for f in files {
                add(f, false)?;
            }
        } else if p.exists() {
            add(p.clone(), true)?;
        } else {
            anyhow::bail!("{} does not exist", p.display());
        }
    }
    Ok(out)
}

/// Ingests segments and raw files.
pub fn ingest(store: &Store, paths: &[PathBuf], opts: &Options) -> Result<Summary> {
    let mut summary = Summary::default();
    let found = find(paths)?;
    for (ti, table) in AUDIT_TABLES.iter().enumerate() {
        let files: Vec<&PathBuf> = found
            .iter()
            .filter_map(|f| match f {
                Found::Segment { table: t, path } if t == table => Some(path),
                _ => None,
            })
            .collect();
        for group in files.chunks(256) {
            summary.segment_files += group.len() as u64;
            summary.added[ti] += load_segments(store, table, group)?;
        }
    }
    for f in &found {
        if let Found::Raw(path) = f {
            summary.raw_files += 1;
            load_raw(store, path, opts, &mut summary)
                .with_context(|| format!("reading {}", path.display()))?;
        }
    }
    Ok(summary)
}

fn columns(store: &Store, table: &str) -> Result<Vec<String>> {
    let mut stmt = store.conn().prepare(
        "SELECT column_name FROM information_schema.columns
         WHERE table_name = ? AND table_schema = 'main' ORDER BY ordinal_position",
    )?;
    let cols = stmt
        .query_map([table], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(cols)
}

fn key_of(table: &str) -> &'static [&'static str] {
    match table {
        "task_inventory" => &[
            "host",
            "seq",
            "task_arn",
            "observed_at",
            "container_name",
            "ipv4_address",
        ],
        _ => &["host", "source_id", "byte_offset"],
    }
}

fn load_segments(store: &Store, table: &str, files: &[&PathBuf]) -> Result<u64> {
    let cols = columns(store, table)?;
    let list = parquet_list(files)?;
    if table == "collector_coverage" {
        return load_coverage(store, &cols, &list, files.len());
    }
    let key = key_of(table);
    let on = key
        .iter()
        .map(|k| format!("t.{k} IS NOT DISTINCT FROM s.{k}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!(
        "INSERT INTO {table} ({cols})
         SELECT {cols} FROM (
            SELECT DISTINCT ON ({key}) {cols}
            FROM read_parquet([{list}], union_by_name = true)) s
         WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {on})",
        cols = cols.join(", "),
        key = key.join(", "),
    );
    store
        .transaction(|conn| Ok(conn.execute(&sql, [])?))
        .with_context(|| format!("loading {} segment files into {table}", files.len()))
        .map(|n| n as u64)
}

/// The files as a DuckDB list literal's elements.
fn parquet_list(files: &[&PathBuf]) -> Result<String> {
    Ok(files
        .iter()
        .map(|p| {
            p.to_str()
                .map(sql_string)
                .with_context(|| format!("path {} is not UTF-8", p.display()))
        })
        .collect::<Result<Vec<_>>>()?
        .join(", "))
}

/// Coverage intervals: per (host, run_id, interval_no), the row with the latest `covered_until`
/// (then seq) among the files and the store replaces an older one. Returns the intervals added
/// or extended.
fn load_coverage(store: &Store, cols: &[String], list: &str, files: usize) -> Result<u64> {
    let cols = cols.join(", ");
    let key = "s.host = t.host AND s.run_id = t.run_id AND s.interval_no = t.interval_no";
    let newer = "(s.covered_until > t.covered_until
                  OR (s.covered_until = t.covered_until AND s.seq > t.seq))";
    store
        .transaction(|conn| {
            conn.execute_batch(&format!(
                "CREATE OR REPLACE TEMP TABLE coverage_in AS
                 SELECT {cols} FROM read_parquet([{list}], union_by_name = true)
                 QUALIFY row_number() OVER (PARTITION BY host, run_id, interval_no
                                            ORDER BY covered_until DESC, seq DESC) = 1;
                 DELETE FROM coverage_in s
                 WHERE EXISTS (SELECT 1 FROM collector_coverage t WHERE {key} AND NOT {newer});
                 DELETE FROM collector_coverage t
                 WHERE EXISTS (SELECT 1 FROM coverage_in s WHERE {key});"
            ))?;
            let n = conn.execute(
                &format!("INSERT INTO collector_coverage ({cols}) SELECT {cols} FROM coverage_in"),
                [],
            )?;
            conn.execute_batch("DROP TABLE coverage_in")?;
            Ok(n as u64)
        })
        .with_context(|| format!("loading {files} segment files into collector_coverage"))
}

/// The host a raw file's rows are stored under: the option, else the first container instance
/// ARN in the file, else the first one named by another audit file of the same directory (a
/// copied `/var/log/ecs` whose hour held only refused requests, which name none), else
/// `imported`.
fn default_host(path: &Path) -> Result<String> {
    if let Some(ci) = first_instance(path)? {
        return Ok(ci);
    }
    let siblings = path
        .parent()
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p != path
                && p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| FileName::classify(n).is_some())
        });
    let mut siblings: Vec<PathBuf> = siblings.collect();
    siblings.sort();
    for sibling in siblings {
        if let Some(ci) = first_instance(&sibling)? {
            return Ok(ci);
        }
    }
    Ok("imported".to_string())
}

/// The first container instance ARN a raw audit file's lines name.
fn first_instance(path: &Path) -> Result<Option<String>> {
    let mut r = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        let l = line.strip_suffix(b"\n").unwrap_or(&line);
        if let Ok(p) = parse_line(l)
            && let Some(ci) = p.container_instance_arn
        {
            return Ok(Some(ci.into_owned()));
        }
    }
}

fn load_raw(store: &Store, path: &Path, opts: &Options, summary: &mut Summary) -> Result<()> {
    let file = File::open(path)?;
    let Some(fp) = fingerprint(&file)? else {
        // Empty, or one unterminated short line: nothing the collector would read either.
        if file.metadata()?.len() == 0 {
            return Ok(());
        }
        return load_unterminated(store, path, opts, summary);
    };
    let source_id = format!("file-{:016x}", fp.hash);
    let host = match &opts.host {
        Some(h) => h.clone(),
        None => default_host(path)?,
    };
    let source_file = opts.source_name(path);
    let known: HashSet<i64> = {
        let mut stmt = store.conn().prepare(
            "SELECT byte_offset FROM credential_requests WHERE host = ? AND source_id = ?
             UNION ALL SELECT byte_offset FROM rejected_lines WHERE host = ? AND source_id = ?",
        )?;
        stmt.query_map(params![host, source_id, host, source_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut cols = RequestColumns::new();
    let mut rejects: Vec<RejectedLine> = Vec::new();
    let mut line = Vec::new();
    let mut offset = 0u64;
    let mut seq = 0i64;
    let flush = |cols: &mut RequestColumns,
                 rejects: &mut Vec<RejectedLine>,
                 summary: &mut Summary|
     -> Result<()> {
        let batch = (!cols.is_empty())
            .then(|| cols.finish(now_us()))
            .transpose()?;
        let now = now_us();
        store.transaction(|conn| {
            if let Some(b) = batch {
                summary.added[0] += b.num_rows() as u64;
                let mut app = conn.appender("credential_requests")?;
                app.append_record_batch(b)?;
                app.flush()?;
            }
            let mut app = conn.appender("rejected_lines")?;
            for (off, len, raw, reason, seq, incomplete) in rejects.iter() {
                app.append_row(params![
                    source_file,
                    source_id,
                    *off as i64,
                    *len as i64,
                    raw,
                    reason,
                    ts(now),
                    host,
                    seq,
                    incomplete,
                    false
                ])?;
            }
            app.flush()?;
            summary.added[1] += rejects.len() as u64;
            summary.rejected += rejects.len() as u64;
            Ok(())
        })?;
        rejects.clear();
        Ok(())
    };
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        let complete = line.last() == Some(&b'\n');
        let text = if complete {
            &line[..line.len() - 1]
        } else {
            &line[..]
        };
        let at = offset;
        offset += n as u64;
        seq += 1;
        if known.contains(&(at as i64)) {
            summary.duplicates += 1;
            continue;
        }
        match parse_line(text) {
            Ok(p) => cols.push(
                &p,
                text,
                &host,
                Provenance {
                    source_file: &source_file,
                    source_id: &source_id,
                    byte_offset: at,
                    line_len: text.len() as u64,
                    incomplete: !complete,
                },
                seq,
            ),
            Err(e) => {
                let reason = if complete {
                    e.reason()
                } else {
                    format!(
                        "incomplete line (no newline at the end of the file): {}",
                        e.reason()
                    )
                };
                rejects.push((at, text.len() as u64, text.to_vec(), reason, seq, !complete));
            }
        }
        if cols.len() >= 65_536 || rejects.len() >= 4096 {
            flush(&mut cols, &mut rejects, summary)?;
        }
    }
    flush(&mut cols, &mut rejects, summary)
}

/// A file whose only content is one short line without a newline: stored as a rejected,
/// incomplete line (nothing is dropped), keyed by the hash of its bytes.
fn load_unterminated(
    store: &Store,
    path: &Path,
    opts: &Options,
    summary: &mut Summary,
) -> Result<()> {
    let bytes = std::fs::read(path)?;
    let source_id = format!("file-{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes));
    let host = opts.host.clone().unwrap_or_else(|| "imported".to_string());
    let n = store.transaction(|conn| {
        Ok(conn.execute(
            "INSERT INTO rejected_lines
             SELECT ?, ?, 0, ?, ?, 'incomplete line (the file holds one line without a newline)',
                    ?, ?, 1, true, false
             WHERE NOT EXISTS (SELECT 1 FROM rejected_lines WHERE host = ? AND source_id = ?)",
            params![
                opts.source_name(path),
                source_id,
                bytes.len() as i64,
                bytes,
                ts(now_us()),
                host,
                host,
                source_id
            ],
        )?)
    })?;
    summary.added[1] += n as u64;
    summary.rejected += n as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_tables_come_from_the_path() {
        assert_eq!(
            segment_table(Path::new(
                "/s/credential_requests/date=2026-11-20/hour=13/h-000000000001-000000000009.parquet"
            )),
            Some("credential_requests")
        );
        assert_eq!(
            segment_table(Path::new("/s/task_inventory/date=x/hour=01/a.parquet")),
            Some("task_inventory")
        );
        assert_eq!(segment_table(Path::new("/s/other/a.parquet")), None);
    }
}
