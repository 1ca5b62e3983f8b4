//! Opening a checkpoint and starting a writer through the crate of its format, when that crate is
//! compiled in, and choosing a destination's format from `--to` or its name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use warmstart_core::{CheckpointSink, CheckpointSource, Result, SinkTensor};

use crate::detect::detect_preferring;
use crate::{detect, Format, FormatsError};

/// Opens the checkpoint at `path`, whatever its format (told from its content).
pub fn open(path: &Path) -> Result<Box<dyn CheckpointSource>> {
    open_preferring(path, None)
}

/// As [`open`], with `prefer` (`--format`) choosing among the formats of a folder holding several (see
/// [`detect_preferring`](crate::detect_preferring)).
pub fn open_preferring(path: &Path, prefer: Option<Format>) -> Result<Box<dyn CheckpointSource>> {
    let format = detect_preferring(path, prefer)?;
    match format {
        #[cfg(feature = "safetensors")]
        Format::Safetensors => Ok(Box::new(warmstart_safetensors::SafetensorsSource::open(path)?)),
        #[cfg(feature = "hdf5")]
        Format::Hdf5 => Ok(Box::new(warmstart_hdf5::Hdf5Source::open(&single_file(path, format)?)?)),
        #[cfg(feature = "tf")]
        Format::Tf => Ok(Box::new(warmstart_tf::TfSource::open(path)?)),
        #[cfg(feature = "keras")]
        Format::Keras => warmstart_keras::open(path),
        #[cfg(feature = "torch")]
        Format::Torch => Ok(Box::new(warmstart_torch::TorchSource::open(path)?)),
        #[cfg(feature = "numpy")]
        Format::Numpy => Ok(Box::new(warmstart_numpy::NumpySource::open(single_file(path, format)?)?)),
        #[allow(unreachable_patterns)]
        _ => Err(not_compiled_in(path, format)),
    }
}

/// An existing checkpoint whose layout a new one copies, where the destination format has such a
/// notion: a Keras HDF5 file's groups, attributes and weight paths. It is used only when it is in the
/// destination's own format; other formats, and templates of another format, are ignored. The sink
/// reads it from its path itself, so no sink learns a source's concrete type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutTemplate {
    /// The template's format.
    pub format: Format,
    /// Where it is (a file, a prefix or a folder, as it was opened).
    pub path: PathBuf,
}

impl LayoutTemplate {
    /// The layout of the opened checkpoint `source`.
    pub fn of(source: &dyn CheckpointSource) -> LayoutTemplate {
        LayoutTemplate { format: source.format(), path: source.path().to_path_buf() }
    }

    /// The template's path if it is a `format` checkpoint.
    fn path_for(&self, format: Format) -> Option<&Path> {
        (self.format == format).then_some(self.path.as_path())
    }
}

/// How to write a checkpoint, beyond its tensors.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// For formats that shard their data (TF bundles): how many data files. `None` for the default.
    pub shards: Option<usize>,
    /// For safetensors: split the output into shards of at most this many bytes, as Hugging Face does
    /// (`model-0000K-of-0000N.safetensors` and `model.safetensors.index.json` in the folder `path`).
    /// `None` for one file.
    pub max_shard_size: Option<u64>,
    /// For NumPy: deflate the `.npz` members, as `np.savez_compressed` does.
    pub compress: bool,
    /// For formats whose layout comes from an existing file (Keras HDF5): the checkpoint to copy it from.
    pub template: Option<LayoutTemplate>,
    /// Free-form string metadata (safetensors `__metadata__`).
    pub metadata: Option<BTreeMap<String, String>>,
    /// Flush the written files to the disk (fsync) before moving them into place. Off by default, as
    /// in TensorFlow's own writer and `cp`: the files are then as durable as the operating system
    /// makes any written file.
    pub sync: bool,
    /// For TF bundles: write only this worker's part (`run --worker I/N`, with `shards` N); see
    /// [`warmstart_tf::merge`].
    pub worker: Option<usize>,
}

/// Starts writing `tensors` to `path` in `format`.
pub fn create_sink(
    path: &Path,
    format: Format,
    tensors: &[SinkTensor],
    opts: &WriteOptions,
) -> Result<Box<dyn CheckpointSink>> {
    let template = opts.template.as_ref().and_then(|t| t.path_for(format));
    let _ = template;
    if opts.max_shard_size.is_some() && format != Format::Safetensors {
        return Err(FormatsError::ShardSizeUnsupported { path: path.to_path_buf(), format }.into());
    }
    if opts.worker.is_some() && format != Format::Tf {
        return Err(FormatsError::WorkerUnsupported { path: path.to_path_buf(), format }.into());
    }
    if opts.compress && format != Format::Numpy {
        return Err(FormatsError::CompressUnsupported { path: path.to_path_buf(), format }.into());
    }
    match format {
        #[cfg(feature = "safetensors")]
        Format::Safetensors => {
            if let Some(shards) = opts.shards.filter(|&n| n > 1) {
                return Err(FormatsError::ShardsUnsupported { path: path.to_path_buf(), format, shards }.into());
            }
            let metadata = opts.metadata.clone();
            let sink = match opts.max_shard_size {
                Some(max) => warmstart_safetensors::SafetensorsSink::create_sharded(path, tensors, metadata, max)?,
                None => warmstart_safetensors::SafetensorsSink::create(path, tensors, metadata)?,
            };
            Ok(Box::new(sink.sync_on_finish(opts.sync)))
        }
        #[cfg(feature = "hdf5")]
        Format::Hdf5 => {
            if let Some(shards) = opts.shards.filter(|&n| n > 1) {
                return Err(FormatsError::ShardsUnsupported { path: path.to_path_buf(), format, shards }.into());
            }
            Ok(Box::new(warmstart_hdf5::Hdf5Sink::create(path, tensors, template)?.sync_on_finish(opts.sync)))
        }
        #[cfg(feature = "keras")]
        Format::Keras => {
            if let Some(shards) = opts.shards.filter(|&n| n > 1) {
                return Err(FormatsError::ShardsUnsupported { path: path.to_path_buf(), format, shards }.into());
            }
            Ok(Box::new(warmstart_keras::KerasSink::create(path, tensors, template)?.sync_on_finish(opts.sync)))
        }
        #[cfg(feature = "tf")]
        Format::Tf => {
            let prefix = tf_prefix(path);
            let shards = opts.shards.unwrap_or(1);
            let sink = match opts.worker {
                Some(worker) => warmstart_tf::TfSink::create_worker(&prefix, tensors, shards, worker)?,
                None => warmstart_tf::TfSink::create(&prefix, tensors, shards)?,
            };
            let sink = sink.sync_on_finish(opts.sync);
            Ok(Box::new(sink))
        }
        // Read only: PyTorch users are written safetensors.
        #[cfg(feature = "torch")]
        Format::Torch => Err(FormatsError::ReadOnly { path: path.to_path_buf(), format }.into()),
        #[cfg(feature = "numpy")]
        Format::Numpy => {
            if let Some(shards) = opts.shards.filter(|&n| n > 1) {
                return Err(FormatsError::ShardsUnsupported { path: path.to_path_buf(), format, shards }.into());
            }
            let sink = warmstart_numpy::NumpySink::create(path, tensors)?.compressed(opts.compress);
            Ok(Box::new(sink.sync_on_finish(opts.sync)))
        }
        #[allow(unreachable_patterns)]
        _ => {
            let _ = (tensors, opts);
            Err(not_compiled_in(path, format))
        }
    }
}

/// The bundle prefix to write a TF checkpoint at `path`: `path` itself, or `path/model.ckpt` when `path`
/// is a folder or ends in `/` (the folder's `checkpoint` file then names it, so the folder opens).
#[cfg(feature = "tf")]
fn tf_prefix(path: &Path) -> std::path::PathBuf {
    if path.is_dir() || path.to_string_lossy().ends_with('/') {
        path.join("model.ckpt")
    } else {
        path.to_path_buf()
    }
}

/// The file to open for `path` in a format read from one file (HDF5, NumPy): `path` itself, or the one
/// file of `format` in the folder `path`.
#[cfg(any(feature = "hdf5", feature = "numpy"))]
fn single_file(path: &Path, format: Format) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| warmstart_core::Error::io(path, e))? {
        let file = entry.map_err(|e| warmstart_core::Error::io(path, e))?.path();
        if file.is_file() && detect(&file).ok() == Some(format) {
            found.push(file);
        }
    }
    found.sort();
    match <[PathBuf; 1]>::try_from(found) {
        Ok([one]) => Ok(one),
        Err(found) => {
            let candidates = found.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
            Err(FormatsError::SeveralFiles {
                path: path.to_path_buf(),
                format: Format::Numpy,
                candidates: candidates.collect(),
            }
            .into())
        }
    }
}

/// The format to write `path` in, and whether it was chosen for want of a name that tells one: as
/// [`destination_format`], or when the name tells none (`out/ckpt`, `ckpt-5`), `input` (the target's
/// format for a warm-start, the source's for a conversion), or safetensors when `input` is read only.
pub fn choose_destination_format(path: &Path, explicit: Option<Format>, input: Format) -> (Format, bool) {
    match destination_format(path, explicit) {
        Ok(format) => (format, false),
        Err(_) if input.writable() => (input, true),
        Err(_) => (Format::Safetensors, true),
    }
}

/// The format to write `path` in: `explicit` (`--to`) if given, else told from the name: `.safetensors`
/// is safetensors; `.h5` and `.hdf5` (so `.weights.h5`) are HDF5; `.keras` is a Keras archive; `.npz`
/// and `.npy` are NumPy; a name
/// containing `.ckpt`, ending in `/`, or an existing folder is a TF bundle prefix.
pub fn destination_format(path: &Path, explicit: Option<Format>) -> Result<Format> {
    if let Some(format) = explicit {
        return Ok(format);
    }
    let text = path.to_string_lossy();
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    if name.ends_with(".safetensors") {
        Ok(Format::Safetensors)
    } else if name.ends_with(".h5") || name.ends_with(".hdf5") {
        Ok(Format::Hdf5)
    } else if name.ends_with(".keras") {
        Ok(Format::Keras)
    } else if name.ends_with(".npz") || name.ends_with(".npy") {
        Ok(Format::Numpy)
    } else if name.contains(".ckpt") || text.ends_with('/') || path.is_dir() {
        Ok(Format::Tf)
    } else {
        Err(FormatsError::NoDestinationFormat { path: path.to_path_buf() }.into())
    }
}

fn not_compiled_in(path: &Path, format: Format) -> warmstart_core::Error {
    FormatsError::NotCompiledIn { path: path.to_path_buf(), format }.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::{hdf5_bytes, leveldb_table_bytes, write};

    #[test]
    fn destination_from_the_name_or_to() {
        let cases = [
            ("out/model.safetensors", Format::Safetensors),
            ("model.SAFETENSORS", Format::Safetensors),
            ("model.weights.h5", Format::Hdf5),
            ("model.h5", Format::Hdf5),
            ("model.hdf5", Format::Hdf5),
            ("run/model.ckpt", Format::Tf),
            ("run/model.ckpt-100", Format::Tf),
            ("run/out/", Format::Tf),
            ("out/model.keras", Format::Keras),
            ("weights.npz", Format::Numpy),
            ("w.NPY", Format::Numpy),
        ];
        for (path, format) in cases {
            assert_eq!(destination_format(Path::new(path), None).unwrap(), format, "{path}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(destination_format(dir.path(), None).unwrap(), Format::Tf);
        assert_eq!(destination_format(Path::new("x.safetensors"), Some(Format::Hdf5)).unwrap(), Format::Hdf5);
        for path in ["model.bin", "model"] {
            let err = destination_format(Path::new(path), None).unwrap_err().to_string();
            assert!(err.contains(path) && err.contains("--to"), "{err}");
        }
    }

    #[test]
    fn formats_detected_but_not_compiled_in_say_so() {
        let dir = tempfile::tempdir().unwrap();
        if !crate::compiled_in(Format::Hdf5) {
            let h5 = write(dir.path(), "m.weights.h5", &hdf5_bytes(0));
            let err = open(&h5).err().unwrap().to_string();
            assert!(err.contains("m.weights.h5") && err.contains("this build has no hdf5 support"), "{err}");
        }
        if !crate::compiled_in(Format::Tf) {
            write(dir.path(), "model.ckpt.index", &leveldb_table_bytes());
            let err = open(&dir.path().join("model.ckpt")).err().unwrap().to_string();
            assert!(err.contains("this build has no tf support"), "{err}");
        }
        if !crate::compiled_in(Format::Torch) {
            let pt = warmstart_core::test_support::fixture("torch", "tied").join("model.pt");
            let err = open(&pt).err().unwrap().to_string();
            assert!(err.contains("model.pt") && err.contains("this build has no torch support"), "{err}");
        }
        for format in Format::ALL.into_iter().filter(|&f| !crate::compiled_in(f)) {
            let err = create_sink(&dir.path().join("out"), format, &[], &WriteOptions::default()).err().unwrap();
            assert!(err.to_string().contains(&format!("this build has no {format} support")));
        }
    }

    #[cfg(feature = "safetensors")]
    #[test]
    fn safetensors_open_and_create() {
        use warmstart_core::{DType, TensorInfo};
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "m.safetensors", &crate::detect::tests::safetensors_bytes());
        let src = open(&path).unwrap();
        assert_eq!(src.format(), Format::Safetensors);
        assert_eq!(&*src.read("w").unwrap(), &[7]);

        let tensors = [SinkTensor::whole(TensorInfo::new("w", DType::U8, vec![1]))];
        let out = dir.path().join("o.safetensors");
        let opts = WriteOptions { shards: Some(2), ..Default::default() };
        let err = create_sink(&out, Format::Safetensors, &tensors, &opts).err().unwrap();
        assert!(err.to_string().contains("2 shards"), "{err}");
        // Flushed to the disk before the rename (`--sync`).
        let synced = WriteOptions { sync: true, ..Default::default() };
        let mut sink = create_sink(&out, Format::Safetensors, &tensors, &synced).unwrap();
        sink.begin_tensor(&tensors[0]).unwrap();
        sink.write_data(&[9]).unwrap();
        sink.end_tensor().unwrap();
        sink.finish().unwrap();
        assert_eq!(&*open(&out).unwrap().read("w").unwrap(), &[9]);
    }

    #[cfg(feature = "hdf5")]
    #[test]
    fn hdf5_open_and_create() {
        use warmstart_core::{DType, TensorInfo};
        let dir = tempfile::tempdir().unwrap();
        let fixture = warmstart_core::test_support::fixture("hdf5", "keras_legacy").join("model.h5");
        let src = open(&fixture).unwrap();
        assert_eq!(src.format(), Format::Hdf5);
        assert_eq!(src.tensors()[0].name, "d1/kernel");

        let tensors = [SinkTensor::whole(TensorInfo::new("w", DType::U8, vec![1]))];
        let out = dir.path().join("o.h5");
        let opts = WriteOptions { shards: Some(2), ..Default::default() };
        let err = create_sink(&out, Format::Hdf5, &tensors, &opts).err().unwrap();
        assert!(err.to_string().contains("2 shards"), "{err}");
        let synced = WriteOptions { sync: true, ..Default::default() };
        let mut sink = create_sink(&out, Format::Hdf5, &tensors, &synced).unwrap();
        sink.begin_tensor(&tensors[0]).unwrap();
        sink.write_data(&[9]).unwrap();
        sink.end_tensor().unwrap();
        sink.finish().unwrap();
        assert_eq!(&*open(&out).unwrap().read("w").unwrap(), &[9]);

        // With the legacy file as template, its weights go back to their dataset paths.
        let template = src;
        let kernel = template.tensor("d1/kernel").unwrap().clone();
        let tensors = [SinkTensor::whole(kernel.clone())];
        let write_kernel = |name: &str, layout: LayoutTemplate| {
            let opts = WriteOptions { template: Some(layout), ..Default::default() };
            let out = dir.path().join(name);
            let mut sink = create_sink(&out, Format::Hdf5, &tensors, &opts).unwrap();
            sink.begin_tensor(&tensors[0]).unwrap();
            sink.write_data(&template.read("d1/kernel").unwrap()).unwrap();
            sink.end_tensor().unwrap();
            sink.finish().unwrap();
            warmstart_hdf5::Hdf5Source::open(&out).unwrap()
        };
        let back = write_kernel("t.h5", LayoutTemplate::of(template.as_ref()));
        assert_eq!(back.dataset_path("d1/kernel"), Some("model_weights/d1/d1/kernel"));
        // A template of another format is not one: the tensor goes to its own name.
        let elsewhere = LayoutTemplate { format: Format::Tf, path: template.path().to_path_buf() };
        let back = write_kernel("u.h5", elsewhere);
        assert_eq!(back.dataset_path("d1/kernel"), Some("d1/kernel"));
    }

    #[cfg(feature = "torch")]
    #[test]
    fn torch_opens_and_is_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let fixture = warmstart_core::test_support::fixture("torch", "sharded");
        let src = open(&fixture).unwrap();
        assert_eq!(src.format(), Format::Torch);
        assert!(src.tensor("embeddings.word_embeddings.weight").is_some());
        let err = create_sink(&dir.path().join("out.bin"), Format::Torch, &[], &WriteOptions::default()).err().unwrap();
        assert!(err.to_string().contains("torch checkpoints are read only"), "{err}");
    }

    #[cfg(feature = "tf")]
    #[test]
    fn tf_create_into_a_folder_and_open() {
        use warmstart_core::{DType, TensorInfo};
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        std::fs::create_dir(&out).unwrap();
        let tensors = [
            SinkTensor::whole(TensorInfo::new("w", DType::U8, vec![2])),
            SinkTensor::whole(TensorInfo::new("s", DType::String, vec![1])),
        ];
        let opts = WriteOptions { shards: Some(2), sync: true, ..Default::default() };
        let mut sink = create_sink(&out, Format::Tf, &tensors, &opts).unwrap();
        assert_eq!(sink.path(), out.join("model.ckpt"));
        sink.begin_tensor(&tensors[0]).unwrap();
        sink.write_data(&[4, 5]).unwrap();
        sink.end_tensor().unwrap();
        sink.write_strings(&tensors[1], &[b"x".to_vec()]).unwrap();
        sink.finish().unwrap();
        let src = open(&out).unwrap();
        assert_eq!(src.format(), Format::Tf);
        assert_eq!(&*src.read("w").unwrap(), &[4, 5]);
        assert_eq!(src.read_strings("s").unwrap(), [b"x".to_vec()]);
        assert!(out.join("model.ckpt.data-00001-of-00002").is_file());
    }

    #[cfg(feature = "numpy")]
    #[test]
    fn numpy_detect_open_and_create() {
        use warmstart_core::{DType, TensorInfo};
        let savez = warmstart_core::test_support::fixture("numpy", "savez");
        for file in ["model.npz", "compressed.npz"] {
            assert_eq!(detect(&savez.join(file)).unwrap(), Format::Numpy, "{file}");
        }
        let npy = warmstart_core::test_support::fixture("numpy", "npy").join("v3.npy");
        assert_eq!(open(&npy).unwrap().tensors()[0].name, "v3");
        // A zip whose first member is not an array is not an .npz (a .keras archive, a torch.save).
        let dir = tempfile::tempdir().unwrap();
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend_from_slice(&[0; 22]);
        zip.extend_from_slice(&13u16.to_le_bytes());
        zip.extend_from_slice(&[0, 0]);
        zip.extend_from_slice(b"metadata.json");
        let not_npz = write(dir.path(), "m.keras", &zip);
        assert!(detect(&not_npz).is_err());
        // A folder opens its one NumPy file, and names them when it holds several.
        let one = dir.path().join("one");
        std::fs::create_dir(&one).unwrap();
        std::fs::copy(savez.join("model.npz"), one.join("w.npz")).unwrap();
        assert_eq!(open(&one).unwrap().path(), one.join("w.npz"));
        std::fs::copy(&npy, one.join("x.npy")).unwrap();
        let err = open(&one).err().unwrap().to_string();
        assert!(err.contains("several numpy files (w.npz, x.npy)"), "{err}");

        let tensors = [SinkTensor::whole(TensorInfo::new("w", DType::U8, vec![1]))];
        let out = dir.path().join("o.npz");
        let opts = WriteOptions { shards: Some(2), ..Default::default() };
        let err = create_sink(&out, Format::Numpy, &tensors, &opts).err().unwrap();
        assert!(err.to_string().contains("2 shards"), "{err}");
        let mut sink = create_sink(&out, Format::Numpy, &tensors, &WriteOptions::default()).unwrap();
        sink.begin_tensor(&tensors[0]).unwrap();
        sink.write_data(&[9]).unwrap();
        sink.end_tensor().unwrap();
        sink.finish().unwrap();
        let back = open(&out).unwrap();
        assert_eq!((back.format(), &*back.read("w").unwrap()), (Format::Numpy, &[9u8][..]));
    }

    #[test]
    fn a_name_that_tells_no_format_takes_the_inputs() {
        for (path, input) in [("out/ckpt", Format::Tf), ("ckpt-5", Format::Hdf5), ("weights", Format::Numpy)] {
            assert_eq!(choose_destination_format(Path::new(path), None, input), (input, true), "{path}");
        }
        let named = choose_destination_format(Path::new("o.safetensors"), None, Format::Tf);
        assert_eq!(named, (Format::Safetensors, false));
        let explicit = choose_destination_format(Path::new("out/ckpt"), Some(Format::Hdf5), Format::Tf);
        assert_eq!(explicit, (Format::Hdf5, false));
    }

    #[test]
    fn format_chooses_in_a_folder_of_several_and_only_there() {
        use crate::detect::tests::safetensors_bytes;
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "model.safetensors", &safetensors_bytes());
        write(dir.path(), "tf_model.h5", &hdf5_bytes(0));
        let err = detect(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("several formats (safetensors, hdf5); name one file, or choose one with --format"),
            "{err}"
        );
        assert_eq!(detect_preferring(dir.path(), Some(Format::Safetensors)).unwrap(), Format::Safetensors);
        assert_eq!(detect_preferring(dir.path(), Some(Format::Hdf5)).unwrap(), Format::Hdf5);
        let err = detect_preferring(dir.path(), Some(Format::Tf)).unwrap_err().to_string();
        assert!(err.contains("several formats (safetensors, hdf5)"), "{err}");
        // A file is what its content says, whatever is preferred.
        let file = dir.path().join("model.safetensors");
        assert_eq!(detect_preferring(&file, Some(Format::Hdf5)).unwrap(), Format::Safetensors);
        if crate::compiled_in(Format::Safetensors) {
            let src = open_preferring(dir.path(), Some(Format::Safetensors)).unwrap();
            assert_eq!(&*src.read("w").unwrap(), &[7]);
        }
    }

    #[test]
    fn a_maximum_shard_size_is_for_safetensors_only() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WriteOptions { max_shard_size: Some(10), ..Default::default() };
        for format in [Format::Tf, Format::Hdf5, Format::Numpy] {
            let err = create_sink(&dir.path().join("o"), format, &[], &opts).err().unwrap().to_string();
            assert!(err.contains("--max-shard-size is for safetensors"), "{format}: {err}");
        }
        let opts = WriteOptions { compress: true, ..Default::default() };
        for format in [Format::Tf, Format::Hdf5, Format::Safetensors] {
            let err = create_sink(&dir.path().join("o"), format, &[], &opts).err().unwrap().to_string();
            assert!(err.contains("--compress is for numpy"), "{format}: {err}");
        }
    }
}
