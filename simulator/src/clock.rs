//! Simulated time: Unix seconds (or milliseconds) and the text forms AWS writes them in.
//! Pure arithmetic on the proleptic Gregorian calendar; no wall clock anywhere.

/// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date `(year, month, day)` of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

pub fn civil(unix: i64) -> Civil {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: (secs / 3600) as u32,
        minute: (secs / 60 % 60) as u32,
        second: (secs % 60) as u32,
    }
}

fn push2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

fn push_year(out: &mut Vec<u8>, y: i64) {
    let y = y.clamp(0, 9999) as u32;
    push2(out, y / 100);
    push2(out, y % 100);
}

/// `2026-11-16T00:05:09Z` (CloudTrail `eventTime`, audit-log time).
pub fn rfc3339(unix: i64, out: &mut Vec<u8>) {
    let c = civil(unix);
    push_year(out, c.year);
    out.push(b'-');
    push2(out, c.month);
    out.push(b'-');
    push2(out, c.day);
    out.push(b'T');
    push2(out, c.hour);
    out.push(b':');
    push2(out, c.minute);
    out.push(b':');
    push2(out, c.second);
    out.push(b'Z');
}

pub fn rfc3339_string(unix: i64) -> String {
    let mut v = Vec::with_capacity(20);
    rfc3339(unix, &mut v);
    String::from_utf8(v).unwrap_or_default()
}

/// Go's `time.RFC3339Nano` for a millisecond instant: `2026-11-16T00:05:09.123Z` (trailing
/// zeros of the fraction dropped, as Go does).
pub fn rfc3339_millis(unix_ms: i64) -> String {
    let mut v = Vec::with_capacity(24);
    rfc3339(unix_ms.div_euclid(1000), &mut v);
    let ms = unix_ms.rem_euclid(1000);
    if ms != 0 {
        v.pop();
        let mut frac = format!(".{ms:03}");
        while frac.ends_with('0') {
            frac.pop();
        }
        v.extend_from_slice(frac.as_bytes());
        v.push(b'Z');
    }
    String::from_utf8(v).unwrap_or_default()
}

/// The AWS CLI's ISO form for IAM dates: `2026-11-16T00:05:09+00:00`.
pub fn iso_offset(unix: i64) -> String {
    let mut s = rfc3339_string(unix);
    s.pop();
    s.push_str("+00:00");
    s
}

/// Epoch seconds with a millisecond fraction, as the AWS CLI prints ECS timestamps.
pub fn epoch_fraction(unix_ms: i64) -> f64 {
    unix_ms as f64 / 1000.0
}

/// `YYYY/MM/DD` directory of a CloudTrail object key.
pub fn date_path(unix: i64) -> String {
    let c = civil(unix);
    format!("{:04}/{:02}/{:02}", c.year, c.month, c.day)
}

/// `20261116T0005Z`: the delivery time in a CloudTrail object name.
pub fn compact_minute(unix: i64) -> String {
    let c = civil(unix);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute
    )
}

/// `20261116T000509Z`: a file-name-safe instant.
pub fn compact_second(unix: i64) -> String {
    let c = civil(unix);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `2026-11-16-05`: seelog's hourly roll suffix.
pub fn hour_suffix(unix: i64) -> String {
    let c = civil(unix);
    format!("{:04}-{:02}-{:02}-{:02}", c.year, c.month, c.day, c.hour)
}

/// STS's `expiration` in CloudTrail `responseElements`: `Nov 16, 2026, 6:00:09 AM`.
pub fn sts_expiration(unix: i64, out: &mut Vec<u8>) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil(unix);
    let (h12, ampm) = match c.hour {
        0 => (12, "AM"),
        1..=11 => (c.hour, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    use std::io::Write;
    let _ = write!(
        out,
        "{} {}, {}, {}:{:02}:{:02} {}",
        MONTHS[(c.month - 1) as usize],
        c.day,
        c.year,
        h12,
        c.minute,
        c.second,
        ampm
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let t = days_from_civil(2026, 11, 16) * 86_400;
        assert_eq!(rfc3339_string(t), "2026-11-16T00:00:00Z");
        assert_eq!(rfc3339_string(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_string(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(compact_minute(t + 305), "20261116T0005Z");
        assert_eq!(hour_suffix(t + 3600 * 13), "2026-11-16-13");
        assert_eq!(rfc3339_millis(t * 1000 + 120), "2026-11-16T00:00:00.12Z");
        assert_eq!(rfc3339_millis(t * 1000), "2026-11-16T00:00:00Z");
        let mut v = Vec::new();
        sts_expiration(t + 6 * 3600 + 9, &mut v);
        assert_eq!(String::from_utf8(v).unwrap(), "Nov 16, 2026, 6:00:09 AM");
        let mut v = Vec::new();
        sts_expiration(t + 12 * 3600, &mut v);
        assert_eq!(String::from_utf8(v).unwrap(), "Nov 16, 2026, 12:00:00 PM");
        for d in [-1000, 0, 59, 10_000, 20_000, 40_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
