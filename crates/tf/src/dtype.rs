//! TensorFlow's `DataType` numbers (`types.proto`) and the warmstart dtypes they map to.

use warmstart_core::DType;

/// TensorFlow's `DataType` for a warmstart dtype, or `None` if TensorFlow has no such type here.
pub(crate) fn to_tf(dtype: DType) -> Option<i32> {
    Some(match dtype {
        DType::F32 => 1,
        DType::F64 => 2,
        DType::I32 => 3,
        DType::U8 => 4,
        DType::I16 => 5,
        DType::I8 => 6,
        DType::String => 7,
        DType::C64 => 8,
        DType::I64 => 9,
        DType::Bool => 10,
        DType::BF16 => 14,
        DType::U16 => 17,
        DType::C128 => 18,
        DType::F16 => 19,
        DType::U32 => 22,
        DType::U64 => 23,
        DType::F8E5M2 => 24,
        DType::F8E4M3 => 25,
        DType::F8E4M3Fnuz => 26,
        DType::F8E5M2Fnuz => 28,
        _ => return None,
    })
}

/// What a TensorFlow `DataType` number is to us.
pub(crate) enum TfDType {
    /// A type warmstart reads.
    Known(DType),
    /// A type TensorFlow has that warmstart does not read; TensorFlow's name for it.
    Unsupported(&'static str),
    /// A number TensorFlow does not define.
    Unknown,
}

/// Maps a TensorFlow `DataType` number.
pub(crate) fn from_tf(number: i32) -> TfDType {
    use TfDType::{Known, Unsupported};
    match number {
        1 => Known(DType::F32),
        2 => Known(DType::F64),
        3 => Known(DType::I32),
        4 => Known(DType::U8),
        5 => Known(DType::I16),
        6 => Known(DType::I8),
        7 => Known(DType::String),
        8 => Known(DType::C64),
        9 => Known(DType::I64),
        10 => Known(DType::Bool),
        11 => Unsupported("DT_QINT8"),
        12 => Unsupported("DT_QUINT8"),
        13 => Unsupported("DT_QINT32"),
        14 => Known(DType::BF16),
        15 => Unsupported("DT_QINT16"),
        16 => Unsupported("DT_QUINT16"),
        17 => Known(DType::U16),
        18 => Known(DType::C128),
        19 => Known(DType::F16),
        20 => Unsupported("DT_RESOURCE"),
        21 => Unsupported("DT_VARIANT"),
        22 => Known(DType::U32),
        23 => Known(DType::U64),
        24 => Known(DType::F8E5M2),
        25 => Known(DType::F8E4M3),
        26 => Known(DType::F8E4M3Fnuz),
        27 => Unsupported("DT_FLOAT8_E4M3B11FNUZ"),
        28 => Known(DType::F8E5M2Fnuz),
        29 => Unsupported("DT_INT4"),
        30 => Unsupported("DT_UINT4"),
        31 => Unsupported("DT_INT2"),
        32 => Unsupported("DT_UINT2"),
        33 => Unsupported("DT_FLOAT4_E2M1FN"),
        101..=133 => Unsupported("a reference type (_REF)"),
        _ => TfDType::Unknown,
    }
}

/// The width of the unit a big-endian bundle stores byte-swapped: the element, or for complex numbers
/// each of its two parts.
pub(crate) fn swap_unit(dtype: DType) -> usize {
    match dtype {
        DType::C64 => 4,
        DType::C128 => 8,
        other => other.size().unwrap_or(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for d in DType::ALL {
            if let Some(n) = to_tf(d) {
                assert!(matches!(from_tf(n), TfDType::Known(x) if x == d));
            }
        }
        assert!(matches!(from_tf(21), TfDType::Unsupported("DT_VARIANT")));
        assert!(matches!(from_tf(0), TfDType::Unknown));
        assert!(matches!(from_tf(99), TfDType::Unknown));
    }
}
