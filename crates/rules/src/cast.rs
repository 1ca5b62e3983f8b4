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

use rayon::prelude::*;
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

/// Elements converted per parallel task.
const PAR_ELEMENTS: usize = 1 << 16;

/// Converts the little-endian elements `src` of dtype `from` to `to`, appending them to `dst`, runs
/// of them in parallel. The pair must be one [`classify`] accepts; others append nothing.
pub fn convert(from: DType, to: DType, src: &[u8], dst: &mut Vec<u8>) {
    let (Some(fs), Some(ts)) = (from.size(), to.size()) else { return };
    if classify(from, to).is_none() {
        return;
    }
    let n = src.len() / fs;
    let start = dst.len();
    dst.resize(start + n * ts, 0);
    let out = &mut dst[start..];
    out.par_chunks_mut(ts * PAR_ELEMENTS)
        .zip(src[..n * fs].par_chunks(fs * PAR_ELEMENTS))
        .for_each(|(o, s)| convert_run(from, to, s, o));
}

/// One run of [`convert`]: `s` holds as many elements as `o` has room for.
fn convert_run(from: DType, to: DType, s: &[u8], o: &mut [u8]) {
    let (fs, ts) = (from.size().unwrap_or(1), to.size().unwrap_or(1));
    if (from, to) == (DType::F32, DType::BF16) {
        for (c, d) in s.chunks_exact(4).zip(o.chunks_exact_mut(2)) {
            d.copy_from_slice(&f32_to_bf16(u32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes());
        }
        return;
    }
    if (from, to) == (DType::F32, DType::F16) {
        for (c, d) in s.chunks_exact(4).zip(o.chunks_exact_mut(2)) {
            d.copy_from_slice(&f32_to_f16(u32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes());
        }
        return;
    }
    let float = float_format(from).is_some();
    for (c, d) in s.chunks_exact(fs).zip(o.chunks_exact_mut(ts)) {
        let bits = match fs {
            1 => u64::from(c[0]),
            2 => u64::from(u16::from_le_bytes([c[0], c[1]])),
            4 => u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        };
        let out = if float { float_to(from, to, bits) } else { int_to(from, to, bits) };
        d.copy_from_slice(&out.to_le_bytes()[..ts]);
    }
}

/// float32 bits to float16, to nearest even, with subnormals; NaN as numpy gives it (the top payload
/// bits, the lowest set if none is left).
fn f32_to_f16(b: u32) -> u16 {
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = b & 0x7fff_ffff;
    if a > 0x7f80_0000 {
        let m = ((a & 0x007f_ffff) >> 13) as u16;
        return sign | 0x7c00 | if m == 0 { 1 } else { m };
    }
    if a >= 0x4780_0000 {
        // 65536 and more (and infinity); 65520.. rounds up into infinity below.
        return sign | 0x7c00;
    }
    if a < 0x3880_0000 {
        // Below 2^-14: a float16 subnormal (units of 2^-24), or zero below 2^-25 (a tie to even at it).
        if a < 0x3300_0000 {
            return sign;
        }
        let (e, m) = (a >> 23, (a & 0x007f_ffff) | 0x0080_0000);
        let shift = 126 - e;
        let (r, rem, half) = (m >> shift, m & ((1 << shift) - 1), 1 << (shift - 1));
        return sign | (r + u32::from(rem > half || (rem == half && r & 1 == 1))) as u16;
    }
    let a = a - (112 << 23);
    sign | ((a + 0x0fff + ((a >> 13) & 1)) >> 13) as u16
}

/// float32 bits to bfloat16, to nearest even; NaN as ml_dtypes gives it (its quiet NaN, signed).
fn f32_to_bf16(b: u32) -> u16 {
    if b & 0x7fff_ffff > 0x7f80_0000 {
        return ((b >> 16) as u16 & 0x8000) | 0x7fc0;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
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
    match (f.exp, f.man) {
        (11, _) => f64::from_bits(bits),
        (8, 23) => f64::from(f32::from_bits(bits as u32)),
        (8, _) => f64::from(f32::from_bits((bits as u32) << 16)),
        _ => half::f16::from_bits(bits as u16).to_f64(),
    }
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
        assert_eq!(one(DType::F32, DType::F16, u64::from(65520f32.to_bits())), 0x7c00, "overflows to inf");
        assert_eq!(one(DType::F32, DType::F16, u64::from(65519f32.to_bits())), 0x7bff);
        assert_eq!(
            one(DType::F16, DType::F32, 0x0001),
            u64::from(2f32.powi(-24).to_bits()),
            "subnormal widens exactly"
        );
        assert_eq!(one(DType::I64, DType::I8, 300), 44);
        assert_eq!(one(DType::I8, DType::I64, 0xff), u64::MAX);
    }
}
