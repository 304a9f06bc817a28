//! Whether an input holds CloudTrail JSON, decided from its first bytes (after gzip), whatever
//! its name: S3 delivery's `{"Records":[…]}`, a JSON array of records, one bare record, JSON
//! lines of records, a trail's event selectors, describe-trails' list of trails. Names lie both ways: TrailDiscover's examples are
//! `*.json.cloudtrail`, a copied log may have no extension, and a `.json` beside the logs may be
//! an IAM or ECS document. Pure: no I/O.
//!
//! An input is read when any object among its first [`HEAD_BYTES`] has one of the fields every
//! record has (`eventID`, `eventTime`, `eventSource`, `eventName`, `eventVersion`), or is event
//! selectors; when its first object is cut by the head's end and names such a field; or when it
//! holds only an empty array or wrapper. Everything else is skipped with a [`SkipReason`]. A
//! broken record is still a record: reading it stores it in `cloudtrail_rejects` with why.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::split::{Piece, Splitter};

/// How much of an input (decompressed) the decision reads. CloudTrail truncates large request
/// parameters, so a record's identifying fields come well within it.
pub const HEAD_BYTES: usize = 1 << 20;

/// Why an input was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// By its path (`CloudTrail-Digest`) or its first object.
    Digest,
    /// No bytes but whitespace.
    Empty,
    /// No JSON object or array at the top level.
    NotJson,
    /// JSON whose values are not objects with a record's fields.
    NotCloudTrail,
    /// A directory whose name starts with `.` (`.git`, …): not walked.
    HiddenDirectory,
    /// A socket, device, FIFO or symbolic link to a directory found in a walked directory.
    NotRegularFile,
    /// An S3 key whose name is not CloudTrail's (`.json`, `.json.gz`, `.jsonl`, `.ndjson`):
    /// not fetched.
    NotLogName,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::Digest => "CloudTrail digest file",
            SkipReason::Empty => "empty",
            SkipReason::NotJson => "not JSON",
            SkipReason::NotCloudTrail => "JSON but not CloudTrail records",
            SkipReason::HiddenDirectory => "hidden directory, not entered",
            SkipReason::NotRegularFile => "not a regular file",
            SkipReason::NotLogName => "not a CloudTrail log file name",
        })
    }
}

impl SkipReason {
    /// True when a file named on the command line with this verdict is an error: the user
    /// asked for it and it is not CloudTrail. (An empty file or a digest is only reported.)
    pub fn is_error_when_named(self) -> bool {
        matches!(self, SkipReason::NotJson | SkipReason::NotCloudTrail)
    }
}

/// A record's fields (and those of the other CloudTrail documents) present at the top level of
/// an object, whatever their values.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Keys {
    #[serde(rename = "eventID")]
    event_id: Seen,
    #[serde(rename = "eventTime")]
    event_time: Seen,
    #[serde(rename = "eventSource")]
    event_source: Seen,
    #[serde(rename = "eventName")]
    event_name: Seen,
    #[serde(rename = "eventVersion")]
    event_version: Seen,
    #[serde(rename = "digestStartTime")]
    digest_start: Seen,
    #[serde(rename = "logFiles")]
    log_files: Seen,
    #[serde(rename = "TrailARN")]
    trail_arn: Seen,
    #[serde(rename = "EventSelectors")]
    event_selectors: Seen,
    #[serde(rename = "AdvancedEventSelectors")]
    advanced_event_selectors: Seen,
    #[serde(rename = "trailList")]
    trail_list: Seen,
}

/// A key that was present (with any value, `null` included).
#[derive(Default)]
struct Seen(bool);

impl<'de> Deserialize<'de> for Seen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Seen, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Seen(true))
    }
}

/// What one object says about its input.
enum Object {
    /// A record (or event selectors), or broken JSON that names a record's field: a broken
    /// record, read so that it is rejected with its reason.
    Record,
    Digest,
    /// JSON, not CloudTrail's.
    Other,
    /// Not JSON.
    Invalid,
}

const RECORD_FIELDS: [&str; 5] = [
    "\"eventID\"",
    "\"eventTime\"",
    "\"eventSource\"",
    "\"eventName\"",
    "\"eventVersion\"",
];

fn names_a_record_field(bytes: &[u8]) -> bool {
    RECORD_FIELDS
        .iter()
        .any(|k| memchr::memmem::find(bytes, k.as_bytes()).is_some())
}

fn classify(bytes: &[u8]) -> Object {
    match serde_json::from_slice::<Keys>(bytes) {
        Ok(k) => {
            if k.event_id.0
                || k.event_time.0
                || k.event_source.0
                || k.event_name.0
                || k.event_version.0
                || (k.trail_arn.0 && (k.event_selectors.0 || k.advanced_event_selectors.0))
                || k.trail_list.0
            {
                Object::Record
            } else if k.digest_start.0 && k.log_files.0 {
                Object::Digest
            } else {
                Object::Other
            }
        }
        Err(_) if names_a_record_field(bytes) => Object::Record,
        Err(_) => Object::Invalid,
    }
}

/// Decides from `head`, the first bytes of an input (all of it when `complete`).
pub fn sniff(head: &[u8], complete: bool) -> Result<(), SkipReason> {
    let mut split = Splitter::new(head);
    // Pieces of any kind, and the valid JSON values among them (array elements, top-level
    // objects): text with a bracket here and there is still not JSON.
    let (mut pieces, mut values) = (0u64, 0u64);
    while let Ok(Some(piece)) = split.next_piece() {
        pieces += 1;
        match piece {
            Piece::Record { bytes, .. } => match classify(bytes) {
                Object::Record => return Ok(()),
                Object::Digest if values == 0 => return Err(SkipReason::Digest),
                Object::Digest | Object::Other => values += 1,
                Object::Invalid => {}
            },
            // An object cut by the head's end (or by the end of a truncated input).
            Piece::Junk {
                index: Some(_),
                bytes,
                ..
            } if bytes.first() == Some(&b'{') => {
                if names_a_record_field(bytes) || (!complete && values == 0) {
                    return Ok(());
                }
            }
            Piece::Junk {
                index: Some(_),
                bytes,
                ..
            } => {
                if serde_json::from_slice::<IgnoredAny>(bytes).is_ok() {
                    values += 1;
                }
            }
            Piece::Junk { index: None, .. } => {}
        }
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if values > 0 {
        Err(SkipReason::NotCloudTrail)
    } else if pieces > 0 {
        Err(SkipReason::NotJson)
    } else if text.iter().all(u8::is_ascii_whitespace) {
        Err(SkipReason::Empty)
    } else {
        // `[]` or `{"Records":[]}`: CloudTrail with no records.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(s: &str) -> Result<(), SkipReason> {
        sniff(s.as_bytes(), true)
    }

    #[test]
    fn cloudtrail_shapes_are_read() {
        let rec = r#"{"eventVersion":"1.08","eventTime":"2026-11-20T10:00:00Z","eventID":"a"}"#;
        assert_eq!(verdict(&format!(r#"{{"Records":[{rec}]}}"#)), Ok(()));
        assert_eq!(verdict(&format!("[\n  {rec}\n]")), Ok(()));
        assert_eq!(verdict(rec), Ok(()));
        assert_eq!(verdict(&format!("{rec}\n{rec}\n")), Ok(()));
        // Cut-down records (Permiso's ten fields, Logstash exports) and broken ones.
        assert_eq!(verdict(r#"[{"eventName":"X","eventID":"b"}]"#), Ok(()));
        assert_eq!(
            verdict(r#"{"@timestamp":"t","eventSource":"s3.amazonaws.com"}"#),
            Ok(())
        );
        assert_eq!(verdict(r#"[{"eventID": "c", "eventTime": }]"#), Ok(()));
        // A first line that is not a record does not hide the records after it.
        assert_eq!(verdict(&format!("#export\n{{\"n\":1}}\n{rec}\n")), Ok(()));
        assert_eq!(verdict("[]"), Ok(()));
        assert_eq!(verdict(r#"{"Records": []}"#), Ok(()));
        assert_eq!(
            verdict(r#"{"TrailARN":"arn:aws:cloudtrail:us-east-1:1:trail/t","EventSelectors":[]}"#),
            Ok(())
        );
        assert_eq!(
            verdict(
                r#"{"trailList":[{"Name":"t","TrailARN":"arn:aws:cloudtrail:us-east-1:1:trail/t","IsMultiRegionTrail":true}]}"#
            ),
            Ok(())
        );
    }

    #[test]
    fn everything_else_is_skipped_with_its_reason() {
        assert_eq!(verdict(""), Err(SkipReason::Empty));
        assert_eq!(verdict("\u{feff}\n \n"), Err(SkipReason::Empty));
        assert_eq!(
            verdict("MIT License\n\nPermission is hereby granted"),
            Err(SkipReason::NotJson)
        );
        assert_eq!(verdict("title: x\nid: y\n"), Err(SkipReason::NotJson));
        // Text that opens a bracket is still text.
        assert_eq!(
            verdict("# Notes\n[the data](https://example.com) and {braces}\n"),
            Err(SkipReason::NotJson)
        );
        assert_eq!(verdict("[1, 2, 3]"), Err(SkipReason::NotCloudTrail));
        assert_eq!(
            verdict(r#"{"RoleDetailList":[{"RoleName":"r"}],"Policies":[]}"#),
            Err(SkipReason::NotCloudTrail)
        );
        assert_eq!(
            verdict(r#"[{"taskArn":"t"},{"taskArn":"u"}]"#),
            Err(SkipReason::NotCloudTrail)
        );
        // Field names count only at an object's top level.
        assert_eq!(
            verdict(r#"{"tasks":[{"eventID":"nested"}]}"#),
            Err(SkipReason::NotCloudTrail)
        );
        assert_eq!(
            verdict(
                r#"{"awsAccountId":"1","digestStartTime":"x","digestEndTime":"y","logFiles":[]}"#
            ),
            Err(SkipReason::Digest)
        );
    }

    #[test]
    fn an_object_cut_by_the_head_is_judged_by_what_it_shows() {
        let big = format!(
            r#"{{"requestParameters":{{"k":"{}"}},"eventID":"x"}}"#,
            "v".repeat(100)
        );
        let cut = &big.as_bytes()[..60];
        // Undecided within the head: read (the rest may name its fields).
        assert_eq!(sniff(cut, false), Ok(()));
        // The whole input, truncated before any field of a record: not JSON, not a record.
        assert_eq!(sniff(cut, true), Err(SkipReason::NotJson));
        assert_eq!(sniff(&big.as_bytes()[..big.len() - 2], true), Ok(()));
    }
}
