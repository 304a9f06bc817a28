//! Timestamps as AWS writes them, to microseconds since the Unix epoch (UTC). Pure, no I/O.
//!
//! Accepted: RFC 3339 / ISO 8601 extended (`2018-11-28T22:31:59Z`, with fractions, with a
//! `+hh:mm` offset, with a space instead of `T`, or with no zone = UTC), ISO 8601 basic
//! (`20131102T010628Z`, CloudTrail's documented `creationDate` example), and epoch seconds with
//! a fraction (`1732100400.123`, the AWS CLI's default JSON output).

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day count from 1970-01-01; inverse of
/// [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |a, &c| a * 10 + i64::from(c - b'0')))
}

/// Parses an ISO 8601 / RFC 3339 time (extended or basic form) to µs since the epoch.
pub fn parse_iso_us(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let (date, rest) = if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' {
        (
            (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?),
            &b[10..],
        )
    } else if b.len() >= 8 && b[..8].iter().all(u8::is_ascii_digit) {
        (
            (digits(&b[0..4])?, digits(&b[4..6])?, digits(&b[6..8])?),
            &b[8..],
        )
    } else {
        return None;
    };
    let (y, mo, d) = date;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, mo as u32, d as u32) * 86_400;
    let mut micros = 0i64;
    let mut rest = rest;
    if let Some((&sep, after)) = rest.split_first()
        && (sep == b'T' || sep == b't' || sep == b' ')
    {
        rest = after;
        let (h, mi, sec, after) = if rest.len() >= 8 && rest[2] == b':' && rest[5] == b':' {
            (
                digits(&rest[0..2])?,
                digits(&rest[3..5])?,
                digits(&rest[6..8])?,
                &rest[8..],
            )
        } else if rest.len() >= 6 && rest[..6].iter().all(u8::is_ascii_digit) {
            (
                digits(&rest[0..2])?,
                digits(&rest[2..4])?,
                digits(&rest[4..6])?,
                &rest[6..],
            )
        } else if rest.len() >= 5 && rest[2] == b':' {
            (digits(&rest[0..2])?, digits(&rest[3..5])?, 0, &rest[5..])
        } else {
            return None;
        };
        if h > 24 || mi > 59 || sec > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + sec;
        rest = after;
        if let Some((&c, frac)) = rest.split_first()
            && (c == b'.' || c == b',')
        {
            let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            let mut f = 0i64;
            for (i, &c) in frac[..n].iter().enumerate() {
                if i < 6 {
                    f = f * 10 + i64::from(c - b'0');
                }
            }
            for _ in n..6 {
                f *= 10;
            }
            micros = f;
            rest = &frac[n..];
        }
    }
    match rest {
        [] | [b'Z'] | [b'z'] => {}
        [sign @ (b'+' | b'-'), tz @ ..] => {
            let (oh, om) = match tz {
                [a, b, b':', c, d] => (digits(&[*a, *b])?, digits(&[*c, *d])?),
                [a, b, c, d] => (digits(&[*a, *b])?, digits(&[*c, *d])?),
                [a, b] => (digits(&[*a, *b])?, 0),
                _ => return None,
            };
            let off = oh * 3600 + om * 60;
            secs += if *sign == b'+' { -off } else { off };
        }
        _ => return None,
    }
    Some(secs * 1_000_000 + micros)
}

/// Parses epoch seconds with an optional fraction (`1732100400.123`) to µs.
pub fn parse_epoch_us(s: &str) -> Option<i64> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let neg = int.starts_with('-');
    let secs = digits(int.trim_start_matches('-').as_bytes())?;
    let mut f = 0i64;
    let fb = frac.as_bytes();
    if !fb.is_empty() && !fb.iter().all(u8::is_ascii_digit) {
        return None;
    }
    for i in 0..6 {
        f = f * 10 + fb.get(i).map_or(0, |c| i64::from(c - b'0'));
    }
    let us = secs.checked_mul(1_000_000)?.checked_add(f)?;
    Some(if neg { -us } else { us })
}

/// A JSON value holding a time: an epoch number, or a string in any accepted form.
pub fn from_json_us(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.checked_mul(1_000_000)
            } else {
                parse_epoch_us(&n.to_string())
            }
        }
        serde_json::Value::String(s) => parse_iso_us(s).or_else(|| parse_epoch_us(s)),
        _ => None,
    }
}

/// `2026-11-16T00:05:00Z` for Unix seconds (RFC 3339, UTC, whole seconds); inverse of
/// [`parse_iso_us`] on that form.
pub fn rfc3339_string(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let s = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// A `--since` value: a time in any accepted form, or an age (`90d`, `12h`, `30m`) before
/// `now_us`.
pub fn parse_since(s: &str, now_us: i64) -> Option<i64> {
    let s = s.trim();
    if let Some(t) = parse_iso_us(s) {
        return Some(t);
    }
    let unit = match s.as_bytes().last()? {
        b'd' => 86_400,
        b'h' => 3_600,
        b'm' => 60,
        _ => return None,
    };
    let n = digits(&s.as_bytes()[..s.len() - 1])?;
    now_us.checked_sub(n.checked_mul(unit)?.checked_mul(1_000_000)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudtrail_times() {
        assert_eq!(
            parse_iso_us("2018-11-28T22:31:59Z"),
            Some(1_543_444_319_000_000)
        );
        assert_eq!(parse_iso_us("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso_us("2013-11-02T01:06:28Z"),
            parse_iso_us("20131102T010628Z")
        );
        assert_eq!(
            parse_iso_us("2024-02-29T12:00:00.5Z"),
            Some(parse_iso_us("2024-02-29T12:00:00Z").unwrap() + 500_000)
        );
        assert_eq!(
            parse_iso_us("2024-01-01T02:00:00+02:00"),
            parse_iso_us("2024-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_iso_us("2024-01-01 00:00:00"),
            parse_iso_us("2024-01-01T00:00:00Z")
        );
        assert_eq!(parse_iso_us("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_iso_us("Nov 29, 2018 4:31:59 AM"), None);
        assert_eq!(parse_iso_us(""), None);
        assert_eq!(parse_iso_us("2024-01-01T00:00:00Zjunk"), None);
    }

    #[test]
    fn epoch_times() {
        assert_eq!(
            parse_epoch_us("1732100400.123"),
            Some(1_732_100_400_123_000)
        );
        assert_eq!(parse_epoch_us("1732100400"), Some(1_732_100_400_000_000));
        assert_eq!(parse_epoch_us("12x"), None);
        let v: serde_json::Value = serde_json::from_str("1732100400.5").unwrap();
        assert_eq!(from_json_us(&v), Some(1_732_100_400_500_000));
        let v = serde_json::Value::String("2024-11-20T10:00:00.000000+00:00".into());
        assert_eq!(from_json_us(&v), parse_iso_us("2024-11-20T10:00:00Z"));
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1000, -1, 0, 59, 60, 11_016, 20_513, 20_818, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{days}: {y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(20_777), (2026, 11, 20));
    }

    #[test]
    fn rfc3339_strings_round_trip() {
        assert_eq!(rfc3339_string(1_795_305_600), "2026-11-22T00:00:00Z");
        assert_eq!(rfc3339_string(-1), "1969-12-31T23:59:59Z");
        for unix in [-86_401, 0, 59, 1_543_444_319, 1_795_305_909] {
            let s = rfc3339_string(unix);
            assert_eq!(parse_iso_us(&s), Some(unix * 1_000_000), "{s}");
        }
    }

    #[test]
    fn since_values() {
        let now = parse_iso_us("2026-11-20T12:00:00Z").unwrap();
        assert_eq!(
            parse_since("2026-11-20T10:00:00Z", now),
            parse_iso_us("2026-11-20T10:00:00Z")
        );
        assert_eq!(parse_since("2h", now), parse_iso_us("2026-11-20T10:00:00Z"));
        assert_eq!(parse_since("1d", now), parse_iso_us("2026-11-19T12:00:00Z"));
        assert_eq!(
            parse_since("30m", now),
            parse_iso_us("2026-11-20T11:30:00Z")
        );
        assert_eq!(parse_since("d", now), None);
        assert_eq!(parse_since("yesterday", now), None);
    }
}
