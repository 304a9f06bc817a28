//! The AWS SDK's configuration, shared by every API the analyzer calls (CloudTrail
//! LookupEvents, S3): the standard credential chain (environment, profile files with
//! `credential_process` and IAM Identity Center (SSO) profiles, web identity, the ECS container
//! provider, instance metadata), rustls, and an optional endpoint override
//! for VPC endpoints and local stand-ins.
//!
//! The IAM actions those calls need are in `deploy/iam/credtrail-analyzer-policy.json`; a test
//! checks the policy against the SDK operations called in this crate's source.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// How the SDK retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// The SDK's standard retries (with its own backoff).
    Standard,
    /// None: the caller paces and retries itself (LookupEvents' rate limit).
    Off,
}

/// Loads the shared configuration. `region` is the default for clients that do not set their
/// own (none given: the chain's region, else `us-east-1`).
pub async fn load(endpoint_url: Option<&str>, region: Option<&str>, retries: Retries) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if retries == Retries::Off {
        loader = loader.retry_config(RetryConfig::disabled());
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let region_chain = aws_config::meta::region::RegionProviderChain::first_try(
        region.map(|r| Region::new(r.to_string())),
    )
    .or_default_provider()
    .or_else(Region::new("us-east-1"));
    loader.region(region_chain).load().await
}
