//! Parser for one line of the ECS agent's credential audit log (`/var/log/ecs/audit.log`).
//!
//! The agent writes (formats.md §1), fields separated by single spaces:
//!
//! ```text
//! TIME STATUS SRC "PATH" "UA" ARN TYPE VERSION CLUSTER CIARN     (long form, every 200)
//! TIME STATUS SRC "PATH" "UA" ARN␠                               (short form, errors and 429)
//! ```
//!
//! The short form ends with a space, because the agent formats `"%s %s"` with an empty type part.
//! A short line without that space (an editor stripped it) is accepted too. `PATH` and `UA` are
//! quoted without escaping, so both may contain spaces and `"`. Splitting on spaces does not work.
//!
//! # How a line is read
//!
//! `TIME STATUS SRC` are read from the left. The user agent's closing quote is the **last** `"`
//! in the line that is followed by a space: the fields after the user agent (ARNs, event type,
//! version, cluster) never contain `"`, so any `"` followed by a space to the left of them belongs
//! to the path or the user agent. What is left, `"PATH" "UA"`, is split at the **first** `" "`
//! after the path's opening quote, and the fields after the user agent are then read from the left
//! again: one field (short form, with or without the trailing space) or five (long form).
//!
//! Every field parser is a small `nom` function over `&str` with a typed error, [`FieldError`],
//! that carries the input where the field starts; [`parse_line`] turns it into a byte offset.
//! The line is checked as UTF-8 once, up front. A line that is not UTF-8 is parsed from a copy in
//! which every byte >= 0x80 is DEL, so that offsets stay the same and such a byte fails any field
//! but path and user agent; those two are then decoded lossily from the original bytes.
//!
//! Speed: about 110 ns for a 264-byte line (one core, `bench_parse_line` below; the UTF-8 check
//! alone is 10 ns). The long fields after the user agent are scanned eight bytes at a time.
//!
//! # What is ambiguous
//!
//! Only the split between path and user agent. The agent does not escape either, so in
//! `"a" "b" "c"` the path could be `a` (user agent `b" "c`) or `a" "b` (user agent `c`). We take the
//! first `" "`, which is right for every path the agent really logs (`/v2/credentials`,
//! `/v1/credentials`, TMDS paths on 429 lines); a path that itself contains `" "`, or ends with
//! `" ` (so that `" "` appears when the separator follows), comes back split differently. Such a
//! line still round-trips byte for byte, only the fields differ from what the client sent. See
//! [`path_is_unambiguous`]. The user agent can hold any bytes except a line feed.
//!
//! Other things that do not come back byte for byte: a short line without its trailing space (it
//! is written with the space), a leap second `:60` (it is read as the next second), and lines whose
//! path or user agent needed lossy decoding (`lossy` is set; keep the raw bytes).
//!
//! A trailing `\r` is not stripped: it is part of the line, and since no field after the user agent
//! may hold it the line is rejected with [`ParseErrorKind::TrailingBytes`] at the `\r`. The agent
//! writes `\n` only (seelog `%n`), so a `\r` means the file was edited; the raw line is kept.

use std::borrow::Cow;

use nom::{IResult, Parser, sequence::terminated};

/// One audit-log line, borrowed from the input bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine<'a> {
    /// Event time as Unix seconds, UTC (the line has whole seconds and a literal `Z`).
    pub event_time: i64,
    /// HTTP status (200, 400, 429, 500, 503, or any other 3-digit code).
    pub status: u16,
    /// Requester IP without brackets (IPv6 `[::1]:80` gives `::1`); None when the field is `-`.
    pub source_ip: Option<Cow<'a, str>>,
    /// Requester port; None when the field is `-` or has no port.
    pub source_port: Option<u16>,
    /// The quoted URL path without its quotes (may be empty).
    pub request_path: Cow<'a, str>,
    /// The quoted user agent without its quotes; may contain spaces and `"`; may be empty.
    pub user_agent: Cow<'a, str>,
    /// Task ARN; None when `-`.
    pub task_arn: Option<Cow<'a, str>>,
    /// `GetCredentials`, `GetCredentialsExecutionRole`, or any future token; None on short (error)
    /// lines. On a long line a `-` here stays `Some("-")`, so that the line keeps its shape.
    pub event_type: Option<Cow<'a, str>>,
    /// 1 or 2 (any integer accepted); None on short lines, or `-` on a long line.
    pub log_version: Option<u16>,
    /// Cluster as configured on the agent; None on short lines, or `-` on a long line.
    pub cluster: Option<Cow<'a, str>>,
    /// Container instance ARN; None on short lines, or `-` on a long line.
    pub container_instance_arn: Option<Cow<'a, str>>,
    /// True when path or user agent held invalid UTF-8 or NUL bytes that were replaced by U+FFFD.
    /// The caller then keeps the raw line bytes as well.
    pub lossy: bool,
    /// True when a field was longer than the collector's field limit and is stored cut to it
    /// ([`AuditLine::truncate_fields`]); the caller then keeps the raw line bytes as well.
    pub truncated: bool,
}

/// Why a line did not parse: which field, and what was wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ParseErrorKind {
    /// The line has no bytes at all.
    #[error("empty line")]
    Empty,
    /// The line ends before the path (no space after timestamp, status or source).
    #[error("unexpected end of line")]
    UnexpectedEnd,
    /// Something other than a single space between two fields.
    #[error("expected a single space")]
    Separator,
    /// Not `YYYY-MM-DDTHH:MM:SSZ`, or a date or time out of range.
    #[error("invalid timestamp")]
    Timestamp,
    /// Not three digits (100-999).
    #[error("invalid status code")]
    Status,
    /// Not `ip:port`, `[ipv6]:port`, `ip`, `[ipv6]` or `-`.
    #[error("invalid source address")]
    SourceAddress,
    /// The path does not start with `"`.
    #[error("missing opening quote of path")]
    PathOpenQuote,
    /// No `" "` between path and user agent.
    #[error("missing closing quote of path")]
    PathCloseQuote,
    /// No `"` followed by a space after the path, or nothing between the quotes.
    #[error("missing closing quote of user agent")]
    UserAgent,
    /// The task ARN is empty or holds a byte that is not printable ASCII, or `"`.
    #[error("invalid task arn")]
    TaskArn,
    /// Same rule as the task ARN.
    #[error("invalid event type")]
    EventType,
    /// Not a decimal number up to 65535 without leading zeros, nor `-`.
    #[error("invalid log version")]
    LogVersion,
    /// Same rule as the task ARN.
    #[error("invalid cluster")]
    Cluster,
    /// Same rule as the task ARN.
    #[error("invalid container instance arn")]
    ContainerInstanceArn,
    /// Two to four fields after the user agent: neither the short form (one) nor the long (five).
    #[error("missing fields after the event type")]
    TypeFields,
    /// Bytes after the last field: a space after a long line, a sixth field, or a `\r`.
    #[error("unexpected bytes after the last field")]
    TrailingBytes,
}

/// Why a line did not parse, and the byte offset in the line where the failing field starts (for
/// a missing separator or quote: where it was expected; for trailing bytes: where they start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub offset: usize,
}

impl ParseError {
    /// The short lowercase sentence stored with a rejected line, e.g. `invalid timestamp at byte 0`.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

/// The error of one field parser: what failed and the input where that field starts (always a
/// subslice of the line, so [`parse_line`] can turn it into an offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldError<'a> {
    pub(crate) kind: ParseErrorKind,
    pub(crate) input: &'a [u8],
}

impl<'a> nom::error::ParseError<&'a str> for FieldError<'a> {
    /// Required by nom's combinators (`terminated`); every parser here builds its own error, so
    /// this only runs if a nom primitive is added later.
    fn from_error_kind(input: &'a str, _kind: nom::error::ErrorKind) -> Self {
        let kind = if input.is_empty() {
            ParseErrorKind::UnexpectedEnd
        } else {
            ParseErrorKind::Separator
        };
        FieldError {
            kind,
            input: input.as_bytes(),
        }
    }

    fn append(_input: &'a str, _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

/// What every field parser returns: remaining input and value, or where and why it failed.
type Res<'a, O> = IResult<&'a str, O, FieldError<'a>>;

fn fail<O>(kind: ParseErrorKind, input: &str) -> Res<'_, O> {
    Err(nom::Err::Error(FieldError {
        kind,
        input: input.as_bytes(),
    }))
}

/// Parse one line WITHOUT its trailing `\n`. A trailing `\r` is part of the line and makes it fail
/// (see the module docs). Never panics; allocates only when path or user agent need lossy decoding.
pub fn parse_line(line: &[u8]) -> Result<AuditLine<'_>, ParseError> {
    match std::str::from_utf8(line) {
        // The usual case: one UTF-8 check for the whole line, then every field borrows from it.
        Ok(text) => {
            let fields = fields(text).map_err(|e| parse_error(line, e))?;
            let (request_path, path_lossy) = without_nul(fields.raw_path);
            let (user_agent, ua_lossy) = without_nul(fields.raw_user_agent);
            Ok(fields.into_line(request_path, user_agent, path_lossy || ua_lossy))
        }
        Err(_) => parse_invalid_utf8(line),
    }
}

/// The line holds bytes that are not UTF-8. Each byte >= 0x80 is replaced by DEL (0x7f), which no
/// field except path and user agent accepts, and which is neither `"` nor a space: the copy has the
/// same structure and offsets, so a bad byte outside path and user agent fails in its own field.
/// Path and user agent are then decoded lossily from the original bytes at the same offsets.
fn parse_invalid_utf8(line: &[u8]) -> Result<AuditLine<'static>, ParseError> {
    let ascii: String = line
        .iter()
        .map(|&b| {
            if b.is_ascii() {
                char::from(b)
            } else {
                '\u{7f}'
            }
        })
        .collect();
    let fields = fields(&ascii).map_err(|e| parse_error(ascii.as_bytes(), e))?;
    let original = |raw: &str| {
        let start = offset_in(ascii.as_bytes(), raw.as_bytes());
        let bytes = line.get(start..start + raw.len()).unwrap_or_default();
        let lossy = String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}");
        let changed = lossy.as_bytes() != bytes;
        (Cow::Owned(lossy), changed)
    };
    let (request_path, path_lossy) = original(fields.raw_path);
    let (user_agent, ua_lossy) = original(fields.raw_user_agent);
    let line = fields.into_line(request_path, user_agent, path_lossy || ua_lossy);
    Ok(line.into_owned())
}

fn parse_error(line: &[u8], err: nom::Err<FieldError<'_>>) -> ParseError {
    match err {
        nom::Err::Error(e) | nom::Err::Failure(e) => ParseError {
            kind: e.kind,
            offset: offset_in(line, e.input),
        },
        // Only `complete` parsers are used; kept total anyway.
        nom::Err::Incomplete(_) => ParseError {
            kind: ParseErrorKind::UnexpectedEnd,
            offset: line.len(),
        },
    }
}

/// Byte offset of `part` (a subslice of `line`) in `line`, clamped so that it can never panic.
fn offset_in(line: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize)
        .saturating_sub(line.as_ptr() as usize)
        .min(line.len())
}

/// Path or user agent with NUL bytes replaced by U+FFFD (then flagged lossy).
fn without_nul(raw: &str) -> (Cow<'_, str>, bool) {
    // `fold` rather than `contains`: vectorised, and these fields are short.
    if raw.bytes().fold(false, |nul, b| nul | (b == 0)) {
        (Cow::Owned(raw.replace('\0', "\u{FFFD}")), true)
    } else {
        (Cow::Borrowed(raw), false)
    }
}

/// A parsed line before path and user agent are turned into text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields<'a> {
    event_time: i64,
    status: u16,
    source: Source<'a>,
    raw_path: &'a str,
    raw_user_agent: &'a str,
    task_arn: Option<&'a str>,
    type_fields: Option<TypeFields<'a>>,
}

impl<'a> Fields<'a> {
    fn into_line<'b>(
        self,
        request_path: Cow<'b, str>,
        user_agent: Cow<'b, str>,
        lossy: bool,
    ) -> AuditLine<'b>
    where
        'a: 'b,
    {
        let t = self.type_fields;
        AuditLine {
            event_time: self.event_time,
            status: self.status,
            source_ip: self.source.ip.map(Cow::Borrowed),
            source_port: self.source.port,
            request_path,
            user_agent,
            task_arn: self.task_arn.map(Cow::Borrowed),
            event_type: t.map(|t| Cow::Borrowed(t.event_type)),
            log_version: t.and_then(|t| t.log_version),
            cluster: t.and_then(|t| t.cluster).map(Cow::Borrowed),
            container_instance_arn: t.and_then(|t| t.container_instance_arn).map(Cow::Borrowed),
            lossy,
            truncated: false,
        }
    }
}

/// The whole line, field by field.
fn fields(line: &str) -> Result<Fields<'_>, nom::Err<FieldError<'_>>> {
    if line.is_empty() {
        return Err(nom::Err::Error(FieldError {
            kind: ParseErrorKind::Empty,
            input: line.as_bytes(),
        }));
    }
    let (i, event_time) = terminated(timestamp, sp).parse(line)?;
    let (i, status) = terminated(status, sp).parse(i)?;
    let (i, source) = terminated(source, sp).parse(i)?;
    let (after, quoted) = quoted_fields(i)?;
    let (i, raw_path) = path(quoted)?;
    let (_, raw_user_agent) = user_agent(i)?;
    let (_, (task_arn, type_fields)) = after_user_agent(after)?;
    Ok(Fields {
        event_time,
        status,
        source,
        raw_path,
        raw_user_agent,
        task_arn,
        type_fields,
    })
}

/// One space between two fields.
pub(crate) fn sp(i: &str) -> Res<'_, ()> {
    match (i.as_bytes().first(), i.get(1..)) {
        (Some(b' '), Some(rest)) => Ok((rest, ())),
        (None, _) => fail(ParseErrorKind::UnexpectedEnd, i),
        _ => fail(ParseErrorKind::Separator, i),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (20 bytes) as Unix seconds.
pub(crate) fn timestamp(i: &str) -> Res<'_, i64> {
    let parsed = i.as_bytes().get(..20).and_then(parse_rfc3339_seconds);
    match (parsed, i.get(20..)) {
        (Some(t), Some(rest)) => Ok((rest, t)),
        _ => fail(ParseErrorKind::Timestamp, i),
    }
}

/// Three digits, 100 to 999 (what Go's `%d` writes for an HTTP status).
pub(crate) fn status(i: &str) -> Res<'_, u16> {
    match (i.as_bytes(), i.get(3..)) {
        ([a @ b'1'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9', ..], Some(rest)) => {
            let v = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
            Ok((rest, v))
        }
        _ => fail(ParseErrorKind::Status, i),
    }
}

/// The requester address: IP without brackets and port, both absent for `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source<'a> {
    pub(crate) ip: Option<&'a str>,
    pub(crate) port: Option<u16>,
}

/// Go's `RemoteAddr`: `ip:port`, `[ipv6]:port`, or without port; `-` when empty.
///
/// A bracketed host must contain `:` and an unbracketed one must not (Go's `JoinHostPort` rule),
/// so that writing it back gives the same bytes. An unbracketed IPv6 address is rejected: its port
/// could not be told apart from its last group.
pub(crate) fn source(i: &str) -> Res<'_, Source<'_>> {
    let end = find_byte(i.as_bytes(), b' ').unwrap_or(i.len());
    let Some((tok, rest)) = i.split_at_checked(end) else {
        return fail(ParseErrorKind::SourceAddress, i);
    };
    if tok == "-" {
        return Ok((
            rest,
            Source {
                ip: None,
                port: None,
            },
        ));
    }
    let (host, port_part) = match tok.strip_prefix('[') {
        Some(inner) => match inner.split_once(']') {
            Some((host, after)) => (host, after),
            None => return fail(ParseErrorKind::SourceAddress, i),
        },
        // The port part keeps its `:`.
        None => match find_byte(tok.as_bytes(), b':').and_then(|c| tok.split_at_checked(c)) {
            Some(parts) => parts,
            None => (tok, ""),
        },
    };
    let bracketed = tok.as_bytes().first() == Some(&b'[');
    let host_ok = !host.is_empty()
        && host.bytes().all(is_host_byte)
        && bracketed == host.bytes().any(|b| b == b':');
    let port = match port_part.as_bytes() {
        [] => Some(None),
        [b':', digits @ ..] => canonical_u16(digits).map(Some),
        _ => None,
    };
    match (host_ok, port) {
        (true, Some(port)) => Ok((
            rest,
            Source {
                ip: Some(host),
                port,
            },
        )),
        _ => fail(ParseErrorKind::SourceAddress, i),
    }
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'%' | b'-' | b'_')
}

/// A decimal `u16` as Go prints it: 1 to 5 digits, no leading zero (except `0` itself).
fn canonical_u16(d: &[u8]) -> Option<u16> {
    if d.is_empty() || d.len() > 5 || (d.len() > 1 && d.first() == Some(&b'0')) {
        return None;
    }
    let mut v: u32 = 0;
    for &b in d {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        v = v * 10 + u32::from(digit);
    }
    u16::try_from(v).ok()
}

/// `"PATH" "UA"` followed by one space. Output: the quoted part, from the path's opening quote to
/// the user agent's closing quote; remaining input: what follows that space.
///
/// The closing quote is the last `"` that is followed by a space: nothing after the user agent may
/// contain `"` (see [`token`]).
pub(crate) fn quoted_fields(i: &str) -> Res<'_, &str> {
    if !i.starts_with('"') {
        return fail(ParseErrorKind::PathOpenQuote, i);
    }
    let bytes = i.as_bytes();
    let mut end = bytes.len();
    loop {
        // Never index 0: that is the path's opening quote.
        let Some(q) = bytes
            .get(1..end)
            .and_then(|h| rfind_byte(h, b'"'))
            .map(|q| q + 1)
        else {
            return fail(
                ParseErrorKind::UserAgent,
                i.get(i.len()..).unwrap_or_default(),
            );
        };
        if bytes.get(q + 1) == Some(&b' ') {
            return match (i.get(..=q), i.get(q + 2..)) {
                (Some(quoted), Some(rest)) => Ok((rest, quoted)),
                _ => fail(ParseErrorKind::UserAgent, i),
            };
        }
        end = q;
    }
}

/// `"PATH" ` at the start of the quoted part: everything up to the first `" "` after the opening
/// quote. Output: the path as written; remaining input: the user agent from its opening quote.
pub(crate) fn path(i: &str) -> Res<'_, &str> {
    let Some(body) = i.strip_prefix('"') else {
        return fail(ParseErrorKind::PathOpenQuote, i);
    };
    let bytes = body.as_bytes();
    let mut from = 0;
    while let Some(q) = bytes
        .get(from..)
        .and_then(|h| find_byte(h, b'"'))
        .map(|q| q + from)
    {
        if bytes.get(q + 1..q + 3) == Some(b" \"")
            && let (Some(raw), Some(rest)) = (body.get(..q), body.get(q + 2..))
        {
            return Ok((rest, raw));
        }
        from = q + 1;
    }
    fail(ParseErrorKind::PathCloseQuote, i)
}

/// `"UA"`: the rest of the quoted part, which ends with the user agent's closing quote. Output:
/// the user agent as written; remaining input: empty.
pub(crate) fn user_agent(i: &str) -> Res<'_, &str> {
    match i.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(raw) => Ok((i.get(i.len()..).unwrap_or_default(), raw)),
        None => fail(ParseErrorKind::UserAgent, i),
    }
}

/// The four fields of the type part (long form only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TypeFields<'a> {
    pub(crate) event_type: &'a str,
    pub(crate) log_version: Option<u16>,
    pub(crate) cluster: Option<&'a str>,
    pub(crate) container_instance_arn: Option<&'a str>,
}

/// Everything after the user agent and its space: `ARN TYPE VERSION CLUSTER CIARN` (long form),
/// `ARN ` (short form as the agent writes it) or `ARN` (short form, trailing space stripped).
/// Consumes all input.
#[allow(clippy::type_complexity)]
pub(crate) fn after_user_agent(i: &str) -> Res<'_, (Option<&str>, Option<TypeFields<'_>>)> {
    if let Some(cr) = i.strip_suffix('\r') {
        return fail(
            ParseErrorKind::TrailingBytes,
            i.get(cr.len()..).unwrap_or_default(),
        );
    }
    let (rest, arn) = task_arn(i)?;
    if rest.is_empty() || rest == " " {
        return Ok((rest.get(rest.len()..).unwrap_or_default(), (arn, None)));
    }
    let (rest, event_type) = space_then(rest, event_type)?;
    let (rest, log_version) = space_then(rest, log_version)?;
    let (rest, cluster) = space_then(rest, cluster)?;
    let (rest, container_instance_arn) = space_then(rest, container_instance_arn)?;
    if !rest.is_empty() {
        return fail(ParseErrorKind::TrailingBytes, rest);
    }
    let type_fields = TypeFields {
        event_type,
        log_version,
        cluster,
        container_instance_arn,
    };
    Ok((rest, (arn, Some(type_fields))))
}

/// A space then `field`. Input that ends before the space is a long line cut short.
fn space_then<'a, O>(i: &'a str, field: fn(&'a str) -> Res<'a, O>) -> Res<'a, O> {
    if i.is_empty() {
        return fail(ParseErrorKind::TypeFields, i);
    }
    let (i, _) = sp(i)?;
    field(i)
}

/// A field after the user agent: printable ASCII without `"` (so that the user agent's closing
/// quote is the last `"` followed by a space), non-empty, ended by a space or the end of input.
fn token(kind: ParseErrorKind, i: &str) -> Res<'_, &str> {
    let end = find_non_token_byte(i.as_bytes()).unwrap_or(i.len());
    match (i.split_at_checked(end), i.as_bytes().get(end)) {
        (Some((tok, rest)), None | Some(b' ')) if !tok.is_empty() => Ok((rest, tok)),
        _ => fail(kind, i),
    }
}

fn is_token_byte(b: u8) -> bool {
    b > b' ' && b < 0x7f && b != b'"'
}

/// A token where `-` means absent.
fn optional_token(kind: ParseErrorKind, i: &str) -> Res<'_, Option<&str>> {
    let (rest, tok) = token(kind, i)?;
    Ok((rest, (tok != "-").then_some(tok)))
}

/// The task ARN owning the credentials (any token); `-` on error lines.
pub(crate) fn task_arn(i: &str) -> Res<'_, Option<&str>> {
    optional_token(ParseErrorKind::TaskArn, i)
}

/// `GetCredentials`, `GetCredentialsExecutionRole`, or any future token (`-` is kept as is).
pub(crate) fn event_type(i: &str) -> Res<'_, &str> {
    token(ParseErrorKind::EventType, i)
}

/// The log format version (`1` or `2`; any `u16`), or `-`.
pub(crate) fn log_version(i: &str) -> Res<'_, Option<u16>> {
    let (rest, tok) = token(ParseErrorKind::LogVersion, i)?;
    if tok == "-" {
        return Ok((rest, None));
    }
    match canonical_u16(tok.as_bytes()) {
        Some(v) => Ok((rest, Some(v))),
        None => fail(ParseErrorKind::LogVersion, i),
    }
}

/// The cluster name as configured on the agent, or `-`.
pub(crate) fn cluster(i: &str) -> Res<'_, Option<&str>> {
    optional_token(ParseErrorKind::Cluster, i)
}

/// The container instance ARN, or `-`.
pub(crate) fn container_instance_arn(i: &str) -> Res<'_, Option<&str>> {
    optional_token(ParseErrorKind::ContainerInstanceArn, i)
}

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// The bytes of `word` equal to `needle`, as the high bit of each such byte. A byte above a
/// match may be flagged too (a borrow); a byte below the lowest match never is. Plain integer
/// arithmetic, eight bytes at a time (SWAR), so it does not depend on auto-vectorisation.
fn matches_in(word: &[u8; 8], needle: u8) -> u64 {
    let x = u64::from_le_bytes(*word) ^ (ONES * u64::from(needle));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// First position of a byte that is not [`is_token_byte`]: the end of a token (a space) or a bad
/// byte. The ARNs after the user agent are about 90 bytes each: a byte loop costs more than the
/// rest of the parser, so this checks eight bytes at a time.
fn find_non_token_byte(hay: &[u8]) -> Option<usize> {
    let mut chunks = hay.chunks_exact(8);
    let mut start = 0;
    for chunk in &mut chunks {
        if let Ok(word) = <&[u8; 8]>::try_from(chunk) {
            let x = u64::from_le_bytes(*word);
            // Bytes below 0x21 (a borrow may flag bytes above the lowest one too), bytes above
            // 0x7e (exact: no carry crosses a byte), and `"`.
            let below = x.wrapping_sub(ONES * 0x21) & !x & HIGHS;
            let above = (x.wrapping_add(ONES) | x) & HIGHS;
            let bits = below | above | matches_in(word, b'"');
            if bits != 0 {
                // The lowest flagged byte is always a real one.
                return Some(start + (bits.trailing_zeros() / 8) as usize);
            }
        }
        start += 8;
    }
    let rest = chunks.remainder();
    rest.iter()
        .position(|&b| !is_token_byte(b))
        .map(|p| start + p)
}

/// First position of `needle` in `hay`, eight bytes at a time.
fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    let mut chunks = hay.chunks_exact(8);
    let mut start = 0;
    for chunk in &mut chunks {
        if let Ok(word) = <&[u8; 8]>::try_from(chunk) {
            let bits = matches_in(word, needle);
            if bits != 0 {
                // The lowest flagged byte is always a real match.
                return Some(start + (bits.trailing_zeros() / 8) as usize);
            }
        }
        start += 8;
    }
    let rest = chunks.remainder();
    rest.iter().position(|&b| b == needle).map(|p| start + p)
}

/// Last position of `needle` in `hay`.
fn rfind_byte(hay: &[u8], needle: u8) -> Option<usize> {
    let mut chunks = hay.rchunks_exact(8);
    let mut end = hay.len();
    for chunk in &mut chunks {
        let start = end - chunk.len();
        if let Ok(word) = <&[u8; 8]>::try_from(chunk)
            && matches_in(word, needle) != 0
        {
            // The highest flagged byte may be a borrow: look again byte by byte.
            return chunk.iter().rposition(|&b| b == needle).map(|p| start + p);
        }
        end = start;
    }
    chunks.remainder().iter().rposition(|&b| b == needle)
}

/// Whether a path survives the split between path and user agent: the first `" "` in
/// `PATH" "` must be the separator itself. False for paths that contain `" "` or end with `" `.
pub fn path_is_unambiguous(path: &str) -> bool {
    let mut s = Vec::with_capacity(path.len() + 3);
    s.extend_from_slice(path.as_bytes());
    s.extend_from_slice(b"\" \"");
    s.windows(3).position(|w| w == b"\" \"") == Some(path.len())
}

impl AuditLine<'_> {
    /// Append the line exactly as the ECS agent writes it, WITHOUT the newline:
    /// long form `TIME STATUS SRC "PATH" "UA" ARN TYPE VERSION CLUSTER CIARN`;
    /// short form (no event type) `TIME STATUS SRC "PATH" "UA" ARN ` — note the trailing space.
    /// `-` for absent source/ARN (and absent version/cluster/CI ARN on a long line). IPv6 sources
    /// are written `[ip]:port`. On a short line version, cluster and CI ARN are not written.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        format_rfc3339_seconds(self.event_time, out);
        out.push(b' ');
        push_u64(out, u64::from(self.status));
        out.push(b' ');
        match &self.source_ip {
            None => out.push(b'-'),
            Some(ip) => {
                if ip.contains(':') {
                    out.push(b'[');
                    out.extend_from_slice(ip.as_bytes());
                    out.push(b']');
                } else {
                    out.extend_from_slice(ip.as_bytes());
                }
                if let Some(port) = self.source_port {
                    out.push(b':');
                    push_u64(out, u64::from(port));
                }
            }
        }
        out.extend_from_slice(b" \"");
        out.extend_from_slice(self.request_path.as_bytes());
        out.extend_from_slice(b"\" \"");
        out.extend_from_slice(self.user_agent.as_bytes());
        out.extend_from_slice(b"\" ");
        push_or_dash(out, self.task_arn.as_deref());
        out.push(b' ');
        if let Some(event_type) = &self.event_type {
            out.extend_from_slice(event_type.as_bytes());
            out.push(b' ');
            match self.log_version {
                Some(v) => push_u64(out, u64::from(v)),
                None => out.push(b'-'),
            }
            out.push(b' ');
            push_or_dash(out, self.cluster.as_deref());
            out.push(b' ');
            push_or_dash(out, self.container_instance_arn.as_deref());
        }
    }

    /// A copy that owns its text, e.g. to send it to another thread.
    pub fn into_owned(self) -> AuditLine<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        AuditLine {
            event_time: self.event_time,
            status: self.status,
            source_ip: self.source_ip.map(own),
            source_port: self.source_port,
            request_path: own(self.request_path),
            user_agent: own(self.user_agent),
            task_arn: self.task_arn.map(own),
            event_type: self.event_type.map(own),
            log_version: self.log_version,
            cluster: self.cluster.map(own),
            container_instance_arn: self.container_instance_arn.map(own),
            lossy: self.lossy,
            truncated: self.truncated,
        }
    }

    /// Cuts every text field longer than `max` bytes to at most `max` (at a character boundary)
    /// and sets `truncated` when one was cut. A container chooses its user agent and whoever
    /// calls the agent its URL: without a limit one line could make every copy of a field as
    /// large as the line.
    pub fn truncate_fields(&mut self, max: usize) -> bool {
        fn cut(field: &mut Cow<'_, str>, max: usize) -> bool {
            if field.len() <= max {
                return false;
            }
            let mut end = max;
            while !field.is_char_boundary(end) {
                end -= 1;
            }
            match field {
                Cow::Borrowed(s) => *s = &s[..end],
                Cow::Owned(s) => s.truncate(end),
            }
            true
        }
        let mut any = cut(&mut self.request_path, max);
        any |= cut(&mut self.user_agent, max);
        for f in [
            &mut self.source_ip,
            &mut self.task_arn,
            &mut self.event_type,
            &mut self.cluster,
            &mut self.container_instance_arn,
        ]
        .into_iter()
        .flatten()
        {
            any |= cut(f, max);
        }
        self.truncated |= any;
        any
    }
}

fn push_or_dash(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => out.extend_from_slice(s.as_bytes()),
        None => out.push(b'-'),
    }
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
        start -= 1;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(start..).unwrap_or_default());
}

fn push_2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// Task ID (last `/`-separated segment) of a short (`task/ID`) or long (`task/CLUSTER/ID`) task ARN.
///
/// `arn:aws:ecs:us-east-1:123456789012:task/0b1c…` and `arn:aws:ecs:…:task/prod/8ee7…` give the
/// part after the last `/`; anything that is not an ECS task ARN gives None.
pub fn task_id(task_arn: &str) -> Option<&str> {
    let mut parts = task_arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("ecs"), Some(_region), Some(_account), Some(res)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let rest = res.strip_prefix("task/")?;
    let id = match rest.split_once('/') {
        None => rest,
        Some((cluster, id)) if !cluster.is_empty() && !id.contains('/') => id,
        Some(_) => return None,
    };
    (!id.is_empty()).then_some(id)
}

/// RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` (exactly 20 bytes, upper-case `T` and `Z`) to Unix seconds.
/// Years 0000-9999; the date must exist; seconds may be 60 (a leap second reads as the next second).
pub fn parse_rfc3339_seconds(s: &[u8]) -> Option<i64> {
    let &[
        y0,
        y1,
        y2,
        y3,
        b'-',
        mo0,
        mo1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        mi0,
        mi1,
        b':',
        s0,
        s1,
        b'Z',
    ] = s
    else {
        return None;
    };
    let year = digits(&[y0, y1, y2, y3])?;
    let month = digits(&[mo0, mo1])?;
    let day = digits(&[d0, d1])?;
    let hour = digits(&[h0, h1])?;
    let minute = digits(&[mi0, mi1])?;
    let second = digits(&[s0, s1])?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    Some(days * 86_400 + i64::from(hour * 3600 + minute * 60 + second))
}

fn digits(ds: &[u8]) -> Option<u32> {
    ds.iter().try_fold(0u32, |acc, &b| {
        let d = b.wrapping_sub(b'0');
        (d < 10).then(|| acc * 10 + u32::from(d))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = i64::from((month + 9) % 12); // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix seconds to `YYYY-MM-DDTHH:MM:SSZ`. Years outside 0000-9999 are written with a sign or
/// more digits (such text does not parse back; the agent never writes it).
pub fn format_rfc3339_seconds(unix: i64, out: &mut Vec<u8>) {
    let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400) as u32;
    if year < 0 {
        out.push(b'-');
    }
    let abs = year.unsigned_abs();
    if abs < 10_000 {
        push_2(out, (abs / 100) as u32);
        push_2(out, (abs % 100) as u32);
    } else {
        push_u64(out, abs);
    }
    out.push(b'-');
    push_2(out, month);
    out.push(b'-');
    push_2(out, day);
    out.push(b'T');
    push_2(out, secs / 3600);
    out.push(b':');
    push_2(out, secs / 60 % 60);
    out.push(b':');
    push_2(out, secs % 60);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REAL_V2: &[u8] = b"2021-09-22T16:33:35Z 200 172.17.0.151:47066 \"/v2/credentials\" \"Zend_Http_Client\" arn:aws:ecs:eu-west-1:615847981820:task/prod-worker/8ee79724637f46d5ad9dc8fe9ef8e3fe GetCredentials 2 prod-worker arn:aws:ecs:eu-west-1:615847981820:container-instance/prod-worker/10abe8e5f47b47c38f3f5f3e232422fd";
    const REAL_ERROR: &[u8] = b"2019-02-05T23:37:54Z 400 10.0.100.189:33724 \"/v2/credentials\" \"aws-sdk-go/1.12.66 (go1.10.3; linux; amd64)\" - ";
    const DOC_V1: &[u8] = b"2016-07-13T16:11:53Z 200 172.17.0.5:52444 \"/v1/credentials\" \"python-requests/2.7.0 CPython/2.7.6 Linux/4.4.14-24.50.amzn1.x86_64\" TASK_ARN GetCredentials 1 CLUSTER_NAME CONTAINER_INSTANCE_ARN";

    fn ok(line: &[u8]) -> AuditLine<'_> {
        match parse_line(line) {
            Ok(l) => l,
            Err(e) => panic!("{e}: {}", String::from_utf8_lossy(line)),
        }
    }

    fn err(line: &[u8]) -> (ParseErrorKind, usize) {
        match parse_line(line) {
            Ok(l) => panic!("parsed: {l:?}"),
            Err(e) => (e.kind, e.offset),
        }
    }

    fn written(l: &AuditLine<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        l.write_to(&mut out);
        out
    }

    /// Parses, checks the byte-for-byte round trip and that no text was copied.
    fn round_trip(line: &[u8]) -> AuditLine<'_> {
        let l = ok(line);
        assert_eq!(
            String::from_utf8_lossy(&written(&l)),
            String::from_utf8_lossy(line)
        );
        assert!(!l.lossy);
        assert!(matches!(l.request_path, Cow::Borrowed(_)));
        assert!(matches!(l.user_agent, Cow::Borrowed(_)));
        l
    }

    fn e(kind: ParseErrorKind, input: &str) -> nom::Err<FieldError<'_>> {
        nom::Err::Error(FieldError {
            kind,
            input: input.as_bytes(),
        })
    }

    // ---- field parsers: output and remaining input ----

    #[test]
    fn sp_takes_one_space() {
        assert_eq!(sp(" x"), Ok(("x", ())));
        assert_eq!(sp("  x"), Ok((" x", ())));
        assert_eq!(sp("\u{a0}x"), Err(e(ParseErrorKind::Separator, "\u{a0}x")));
        assert_eq!(sp("x"), Err(e(ParseErrorKind::Separator, "x")));
        assert_eq!(sp(""), Err(e(ParseErrorKind::UnexpectedEnd, "")));
    }

    #[test]
    fn timestamp_parser() {
        assert_eq!(
            timestamp("2021-09-22T16:33:35Z 200"),
            Ok((" 200", 1_632_328_415))
        );
        assert_eq!(timestamp("1970-01-01T00:00:00Z"), Ok(("", 0)));
        for t in [
            "2021-09-22T16:33:35",
            "2021-09-22T16:33:35.5Z",
            "2021-09-22 16:33:35Z",
            "2021-09-22t16:33:35z",
            "2021-13-22T16:33:35Z",
            "2021-00-22T16:33:35Z",
            "2021-02-29T16:33:35Z",
            "2021-04-31T16:33:35Z",
            "2021-09-00T16:33:35Z",
            "2021-09-22T24:00:00Z",
            "2021-09-22T23:60:00Z",
            "2021-09-22T23:59:61Z",
            "2021-09-22T16:33:35+00:00",
            "20x1-09-22T16:33:35Z",
            "2021-09-22T16:33:35é",
            "",
        ] {
            assert_eq!(timestamp(t), Err(e(ParseErrorKind::Timestamp, t)), "{t}");
        }
    }

    #[test]
    fn rfc3339_calendar_edges() {
        let p = |s: &str| parse_rfc3339_seconds(s.as_bytes());
        assert_eq!(p("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(p("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(p("1900-02-29T00:00:00Z"), None);
        assert_eq!(p("2023-02-29T00:00:00Z"), None);
        assert_eq!(p("1969-12-31T23:59:59Z"), Some(-1));
        assert_eq!(p("0000-01-01T00:00:00Z"), Some(-62_167_219_200));
        assert_eq!(p("9999-12-31T23:59:59Z"), Some(253_402_300_799));
        assert_eq!(p("2021-09-22T16:33:35Z "), None);
        // A leap second reads as the first second of the next minute.
        assert_eq!(p("2016-12-31T23:59:60Z"), p("2017-01-01T00:00:00Z"));
        let f = |t: i64| {
            let mut out = Vec::new();
            format_rfc3339_seconds(t, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(f(1_632_328_415), "2021-09-22T16:33:35Z");
        assert_eq!(f(-1), "1969-12-31T23:59:59Z");
        assert_eq!(f(-62_167_219_200), "0000-01-01T00:00:00Z");
        assert_eq!(f(253_402_300_800), "10000-01-01T00:00:00Z");
        assert_eq!(f(-62_167_219_201), "-0001-12-31T23:59:59Z");
        // Extremes do not overflow.
        assert!(f(i64::MAX).ends_with('Z'));
        assert!(f(i64::MIN).ends_with('Z'));
    }

    #[test]
    fn status_parser() {
        assert_eq!(status("200 x"), Ok((" x", 200)));
        assert_eq!(status("429"), Ok(("", 429)));
        assert_eq!(status("999 "), Ok((" ", 999)));
        // The fourth digit is left for the separator to reject.
        assert_eq!(status("2000 "), Ok(("0 ", 200)));
        for bad in ["099 ", "20 ", "2x0 ", "-", ""] {
            assert_eq!(status(bad), Err(e(ParseErrorKind::Status, bad)), "{bad}");
        }
    }

    #[test]
    fn source_parser() {
        let src = |ip, port| Source { ip, port };
        assert_eq!(
            source("172.17.0.151:47066 \"/"),
            Ok((" \"/", src(Some("172.17.0.151"), Some(47066))))
        );
        assert_eq!(
            source("[fe80::1]:40000 x"),
            Ok((" x", src(Some("fe80::1"), Some(40000))))
        );
        assert_eq!(
            source("[fe80::1%eth0]:0 x"),
            Ok((" x", src(Some("fe80::1%eth0"), Some(0))))
        );
        assert_eq!(source("[::1] x"), Ok((" x", src(Some("::1"), None))));
        assert_eq!(source("- x"), Ok((" x", src(None, None))));
        assert_eq!(source("rAddr x"), Ok((" x", src(Some("rAddr"), None))));
        assert_eq!(
            source("10.0.0.1:65535"),
            Ok(("", src(Some("10.0.0.1"), Some(65535))))
        );
        for bad in [
            "fe80::1:80 x",        // unbracketed IPv6
            "[1.2.3.4]:80 x",      // brackets without a colon
            "[::1:80 x",           // no closing bracket
            "[::1]80 x",           // no colon before the port
            "[::1]:80] x",         // junk after the port
            "1.2.3.4:65536 x",     // port out of range
            "1.2.3.4:080 x",       // leading zero
            "1.2.3.4: x",          // empty port
            ":80 x",               // empty host
            "[]:80 x",             // empty host
            "\"/v2/credentials\"", // a path where the source belongs
            "1.2.3.é:80 x",        // not ASCII
            " x",                  // empty field
        ] {
            assert_eq!(
                source(bad),
                Err(e(ParseErrorKind::SourceAddress, bad)),
                "{bad}"
            );
        }
    }

    #[test]
    fn quoted_fields_parser() {
        assert_eq!(
            quoted_fields("\"/v2/credentials\" \"ua\" - "),
            Ok(("- ", "\"/v2/credentials\" \"ua\""))
        );
        // The last `"` followed by a space closes the user agent.
        assert_eq!(
            quoted_fields("\"/p\" \"a\" - b\" c\" arn T 2 c ci"),
            Ok(("arn T 2 c ci", "\"/p\" \"a\" - b\" c\""))
        );
        // A `"` not followed by a space is skipped (it is an error in the field after it).
        assert_eq!(
            quoted_fields("\"/p\" \"a\" arn\"x"),
            Ok(("arn\"x", "\"/p\" \"a\""))
        );
        // The opening quote of the path is never the closing quote of the user agent.
        assert_eq!(
            quoted_fields("\" - "),
            Err(e(ParseErrorKind::UserAgent, ""))
        );
        let i = "/p \"ua\" - ";
        assert_eq!(quoted_fields(i), Err(e(ParseErrorKind::PathOpenQuote, i)));
    }

    #[test]
    fn path_parser() {
        assert_eq!(
            path("\"/v2/credentials\" \"Zend\""),
            Ok(("\"Zend\"", "/v2/credentials"))
        );
        assert_eq!(path("\"\" \"\""), Ok(("\"\"", "")));
        // The first `" "` splits, even when the user agent holds more.
        assert_eq!(path("\"/a b\" \"c\" \"d\""), Ok(("\"c\" \"d\"", "/a b")));
        assert_eq!(path("\"/a\"b\" \"c\""), Ok(("\"c\"", "/a\"b")));
        assert_eq!(path("\"/a\"\" \"c\""), Ok(("\"c\"", "/a\"")));
        let i = "\"/v2/credentials\"";
        assert_eq!(path(i), Err(e(ParseErrorKind::PathCloseQuote, i)));
        let i = "\"/v2\" ";
        assert_eq!(path(i), Err(e(ParseErrorKind::PathCloseQuote, i)));
        let i = "/v2\" \"ua\"";
        assert_eq!(path(i), Err(e(ParseErrorKind::PathOpenQuote, i)));
    }

    #[test]
    fn user_agent_parser() {
        assert_eq!(user_agent("\"a \"b\" c\""), Ok(("", "a \"b\" c")));
        assert_eq!(user_agent("\"\""), Ok(("", "")));
        assert_eq!(user_agent("\"café\""), Ok(("", "café")));
        for bad in ["\"", "", "ua\"", "\"ua"] {
            assert_eq!(
                user_agent(bad),
                Err(e(ParseErrorKind::UserAgent, bad)),
                "{bad}"
            );
        }
    }

    #[test]
    fn nul_bytes_in_text_are_replaced() {
        assert_eq!(without_nul("/v2"), (Cow::Borrowed("/v2"), false));
        assert_eq!(
            without_nul("a\0b\0"),
            (Cow::Owned("a\u{FFFD}b\u{FFFD}".to_string()), true)
        );
    }

    #[test]
    fn token_field_parsers() {
        assert_eq!(task_arn("- x"), Ok((" x", None)));
        assert_eq!(
            task_arn("arn:aws:ecs:r:1:task/c/id GetCredentials"),
            Ok((" GetCredentials", Some("arn:aws:ecs:r:1:task/c/id")))
        );
        assert_eq!(task_arn("--"), Ok(("", Some("--"))));
        assert_eq!(
            event_type("GetCredentialsExecutionRole 2"),
            Ok((" 2", "GetCredentialsExecutionRole"))
        );
        assert_eq!(event_type("- 2"), Ok((" 2", "-")));
        assert_eq!(log_version("2 c"), Ok((" c", Some(2))));
        assert_eq!(log_version("65535"), Ok(("", Some(65535))));
        assert_eq!(log_version("- c"), Ok((" c", None)));
        assert_eq!(
            cluster("prod-worker arn"),
            Ok((" arn", Some("prod-worker")))
        );
        assert_eq!(cluster("- arn"), Ok((" arn", None)));
        assert_eq!(
            container_instance_arn("containerInstanceArn"),
            Ok(("", Some("containerInstanceArn")))
        );
        use ParseErrorKind as K;
        for bad in ["", " x", "a\"b", "a\r", "a\tb", "aé", "a\u{7f}", "a\0"] {
            assert_eq!(task_arn(bad), Err(e(K::TaskArn, bad)), "{bad:?}");
        }
        let i = "Get\tCredentials";
        assert_eq!(event_type(i), Err(e(K::EventType, i)));
        for bad in ["02 c", "65536", "v2", "", "2x", "+2"] {
            assert_eq!(log_version(bad), Err(e(K::LogVersion, bad)), "{bad:?}");
        }
        assert_eq!(cluster(""), Err(e(K::Cluster, "")));
        assert_eq!(cluster("a\u{7f}"), Err(e(K::Cluster, "a\u{7f}")));
        assert_eq!(
            container_instance_arn("x\""),
            Err(e(K::ContainerInstanceArn, "x\""))
        );
    }

    #[test]
    fn after_user_agent_parser() {
        let long = "task-arn-1 GetCredentialsExecutionRole 2 cluster containerInstanceArn";
        assert_eq!(
            after_user_agent(long),
            Ok((
                "",
                (
                    Some("task-arn-1"),
                    Some(TypeFields {
                        event_type: "GetCredentialsExecutionRole",
                        log_version: Some(2),
                        cluster: Some("cluster"),
                        container_instance_arn: Some("containerInstanceArn"),
                    })
                )
            ))
        );
        assert_eq!(after_user_agent("- "), Ok(("", (None, None))));
        assert_eq!(after_user_agent("-"), Ok(("", (None, None))));
        assert_eq!(after_user_agent("arn "), Ok(("", (Some("arn"), None))));
        use ParseErrorKind as K;
        let cases: &[(&str, K, usize)] = &[
            ("", K::TaskArn, 0),
            (" ", K::TaskArn, 0),
            ("-  ", K::EventType, 2),
            ("- \r", K::TrailingBytes, 2),
            ("-\r", K::TrailingBytes, 1),
            ("a T", K::TypeFields, 3),
            ("a T 2", K::TypeFields, 5),
            ("a T 2 c", K::TypeFields, 7),
            ("a T 2 c ", K::ContainerInstanceArn, 8),
            ("a T 2 c i ", K::TrailingBytes, 9),
            ("a T 2 c i j", K::TrailingBytes, 9),
            ("a T 2 c i\r", K::TrailingBytes, 9),
            ("a T x c i", K::LogVersion, 4),
            ("a T 2 c\" i", K::Cluster, 6),
            ("a Té 2 c i", K::EventType, 2),
        ];
        for &(input, kind, offset) in cases {
            match after_user_agent(input) {
                Err(nom::Err::Error(err)) => {
                    assert_eq!(err.kind, kind, "{input:?}");
                    assert_eq!(offset_in(input.as_bytes(), err.input), offset, "{input:?}");
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn find_byte_and_rfind_byte_agree_with_byte_loops() {
        let hay: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 100, 512] {
            for from in [0, 1, 3] {
                let h = hay.get(from..len).unwrap_or_default();
                for needle in [0u8, 1, 7, 0x20, 0x22, 0x7f, 0x80, 0xfe, 0xff] {
                    assert_eq!(
                        rfind_byte(h, needle),
                        h.iter().rposition(|&b| b == needle),
                        "len {len} needle {needle}"
                    );
                    assert_eq!(
                        find_byte(h, needle),
                        h.iter().position(|&b| b == needle),
                        "len {len} needle {needle}"
                    );
                }
            }
        }
        assert_eq!(find_byte(b"abcdefghijklmnopq\"", b'"'), Some(17));
        assert_eq!(find_byte(b"ab\"#\"#\"#", b'"'), Some(2));
        assert_eq!(rfind_byte(b"\"abcdefghijklmnopq", b'"'), Some(0));
        assert_eq!(rfind_byte(b"\"#######\"#", b'"'), Some(8));
        // A match directly below a needle-plus-one byte: the borrow flags the `#` too.
        assert_eq!(rfind_byte(b"xxxxxx\"#", b'"'), Some(6));
        assert_eq!(find_byte(b"xxxxxx\"#", b'"'), Some(6));
    }

    #[test]
    fn find_non_token_byte_agrees_with_a_byte_loop() {
        for bad in 0..=255u8 {
            for pos in [0usize, 1, 6, 7, 8, 9, 15, 16, 20] {
                for len in [pos + 1, pos + 9, 24] {
                    // Token bytes, then `bad` at `pos` and `bad + 1` above it (which a borrow
                    // could flag as well).
                    let mut hay: Vec<u8> = (0..len)
                        .map(|k| match b'!' + (k % 90) as u8 {
                            b'"' => b'#',
                            b => b,
                        })
                        .collect();
                    if let Some(b) = hay.get_mut(pos) {
                        *b = bad;
                    }
                    if let Some(b) = hay.get_mut(pos + 1) {
                        *b = bad.wrapping_add(1);
                    }
                    assert_eq!(
                        find_non_token_byte(&hay),
                        hay.iter().position(|&b| !is_token_byte(b)),
                        "bad {bad:#x} pos {pos} len {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn canonical_numbers() {
        assert_eq!(canonical_u16(b"0"), Some(0));
        assert_eq!(canonical_u16(b"65535"), Some(65535));
        assert_eq!(canonical_u16(b"65536"), None);
        assert_eq!(canonical_u16(b"000001"), None);
        assert_eq!(canonical_u16(b"01"), None);
        assert_eq!(canonical_u16(b""), None);
        assert_eq!(canonical_u16(b"1a"), None);
    }

    #[test]
    fn task_ids() {
        assert_eq!(
            task_id(
                "arn:aws:ecs:eu-west-1:615847981820:task/prod-worker/8ee79724637f46d5ad9dc8fe9ef8e3fe"
            ),
            Some("8ee79724637f46d5ad9dc8fe9ef8e3fe")
        );
        assert_eq!(
            task_id("arn:aws:ecs:us-east-1:123456789012:task/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"),
            Some("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
        );
        assert_eq!(
            task_id("arn:aws-cn:ecs:cn-north-1:123456789012:task/c/abc"),
            Some("abc")
        );
        for bad in [
            "-",
            "task-arn-1",
            "TASK_ARN",
            "arn:aws:ecs:r:1:container-instance/c/abc",
            "arn:aws:ecs:r:1:task/",
            "arn:aws:ecs:r:1:task/c/",
            "arn:aws:ecs:r:1:task//abc",
            "arn:aws:ecs:r:1:task/a/b/c",
            "arn:aws:iam::1:role/task/abc",
        ] {
            assert_eq!(task_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn unambiguous_paths() {
        assert!(path_is_unambiguous("/v2/credentials"));
        assert!(path_is_unambiguous(""));
        assert!(path_is_unambiguous("/a \"b\" c"));
        assert!(path_is_unambiguous("/a\""));
        assert!(path_is_unambiguous(" \"x"));
        assert!(!path_is_unambiguous("/a\" \"b"));
        assert!(!path_is_unambiguous("/a\" "));
    }

    // ---- whole lines from formats.md §1 ----

    #[test]
    fn real_v2_line_issue_3038() {
        let l = round_trip(REAL_V2);
        assert_eq!(l.event_time, 1_632_328_415);
        assert_eq!(l.status, 200);
        assert_eq!(l.source_ip.as_deref(), Some("172.17.0.151"));
        assert_eq!(l.source_port, Some(47066));
        assert_eq!(l.request_path, "/v2/credentials");
        assert_eq!(l.user_agent, "Zend_Http_Client");
        assert_eq!(
            l.task_arn.as_deref(),
            Some(
                "arn:aws:ecs:eu-west-1:615847981820:task/prod-worker/8ee79724637f46d5ad9dc8fe9ef8e3fe"
            )
        );
        assert_eq!(l.event_type.as_deref(), Some("GetCredentials"));
        assert_eq!(l.log_version, Some(2));
        assert_eq!(l.cluster.as_deref(), Some("prod-worker"));
        assert_eq!(
            l.container_instance_arn.as_deref(),
            Some(
                "arn:aws:ecs:eu-west-1:615847981820:container-instance/prod-worker/10abe8e5f47b47c38f3f5f3e232422fd"
            )
        );
        assert_eq!(
            l.task_arn.as_deref().and_then(task_id),
            Some("8ee79724637f46d5ad9dc8fe9ef8e3fe")
        );
    }

    #[test]
    fn real_error_line_issue_1780() {
        let l = round_trip(REAL_ERROR);
        assert_eq!(
            l.event_time,
            parse_rfc3339_seconds(b"2019-02-05T23:37:54Z").unwrap()
        );
        assert_eq!(l.status, 400);
        assert_eq!(l.source_ip.as_deref(), Some("10.0.100.189"));
        assert_eq!(l.source_port, Some(33724));
        assert_eq!(l.request_path, "/v2/credentials");
        assert_eq!(l.user_agent, "aws-sdk-go/1.12.66 (go1.10.3; linux; amd64)");
        assert_eq!(l.task_arn, None);
        assert_eq!(l.event_type, None);
        assert_eq!(l.log_version, None);
        assert_eq!(l.cluster, None);
        assert_eq!(l.container_instance_arn, None);
    }

    #[test]
    fn short_line_without_trailing_space_is_accepted_and_written_with_it() {
        let stripped = REAL_ERROR.strip_suffix(b" ").unwrap();
        let l = ok(stripped);
        assert_eq!(l, ok(REAL_ERROR));
        assert_eq!(written(&l), REAL_ERROR);
    }

    #[test]
    fn aws_doc_v1_line() {
        let l = round_trip(DOC_V1);
        assert_eq!(
            l.event_time,
            parse_rfc3339_seconds(b"2016-07-13T16:11:53Z").unwrap()
        );
        assert_eq!(l.status, 200);
        assert_eq!(l.source_ip.as_deref(), Some("172.17.0.5"));
        assert_eq!(l.source_port, Some(52444));
        assert_eq!(l.request_path, "/v1/credentials");
        assert_eq!(
            l.user_agent,
            "python-requests/2.7.0 CPython/2.7.6 Linux/4.4.14-24.50.amzn1.x86_64"
        );
        assert_eq!(l.task_arn.as_deref(), Some("TASK_ARN"));
        assert_eq!(l.event_type.as_deref(), Some("GetCredentials"));
        assert_eq!(l.log_version, Some(1));
        assert_eq!(l.cluster.as_deref(), Some("CLUSTER_NAME"));
        assert_eq!(
            l.container_instance_arn.as_deref(),
            Some("CONTAINER_INSTANCE_ARN")
        );
        assert_eq!(l.task_arn.as_deref().and_then(task_id), None);
    }

    #[test]
    fn agent_unit_test_lines() {
        // formats.md: derived from audit_log_test.go, `<now>` filled in; `rAddr` is a host without port.
        let lines: [(&[u8], &str, Option<&str>); 3] = [
            (
                b"2024-01-01T00:00:00Z 400 rAddr \"/urlPath\" \"userAgent\" task-arn-1 GetCredentialsExecutionRole 2 cluster containerInstanceArn",
                "/urlPath",
                Some("task-arn-1"),
            ),
            (
                b"2024-01-01T00:00:00Z 400 rAddr \"/v2/credentials\" \"userAgent\" task-arn-1 GetCredentialsExecutionRole 2 cluster containerInstanceArn",
                "/v2/credentials",
                Some("task-arn-1"),
            ),
            (
                b"2024-01-01T00:00:00Z 400 rAddr \"/urlPath\" \"userAgent\" - GetCredentialsExecutionRole 2 cluster containerInstanceArn",
                "/urlPath",
                None,
            ),
        ];
        for (line, path, arn) in lines {
            let l = round_trip(line);
            assert_eq!(l.event_time, 1_704_067_200);
            assert_eq!(l.status, 400);
            assert_eq!(l.source_ip.as_deref(), Some("rAddr"));
            assert_eq!(l.source_port, None);
            assert_eq!(l.request_path, path);
            assert_eq!(l.user_agent, "userAgent");
            assert_eq!(l.task_arn.as_deref(), arn);
            assert_eq!(l.event_type.as_deref(), Some("GetCredentialsExecutionRole"));
            assert_eq!(l.log_version, Some(2));
            assert_eq!(l.cluster.as_deref(), Some("cluster"));
            assert_eq!(
                l.container_instance_arn.as_deref(),
                Some("containerInstanceArn")
            );
        }
    }

    #[test]
    fn derived_429_lines() {
        let line =
            "2024-01-01T00:00:00Z 429 172.17.0.3:40000 \"/v2/credentials\" \"Boto3/1.34 …\" - ";
        let l = round_trip(line.as_bytes());
        assert_eq!(l.status, 429);
        assert_eq!(l.user_agent, "Boto3/1.34 …");
        assert_eq!(l.task_arn, None);
        assert_eq!(l.event_type, None);
        let line = b"2024-01-01T00:00:00Z 429 172.17.0.3:40000 \"/v3/0a1b/task\" \"curl/8.5.0\" - ";
        let l = round_trip(line);
        assert_eq!(l.request_path, "/v3/0a1b/task");
        assert_eq!(l.user_agent, "curl/8.5.0");
    }

    #[test]
    fn other_error_statuses() {
        for status in [400u16, 429, 500, 503] {
            let line = format!(
                "2024-03-01T12:00:00Z {status} 10.0.0.7:51234 \"/v2/credentials\" \"aws-sdk-java/2.25\" - "
            );
            let l = round_trip(line.as_bytes());
            assert_eq!(l.status, status);
            assert_eq!(l.event_type, None);
        }
    }

    #[test]
    fn execution_role_and_future_event_types() {
        let line = b"2024-03-01T12:00:00Z 200 172.17.0.1:41000 \"/v2/credentials\" \"Go-http-client/1.1\" arn:aws:ecs:us-east-1:123456789012:task/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0 GetCredentialsExecutionRole 2 default arn:aws:ecs:us-east-1:123456789012:container-instance/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        let l = round_trip(line);
        assert_eq!(l.event_type.as_deref(), Some("GetCredentialsExecutionRole"));
        assert_eq!(
            l.task_arn.as_deref().and_then(task_id),
            Some("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
        );
        let line = b"2027-01-01T00:00:00Z 200 172.17.0.1:41000 \"/v3/credentials\" \"x\" task GetCredentialsV3Token 3 c ci";
        let l = round_trip(line);
        assert_eq!(l.event_type.as_deref(), Some("GetCredentialsV3Token"));
        assert_eq!(l.log_version, Some(3));
    }

    #[test]
    fn user_agent_with_quotes_and_spaces_does_not_shift_columns() {
        let line = b"2024-01-01T00:00:00Z 200 172.17.0.9:1234 \"/v2/credentials\" \"evil\" \"x\" - GetCredentials 2 c ci\" arn:aws:ecs:r:1:task/c/abc GetCredentials 2 prod ci-arn";
        let l = round_trip(line);
        assert_eq!(l.user_agent, "evil\" \"x\" - GetCredentials 2 c ci");
        assert_eq!(l.task_arn.as_deref(), Some("arn:aws:ecs:r:1:task/c/abc"));
        assert_eq!(l.cluster.as_deref(), Some("prod"));
        let line =
            b"2024-01-01T00:00:00Z 400 172.17.0.9:1234 \"/v2/credentials\" \"a\" b c d e\" - ";
        let l = round_trip(line);
        assert_eq!(l.user_agent, "a\" b c d e");
        assert_eq!(l.event_type, None);
        // The same line with its trailing space stripped is still a short line.
        let l = ok(line.strip_suffix(b" ").unwrap());
        assert_eq!(l.user_agent, "a\" b c d e");
        assert_eq!(l.event_type, None);
    }

    #[test]
    fn empty_path_and_user_agent() {
        let line = b"2024-01-01T00:00:00Z 400 172.17.0.9:1234 \"\" \"\" - ";
        let l = round_trip(line);
        assert_eq!(l.request_path, "");
        assert_eq!(l.user_agent, "");
    }

    #[test]
    fn ipv6_and_missing_sources() {
        let line = b"2024-01-01T00:00:00Z 200 [fe80::1]:40000 \"/v2/credentials\" \"ua\" arn:aws:ecs:r:1:task/c/abc GetCredentials 2 c ci";
        let l = round_trip(line);
        assert_eq!(l.source_ip.as_deref(), Some("fe80::1"));
        assert_eq!(l.source_port, Some(40000));
        let line = b"2024-01-01T00:00:00Z 400 - \"/v2/credentials\" \"ua\" - ";
        let l = round_trip(line);
        assert_eq!(l.source_ip, None);
        assert_eq!(l.source_port, None);
    }

    #[test]
    fn invalid_utf8_and_nul_are_lossy() {
        let line = b"2024-01-01T00:00:00Z 400 10.0.0.1:1 \"/v2/\xff\" \"ua\0x\" - ";
        let l = ok(line);
        assert!(l.lossy);
        assert_eq!(l.request_path, "/v2/\u{FFFD}");
        assert_eq!(l.user_agent, "ua\u{FFFD}x");
        assert!(l.task_arn.is_none());
        // Invalid bytes outside path and user agent are errors, not lossy text, reported at the
        // start of their field.
        use ParseErrorKind as K;
        let cases: &[(&[u8], K, usize)] = &[
            (
                b"2024-01-01T00:00:00Z 400 10.0.0.1:1 \"/v2\" \"ua\" \xff ",
                K::TaskArn,
                47,
            ),
            (
                b"2024-01-01T00:00:00Z 400 10.0.0.1:1 \"/v2\" \"ua\" a T\xff 2 c i",
                K::EventType,
                49,
            ),
            (
                b"2024-01-01T00:00:00Z 400 10.0.0.1:1 \"/v2\" \"ua\" a T 2 c i\xff",
                K::ContainerInstanceArn,
                55,
            ),
            (
                b"2024-01-01T00:00:00Z 400 10.0.0.\xff:1 \"/v2\" \"ua\" - ",
                K::SourceAddress,
                25,
            ),
            (
                b"2024-01-01T00:00:00\xff 400 10.0.0.1:1 \"/v2\" \"ua\" - ",
                K::Timestamp,
                0,
            ),
            (
                b"2024-01-01T00:00:00Z 4\xff0 10.0.0.1:1 \"/v2\" \"ua\" - ",
                K::Status,
                21,
            ),
            (
                b"2024-01-01T00:00:00Z 400 10.0.0.1:1 \xff\"/v2\" \"ua\" - ",
                K::PathOpenQuote,
                36,
            ),
        ];
        let mut wrong = Vec::new();
        for &(line, kind, offset) in cases {
            if err(line) != (kind, offset) {
                wrong.push((String::from_utf8_lossy(line), err(line)));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        // Valid UTF-8 in the user agent next to invalid bytes in the path stays as it was.
        let l = ok(b"2024-01-01T00:00:00Z 400 10.0.0.1:1 \"/\xc3\" \"caf\xc3\xa9\" - ");
        assert!(l.lossy);
        assert_eq!(l.request_path, "/\u{FFFD}");
        assert_eq!(l.user_agent, "café");
    }

    /// The caller strips only `\n`. A `\r` left by CRLF line ends is part of the line, which then
    /// fails at the `\r` (the agent never writes one; the raw line is kept with this reason).
    #[test]
    fn carriage_return_is_not_stripped_and_rejects_the_line() {
        let mut crlf = REAL_V2.to_vec();
        crlf.push(b'\r');
        assert_eq!(err(&crlf), (ParseErrorKind::TrailingBytes, REAL_V2.len()));
        let mut crlf = REAL_ERROR.to_vec();
        crlf.push(b'\r');
        assert_eq!(
            err(&crlf),
            (ParseErrorKind::TrailingBytes, REAL_ERROR.len())
        );
        assert_eq!(
            parse_line(&crlf).unwrap_err().reason(),
            format!(
                "unexpected bytes after the last field at byte {}",
                REAL_ERROR.len()
            )
        );
        // Inside the user agent a `\r` is just text.
        let l = round_trip(b"2024-01-01T00:00:00Z 400 10.0.0.1:1 \"/v2\" \"a\rb\" - ");
        assert_eq!(l.user_agent, "a\rb");
    }

    #[test]
    fn errors_name_the_field_and_offset() {
        use ParseErrorKind as K;
        let cases: &[(&[u8], K, usize)] = &[
            (b"", K::Empty, 0),
            (b"2021-09-22T16:33:35", K::Timestamp, 0),
            (b"2021-09-22 16:33:35Z 200", K::Timestamp, 0),
            (b"2021-09-22T16:33:35Z", K::UnexpectedEnd, 20),
            (b"2021-09-22T16:33:35Z  200", K::Status, 21),
            (b"2021-09-22T16:33:35Zx200", K::Separator, 20),
            (b"2021-09-22T16:33:35Z 2000 1.2.3.4:5", K::Separator, 24),
            (b"2021-09-22T16:33:35Z 200 1.2.3.4:5", K::UnexpectedEnd, 34),
            (
                b"2021-09-22T16:33:35Z 200 1.2.3.4:x \"/\" \"\" - ",
                K::SourceAddress,
                25,
            ),
            (
                b"2021-09-22T16:33:35Z 200 1.2.3.4:5 /v2 \"\" - ",
                K::PathOpenQuote,
                35,
            ),
            (
                b"2021-09-22T16:33:35Z 200 1.2.3.4:5 \"/v2\" - ",
                K::PathCloseQuote,
                35,
            ),
            (
                b"2021-09-22T16:33:35Z 200 1.2.3.4:5 \"/v2\" \"ua - ",
                K::PathCloseQuote,
                35,
            ),
            (
                b"2021-09-22T16:33:35Z 200 1.2.3.4:5 \"/v2 \"ua\"",
                K::UserAgent,
                44,
            ),
            (
                b"2021-09-22T16:33:35Z 200 1.2.3.4:5 \"/v2\" \" - ",
                K::UserAgent,
                41,
            ),
            (
                b"2021-09-22T16:33:35Z 200 1.2.3.4:5 \"/v2\" \"ua\" ",
                K::TaskArn,
                46,
            ),
            (
                b"2021-09-22T16:33:35Z 200 1.2.3.4:5 \"/v2\" \"ua\" a T",
                K::TypeFields,
                49,
            ),
            (
                b"2021-09-22T16:33:35Z 200 1.2.3.4:5 \"/v2\" \"ua\" a T 02 c i",
                K::LogVersion,
                50,
            ),
            (
                b"2021-09-22T16:33:35Z 200 1.2.3.4:5 \"/v2\" \"ua\" a T 2 c i ",
                K::TrailingBytes,
                55,
            ),
            (
                b"2021-09-22T16:33:35Z 200 1.2.3.4:5 \"/v2\" \"ua\" a T 2 c i\"",
                K::ContainerInstanceArn,
                54,
            ),
        ];
        let mut wrong = Vec::new();
        for &(line, kind, offset) in cases {
            if err(line) != (kind, offset) {
                wrong.push((String::from_utf8_lossy(line), err(line)));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        let e = parse_line(b"x").unwrap_err();
        assert_eq!(e.to_string(), "invalid timestamp at byte 0");
        assert_eq!(e.reason(), "invalid timestamp at byte 0");
    }

    #[test]
    fn into_owned_keeps_fields() {
        let l = ok(REAL_V2);
        let owned: AuditLine<'static> = l.clone().into_owned();
        assert_eq!(owned, l);
    }

    // ---- properties ----

    fn token_string() -> impl Strategy<Value = String> {
        prop_oneof![
            "[!#-~]{1,40}".prop_filter("`-` means absent", |s| s != "-"),
            "arn:aws:ecs:[a-z]{2}-[a-z]{4}-[1-9]:[0-9]{12}:task/[a-z-]{1,12}/[0-9a-f]{32}",
            "arn:aws:ecs:[a-z]{2}-[a-z]{4}-[1-9]:[0-9]{12}:task/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        ]
    }

    /// Text with the awkward characters over-represented: `"`, space, `-`, `\r`, non-ASCII, and
    /// pieces that look like the end of a line (`" - `, `" arn GetCredentials 2 c ci`) or like the
    /// separator between path and user agent (`" "`).
    fn free_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            6 => proptest::char::range('!', '~').prop_map(String::from),
            3 => Just("\"".to_string()),
            3 => Just(" ".to_string()),
            1 => Just("-".to_string()),
            1 => Just("\r".to_string()),
            1 => Just("\t".to_string()),
            1 => Just("\" - ".to_string()),
            1 => Just("\" -".to_string()),
            1 => Just("\" arn:aws:ecs:r:1:task/c/id GetCredentials 2 c ci".to_string()),
            1 => Just("\" \"".to_string()),
            2 => any::<char>()
                .prop_filter("no line feed or NUL", |c| *c != '\n' && *c != '\0')
                .prop_map(String::from),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    fn source_strategy() -> impl Strategy<Value = (Option<String>, Option<u16>)> {
        prop_oneof![
            Just((None, None)),
            (any::<[u8; 4]>(), proptest::option::of(any::<u16>()))
                .prop_map(|(ip, port)| { (Some(std::net::Ipv4Addr::from(ip).to_string()), port) }),
            (any::<u128>(), proptest::option::of(any::<u16>()))
                .prop_map(|(ip, port)| { (Some(std::net::Ipv6Addr::from(ip).to_string()), port) }),
            ("[a-zA-Z0-9._-]{1,20}", proptest::option::of(any::<u16>()))
                .prop_filter("`-` means absent", |(h, _)| h != "-")
                .prop_map(|(h, p)| (Some(h), p)),
        ]
    }

    #[allow(clippy::type_complexity)]
    fn type_fields_strategy()
    -> impl Strategy<Value = Option<(String, Option<u16>, Option<String>, Option<String>)>> {
        proptest::option::of((
            prop_oneof![
                Just("GetCredentials".to_string()),
                Just("GetCredentialsExecutionRole".to_string()),
                Just("-".to_string()),
                token_string(),
            ],
            proptest::option::of(any::<u16>()),
            proptest::option::of(token_string()),
            proptest::option::of(token_string()),
        ))
    }

    fn line_strategy() -> impl Strategy<Value = AuditLine<'static>> {
        (
            -62_167_219_200i64..=253_402_300_799,
            100u16..=999,
            source_strategy(),
            // The one ambiguity of the format (module docs): a path holding `" "`, or ending in
            // `" `, is split elsewhere. The user agent may hold anything but a line feed, including
            // `" "`, `" - ` and a whole fake tail: nothing after it may contain `"`.
            free_text().prop_filter("path split is ambiguous", |p| path_is_unambiguous(p)),
            free_text(),
            proptest::option::of(token_string()),
            type_fields_strategy(),
        )
            .prop_map(|(t, status, (ip, port), path, ua, arn, tf)| {
                let (event_type, log_version, cluster, ci) = match tf {
                    Some((e, v, c, i)) => (Some(e), v, c, i),
                    None => (None, None, None, None),
                };
                AuditLine {
                    event_time: t,
                    status,
                    source_port: ip.as_ref().and(port),
                    source_ip: ip.map(Cow::Owned),
                    request_path: Cow::Owned(path),
                    user_agent: Cow::Owned(ua),
                    task_arn: arn.map(Cow::Owned),
                    event_type: event_type.map(Cow::Owned),
                    log_version,
                    cluster: cluster.map(Cow::Owned),
                    container_instance_arn: ci.map(Cow::Owned),
                    lossy: false,
                    truncated: false,
                }
            })
    }

    /// A valid line with a few bytes overwritten, inserted or removed.
    fn mutated_line() -> impl Strategy<Value = Vec<u8>> {
        let edit = (
            any::<prop::sample::Index>(),
            0u8..3,
            any::<u8>(),
            prop_oneof![
                Just(b' '),
                Just(b'"'),
                Just(b'-'),
                Just(b'\r'),
                Just(b':'),
                Just(b'['),
                Just(b']'),
                Just(0u8),
                Just(0xffu8),
                any::<u8>(),
            ],
        );
        (line_strategy(), proptest::collection::vec(edit, 0..4)).prop_map(|(l, edits)| {
            let mut bytes = written(&l);
            for (at, op, _, byte) in edits {
                let pos = at.index(bytes.len() + 1);
                match op {
                    0 if pos < bytes.len() => bytes[pos] = byte,
                    1 => bytes.insert(pos, byte),
                    _ if pos < bytes.len() => {
                        bytes.remove(pos);
                    }
                    _ => {}
                }
            }
            bytes
        })
    }

    /// What must hold for any input: no panic, and a parsed line written out parses to itself;
    /// unless lossy, it reproduces the input (modulo the short form's trailing space and `:60`).
    fn check_any(input: &[u8]) -> Result<(), TestCaseError> {
        match parse_line(input) {
            Ok(l) => {
                let out = written(&l);
                // A lossy line is written with U+FFFD, which then reads back as plain text.
                let again = parse_line(&out).map(|a| AuditLine {
                    lossy: l.lossy,
                    ..a
                });
                prop_assert_eq!(again.as_ref(), Ok(&l), "{}", String::from_utf8_lossy(&out));
                if !l.lossy {
                    let leap = input.get(17..19) == Some(b"60");
                    let stripped = l.event_type.is_none() && out.strip_suffix(b" ") == Some(input);
                    prop_assert!(
                        out == input || stripped || leap,
                        "{}",
                        String::from_utf8_lossy(&out)
                    );
                }
            }
            Err(e) => prop_assert!(e.offset <= input.len()),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            check_any(&input)?;
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_prefix_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut input = b"2024-01-01T00:00:00Z 200 1.2.3.4:5 \"".to_vec();
            input.extend_from_slice(&tail);
            check_any(&input)?;
        }

        #[test]
        fn timestamps_round_trip(t in -62_167_219_200i64..=253_402_300_799) {
            let mut out = Vec::new();
            format_rfc3339_seconds(t, &mut out);
            prop_assert_eq!(out.len(), 20);
            prop_assert_eq!(parse_rfc3339_seconds(&out), Some(t));
            prop_assert_eq!(timestamp(std::str::from_utf8(&out).unwrap()), Ok(("", t)));
        }

        #[test]
        fn format_never_panics(t in any::<i64>()) {
            let mut out = Vec::new();
            format_rfc3339_seconds(t, &mut out);
            prop_assert!(out.ends_with(b"Z"));
        }
    }

    // Generating a line costs about 1.5 ms in a debug build, so fewer cases here.
    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 1024,
            max_global_rejects: 1 << 16,
            max_local_rejects: 1 << 20,
            ..ProptestConfig::default()
        })]

        #[test]
        fn mutated_lines_never_panic(input in mutated_line()) {
            check_any(&input)?;
        }

        #[test]
        fn generated_lines_round_trip(line in line_strategy()) {
            let bytes = written(&line);
            let parsed = parse_line(&bytes);
            prop_assert_eq!(parsed.as_ref(), Ok(&line), "{}", String::from_utf8_lossy(&bytes));
            let again = written(&parsed.unwrap());
            prop_assert_eq!(again, bytes);
        }

        #[test]
        fn short_lines_without_trailing_space_parse_the_same(line in line_strategy()) {
            let line = AuditLine { event_type: None, log_version: None, cluster: None,
                                   container_instance_arn: None, ..line };
            let bytes = written(&line);
            let stripped = bytes.strip_suffix(b" ").unwrap();
            prop_assert_eq!(parse_line(stripped), Ok(line));
        }
    }

    /// `cargo test --release -- --ignored --nocapture bench_parse_line`
    ///
    /// 1,000,000 lines (80% the real long line, 10% the AWS doc line, 10% the real error line),
    /// timed seven times; prints the fastest and the median run.
    #[test]
    #[ignore]
    fn bench_parse_line() {
        let lines: Vec<Vec<u8>> = (0..1000u32)
            .map(|n| {
                let base: &[u8] = match n % 10 {
                    0 => REAL_ERROR,
                    1 => DOC_V1,
                    _ => REAL_V2,
                };
                let mut l = base.to_vec();
                l[18] = b'0' + (n % 10) as u8;
                l
            })
            .collect();
        let bytes: usize = lines.iter().map(Vec::len).sum();
        let rounds = 1000;
        let n = (rounds * lines.len()) as f64;
        let time = |f: &dyn Fn(&[u8]) -> usize| {
            let mut runs: Vec<f64> = (0..7)
                .map(|_| {
                    let start = std::time::Instant::now();
                    let mut sum = 0usize;
                    for _ in 0..rounds {
                        for l in &lines {
                            sum = sum.wrapping_add(f(std::hint::black_box(l)));
                        }
                    }
                    std::hint::black_box(sum);
                    start.elapsed().as_nanos() as f64 / n
                })
                .collect();
            runs.sort_by(f64::total_cmp);
            (runs[0], runs[3])
        };
        let (best, median) = time(&|l| match parse_line(l) {
            Ok(p) => p.event_time as usize + p.user_agent.len(),
            Err(_) => 0,
        });
        // Calibration: what one UTF-8 check of the whole line costs on this machine.
        let (utf8, _) = time(&|l| usize::from(std::str::from_utf8(l).is_ok()));
        println!(
            "parse_line: best {best:.1} ns/line, median {median:.1} ns/line ({:.1} M lines/s), \
             avg {} bytes/line; from_utf8 of the same lines: {utf8:.1} ns/line",
            1e3 / best,
            bytes / lines.len(),
        );
    }
}
