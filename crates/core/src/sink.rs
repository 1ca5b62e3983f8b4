//! The [`CheckpointSink`] trait: what every format writer offers the executor.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::{Error, Result, Slice, TensorInfo};

/// A tensor (or one slice of a partitioned tensor) about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkTensor {
    /// Name, dtype and **full** shape.
    pub info: TensorInfo,
    /// The part of the full tensor this entry holds, or `None` for the whole tensor. Formats without
    /// partitions receive only whole tensors.
    pub slice: Option<Slice>,
}

impl SinkTensor {
    /// A whole tensor.
    pub fn whole(info: TensorInfo) -> Self {
        SinkTensor { info, slice: None }
    }

    /// The shape of the data this entry holds: the slice's, or the full shape.
    pub fn data_shape(&self) -> &[u64] {
        match &self.slice {
            Some(s) => &s.len,
            None => &self.info.shape,
        }
    }

    /// The bytes of the data this entry holds, or `None` for strings or on overflow.
    pub fn byte_len(&self) -> Option<u64> {
        crate::tensor::num_elements(self.data_shape())?.checked_mul(self.info.dtype.size()? as u64)
    }
}

/// A checkpoint being written.
///
/// The writer is created with the list of tensors it will receive (formats such as safetensors need the
/// whole header first). Numeric tensors then arrive one at a time, in that order, as `begin_tensor`,
/// any number of `write_data` calls whose bytes add up to the tensor's size in row-major little-endian
/// order, and `end_tensor`; string tensors arrive whole through `write_strings`. Output goes to temporary
/// files beside the destination; only `finish` moves them into place, and dropping an unfinished sink
/// removes them.
pub trait CheckpointSink: Send {
    /// Where the checkpoint will be when finished.
    fn path(&self) -> &Path;

    /// Starts a numeric tensor.
    fn begin_tensor(&mut self, tensor: &SinkTensor) -> Result<()>;

    /// Appends bytes of the current tensor.
    fn write_data(&mut self, bytes: &[u8]) -> Result<()>;

    /// Ends the current tensor; fails if fewer bytes than its size were written.
    fn end_tensor(&mut self) -> Result<()>;

    /// Writes a whole string tensor.
    fn write_strings(&mut self, tensor: &SinkTensor, values: &[Vec<u8>]) -> Result<()>;

    /// Completes the files and moves them into place.
    fn finish(self: Box<Self>) -> Result<()>;

    /// Whether this sink keeps `tensor` (one it was created with). A sink writing one worker's part of
    /// an output (`run --worker I/N`) keeps only that part's tensors; the others need not be computed
    /// nor given to it.
    fn keeps(&self, tensor: &SinkTensor) -> bool {
        let _ = tensor;
        true
    }

    /// Whether [`begin_tensor_at`](CheckpointSink::begin_tensor_at) works: the sink knows where each
    /// tensor's bytes go before they arrive (a TF bundle, a safetensors file). A sink that does not (a
    /// chunked HDF5 dataset, an object store) takes bytes in order only, through `write_data`.
    fn writes_at_offsets(&self) -> bool {
        false
    }

    /// Starts a numeric tensor whose bytes are written at offsets, in any order and possibly more than
    /// once, through the returned region (instead of `write_data`), then ended by
    /// [`end_tensor_at`](CheckpointSink::end_tensor_at). Only if
    /// [`writes_at_offsets`](CheckpointSink::writes_at_offsets).
    fn begin_tensor_at(&mut self, tensor: &SinkTensor) -> Result<TensorRegion> {
        let _ = tensor;
        Err(Error::io(self.path(), std::io::Error::from(std::io::ErrorKind::Unsupported)))
    }

    /// Ends the tensor started by [`begin_tensor_at`](CheckpointSink::begin_tensor_at), every byte of
    /// which has been written through `region`; `crc32c` is the CRC32C of the tensor's bytes in order,
    /// given when the region [asked for it](TensorRegion::wants_crc32c).
    fn end_tensor_at(&mut self, region: TensorRegion, crc32c: Option<u32>) -> Result<()> {
        let _ = (region, crc32c);
        Err(Error::io(self.path(), std::io::Error::from(std::io::ErrorKind::Unsupported)))
    }
}

/// The bytes of one numeric tensor in a file, written and read back at offsets from the tensor's start
/// with positional I/O (`pwrite`/`pread`, which never move a shared file position, so threads may use
/// one region at once). A sink gives one for an output tensor
/// ([`CheckpointSink::begin_tensor_at`]); [`scratch`](TensorRegion::scratch) makes one in an anonymous
/// temporary file.
#[derive(Debug)]
pub struct TensorRegion {
    file: File,
    start: u64,
    len: u64,
    path: PathBuf,
    crc32c: bool,
}

/// [`Error::InputChanged`]: the source file of a copy ended after `done` of its bytes.
fn ended_early(from: crate::StoredBytes<'_>, done: u64) -> Error {
    let reason = format!("it ended {done} bytes into a tensor of {} bytes at offset {}", from.len, from.offset);
    Error::InputChanged { path: from.path.to_path_buf(), reason }
}

impl TensorRegion {
    /// Bytes `start..start + len` of `file` (named `path` in errors); `crc32c` if the sink wants the
    /// tensor's CRC32C at the end.
    pub fn new(file: File, start: u64, len: u64, path: PathBuf, crc32c: bool) -> Self {
        TensorRegion { file, start, len, path, crc32c }
    }

    /// A region of `len` bytes in a new anonymous temporary file (in the system's temporary folder),
    /// removed when the region is dropped.
    pub fn scratch(len: u64) -> Result<Self> {
        let path = std::env::temp_dir();
        let file = tempfile::tempfile().map_err(|e| Error::io(&path, e))?;
        file.set_len(len).map_err(|e| Error::io(&path, e))?;
        Ok(TensorRegion { file, start: 0, len, path, crc32c: false })
    }

    /// The tensor's bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the tensor has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the tensor starts in the file.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Whether the sink wants the CRC32C of the tensor's bytes at the end.
    pub fn wants_crc32c(&self) -> bool {
        self.crc32c
    }

    /// The file offset of `len` bytes at `offset` in the tensor, if they lie within it.
    fn at(&self, offset: u64, len: usize) -> Result<u64> {
        let end = offset.checked_add(len as u64).filter(|&e| e <= self.len);
        end.map(|_| self.start + offset).ok_or_else(|| {
            let reason = format!("bytes {offset}..+{len} outside a tensor of {} bytes", self.len);
            Error::io(&self.path, std::io::Error::new(std::io::ErrorKind::InvalidInput, reason))
        })
    }

    /// Writes `bytes` at `offset` in the tensor.
    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let at = self.at(offset, bytes.len())?;
        self.file.write_all_at(bytes, at).map_err(|e| Error::io(&self.path, e))
    }

    /// Copies the stored bytes `from` (a source's [`CheckpointSource::stored_bytes`](crate::CheckpointSource::stored_bytes))
    /// to `offset` in the tensor, file to file: `copy_file_range` on Linux, so that no byte passes
    /// through user space (a kernel or file system that cannot, and other systems, copy through a
    /// buffer). A source that ends before `from.len` bytes is [`Error::InputChanged`].
    pub fn copy_from(&self, offset: u64, from: crate::StoredBytes<'_>) -> Result<()> {
        let len =
            usize::try_from(from.len).map_err(|_| Error::TooLarge { path: self.path.clone(), name: String::new() })?;
        let at = self.at(offset, len)?;
        #[cfg(target_os = "linux")]
        let done = self.copy_file_range(at, from)?;
        #[cfg(not(target_os = "linux"))]
        let done = 0;
        self.copy_through_buffer(at, from, done)
    }

    /// The bytes `copy_file_range` copied from `from` to `at` in the file: all of them, or fewer (from
    /// 0) if the kernel cannot copy between these files, the rest left for a copy through a buffer.
    #[cfg(target_os = "linux")]
    fn copy_file_range(&self, at: u64, from: crate::StoredBytes<'_>) -> Result<u64> {
        use std::os::fd::AsRawFd;
        let mut done = 0u64;
        while done < from.len {
            let (mut src, mut dst) = ((from.offset + done) as libc::loff_t, (at + done) as libc::loff_t);
            let want = usize::try_from(from.len - done).unwrap_or(usize::MAX).min(1 << 30);
            // SAFETY: both descriptors are open files borrowed for the call; the offsets are the
            // kernel's to update, and no memory of ours is read or written.
            let n = unsafe {
                libc::copy_file_range(from.file.as_raw_fd(), &mut src, self.file.as_raw_fd(), &mut dst, want, 0)
            };
            match n {
                0 => return Err(ended_early(from, done)),
                n if n > 0 => done += n as u64,
                _ => {
                    let e = std::io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EINTR) => {}
                        // Not between these files (another file system, no support): copied otherwise.
                        Some(libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL) if done == 0 => {
                            return Ok(0)
                        }
                        _ => return Err(Error::io(&self.path, e)),
                    }
                }
            }
        }
        Ok(done)
    }

    /// Copies bytes `done..` of `from` to `at + done..` in the file through a buffer.
    fn copy_through_buffer(&self, at: u64, from: crate::StoredBytes<'_>, mut done: u64) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; usize::try_from(from.len - done).unwrap_or(usize::MAX).min(1 << 20)];
        while done < from.len {
            let n = usize::try_from(from.len - done).unwrap_or(usize::MAX).min(buf.len());
            let got = from.file.read_at(&mut buf[..n], from.offset + done).map_err(|e| Error::io(from.path, e))?;
            if got == 0 {
                return Err(ended_early(from, done));
            }
            self.file.write_all_at(&buf[..got], at + done).map_err(|e| Error::io(&self.path, e))?;
            done += got as u64;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset` in the tensor.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let at = self.at(offset, buf.len())?;
        self.file.read_exact_at(buf, at).map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoredBytes;
    use std::io::Write;

    /// A copy file to file lands at its offset with the source's bytes; a source that ends before the
    /// bytes it was said to hold is an input that changed, naming it.
    #[test]
    fn copies_file_to_file_and_refuses_a_source_ending_early() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        let mut src = tempfile::NamedTempFile::new().unwrap();
        src.write_all(&data).unwrap();
        let path = src.path().to_path_buf();
        let region = TensorRegion::scratch(200_010).unwrap();
        let stored = StoredBytes { file: src.as_file(), path: &path, offset: 1000, len: 200_000 };
        region.copy_from(10, stored).unwrap();
        let mut back = vec![0; 200_000];
        region.read_at(10, &mut back).unwrap();
        assert_eq!(back, data[1000..201_000]);
        let past_end = StoredBytes { offset: 200_000, ..stored };
        let e = region.copy_from(10, past_end).unwrap_err();
        assert!(matches!(&e, Error::InputChanged { path: p, .. } if *p == path), "{e:?}");
        // Outside the region: refused before anything is copied.
        assert!(region.copy_from(11, stored).is_err());
    }
}
