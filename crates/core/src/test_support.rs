//! Helpers the format crates' tests share (behind the `test-support` cargo feature, for
//! dev-dependencies only): a small deterministic random generator for bounded corruption loops, and
//! reading everything a caller could ask of a checkpoint.

use crate::{CheckpointSource, DType, Result};

/// A small deterministic generator (xorshift64*), so that a corruption loop is the same on every run.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Reads everything a caller could ask of `src`: every numeric tensor whole (checking that it has as
/// many bytes as its dtype and shape say) and its rows `1..`, every string tensor, and the object
/// graph's keys. Returns the first error.
pub fn read_everything(src: &dyn CheckpointSource) -> Result<()> {
    for t in src.tensors() {
        if t.dtype == DType::String {
            src.read_strings(&t.name)?;
            continue;
        }
        let whole = src.read(&t.name)?;
        assert_eq!(Some(whole.len() as u64), t.byte_len(), "{}: bytes read", t.name);
        if t.rows() > 1 {
            src.read_rows(&t.name, 1..t.rows())?;
        }
    }
    src.object_graph_keys()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_bounded() {
        let (mut a, mut b) = (Rng(42), Rng(42));
        let xs: Vec<usize> = (0..100).map(|_| a.below(7)).collect();
        assert!(xs.iter().all(|&x| x < 7));
        assert_eq!(xs, (0..100).map(|_| b.below(7)).collect::<Vec<_>>());
        assert!((0..7).all(|v| xs.contains(&v)));
        assert_eq!(Rng(1).below(0), 0);
    }
}
