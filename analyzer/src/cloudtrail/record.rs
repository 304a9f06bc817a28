//! One CloudTrail record, parsed with serde borrowing from the input, and normalised into the
//! columns of `cloudtrail_events`. Pure: no I/O.
//!
//! Every field is read as a raw JSON value and interpreted leniently (a number where a string
//! was expected is kept as its text), so a record with a field shaped unlike the documentation
//! is still stored. A record is rejected only when it is not JSON, not valid UTF-8, or lacks
//! what deduplication and time ordering need: a string `eventID` and a parseable `eventTime`.
//! Without `eventTime`, `@timestamp` stands in: Logstash's CloudTrail codec moves `eventTime`
//! there (OTRF's Security Datasets publish records so exported).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::timestamp;

type Raw<'a> = Option<&'a RawValue>;

/// A record; `I` is how `userIdentity` is read: typed in one pass ([`TypedIdentity`]), or raw
/// and interpreted leniently when the typed pass failed.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Record<'a, I> {
    #[serde(rename = "eventID", borrow)]
    event_id: Raw<'a>,
    #[serde(borrow)]
    event_time: Raw<'a>,
    /// `eventTime` as Logstash's CloudTrail codec renames it.
    #[serde(rename = "@timestamp", borrow)]
    logstash_time: Raw<'a>,
    #[serde(borrow)]
    event_source: Raw<'a>,
    #[serde(borrow)]
    event_name: Raw<'a>,
    #[serde(borrow)]
    aws_region: Raw<'a>,
    #[serde(rename = "sourceIPAddress", borrow)]
    source_ip: Raw<'a>,
    #[serde(borrow)]
    user_agent: Raw<'a>,
    #[serde(borrow)]
    error_code: Raw<'a>,
    #[serde(borrow)]
    error_message: Raw<'a>,
    #[serde(borrow)]
    read_only: Raw<'a>,
    #[serde(borrow)]
    event_type: Raw<'a>,
    #[serde(borrow)]
    event_category: Raw<'a>,
    #[serde(borrow)]
    management_event: Raw<'a>,
    user_identity: Option<I>,
    #[serde(borrow)]
    vpc_endpoint_id: Raw<'a>,
    #[serde(borrow)]
    recipient_account_id: Raw<'a>,
    #[serde(borrow)]
    request_parameters: Raw<'a>,
    #[serde(borrow)]
    response_elements: Raw<'a>,
    #[serde(borrow)]
    resources: Raw<'a>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TypedIdentity<'a> {
    #[serde(rename = "type", borrow)]
    kind: Raw<'a>,
    #[serde(borrow)]
    principal_id: Raw<'a>,
    #[serde(borrow)]
    arn: Raw<'a>,
    #[serde(borrow)]
    account_id: Raw<'a>,
    #[serde(borrow)]
    access_key_id: Raw<'a>,
    #[serde(borrow)]
    invoked_by: Raw<'a>,
    #[serde(borrow)]
    session_context: Option<TypedContext<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TypedContext<'a> {
    #[serde(borrow)]
    attributes: Option<Attributes<'a>>,
    #[serde(borrow)]
    session_issuer: Option<Issuer<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Identity<'a> {
    #[serde(rename = "type", borrow)]
    kind: Raw<'a>,
    #[serde(borrow)]
    principal_id: Raw<'a>,
    #[serde(borrow)]
    arn: Raw<'a>,
    #[serde(borrow)]
    account_id: Raw<'a>,
    #[serde(borrow)]
    access_key_id: Raw<'a>,
    #[serde(borrow)]
    invoked_by: Raw<'a>,
    #[serde(borrow)]
    session_context: Raw<'a>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SessionContext<'a> {
    #[serde(borrow)]
    attributes: Raw<'a>,
    #[serde(borrow)]
    session_issuer: Raw<'a>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Attributes<'a> {
    #[serde(borrow)]
    creation_date: Raw<'a>,
}

#[derive(Deserialize, Default)]
struct Issuer<'a> {
    #[serde(borrow)]
    arn: Raw<'a>,
}

/// The normalised columns of one record (strings borrow from the input where possible).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Event<'a> {
    pub event_id: Cow<'a, str>,
    pub event_time_us: i64,
    pub event_source: Option<Cow<'a, str>>,
    pub event_name: Option<Cow<'a, str>>,
    pub aws_region: Option<Cow<'a, str>>,
    pub source_ip: Option<Cow<'a, str>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub error_code: Option<Cow<'a, str>>,
    pub error_message: Option<Cow<'a, str>>,
    pub read_only: Option<bool>,
    pub event_type: Option<Cow<'a, str>>,
    pub event_category: Option<Cow<'a, str>>,
    pub management_event: Option<bool>,
    pub identity_type: Option<Cow<'a, str>>,
    pub principal_id: Option<Cow<'a, str>>,
    pub principal_arn: Option<Cow<'a, str>>,
    pub account_id: Option<Cow<'a, str>>,
    pub access_key_id: Option<Cow<'a, str>>,
    pub session_issuer_arn: Option<Cow<'a, str>>,
    pub session_name: Option<Cow<'a, str>>,
    pub session_created_us: Option<i64>,
    pub invoked_by: Option<Cow<'a, str>>,
    pub vpc_endpoint_id: Option<Cow<'a, str>>,
    pub recipient_account_id: Option<Cow<'a, str>>,
    pub request_parameters: Option<&'a str>,
    pub response_elements: Option<&'a str>,
    pub resources: Option<&'a str>,
    /// The whole record, exactly as read.
    pub record: &'a str,
}

/// Why a record was not stored as an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record is not valid UTF-8 (at byte {0})")]
    Utf8(usize),
    #[error("record is not valid JSON: {0}")]
    Json(String),
    #[error("record has no eventID")]
    NoEventId,
    #[error("record has no eventTime")]
    NoEventTime,
    #[error("eventTime {0:?} is not a timestamp")]
    BadEventTime(String),
    /// A CloudTrail digest file's body, not a record: skipped, not rejected.
    #[error("a CloudTrail digest, not a record")]
    Digest,
    /// `aws cloudtrail get-event-selectors` output: what the trail logs (stored apart).
    #[error("a trail's event selectors, not a record")]
    EventSelectors,
    /// `aws cloudtrail describe-trails` output: which trails there are (stored apart).
    #[error("a list of trails, not a record")]
    Trails,
}

/// A JSON value as text: strings unquoted (borrowed when they hold no escapes), `null` as
/// `None`, anything else as its JSON text.
fn text(raw: Raw<'_>) -> Option<Cow<'_, str>> {
    let s = raw?.get();
    match s.as_bytes().first() {
        Some(b'"') => {
            let inner = &s[1..s.len() - 1];
            if inner.contains('\\') {
                serde_json::from_str::<String>(s).ok().map(Cow::Owned)
            } else {
                Some(Cow::Borrowed(inner))
            }
        }
        Some(b'n') if s == "null" => None,
        _ => Some(Cow::Borrowed(s)),
    }
}

fn boolean(raw: Raw<'_>) -> Option<bool> {
    match text(raw)?.as_ref() {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// JSON text of an object or array; `null` (and absent) as `None`.
fn json(raw: Raw<'_>) -> Option<&str> {
    raw.map(RawValue::get).filter(|s| *s != "null")
}

fn object<'a, T: Deserialize<'a> + Default>(raw: Raw<'a>) -> T {
    raw.filter(|r| r.get().starts_with('{'))
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default()
}

/// Parses and normalises one record.
pub fn parse(bytes: &[u8]) -> Result<Event<'_>, RecordError> {
    let s = std::str::from_utf8(bytes).map_err(|e| RecordError::Utf8(e.valid_up_to()))?;
    // One typed pass; a record whose identity is shaped unlike the documentation is read
    // again with the identity kept raw and interpreted field by field.
    let (r, id, attrs, issuer) = match serde_json::from_str::<Record<'_, TypedIdentity<'_>>>(s) {
        Ok(mut r) => {
            let mut id = r.user_identity.take().unwrap_or_default();
            let ctx = id.session_context.take().unwrap_or_default();
            let identity = Identity {
                kind: id.kind,
                principal_id: id.principal_id,
                arn: id.arn,
                account_id: id.account_id,
                access_key_id: id.access_key_id,
                invoked_by: id.invoked_by,
                session_context: None,
            };
            let attrs = ctx.attributes.unwrap_or_default();
            let issuer = ctx.session_issuer.unwrap_or_default();
            (strip(r), identity, attrs, issuer)
        }
        Err(_) => {
            let mut r: Record<'_, &RawValue> =
                serde_json::from_str(s).map_err(|e| RecordError::Json(e.to_string()))?;
            let id: Identity<'_> = object(r.user_identity.take());
            let ctx: SessionContext<'_> = object(id.session_context);
            let attrs: Attributes<'_> = object(ctx.attributes);
            let issuer: Issuer<'_> = object(ctx.session_issuer);
            (strip(r), id, attrs, issuer)
        }
    };
    let Some(event_id) = text(r.event_id).filter(|id| !id.is_empty()) else {
        if s.contains("\"digestStartTime\"") && s.contains("\"logFiles\"") {
            return Err(RecordError::Digest);
        }
        // describe-trails' trails name `HasCustomEventSelectors`: told apart first.
        if s.contains("\"trailList\"") {
            return Err(RecordError::Trails);
        }
        if s.contains("\"TrailARN\"") && s.contains("EventSelectors\"") {
            return Err(RecordError::EventSelectors);
        }
        return Err(RecordError::NoEventId);
    };
    let time_text = text(r.event_time)
        .or_else(|| text(r.logstash_time))
        .ok_or(RecordError::NoEventTime)?;
    let event_time_us = timestamp::parse_iso_us(&time_text)
        .ok_or_else(|| RecordError::BadEventTime(time_text.chars().take(64).collect()))?;

    let identity_type = text(id.kind);
    let principal_id = text(id.principal_id);
    let principal_arn = text(id.arn);
    let assumed = identity_type.as_deref() == Some("AssumedRole")
        || principal_arn
            .as_deref()
            .is_some_and(|a| a.contains(":assumed-role/"));
    let (session_name, derived_issuer) = if assumed {
        session_of(principal_arn.as_deref(), principal_id.as_deref())
    } else {
        (None, None)
    };
    let session_issuer_arn = text(issuer.arn).or(derived_issuer.map(Cow::Owned));
    let session_created_us = text(attrs.creation_date)
        .and_then(|t| timestamp::parse_iso_us(&t).or_else(|| timestamp::parse_epoch_us(&t)));

    Ok(Event {
        event_id,
        event_time_us,
        event_source: text(r.event_source),
        event_name: text(r.event_name),
        aws_region: text(r.aws_region),
        source_ip: text(r.source_ip),
        user_agent: text(r.user_agent),
        error_code: text(r.error_code),
        error_message: text(r.error_message),
        read_only: boolean(r.read_only),
        event_type: text(r.event_type),
        event_category: text(r.event_category),
        management_event: boolean(r.management_event),
        identity_type,
        principal_id,
        principal_arn,
        account_id: text(id.account_id),
        access_key_id: text(id.access_key_id),
        session_issuer_arn,
        session_name: session_name.map(Cow::Owned),
        session_created_us,
        invoked_by: text(id.invoked_by),
        vpc_endpoint_id: text(r.vpc_endpoint_id),
        recipient_account_id: text(r.recipient_account_id),
        request_parameters: json(r.request_parameters),
        response_elements: json(r.response_elements),
        resources: json(r.resources),
        record: s,
    })
}

/// The record without its identity (already taken apart).
fn strip<I>(r: Record<'_, I>) -> Record<'_, ()> {
    Record {
        event_id: r.event_id,
        event_time: r.event_time,
        logstash_time: r.logstash_time,
        event_source: r.event_source,
        event_name: r.event_name,
        aws_region: r.aws_region,
        source_ip: r.source_ip,
        user_agent: r.user_agent,
        error_code: r.error_code,
        error_message: r.error_message,
        read_only: r.read_only,
        event_type: r.event_type,
        event_category: r.event_category,
        management_event: r.management_event,
        user_identity: None,
        vpc_endpoint_id: r.vpc_endpoint_id,
        recipient_account_id: r.recipient_account_id,
        request_parameters: r.request_parameters,
        response_elements: r.response_elements,
        resources: r.resources,
    }
}

/// The role session name of an assumed-role identity, and the role ARN derived from its
/// `arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION` (used only when the record has no
/// `sessionIssuer`; the derived ARN has no role path).
fn session_of(arn: Option<&str>, principal_id: Option<&str>) -> (Option<String>, Option<String>) {
    if let Some(arn) = arn {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() == 6
            && let Some(rest) = parts[5].strip_prefix("assumed-role/")
            && let Some((role, session)) = rest.rsplit_once('/')
            && !role.is_empty()
            && !session.is_empty()
        {
            let role_name = role.rsplit('/').next().unwrap_or(role);
            return (
                Some(session.to_string()),
                Some(format!(
                    "arn:{}:iam::{}:role/{role_name}",
                    parts[1], parts[4]
                )),
            );
        }
    }
    let session = principal_id
        .and_then(|p| p.split_once(':'))
        .map(|(_, s)| s.to_string())
        .filter(|s| !s.is_empty());
    (session, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK_CALL: &str = r#"{"eventVersion":"1.05","userIdentity":{"type":"AssumedRole","principalId":"AROAJQMBDNUMIKLZKMF64:d190d14a-2404-45d6-9113-4eda22d7f2c7","arn":"arn:aws:sts::653711331788:assumed-role/level3/d190d14a-2404-45d6-9113-4eda22d7f2c7","accountId":"653711331788","accessKeyId":"ASIAZQNB3KHGNXWXBSJS","sessionContext":{"attributes":{"mfaAuthenticated":"false","creationDate":"2018-11-28T22:31:59Z"},"sessionIssuer":{"type":"Role","principalId":"AROAJQMBDNUMIKLZKMF64","arn":"arn:aws:iam::653711331788:role/level3","accountId":"653711331788","userName":"level3"}}},"eventTime":"2018-11-28T23:09:28Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1","sourceIPAddress":"104.102.221.250","userAgent":"[aws-cli/1.16.19 Python/2.7.10 Darwin/17.7.0 botocore/1.12.9]","requestParameters":null,"responseElements":null,"requestID":"4698593B9338B27F","eventID":"65e111a0-83ae-4ba8-9673-16291a804873","eventType":"AwsApiCall","recipientAccountId":"653711331788"}"#;

    #[test]
    fn task_session_is_normalised() {
        let e = parse(TASK_CALL.as_bytes()).unwrap();
        assert_eq!(e.event_id, "65e111a0-83ae-4ba8-9673-16291a804873");
        assert_eq!(
            e.session_name.as_deref(),
            Some("d190d14a-2404-45d6-9113-4eda22d7f2c7")
        );
        assert_eq!(
            e.session_issuer_arn.as_deref(),
            Some("arn:aws:iam::653711331788:role/level3")
        );
        assert_eq!(
            e.session_created_us,
            timestamp::parse_iso_us("2018-11-28T22:31:59Z")
        );
        assert_eq!(e.access_key_id.as_deref(), Some("ASIAZQNB3KHGNXWXBSJS"));
        assert_eq!(e.request_parameters, None);
        assert_eq!(e.record, TASK_CALL);
        assert!(matches!(e.event_id, Cow::Borrowed(_)));
    }

    #[test]
    fn lenient_fields_and_strict_keys() {
        let e = parse(br#"{"eventID":"a\u0062","eventTime":"2020-01-01T00:00:00Z","readOnly":"true","userAgent":5,"errorMessage":"line\nbreak","userIdentity":"weird"}"#).unwrap();
        assert_eq!(e.event_id, "ab");
        assert_eq!(e.read_only, Some(true));
        assert_eq!(e.user_agent.as_deref(), Some("5"));
        assert_eq!(e.error_message.as_deref(), Some("line\nbreak"));
        assert_eq!(e.identity_type, None);
        assert_eq!(
            parse(br#"{"eventTime":"2020-01-01T00:00:00Z"}"#),
            Err(RecordError::NoEventId)
        );
        assert_eq!(parse(br#"{"eventID":"x"}"#), Err(RecordError::NoEventTime));
        // A Logstash export: `@timestamp` stands in for `eventTime`, never over it.
        let e = parse(br#"{"eventID":"x","@timestamp":"2020-09-14T00:44:23.000Z","@version":"1"}"#)
            .unwrap();
        assert_eq!(
            e.event_time_us,
            timestamp::parse_iso_us("2020-09-14T00:44:23Z").unwrap()
        );
        let e = parse(br#"{"eventID":"x","@timestamp":"2020-09-14T00:44:23Z","eventTime":"2020-09-14T00:40:00Z"}"#)
            .unwrap();
        assert_eq!(
            e.event_time_us,
            timestamp::parse_iso_us("2020-09-14T00:40:00Z").unwrap()
        );
        assert!(matches!(
            parse(br#"{"eventID":"x","eventTime":"yesterday"}"#),
            Err(RecordError::BadEventTime(_))
        ));
        assert!(matches!(
            parse(br#"{"eventID":"x",}"#),
            Err(RecordError::Json(_))
        ));
        assert_eq!(parse(b"{\"eventID\":\"\xff\"}"), Err(RecordError::Utf8(12)));
        assert_eq!(
            parse(br#"{"awsAccountId":"1","digestStartTime":"x","logFiles":[]}"#),
            Err(RecordError::Digest)
        );
        assert_eq!(
            parse(br#"{"TrailARN":"arn:aws:cloudtrail:us-east-1:1:trail/t","AdvancedEventSelectors":[]}"#),
            Err(RecordError::EventSelectors)
        );
    }

    #[test]
    fn session_without_issuer_is_derived_from_the_arn() {
        let (s, role) = session_of(
            Some("arn:aws:sts::111122223333:assumed-role/app/0123456789abcdef0123456789abcdef"),
            None,
        );
        assert_eq!(s.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(role.as_deref(), Some("arn:aws:iam::111122223333:role/app"));
        let (s, role) = session_of(None, Some("AROAEXAMPLE:i-0abc"));
        assert_eq!(s.as_deref(), Some("i-0abc"));
        assert_eq!(role, None);
    }
}
