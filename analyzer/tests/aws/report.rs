//! `credtrail report --s3-url` against a real S3 server (s3s-fs on 127.0.0.1, see `s3.rs`):
//! the uploaded objects are the written files byte for byte, the configuration's
//! `[report] s3_url` does the same when the flag is absent, and an upload S3 refuses is an
//! error naming the object while the local report stays written.

use std::path::Path;
use std::process::Command;

use crate::s3s_fs::{self, ACCESS_KEY, SECRET_KEY};

fn command(store: &Path) -> Command {
    let mut cmd = crate::credtrail_command(store, ACCESS_KEY, SECRET_KEY);
    cmd.env("AWS_REGION", "us-east-1")
        .env_remove("CREDTRAIL_REPORT_S3_URL")
        .env_remove("CREDTRAIL_CONFIG");
    cmd
}

fn credtrail(store: &Path, args: &[&str]) -> (bool, String, String) {
    crate::output(command(store).args(args))
}

fn assert_same_files(local: &Path, uploaded: &Path) {
    for name in ["report.md", "report.html"] {
        let want = std::fs::read(local.join(name)).unwrap();
        let got = std::fs::read(uploaded.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", uploaded.join(name).display()));
        assert!(!want.is_empty());
        assert_eq!(got, want, "{name} differs from the written report");
    }
}

#[test]
fn the_report_is_uploaded_under_the_prefix() {
    let Some(bin) = s3s_fs::binary() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("s3");
    std::fs::create_dir_all(root.join("reports")).unwrap();
    let server = s3s_fs::start(&bin, &root);
    let url = server.url();
    let store = tmp.path().join("store.duckdb");

    // The flag: a prefix without its trailing slash names the same folder.
    let out_dir = tmp.path().join("flag");
    let (ok, out, err) = credtrail(
        &store,
        &[
            "report",
            "--out",
            out_dir.to_str().unwrap(),
            "--s3-url",
            "s3://reports/credtrail/weekly",
            "--endpoint-url",
            &url,
        ],
    );
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains(
            "uploaded s3://reports/credtrail/weekly/report.md and s3://reports/credtrail/weekly/report.html"
        ),
        "{out}"
    );
    assert_same_files(&out_dir, &root.join("reports/credtrail/weekly"));

    // The configuration's [report] s3_url when the flag is absent; it names no endpoint, so
    // the SDK's own AWS_ENDPOINT_URL points the client here.
    let config = tmp.path().join("credtrail.toml");
    std::fs::write(
        &config,
        "[report]\ns3_url = \"s3://reports/from-config/\"\n",
    )
    .unwrap();
    let out_dir = tmp.path().join("config");
    let (ok, out, err) = crate::output(
        command(&store)
            .args(["--config", config.to_str().unwrap(), "report", "--out"])
            .arg(&out_dir)
            .env("AWS_ENDPOINT_URL", &url),
    );
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("uploaded s3://reports/from-config/report.md"),
        "{out}"
    );
    assert_same_files(&out_dir, &root.join("reports/from-config"));

    // Refused by S3 (a wrong secret key: the signature does not match): an error naming the
    // object; the local files stay written and nothing is stored.
    let out_dir = tmp.path().join("refused");
    let (ok, out, err) = crate::output(
        crate::credtrail_command(&store, ACCESS_KEY, "not-the-secret")
            .env("AWS_REGION", "us-east-1")
            .env_remove("CREDTRAIL_REPORT_S3_URL")
            .env_remove("CREDTRAIL_CONFIG")
            .args(["report", "--out"])
            .arg(&out_dir)
            .args(["--s3-url", "s3://reports/refused/", "--endpoint-url", &url]),
    );
    assert!(!ok, "an upload S3 refused succeeded: {out}");
    assert!(
        err.contains("PutObject s3://reports/refused/report.md"),
        "{err}"
    );
    assert!(out_dir.join("report.md").is_file() && out_dir.join("report.html").is_file());
    assert!(!root.join("reports/refused").exists());

    // Not an S3 URL, or an endpoint without a URL: refused before anything runs.
    let (ok, _, err) = credtrail(
        &store,
        &[
            "report",
            "--out",
            out_dir.to_str().unwrap(),
            "--s3-url",
            "/srv/reports",
        ],
    );
    assert!(!ok);
    assert!(err.contains("is not s3://BUCKET/PREFIX/"), "{err}");
    let (ok, _, err) = credtrail(
        &store,
        &[
            "report",
            "--out",
            out_dir.to_str().unwrap(),
            "--endpoint-url",
            &url,
        ],
    );
    assert!(!ok);
    assert!(err.contains("--s3-url"), "{err}");
}
