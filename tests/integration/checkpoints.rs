//! Opening the fixtures' checkpoints for the warm-start tests.
//!
//! TODO(fold): use `warmstart_formats::open` (content detection over every format) once it reads TF.

use std::path::Path;

use warmstart_core::CheckpointSource;

// Used by the tf and warmstart modules, which need safetensors as well.
#[cfg_attr(not(feature = "safetensors"), allow(dead_code))]
/// Opens a TF checkpoint (folder with a `checkpoint` file, or prefix).
pub(crate) fn open_checkpoint(path: &Path) -> Box<dyn CheckpointSource> {
    Box::new(warmstart_tf::TfSource::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}
