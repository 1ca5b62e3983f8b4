//! Little-endian base-128 varints and fixed-width integers as LevelDB and protobuf write them, read from
//! a byte slice with every read bounds-checked.

/// Reads a varint of at most `max_bytes` bytes (5 for varint32, 10 for varint64) at `*pos`, advancing it.
/// `None` if the slice ends first, the varint is too long, or the value overflows 64 bits.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Option<u64> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let byte = *buf.get(*pos + i)?;
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * i as u32;
        if shift == 63 && bits > 1 {
            return None;
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            *pos += i + 1;
            return Some(value);
        }
    }
    None
}

/// Reads a varint32 (at most 5 bytes, value below 2^32).
pub(crate) fn read_varint32(buf: &[u8], pos: &mut usize) -> Option<u32> {
    let mut p = *pos;
    let v = u32::try_from(read_varint(buf, &mut p, 5)?).ok()?;
    *pos = p;
    Some(v)
}

/// Reads a varint64 (at most 10 bytes).
pub(crate) fn read_varint64(buf: &[u8], pos: &mut usize) -> Option<u64> {
    read_varint(buf, pos, 10)
}

/// Appends `v` as a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a little-endian u32 at `pos`.
pub(crate) fn fixed32(buf: &[u8], pos: usize) -> Option<u32> {
    let b = buf.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut pos = 0;
            assert_eq!(read_varint64(&buf, &mut pos), Some(v));
            assert_eq!(pos, buf.len());
        }
    }

    #[test]
    fn rejects_truncated_and_overlong() {
        let mut pos = 0;
        assert_eq!(read_varint64(&[0x80, 0x80], &mut pos), None);
        assert_eq!(pos, 0);
        assert_eq!(read_varint32(&[0xff, 0xff, 0xff, 0xff, 0x1f], &mut pos), None);
        assert_eq!(read_varint64(&[0xff; 11], &mut pos), None);
        // 10th byte may only carry the top bit.
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(read_varint64(&over, &mut pos), None);
        assert_eq!(fixed32(&[1, 2, 3], 0), None);
    }
}
