//! [`NumpySource`]: an `.npz` archive (`np.savez`, `np.savez_compressed`) or a single `.npy` file,
//! served as row ranges. The file is mapped through the guarded [`InputMap`]. A stored member that
//! is C-order and little-endian is read in place from the map; a deflated member is inflated at open
//! to the size its header gives (checked against what deflate can give from its compressed bytes),
//! and Fortran-order or big-endian arrays are converted into memory at open.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use warmstart_core::mapped::InputMap;
use warmstart_core::{CheckpointSource, Error, Format, Result, TensorInfo};
use zip::CompressionMethod;

use crate::header::{self, Ctx, Header};
use crate::NumpyError;

/// The most deflate inflates one compressed byte to (zlib's technical limit is 1032:1).
const MAX_DEFLATE_RATIO: u64 = 1032;

/// The most reserved up front for a member being inflated.
const MAX_RESERVE: usize = 64 << 20;

/// A NumPy file opened for reading.
#[derive(Debug)]
pub struct NumpySource {
    path: PathBuf,
    map: InputMap,
    tensors: Vec<TensorInfo>,
    data: Vec<Data>,
    by_name: HashMap<String, usize>,
}

/// Where a tensor's row-major little-endian bytes are.
#[derive(Debug)]
enum Data {
    /// In the map, in place.
    Mapped(Range<usize>),
    /// Inflated or converted at open.
    Owned(Vec<u8>),
}

impl NumpySource {
    /// Opens an `.npz` archive or a `.npy` file (told apart by content: the `.npy` magic or a zip).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let map = InputMap::open(&path).map_err(|e| Error::io(&path, e))?;
        let members = if map.starts_with(header::MAGIC) {
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let ctx = Ctx { path: &path, member: &name };
            let range = 0..map.len();
            vec![locate(&map[..], range, ctx)?]
        } else {
            read_archive(&path, &map)?
        };
        // A file truncated while being opened read zeros: say so rather than what the zeros mean.
        map.check_read()?;
        let mut tensors = Vec::with_capacity(members.len());
        let mut data = Vec::with_capacity(members.len());
        let mut by_name = HashMap::with_capacity(members.len());
        for (info, bytes) in members {
            // Names are unique: the zip library keeps the last of members named alike, as Python's
            // zipfile (so np.load) does.
            by_name.insert(info.name.clone(), tensors.len());
            tensors.push(info);
            data.push(bytes);
        }
        Ok(NumpySource { path, map, tensors, data, by_name })
    }

    /// The bytes of tensor `index`.
    fn bytes(&self, index: usize) -> &[u8] {
        match &self.data[index] {
            Data::Mapped(range) => &self.map[range.clone()],
            Data::Owned(bytes) => bytes,
        }
    }
}

/// Every `.npy` member of the archive in `map`, in archive order, as tensors.
fn read_archive(path: &Path, map: &[u8]) -> Result<Vec<(TensorInfo, Data)>> {
    let bad_archive = |e: zip::result::ZipError| NumpyError::BadArchive { path: path.to_path_buf(), source: e.into() };
    let mut archive = zip::ZipArchive::new(Cursor::new(map)).map_err(bad_archive)?;
    let mut members = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let file = archive.by_index_raw(i).map_err(bad_archive)?;
        let member = file.name().map_err(bad_archive)?.into_owned();
        if file.is_dir() {
            continue;
        }
        let Some(name) = member.strip_suffix(".npy").map(str::to_string) else {
            return Err(NumpyError::NotNpyMember { path: path.to_path_buf(), member }.into());
        };
        if file.encrypted() {
            return Err(NumpyError::Encrypted { path: path.to_path_buf(), member }.into());
        }
        let ctx = Ctx { path, member: &member };
        let bad_member = |why: String| NumpyError::BadMember {
            path: path.to_path_buf(),
            member: member.clone(),
            source: why.into(),
        };
        let (start, compressed, size) = (file.data_start().unwrap_or(u64::MAX), file.compressed_size(), file.size());
        let located = match file.compression() {
            CompressionMethod::Stored => {
                if compressed != size {
                    return Err(bad_member(format!("stored with {compressed} bytes but {size} uncompressed")).into());
                }
                let range = usize::try_from(start)
                    .ok()
                    .zip(usize::try_from(size).ok())
                    .and_then(|(s, n)| Some(s..s.checked_add(n)?))
                    .filter(|r| r.end <= map.len())
                    .ok_or_else(|| bad_member(format!("its {size} bytes at {start} run past the archive's end")))?;
                locate(map, range, ctx)?
            }
            CompressionMethod::Deflated => {
                drop(file);
                let reader = archive.by_index(i).map_err(|e| bad_member(e.to_string()))?;
                inflate(reader, compressed, size, ctx)?
            }
            method => {
                let method = format!("{method:?}");
                return Err(NumpyError::UnsupportedCompression { path: path.to_path_buf(), member, method }.into());
            }
        };
        members.push((TensorInfo { name, ..located.0 }, located.1));
    }
    Ok(members)
}

/// The tensor of the `.npy` at `range` of `map`: in place if C-order little-endian, else converted.
fn locate(map: &[u8], range: Range<usize>, ctx: Ctx<'_>) -> Result<(TensorInfo, Data)> {
    let bytes = &map[range.clone()];
    let header = header::parse(bytes, ctx)?;
    let data = check_data_len(&header, bytes.len(), ctx)?;
    let info = TensorInfo::new(ctx.member, header.dtype, header.shape.clone());
    let data_range = range.start + header.data_offset..range.start + header.data_offset + data;
    let data = if needs_conversion(&header) {
        Data::Owned(convert(&header, &map[data_range]))
    } else {
        Data::Mapped(data_range)
    };
    Ok((info, data))
}

/// The data length dtype and shape give, if the `total` bytes of the `.npy` hold exactly that.
fn check_data_len(header: &Header, total: usize, ctx: Ctx<'_>) -> Result<usize> {
    let actual = (total - header.data_offset) as u64;
    let expected = header.data_len();
    if expected != Some(actual) {
        let shape = header.shape.clone();
        let (path, member) = (ctx.path.to_path_buf(), ctx.member.to_string());
        return Err(NumpyError::DataSizeMismatch { path, member, shape, expected, actual }.into());
    }
    // Equal to a length that fits in memory.
    Ok(actual as usize)
}

/// Inflates a deflated member of `size` bytes (as the archive records) from `compressed` bytes: its
/// header first, then exactly the data its header gives, once that is found possible.
fn inflate(mut reader: impl Read, compressed: u64, size: u64, ctx: Ctx<'_>) -> Result<(TensorInfo, Data)> {
    let bad = |e: std::io::Error| NumpyError::BadMember {
        path: ctx.path.to_path_buf(),
        member: ctx.member.to_string(),
        source: e.into(),
    };
    let mut head = Vec::with_capacity(12);
    (&mut reader).take(12).read_to_end(&mut head).map_err(bad)?;
    let prefix = header::prefix_len(&head, ctx)?;
    (&mut reader).take((prefix - head.len().min(prefix)) as u64).read_to_end(&mut head).map_err(bad)?;
    let header = header::parse(&head, ctx)?;
    let claimed = header.data_len().and_then(|d| d.checked_add(prefix as u64));
    let size_err = |claimed: u64, why| NumpyError::InflatedSize {
        path: ctx.path.to_path_buf(),
        member: ctx.member.to_string(),
        claimed,
        compressed,
        why,
    };
    let Some(claimed) = claimed.filter(|&c| c == size) else {
        return Err(size_err(claimed.unwrap_or(u64::MAX), "the archive records another size").into());
    };
    if claimed > compressed.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(1024) {
        return Err(size_err(claimed, "more than deflate can give").into());
    }
    let data_len = usize::try_from(claimed - prefix as u64)
        .map_err(|_| Error::TooLarge { path: ctx.path.to_path_buf(), name: ctx.member.to_string() })?;
    // Grown as bytes arrive, not reserved whole: the sizes are consistent but not yet shown true.
    let mut data = Vec::with_capacity(data_len.min(MAX_RESERVE));
    // One byte more than due, to find a member longer than its header says.
    reader.take(data_len as u64 + 1).read_to_end(&mut data).map_err(bad)?;
    check_data_len(&header, prefix + data.len(), ctx)?;
    let info = TensorInfo::new(ctx.member, header.dtype, header.shape.clone());
    let data = if needs_conversion(&header) { convert(&header, &data) } else { data };
    Ok((info, Data::Owned(data)))
}

/// Whether the data must be reordered or swapped to be row-major little-endian.
fn needs_conversion(header: &Header) -> bool {
    header.big_endian || (header.fortran_order && header.shape.len() > 1)
}

/// Row-major little-endian bytes of the data of `header`.
fn convert(header: &Header, data: &[u8]) -> Vec<u8> {
    let size = header.dtype.size().unwrap_or(1);
    let mut out = if header.fortran_order && header.shape.len() > 1 {
        transpose(data, &header.shape, size)
    } else {
        data.to_vec()
    };
    if header.big_endian {
        out.chunks_exact_mut(size).for_each(<[u8]>::reverse);
    }
    out
}

/// The row-major order of column-major `data` of `shape`, elements of `size` bytes.
fn transpose(data: &[u8], shape: &[u64], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    if data.is_empty() {
        return out;
    }
    // The column-major strides, in elements; the sizes fit, as the data does.
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let mut strides = vec![1usize; dims.len()];
    for i in 1..dims.len() {
        strides[i] = strides[i - 1] * dims[i - 1];
    }
    let mut index = vec![0usize; dims.len()];
    let mut offset = 0usize;
    loop {
        out.extend_from_slice(&data[offset * size..(offset + 1) * size]);
        // The next row-major index: the last axis moves fastest.
        let mut axis = dims.len();
        loop {
            if axis == 0 {
                return out;
            }
            axis -= 1;
            index[axis] += 1;
            offset += strides[axis];
            if index[axis] < dims[axis] {
                break;
            }
            offset -= strides[axis] * dims[axis];
            index[axis] = 0;
        }
    }
}

impl NumpySource {
    /// The index of `name` and its byte range for `rows`.
    fn rows_range(&self, name: &str, rows: &Range<u64>) -> Result<(usize, Range<usize>)> {
        let index = *self
            .by_name
            .get(name)
            .ok_or_else(|| Error::TensorNotFound { path: self.path.clone(), name: name.into() })?;
        let info = &self.tensors[index];
        let total = info.rows();
        let out_of_range = || Error::RowsOutOfRange {
            path: self.path.clone(),
            name: name.to_string(),
            start: rows.start,
            end: rows.end,
            rows: total,
        };
        if rows.start > rows.end || rows.end > total {
            return Err(out_of_range());
        }
        if rows.start == rows.end {
            return Ok((index, 0..0));
        }
        let row_bytes =
            info.row_bytes().ok_or_else(|| Error::TooLarge { path: self.path.clone(), name: name.into() })?;
        let at = |row: u64| row.checked_mul(row_bytes).and_then(|b| usize::try_from(b).ok()).ok_or_else(out_of_range);
        Ok((index, at(rows.start)?..at(rows.end)?))
    }
}

impl CheckpointSource for NumpySource {
    fn format(&self) -> Format {
        Format::Numpy
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    fn read_rows(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>> {
        let (index, range) = self.rows_range(name, &rows)?;
        if range.is_empty() {
            return Ok(Cow::Borrowed(&[]));
        }
        self.map.check_read()?;
        let out_of_range = || Error::RowsOutOfRange {
            path: self.path.clone(),
            name: name.to_string(),
            start: rows.start,
            end: rows.end,
            rows: self.tensors[index].rows(),
        };
        self.bytes(index).get(range).map(Cow::Borrowed).ok_or_else(out_of_range)
    }

    fn release(&self, name: &str, rows: Range<u64>) {
        if let Ok((index, range)) = self.rows_range(name, &rows) {
            if let Data::Mapped(at) = &self.data[index] {
                self.map.release(at.start + range.start..at.start + range.end);
            }
        }
    }

    fn check_unchanged(&self) -> Result<()> {
        self.map.check_unchanged()
    }
}

#[cfg(test)]
mod tests;
