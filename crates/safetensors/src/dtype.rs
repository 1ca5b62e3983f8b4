//! The mapping between safetensors' element types and warmstart's [`DType`].

use safetensors::Dtype;
use warmstart_core::DType;

/// The core dtype of a safetensors dtype, or `None` for the sub-byte types (F4, F6) that whole-row
/// byte reads cannot address.
pub(crate) fn to_core(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::BOOL => DType::Bool,
        Dtype::U8 => DType::U8,
        Dtype::I8 => DType::I8,
        Dtype::U16 => DType::U16,
        Dtype::I16 => DType::I16,
        Dtype::U32 => DType::U32,
        Dtype::I32 => DType::I32,
        Dtype::U64 => DType::U64,
        Dtype::I64 => DType::I64,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::F8_E5M2 => DType::F8E5M2,
        Dtype::F8_E4M3 => DType::F8E4M3,
        Dtype::F8_E8M0 => DType::F8E8M0,
        Dtype::F8_E4M3FNUZ => DType::F8E4M3Fnuz,
        Dtype::F8_E5M2FNUZ => DType::F8E5M2Fnuz,
        Dtype::C64 => DType::C64,
        _ => return None,
    })
}

/// The safetensors dtype of a core dtype, or `None` for those safetensors cannot store (C128, strings).
pub(crate) fn from_core(dtype: DType) -> Option<Dtype> {
    Some(match dtype {
        DType::Bool => Dtype::BOOL,
        DType::U8 => Dtype::U8,
        DType::I8 => Dtype::I8,
        DType::U16 => Dtype::U16,
        DType::I16 => Dtype::I16,
        DType::U32 => Dtype::U32,
        DType::I32 => Dtype::I32,
        DType::U64 => Dtype::U64,
        DType::I64 => Dtype::I64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::F8E5M2 => Dtype::F8_E5M2,
        DType::F8E4M3 => Dtype::F8_E4M3,
        DType::F8E8M0 => Dtype::F8_E8M0,
        DType::F8E4M3Fnuz => Dtype::F8_E4M3FNUZ,
        DType::F8E5M2Fnuz => Dtype::F8_E5M2FNUZ,
        DType::C64 => Dtype::C64,
        _ => return None,
    })
}

/// The spelling safetensors uses for `dtype` in its headers (`"F8_E4M3"`, ...).
pub(crate) fn spelling(dtype: Dtype) -> String {
    format!("{dtype:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_dtype_that_safetensors_stores_round_trips_with_the_same_spelling() {
        let mut stored = 0;
        for d in DType::ALL {
            if let Some(st) = from_core(d) {
                assert_eq!(to_core(st), Some(d));
                assert_eq!(spelling(st), d.name());
                assert_eq!(st.bitsize(), d.size().unwrap() * 8);
                stored += 1;
            }
        }
        assert_eq!(stored, 19);
        assert_eq!(from_core(DType::C128), None);
        assert_eq!(from_core(DType::String), None);
    }

    #[test]
    fn sub_byte_types_have_no_core_dtype() {
        for st in [Dtype::F4, Dtype::F6_E2M3, Dtype::F6_E3M2] {
            assert_eq!(to_core(st), None);
        }
    }
}
