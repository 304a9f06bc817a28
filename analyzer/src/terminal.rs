//! Text headed for a terminal: strings from logs are untrusted, so control characters (and
//! bidirectional overrides) are shown escaped instead of being interpreted.

use std::borrow::Cow;

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character written as `\xNN` (or `\u{NNNN}` above U+00FF).
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            let v = u32::from(c);
            if v <= 0xff {
                out.push_str(&format!("\\x{v:02x}"));
            } else {
                out.push_str(&format!("\\u{{{v:04x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `n` with thousands separators: `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_only() {
        assert_eq!(escape_control("curl/8.5.0"), "curl/8.5.0");
        assert!(matches!(escape_control("plain"), Cow::Borrowed(_)));
        assert_eq!(escape_control("a\x1b[31mb\n"), "a\\x1b[31mb\\x0a");
        assert_eq!(escape_control("x\u{202e}y\u{85}"), "x\\u{202e}y\\x85");
        assert_eq!(escape_control("é ü"), "é ü");
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(10_234_567), "10,234,567");
    }
}
