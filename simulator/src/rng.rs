//! The simulator's own pseudo-random numbers: SplitMix64, seeded per stream.
//!
//! Output must never depend on a crate's RNG algorithm or version, nor on thread scheduling, so
//! every independent piece of work (a task's calls in one hour, a host's audit noise, one attack)
//! draws from its own stream derived from the seed and a fixed list of stream identifiers.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, statistically good enough for a simulator.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stream identifiers, so two generators never share a stream by accident.
pub mod stream {
    pub const WORLD: u64 = 1;
    pub const TASK_CALLS: u64 = 2;
    pub const HOST_AUDIT: u64 = 3;
    pub const KEYS: u64 = 4;
    pub const HOUR: u64 = 5;
    pub const ATTACK: u64 = 6;
    pub const FILES: u64 = 7;
    pub const FETCH: u64 = 8;
    pub const NOISE: u64 = 9;
    pub const IAM: u64 = 10;
    pub const ECS: u64 = 11;
    pub const HOST_FAULTS: u64 = 12;
    pub const NETWORK: u64 = 13;
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: mix(seed ^ 0x5EED_C0DE_CAFE_F00D),
        }
    }

    /// An independent stream for `(seed, ids…)`.
    pub fn derive(seed: u64, ids: &[u64]) -> Rng {
        let mut s = mix(seed ^ 0x5EED_C0DE_CAFE_F00D);
        for &id in ids {
            s = mix(s ^ mix(id.wrapping_add(GOLDEN)));
        }
        Rng { state: s }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-high (bias below 2^-64·n, irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(hi > lo);
        lo + self.below((hi - lo) as u64) as i64
    }

    /// Uniform in `[0, 1)` with 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponentially distributed with the given mean (inter-arrival time of a Poisson process).
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }

    /// Index chosen with probability proportional to `weights[i]`.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut x = self.below(total.max(1));
        for (i, &w) in weights.iter().enumerate() {
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        weights.len() - 1
    }

    pub fn u128(&mut self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }

    /// `n` lowercase hex digits.
    pub fn hex(&mut self, n: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        (0..n)
            .map(|_| HEX[self.below(16) as usize] as char)
            .collect()
    }

    /// `n` characters from `alphabet`.
    pub fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len() as u64) as usize] as char)
            .collect()
    }

    /// A random (version 4) UUID in its canonical lowercase form.
    pub fn uuid(&mut self) -> String {
        let mut out = Vec::with_capacity(36);
        write_uuid(self.u128(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Write `v` as a version-4 UUID (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`).
pub fn write_uuid(v: u128, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = (v & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push(b'-');
        }
        let nib = (v >> (124 - 4 * i)) & 0xF;
        out.push(HEX[nib as usize]);
    }
}

/// Upper-case letters and digits, as in IAM unique IDs (`AROA…`, `AIDA…`).
pub const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Base32 alphabet used in access key IDs (`ASIA…`, `AKIA…`).
pub const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Letters and digits, as in CloudTrail's 16-character file-name suffix.
pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = {
            let mut r = Rng::derive(7, &[1, 2]);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::derive(7, &[1, 2]);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::derive(7, &[2, 1]);
            (0..4).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn uuid_has_version_and_variant() {
        let mut r = Rng::new(1);
        for _ in 0..100 {
            let u = r.uuid();
            assert_eq!(u.len(), 36);
            assert_eq!(&u[14..15], "4");
            assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        }
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::new(3);
        for n in 1..50 {
            assert!(r.below(n) < n);
        }
        let w = [0, 5, 0];
        for _ in 0..20 {
            assert_eq!(r.weighted(&w), 1);
        }
    }
}
