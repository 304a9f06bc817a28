//! The inputs of one ingest, handed to the parse threads in order, with the ones that come over
//! the network (S3 objects, [`Body::Open`]) fetched ahead by threads of their own.
//!
//! Why: an S3 object's time is mostly waiting for the network, and parsing it is fast, so many
//! objects must be in flight at once; but every parse thread holds its own columns, ID set and
//! Parquet writer (about 85 MB), and eight of them took a 10 M-record S3 ingest to 1.06 GB of
//! RSS. Fetch threads hold only bytes: at most [`AHEAD`] objects per fetch thread are read and
//! not yet parsed, each at most [`PREFETCH_BYTES`] (the rest of a larger object streams when it
//! is parsed).

use std::io::{Cursor, Read};
use std::sync::{Condvar, Mutex};

use super::{Body, Input};

/// Bytes of an object read ahead; a larger object's rest is read while it is parsed.
pub const PREFETCH_BYTES: usize = 8 << 20;
/// Objects read ahead and not yet taken, per fetch thread.
const AHEAD: usize = 2;

struct State {
    inputs: Vec<Option<Input>>,
    ready: Vec<bool>,
    next_fetch: usize,
    next_parse: usize,
    /// Fetched and not yet taken.
    held: usize,
    stopped: bool,
}

pub struct Queue {
    state: Mutex<State>,
    changed: Condvar,
    fetchers: usize,
}

impl Queue {
    /// `fetchers` threads will call [`Queue::fetch`]; with none, every input is ready as it is.
    pub fn new(inputs: Vec<Input>, fetchers: usize) -> Queue {
        let n = inputs.len();
        Queue {
            state: Mutex::new(State {
                ready: vec![fetchers == 0; n],
                inputs: inputs.into_iter().map(Some).collect(),
                next_fetch: 0,
                next_parse: 0,
                held: 0,
                stopped: false,
            }),
            changed: Condvar::new(),
            fetchers,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next input in order and its index, once it is fetched; `None` when all were taken
    /// or the ingest stopped.
    pub fn take(&self) -> Option<(usize, Input)> {
        let mut s = self.lock();
        if s.stopped || s.next_parse >= s.inputs.len() {
            return None;
        }
        let k = s.next_parse;
        s.next_parse += 1;
        while !s.ready[k] && !s.stopped {
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        if !s.ready[k] {
            return None;
        }
        let input = s.inputs[k].take()?;
        if self.fetchers > 0 {
            s.held -= 1;
            self.changed.notify_all();
        }
        Some((k, input))
    }

    /// A fetch thread's loop: reads inputs ahead, in order, until all are fetched.
    pub fn fetch(&self) {
        loop {
            let (k, input) = {
                let mut s = self.lock();
                while s.held >= AHEAD * self.fetchers && !s.stopped {
                    s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                if s.stopped || s.next_fetch >= s.inputs.len() {
                    return;
                }
                let k = s.next_fetch;
                s.next_fetch += 1;
                s.held += 1;
                (k, s.inputs[k].take())
            };
            let fetched = input.map(read_ahead);
            let mut s = self.lock();
            s.inputs[k] = fetched;
            s.ready[k] = true;
            self.changed.notify_all();
        }
    }

    /// Wakes and ends every waiting parse and fetch thread (after an error).
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }
}

/// An input whose body comes over the network, opened and read ahead: wholly when it fits in
/// [`PREFETCH_BYTES`], else its first bytes followed by the rest of the stream. An error is
/// kept for the parse thread, which records it as the input's reject.
fn read_ahead(input: Input) -> Input {
    let Body::Open(open) = input.body else {
        return input;
    };
    let body = match open() {
        Err(e) => Body::Open(Box::new(move || Err(e))),
        Ok(mut stream) => {
            let mut head = Vec::new();
            match (&mut stream)
                .take(PREFETCH_BYTES as u64)
                .read_to_end(&mut head)
            {
                Err(e) => Body::Open(Box::new(move || Err(e))),
                Ok(n) if n < PREFETCH_BYTES => Body::Bytes(head),
                Ok(_) => Body::Open(Box::new(move || {
                    Ok(Box::new(Cursor::new(head).chain(stream)) as Box<dyn Read + Send>)
                })),
            }
        }
    };
    Input { body, ..input }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(name: &str, bytes: Vec<u8>) -> Input {
        Input {
            name: name.into(),
            size: bytes.len() as u64,
            body: Body::Open(Box::new(move || {
                Ok(Box::new(Cursor::new(bytes)) as Box<dyn Read + Send>)
            })),
            named: false,
        }
    }

    fn read(input: Input) -> Vec<u8> {
        let mut out = Vec::new();
        match input.body {
            Body::Bytes(b) => out = b,
            Body::Open(f) => {
                f().unwrap().read_to_end(&mut out).unwrap();
            }
            Body::Path(_) => panic!("no paths here"),
        }
        out
    }

    #[test]
    fn inputs_come_out_in_order_whole_even_when_larger_than_the_read_ahead() {
        let big: Vec<u8> = (0..PREFETCH_BYTES + 1000)
            .map(|i| (i % 251) as u8)
            .collect();
        let inputs: Vec<Input> = (0..40)
            .map(|i| {
                if i == 7 {
                    streamed("big", big.clone())
                } else {
                    streamed(&format!("in-{i}"), format!("body {i}").into_bytes())
                }
            })
            .collect();
        let q = Queue::new(inputs, 3);
        let got = std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| q.fetch());
            }
            let mut got = Vec::new();
            while let Some((k, input)) = q.take() {
                got.push((k, input.name.clone(), read(input)));
            }
            got
        });
        assert_eq!(got.len(), 40);
        for (i, (k, name, body)) in got.into_iter().enumerate() {
            assert_eq!(k, i);
            if i == 7 {
                assert_eq!(name, "big");
                assert!(body == big, "the large body is read back whole");
            } else {
                assert_eq!(body, format!("body {i}").into_bytes());
            }
        }
    }

    #[test]
    fn an_input_that_cannot_be_opened_keeps_its_error_and_a_stop_ends_the_threads() {
        let failing = Input {
            name: "gone".into(),
            size: 0,
            body: Body::Open(Box::new(|| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "NoSuchKey",
                ))
            })),
            named: false,
        };
        let q = Queue::new(vec![failing, streamed("next", b"x".to_vec())], 1);
        std::thread::scope(|s| {
            s.spawn(|| q.fetch());
            let (_, input) = q.take().unwrap();
            let Body::Open(f) = input.body else {
                panic!("the error stays with the input")
            };
            assert!(f().err().unwrap().to_string().contains("NoSuchKey"));
            q.stop();
        });
        assert!(q.take().is_none(), "nothing is handed out after a stop");
    }
}
