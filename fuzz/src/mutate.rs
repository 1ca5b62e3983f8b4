//! The driver's mutations: each input is a seed with a few stacked edits (bit flips, byte sets, integer
//! overwrites, truncations, splices with another seed, insertions, deletions, duplications), all drawn
//! from a small deterministic generator, so that input `i` of a run is the same on every machine.

use warmstart_core::test_support::Rng;

/// Inputs never grow past this (the fixtures are a few KB).
pub const MAX_LEN: usize = 1 << 20;

/// Values that often sit on a boundary, written as 1, 2, 4 or 8 little- or big-endian bytes.
const INTERESTING: [u64; 10] = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fff_ffff, 0xffff_ffff, u64::MAX];

/// The generator of input `iteration` of a run with `seed` on target `target` (splitmix64 of the three,
/// never 0, which xorshift would keep).
pub fn rng_for(seed: u64, target: &str, iteration: u64) -> Rng {
    let name = target.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut z = seed ^ name.rotate_left(17) ^ iteration.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    Rng((z ^ (z >> 31)) | 1)
}

/// Input `iteration`: the seeds themselves first, then a seed with 1 to 8 edits (rarely up to 32).
pub fn input(seeds: &[Vec<u8>], rng: &mut Rng, iteration: u64) -> Vec<u8> {
    if seeds.is_empty() {
        return Vec::new();
    }
    if (iteration as usize) < seeds.len() {
        return seeds[iteration as usize].clone();
    }
    let mut data = seeds[rng.below(seeds.len())].clone();
    let edits = if rng.below(16) == 0 { 1 + rng.below(32) } else { 1 + rng.below(8) };
    for _ in 0..edits {
        edit(&mut data, seeds, rng);
    }
    data.truncate(MAX_LEN);
    data
}

/// One random edit of `data`.
fn edit(data: &mut Vec<u8>, seeds: &[Vec<u8>], rng: &mut Rng) {
    let len = data.len();
    let at = rng.below(len + 1);
    match rng.below(10) {
        0 | 1 if len > 0 => data[at.min(len - 1)] ^= 1 << rng.below(8),
        2 if len > 0 => data[at.min(len - 1)] = rng.next() as u8,
        3 if len > 0 => overwrite_int(data, at.min(len - 1), rng),
        4 => data.truncate(at),
        5 => {
            let other = &seeds[rng.below(seeds.len())];
            let from = rng.below(other.len() + 1);
            let take = rng.below(other.len() - from + 1);
            let end = (at + rng.below(len - at + 1)).min(len);
            data.splice(at..end, other[from..from + take].iter().copied());
        }
        6 => {
            let count = 1 + rng.below(16);
            let byte = rng.next() as u8;
            let same = rng.below(2) == 0;
            let bytes: Vec<u8> = (0..count).map(|_| if same { byte } else { rng.next() as u8 }).collect();
            data.splice(at..at, bytes);
        }
        7 if len > 0 => {
            let end = (at + 1 + rng.below(64)).min(len);
            data.drain(at.min(end)..end);
        }
        8 if len > 0 => {
            let from = rng.below(len);
            let take = 1 + rng.below((len - from).min(256));
            let chunk = data[from..from + take].to_vec();
            data.splice(at..at, chunk);
        }
        _ if len > 0 => {
            // A bit flip near the start, where headers and lengths are.
            let at = rng.below(len.min(64));
            data[at] ^= 1 << rng.below(8);
        }
        _ => data.push(rng.next() as u8),
    }
}

/// Writes an interesting value (or one off it) as 1, 2, 4 or 8 bytes at `at`.
fn overwrite_int(data: &mut [u8], at: usize, rng: &mut Rng) {
    let width = 1 << rng.below(4);
    let mut value = INTERESTING[rng.below(INTERESTING.len())];
    match rng.below(4) {
        0 => value = value.wrapping_add(1),
        1 => value = value.wrapping_sub(1),
        _ => {}
    }
    let bytes = if rng.below(2) == 0 { value.to_le_bytes() } else { (value << (64 - 8 * width)).to_be_bytes() };
    let end = (at + width).min(data.len());
    let n = end - at;
    data[at..end].copy_from_slice(&bytes[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_deterministic_and_start_with_the_seeds() {
        let seeds = vec![b"hello world".to_vec(), vec![0u8; 100], Vec::new()];
        for i in 0..2000 {
            let a = input(&seeds, &mut rng_for(7, "t", i), i);
            let b = input(&seeds, &mut rng_for(7, "t", i), i);
            assert_eq!(a, b, "input {i}");
            if (i as usize) < seeds.len() {
                assert_eq!(a, seeds[i as usize]);
            }
            assert!(a.len() <= MAX_LEN);
        }
        let differ = (3..100).filter(|&i| input(&seeds, &mut rng_for(7, "t", i), i) != seeds[0]).count();
        assert!(differ > 50, "most inputs are mutated: {differ}");
    }
}
