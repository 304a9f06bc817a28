//! `cargo +nightly fuzz run parse_line` (from `collector/`).
//!
//! Any input: `parse_line` must not panic. A line that parses is written back with `write_to`,
//! and that text must parse to the same fields. Unless path or user agent were decoded lossily,
//! the written text must also be the input itself, except for the two documented
//! normalisations: a short line gets its trailing space back, and a leap second `:60` becomes
//! the next second.
#![no_main]

use credtrail_collector::parse::{AuditLine, parse_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = parse_line(data) else {
        return;
    };
    let mut out = Vec::new();
    line.write_to(&mut out);
    let again = match parse_line(&out) {
        Ok(again) => again,
        Err(e) => panic!(
            "written line does not parse ({e}): {:?}",
            String::from_utf8_lossy(&out)
        ),
    };
    // Lossy text is written with U+FFFD, which then reads back as plain text.
    let again = AuditLine {
        lossy: line.lossy,
        ..again
    };
    assert_eq!(again, line, "{:?}", String::from_utf8_lossy(&out));
    if !line.lossy {
        let short_without_space = line.event_type.is_none() && out.strip_suffix(b" ") == Some(data);
        let leap_second = data.get(17..19) == Some(&b"60"[..]);
        assert!(
            out == data || short_without_space || leap_second,
            "input {:?} written as {:?}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&out)
        );
    }
});
