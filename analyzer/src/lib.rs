//! credtrail: tells ECS operators who used their tasks' IAM credentials, from where, and which
//! permissions nobody needs. The library is the program; `main.rs` parses flags and maps errors
//! to exit codes.

pub mod analyze;
pub mod asff;
pub mod athena;
pub mod audit;
pub mod aws;
pub mod catalog;
pub mod cli;
pub mod cloudtrail;
pub mod config;
pub mod coverage;
pub mod demo;
pub mod detect;
pub mod ecs;
pub mod export_sql;
pub mod findings;
pub mod header;
pub mod iam;
pub mod increment;
pub mod ingest;
pub mod investigation;
pub mod network;
pub mod ocsf;
pub mod policy;
pub mod privilege;
pub mod report;
pub mod s3;
pub mod schedule;
pub mod score;
pub mod spark;
pub mod sql;
pub mod statement;
pub mod store;
pub mod terminal;
pub mod timestamp;
pub mod trail;
