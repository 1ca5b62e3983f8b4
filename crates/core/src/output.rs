//! One atomic-output path for every writer: an output of one or more files (a safetensors file, an HDF5
//! file, a TF bundle's data shards, index and `checkpoint` state file) is written to temporary files
//! beside their destinations, and only [`AtomicOutput::commit`] moves them into place, in the order they
//! were staged. Until then nothing at the destinations changes; dropping an uncommitted output removes
//! its temporary files and the folders it made.
//!
//! Every sink and the library's `run_files` go through this module, so that the rules live in one
//! place:
//! - temporary files are named `.<destination name>.<random>.tmp` in the destination's folder (so the
//!   rename never crosses file systems) and get the permissions an ordinary new file gets (0666 less
//!   the umask), since they become the output;
//! - bytes written through a [`StagedFile`] are counted;
//! - with `sync`, every file is flushed to the disk (fsync) before the first rename, and each folder
//!   renamed into is flushed after the renames, as `--sync` promises; without it, as with TensorFlow's
//!   own writer and `cp`, the files are as durable as the operating system makes any written file;
//! - folders made for the output ([`CreatedFolders`]) are removed again, if still empty, unless the
//!   output is committed.
//!
//! The temporary files and made folders of the outputs not committed yet are also listed process-wide,
//! so that a program ending on a signal can remove them with [`abandon_uncommitted`] (the library
//! installs no signal handler; the `warmstart` binary does).
//!
//! Crash consistency builds on [`AtomicOutput::commit`]: it is the one place where files of an output
//! become visible, so a different commit protocol (for instance a fresh folder renamed as a whole, or
//! keeping what a rename replaces until the last rename is done) changes only this module.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::journal::{self, FolderLock, Plan, Renamer};
use crate::{Error, Result, TensorRegion};

/// The buffer of a [`StagedFile`]'s writer.
const WRITE_BUFFER: usize = 1 << 20;

/// The temporary files and made folders of the outputs of this process that are not committed (or
/// dropped) yet, and how many outputs were committed. Staging a file, making folders and committing
/// hold its lock, so [`abandon_uncommitted`] sees no half-made file and no half-done commit.
struct Pending {
    files: Vec<PathBuf>,
    folders: Vec<PathBuf>,
    commits: usize,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending { files: Vec::new(), folders: Vec::new(), commits: 0 });

fn pending() -> MutexGuard<'static, Pending> {
    PENDING.lock().unwrap_or_else(PoisonError::into_inner)
}

fn forget_path(list: &mut Vec<PathBuf>, path: &Path) {
    if let Some(i) = list.iter().rposition(|p| p == path) {
        list.swap_remove(i);
    }
}

/// What [`abandon_uncommitted`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abandoned {
    /// The temporary files removed.
    pub files: usize,
    /// The outputs this process had committed (put in place) before.
    pub committed: usize,
}

/// For a process about to exit on a signal: removes the temporary file of every output not committed
/// yet and the folders made for them (those still empty, deepest first). A commit in progress is let
/// finish first. The list stays locked afterwards, so that no output is staged or committed any more:
/// a thread that tries blocks until the process exits.
pub fn abandon_uncommitted() -> Abandoned {
    let mut pending = pending();
    let mut files = 0;
    for file in std::mem::take(&mut pending.files) {
        if std::fs::remove_file(&file).is_ok() {
            files += 1;
        }
    }
    // Deepest first, so that a folder is empty when its turn comes (those that are not stay).
    let mut folders = std::mem::take(&mut pending.folders);
    folders.sort_by_key(|f| std::cmp::Reverse(f.components().count()));
    for folder in &folders {
        let _ = std::fs::remove_dir(folder);
    }
    let committed = pending.commits;
    std::mem::forget(pending);
    Abandoned { files, committed }
}

/// A staged file's entry in [`Pending`], left when the file is committed or dropped.
struct Registration(Option<PathBuf>);

impl Registration {
    fn new(pending: &mut Pending, temp: &Path) -> Registration {
        pending.files.push(temp.to_path_buf());
        Registration(Some(temp.to_path_buf()))
    }

    /// Leaves the list, whose lock the caller holds.
    fn leave(mut self, pending: &mut Pending) {
        if let Some(path) = self.0.take() {
            forget_path(&mut pending.files, &path);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            forget_path(&mut pending().files, &path);
        }
    }
}

/// Folders made for an output, from the deepest up to the topmost that did not exist. Dropped without
/// [`keep`](CreatedFolders::keep), it removes them again as long as they are empty, deepest first, so
/// that an output never written leaves no empty folders behind.
#[derive(Debug, Default)]
pub struct CreatedFolders {
    /// Deepest first; empty when nothing had to be made.
    made: Vec<PathBuf>,
}

impl CreatedFolders {
    /// Creates `dir` and its missing parents, remembering the ones it made.
    pub fn create(dir: &Path) -> Result<CreatedFolders> {
        if dir.as_os_str().is_empty() {
            return Ok(CreatedFolders::default());
        }
        let mut pending = pending();
        let made: Vec<PathBuf> =
            dir.ancestors().take_while(|a| !a.as_os_str().is_empty() && !a.exists()).map(Path::to_path_buf).collect();
        let result = std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e));
        // Listed even on a failure: some of them may have been made.
        pending.folders.extend(made.iter().cloned());
        drop(pending);
        let folders = CreatedFolders { made };
        result.map(|()| folders)
    }

    /// The folders made, deepest first.
    pub fn made(&self) -> &[PathBuf] {
        &self.made
    }

    /// Keeps the folders: the output they were made for is in place.
    pub fn keep(mut self) {
        let mut pending = pending();
        for folder in &self.made {
            forget_path(&mut pending.folders, folder);
        }
        self.made.clear();
    }

    /// Adds folders made by another guard (made later, so deeper or beside), to be removed first.
    fn absorb(&mut self, mut other: CreatedFolders) {
        let mut made = std::mem::take(&mut other.made);
        made.append(&mut self.made);
        self.made = made;
    }
}

impl Drop for CreatedFolders {
    fn drop(&mut self) {
        for folder in &self.made {
            // Only empty folders go; the first that is not (something was put there meanwhile) ends it.
            if std::fs::remove_dir(folder).is_err() {
                break;
            }
        }
        if !self.made.is_empty() {
            let mut pending = pending();
            for folder in &self.made {
                forget_path(&mut pending.folders, folder);
            }
        }
    }
}

/// A hidden scratch folder beside an output, holding an intermediate output that is written, committed
/// into it and read again before the real output is (`run --rules` warm-starts into one, then applies
/// the rules). Like staged files, the folder and the files [registered](ScratchFolder::register_contents)
/// in it are removed by [`abandon_uncommitted`] on a signal; its drop removes them otherwise.
pub struct ScratchFolder {
    dir: tempfile::TempDir,
    files: Vec<PathBuf>,
}

impl ScratchFolder {
    /// Makes the folder `<prefix><random>` in `parent`.
    pub fn new_in(parent: &Path, prefix: &str) -> Result<ScratchFolder> {
        let mut pending = pending();
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent).map_err(|e| Error::io(parent, e))?;
        pending.folders.push(dir.path().to_path_buf());
        Ok(ScratchFolder { dir, files: Vec::new() })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Registers the files now in the folder (an output committed into it), so that a signal removes
    /// them too.
    pub fn register_contents(&mut self) -> Result<()> {
        let dir = self.dir.path().to_path_buf();
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut pending = pending();
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            if path.is_file() && !self.files.contains(&path) {
                pending.files.push(path.clone());
                self.files.push(path);
            }
        }
        Ok(())
    }
}

impl Drop for ScratchFolder {
    fn drop(&mut self) {
        let mut pending = pending();
        for file in &self.files {
            forget_path(&mut pending.files, file);
        }
        forget_path(&mut pending.folders, self.dir.path());
        // The `TempDir` field, dropped after this, removes the folder and what it holds.
    }
}

/// One file of an output: a temporary file beside its destination, written through a buffer that counts
/// the bytes. Libraries that write by path (HDF5) write to [`temp_path`](StagedFile::temp_path) instead.
pub struct StagedFile {
    writer: BufWriter<File>,
    temp: tempfile::TempPath,
    dest: PathBuf,
    written: u64,
    /// Dropped after `temp`: the file is gone before it leaves the list.
    registration: Registration,
}

impl std::fmt::Debug for StagedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedFile").field("dest", &self.dest).field("written", &self.written).finish()
    }
}

impl StagedFile {
    /// Creates the temporary file for `dest` in `dest`'s folder.
    fn create(dest: &Path) -> Result<StagedFile> {
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        // Made and listed under the lock, so that a signal never finds it made but not listed.
        let mut pending = pending();
        let (file, temp) = builder.tempfile_in(dir).map_err(|e| Error::io(dest, e))?.into_parts();
        let registration = Registration::new(&mut pending, &temp);
        Ok(StagedFile {
            writer: BufWriter::with_capacity(WRITE_BUFFER, file),
            temp,
            dest: dest.to_path_buf(),
            written: 0,
            registration,
        })
    }

    /// Where the file goes when the output is committed.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The temporary file being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The bytes written through this file's writer so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends `bytes`; an error names the destination.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes).map_err(|e| Error::io(&self.dest, e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Moves the write position to byte `offset` of the file (for formats that lay out their data
    /// before it arrives and take tensors in any order).
    pub fn seek(&mut self, offset: u64) -> Result<()> {
        self.writer.seek(SeekFrom::Start(offset)).map_err(|e| Error::io(&self.dest, e))?;
        Ok(())
    }

    /// Sets the file's length (reserving its size up front, for formats that know it).
    pub fn set_len(&mut self, len: u64) -> Result<()> {
        self.writer.get_ref().set_len(len).map_err(|e| Error::io(&self.dest, e))
    }

    /// Bytes `start..start + len` of the file as a [`TensorRegion`] written at offsets (the file is
    /// extended to hold them); `crc32c` as [`TensorRegion::new`]. The buffer is flushed first. End it
    /// with [`end_region`](StagedFile::end_region).
    pub fn region(&mut self, start: u64, len: u64, crc32c: bool) -> Result<TensorRegion> {
        self.writer.flush().map_err(|e| Error::io(&self.dest, e))?;
        let file = self.writer.get_ref();
        let end =
            start.checked_add(len).ok_or_else(|| Error::TooLarge { path: self.dest.clone(), name: String::new() })?;
        let size = file.metadata().map_err(|e| Error::io(&self.dest, e))?.len();
        if size < end {
            file.set_len(end).map_err(|e| Error::io(&self.dest, e))?;
        }
        let file = file.try_clone().map_err(|e| Error::io(&self.dest, e))?;
        Ok(TensorRegion::new(file, start, len, self.dest.clone(), crc32c))
    }

    /// Ends a region [`region`](StagedFile::region) gave: the bytes it held count as written, and the
    /// writer continues after them.
    pub fn end_region(&mut self, region: TensorRegion) -> Result<()> {
        let (len, end) = (region.len(), region.start() + region.len());
        drop(region);
        self.writer.seek(SeekFrom::Start(end)).map_err(|e| Error::io(&self.dest, e))?;
        self.written += len;
        Ok(())
    }

    /// Flushes the buffer and, with `sync`, the file's data to the disk. A file written by path by
    /// another library is flushed to the disk through this handle as well (fsync acts on the file).
    fn flush(&mut self, sync: bool) -> Result<()> {
        self.writer.flush().map_err(|e| Error::io(&self.dest, e))?;
        if sync {
            self.writer.get_ref().sync_all().map_err(|e| Error::io(&self.dest, e))?;
        }
        Ok(())
    }
}

/// An output of one or more files, put in place together by [`commit`](AtomicOutput::commit).
#[derive(Debug, Default)]
pub struct AtomicOutput {
    // Field order is drop order: temporary files go before the folders that hold them.
    files: Vec<StagedFile>,
    sync: bool,
    folders: CreatedFolders,
    /// The destination that names the commit journal, and the lock on its folder (see [`journal`]).
    claim: Option<(PathBuf, FolderLock)>,
    /// Older files that the commit makes stale and removes (see [`retire`](AtomicOutput::retire)).
    retired: Vec<PathBuf>,
    /// Takes no folder lock and no journal: each file is renamed into place on its own (see
    /// [`unlocked`](AtomicOutput::unlocked)).
    unlocked: bool,
}

impl AtomicOutput {
    /// An empty output; with `sync`, [`commit`](AtomicOutput::commit) flushes every file to the disk
    /// before moving it into place.
    pub fn new(sync: bool) -> AtomicOutput {
        AtomicOutput {
            files: Vec::new(),
            sync,
            folders: CreatedFolders::default(),
            claim: None,
            retired: Vec::new(),
            unlocked: false,
        }
    }

    /// An output that takes no lock on its folder and commits without a journal, each file renamed into
    /// place on its own (atomic per file, in staging order): for one of several workers writing their
    /// own parts of a checkpoint into one folder, which a later locked commit (`merge`) puts together.
    pub fn unlocked(sync: bool) -> AtomicOutput {
        AtomicOutput { unlocked: true, ..AtomicOutput::new(sync) }
    }

    /// Sets whether [`commit`](AtomicOutput::commit) flushes every file to the disk before moving it
    /// into place, for a writer that stages its files before it is told (as the sinks' `sync_on_finish`).
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    /// Makes sure the folder `dir` exists, creating it and its parents if needed; folders made are
    /// removed again unless the output is committed.
    pub fn create_folder(&mut self, dir: &Path) -> Result<()> {
        let made = CreatedFolders::create(dir)?;
        self.folders.absorb(made);
        Ok(())
    }

    /// Starts the file that will be at `dest`, returning its index among the staged files. Files are
    /// moved into place in the order they are staged.
    pub fn stage(&mut self, dest: &Path) -> Result<usize> {
        if self.claim.is_none() && !self.unlocked {
            self.claim(dest, &[])?;
        }
        self.files.push(StagedFile::create(dest)?);
        Ok(self.files.len() - 1)
    }

    /// Locks the folder of `dest` for this output until it is committed or dropped, finishing or rolling
    /// back an interrupted commit there and removing what killed writes of `dest` (or of the `extra`
    /// names in its folder) left; see [`journal::claim`]. The first [`stage`](AtomicOutput::stage) does
    /// it for the staged file, if this was not called first. An output of several files commits through
    /// the journal `<dest>.warmstart-commit`.
    pub fn claim(&mut self, dest: &Path, extra: &[&str]) -> Result<()> {
        let lock = journal::claim(dest, extra)?;
        self.claim = Some((dest.to_path_buf(), lock));
        Ok(())
    }

    /// Stages the existing file `from` to be moved to `dest` by the commit, as a staged file holding its
    /// bytes: a hard link to it under a temporary name beside `dest` (a copy where links are not
    /// possible). `from` itself is left as it is; dropping the output uncommitted removes only the link.
    pub fn stage_existing(&mut self, dest: &Path, from: &Path) -> Result<usize> {
        let index = self.stage(dest)?;
        let file = &mut self.files[index];
        let temp = file.temp_path().to_path_buf();
        std::fs::remove_file(&temp).map_err(|e| Error::io(&temp, e))?;
        if std::fs::hard_link(from, &temp).is_err() {
            std::fs::copy(from, &temp).map_err(|e| Error::io(from, e))?;
        }
        let handle = File::options().append(true).open(&temp).map_err(|e| Error::io(from, e))?;
        file.written = handle.metadata().map_err(|e| Error::io(from, e))?.len();
        file.writer = BufWriter::with_capacity(WRITE_BUFFER, handle);
        Ok(index)
    }

    /// Makes `path`, an older file that the new output makes stale without replacing it (a TF
    /// prefix's data file of another shard count), part of the commit: moved aside with the old key,
    /// put back if the commit rolls back, removed once it is done. The output commits through the
    /// journal even if it has one file.
    pub fn retire(&mut self, path: &Path) {
        self.retired.push(path.to_path_buf());
    }

    /// The staged file `index` (as [`stage`](AtomicOutput::stage) returned it).
    ///
    /// # Panics
    /// If `index` was not returned by `stage` on this output (a bug in the caller, not bad input).
    pub fn file(&mut self, index: usize) -> &mut StagedFile {
        &mut self.files[index]
    }

    /// Every staged file, in staging order.
    pub fn files(&self) -> &[StagedFile] {
        &self.files
    }

    /// Moves every staged file into place, in the order staged (flushing each to the disk first with
    /// `sync`), and keeps the folders made for them. One file is renamed into place; several go through
    /// the journaled sequence of [`journal`] (the last staged, the key, leaves first and arrives last).
    /// If a rename fails, what was in place before is put back and the rest are dropped, so that a
    /// failed commit leaves no partial output behind.
    pub fn commit(mut self) -> Result<()> {
        let sync = self.sync;
        for file in &mut self.files {
            file.flush(sync)?;
        }
        let files = std::mem::take(&mut self.files);
        // Under the lock: a signal's clean-up waits until every file is in place or taken back.
        let mut pending = pending();
        let placed = match &self.claim {
            Some((dest, _)) if files.len() > 1 || !self.retired.is_empty() => {
                place_journaled(dest, files, &self.retired, &mut pending)?
            }
            _ => place(files, &mut pending)?,
        };
        pending.commits += 1;
        drop(pending);
        if sync {
            sync_folders(&placed)?;
        }
        std::mem::take(&mut self.folders).keep();
        Ok(())
    }
}

/// Renames each of `files` into place, in order, with `pending` (their list) locked; if one fails,
/// takes back the ones placed and removes the rest.
fn place(files: Vec<StagedFile>, pending: &mut Pending) -> Result<Vec<PathBuf>> {
    let mut placed: Vec<PathBuf> = Vec::with_capacity(files.len());
    let mut files = files.into_iter();
    while let Some(file) = files.next() {
        let StagedFile { writer, temp, dest, registration, .. } = file;
        drop(writer);
        let result = temp.persist(&dest);
        registration.leave(pending);
        if let Err(e) = result {
            for path in &placed {
                let _ = std::fs::remove_file(path);
            }
            // Their drops would take the lock this thread holds.
            for rest in files {
                let StagedFile { writer, temp, registration, .. } = rest;
                drop((writer, temp));
                registration.leave(pending);
            }
            return Err(Error::io(dest, e.error));
        }
        placed.push(dest);
    }
    Ok(placed)
}

/// Moves `files` into place through a commit journal beside `dest` (see [`journal`]), with `pending`
/// (their list) locked. A failure rolls back to what was in place before.
fn place_journaled(
    dest: &Path,
    files: Vec<StagedFile>,
    retired: &[PathBuf],
    pending: &mut Pending,
) -> Result<Vec<PathBuf>> {
    let mut rename = Renamer::new();
    let planned = plan_of(dest, &files, retired).and_then(|plan| {
        plan.write(&mut rename)?;
        Ok(plan)
    });
    // From here on the journal accounts for the temporary files: they stay until placed or rolled
    // back. Without a journal they go.
    for file in files {
        let StagedFile { writer, temp, registration, .. } = file;
        drop(writer);
        if planned.is_ok() {
            let _ = temp.keep();
        }
        registration.leave(pending);
    }
    let plan = planned?;
    if let Err(e) = plan.roll_forward(&mut rename) {
        let at = &plan.journal;
        return Err(match plan.roll_back(&mut rename) {
            Ok(()) => Error::io(at, std::io::Error::new(e.kind(), format!("{e}; the commit was rolled back"))),
            Err(back) => Error::io(
                at,
                std::io::Error::new(
                    e.kind(),
                    format!("{e}; rolling back failed too ({back}): run `warmstart recover {}`", dest.display()),
                ),
            ),
        });
    }
    plan.done().map_err(|e| Error::io(&plan.journal, e))?;
    Ok(plan.entries.iter().map(|e| e.dest.clone()).collect())
}

/// The journal's plan for `files`, if none of their destinations is a folder.
fn plan_of(dest: &Path, files: &[StagedFile], retired: &[PathBuf]) -> Result<Plan> {
    let mut list = Vec::with_capacity(files.len());
    for file in files {
        if std::fs::symlink_metadata(&file.dest).is_ok_and(|m| m.is_dir()) {
            let e = std::io::Error::new(std::io::ErrorKind::IsADirectory, "a folder stands where the file goes");
            return Err(Error::io(&file.dest, e));
        }
        let size = std::fs::metadata(file.temp_path()).map_err(|e| Error::io(&file.dest, e))?.len();
        list.push((file.dest.clone(), file.temp_path().to_path_buf(), size));
    }
    Ok(Plan::new(dest, &list, retired))
}

/// Flushes to the disk each distinct folder that `files` were renamed into, so that the renames
/// themselves survive a crash of the machine.
fn sync_folders(files: &[PathBuf]) -> Result<()> {
    let mut done: Vec<&Path> = Vec::new();
    for file in files {
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if done.contains(&dir) {
            continue;
        }
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
        done.push(dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_staged_existing_file_moves_on_commit_and_stays_if_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("part.data");
        std::fs::write(&from, b"bytes").unwrap();
        let mut out = AtomicOutput::new(false);
        let i = out.stage_existing(&dir.path().join("dest.data"), &from).unwrap();
        assert_eq!(out.files()[i].written(), 5);
        drop(out);
        assert_eq!(names(dir.path()), ["part.data"]);
        let mut out = AtomicOutput::new(false);
        out.stage_existing(&dir.path().join("dest.data"), &from).unwrap();
        let j = out.stage(&dir.path().join("dest.index")).unwrap();
        out.file(j).write_all(b"i").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read(dir.path().join("dest.data")).unwrap(), b"bytes");
        assert_eq!(std::fs::read(&from).unwrap(), b"bytes");
    }

    #[test]
    #[cfg(unix)]
    fn an_unlocked_output_commits_while_another_writer_holds_the_folder() {
        use std::os::unix::io::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        // Another writer's lock, as another process would hold it (its own open file description).
        let held = File::open(dir.path()).unwrap();
        // SAFETY: flock only takes a file descriptor, which `held` keeps open, and flags.
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
        let mut worker = AtomicOutput::unlocked(false);
        let i = worker.stage(&dir.path().join("b")).unwrap();
        worker.file(i).write_all(b"x").unwrap();
        worker.commit().unwrap();
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"x");
        let locked = AtomicOutput::new(false).stage(&dir.path().join("a")).map(|_| ());
        assert!(locked.unwrap_err().to_string().contains("another warmstart is writing"));
        drop(held);
    }

    #[test]
    fn nothing_is_visible_until_commit_then_everything_is() {
        for sync in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut out = AtomicOutput::new(sync);
            let a = out.stage(&dir.path().join("a.data")).unwrap();
            let b = out.stage(&dir.path().join("b.index")).unwrap();
            out.file(a).write_all(b"abc").unwrap();
            out.file(b).write_all(b"de").unwrap();
            out.file(a).write_all(b"f").unwrap();
            assert_eq!(out.files()[a].written(), 4);
            assert_eq!(out.files()[b].dest(), dir.path().join("b.index"));
            let staged = names(dir.path());
            assert_eq!(staged.len(), 2);
            assert!(staged.iter().all(|n| n.starts_with(".a.data.") || n.starts_with(".b.index.")), "{staged:?}");
            assert!(staged.iter().all(|n| n.ends_with(".tmp")), "{staged:?}");
            out.commit().unwrap();
            assert_eq!(names(dir.path()), ["a.data", "b.index"]);
            assert_eq!(std::fs::read(dir.path().join("a.data")).unwrap(), b"abcf");
            assert_eq!(std::fs::read(dir.path().join("b.index")).unwrap(), b"de");
        }
    }

    #[test]
    fn sync_can_be_set_after_files_are_staged() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = AtomicOutput::new(false);
        let a = out.stage(&dir.path().join("a")).unwrap();
        out.file(a).write_all(b"a").unwrap();
        out.set_sync(true);
        assert!(out.sync);
        out.set_sync(false);
        assert!(!out.sync);
        out.set_sync(true);
        out.commit().unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"a");
    }

    #[test]
    fn a_dropped_output_leaves_nothing_and_replaces_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old"), b"old").unwrap();
        let mut out = AtomicOutput::new(false);
        out.create_folder(&dir.path().join("x/y")).unwrap();
        let i = out.stage(&dir.path().join("x/y/new")).unwrap();
        out.file(i).write_all(b"new").unwrap();
        let j = out.stage(&dir.path().join("old")).unwrap();
        out.file(j).write_all(b"replacement").unwrap();
        drop(out);
        assert_eq!(names(dir.path()), ["old"]);
        assert_eq!(std::fs::read(dir.path().join("old")).unwrap(), b"old");
    }

    #[test]
    fn committed_folders_stay_and_existing_ones_are_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = AtomicOutput::new(false);
        out.create_folder(&dir.path().join("p/q")).unwrap();
        out.create_folder(dir.path()).unwrap();
        let i = out.stage(&dir.path().join("p/q/f")).unwrap();
        out.file(i).write_all(b"1").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read(dir.path().join("p/q/f")).unwrap(), b"1");

        let made = CreatedFolders::create(&dir.path().join("r/s")).unwrap();
        assert_eq!(made.made(), [dir.path().join("r/s"), dir.path().join("r")]);
        drop(made);
        assert_eq!(names(dir.path()), ["p"]);
        // A folder that is not empty any more stays, and so do its parents.
        let made = CreatedFolders::create(&dir.path().join("t/u")).unwrap();
        std::fs::write(dir.path().join("t/keep"), b"").unwrap();
        drop(made);
        assert_eq!(names(&dir.path().join("t")), ["keep"]);
    }

    #[test]
    fn a_failed_rename_takes_back_the_files_already_placed() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = AtomicOutput::new(false);
        let a = out.stage(&dir.path().join("a")).unwrap();
        out.file(a).write_all(b"a").unwrap();
        // The second destination becomes a non-empty folder, which a rename cannot replace.
        let b = out.stage(&dir.path().join("b")).unwrap();
        out.file(b).write_all(b"b").unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/inside"), b"").unwrap();
        let err = out.commit().unwrap_err();
        assert!(err.to_string().contains(&dir.path().join("b").display().to_string()), "{err}");
        assert_eq!(names(dir.path()), ["b"]);
    }

    fn listed(path: &Path) -> (bool, bool) {
        let pending = pending();
        (pending.files.iter().any(|p| p == path), pending.folders.iter().any(|p| p == path))
    }

    #[test]
    fn uncommitted_files_and_made_folders_are_listed_until_committed_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = AtomicOutput::new(false);
        out.create_folder(&dir.path().join("m")).unwrap();
        assert_eq!(listed(&dir.path().join("m")), (false, true));
        let i = out.stage(&dir.path().join("m/f")).unwrap();
        let temp = out.files()[i].temp_path().to_path_buf();
        assert_eq!(listed(&temp), (true, false));
        out.commit().unwrap();
        assert_eq!(listed(&temp), (false, false));
        assert_eq!(listed(&dir.path().join("m")), (false, false));

        let mut out = AtomicOutput::new(false);
        out.create_folder(&dir.path().join("n")).unwrap();
        let i = out.stage(&dir.path().join("n/f")).unwrap();
        let temp = out.files()[i].temp_path().to_path_buf();
        assert_eq!(listed(&temp), (true, false));
        drop(out);
        assert_eq!(listed(&temp), (false, false));
        assert_eq!(listed(&dir.path().join("n")), (false, false));
        assert_eq!(names(dir.path()), ["m"]);
    }

    #[cfg(unix)]
    #[test]
    fn outputs_get_the_permissions_of_an_ordinary_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let mut out = AtomicOutput::new(false);
        out.stage(&dir.path().join("f")).unwrap();
        out.commit().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("f")), mode(&plain));
    }
}
