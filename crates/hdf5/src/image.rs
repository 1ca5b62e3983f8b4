//! [`FileImage`]: an HDF5 file held in a slice of a mapped input (the weights member of a Keras
//! archive, stored uncompressed), opened in place with HDF5's core driver. The driver is given the
//! slice as its file image through callbacks that hand the library the mapped bytes themselves instead
//! of a copy (as `H5LTopen_file_image` does with `H5LT_FILE_IMAGE_DONT_COPY`), so nothing is copied
//! to memory or to disk. The file is opened read-only: the library never writes into the image (the
//! map is read-only, and the callbacks refuse to grow it).

use std::ffi::{c_void, CString};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use hdf5::plist::file_access::FileCloseDegree;
use hdf5::plist::FileAccess;
use hdf5::File;
use hdf5_sys::h5f::{H5Fopen, H5F_ACC_RDONLY};
use hdf5_sys::h5fd::{H5FD_file_image_callbacks_t, H5FD_file_image_op_t};
use hdf5_sys::h5i::hid_t;
use hdf5_sys::h5p::{H5Pset_file_image, H5Pset_file_image_callbacks};
use warmstart_core::mapped::InputMap;

/// Bytes `range` of a mapped input, holding an HDF5 file.
#[derive(Debug, Clone)]
pub struct FileImage {
    map: Arc<InputMap>,
    range: Range<usize>,
}

impl FileImage {
    /// The HDF5 file in bytes `range` of `map`; `None` if the range is empty or not inside the map.
    pub fn new(map: Arc<InputMap>, range: Range<usize>) -> Option<FileImage> {
        (range.start < range.end && range.end <= map.len()).then_some(FileImage { map, range })
    }

    /// The image's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map.bytes()[self.range.clone()]
    }

    /// Where the image lies in the mapped input.
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// The mapped input holding the image.
    pub fn map(&self) -> &InputMap {
        &self.map
    }
}

/// What the callbacks know of the image: its address and length, shared (reference counted) by the
/// property lists and the open file that hold it, freed by the last of them.
struct Shared {
    ptr: *const u8,
    len: usize,
    refs: AtomicUsize,
}

/// Files opened from images get names of their own: the core driver takes two images of one name for
/// the same file, and would serve the second from the first.
static OPENED: AtomicU64 = AtomicU64::new(0);

/// How many times the core driver was handed an image's own bytes to open a file on (instead of a
/// copy): the tests' evidence that nothing is copied.
static OPENED_IN_PLACE: AtomicUsize = AtomicUsize::new(0);

/// Opens `image` read-only with the core driver, in place; `label` names it in the library's own
/// bookkeeping (made unique here).
pub(crate) fn open(image: &FileImage, label: &str) -> hdf5::Result<File> {
    let _lock = hdf5_sys::LOCK.lock();
    // Strong close: dropping the file closes every object still open in it, so that nothing of the
    // library refers to the image once the source holding it is gone.
    let fapl: FileAccess =
        FileAccess::build().core_options(64 << 10, false).fclose_degree(FileCloseDegree::Strong).finish()?;
    let bytes = image.bytes();
    let shared = Box::into_raw(Box::new(Shared { ptr: bytes.as_ptr(), len: bytes.len(), refs: AtomicUsize::new(1) }));
    let mut callbacks = H5FD_file_image_callbacks_t {
        image_malloc: Some(image_malloc),
        image_memcpy: Some(image_memcpy),
        image_realloc: Some(image_realloc),
        image_free: Some(image_free),
        udata_copy: Some(udata_copy),
        udata_free: Some(udata_free),
        udata: shared.cast(),
    };
    let name = format!("{label}#image{}", OPENED.fetch_add(1, Ordering::Relaxed));
    let opened = (|| {
        let name = CString::new(name).map_err(|_| hdf5::Error::from("image name holds a NUL"))?;
        // SAFETY: a valid file access list; the library copies the callbacks and takes its own
        // reference to `shared` through `udata_copy`.
        hdf5::h5check(unsafe { H5Pset_file_image_callbacks(fapl.id(), &mut callbacks) })?;
        // SAFETY: `bytes` is valid for its length while the image's map lives, which the caller
        // keeps alive for as long as the file is open; the callbacks make the library use these very
        // bytes (read-only open) instead of a copy.
        hdf5::h5check(unsafe { H5Pset_file_image(fapl.id(), bytes.as_ptr() as *mut c_void, bytes.len()) })?;
        // SAFETY: a NUL-terminated name and a valid file access list.
        let id: hid_t = hdf5::h5check(unsafe { H5Fopen(name.as_ptr(), H5F_ACC_RDONLY, fapl.id()) })?;
        // SAFETY: `id` is a file id just opened, owned from now on by the wrapper.
        unsafe { hdf5::from_id::<File>(id) }
    })();
    drop(fapl);
    // SAFETY: our own reference, taken when `shared` was made.
    unsafe { udata_free(shared.cast()) };
    opened
}

/// Hands the library the image itself where it asks for memory to copy the image into.
extern "C" fn image_malloc(size: usize, op: H5FD_file_image_op_t, udata: *mut c_void) -> *mut c_void {
    // SAFETY: `udata` is the `Shared` the callbacks were set up with, alive while referenced.
    let shared = unsafe { &*(udata as *const Shared) };
    let taken = matches!(
        op,
        H5FD_file_image_op_t::H5FD_FILE_IMAGE_OP_PROPERTY_LIST_SET
            | H5FD_file_image_op_t::H5FD_FILE_IMAGE_OP_PROPERTY_LIST_COPY
            | H5FD_file_image_op_t::H5FD_FILE_IMAGE_OP_PROPERTY_LIST_GET
            | H5FD_file_image_op_t::H5FD_FILE_IMAGE_OP_FILE_OPEN
    );
    if taken && size == shared.len {
        if matches!(op, H5FD_file_image_op_t::H5FD_FILE_IMAGE_OP_FILE_OPEN) {
            OPENED_IN_PLACE.fetch_add(1, Ordering::Relaxed);
        }
        shared.ptr as *mut c_void
    } else {
        std::ptr::null_mut()
    }
}

/// Copies of the image onto itself are no copies; any other copy is refused.
extern "C" fn image_memcpy(
    dest: *mut c_void,
    src: *const c_void,
    size: usize,
    _op: H5FD_file_image_op_t,
    udata: *mut c_void,
) -> *mut c_void {
    // SAFETY: as in `image_malloc`.
    let shared = unsafe { &*(udata as *const Shared) };
    if std::ptr::eq(dest, src) && std::ptr::eq(src, shared.ptr.cast()) && size <= shared.len {
        dest
    } else {
        std::ptr::null_mut()
    }
}

/// The image never grows (the file is read-only).
extern "C" fn image_realloc(
    _ptr: *mut c_void,
    _size: usize,
    _op: H5FD_file_image_op_t,
    _u: *mut c_void,
) -> *mut c_void {
    std::ptr::null_mut()
}

/// The image belongs to the map, not to the library: nothing to free.
extern "C" fn image_free(_ptr: *mut c_void, _op: H5FD_file_image_op_t, _udata: *mut c_void) -> i32 {
    0
}

/// A property list or file taking a reference to the image.
unsafe extern "C" fn udata_copy(udata: *mut c_void) -> *mut c_void {
    // SAFETY: `udata` is a live `Shared` (the caller holds a reference).
    let shared = unsafe { &*(udata as *const Shared) };
    shared.refs.fetch_add(1, Ordering::AcqRel);
    udata
}

/// A reference let go; the last one frees the `Shared`.
unsafe extern "C" fn udata_free(udata: *mut c_void) -> i32 {
    let shared = udata as *mut Shared;
    // SAFETY: `udata` is a live `Shared` until its last reference is let go, here.
    if unsafe { &*shared }.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
        // SAFETY: made by `Box::into_raw` in `open`; no reference is left.
        drop(unsafe { Box::from_raw(shared) });
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use warmstart_core::CheckpointSource;

    /// An HDF5 file written at an odd offset inside a bigger file, as a Keras archive holds its weights.
    fn embedded() -> (tempfile::TempDir, std::path::PathBuf, Range<usize>) {
        let dir = tempfile::tempdir().unwrap();
        let h5 = dir.path().join("w.h5");
        let f = File::create(&h5).unwrap();
        f.new_dataset::<f32>().shape([3]).create("a/w").unwrap().write(&[1.0f32, 2.0, 3.0]).unwrap();
        drop(f);
        let inner = std::fs::read(&h5).unwrap();
        let mut outer = vec![7u8; 1513];
        outer.extend(&inner);
        outer.extend([9u8; 100]);
        let path = dir.path().join("outer.bin");
        std::fs::write(&path, outer).unwrap();
        (dir, path, 1513..1513 + inner.len())
    }

    #[test]
    fn a_file_image_is_read_in_place() {
        let (_dir, path, range) = embedded();
        let map = Arc::new(InputMap::open(&path).unwrap());
        let before = OPENED_IN_PLACE.load(Ordering::Relaxed);
        let image = FileImage::new(map.clone(), range.clone()).unwrap();
        let src = crate::Hdf5Source::open_image(&path, image).unwrap();
        assert!(OPENED_IN_PLACE.load(Ordering::Relaxed) > before, "the driver got a copy");
        assert_eq!(src.read("a/w").unwrap().as_ref(), [1.0f32, 2.0, 3.0].map(f32::to_le_bytes).concat());
        // Two images of one input open as two files (the driver would take one name for one file).
        let again = FileImage::new(map.clone(), range.clone()).unwrap();
        let other = crate::Hdf5Source::open_image(&path, again).unwrap();
        assert_eq!(other.tensors().len(), 1);
        drop((src, other));
        assert!(FileImage::new(map.clone(), range.start..map.len() + 1).is_none());
        assert!(FileImage::new(map, 5..5).is_none());
    }

    #[test]
    fn an_image_that_is_no_hdf5_file_is_an_error() {
        let (_dir, path, range) = embedded();
        let map = Arc::new(InputMap::open(&path).unwrap());
        let shifted = FileImage::new(map, range.start + 8..range.end).unwrap();
        let err = crate::Hdf5Source::open_image(&path, shifted).unwrap_err().to_string();
        assert!(err.contains("outer.bin") && err.contains("cannot open as HDF5"), "{err}");
    }
}
