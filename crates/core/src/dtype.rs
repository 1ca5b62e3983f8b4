//! Element types, spelled as safetensors spells them (`"F32"`, `"BF16"`, `"BOOL"`), plus the types
//! only other formats have (`"C64"`, `"C128"`, `"STRING"`).

use std::fmt;
use std::str::FromStr;

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DType {
    /// Boolean, one byte per element (0 or 1).
    Bool,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 64-bit integer.
    U64,
    /// Signed 64-bit integer.
    I64,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
    /// 8-bit float, 5 exponent bits and 2 mantissa bits.
    F8E5M2,
    /// 8-bit float, 4 exponent bits and 3 mantissa bits (finite, NaN only).
    F8E4M3,
    /// 8-bit float with 8 exponent bits and no mantissa (safetensors `F8_E8M0`).
    F8E8M0,
    /// 8-bit float, 4 exponent bits and 3 mantissa bits, no negative zero (safetensors `F8_E4M3FNUZ`).
    F8E4M3Fnuz,
    /// 8-bit float, 5 exponent bits and 2 mantissa bits, no negative zero (safetensors `F8_E5M2FNUZ`).
    F8E5M2Fnuz,
    /// Complex number of two `F32`.
    C64,
    /// Complex number of two `F64`.
    C128,
    /// Variable-length byte strings (TensorFlow `DT_STRING`); not stored as fixed-size elements.
    String,
}

impl DType {
    /// Every dtype, in a stable order.
    pub const ALL: [DType; 21] = [
        DType::Bool,
        DType::U8,
        DType::I8,
        DType::U16,
        DType::I16,
        DType::U32,
        DType::I32,
        DType::U64,
        DType::I64,
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::F64,
        DType::F8E5M2,
        DType::F8E4M3,
        DType::F8E8M0,
        DType::F8E4M3Fnuz,
        DType::F8E5M2Fnuz,
        DType::C64,
        DType::C128,
        DType::String,
    ];

    /// The name as safetensors spells it (and as `warmstart inspect` prints it).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "BOOL",
            DType::U8 => "U8",
            DType::I8 => "I8",
            DType::U16 => "U16",
            DType::I16 => "I16",
            DType::U32 => "U32",
            DType::I32 => "I32",
            DType::U64 => "U64",
            DType::I64 => "I64",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F32 => "F32",
            DType::F64 => "F64",
            DType::F8E5M2 => "F8_E5M2",
            DType::F8E4M3 => "F8_E4M3",
            DType::F8E8M0 => "F8_E8M0",
            DType::F8E4M3Fnuz => "F8_E4M3FNUZ",
            DType::F8E5M2Fnuz => "F8_E5M2FNUZ",
            DType::C64 => "C64",
            DType::C128 => "C128",
            DType::String => "STRING",
        }
    }

    /// Bytes per element, or `None` for variable-length strings.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::F8E5M2 | DType::F8E4M3 | DType::F8E8M0 | DType::F8E4M3Fnuz | DType::F8E5M2Fnuz => 1,
            DType::U16 | DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 | DType::C64 => 8,
            DType::C128 => 16,
            DType::String => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dtype name that is not one of [`DType::ALL`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dtype {name:?}")]
pub struct UnknownDType {
    /// The name given.
    pub name: String,
}

impl FromStr for DType {
    type Err = UnknownDType;

    /// Parses a dtype as safetensors spells it (`F32`, `BF16`, ...; `STRING`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DType::ALL.iter().copied().find(|d| d.name() == s).ok_or_else(|| UnknownDType { name: s.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>(), Ok(d));
        }
        assert_eq!("F33".parse::<DType>(), Err(UnknownDType { name: "F33".into() }));
        assert_eq!(UnknownDType { name: "F33".into() }.to_string(), "unknown dtype \"F33\"");
    }

    #[test]
    fn sizes() {
        assert_eq!(DType::BF16.size(), Some(2));
        assert_eq!(DType::C128.size(), Some(16));
        assert_eq!(DType::String.size(), None);
    }
}
