//! DT_STRING tensors in a data shard: `varint64` lengths, a masked CRC32C of the lengths (each taken as a
//! little-endian u32, or u64 when longer than 4 GiB), then the bytes. The entry's CRC continues over the
//! lengths' checksum bytes and the string bytes.

use crate::table::mask_crc;
use crate::varint::{fixed32, put_varint, read_varint64};

/// Folds one length into the lengths' CRC as TensorFlow does.
fn extend_with_length(crc: u32, len: u64) -> u32 {
    match u32::try_from(len) {
        Ok(small) => crc32c::crc32c_append(crc, &small.to_le_bytes()),
        Err(_) => crc32c::crc32c_append(crc, &len.to_le_bytes()),
    }
}

/// Encodes `values`; returns the bytes and the entry's masked CRC32C.
pub(crate) fn encode(values: &[Vec<u8>]) -> (Vec<u8>, u32) {
    let mut out = Vec::new();
    let mut crc = 0u32;
    for v in values {
        put_varint(&mut out, v.len() as u64);
        crc = extend_with_length(crc, v.len() as u64);
    }
    let length_checksum = mask_crc(crc).to_le_bytes();
    out.extend_from_slice(&length_checksum);
    crc = crc32c::crc32c_append(crc, &length_checksum);
    for v in values {
        out.extend_from_slice(v);
        crc = crc32c::crc32c_append(crc, v);
    }
    (out, mask_crc(crc))
}

/// Decodes `count` strings from `data`, checking the lengths' checksum and the entry CRC `stored_crc`
/// (masked). Errors are plain messages; the caller names file and tensor.
pub(crate) fn decode(data: &[u8], count: u64, stored_crc: u32) -> Result<Vec<Vec<u8>>, String> {
    // Every length takes at least one byte: refuse a count the data cannot hold before allocating.
    if count > data.len() as u64 {
        return Err(format!("{count} strings cannot fit in {} bytes", data.len()));
    }
    let mut pos = 0;
    let mut lengths = Vec::with_capacity(count as usize);
    let mut crc = 0u32;
    for i in 0..count {
        let len = read_varint64(data, &mut pos).ok_or_else(|| format!("bad length of string {i}"))?;
        crc = extend_with_length(crc, len);
        lengths.push(len);
    }
    let stored_lengths = fixed32(data, pos).ok_or("data ends before the lengths' checksum")?;
    if stored_lengths != mask_crc(crc) {
        return Err("checksum mismatch in the string lengths".to_string());
    }
    crc = crc32c::crc32c_append(crc, &data[pos..pos + 4]);
    pos += 4;
    let total: u64 = lengths.iter().try_fold(0u64, |a, &l| a.checked_add(l)).ok_or("string lengths overflow")?;
    if total != (data.len() - pos) as u64 {
        return Err(format!("string lengths add up to {total} bytes, the entry holds {}", data.len() - pos));
    }
    let mut values = Vec::with_capacity(lengths.len());
    for len in lengths {
        let end = pos + len as usize; // within data: the total was checked
        values.push(data[pos..end].to_vec());
        crc = crc32c::crc32c_append(crc, &data[pos..end]);
        pos = end;
    }
    let computed = mask_crc(crc);
    if computed != stored_crc {
        return Err(format!("checksum mismatch: stored {stored_crc:#010x}, computed {computed:#010x}"));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let values = vec![b"".to_vec(), b"\x00\xffbin".to_vec(), vec![b'x'; 300]];
        let (bytes, crc) = encode(&values);
        assert_eq!(decode(&bytes, 3, crc).unwrap(), values);
        let (empty, crc0) = encode(&[]);
        assert_eq!(empty.len(), 4);
        assert_eq!(decode(&empty, 0, crc0).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn corruption_is_reported() {
        let values = vec![b"abc".to_vec(), b"de".to_vec()];
        let (bytes, crc) = encode(&values);
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(decode(&flipped, 2, crc).is_err());
        let mut lens = bytes.clone();
        lens[0] = 4;
        assert!(decode(&lens, 2, crc).is_err());
        assert!(decode(&bytes, 1 << 40, crc).is_err());
        assert!(decode(&bytes[..3], 2, crc).is_err());
    }
}
