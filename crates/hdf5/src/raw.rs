//! The few operations the high-level bindings do not offer, on the HDF5 C API: element-type mapping,
//! row hyperslab reads and writes straight into byte buffers, string reads of any kind, and copying an
//! attribute with its own datatype (what copying a Keras layout needs).
//!
//! Every call holds the bindings' library lock; every buffer handed to the library is sized from the
//! type and dataspace the library reports, checked for overflow first.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;

use hdf5::types::{CompoundField, CompoundType, FloatSize, IntSize, TypeDescriptor as TD};
use hdf5::{Attribute, Dataset, Dataspace, Datatype, Hyperslab, Location, Selection, SliceOrIndex};
use hdf5_sys::h5a::{H5Acreate2, H5Aget_space, H5Aget_type, H5Aread, H5Awrite};
use hdf5_sys::h5d::{H5Dread, H5Dwrite};
use hdf5_sys::h5i::hid_t;
use hdf5_sys::h5p::H5P_DEFAULT;
use hdf5_sys::h5s::{H5Sget_simple_extent_npoints, H5S_ALL};
use hdf5_sys::h5t::{H5T_class_t, H5Tcreate, H5Tdetect_class, H5Tget_class, H5Tget_size, H5Tis_variable_str};
use warmstart_core::DType;

use crate::heaps::GlobalHeaps;

/// Attribute values larger than this are refused rather than allocated (Keras' largest, a model
/// config, is a few megabytes).
const MAX_ATTRIBUTE_BYTES: u64 = 1 << 30;

/// The warmstart dtype of an HDF5 element type, or `None` if it has none.
pub(crate) fn dtype_of(desc: &TD) -> Option<DType> {
    Some(match desc {
        TD::Boolean => DType::Bool,
        TD::Integer(IntSize::U1) => DType::I8,
        TD::Integer(IntSize::U2) => DType::I16,
        TD::Integer(IntSize::U4) => DType::I32,
        TD::Integer(IntSize::U8) => DType::I64,
        TD::Unsigned(IntSize::U1) => DType::U8,
        TD::Unsigned(IntSize::U2) => DType::U16,
        TD::Unsigned(IntSize::U4) => DType::U32,
        TD::Unsigned(IntSize::U8) => DType::U64,
        TD::Float(FloatSize::U2) => DType::F16,
        TD::Float(FloatSize::U4) => DType::F32,
        TD::Float(FloatSize::U8) => DType::F64,
        TD::Compound(c) => match complex_part(c)? {
            FloatSize::U4 => DType::C64,
            FloatSize::U8 => DType::C128,
            FloatSize::U2 => return None,
        },
        TD::FixedAscii(_) | TD::FixedUnicode(_) | TD::VarLenAscii | TD::VarLenUnicode => DType::String,
        _ => return None,
    })
}

/// For h5py's complex numbers (a packed compound of two floats named `r` and `i`), the float size.
fn complex_part(c: &CompoundType) -> Option<FloatSize> {
    let [re, im] = c.fields.as_slice() else { return None };
    match (&re.ty, &im.ty) {
        (TD::Float(a), TD::Float(b)) if a == b => {
            let size = re.ty.size();
            let packed = re.offset == 0 && im.offset == size && c.size == 2 * size;
            (re.name == "r" && im.name == "i" && packed).then_some(*a)
        }
        _ => None,
    }
}

/// The HDF5 element type for a numeric dtype, as h5py writes it (native order, which this crate only
/// builds for on little-endian hosts), or `None` for dtypes h5py has no type for.
pub(crate) fn descriptor_for(dtype: DType) -> Option<TD> {
    let complex = |size: FloatSize| {
        let part = TD::Float(size);
        let n = part.size();
        TD::Compound(CompoundType {
            fields: vec![
                CompoundField { name: "r".into(), ty: part.clone(), offset: 0, index: 0 },
                CompoundField { name: "i".into(), ty: part, offset: n, index: 1 },
            ],
            size: 2 * n,
        })
    };
    Some(match dtype {
        DType::Bool => TD::Boolean,
        DType::I8 => TD::Integer(IntSize::U1),
        DType::I16 => TD::Integer(IntSize::U2),
        DType::I32 => TD::Integer(IntSize::U4),
        DType::I64 => TD::Integer(IntSize::U8),
        DType::U8 => TD::Unsigned(IntSize::U1),
        DType::U16 => TD::Unsigned(IntSize::U2),
        DType::U32 => TD::Unsigned(IntSize::U4),
        DType::U64 => TD::Unsigned(IntSize::U8),
        DType::F16 => TD::Float(FloatSize::U2),
        DType::F32 => TD::Float(FloatSize::U4),
        DType::F64 => TD::Float(FloatSize::U8),
        DType::C64 => complex(FloatSize::U4),
        DType::C128 => complex(FloatSize::U8),
        DType::String => TD::VarLenUnicode,
        _ => return None,
    })
}

/// The attribute Keras names an opaque dataset's element type with.
pub(crate) const KERAS_DTYPE_ATTRIBUTE: &str = "dtype";

/// The dtypes h5py has no type for, which Keras stores as an opaque type of their size marked with a
/// `dtype` attribute of these names (numpy's `ml_dtypes` names): Keras 3.15 marks bfloat16 so, and
/// warmstart the float8 types it has too (Keras writes float8_e4m3fn unmarked, and cannot write
/// float8_e5m2 at all).
const KERAS_OPAQUE: [(DType, &str); 3] =
    [(DType::BF16, "bfloat16"), (DType::F8E4M3, "float8_e4m3fn"), (DType::F8E5M2, "float8_e5m2")];

/// The `dtype` attribute value Keras marks `dtype` with, for a dtype stored as an opaque type.
pub(crate) fn keras_opaque_name(dtype: DType) -> Option<&'static str> {
    KERAS_OPAQUE.iter().find(|(d, _)| *d == dtype).map(|(_, n)| *n)
}

/// The dtype of an opaque type of `size` bytes marked `dtype=name`.
pub(crate) fn keras_opaque_dtype(name: &[u8], size: usize) -> Option<DType> {
    KERAS_OPAQUE.iter().find(|(d, n)| n.as_bytes() == name && d.size() == Some(size)).map(|(d, _)| *d)
}

/// The size of `file_type` if it is an opaque type.
pub(crate) fn opaque_size(file_type: &Datatype) -> Option<usize> {
    // Every call into the library holds its lock (it is not built thread-safe).
    let _lock = hdf5_sys::LOCK.lock();
    // SAFETY: a query on a valid type id.
    let class = unsafe { H5Tget_class(file_type.id()) };
    (class == H5T_class_t::H5T_OPAQUE).then(|| file_type.size())
}

/// A new opaque type of `size` bytes, without a tag (as h5py writes numpy's void types).
pub(crate) fn opaque_type(size: usize) -> hdf5::Result<Datatype> {
    let _lock = hdf5_sys::LOCK.lock();
    // SAFETY: creates a new type; its id is owned by the wrapper.
    unsafe { hdf5::from_id(hdf5::h5check(H5Tcreate(H5T_class_t::H5T_OPAQUE, size))?) }
}

/// The memory type `dtype`'s bytes are read and written with: the HDF5 type h5py has for it, or for
/// a Keras opaque dtype, the dataset's own opaque type (no conversion). `None` for strings and dtypes
/// with neither.
pub(crate) fn memory_type(dataset: &Dataset, dtype: DType) -> hdf5::Result<Option<Datatype>> {
    if dtype == DType::String {
        return Ok(None);
    }
    if keras_opaque_name(dtype).is_some() {
        let own = dataset.dtype()?;
        return Ok((opaque_size(&own) == dtype.size()).then_some(own));
    }
    descriptor_for(dtype).map(|desc| Datatype::from_descriptor(&desc)).transpose()
}

/// The hyperslab of rows `start..start + count` of a dataset of `shape` (at least one dimension).
fn rows_selection(shape: &[usize], start: usize, count: usize) -> Selection {
    let mut dims = vec![SliceOrIndex::SliceCount { start, step: 1, count, block: 1 }];
    dims.extend(shape[1..].iter().map(|&n| SliceOrIndex::SliceCount { start: 0, step: 1, count: n, block: 1 }));
    Selection::from(Hyperslab::from(dims))
}

/// A memory and a file dataspace id, and the dataspaces that keep them alive (none for a scalar).
type RowSpaces = (hid_t, hid_t, Option<(Dataspace, Dataspace)>);

/// The (memory, file) dataspace ids for rows `start..start + count` of a dataset of `shape`, after
/// checking that a buffer of `len` bytes holds exactly that many `mem` elements; `H5S_ALL` twice for a
/// scalar. The dataspaces are returned too, to keep the ids alive while they are used.
fn row_spaces(
    dataset: &Dataset,
    mem: &Datatype,
    shape: &[usize],
    start: usize,
    count: usize,
    len: usize,
) -> hdf5::Result<RowSpaces> {
    if shape.is_empty() {
        check_len(len, 1, mem)?;
        return Ok((H5S_ALL, H5S_ALL, None));
    }
    let file_space = dataset.space()?.select(rows_selection(shape, start, count))?;
    let mut mem_shape = shape.to_vec();
    mem_shape[0] = count;
    let mem_space = Dataspace::try_new(mem_shape)?;
    check_len(len, mem_space.size(), mem)?;
    Ok((mem_space.id(), file_space.id(), Some((mem_space, file_space))))
}

/// Reads rows `start..start + count` of `dataset` (of `shape`; a scalar when empty) as `mem` elements
/// into `out`, which must hold exactly that many elements.
pub(crate) fn read_rows(
    dataset: &Dataset,
    mem: &Datatype,
    shape: &[usize],
    start: usize,
    count: usize,
    out: &mut [u8],
) -> hdf5::Result<()> {
    let _lock = hdf5_sys::LOCK.lock();
    let (mem_space, file_space, _keep) = row_spaces(dataset, mem, shape, start, count, out.len())?;
    // SAFETY: `out` holds exactly the selected elements of `mem` (checked by `row_spaces`).
    hdf5::h5check(unsafe {
        H5Dread(dataset.id(), mem.id(), mem_space, file_space, H5P_DEFAULT, out.as_mut_ptr().cast())
    })?;
    Ok(())
}

/// Writes `bytes`, rows `start..start + count` of `dataset` (of `shape`; a scalar when empty) as `mem`
/// elements.
pub(crate) fn write_rows(
    dataset: &Dataset,
    mem: &Datatype,
    shape: &[usize],
    start: usize,
    count: usize,
    bytes: &[u8],
) -> hdf5::Result<()> {
    let _lock = hdf5_sys::LOCK.lock();
    let (mem_space, file_space, _keep) = row_spaces(dataset, mem, shape, start, count, bytes.len())?;
    // SAFETY: `bytes` holds exactly the selected elements of `mem` (checked by `row_spaces`).
    hdf5::h5check(unsafe {
        H5Dwrite(dataset.id(), mem.id(), mem_space, file_space, H5P_DEFAULT, bytes.as_ptr().cast())
    })?;
    Ok(())
}

fn check_len(len: usize, elements: usize, mem: &Datatype) -> hdf5::Result<()> {
    match elements.checked_mul(mem.size()) {
        Some(n) if n == len => Ok(()),
        _ => Err(format!("buffer of {len} bytes for {elements} elements of {} bytes", mem.size()).into()),
    }
}

/// An object whose values can be read whole with a given memory type: a dataset or an attribute.
#[derive(Clone, Copy)]
pub(crate) enum Values<'a> {
    /// A dataset, read whole.
    Dataset(&'a Dataset),
    /// An attribute.
    Attribute(&'a Attribute),
}

impl Values<'_> {
    fn file_type(self) -> hdf5::Result<Datatype> {
        match self {
            Values::Dataset(d) => d.dtype(),
            Values::Attribute(a) => a.dtype(),
        }
    }

    fn space(self) -> hdf5::Result<Dataspace> {
        match self {
            Values::Dataset(d) => d.space(),
            Values::Attribute(a) => a.space(),
        }
    }

    /// # Safety
    /// `buf` must hold the object's every element of `mem`'s size.
    unsafe fn read_into(self, mem: hid_t, buf: *mut u8) -> hdf5::Result<()> {
        let status = match self {
            // SAFETY: the caller guarantees that `buf` holds every element of the dataset in `mem`; the
            // id is the open dataset's own, and H5S_ALL reads the whole of it.
            Values::Dataset(d) => unsafe { H5Dread(d.id(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.cast()) },
            // SAFETY: the caller guarantees that `buf` holds every element of the attribute in `mem`.
            Values::Attribute(a) => unsafe { H5Aread(a.id(), mem, buf.cast()) },
        };
        hdf5::h5check(status)?;
        Ok(())
    }
}

/// A zeroed buffer of `len` bytes aligned for pointers (variable-length values are read as pointers).
fn aligned_buffer(len: u64) -> hdf5::Result<Vec<u64>> {
    if len > MAX_ATTRIBUTE_BYTES {
        return Err(format!("{len} bytes of values is more than this reader allocates").into());
    }
    Ok(vec![0u64; (len as usize).div_ceil(8).max(1)])
}

fn byte_len(elements: u64, size: usize) -> hdf5::Result<u64> {
    elements
        .checked_mul(size as u64)
        .ok_or_else(|| hdf5::Error::from(format!("{elements} elements of {size} bytes overflow")))
}

/// Whether values of type `id` hold pointers the library allocated (variable-length strings or
/// sequences), which must be reclaimed after a read.
fn has_variable_length(id: hid_t) -> bool {
    // SAFETY: plain queries on a valid type id.
    unsafe {
        H5Tdetect_class(id, H5T_class_t::H5T_VLEN) > 0
            || (H5Tget_class(id) == H5T_class_t::H5T_STRING && H5Tis_variable_str(id) > 0)
    }
}

/// Frees what the library allocated for the variable-length values read into `buf`.
///
/// # Safety
/// `buf` must hold values of type `type_id` over `space_id` just read by the library.
unsafe fn reclaim(type_id: hid_t, space_id: hid_t, buf: *mut u8) {
    // SAFETY: the caller guarantees that `buf` holds values of `type_id` over `space_id` that the
    // library just read, so the pointers in it are the library's own allocations, freed once here.
    unsafe { hdf5_sys::h5t::H5Treclaim(type_id, space_id, H5P_DEFAULT, buf.cast()) };
}

/// The elements of a string dataset or attribute (fixed or variable length, either charset), in
/// row-major order; a fixed-length value loses its trailing NUL padding.
/// `heaps` is checked before a variable-length value is read.
pub(crate) fn read_strings(obj: Values<'_>, heaps: &GlobalHeaps) -> hdf5::Result<Vec<Vec<u8>>> {
    let _lock = hdf5_sys::LOCK.lock();
    let file_type = obj.file_type()?;
    let space = obj.space()?;
    let n = space.size() as u64;
    // SAFETY: queries on valid ids.
    let (class, variable) = unsafe { (H5Tget_class(file_type.id()), H5Tis_variable_str(file_type.id()) > 0) };
    if class != H5T_class_t::H5T_STRING {
        return Err("not a string type".into());
    }
    if variable {
        heaps.check()?;
        let len = byte_len(n, std::mem::size_of::<*const c_char>())?;
        let mut buf = aligned_buffer(len)?;
        let ptr = buf.as_mut_ptr().cast::<u8>();
        // SAFETY: `buf` holds `n` pointers, the memory form of a variable-length string.
        unsafe { obj.read_into(file_type.id(), ptr)? };
        let pointers = ptr.cast::<*const c_char>();
        let values = (0..n as usize)
            .map(|i| {
                // SAFETY: the library wrote `n` pointers, each null or to a NUL-terminated string.
                let p = unsafe { pointers.add(i).read() };
                if p.is_null() {
                    Vec::new()
                } else {
                    // SAFETY: `p` is not null, so the library wrote a pointer to a NUL-terminated string,
                    // which stays allocated until `reclaim` below.
                    unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()
                }
            })
            .collect();
        // SAFETY: `buf` holds what the library just read with this type over this space.
        unsafe { reclaim(file_type.id(), space.id(), ptr) };
        Ok(values)
    } else {
        let size = file_type.size();
        let len = byte_len(n, size)?;
        let mut buf = aligned_buffer(len)?;
        let ptr = buf.as_mut_ptr().cast::<u8>();
        // SAFETY: `buf` holds `n` values of `size` bytes.
        unsafe { obj.read_into(file_type.id(), ptr)? };
        // SAFETY: `buf` has at least `len` initialized bytes.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, len as usize) };
        Ok(bytes
            .chunks(size.max(1))
            .take(n as usize)
            .map(|v| {
                let end = v.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                v[..end].to_vec()
            })
            .collect())
    }
}

/// Copies every attribute of `from` to `to`, each with its own datatype and dataspace. Attributes
/// holding object references (which would point into the other file) are left out.
pub(crate) fn copy_attributes(
    from: &Location,
    to: &Location,
    heaps: &GlobalHeaps,
) -> Result<(), (String, hdf5::Error)> {
    let names = from.attr_names().map_err(|e| ("attribute names".to_string(), e))?;
    for name in names {
        copy_attribute(from, to, &name, heaps).map_err(|e| (format!("attribute {name:?}"), e))?;
    }
    Ok(())
}

fn copy_attribute(from: &Location, to: &Location, name: &str, heaps: &GlobalHeaps) -> hdf5::Result<()> {
    let _lock = hdf5_sys::LOCK.lock();
    let attr = from.attr(name)?;
    // SAFETY: a query on a valid attribute id; the returned type id is owned by the wrapper.
    let file_type: Datatype = unsafe { hdf5::from_id(hdf5::h5check(H5Aget_type(attr.id()))?)? };
    // SAFETY: a query on a valid attribute id; the returned dataspace id is owned by the wrapper.
    let space: Dataspace = unsafe { hdf5::from_id(hdf5::h5check(H5Aget_space(attr.id()))?)? };
    // SAFETY: a query on the valid type id just obtained.
    if unsafe { H5Tdetect_class(file_type.id(), H5T_class_t::H5T_REFERENCE) } > 0 {
        return Ok(());
    }
    // SAFETY: a query on the valid dataspace id just obtained.
    let n = hdf5::h5check(unsafe { H5Sget_simple_extent_npoints(space.id()) })?;
    // SAFETY: a query on the valid type id just obtained.
    let size = unsafe { H5Tget_size(file_type.id()) };
    if size == 0 {
        return Err("attribute type has no size".into());
    }
    let len = byte_len(u64::try_from(n).map_err(|_| hdf5::Error::from("negative element count"))?, size)?;
    if has_variable_length(file_type.id()) {
        heaps.check()?;
    }
    let mut buf = aligned_buffer(len)?;
    let ptr = buf.as_mut_ptr().cast::<u8>();
    // SAFETY: `buf` holds every element of the attribute in its own type.
    hdf5::h5check(unsafe { H5Aread(attr.id(), file_type.id(), ptr.cast()) })?;
    let written = (|| {
        let cname = CString::new(name).map_err(|_| hdf5::Error::from("attribute name holds a NUL"))?;
        // SAFETY: valid location, type and space ids; the new attribute id is owned by the wrapper.
        let copy: Attribute = unsafe {
            hdf5::from_id(hdf5::h5check(H5Acreate2(
                to.id(),
                cname.as_ptr(),
                file_type.id(),
                space.id(),
                H5P_DEFAULT,
                H5P_DEFAULT,
            ))?)?
        };
        // SAFETY: `buf` holds the values just read with this type.
        hdf5::h5check(unsafe { H5Awrite(copy.id(), file_type.id(), ptr.cast()) })?;
        Ok::<_, hdf5::Error>(())
    })();
    if has_variable_length(file_type.id()) {
        // SAFETY: `buf` holds what the library read with this type over this space.
        unsafe { reclaim(file_type.id(), space.id(), ptr) };
    }
    written
}

/// Marks the file descriptor behind `file` close-on-exec. The HDF5 C library opens files without
/// `O_CLOEXEC`, so a process this one spawns would otherwise inherit the descriptor, and with it the
/// lock HDF5 holds on the file, until that process exits. Best effort: a driver without a plain file
/// descriptor is left as it is.
#[cfg(unix)]
pub(crate) fn close_on_exec(file: &hdf5::File) {
    let _lock = hdf5_sys::LOCK.lock();
    let mut handle: *mut std::ffi::c_void = std::ptr::null_mut();
    // SAFETY: `file` is an open file id; the call stores a pointer to the driver's handle in `handle`.
    let status = unsafe { hdf5_sys::h5f::H5Fget_vfd_handle(file.id(), H5P_DEFAULT, &mut handle) };
    if status < 0 || handle.is_null() {
        return;
    }
    // SAFETY: for the default (sec2) driver, the handle is a pointer to the file's `int` descriptor.
    let fd = unsafe { *(handle as *const std::os::raw::c_int) };
    // SAFETY: fcntl on a descriptor we own only changes its flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// On other systems there is no exec to guard against.
#[cfg(not(unix))]
pub(crate) fn close_on_exec(_file: &hdf5::File) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_numeric_dtype_maps_back() {
        for dtype in DType::ALL {
            if let Some(desc) = descriptor_for(dtype) {
                assert_eq!(dtype_of(&desc), Some(dtype), "{dtype}");
            }
        }
        for dtype in [DType::BF16, DType::F8E4M3, DType::F8E5M2, DType::F8E8M0] {
            assert_eq!(descriptor_for(dtype), None);
        }
    }

    #[test]
    fn keras_opaque_names_need_their_size() {
        for (dtype, name) in KERAS_OPAQUE {
            assert_eq!(keras_opaque_name(dtype), Some(name));
            assert_eq!(keras_opaque_dtype(name.as_bytes(), dtype.size().unwrap()), Some(dtype));
            assert_eq!(keras_opaque_dtype(name.as_bytes(), 4), None);
        }
        assert_eq!(keras_opaque_dtype(b"float8_e4m3fnuz", 1), None);
        assert_eq!(keras_opaque_name(DType::F8E8M0), None);
    }

    #[test]
    fn other_compounds_are_not_complex() {
        let f = TD::Float(FloatSize::U4);
        let c = CompoundType {
            fields: vec![
                CompoundField { name: "x".into(), ty: f.clone(), offset: 0, index: 0 },
                CompoundField { name: "y".into(), ty: f, offset: 4, index: 1 },
            ],
            size: 8,
        };
        assert_eq!(dtype_of(&TD::Compound(c)), None);
    }
}
