//! The AWS API paths against local servers that speak the real protocols on loopback: the
//! `credtrail` binary with dummy credentials, an `--endpoint-url` on 127.0.0.1, and instance
//! metadata disabled, so nothing leaves the machine.

#[path = "../common/mod.rs"]
mod common;
mod lookup;
mod policy;
mod s3;
