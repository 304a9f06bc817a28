//! The AWS API paths against local servers that speak the real protocols on loopback: the
//! `credtrail` binary with dummy credentials, an `--endpoint-url` on 127.0.0.1, and instance
//! metadata disabled, so nothing leaves the machine.

#[path = "../common/mod.rs"]
mod common;
mod lookup;
mod policy;
mod report;
mod s3;
#[path = "../../../tests/support/s3s_fs.rs"]
mod s3s_fs;
#[path = "../../../tests/support/sdk_calls.rs"]
mod sdk_calls;

/// The `credtrail` binary on `store`, its AWS environment cut off from the machine's: no
/// profile, role, container or instance credentials, no region or endpoint from the
/// environment, config files that do not exist, and only the given static credentials.
pub fn credtrail_command(
    store: &std::path::Path,
    access_key: &str,
    secret_key: &str,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_credtrail"));
    cmd.arg("--store").arg(store);
    for v in [
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ENDPOINT_URL",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/credtrail-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/credtrail-test/credentials",
        );
    cmd
}

/// Runs a command: (success, stdout, stderr).
pub fn output(cmd: &mut std::process::Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
