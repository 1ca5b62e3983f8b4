//! `[[cast]]`'s element conversions, with the bits numpy's and ml_dtypes' `astype` give.
//!
//! - Float to float: every value is first widened to `f64` (exactly), then rounded once, to nearest
//!   even, into the target (with its subnormals, and overflow to infinity), so narrowing is correctly
//!   rounded, as numpy (`float16`) and ml_dtypes (`bfloat16`) round, and widening is exact.
//! - NaNs keep what each library keeps: to and from `bfloat16` ml_dtypes gives its quiet NaN
//!   (`0x7fc0`, `0x7e00` in float16) with the sign; numpy's float16 keeps the top payload bits
//!   (setting the lowest if none is left); float32 and float64 convert as the hardware does (quieted).
//! - Integer to float is correctly rounded from the integer itself (ml_dtypes rounds `int64` to
//!   `bfloat16` in one step, not through `float32`).
//! - Integer to integer wraps (two's complement), as numpy's C casts do.
//!
//! Which conversions need `lossy = true` is [`CastClass`]'s business.

use warmstart_core::DType;

/// What a conversion does to values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastClass {
    /// Every value converts exactly (a float or integer widening).
    Exact,
    /// Floats are rounded to nearest even (a float narrowing): allowed without `lossy`.
    Rounds,
    /// Integers to floats, or integers narrowed or changing sign: only with `lossy = true`.
    Lossy,
}

/// How `from` converts to `to`, or `None` if warmstart does not convert between them (booleans,
/// complex, 8-bit floats, strings, floats to integers). `from == to` is [`CastClass::Exact`].
pub fn classify(from: DType, to: DType) -> Option<CastClass> {
    if from == to {
        return Some(CastClass::Exact);
    }
    match (float_format(from), float_format(to), int_range(from), int_range(to)) {
        (Some(f), Some(t), _, _) => {
            Some(if t.man >= f.man && t.exp >= f.exp { CastClass::Exact } else { CastClass::Rounds })
        }
        (None, Some(_), Some(_), _) => Some(CastClass::Lossy),
        (_, _, Some((flo, fhi)), Some((tlo, thi))) => {
            Some(if tlo <= flo && fhi <= thi { CastClass::Exact } else { CastClass::Lossy })
        }
        _ => None,
    }
}

/// A binary floating-point format: exponent and mantissa bits.
#[derive(Debug, Clone, Copy)]
struct FloatFormat {
    exp: u32,
    man: u32,
}

fn float_format(d: DType) -> Option<FloatFormat> {
    Some(match d {
        DType::F16 => FloatFormat { exp: 5, man: 10 },
        DType::BF16 => FloatFormat { exp: 8, man: 7 },
        DType::F32 => FloatFormat { exp: 8, man: 23 },
        DType::F64 => FloatFormat { exp: 11, man: 52 },
        _ => return None,
    })
}

fn int_range(d: DType) -> Option<(i128, i128)> {
    Some(match d {
        DType::U8 => (0, u8::MAX.into()),
        DType::I8 => (i8::MIN.into(), i8::MAX.into()),
        DType::U16 => (0, u16::MAX.into()),
        DType::I16 => (i16::MIN.into(), i16::MAX.into()),
        DType::U32 => (0, u32::MAX.into()),
        DType::I32 => (i32::MIN.into(), i32::MAX.into()),
        DType::U64 => (0, u64::MAX.into()),
        DType::I64 => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    })
}

/// Converts the little-endian elements `src` of dtype `from` to `to`, appending them to `dst`. The
/// pair must be one [`classify`] accepts; others append nothing.
pub fn convert(from: DType, to: DType, src: &[u8], dst: &mut Vec<u8>) {
    let (Some(fs), Some(ts)) = (from.size(), to.size()) else { return };
    if classify(from, to).is_none() {
        return;
    }
    dst.reserve(src.len() / fs * ts);
    for chunk in src.chunks_exact(fs) {
        let mut raw = [0u8; 8];
        raw[..fs].copy_from_slice(chunk);
        let bits = u64::from_le_bytes(raw);
        let out = if float_format(from).is_some() { float_to(from, to, bits) } else { int_to(from, to, bits) };
        dst.extend_from_slice(&out.to_le_bytes()[..ts]);
    }
}

/// The bits of float `bits` (of dtype `from`) converted to `to`.
fn float_to(from: DType, to: DType, bits: u64) -> u64 {
    let (Some(f), Some(t)) = (float_format(from), float_format(to)) else { return 0 };
    let sign = bits >> (f.exp + f.man);
    let exp_mask = (1u64 << f.exp) - 1;
    let man = bits & ((1u64 << f.man) - 1);
    if (bits >> f.man) & exp_mask == exp_mask && man != 0 {
        return nan_to(from, to, sign, man);
    }
    let value = widen(f, bits);
    round_f64(value, t)
}

/// The NaN of sign `sign` and payload `man` (of dtype `from`) as `to` gives it.
fn nan_to(from: DType, to: DType, sign: u64, man: u64) -> u64 {
    let t = float_format(to).unwrap_or(FloatFormat { exp: 0, man: 0 });
    let top = sign << (t.exp + t.man) | ((1u64 << t.exp) - 1) << t.man;
    let quiet = 1u64 << (t.man - 1);
    match (from, to) {
        // ml_dtypes: every NaN to or from bfloat16 is its quiet NaN (bfloat16 to float32 is a shift).
        (_, DType::BF16) | (DType::BF16, DType::F16) => top | quiet,
        (DType::BF16, DType::F32) => top | man << 16,
        (DType::BF16, DType::F64) => top | quiet | man << 45,
        // numpy's float16 conversions keep the top payload bits, never quieting.
        (DType::F16, _) => top | man << (t.man - 10),
        (DType::F32 | DType::F64, DType::F16) => {
            let shifted = man >> (float_format(from).map_or(0, |f| f.man) - 10);
            top | if shifted == 0 { 1 } else { shifted }
        }
        // float32 <-> float64 as the hardware converts: quieted, payload kept from the top.
        (DType::F32, DType::F64) => top | quiet | man << 29,
        (DType::F64, DType::F32) => top | quiet | man >> 29,
        _ => top | quiet,
    }
}

/// The (non-NaN) float `bits` of format `f`, as an `f64` (exact).
fn widen(f: FloatFormat, bits: u64) -> f64 {
    if f.exp == 11 {
        return f64::from_bits(bits);
    }
    let sign = if bits >> (f.exp + f.man) & 1 == 1 { -1.0 } else { 1.0 };
    let exp_mask = (1u64 << f.exp) - 1;
    let e = (bits >> f.man) & exp_mask;
    let man = bits & ((1u64 << f.man) - 1);
    let bias = (1i32 << (f.exp - 1)) - 1;
    let magnitude = if e == exp_mask {
        f64::INFINITY
    } else if e == 0 {
        man as f64 * 2f64.powi(1 - bias - f.man as i32)
    } else {
        (man | 1u64 << f.man) as f64 * 2f64.powi(e as i32 - bias - f.man as i32)
    };
    sign * magnitude
}

/// `x` (not NaN) rounded to nearest even into format `t`, with subnormals and overflow to infinity.
fn round_f64(x: f64, t: FloatFormat) -> u64 {
    let b = x.to_bits();
    let sign = (b >> 63) << (t.exp + t.man);
    if t.exp == 11 {
        return b;
    }
    let inf = ((1u64 << t.exp) - 1) << t.man;
    let a = b & !(1u64 << 63);
    if a >= 0x7ff0_0000_0000_0000 {
        return sign | inf;
    }
    let e = (a >> 52) as i64;
    if e == 0 {
        // float64 subnormals are far below the smallest subnormal of every smaller format.
        return sign;
    }
    let m = (a & ((1u64 << 52) - 1)) | 1u64 << 52;
    let bias = (1i64 << (t.exp - 1)) - 1;
    let te = e - 1023 + bias;
    let shift = 52 - i64::from(t.man) + if te >= 1 { 0 } else { 1 - te };
    if shift > 54 {
        return sign;
    }
    let shift = shift as u32;
    let mut rounded = m >> shift;
    let rem = m & ((1u64 << shift) - 1);
    let half = 1u64 << (shift - 1);
    if rem > half || (rem == half && rounded & 1 == 1) {
        rounded += 1;
    }
    let result = if te >= 1 { (((te - 1) as u64) << t.man) + rounded } else { rounded };
    sign | result.min(inf)
}

/// The bits of integer `bits` (of dtype `from`) converted to `to`.
fn int_to(from: DType, to: DType, bits: u64) -> u64 {
    let size = from.size().unwrap_or(8) as u32 * 8;
    let signed = matches!(from, DType::I8 | DType::I16 | DType::I32 | DType::I64);
    let value: i128 = if signed {
        let shift = 64 - size;
        i128::from(((bits << shift) as i64) >> shift)
    } else {
        i128::from(bits)
    };
    match float_format(to) {
        Some(t) if t.exp == 11 => (if signed { value as i64 as f64 } else { value as u64 as f64 }).to_bits(),
        Some(t) => round_f64(sticky_f64(value), t),
        // Two's complement truncation to the target's width (the caller keeps its low bytes).
        None => value as u64,
    }
}

/// `v` as an `f64` that rounds to every narrower format as `v` itself does: exact below 2^53, else
/// truncated to 53 significant bits with the lowest set if any dropped bit was (round to odd).
fn sticky_f64(v: i128) -> f64 {
    let mag = v.unsigned_abs();
    let bits = 128 - mag.leading_zeros();
    let magnitude = if bits <= 53 {
        mag as f64
    } else {
        let shift = bits - 53;
        let mut top = (mag >> shift) as u64;
        if mag & ((1u128 << shift) - 1) != 0 {
            top |= 1;
        }
        top as f64 * 2f64.powi(shift as i32)
    };
    if v < 0 {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(from: DType, to: DType, bits: u64) -> u64 {
        let mut out = Vec::new();
        convert(from, to, &bits.to_le_bytes()[..from.size().unwrap()], &mut out);
        let mut raw = [0u8; 8];
        raw[..out.len()].copy_from_slice(&out);
        u64::from_le_bytes(raw)
    }

    #[test]
    fn classes() {
        assert_eq!(classify(DType::F32, DType::F64), Some(CastClass::Exact));
        assert_eq!(classify(DType::F32, DType::BF16), Some(CastClass::Rounds));
        assert_eq!(classify(DType::F16, DType::BF16), Some(CastClass::Rounds), "bfloat16 has fewer mantissa bits");
        assert_eq!(classify(DType::BF16, DType::F16), Some(CastClass::Rounds), "float16 has fewer exponent bits");
        assert_eq!(classify(DType::I32, DType::I64), Some(CastClass::Exact));
        assert_eq!(classify(DType::U8, DType::I16), Some(CastClass::Exact));
        assert_eq!(classify(DType::I8, DType::U16), Some(CastClass::Lossy));
        assert_eq!(classify(DType::I64, DType::I32), Some(CastClass::Lossy));
        assert_eq!(classify(DType::I8, DType::F64), Some(CastClass::Lossy));
        assert_eq!(classify(DType::F32, DType::I32), None);
        assert_eq!(classify(DType::Bool, DType::F32), None);
        assert_eq!(classify(DType::F32, DType::C64), None);
    }

    #[test]
    fn hand_checked_values() {
        // 1 + 2^-8 + 2^-40 is above bfloat16's tie at 1 + 2^-8: up, though float32 would round to the tie.
        let x = (1.0f64 + 2f64.powi(-8) + 2f64.powi(-40)).to_bits();
        assert_eq!(one(DType::F64, DType::BF16, x), 0x3f81);
        assert_eq!(one(DType::F32, DType::F16, 65520f32.to_bits().into()), 0x7c00, "overflows to inf");
        assert_eq!(one(DType::F32, DType::F16, 65519f32.to_bits().into()), 0x7bff);
        assert_eq!(one(DType::F16, DType::F32, 0x0001), 2f32.powi(-24).to_bits().into(), "subnormal widens exactly");
        assert_eq!(one(DType::I64, DType::I8, 300), 44);
        assert_eq!(one(DType::I8, DType::I64, 0xff), u64::MAX);
    }
}
