//! [`TfSource`]: a V2 checkpoint opened for reading. The `.index` table is read and every entry
//! validated at open (dtype, shape, shard, byte range, size, slices); the data shards are memory-mapped,
//! and each stored tensor's CRC32C is verified on its first read, before any of its bytes are handed out.
//!
//! - [`shards`]: the memory-mapped data files, the byte runs entries point at, CRC verification;
//! - [`entries`]: each `BundleEntryProto` decoded and validated against the header and the shards;
//! - [`slices`]: partitioned variables, their slices checked at open and rows assembled from them;
//! - [`object_graph`]: the object-graph keys of TF2 object-based checkpoints;
//! - here: [`TfSource`] itself, [`TfSource::open`] and the [`CheckpointSource`] methods.

mod entries;
mod object_graph;
mod shards;
mod slices;
#[cfg(test)]
mod testing;

pub use object_graph::OBJECT_GRAPH_KEY;

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use warmstart_core::{CheckpointSource, DType, Format, GraphInfo, Slice, TensorInfo};

use crate::dtype::swap_unit;
use crate::state::{index_path, meta_path, resolve_prefix};
use crate::table::read_index_file;
use crate::{strings, TfError};
use shards::{Shard, Stored};

/// The bundle format version this reader implements (`kTensorBundleVersion`).
const BUNDLE_VERSION: i32 = 1;

/// A TensorFlow V2 checkpoint (tensor bundle) opened for reading.
pub struct TfSource {
    prefix: PathBuf,
    index_path: PathBuf,
    tensors: Vec<TensorInfo>,
    layouts: Vec<Layout>,
    by_name: HashMap<String, usize>,
    shards: Vec<Shard>,
    big_endian: bool,
    graph: Option<GraphInfo>,
}

/// How a logical tensor is stored.
enum Layout {
    Whole(Stored),
    Sliced(Vec<(Slice, Stored)>),
}

impl TfSource {
    /// Opens the checkpoint at `path`: a directory with a `checkpoint` file (its latest checkpoint), a
    /// prefix, or the prefix's `.index` or `.data-*` file.
    pub fn open(path: &Path) -> Result<TfSource, TfError> {
        let prefix = resolve_prefix(path)?;
        let (index_path, entries) = read_index_file(&index_path(&prefix))?;
        let mut entries = entries.into_iter();
        let header = entries::header(&index_path, entries.next())?;
        let (big_endian, num_shards) = entries::check_header(&index_path, &header)?;
        let shards = shards::map_shards(&prefix, num_shards)?;
        let (named, slice_entries) = entries::by_kind(&index_path, entries)?;
        let mut ckpt = TfSource {
            prefix,
            index_path,
            tensors: Vec::with_capacity(named.len()),
            layouts: Vec::with_capacity(named.len()),
            by_name: HashMap::with_capacity(named.len()),
            shards,
            big_endian,
            graph: None,
        };
        for (name, value) in named {
            ckpt.add_tensor(name, &value, &slice_entries)?;
        }
        ckpt.graph = ckpt.read_meta()?;
        Ok(ckpt)
    }

    /// The variables of the TF1 `.meta` file beside the bundle, if there is one.
    fn read_meta(&self) -> Result<Option<GraphInfo>, TfError> {
        let meta = meta_path(&self.prefix);
        if !meta.is_file() {
            return Ok(None);
        }
        let bytes = std::fs::read(&meta).map_err(|e| TfError::io(&meta, e))?;
        let fallback = |name: &str| self.tensor(name).map(|t| t.shape.clone());
        let graph = crate::meta::read_graph(&meta, &bytes, &fallback)?;
        Ok(Some(graph))
    }

    /// The checkpoint's prefix (`dir/model.ckpt-12`).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Whether the bundle was written big-endian (its tensors are byte-swapped on read).
    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    fn layout(&self, name: &str) -> Result<(&TensorInfo, &Layout), TfError> {
        let i = *self
            .by_name
            .get(name)
            .ok_or_else(|| TfError::NotFound { path: self.prefix.clone(), tensor: name.to_string() })?;
        Ok((&self.tensors[i], &self.layouts[i]))
    }

    fn too_large(&self, name: &str) -> TfError {
        TfError::TooLarge { path: self.prefix.clone(), tensor: name.to_string() }
    }
}

/// Reverses the bytes of every `unit`-wide element.
fn swap_bytes(bytes: &mut [u8], unit: usize) {
    if unit > 1 {
        for chunk in bytes.chunks_exact_mut(unit) {
            chunk.reverse();
        }
    }
}

impl CheckpointSource for TfSource {
    fn format(&self) -> Format {
        Format::Tf
    }

    fn path(&self) -> &Path {
        &self.prefix
    }

    fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// Rows `rows` of a numeric tensor, little-endian.
    fn read_rows(&self, name: &str, rows: Range<u64>) -> warmstart_core::Result<Cow<'_, [u8]>> {
        let (info, layout) = self.layout(name)?;
        let Some(width) = info.dtype.size() else {
            return Err(
                TfError::WrongDType { path: self.prefix.clone(), tensor: name.to_string(), dtype: info.dtype }.into()
            );
        };
        let total_rows = info.rows();
        if rows.start > rows.end || rows.end > total_rows {
            return Err(TfError::RowsOutOfRange {
                path: self.prefix.clone(),
                tensor: name.to_string(),
                start: rows.start,
                end: rows.end,
                rows: total_rows,
            }
            .into());
        }
        if rows.start == rows.end {
            // No rows, including every read of a tensor with no rows, whose row size may overflow
            // (shape [0, 2^62] is a valid empty tensor).
            return Ok(Cow::Borrowed(&[]));
        }
        let row_bytes = info.row_bytes().ok_or_else(|| self.too_large(name))?;
        match layout {
            Layout::Whole(stored) => {
                let bytes = self.verified(name, stored)?;
                // Within the entry: its size was checked against rows x row_bytes at open.
                let start = (rows.start * row_bytes) as usize;
                let end = (rows.end * row_bytes) as usize;
                let part = &bytes[start..end];
                if self.big_endian {
                    let mut owned = part.to_vec();
                    swap_bytes(&mut owned, swap_unit(info.dtype));
                    Ok(Cow::Owned(owned))
                } else {
                    Ok(Cow::Borrowed(part))
                }
            }
            Layout::Sliced(parts) => {
                let mut out = self.assemble(name, info, width, parts, rows)?;
                if self.big_endian {
                    swap_bytes(&mut out, swap_unit(info.dtype));
                }
                Ok(Cow::Owned(out))
            }
        }
    }

    /// A tensor stored whole, little-endian.
    fn stores_crc32c(&self, name: &str) -> bool {
        !self.big_endian
            && self
                .layout(name)
                .is_ok_and(|(info, layout)| info.dtype.size().is_some() && matches!(layout, Layout::Whole(_)))
    }

    /// Rows of a tensor stored whole, little-endian, without verifying its checksum first.
    fn read_rows_unverified(&self, name: &str, rows: Range<u64>) -> warmstart_core::Result<Cow<'_, [u8]>> {
        if !self.stores_crc32c(name) {
            return self.read_rows(name, rows);
        }
        let (info, layout) = self.layout(name)?;
        let Layout::Whole(stored) = layout else { return self.read_rows(name, rows) };
        let total_rows = info.rows();
        if rows.start > rows.end || rows.end > total_rows {
            let (path, tensor) = (self.prefix.clone(), name.to_string());
            return Err(
                TfError::RowsOutOfRange { path, tensor, start: rows.start, end: rows.end, rows: total_rows }.into()
            );
        }
        if rows.start == rows.end {
            return Ok(Cow::Borrowed(&[]));
        }
        let row_bytes = info.row_bytes().ok_or_else(|| self.too_large(name))?;
        let shard = &self.shards[stored.shard];
        // Within the entry: its size was checked against rows x row_bytes at open.
        let start = stored.offset + (rows.start * row_bytes) as usize;
        let end = stored.offset + (rows.end * row_bytes) as usize;
        Ok(Cow::Borrowed(&shard.bytes()[start..end]))
    }

    /// A tensor stored whole, little-endian: its run in its data shard.
    fn stored_bytes(&self, name: &str) -> Option<warmstart_core::StoredBytes<'_>> {
        let (_, Layout::Whole(stored)) = self.layout(name).ok()? else { return None };
        let shard = &self.shards[stored.shard];
        self.stores_crc32c(name).then(|| warmstart_core::StoredBytes {
            file: shard.map.file(),
            path: &shard.path,
            offset: stored.offset as u64,
            len: stored.size as u64,
        })
    }

    /// The entry's CRC32C, once the tensor's bytes are verified against it (for a tensor stored
    /// whole, little-endian: the bytes `read` returns).
    fn checked_crc32c(&self, name: &str) -> warmstart_core::Result<Option<u32>> {
        let (info, layout) = self.layout(name)?;
        match layout {
            Layout::Whole(stored) if self.stores_crc32c(name) => {
                self.verified(name, stored)?;
                Ok(Some(crate::table::unmask_crc(stored.crc)))
            }
            _ => {
                self.read_rows(name, 0..info.rows().min(1))?;
                Ok(None)
            }
        }
    }

    fn verify_crc32c(&self, name: &str, crc32c: u32) -> warmstart_core::Result<()> {
        let (_, layout) = self.layout(name)?;
        let Layout::Whole(stored) = layout else { return Ok(()) };
        self.check_given(name, stored, crc32c)
    }

    /// The elements of a DT_STRING tensor.
    fn read_strings(&self, name: &str) -> warmstart_core::Result<Vec<Vec<u8>>> {
        let (info, layout) = self.layout(name)?;
        if info.dtype != DType::String {
            return Err(
                TfError::WrongDType { path: self.prefix.clone(), tensor: name.to_string(), dtype: info.dtype }.into()
            );
        }
        let Layout::Whole(stored) = layout else {
            return Err(TfError::BadSlice {
                path: self.index_path.clone(),
                tensor: name.to_string(),
                reason: "string tensors cannot be read from slices".into(),
            }
            .into());
        };
        let shard = &self.shards[stored.shard];
        let bytes = &shard.bytes()[stored.offset..stored.offset + stored.size];
        let count = info.num_elements().ok_or_else(|| self.too_large(name))?;
        let values = strings::decode(bytes, count, stored.crc);
        // A truncated shard reads zeros: that, not their checksum, is the error.
        shard.map.check_read()?;
        let values = values.map_err(|reason| TfError::BadStrings {
            path: shard.path.clone(),
            tensor: name.to_string(),
            reason,
        })?;
        Ok(values)
    }

    fn check_unchanged(&self) -> warmstart_core::Result<()> {
        self.shards.iter().try_for_each(|shard| shard.map.check_unchanged())
    }

    fn release(&self, name: &str, rows: Range<u64>) {
        self.for_each_run_of_rows(name, rows, |shard, bytes| shard.release(bytes));
    }

    fn slices(&self, name: &str) -> Option<Vec<Slice>> {
        match self.layout(name).ok()?.1 {
            Layout::Whole(_) => None,
            Layout::Sliced(parts) => Some(parts.iter().map(|(s, _)| s.clone()).collect()),
        }
    }

    fn graph(&self) -> Option<&GraphInfo> {
        self.graph.as_ref()
    }

    fn object_graph_keys(&self) -> warmstart_core::Result<Option<HashMap<String, String>>> {
        self.object_graph()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::dtype::{from_tf, TfDType};
    use crate::table::{build_table, mask_crc, read_table};
    use prost::Message;

    #[test]
    fn released_rows_read_back_the_same() {
        for (case, prefix) in [("tf1_partitioned", "model-0"), ("dtypes", "all")] {
            let ckpt = TfSource::open(&fixture(case, prefix)).unwrap();
            for info in ckpt.tensors.clone() {
                if info.dtype == DType::String {
                    continue;
                }
                let rows = info.rows();
                let before = ckpt.read_rows(&info.name, 0..rows).unwrap().into_owned();
                ckpt.release(&info.name, 0..rows);
                ckpt.release(&info.name, rows / 2..rows);
                // Out of range: ignored.
                ckpt.release(&info.name, 0..rows + 5);
                ckpt.release("no such tensor", 0..1);
                assert_eq!(ckpt.read_rows(&info.name, 0..rows).unwrap().into_owned(), before, "{case} {}", info.name);
            }
        }
    }

    #[test]
    fn unedited_copy_opens() {
        let (_dir, p) = edited("dtypes", "all", |_| {});
        assert_eq!(TfSource::open(&p).unwrap().tensors().len(), 25);
    }

    /// A caller hashing a tensor as it reads it unverified has its sum checked against the entry's: a
    /// wrong sum is the checksum error, the right one makes the tensor verified; only tensors stored
    /// whole and little-endian offer it.
    #[test]
    fn sums_given_by_callers_are_checked() {
        let (_dir, p) = edited("dtypes", "all", |x| edit_entry(x, b"f32", |e| e.crc32c ^= 1));
        let ckpt = TfSource::open(&p).unwrap();
        assert!(ckpt.stores_crc32c("f32") && !ckpt.stores_crc32c("str_vec") && !ckpt.stores_crc32c("none"));
        let rows = ckpt.tensor("f32").unwrap().rows();
        let bytes = ckpt.read_rows_unverified("f32", 0..rows).unwrap().into_owned();
        let e = ckpt.verify_crc32c("f32", crc32c::crc32c(&bytes)).unwrap_err();
        assert!(matches!(e.tf(), Some(TfError::TensorChecksum { tensor, .. }) if tensor == "f32"), "{e}");
        assert!(ckpt.read_rows("f32", 0..rows).is_err());
        let ckpt = TfSource::open(&fixture("dtypes", "all")).unwrap();
        let bytes = ckpt.read_rows_unverified("f32", 0..rows).unwrap().into_owned();
        assert!(ckpt.verify_crc32c("f32", crc32c::crc32c(&bytes) ^ 1).is_err());
        ckpt.verify_crc32c("f32", crc32c::crc32c(&bytes)).unwrap();
        assert_eq!(ckpt.checked_crc32c("f32").unwrap(), Some(crc32c::crc32c(&bytes)));
        let stored = ckpt.stored_bytes("f32").unwrap();
        let data = std::fs::read(fixture("dtypes", "all.data-00000-of-00001")).unwrap();
        assert_eq!(&data[stored.offset as usize..(stored.offset + stored.len) as usize], &bytes[..]);
        assert!(ckpt.stored_bytes("str_vec").is_none());
        assert_eq!(ckpt.read_rows("f32", 0..rows).unwrap(), bytes);
        assert!(ckpt.read_rows_unverified("f32", 0..rows + 1).is_err());
    }

    #[test]
    fn forged_string_counts() {
        let (_dir, p) =
            edited("dtypes", "all", |x| edit_entry(x, b"str_vec", |e| e.shape.as_mut().unwrap().dim[0].size = 1 << 50));
        let ckpt = TfSource::open(&p).unwrap();
        let e = ckpt.read_strings("str_vec").unwrap_err();
        assert!(matches!(e.tf(), Some(TfError::BadStrings { tensor, .. }) if tensor == "str_vec"), "{e}");
        let (_dir, p) = edited("dtypes", "all", |x| edit_entry(x, b"str_vec", |e| e.crc32c ^= 1));
        let e = TfSource::open(&p).unwrap().read_strings("str_vec").unwrap_err();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
    }

    #[test]
    fn big_endian_bundles_are_swapped() {
        let original = TfSource::open(&fixture("dtypes", "all")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let index = fixture("dtypes", "all.index");
        let mut entries = read_table(&index, &std::fs::read(&index).unwrap()).unwrap();
        let mut data = std::fs::read(fixture("dtypes", "all.data-00000-of-00001")).unwrap();
        edit_header(&mut entries, |h| h.endianness = 1);
        for (key, value) in entries.iter_mut().skip(1) {
            let mut e = BundleEntryProto::decode(value.as_slice()).unwrap();
            let TfDType::Known(dtype) = from_tf(e.dtype) else { panic!() };
            if dtype == DType::String {
                continue;
            }
            let range = e.offset as usize..(e.offset + e.size) as usize;
            swap_bytes(&mut data[range.clone()], swap_unit(dtype));
            e.crc32c = mask_crc(crc32c::crc32c(&data[range]));
            *value = e.encode_to_vec();
            let _ = key;
        }
        std::fs::write(dir.path().join("be.index"), build_table(&entries)).unwrap();
        std::fs::write(dir.path().join("be.data-00000-of-00001"), &data).unwrap();
        let be = TfSource::open(&dir.path().join("be")).unwrap();
        assert!(be.is_big_endian());
        let mut numeric = 0;
        for t in original.tensors() {
            if t.dtype != DType::String {
                assert_eq!(
                    be.read_rows(&t.name, 0..t.rows()).unwrap(),
                    original.read_rows(&t.name, 0..t.rows()).unwrap(),
                    "{}",
                    t.name
                );
                numeric += 1;
            }
        }
        assert!(numeric > 10);
    }
}
