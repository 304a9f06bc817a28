//! `credtrail report --s3-url s3://BUCKET/PREFIX/`: the written report files uploaded under one
//! prefix, so a scheduled run's report is where people read it. The keys are fixed
//! (`<prefix>report.html`, `<prefix>report.md`): each run replaces the last (keep history with
//! the bucket's versioning). The IAM action is `s3:PutObject` on the prefix
//! (`deploy/iam/credtrail-analyzer-policy.json`).

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::s3::{self, S3, S3Url};

/// Where the report goes: the URL's bucket and its prefix as a folder (a `/` is added when the
/// prefix has none, so `s3://b/reports` and `s3://b/reports/` name the same keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub bucket: String,
    pub prefix: String,
}

impl Destination {
    /// Parses `s3://BUCKET[/PREFIX]`; an error says why anything else is refused.
    pub fn parse(text: &str) -> Result<Destination, String> {
        let url =
            S3Url::parse(text).ok_or_else(|| format!("{text:?} is not s3://BUCKET/PREFIX/"))?;
        let mut prefix = url.prefix;
        if prefix.split('/').any(|s| s == "." || s == "..") {
            return Err(format!("{text:?}: the prefix has a . or .. segment"));
        }
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Destination {
            bucket: url.bucket,
            prefix,
        })
    }

    /// The key of the report file named `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// The content type of a report file, by its extension.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("md") => "text/markdown; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Uploads each file of `files` (paths of the written report) under `dest`; returns the URLs
/// written, in order. Stops at the first failure, naming the object.
pub fn upload(files: &[&Path], dest: &Destination, opts: &s3::Options) -> Result<Vec<String>> {
    let client = S3::connect(opts)?;
    let mut done = Vec::new();
    for path in files {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            bail!("{}: no file name to upload under", path.display());
        };
        let body =
            std::fs::read(path).with_context(|| format!("reading {} to upload", path.display()))?;
        let key = dest.key(name);
        client
            .put(&dest.bucket, &key, body, content_type(path))
            .with_context(|| format!("uploading {}", path.display()))?;
        done.push(format!("s3://{}/{key}", dest.bucket));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_folders() {
        let d = Destination::parse("s3://reports/credtrail/weekly").unwrap();
        assert_eq!(d.bucket, "reports");
        assert_eq!(d.key("report.html"), "credtrail/weekly/report.html");
        assert_eq!(
            Destination::parse("s3://reports/credtrail/weekly/").unwrap(),
            d
        );
        assert_eq!(
            Destination::parse("s3://reports").unwrap().key("report.md"),
            "report.md"
        );
        assert!(Destination::parse("reports/credtrail").is_err());
        assert!(Destination::parse("s3:///x").is_err());
        assert!(Destination::parse("s3://b/a/../c/").is_err());
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(
            content_type(Path::new("/x/report.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("report.md")),
            "text/markdown; charset=utf-8"
        );
    }
}
