//! The pure planner of warmstart: given TF's `warm_start` settings (with vocabulary files already read),
//! the old checkpoint's tensor list and the target model's variables, it decides for every target
//! variable what it gets (a copy of an old tensor, a vocabulary remap, or its initial value) and why,
//! or refuses exactly where TensorFlow refuses, with TensorFlow's message.
//!
//! Where TF fails only for a kernel it lacks (re-slicing some dtypes on restore), the planner does not
//! refuse: [`mark_tf_kernel_limits`] marks the variable; [`kernel_limits`] lists every such limitation
//! on the warm-start paths (restore re-slicing, LoadAndRemapMatrix, GenerateVocabRemapping) and how each
//! was checked against TF.
//!
//! No I/O and no file formats: callers (the `warmstart` library) read the checkpoints and the
//! vocabulary files and hand over plain data; the executor carries out the [`Plan`].
#![deny(missing_docs)]

mod error;
pub mod kernel_limits;
mod plan;
pub mod remap_plan;
mod settings;
mod var_list;
pub mod vocab;

pub use error::{cpp_dtype, py_dtype, PlanError};
pub use kernel_limits::{mark_tf_kernel_limits, TfKernelFailure};
pub use plan::{
    compile_match_regex, plan, variables_from_graph, variables_without_graph, Action, OldCheckpoint, OutputTensor,
    PartInfo, Plan, Target, TargetVariable, VariablePlan,
};
pub use remap_plan::{PartitionGeometry, PartitionRemap, RemapParams, RemapPlan};

pub use settings::{BackupInitializer, PlanSettings, VarsToWarmStart, VocabFile, VocabInfo};
