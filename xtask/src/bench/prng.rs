//! A small, fast, deterministic pseudo-random generator (SplitMix64) for the benchmark workloads: the
//! same seed gives the same checkpoints on every machine, with no `rand` dependency.

#![cfg_attr(not(feature = "bench-worker"), allow(dead_code))]

/// SplitMix64 (Steele, Lea and Flood, 2014): one 64-bit state, one multiply-xorshift mix per number.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below 2^-32 for the sizes used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Two float32 values uniform in `[-scale, scale)`, from one 64-bit draw (24 bits each).
    pub fn next_f32_pair(&mut self, scale: f32) -> [f32; 2] {
        let bits = self.next_u64();
        let unit = |b: u64| (b & 0xFF_FFFF) as f32 / (1u32 << 24) as f32;
        [(unit(bits) * 2.0 - 1.0) * scale, (unit(bits >> 32) * 2.0 - 1.0) * scale]
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // First outputs of the reference C implementation (Vigna's splitmix64.c) from seed 1234567.
        let mut rng = SplitMix64::new(1234567);
        let got: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(got, [6457827717110365317, 3203168211198807973, 9817491932198370423]);
    }

    #[test]
    fn below_stays_in_range_and_shuffle_is_a_permutation() {
        let mut rng = SplitMix64::new(7);
        assert!((0..1000).all(|_| rng.below(10) < 10));
        let mut v: Vec<u32> = (0..100).collect();
        rng.shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }

    #[test]
    fn floats_stay_in_range() {
        let mut rng = SplitMix64::new(3);
        for _ in 0..1000 {
            for x in rng.next_f32_pair(0.05) {
                assert!((-0.05..0.05).contains(&x));
            }
        }
    }
}
