//! The `.sql` files of `queries/` (detections and investigations): a header of `-- key: value`
//! lines, then one SQL statement. This module reads the part both kinds share; each kind checks
//! its own keys' values. Every problem is collected, none stops the reading (style.md #5).

use std::collections::BTreeMap;
use std::path::Path;

/// A problem with one query file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}:{line}: {message}")]
    Header {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

/// A file's header and SQL, with the problems found so far.
pub struct QueryFile {
    file: String,
    fields: BTreeMap<String, (usize, String)>,
    /// The SQL after the header, without a trailing `;`.
    pub sql: String,
    pub errors: Vec<LoadError>,
}

impl QueryFile {
    /// Reads the header (every key of `keys` required, those of `optional` allowed, no other,
    /// none repeated) and the SQL after it (required).
    pub fn parse(file: &str, text: &str, keys: &[&str], optional: &[&str]) -> QueryFile {
        let mut q = QueryFile {
            file: file.to_string(),
            fields: BTreeMap::new(),
            sql: String::new(),
            errors: Vec::new(),
        };
        for (i, line) in text.lines().enumerate() {
            let Some(rest) = line.strip_prefix("--") else {
                break;
            };
            let rest = rest.trim();
            let Some((k, v)) = rest.split_once(':') else {
                q.error(i + 1, format!("not a `-- key: value` line: {rest:?}"));
                continue;
            };
            let k = k.trim();
            if !keys.contains(&k) && !optional.contains(&k) {
                q.error(i + 1, format!("unknown header key {k:?}"));
                continue;
            }
            if q.fields
                .insert(k.to_string(), (i + 1, v.trim().to_string()))
                .is_some()
            {
                q.error(i + 1, format!("header key {k:?} given twice"));
            }
        }
        for k in keys {
            if !q.fields.contains_key(*k) {
                q.error(1, format!("header lacks `-- {k}: …`"));
            }
        }
        let body = text
            .lines()
            .skip_while(|l| l.starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        q.sql = body.trim().trim_end_matches(';').trim_end().to_string();
        if q.sql.is_empty() {
            q.file_error("no SQL after the header".to_string());
        }
        q
    }

    /// Records a problem on a header line.
    pub fn error(&mut self, line: usize, message: String) {
        self.errors.push(LoadError::Header {
            file: self.file.clone(),
            line,
            message,
        });
    }

    /// Records a problem with the whole file.
    pub fn file_error(&mut self, message: String) {
        self.errors.push(LoadError::File {
            file: self.file.clone(),
            message,
        });
    }

    /// Whether the header has `key`.
    pub fn has(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    /// The line and value of `key` (line 1 and empty when absent: already reported).
    pub fn get(&self, key: &str) -> (usize, String) {
        self.fields.get(key).cloned().unwrap_or((1, String::new()))
    }

    /// Checks the `id`: `valid` (described as `what`) and equal to the file's name.
    pub fn check_id(&mut self, valid: impl Fn(&str) -> bool, what: &str) -> String {
        let (line, id) = self.get("id");
        if self.has("id") {
            if !valid(&id) {
                self.error(line, format!("id {id:?} is not {what}"));
            }
            let stem = Path::new(&self.file)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            if stem != id {
                self.error(
                    line,
                    format!("id {id:?} differs from the file name {stem:?}"),
                );
            }
        }
        id
    }
}

/// A comma-separated header value as its trimmed, non-empty items.
pub fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}
