//! Splits a stream of CloudTrail JSON into one byte slice per record, without parsing it and
//! without holding more than the largest record in memory. Handles S3 delivery's
//! `{"Records":[…]}` wrapper, plain arrays of records, and JSON lines (or any sequence of
//! top-level objects), including several of these concatenated.
//!
//! Malformed input is returned as [`Piece::Junk`] with a reason, and the split goes on: one bad
//! record never costs the rest of the file.

use std::io::{self, Read};

/// One piece of the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A complete JSON object (syntax inside not checked): a record, if it parses.
    Record {
        /// Position among the file's records (array elements or top-level objects), from 0.
        index: u64,
        /// Offset of the first byte in the (decompressed) stream.
        offset: u64,
        /// True for a top-level object (JSON lines), false for an array element.
        top_level: bool,
        bytes: &'a [u8],
    },
    /// Bytes that cannot be a record, and why.
    Junk {
        index: Option<u64>,
        offset: u64,
        bytes: &'a [u8],
        reason: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between top-level values.
    Top,
    /// Inside an array of records; `wrapper` when it is the `Records` array of an object.
    Array { wrapper: bool },
    /// After the `Records` array: the rest of the wrapper object is skipped.
    AfterWrapperArray,
}

/// How far a first-key check looks ahead for `{"Records":[`.
const LOOKAHEAD: usize = 4096;
const READ_SIZE: usize = 256 * 1024;

pub struct Splitter<R> {
    r: R,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    base: u64,
    eof: bool,
    state: State,
    index: u64,
}

enum Scan {
    /// The value is complete and `n` bytes long.
    Done(usize),
    /// The input ended first; `n` bytes were available.
    Eof(usize),
}

impl<R: Read> Splitter<R> {
    pub fn new(r: R) -> Splitter<R> {
        Splitter {
            r,
            buf: vec![0; 1 << 20],
            pos: 0,
            len: 0,
            base: 0,
            eof: false,
            state: State::Top,
            index: 0,
        }
    }

    /// Bytes of the decompressed stream consumed so far.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Reads more input, keeping everything from `pos`. False at end of input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.base += self.pos as u64;
            self.pos = 0;
        }
        if self.buf.len() - self.len < READ_SIZE {
            let grown = (self.buf.len() * 2).max(self.len + READ_SIZE);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.r.read(&mut self.buf[self.len..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.len += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next byte that is not whitespace (not consumed), or `None` at end of input.
    fn peek(&mut self) -> io::Result<Option<u8>> {
        loop {
            while self.pos < self.len {
                let c = self.buf[self.pos];
                if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                    self.pos += 1;
                } else if c == 0xEF
                    && self.offset() == 0
                    && self.len >= 3
                    && self.buf[..3] == [0xEF, 0xBB, 0xBF]
                {
                    self.pos += 3; // UTF-8 byte order mark
                } else {
                    return Ok(Some(c));
                }
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Makes at least `n` bytes from `pos` available when the input has them.
    fn ensure(&mut self, n: usize) -> io::Result<()> {
        while self.len - self.pos < n {
            if !self.fill()? {
                break;
            }
        }
        Ok(())
    }

    /// Scans one JSON value from `pos` with brackets already open to `depth`. With `depth` 0,
    /// a composite value ends at its closing bracket; a scalar (junk) ends before `,`, `]` or
    /// `}` at depth 0. Strings are skipped whole (escapes honoured).
    fn scan(&mut self, mut depth: u32) -> io::Result<Scan> {
        let scalar = depth == 0 && !matches!(self.buf.get(self.pos), Some(b'{' | b'['));
        let mut i = 0usize;
        let mut in_str = false;
        loop {
            while self.pos + i < self.len {
                let rest = &self.buf[self.pos + i..self.len];
                if in_str {
                    match memchr::memchr2(b'"', b'\\', rest) {
                        None => i += rest.len(),
                        Some(k) => {
                            if rest[k] == b'\\' {
                                if k + 1 < rest.len() {
                                    i += k + 2;
                                } else {
                                    // The escaped byte is in the next read: re-scan from `\`.
                                    i += k;
                                    break;
                                }
                            } else {
                                in_str = false;
                                i += k + 1;
                            }
                        }
                    }
                    continue;
                }
                let c = rest[0];
                match c {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        if depth == 0 {
                            return Ok(Scan::Done(i));
                        }
                        depth -= 1;
                        if depth == 0 && !scalar {
                            return Ok(Scan::Done(i + 1));
                        }
                    }
                    b',' if depth == 0 && scalar => return Ok(Scan::Done(i)),
                    _ => {}
                }
                i += 1;
            }
            let before = self.len - self.pos;
            if !self.fill()? {
                return Ok(Scan::Eof(self.len - self.pos));
            }
            debug_assert!(self.len - self.pos > before);
        }
    }

    /// Takes `n` bytes from `pos` as a piece's bytes.
    fn take(&mut self, n: usize) -> (u64, std::ops::Range<usize>) {
        let offset = self.offset();
        let range = self.pos..self.pos + n;
        self.pos += n;
        (offset, range)
    }

    /// True when the object at `pos` starts with the key `"Records"` and an array.
    fn is_wrapper(&mut self) -> io::Result<Option<usize>> {
        self.ensure(LOOKAHEAD)?;
        let b = &self.buf[self.pos..self.len];
        let mut i = 1; // past `{`
        let ws = |b: &[u8], mut i: usize| {
            while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
                i += 1;
            }
            i
        };
        i = ws(b, i);
        if !b[i..].starts_with(b"\"Records\"") {
            return Ok(None);
        }
        i = ws(b, i + 9);
        if b.get(i) != Some(&b':') {
            return Ok(None);
        }
        i = ws(b, i + 1);
        if b.get(i) != Some(&b'[') {
            return Ok(None);
        }
        Ok(Some(i + 1))
    }

    /// The next piece, or `None` at the end of the input.
    pub fn next_piece(&mut self) -> io::Result<Option<Piece<'_>>> {
        loop {
            let Some(c) = self.peek()? else {
                return Ok(match self.state {
                    State::Top => None,
                    State::Array { .. } | State::AfterWrapperArray => {
                        self.state = State::Top;
                        let offset = self.offset();
                        Some(Piece::Junk {
                            index: None,
                            offset,
                            bytes: &[],
                            reason: "the input ends inside an array of records (truncated file?)",
                        })
                    }
                });
            };
            match self.state {
                State::Top => match c {
                    b'[' => {
                        self.pos += 1;
                        self.state = State::Array { wrapper: false };
                    }
                    b'{' => {
                        if let Some(n) = self.is_wrapper()? {
                            self.pos += n;
                            self.state = State::Array { wrapper: true };
                            continue;
                        }
                        return self.value(true).map(Some);
                    }
                    _ => {
                        // Not JSON we understand: the rest of the line is junk.
                        self.ensure(1)?;
                        let n = loop {
                            let rest = &self.buf[self.pos..self.len];
                            if let Some(k) = memchr::memchr(b'\n', rest) {
                                break k;
                            }
                            if !self.fill()? {
                                break self.len - self.pos;
                            }
                        };
                        let (offset, r) = self.take(n);
                        return Ok(Some(Piece::Junk {
                            index: None,
                            offset,
                            bytes: &self.buf[r],
                            reason: "not a JSON object or array at the top level",
                        }));
                    }
                },
                State::Array { wrapper } => match c {
                    b',' => self.pos += 1,
                    b']' => {
                        self.pos += 1;
                        self.state = if wrapper {
                            State::AfterWrapperArray
                        } else {
                            State::Top
                        };
                    }
                    _ => return self.value(false).map(Some),
                },
                State::AfterWrapperArray => {
                    // Skip the wrapper's other keys (if any) up to its closing brace.
                    let n = match self.scan(1)? {
                        Scan::Done(n) | Scan::Eof(n) => n,
                    };
                    self.pos += n;
                    self.state = State::Top;
                }
            }
        }
    }

    fn value(&mut self, top_level: bool) -> io::Result<Piece<'_>> {
        let is_object = self.buf[self.pos] == b'{';
        let scanned = self.scan(0)?;
        let index = self.index;
        self.index += 1;
        Ok(match scanned {
            Scan::Done(n) if n > 0 => {
                let (offset, r) = self.take(n);
                if is_object {
                    Piece::Record {
                        index,
                        offset,
                        top_level,
                        bytes: &self.buf[r],
                    }
                } else {
                    Piece::Junk {
                        index: Some(index),
                        offset,
                        bytes: &self.buf[r],
                        reason: "an array element that is not a JSON object",
                    }
                }
            }
            Scan::Done(_) => {
                // A stray closing bracket where a value should be.
                let (offset, r) = self.take(1);
                Piece::Junk {
                    index: Some(index),
                    offset,
                    bytes: &self.buf[r],
                    reason: "unbalanced closing bracket",
                }
            }
            Scan::Eof(n) => {
                let (offset, r) = self.take(n);
                self.state = State::Top;
                Piece::Junk {
                    index: Some(index),
                    offset,
                    bytes: &self.buf[r],
                    reason: "the input ends inside a record (truncated file?)",
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8]) -> Vec<(String, String)> {
        let mut s = Splitter::new(input);
        let mut out = Vec::new();
        while let Some(p) = s.next_piece().unwrap() {
            out.push(match p {
                Piece::Record { bytes, .. } => {
                    ("rec".to_string(), String::from_utf8_lossy(bytes).into())
                }
                Piece::Junk { bytes, reason, .. } => {
                    (reason.to_string(), String::from_utf8_lossy(bytes).into())
                }
            });
        }
        out
    }

    fn recs(v: &[(String, String)]) -> Vec<&str> {
        v.iter()
            .filter(|(k, _)| k == "rec")
            .map(|(_, b)| b.as_str())
            .collect()
    }

    #[test]
    fn wrapper_array_and_lines() {
        let w = split(br#"{"Records":[{"a":1},{"b":"x}]\"{"}]}"#);
        assert_eq!(recs(&w), vec![r#"{"a":1}"#, r#"{"b":"x}]\"{"}"#]);
        let a = split(b"[\n {\"a\":[1,2]} ,\n {\"b\":{}}\n]\n");
        assert_eq!(recs(&a), vec![r#"{"a":[1,2]}"#, r#"{"b":{}}"#]);
        let l = split(b"{\"a\":1}\n{\"b\":2}\n\n{\"c\":3}");
        assert_eq!(recs(&l), vec![r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":3}"#]);
        let spaced = split(
            b"{ \"Records\" : [ {\"a\":1} ], \"Other\": {\"x\": [1]} }{\"Records\":[{\"b\":1}]}",
        );
        assert_eq!(recs(&spaced), vec![r#"{"a":1}"#, r#"{"b":1}"#]);
        assert_eq!(spaced.len(), 2);
    }

    #[test]
    fn junk_is_reported_and_the_rest_still_splits() {
        let v = split(b"[{\"a\":1}, null, 42, {\"b\":2}]");
        assert_eq!(recs(&v), vec![r#"{"a":1}"#, r#"{"b":2}"#]);
        assert_eq!(v.len(), 4);
        assert_eq!(v[1].1, "null");
        let t = split(b"{\"Records\":[{\"a\":1},{\"b\":");
        assert_eq!(recs(&t), vec![r#"{"a":1}"#]);
        assert!(t[1].0.contains("ends inside a record"));
        assert_eq!(t[1].1, "{\"b\":");
        let g = split(b"garbage line\n{\"a\":1}\n");
        assert_eq!(recs(&g), vec![r#"{"a":1}"#]);
        assert_eq!(g[0].1, "garbage line");
    }

    #[test]
    fn records_larger_than_the_buffer_and_split_escapes() {
        let big = "x".repeat(3 << 20);
        let input = format!("[{{\"k\":\"{big}\\\"\"}},{{\"e\":\"\\\\\"}}]");
        // One byte at a time through a reader that returns tiny reads.
        struct Slow<'a>(&'a [u8]);
        impl Read for Slow<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(out.len()).min(7);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut s = Splitter::new(Slow(input.as_bytes()));
        let mut lens = Vec::new();
        while let Some(p) = s.next_piece().unwrap() {
            match p {
                Piece::Record { bytes, offset, .. } => {
                    lens.push((offset, bytes.len()));
                    assert!(serde_json::from_slice::<serde_json::Value>(bytes).is_ok());
                }
                Piece::Junk { reason, .. } => panic!("{reason}"),
            }
        }
        assert_eq!(lens, vec![(1, big.len() + 10), (big.len() as u64 + 12, 10)]);
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let v = split(b"\xEF\xBB\xBF[{\"a\":1}]");
        assert_eq!(recs(&v), vec![r#"{"a":1}"#]);
    }
}
