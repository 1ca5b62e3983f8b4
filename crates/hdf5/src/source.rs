//! [`Hdf5Source`]: an HDF5 file opened for reading, its datasets listed as tensors under the naming
//! rules of the crate documentation.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5::dataset::Layout;
use hdf5::{File, Group, IndexType, IterationOrder, LocationToken, LocationType};
use warmstart_core::{CheckpointSource, DType, Error, Format, Result, TensorInfo};

use crate::heaps::GlobalHeaps;
use crate::image::FileImage;
use crate::raw::{self, Values};
use crate::{Hdf5Error, KerasAttributeReason};

/// How many times its stored (compressed) bytes a chunked dataset may declare: above deflate's
/// 1032:1, the most any filter h5py and Keras use expands.
const MAX_CHUNK_EXPANSION: u64 = 1100;

/// The bytes a chunked dataset may declare beyond [`MAX_CHUNK_EXPANSION`] times what it stores (chunks
/// never written read as the fill value).
const MAX_UNWRITTEN_BYTES: u64 = 1 << 20;

/// Groups nested deeper than this are refused (h5py and Keras nest a handful of levels).
const MAX_DEPTH: usize = 256;

/// Which Keras weight layout a file has, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KerasLayout {
    /// Keras 3 `model.save_weights("x.weights.h5")`: `layers/<name>/vars/<i>`, `vars` groups with a
    /// `name` attribute.
    Keras3,
    /// A full-model `.h5` (`save_model(..., "x.h5")`, tf.keras 2 `model.save`): `model_weights` with
    /// `layer_names`, layer groups with `weight_names`.
    Legacy,
}

/// An HDF5 file opened for reading.
pub struct Hdf5Source {
    path: PathBuf,
    file: File,
    tensors: Vec<TensorInfo>,
    /// For each tensor, the path of its dataset (without the leading `/`).
    datasets: Vec<String>,
    index: HashMap<String, usize>,
    keras: Option<KerasLayout>,
    /// Checked before the first variable-length value is read.
    heaps: GlobalHeaps,
    /// For a file opened in place from a mapped input: the bytes the library reads (dropped after
    /// `file`, which the library is done with when it closes).
    image: Option<FileImage>,
}

impl std::fmt::Debug for Hdf5Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hdf5Source")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .field("keras", &self.keras)
            .finish()
    }
}

impl Hdf5Source {
    /// Opens `path` and lists its datasets; fails on anything the file's headers get wrong.
    pub fn open(path: &Path) -> Result<Hdf5Source, Hdf5Error> {
        hdf5::silence_errors(true);
        // What the library would abort on instead of reporting is refused first.
        crate::structure::check_file(path)
            .map_err(|reason| Hdf5Error::Structure { path: path.to_path_buf(), reason })?;
        let file =
            File::open(path).map_err(|source| Hdf5Error::Open { path: path.to_path_buf(), source: source.into() })?;
        raw::close_on_exec(&file);
        Hdf5Source::list(path, file, GlobalHeaps::new(path), None)
    }

    /// Opens the HDF5 file held in `image` (a slice of the mapped input `path`, such as a Keras
    /// archive's weights) in place, without copying it, and lists its datasets as [`open`](Self::open)
    /// does. Errors name `path`.
    pub fn open_image(path: &Path, image: FileImage) -> Result<Hdf5Source> {
        hdf5::silence_errors(true);
        let open_err = |source: hdf5::Error| Hdf5Error::Open { path: path.to_path_buf(), source: source.into() };
        let opened = crate::image::open(&image, &path.to_string_lossy()).map_err(open_err).and_then(|file| {
            let heaps = GlobalHeaps::for_image(path, image.clone());
            Hdf5Source::list(path, file, heaps, Some(image.clone()))
        });
        // Bytes that vanished under the map read as zeros: the input changed, whatever the library
        // made of them.
        image.map().check_read()?;
        Ok(opened?)
    }

    /// Lists the datasets of the open `file` (read from `path`).
    fn list(path: &Path, file: File, heaps: GlobalHeaps, image: Option<FileImage>) -> Result<Hdf5Source, Hdf5Error> {
        let mut found = Vec::new();
        let mut seen_groups = Vec::new();
        walk(path, &file, "", 0, &mut seen_groups, &mut found, &heaps)?;

        let legacy = legacy_names(path, &file, &found, &heaps)?;
        let keras = if legacy.is_some() {
            Some(KerasLayout::Legacy)
        } else if file.link_exists("layers") && file.link_exists("vars") {
            Some(KerasLayout::Keras3)
        } else {
            None
        };

        // Legacy model weights first, in layer and weight order; then everything else by name.
        let legacy = legacy.unwrap_or_default();
        // Looked up by dataset (hashed: `weight_names` come from the file and may be many).
        let legacy_at: HashMap<&str, usize> =
            legacy.iter().enumerate().rev().map(|(k, (d, _))| (d.as_str(), k)).collect();
        let mut order: Vec<(usize, String, String)> = Vec::with_capacity(found.len());
        for (i, (dataset, _)) in found.iter().enumerate() {
            match legacy_at.get(dataset.as_str()).copied() {
                Some(k) => order.push((k, legacy[k].1.clone(), dataset.clone())),
                None => order.push((legacy.len() + i, dataset.clone(), dataset.clone())),
            }
        }
        order.sort_by_key(|(k, _, _)| *k);
        let infos: HashMap<&str, &TensorInfo> = found.iter().map(|(d, t)| (d.as_str(), t)).collect();

        let mut tensors = Vec::with_capacity(order.len());
        let mut datasets: Vec<String> = Vec::with_capacity(order.len());
        let mut index: HashMap<String, usize> = HashMap::with_capacity(order.len());
        for (_, name, dataset) in order {
            if let Some(&first) = index.get(&name) {
                return Err(Hdf5Error::DuplicateName {
                    path: path.to_path_buf(),
                    name,
                    first: datasets[first].clone(),
                    second: dataset,
                });
            }
            let mut info = (*infos[dataset.as_str()]).clone();
            info.name = name.clone();
            index.insert(name, tensors.len());
            tensors.push(info);
            datasets.push(dataset);
        }
        Ok(Hdf5Source { path: path.to_path_buf(), file, tensors, datasets, index, keras, heaps, image })
    }

    /// [`Error::InputChanged`] if the file is an image of a mapped input found truncated while read.
    fn check_image(&self) -> Result<()> {
        self.image.as_ref().map_or(Ok(()), |image| image.map().check_read())
    }

    /// The Keras layout of the file, if it has one.
    pub fn keras_layout(&self) -> Option<KerasLayout> {
        self.keras
    }

    /// The path (without the leading `/`) of the dataset holding tensor `name`.
    pub fn dataset_path(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.datasets[i].as_str())
    }

    /// The open file, for writers copying its layout.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn global_heaps(&self) -> &GlobalHeaps {
        &self.heaps
    }

    fn entry(&self, name: &str) -> Result<(usize, &TensorInfo)> {
        let i = *self
            .index
            .get(name)
            .ok_or_else(|| Error::TensorNotFound { path: self.path.clone(), name: name.to_string() })?;
        Ok((i, &self.tensors[i]))
    }

    fn open_dataset(&self, i: usize) -> Result<hdf5::Dataset, Hdf5Error> {
        let dataset = &self.datasets[i];
        self.file.dataset(dataset).map_err(|source| Hdf5Error::Read {
            path: self.path.clone(),
            dataset: dataset.clone(),
            source: source.into(),
        })
    }
}

/// Lists every dataset under `group` (whose path is `prefix`) depth-first in link-name order, with its
/// dtype and shape, checking each header.
fn walk(
    path: &Path,
    group: &Group,
    prefix: &str,
    depth: usize,
    seen_groups: &mut Vec<LocationToken>,
    found: &mut Vec<(String, TensorInfo)>,
    heaps: &GlobalHeaps,
) -> Result<(), Hdf5Error> {
    let group_err = |source: hdf5::Error| Hdf5Error::Group {
        path: path.to_path_buf(),
        group: format!("/{prefix}"),
        source: source.into(),
    };
    if depth > MAX_DEPTH {
        return Err(group_err(format!("groups nested more than {MAX_DEPTH} deep").into()));
    }
    let token = group.loc_info().map_err(group_err)?.token;
    if seen_groups.contains(&token) {
        return Ok(()); // a second hard link to a group already listed (or a cycle)
    }
    seen_groups.push(token);
    // By name: the order old-style groups (h5py's and Keras's) store, and the same for the compact and
    // dense link storage newer libraries write, whose own order is a hash's.
    for member in group.member_names_by(IndexType::Name, IterationOrder::Increasing).map_err(group_err)? {
        let full = if prefix.is_empty() { member.clone() } else { format!("{prefix}/{member}") };
        let kind = match group.loc_type_by_name(&member) {
            Ok(kind) => kind,
            // A dangling soft or external link is no dataset.
            Err(_) if !is_hard_link(group, &member) => continue,
            Err(source) => {
                return Err(Hdf5Error::Group {
                    path: path.to_path_buf(),
                    group: format!("/{full}"),
                    source: source.into(),
                })
            }
        };
        match kind {
            LocationType::Group => {
                let child = group.group(&member).map_err(|source| Hdf5Error::Group {
                    path: path.to_path_buf(),
                    group: format!("/{full}"),
                    source: source.into(),
                })?;
                walk(path, &child, &full, depth + 1, seen_groups, found, heaps)?;
            }
            LocationType::Dataset => {
                let info = describe(path, group, &member, &full, heaps)?;
                found.push((full, info));
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
    Ok(())
}

fn is_hard_link(group: &Group, name: &str) -> bool {
    let mut hard = true;
    let _ = group.iter_visit_default(|n, info| {
        if n == name {
            hard = matches!(info.link_type, hdf5::LinkType::Hard);
        }
        Ok(())
    });
    hard
}

/// The dtype and shape of dataset `name` of `group` (whose full path is `full`), after checking that a
/// contiguous dataset stores as many bytes as it declares.
fn describe(path: &Path, group: &Group, name: &str, full: &str, heaps: &GlobalHeaps) -> Result<TensorInfo, Hdf5Error> {
    let header_err = |source: hdf5::Error| Hdf5Error::Dataset {
        path: path.to_path_buf(),
        dataset: full.to_string(),
        source: source.into(),
    };
    let dataset = group.dataset(name).map_err(header_err)?;
    let file_type = dataset.dtype().map_err(header_err)?;
    let unsupported =
        |found: String| Hdf5Error::UnsupportedType { path: path.to_path_buf(), dataset: full.to_string(), found };
    let dtype = match raw::opaque_size(&file_type) {
        Some(size) => keras_opaque_dtype(&dataset, size, heaps).map_err(unsupported)?,
        None => {
            let desc = file_type.to_descriptor().map_err(|e| unsupported(e.to_string()))?;
            raw::dtype_of(&desc).ok_or_else(|| unsupported(desc.to_string()))?
        }
    };
    let shape: Vec<u64> = dataset.space().map_err(header_err)?.shape().iter().map(|&d| d as u64).collect();
    let info = TensorInfo::new(full, dtype, shape);
    let too_large = || Hdf5Error::TooLarge { path: path.to_path_buf(), dataset: full.to_string() };
    let elements = info.num_elements().ok_or_else(too_large)?;
    if dtype != DType::String {
        // Whole rows must be addressable; the executor reads them into memory.
        let row_bytes = info.row_bytes().ok_or_else(too_large)?;
        usize::try_from(row_bytes).map_err(|_| too_large())?;
        let declared = elements.checked_mul(file_type.size() as u64).ok_or_else(too_large)?;
        if dataset.layout() == Layout::Contiguous {
            let stored = dataset.storage_size();
            if stored != 0 && stored != declared {
                return Err(Hdf5Error::DeclaredSizeMismatch {
                    path: path.to_path_buf(),
                    dataset: full.to_string(),
                    declared,
                    stored,
                });
            }
        }
        if dataset.layout() == Layout::Chunked {
            // Compression expands at most about a thousand times (deflate's limit is 1032:1), and a
            // dataset whose chunks were never written may declare a little; anything beyond is a forged
            // shape, whose reads would walk a forged number of chunks (minutes inside the library).
            let stored = dataset.storage_size();
            let plausible = stored.saturating_mul(MAX_CHUNK_EXPANSION).saturating_add(MAX_UNWRITTEN_BYTES);
            if declared > plausible {
                return Err(Hdf5Error::ChunkedSizeImplausible {
                    path: path.to_path_buf(),
                    dataset: full.to_string(),
                    declared,
                    stored,
                });
            }
        }
    }
    Ok(info)
}

/// The dtype of a dataset of an opaque type of `size` bytes, as Keras marks it: its `dtype` attribute
/// names the type (`bfloat16`, `float8_e4m3fn`, `float8_e5m2`). Otherwise the bytes could be anything
/// (h5py writes any numpy void type so), and the refusal says what is missing.
fn keras_opaque_dtype(dataset: &hdf5::Dataset, size: usize, heaps: &GlobalHeaps) -> Result<DType, String> {
    let what = format!("opaque ({size} bytes)");
    let names = dataset.attr_names().map_err(|e| format!("{what}, with unreadable attributes ({e})"))?;
    if !names.iter().any(|n| n == raw::KERAS_DTYPE_ATTRIBUTE) {
        return Err(format!(
            "{what} without a \"dtype\" attribute naming its type (Keras marks bfloat16 so: dtype=\"bfloat16\")"
        ));
    }
    let attr =
        dataset.attr(raw::KERAS_DTYPE_ATTRIBUTE).map_err(|e| format!("{what}, with an unreadable dtype ({e})"))?;
    let values = raw::read_strings(Values::Attribute(&attr), heaps)
        .map_err(|e| format!("{what}, with a dtype attribute that cannot be read as a string ({e})"))?;
    let [name] = values.as_slice() else {
        return Err(format!("{what}, with a dtype attribute of {} strings", values.len()));
    };
    raw::keras_opaque_dtype(name, size).ok_or_else(|| {
        format!("{what} marked dtype={:?}, which is no {size}-byte type warmstart knows", String::from_utf8_lossy(name))
    })
}

/// For a legacy Keras full-model file, each model weight's dataset path and name, in `layer_names`
/// and `weight_names` order; `None` for any other file.
fn legacy_names(
    path: &Path,
    file: &File,
    found: &[(String, TensorInfo)],
    heaps: &GlobalHeaps,
) -> Result<Option<Vec<(String, String)>>, Hdf5Error> {
    if !file.link_exists("model_weights") {
        return Ok(None);
    }
    let Ok(weights) = file.group("model_weights") else { return Ok(None) };
    let Some(layers) = string_list_attr(path, &weights, "model_weights", "layer_names", heaps)? else {
        return Ok(None);
    };
    let attr_err = |group: &str, attribute: &str, reason: KerasAttributeReason| Hdf5Error::KerasAttribute {
        path: path.to_path_buf(),
        group: format!("/{group}"),
        attribute: attribute.to_string(),
        reason,
    };
    let datasets: std::collections::HashSet<&str> = found.iter().map(|(d, _)| d.as_str()).collect();
    let mut out = Vec::new();
    for layer in layers {
        let layer = String::from_utf8(layer)
            .map_err(|_| attr_err("model_weights", "layer_names", KerasAttributeReason::NotUtf8))?;
        let group_path = format!("model_weights/{layer}");
        let group = file.group(&group_path).map_err(|_| {
            attr_err("model_weights", "layer_names", KerasAttributeReason::LayerWithoutGroup { layer: layer.clone() })
        })?;
        let Some(weight_names) = string_list_attr(path, &group, &group_path, "weight_names", heaps)? else { continue };
        for weight in weight_names {
            let weight = String::from_utf8(weight)
                .map_err(|_| attr_err(&group_path, "weight_names", KerasAttributeReason::NotUtf8))?;
            let dataset = format!("{group_path}/{weight}");
            if !datasets.contains(dataset.as_str()) {
                // Nothing to list (a file written from a template with only some of its weights).
                continue;
            }
            let name = weight.strip_suffix(":0").unwrap_or(&weight).to_string();
            out.push((dataset, name));
        }
    }
    Ok(Some(out))
}

/// The strings of attribute `name` of `group`: `None` if there is no such attribute, an empty list for
/// an empty attribute of any type (h5py writes an empty list as an empty float array).
fn string_list_attr(
    path: &Path,
    group: &Group,
    group_path: &str,
    name: &str,
    heaps: &GlobalHeaps,
) -> Result<Option<Vec<Vec<u8>>>, Hdf5Error> {
    let err = |reason: KerasAttributeReason| Hdf5Error::KerasAttribute {
        path: path.to_path_buf(),
        group: format!("/{group_path}"),
        attribute: name.to_string(),
        reason,
    };
    let unreadable = |e: hdf5::Error| err(KerasAttributeReason::Unreadable { source: e.into() });
    let names = group.attr_names().map_err(unreadable)?;
    if !names.iter().any(|n| n == name) {
        return Ok(None);
    }
    let attr = group.attr(name).map_err(unreadable)?;
    if attr.space().map_err(unreadable)?.size() == 0 {
        return Ok(Some(Vec::new()));
    }
    raw::read_strings(Values::Attribute(&attr), heaps)
        .map(Some)
        .map_err(|e| err(KerasAttributeReason::NotStrings { source: e.into() }))
}

impl CheckpointSource for Hdf5Source {
    fn format(&self) -> Format {
        Format::Hdf5
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    fn read_rows(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>> {
        let (i, info) = self.entry(name)?;
        let wrong_dtype = || Error::WrongDType { path: self.path.clone(), name: name.to_string(), dtype: info.dtype };
        if info.dtype == DType::String {
            return Err(wrong_dtype());
        }
        let total = info.rows();
        if rows.start > rows.end || rows.end > total {
            return Err(Error::RowsOutOfRange {
                path: self.path.clone(),
                name: name.to_string(),
                start: rows.start,
                end: rows.end,
                rows: total,
            });
        }
        let too_large = || Error::TooLarge { path: self.path.clone(), name: name.to_string() };
        let count = rows.end - rows.start;
        let len = info.row_bytes().and_then(|r| r.checked_mul(count)).ok_or_else(too_large)?;
        let len = usize::try_from(len).map_err(|_| too_large())?;
        if len == 0 {
            return Ok(Cow::Owned(Vec::new()));
        }
        let read_err = |source: hdf5::Error| Hdf5Error::Read {
            path: self.path.clone(),
            dataset: self.datasets[i].clone(),
            source: source.into(),
        };
        let dataset = self.open_dataset(i)?;
        let mem = raw::memory_type(&dataset, info.dtype).map_err(read_err)?.ok_or_else(wrong_dtype)?;
        let shape: Vec<usize> = info.shape.iter().map(|&d| d as usize).collect();
        // The shape comes from the file, and a chunked dataset (or one never written) may declare far
        // more than it stores: allocate fallibly, so a forged shape is an error, not an abort.
        let mut out = Vec::new();
        out.try_reserve_exact(len).map_err(|_| too_large())?;
        out.resize(len, 0u8);
        raw::read_rows(&dataset, &mem, &shape, rows.start as usize, count as usize, &mut out).map_err(read_err)?;
        self.check_image()?;
        Ok(Cow::Owned(out))
    }

    fn read_strings(&self, name: &str) -> Result<Vec<Vec<u8>>> {
        let (i, info) = self.entry(name)?;
        if info.dtype != DType::String {
            return Err(Error::WrongDType { path: self.path.clone(), name: name.to_string(), dtype: info.dtype });
        }
        let dataset = self.open_dataset(i)?;
        let values = raw::read_strings(Values::Dataset(&dataset), &self.heaps).map_err(|source| Hdf5Error::Read {
            path: self.path.clone(),
            dataset: self.datasets[i].clone(),
            source: source.into(),
        })?;
        self.check_image()?;
        Ok(values)
    }

    fn check_unchanged(&self) -> Result<()> {
        self.image.as_ref().map_or(Ok(()), |image| image.map().check_unchanged())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdf5::types::VarLenUnicode;

    /// The descriptors HDF5 opened for `path` in this process are all close-on-exec, so a spawned
    /// process does not inherit them (and HDF5's lock on the file).
    #[cfg(target_os = "linux")]
    #[test]
    fn opened_files_are_close_on_exec() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloexec.h5");
        File::create(&path).unwrap().new_dataset::<f32>().shape(2).create("x").unwrap();
        let source = Hdf5Source::open(&path).unwrap();
        let mut seen = 0;
        for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            if std::fs::read_link(entry.path()).ok().as_deref() != Some(path.as_path()) {
                continue;
            }
            let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", entry.file_name().to_string_lossy()));
            let flags = info.unwrap().lines().find_map(|l| l.strip_prefix("flags:").map(|f| f.trim().to_string()));
            let flags = u32::from_str_radix(&flags.unwrap(), 8).unwrap();
            assert_ne!(flags & 0o2000000, 0, "descriptor {:?} lacks O_CLOEXEC", entry.file_name());
            seen += 1;
        }
        assert!(seen > 0, "no descriptor found for {}", path.display());
        drop(source);
    }

    fn strings_attr(g: &Group, name: &str, values: &[&str]) {
        let v: Vec<VarLenUnicode> = values.iter().map(|s| s.parse().unwrap()).collect();
        g.new_attr::<VarLenUnicode>().shape(v.len()).create(name).unwrap().write_raw(&v).unwrap();
    }

    /// A legacy-looking file: layer `l` with weight `l/w:0`, plus whatever `extra` adds.
    fn legacy(extra: impl FnOnce(&File)) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.h5");
        let f = File::create(&path).unwrap();
        let mw = f.create_group("model_weights").unwrap();
        strings_attr(&mw, "layer_names", &["l"]);
        let l = mw.create_group("l").unwrap();
        strings_attr(&l, "weight_names", &["l/w:0"]);
        l.new_dataset::<f32>().shape([2]).create("l/w:0").unwrap().write(&[1.0f32, 2.0]).unwrap();
        extra(&f);
        drop(f);
        (dir, path)
    }

    #[test]
    fn legacy_names_strip_the_suffix() {
        let (_dir, path) = legacy(|_| {});
        let src = Hdf5Source::open(&path).unwrap();
        assert_eq!(src.keras_layout(), Some(KerasLayout::Legacy));
        assert_eq!(src.dataset_path("l/w"), Some("model_weights/l/l/w:0"));
        assert_eq!(src.read("l/w").unwrap().as_ref(), [1.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat());
    }

    #[test]
    fn weight_names_naming_no_dataset_are_not_listed() {
        let (_dir, path) = legacy(|f| {
            let l = f.group("model_weights/l").unwrap();
            l.delete_attr("weight_names").unwrap();
            strings_attr(&l, "weight_names", &["l/missing:0", "l/w:0"]);
        });
        let src = Hdf5Source::open(&path).unwrap();
        let names: Vec<&str> = src.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["l/w"]);
    }

    #[test]
    fn layer_names_naming_no_group_is_an_error() {
        let (_dir, path) = legacy(|f| {
            let mw = f.group("model_weights").unwrap();
            mw.delete_attr("layer_names").unwrap();
            strings_attr(&mw, "layer_names", &["l", "ghost"]);
        });
        let err = Hdf5Source::open(&path).unwrap_err();
        assert!(matches!(&err, Hdf5Error::KerasAttribute { attribute, .. } if attribute == "layer_names"), "{err}");
        assert!(err.to_string().contains("ghost"), "{err}");
        assert!(
            matches!(&err, Hdf5Error::KerasAttribute { reason: KerasAttributeReason::LayerWithoutGroup { layer }, .. } if layer == "ghost")
        );
    }

    #[test]
    fn non_string_layer_names_are_an_error() {
        let (_dir, path) = legacy(|f| {
            let mw = f.group("model_weights").unwrap();
            mw.delete_attr("layer_names").unwrap();
            mw.new_attr::<i32>().shape(2).create("layer_names").unwrap().write(&[1, 2]).unwrap();
        });
        let err = Hdf5Source::open(&path).unwrap_err();
        assert!(err.to_string().contains("not a list of strings"), "{err}");
        assert!(
            matches!(&err, Hdf5Error::KerasAttribute { reason: KerasAttributeReason::NotStrings { .. }, .. }),
            "{err}"
        );
    }

    #[test]
    fn two_datasets_under_one_name_are_an_error() {
        // The legacy weight `l/w` and the plain dataset at path `l/w`.
        let (_dir, path) = legacy(|f| {
            f.new_dataset::<f32>().shape([1]).create("l/w").unwrap();
        });
        let err = Hdf5Source::open(&path).unwrap_err();
        assert!(matches!(&err, Hdf5Error::DuplicateName { name, .. } if name == "l/w"), "{err}");
    }

    #[test]
    fn unsupported_element_types_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.h5");
        let f = File::create(&path).unwrap();
        let td = hdf5::types::TypeDescriptor::Enum(hdf5::types::EnumType {
            size: hdf5::types::IntSize::U1,
            signed: true,
            members: ["A", "B", "C"]
                .iter()
                .enumerate()
                .map(|(i, n)| hdf5::types::EnumMember { name: n.to_string(), value: i as u64 })
                .collect(),
        });
        f.new_dataset_builder().empty_as(&td).shape([2]).create("e").unwrap();
        drop(f);
        let err = Hdf5Source::open(&path).unwrap_err();
        assert!(matches!(&err, Hdf5Error::UnsupportedType { dataset, .. } if dataset == "e"), "{err}");
    }

    #[test]
    fn hard_link_cycles_and_dangling_links_are_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.h5");
        let f = File::create(&path).unwrap();
        f.create_group("a/b").unwrap();
        f.new_dataset::<u8>().shape([3]).create("a/b/x").unwrap();
        f.link_hard("a", "a/b/back").unwrap();
        f.link_soft("/nowhere", "dangling").unwrap();
        drop(f);
        let src = Hdf5Source::open(&path).unwrap();
        let names: Vec<&str> = src.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a/b/x"]);
    }
}
