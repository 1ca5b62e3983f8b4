//! Where TensorFlow itself would fail, not by a rule of warm-starting but for a kernel it lacks. The
//! planner does not refuse these: it produces the values TF's warm-start means (and gives where the
//! kernel exists), and marks the variable so that a user who must match TF knows TF would fail
//! ([`VariablePlan::tensorflow_fails`], a warning in its reason, a line on `run`'s stderr).
//!
//! TF's kernel limitations on the warm-start paths, read from TF's sources and checked with TF 2.21
//! (CPU) by running `warm_start` + `global_variables_initializer` on each dtype:
//!
//! - **Re-slicing on restore** (`core/util/tensor_bundle/tensor_bundle.cc`,
//!   `BundleReader::GetSliceValue`, used by RestoreV2 for a slice spec and for a tensor saved in
//!   slices). When the requested region is exactly one stored slice (same partitions old and new, or
//!   neither partitioned) the bytes are read directly, for any dtype. Otherwise the stored slices are
//!   copied element-wise into the requested region, and that copy exists only for the dtypes of its
//!   `HANDLE_COPY` list; any other fails with InvalidArgumentError "Dtype NAME not supported.". The
//!   source read lists float, double, int32, uint8, int16, int8, complex64, complex128, int64, bool,
//!   qint32, quint8, qint8 and bfloat16; TF 2.21 also copies int4 and uint4. Run on TF 2.21 in all
//!   three re-slicing directions (old in 2 parts to new in 3, old whole to new in 2, old in 2 to new
//!   whole) and with equal partitions:
//!   - fail re-slicing, work with equal partitions: half (float16), uint16, uint32, uint64, string,
//!     float8_e5m2, float8_e4m3fn, int2, uint2;
//!   - work in every direction: bfloat16, float, double, int8, uint8, int16, int32, int64, bool,
//!     complex64, complex128, int4, uint4;
//!   - not run: float8_e4m3fnuz, float8_e5m2fnuz and float8_e4m3b11fnuz (TF 2.21 cannot make their
//!     initial values: "Element type not supported in TensorProto"), float8_e8m0fnu and the quantized
//!     types; they are marked as lacking the copy, as the source says.
//!
//!   This is the one limitation the planner marks ([`mark_tf_kernel_limits`]); warmstart re-slices the
//!   old values as TF saved them, which is what TF gives when the partitions match.
//! - **Vocabulary remap** (`core/kernels/load_and_remap_matrix_op.cc`, LoadAndRemapMatrix): float32
//!   only, old tensor and output. TF's Python refuses any other dtype first (ValueError "Tensor
//!   conversion requested dtype ..."), and so does the planner, with TF's messages; nothing to mark.
//! - **Vocabulary lookup** (`core/kernels/generate_vocab_remapping_op.cc`, GenerateVocabRemapping):
//!   reads the vocabulary files and outputs int64 ids; no dtype of the variable reaches it, so it
//!   lacks none.

use serde::Serialize;
use warmstart_core::{DType, Slice, TensorInfo};

use crate::error::cpp_dtype;
use crate::plan::{Action, Plan, VariablePlan};

/// A failure TensorFlow itself would hit for a missing kernel, where warmstart produces the values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TfKernelFailure {
    /// TF's exception class.
    pub class: String,
    /// TF's message.
    pub message: String,
    /// Which kernel lacks what, and what warmstart does instead.
    pub why: String,
}

/// Whether TF's `GetSliceValue` can copy between slices of this dtype (its `HANDLE_COPY` list).
pub fn tf_can_reslice(dtype: DType) -> bool {
    use DType::*;
    matches!(dtype, F32 | F64 | I32 | U8 | I16 | I8 | C64 | C128 | I64 | Bool | BF16)
}

/// Marks every copied variable whose restore TF would have to re-slice in a dtype its kernel cannot
/// copy: `old_tensors` are the old checkpoint's tensors, `old_slices` how each is stored (`None`
/// whole).
pub fn mark_tf_kernel_limits(
    plan: &mut Plan,
    old_tensors: &[TensorInfo],
    old_slices: impl Fn(&str) -> Option<Vec<Slice>>,
) {
    for v in &mut plan.variables {
        let Action::Copy { from, parts } = &v.action else { continue };
        if tf_can_reslice(v.dtype) {
            continue;
        }
        let Some(old) = old_tensors.iter().find(|t| &t.name == from) else { continue };
        let stored = old_slices(from).unwrap_or_else(|| vec![whole(&old.shape)]);
        let requested: Vec<Slice> = if v.parts.is_empty() {
            vec![whole(&v.shape)]
        } else {
            let all: Vec<usize> = (0..v.parts.len()).collect();
            let ps = parts.as_deref().unwrap_or(&all);
            ps.iter().map(|&p| Slice { start: v.parts[p].start.clone(), len: v.parts[p].shape.clone() }).collect()
        };
        if requested.iter().all(|r| stored.contains(r)) {
            continue;
        }
        let failure = reslice_failure(v, from, stored.len());
        v.reason = format!(
            "{}; WARNING: TensorFlow itself would fail here ({}: {})",
            v.reason, failure.class, failure.message
        );
        v.tensorflow_fails = Some(failure);
    }
}

/// The slice covering a whole tensor of `shape`.
fn whole(shape: &[u64]) -> Slice {
    Slice { start: vec![0; shape.len()], len: shape.to_vec() }
}

fn reslice_failure(v: &VariablePlan, from: &str, stored: usize) -> TfKernelFailure {
    let dtype = cpp_dtype(v.dtype);
    let new = match v.parts.len() {
        0 => "whole".to_string(),
        n => format!("in {n} partitions"),
    };
    let old = if stored == 1 { "whole".to_string() } else { format!("in {stored} partitions") };
    TfKernelFailure {
        class: "InvalidArgumentError".into(),
        message: format!("Dtype {dtype} not supported."),
        why: format!(
            "the old {from} is stored {old} and the new {} is {new}: TF's restore kernel (BundleReader::GetSliceValue) \
             cannot re-slice {dtype} tensors; warmstart re-slices the old values as TF saved them, which is \
             what TF gives when the partitions match",
            v.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PartInfo;

    fn plan_of(dtype: DType, parts: &[(u64, u64)]) -> Plan {
        let parts = parts
            .iter()
            .enumerate()
            .map(|(i, &(s, n))| PartInfo { name: format!("w/part_{i}"), start: vec![s, 0], shape: vec![n, 2] })
            .collect();
        Plan {
            old_checkpoint: "old".into(),
            variables: vec![VariablePlan {
                name: "w".into(),
                tensor: "w".into(),
                dtype,
                shape: vec![6, 2],
                parts,
                action: Action::Copy { from: "w".into(), parts: None },
                reason: "matches".into(),
                tensorflow_fails: None,
            }],
            passthrough: vec![],
            outputs: vec![],
            skipped: vec![],
        }
    }

    fn marked(dtype: DType, new: &[(u64, u64)], old: Option<&[(u64, u64)]>) -> Option<TfKernelFailure> {
        let mut p = plan_of(dtype, new);
        let old_slices =
            old.map(|o| o.iter().map(|&(s, n)| Slice { start: vec![s, 0], len: vec![n, 2] }).collect::<Vec<_>>());
        mark_tf_kernel_limits(&mut p, &[TensorInfo::new("w", dtype, vec![6, 2])], |_| old_slices.clone());
        p.variables[0].tensorflow_fails.clone()
    }

    #[test]
    fn only_reslicing_in_a_dtype_without_a_copy_kernel_is_marked() {
        let two: &[(u64, u64)] = &[(0, 3), (3, 3)];
        let three: &[(u64, u64)] = &[(0, 2), (2, 2), (4, 2)];
        let f = marked(DType::F16, three, Some(two)).unwrap();
        assert_eq!((f.class.as_str(), f.message.as_str()), ("InvalidArgumentError", "Dtype half not supported."));
        assert!(marked(DType::F16, two, None).is_some());
        assert!(marked(DType::U32, &[], Some(two)).is_some());
        assert!(marked(DType::String, three, Some(two)).is_some());
        assert!(marked(DType::F16, two, Some(two)).is_none());
        assert!(marked(DType::F16, &[], None).is_none());
        assert!(marked(DType::F32, three, Some(two)).is_none());
        assert!(marked(DType::BF16, three, Some(two)).is_none());
    }
}
