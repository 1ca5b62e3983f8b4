//! [`convert`]: streams every tensor of a checkpoint into a new one of another (or the same) format.

use std::path::Path;

use warmstart_core::copy::{copy_tensor, DEFAULT_BLOCK_BYTES};
use warmstart_core::output::CreatedFolders;
use warmstart_core::{CheckpointSource, DType, Result, SinkTensor};

use crate::dispatch::LayoutTemplate;
use crate::{create_sink, Format, WriteOptions};

/// What [`convert`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertReport {
    /// The tensors written.
    pub tensors: usize,
    /// The bytes of numeric tensor data written.
    pub bytes: u64,
    /// The tensors left out because the destination cannot store them.
    pub skipped: Vec<SkippedTensor>,
}

/// A tensor [`convert`] left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedTensor {
    /// The tensor.
    pub name: String,
    /// Why it was left out.
    pub reason: String,
}

/// Writes every tensor of `src` to `dst` in `format`, streaming each in row blocks of a few MiB.
///
/// String tensors are skipped (and listed in the report) when `format` cannot store them. Unless
/// `opts.metadata` is set, the source's metadata is carried over; unless `opts.template` is set, the
/// source is the layout template (a Keras HDF5 source converted to HDF5 keeps its layout). `dst`'s
/// missing parent folders are made, as by `run_files` and TensorFlow's savers. Nothing is left at
/// `dst` on failure, and no folder made for it; nor if `src` changed while being read (see
/// [`CheckpointSource::check_unchanged`]), which is then the error.
pub fn convert(src: &dyn CheckpointSource, dst: &Path, format: Format, opts: &WriteOptions) -> Result<ConvertReport> {
    let mut report = ConvertReport::default();
    let mut tensors = Vec::with_capacity(src.tensors().len());
    for info in src.tensors() {
        if info.dtype == DType::String && !format.stores_strings() {
            report.skipped.push(SkippedTensor {
                name: info.name.clone(),
                reason: format!("{format} cannot store string tensors"),
            });
        } else {
            tensors.push(SinkTensor::whole(info.clone()));
        }
    }
    let mut opts = opts.clone();
    if opts.metadata.is_none() {
        opts.metadata = src.metadata().cloned();
    }
    if opts.template.is_none() {
        opts.template = Some(LayoutTemplate::of(src));
    }
    // Removed again, if still empty, unless the output is put in place.
    let folders = match dst.parent() {
        Some(parent) => CreatedFolders::create(parent)?,
        None => CreatedFolders::default(),
    };
    let mut sink = create_sink(dst, format, &tensors, &opts)?;
    let copied: Result<()> = tensors.iter().try_for_each(|tensor| {
        copy_tensor(src, &tensor.info.name, sink.as_mut(), tensor, DEFAULT_BLOCK_BYTES)?;
        report.tensors += 1;
        report.bytes += tensor.byte_len().unwrap_or(0);
        Ok(())
    });
    // An input truncated or rewritten while read: its error (which explains a failed write: bytes of
    // a vanished map make write(2) fail with EFAULT), and the output is not put in place.
    src.check_unchanged()?;
    copied?;
    sink.finish()?;
    folders.keep();
    Ok(report)
}

#[cfg(all(test, feature = "safetensors"))]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use warmstart_core::test_support::MemorySource;
    use warmstart_core::TensorInfo;

    /// A source with a numeric tensor of many rows, a string tensor and metadata.
    fn source() -> MemorySource {
        // 5 MiB of F32 rows of one element, so the copy takes two row blocks.
        let rows = 5 << 18;
        MemorySource::new()
            .with_bytes(
                TensorInfo::new("big", DType::F32, vec![rows]),
                (0..rows * 4).map(|i| (i % 251) as u8).collect(),
            )
            .with_strings("vocab", &[1], vec![b"a".to_vec()])
            .with_metadata(BTreeMap::from([("k".into(), "v".into())]))
    }

    #[test]
    fn streams_tensors_skips_strings_and_keeps_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("o.safetensors");
        let src = source();
        let report = convert(&src, &dst, Format::Safetensors, &WriteOptions::default()).unwrap();
        assert_eq!(report.tensors, 1);
        assert_eq!(report.bytes, src.bytes("big").len() as u64);
        assert_eq!(
            report.skipped,
            [SkippedTensor { name: "vocab".into(), reason: "safetensors cannot store string tensors".into() }]
        );
        let out = crate::open(&dst).unwrap();
        assert_eq!(&*out.read("big").unwrap(), src.bytes("big"));
        assert_eq!(out.metadata(), src.metadata());
    }

    #[test]
    fn explicit_metadata_wins() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("o.safetensors");
        let metadata = BTreeMap::from([("mine".to_string(), "1".to_string())]);
        let opts = WriteOptions { metadata: Some(metadata.clone()), ..Default::default() };
        convert(&source(), &dst, Format::Safetensors, &opts).unwrap();
        assert_eq!(crate::open(&dst).unwrap().metadata(), Some(&metadata));
    }

    #[test]
    fn a_failed_conversion_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("o.safetensors");
        let src = source().with_unreadable(TensorInfo::new("unreadable", DType::F32, vec![1]));
        let err = convert(&src, &dst, Format::Safetensors, &WriteOptions::default());
        assert!(err.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_folders_are_made_and_removed_again_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("x/y/o.safetensors");
        convert(&source(), &dst, Format::Safetensors, &WriteOptions::default()).unwrap();
        assert!(dst.is_file());
        let src = source().with_unreadable(TensorInfo::new("unreadable", DType::F32, vec![1]));
        assert!(convert(&src, &dir.path().join("p/q/o.safetensors"), Format::Safetensors, &Default::default()).is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["x"]);
    }
}
