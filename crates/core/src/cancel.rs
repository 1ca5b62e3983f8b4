//! Cancelling a long read-and-write (a warm-start, a conversion) from another thread: a
//! [`CancelToken`] that the caller sets, and a [`CancellableSource`] that wraps a source and fails every
//! read with [`Error::Cancelled`] once the token is set.
//!
//! The executor and `convert` read every tensor in row blocks of a few MiB, so a wrapped source stops
//! them within one block, without either knowing about cancellation. Both call
//! [`check_unchanged`](CheckpointSource::check_unchanged) on their sources just before putting the
//! output in place, and the wrapper fails that too, so a run cancelled before then leaves nothing.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::{CheckpointSource, Error, Format, GraphInfo, Result, Slice, StoredBytes, TensorInfo};

/// A flag shared between the thread doing the work and the one that may cancel it. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        CancelToken::default()
    }

    /// Asks the work to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`cancel`](CancelToken::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// [`Error::Cancelled`] naming `path` if cancelled.
    pub fn check(&self, path: &Path) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled { path: path.to_path_buf() })
        } else {
            Ok(())
        }
    }
}

/// A source that is `inner` in every way, except that reads, and
/// [`check_unchanged`](CheckpointSource::check_unchanged), fail with [`Error::Cancelled`] once `token`
/// is cancelled. Every method of the trait is passed on to `inner` (a method added to the trait must be
/// added here too, or `inner`'s own version of it would be bypassed).
pub struct CancellableSource<'a> {
    inner: &'a dyn CheckpointSource,
    token: &'a CancelToken,
}

impl<'a> CancellableSource<'a> {
    /// `inner`, stopped by `token`.
    pub fn new(inner: &'a dyn CheckpointSource, token: &'a CancelToken) -> Self {
        CancellableSource { inner, token }
    }
}

impl CheckpointSource for CancellableSource<'_> {
    fn format(&self) -> Format {
        self.inner.format()
    }
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn tensors(&self) -> &[TensorInfo] {
        self.inner.tensors()
    }
    fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.inner.tensor(name)
    }
    fn read_rows(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>> {
        self.token.check(self.inner.path())?;
        self.inner.read_rows(name, rows)
    }
    fn release(&self, name: &str, rows: Range<u64>) {
        self.inner.release(name, rows);
    }
    fn check_unchanged(&self) -> Result<()> {
        self.inner.check_unchanged()?;
        self.token.check(self.inner.path())
    }
    fn check_cancelled(&self) -> Result<()> {
        self.inner.check_cancelled()?;
        self.token.check(self.inner.path())
    }
    fn read(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        self.token.check(self.inner.path())?;
        self.inner.read(name)
    }
    fn stores_crc32c(&self, name: &str) -> bool {
        self.inner.stores_crc32c(name)
    }
    fn read_rows_unverified(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>> {
        self.token.check(self.inner.path())?;
        self.inner.read_rows_unverified(name, rows)
    }
    fn verify_crc32c(&self, name: &str, crc32c: u32) -> Result<()> {
        self.token.check(self.inner.path())?;
        self.inner.verify_crc32c(name, crc32c)
    }
    fn stored_bytes(&self, name: &str) -> Option<StoredBytes<'_>> {
        // A cancelled run copies nothing more file to file; its next read reports the cancel.
        if self.token.is_cancelled() {
            return None;
        }
        self.inner.stored_bytes(name)
    }
    fn checked_crc32c(&self, name: &str) -> Result<Option<u32>> {
        self.token.check(self.inner.path())?;
        self.inner.checked_crc32c(name)
    }
    fn read_strings(&self, name: &str) -> Result<Vec<Vec<u8>>> {
        self.token.check(self.inner.path())?;
        self.inner.read_strings(name)
    }
    fn slices(&self, name: &str) -> Option<Vec<Slice>> {
        self.inner.slices(name)
    }
    fn graph(&self) -> Option<&GraphInfo> {
        self.inner.graph()
    }
    fn object_graph_keys(&self) -> Result<Option<HashMap<String, String>>> {
        self.inner.object_graph_keys()
    }
    fn metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.inner.metadata()
    }
    fn require(&self, name: &str) -> Result<&TensorInfo> {
        self.inner.require(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::MemorySource;
    use crate::DType;

    #[test]
    fn reads_fail_once_cancelled_and_pass_through_before() {
        let src = MemorySource::new().with_bytes(TensorInfo::new("w", DType::U8, vec![3]), vec![1, 2, 3]).with_strings(
            "s",
            &[1],
            vec![b"a".to_vec()],
        );
        let token = CancelToken::new();
        let wrapped = CancellableSource::new(&src, &token);
        assert_eq!(&*wrapped.read_rows("w", 1..3).unwrap(), &[2, 3]);
        assert_eq!(wrapped.read_strings("s").unwrap(), [b"a".to_vec()]);
        assert_eq!(wrapped.tensors(), src.tensors());
        wrapped.check_unchanged().unwrap();
        wrapped.check_cancelled().unwrap();
        let clone = token.clone();
        clone.cancel();
        assert!(token.is_cancelled());
        for err in [
            wrapped.read_rows("w", 0..1).err(),
            wrapped.read("w").err(),
            wrapped.read_strings("s").err(),
            wrapped.check_unchanged().err(),
            wrapped.check_cancelled().err(),
        ] {
            assert!(matches!(err, Some(Error::Cancelled { .. })), "{err:?}");
        }
        // Metadata still answers: only the work stops.
        assert_eq!(wrapped.tensor("w").map(|t| t.rows()), Some(3));
    }
}
