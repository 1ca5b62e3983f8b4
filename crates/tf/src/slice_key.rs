//! Table keys of tensor slices (`EncodeTensorNameSlice`), in TensorFlow's OrderedCode: a key that sorts by
//! tensor name, then by slice.
//!
//! Layout: `NumIncreasing(0)`, `String(name)`, `NumIncreasing(rank)`, then per dimension
//! `SignedNumIncreasing(start)` and `SignedNumIncreasing(length)` (length -1 for a whole dimension).
//! - `NumIncreasing(n)`: one byte giving the count of big-endian bytes of `n`, then those bytes.
//! - `String(s)`: `s` with `00` written `00 ff` and `ff` written `ff 00`, then `00 01`.
//! - `SignedNumIncreasing(v)`: `L` bytes, the big-endian two's complement of `v` sign-extended, with the
//!   top bits of the first one or two bytes replaced by a header that says `L`: `L` leading ones
//!   (inverted for negatives). Length 1 holds `[-64, 64)`, and each further byte 7 more bits.

/// Header bits XORed into the first two bytes of a `SignedNumIncreasing` of each length (index = length).
const HEADER_BITS: [[u8; 2]; 11] = [
    [0, 0],
    [0x80, 0],
    [0xc0, 0],
    [0xe0, 0],
    [0xf0, 0],
    [0xf8, 0],
    [0xfc, 0],
    [0xfe, 0],
    [0xff, 0],
    [0xff, 0x80],
    [0xff, 0xc0],
];

/// One dimension of a slice as the key stores it: a start and a length, or `None` for the whole
/// dimension (stored as length -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    pub start: i64,
    pub length: Option<i64>,
}

/// Appends `SignedNumIncreasing(v)`.
pub(crate) fn put_signed(out: &mut Vec<u8>, v: i64) {
    let magnitude = if v < 0 { !v as u64 } else { v as u64 };
    if magnitude < 64 {
        out.push(HEADER_BITS[1][0] ^ (v as u8));
        return;
    }
    let bits = 64 - magnitude.leading_zeros() as usize; // at least 7
    let len = bits / 7 + 1;
    let sign = if v < 0 { 0xff } else { 0 };
    let mut buf = [sign; 10];
    buf[2..].copy_from_slice(&v.to_be_bytes());
    let begin = &mut buf[10 - len..];
    begin[0] ^= HEADER_BITS[len][0];
    begin[1] ^= HEADER_BITS[len][1];
    out.extend_from_slice(begin);
}

#[cfg(test)]
/// Reads a `SignedNumIncreasing` at `*pos`, advancing it.
pub(crate) fn read_signed(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let first = *buf.get(*pos)?;
    let negative = first & 0x80 == 0;
    let norm = |b: u8| if negative { !b } else { b };
    let len = if norm(first) != 0xff {
        norm(first).leading_ones() as usize
    } else {
        8 + norm(*buf.get(*pos + 1)?).leading_ones() as usize
    };
    if !(1..=10).contains(&len) {
        return None;
    }
    let bytes = buf.get(*pos..*pos + len)?;
    let mut acc: i128 = if negative { -1 } else { 0 };
    for (i, &b) in bytes.iter().enumerate() {
        let header = if i < 2 { HEADER_BITS[len][i] } else { 0 };
        acc = (acc << 8) | i128::from(b ^ header);
    }
    let v = i64::try_from(acc).ok()?;
    *pos += len;
    Some(v)
}

/// Appends `NumIncreasing(n)`.
fn put_unsigned(out: &mut Vec<u8>, n: u64) {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    out.push((8 - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

#[cfg(test)]
fn read_unsigned(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let len = usize::from(*buf.get(*pos)?);
    if len > 8 {
        return None;
    }
    let bytes = buf.get(*pos + 1..*pos + 1 + len)?;
    *pos += 1 + len;
    Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// The table key of slice `extents` of tensor `name`.
pub(crate) fn encode(name: &str, extents: &[Extent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 4 + 4 * extents.len());
    put_unsigned(&mut out, 0);
    for &b in name.as_bytes() {
        match b {
            0 => out.extend_from_slice(&[0, 0xff]),
            0xff => out.extend_from_slice(&[0xff, 0]),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(&[0, 1]);
    put_unsigned(&mut out, extents.len() as u64);
    for e in extents {
        put_signed(&mut out, e.start);
        put_signed(&mut out, e.length.unwrap_or(-1));
    }
    out
}

/// Whether a table key is a slice key (they start with `NumIncreasing(0)`, a zero byte; tensor names
/// never do).
pub(crate) fn is_slice_key(key: &[u8]) -> bool {
    key.first() == Some(&0)
}

#[cfg(test)]
/// Splits a slice key into the tensor name and the extents, or `None` if it is malformed.
pub(crate) fn decode(key: &[u8]) -> Option<(Vec<u8>, Vec<Extent>)> {
    let mut pos = 0;
    if read_unsigned(key, &mut pos)? != 0 {
        return None;
    }
    let mut name = Vec::new();
    loop {
        match (*key.get(pos)?, key.get(pos + 1).copied()) {
            (0, Some(1)) => {
                pos += 2;
                break;
            }
            (0, Some(0xff)) => {
                name.push(0);
                pos += 2;
            }
            (0xff, Some(0)) => {
                name.push(0xff);
                pos += 2;
            }
            (0 | 0xff, _) => return None,
            (b, _) => {
                name.push(b);
                pos += 1;
            }
        }
    }
    let rank = read_unsigned(key, &mut pos)?;
    // Each dimension takes at least two bytes: refuse a rank the key cannot hold before allocating.
    if rank > (key.len() - pos) as u64 / 2 {
        return None;
    }
    let mut extents = Vec::with_capacity(rank as usize);
    for _ in 0..rank {
        let start = read_signed(key, &mut pos)?;
        let length = read_signed(key, &mut pos)?;
        extents.push(Extent { start, length: (length != -1).then_some(length) });
    }
    (pos == key.len()).then_some((name, extents))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_signed(&mut out, v);
        out
    }

    #[test]
    fn spec_examples() {
        assert_eq!(signed(0), [0x80]);
        assert_eq!(signed(2), [0x82]);
        assert_eq!(signed(-1), [0x7f]);
        assert_eq!(signed(63), [0xbf]);
        assert_eq!(signed(-64), [0x40]);
        assert_eq!(signed(64), [0xc0, 0x40]);
        assert_eq!(signed(8191), [0xdf, 0xff]);
        assert_eq!(signed(8192), [0xe0, 0x20, 0x00]);
        let key =
            encode("fruit_weights", &[Extent { start: 2, length: Some(2) }, Extent { start: 0, length: Some(1) }]);
        let mut want = vec![0x00];
        want.extend_from_slice(b"fruit_weights");
        want.extend_from_slice(&[0x00, 0x01, 0x01, 0x02, 0x82, 0x82, 0x80, 0x81]);
        assert_eq!(key, want);
    }

    #[test]
    fn signed_round_trip_and_order() {
        let mut values = vec![i64::MIN, i64::MAX, 0, -1, 1];
        for shift in 0..63 {
            let p = 1i64 << shift;
            values.extend_from_slice(&[p, p - 1, p + 1, -p, -p - 1, -p + 1]);
        }
        values.sort();
        values.dedup();
        let mut last: Option<Vec<u8>> = None;
        for v in values {
            let enc = signed(v);
            assert!(enc.len() <= 10);
            let mut pos = 0;
            assert_eq!(read_signed(&enc, &mut pos), Some(v), "{v}");
            assert_eq!(pos, enc.len());
            if let Some(prev) = last {
                assert!(prev < enc, "order broken at {v}");
            }
            last = Some(enc);
        }
    }

    #[test]
    fn key_round_trip_with_escapes() {
        let name = "a\u{0}b";
        let extents = [Extent { start: 1 << 40, length: Some(3) }, Extent { start: 0, length: None }];
        let key = encode(name, &extents);
        assert!(is_slice_key(&key));
        assert_eq!(decode(&key), Some((name.as_bytes().to_vec(), extents.to_vec())));
        assert_eq!(decode(&key[..key.len() - 1]), None);
        assert_eq!(decode(b"\x00abc"), None);
    }
}
