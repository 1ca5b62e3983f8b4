//! Streaming one tensor from a [`CheckpointSource`] into a [`CheckpointSink`] in row blocks, so that a
//! tensor larger than memory never has to be held whole. Used by `convert` and by the executor.
//!
//! A tensor the source stores whole ([`CheckpointSource::stored_bytes`]) going to a sink that writes
//! at offsets is copied file to file instead ([`crate::TensorRegion::copy_from`]: no byte through user
//! space), beside its check on a second thread ([`CheckpointSource::checked_crc32c`]); a TF source's
//! CRC32C, once verified, is the output's (the bytes are the same), so a TF bundle written from a TF
//! bundle hashes nothing twice. The check's error comes first, and nothing copied is kept without it.

use std::ops::Range;
use std::path::Path;

use crate::{
    CheckpointSink, CheckpointSource, DType, Error, Result, SinkTensor, StoredBytes, TensorInfo, TensorRegion,
};

/// The default size of one row block: a few MiB, large enough to amortise per-call costs, small
/// enough to keep memory flat.
pub const DEFAULT_BLOCK_BYTES: u64 = 4 << 20;

/// Copies the source tensor `name` into `sink` as the declared `tensor`, reading at most about
/// `block_bytes` at a time (always at least one whole row).
///
/// The source tensor must have the dtype of `tensor` and as many bytes as `tensor` holds (the sink
/// checks the byte count). String tensors are copied whole with `write_strings`.
pub fn copy_tensor(
    src: &dyn CheckpointSource,
    name: &str,
    sink: &mut dyn CheckpointSink,
    tensor: &SinkTensor,
    block_bytes: u64,
) -> Result<()> {
    let info = copyable_source(src, name, tensor)?;
    if info.dtype == DType::String {
        let values = src.read_strings(name)?;
        return sink.write_strings(tensor, &values);
    }
    if let Some(stored) = stored_whole(src, name, sink.writes_at_offsets(), tensor) {
        return copy_stored(src, name, sink, tensor, stored);
    }
    sink.begin_tensor(tensor)?;
    for rows in row_blocks(src.path(), info, block_bytes)? {
        sink.write_data(&src.read_rows(name, rows.clone())?)?;
        src.release(name, rows);
    }
    sink.end_tensor()
}

/// The stored bytes of the source tensor `name`, if they are all of the declared whole `tensor` (and
/// not empty) and the sink writes at `offsets`: a copy that can be made file to file.
pub fn stored_whole<'s>(
    src: &'s dyn CheckpointSource,
    name: &str,
    offsets: bool,
    tensor: &SinkTensor,
) -> Option<StoredBytes<'s>> {
    if !offsets || tensor.slice.is_some() {
        return None;
    }
    let stored = src.stored_bytes(name)?;
    (stored.len > 0 && Some(stored.len) == tensor.byte_len()).then_some(stored)
}

/// Copies `stored` (the tensor `name` of `src`) into `tensor`, started at offsets in `sink`: file to
/// file while its check runs on this thread, unless the sink wants a CRC32C the source does not store
/// ([`fill_region`]).
fn copy_stored(
    src: &dyn CheckpointSource,
    name: &str,
    sink: &mut dyn CheckpointSink,
    tensor: &SinkTensor,
    stored: StoredBytes<'_>,
) -> Result<()> {
    let region = sink.begin_tensor_at(tensor)?;
    if region.wants_crc32c() && !src.stores_crc32c(name) {
        let crc = fill_region(src, name, &region, stored, None)?;
        return sink.end_tensor_at(region, crc);
    }
    let (copied, crc) = std::thread::scope(|scope| {
        let copy = scope.spawn(|| region.copy_from(0, stored));
        let crc = checked_crc32c(src, name);
        (copy.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), crc)
    });
    // The check's error first: a copy that failed too may have failed for the same reason.
    let crc = crc?;
    copied?;
    let crc = crc.filter(|_| region.wants_crc32c());
    sink.end_tensor_at(region, crc)
}

/// Checks the tensor `name` of `src` ([`CheckpointSource::checked_crc32c`]), releasing what the check
/// mapped (a small tensor is hashed without being released), and returns the CRC32C the source stores,
/// now verified, if it stores one.
pub fn checked_crc32c(src: &dyn CheckpointSource, name: &str) -> Result<Option<u32>> {
    let rows = src.require(name)?.rows();
    let crc = src.checked_crc32c(name)?;
    src.release(name, 0..rows);
    Ok(crc)
}

/// Writes the tensor `name` of `src`, stored as `stored`, into `region` (its whole), and returns the
/// CRC32C to end the region with if it wants one. File to file (see [`TensorRegion::copy_from`]) when
/// the region wants no CRC32C, or `crc` (the source's, verified) is it. Otherwise the tensor is read in
/// blocks, each hashed just before it is written, while it is in the processor's cache: copying it
/// file to file and hashing it apart measured slower (safetensors to TF at W1: 0.32 s of CPU against
/// 0.22 s).
pub fn fill_region(
    src: &dyn CheckpointSource,
    name: &str,
    region: &TensorRegion,
    stored: StoredBytes<'_>,
    crc: Option<u32>,
) -> Result<Option<u32>> {
    if !region.wants_crc32c() || crc.is_some() {
        region.copy_from(0, stored)?;
        return Ok(crc.filter(|_| region.wants_crc32c()));
    }
    let info = src.require(name)?;
    let (mut crc, mut at) = (0, 0u64);
    for rows in row_blocks(src.path(), info, DEFAULT_BLOCK_BYTES)? {
        let bytes = src.read_rows(name, rows.clone())?;
        for piece in bytes.chunks(1 << 20) {
            crc = crc32c::crc32c_append(crc, piece);
            region.write_at(at, piece)?;
            at += piece.len() as u64;
        }
        drop(bytes);
        src.release(name, rows);
    }
    if at != region.len() {
        let reason = format!("tensor {name} has {at} bytes, {} stored", region.len());
        return Err(Error::InputChanged { path: stored.path.to_path_buf(), reason });
    }
    Ok(Some(crc))
}

/// The source tensor `name`, checked to have the dtype of the declared `tensor` it is copied into.
pub fn copyable_source<'s>(src: &'s dyn CheckpointSource, name: &str, tensor: &SinkTensor) -> Result<&'s TensorInfo> {
    let info = src.require(name)?;
    if info.dtype != tensor.info.dtype {
        return Err(Error::WrongDType { path: src.path().to_path_buf(), name: name.to_string(), dtype: info.dtype });
    }
    Ok(info)
}

/// The row ranges, in order, in which to stream the numeric tensor `info` (of the checkpoint at `path`):
/// about `block_bytes` each and always at least one whole row.
pub fn row_blocks(path: &Path, info: &TensorInfo, block_bytes: u64) -> Result<impl Iterator<Item = Range<u64>>> {
    let rows = info.rows();
    // A tensor with no rows holds no bytes even when its row size overflows (shape [0, 2^62]).
    let row_bytes = if rows == 0 {
        0
    } else {
        info.row_bytes().ok_or_else(|| Error::TooLarge { path: path.to_path_buf(), name: info.name.clone() })?
    };
    // Rows of zero bytes (an inner dimension of 0) are all read at once.
    let rows_per_block = block_bytes.checked_div(row_bytes).map_or(rows.max(1), |n| n.max(1));
    let mut start = 0;
    Ok(std::iter::from_fn(move || {
        (start < rows).then(|| {
            let end = start.saturating_add(rows_per_block).min(rows);
            let block = start..end;
            start = end;
            block
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::MemorySource;

    /// A sink recording what it was given.
    #[derive(Default)]
    struct RecordingSink {
        events: Vec<String>,
        data: Vec<u8>,
    }

    impl CheckpointSink for RecordingSink {
        fn path(&self) -> &Path {
            Path::new("recording")
        }
        fn begin_tensor(&mut self, tensor: &SinkTensor) -> Result<()> {
            self.events.push(format!("begin {}", tensor.info.name));
            Ok(())
        }
        fn write_data(&mut self, bytes: &[u8]) -> Result<()> {
            self.events.push(format!("data {}", bytes.len()));
            self.data.extend_from_slice(bytes);
            Ok(())
        }
        fn end_tensor(&mut self) -> Result<()> {
            self.events.push("end".to_string());
            Ok(())
        }
        fn write_strings(&mut self, tensor: &SinkTensor, values: &[Vec<u8>]) -> Result<()> {
            self.events.push(format!("strings {} {}", tensor.info.name, values.len()));
            Ok(())
        }
        fn finish(self: Box<Self>) -> Result<()> {
            Ok(())
        }
    }

    fn source(info: TensorInfo) -> MemorySource {
        if info.dtype == DType::String {
            return MemorySource::new().with_strings(&info.name, &info.shape, vec![b"a".to_vec(), b"bc".to_vec()]);
        }
        let len = info.byte_len().unwrap_or(0) as usize;
        MemorySource::new().with_bytes(info, (0..len).map(|i| i as u8).collect())
    }

    /// The row ranges `src` served.
    fn row_reads(src: &MemorySource) -> Vec<Range<u64>> {
        src.reads().into_iter().map(|(_, rows)| rows).collect()
    }

    #[test]
    fn streams_in_row_blocks() {
        let src = source(TensorInfo::new("w", DType::F32, vec![10, 2]));
        let mut sink = RecordingSink::default();
        let tensor = SinkTensor::whole(src.tensors()[0].clone());
        copy_tensor(&src, "w", &mut sink, &tensor, 24).unwrap();
        assert_eq!(row_reads(&src), vec![0..3, 3..6, 6..9, 9..10]);
        assert_eq!(sink.events, ["begin w", "data 24", "data 24", "data 24", "data 8", "end"]);
        assert_eq!(sink.data, src.bytes("w"));
    }

    #[test]
    fn block_smaller_than_a_row_still_reads_whole_rows() {
        let src = source(TensorInfo::new("w", DType::F64, vec![2, 3]));
        let mut sink = RecordingSink::default();
        copy_tensor(&src, "w", &mut sink, &SinkTensor::whole(src.tensors()[0].clone()), 1).unwrap();
        assert_eq!(row_reads(&src), vec![0..1, 1..2]);
        assert_eq!(sink.data, src.bytes("w"));
    }

    #[test]
    fn scalar_and_empty_tensors() {
        let src = source(TensorInfo::new("s", DType::I64, vec![]));
        let mut sink = RecordingSink::default();
        copy_tensor(&src, "s", &mut sink, &SinkTensor::whole(src.tensors()[0].clone()), 1).unwrap();
        assert_eq!(sink.events, ["begin s", "data 8", "end"]);

        let src = source(TensorInfo::new("e", DType::F32, vec![0, 4]));
        let mut sink = RecordingSink::default();
        copy_tensor(&src, "e", &mut sink, &SinkTensor::whole(src.tensors()[0].clone()), 1).unwrap();
        assert_eq!(sink.events, ["begin e", "end"]);

        let src = source(TensorInfo::new("o", DType::F32, vec![0, 1 << 62]));
        let mut sink = RecordingSink::default();
        copy_tensor(&src, "o", &mut sink, &SinkTensor::whole(src.tensors()[0].clone()), 1).unwrap();
        assert_eq!(sink.events, ["begin o", "end"], "no rows, though a row's size overflows");

        let src = source(TensorInfo::new("z", DType::F32, vec![5, 0]));
        let mut sink = RecordingSink::default();
        copy_tensor(&src, "z", &mut sink, &SinkTensor::whole(src.tensors()[0].clone()), 1).unwrap();
        assert_eq!(sink.events, ["begin z", "data 0", "end"]);
    }

    #[test]
    fn strings_are_copied_whole() {
        let src = source(TensorInfo::new("vocab", DType::String, vec![2]));
        let mut sink = RecordingSink::default();
        copy_tensor(&src, "vocab", &mut sink, &SinkTensor::whole(src.tensors()[0].clone()), 1).unwrap();
        assert_eq!(sink.events, ["strings vocab 2"]);
    }

    #[test]
    fn dtype_mismatch_and_missing_tensor_are_errors() {
        let src = source(TensorInfo::new("w", DType::F32, vec![2]));
        let mut sink = RecordingSink::default();
        let other = SinkTensor::whole(TensorInfo::new("w", DType::F16, vec![4]));
        assert!(matches!(copy_tensor(&src, "w", &mut sink, &other, 8), Err(Error::WrongDType { .. })));
        assert!(matches!(copy_tensor(&src, "nope", &mut sink, &other, 8), Err(Error::TensorNotFound { .. })));
        assert!(sink.events.is_empty());
    }
}
