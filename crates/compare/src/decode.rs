//! Elements as numbers: every integer, boolean and IEEE/bfloat16 float dtype widened to `f64`
//! (exactly, but for integers past 2^53), and integers also as `i128` (exactly).

use half::{bf16, f16};
use warmstart_core::DType;

/// Whether [`to_f64`] decodes `dtype` (the 8-bit floats, complex numbers and strings are not).
pub fn decodes(dtype: DType) -> bool {
    is_int(dtype) || matches!(dtype, DType::Bool | DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

/// Whether `dtype` is an integer type (booleans are not).
pub fn is_int(dtype: DType) -> bool {
    matches!(dtype, DType::U8 | DType::I8 | DType::U16 | DType::I16 | DType::U32 | DType::I32 | DType::U64 | DType::I64)
}

/// Element `i` of `bytes` (little-endian elements of `dtype`) as an integer; 0 for other dtypes.
pub fn to_i128(dtype: DType, bytes: &[u8], i: usize) -> i128 {
    let at = |n: usize| -> [u8; 8] {
        let mut raw = [0u8; 8];
        raw[..n].copy_from_slice(&bytes[i * n..(i + 1) * n]);
        raw
    };
    match dtype {
        DType::U8 | DType::Bool => bytes[i].into(),
        DType::I8 => (bytes[i] as i8).into(),
        DType::U16 => u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).into(),
        DType::I16 => i16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).into(),
        DType::U32 => (u64::from_le_bytes(at(4)) as u32).into(),
        DType::I32 => (u64::from_le_bytes(at(4)) as u32 as i32).into(),
        DType::U64 => u64::from_le_bytes(at(8)).into(),
        DType::I64 => i64::from_le_bytes(at(8)).into(),
        _ => 0,
    }
}

/// Element `i` of `bytes` (little-endian elements of `dtype`) as an `f64`; NaN for dtypes
/// [`decodes`] refuses.
pub fn to_f64(dtype: DType, bytes: &[u8], i: usize) -> f64 {
    let two = |i: usize| u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]);
    match dtype {
        DType::F16 => f16::from_bits(two(i)).to_f64(),
        DType::BF16 => bf16::from_bits(two(i)).to_f64(),
        DType::F32 => {
            f64::from(f32::from_le_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]))
        }
        DType::F64 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&bytes[8 * i..8 * i + 8]);
            f64::from_le_bytes(raw)
        }
        d if is_int(d) || d == DType::Bool => to_i128(d, bytes, i) as f64,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening() {
        assert_eq!(to_f64(DType::BF16, &0x3f80u16.to_le_bytes(), 0), 1.0);
        assert_eq!(to_f64(DType::F16, &0x0001u16.to_le_bytes(), 0), 2f64.powi(-24));
        assert_eq!(to_f64(DType::I8, &[0xff], 0), -1.0);
        assert_eq!(to_i128(DType::U64, &u64::MAX.to_le_bytes(), 0), i128::from(u64::MAX));
        assert_eq!(to_i128(DType::I32, &[0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff], 1), -2);
        assert!(!decodes(DType::C64) && !decodes(DType::F8E4M3) && decodes(DType::Bool));
    }
}
