//! All-or-nothing commits of multi-file outputs, and one writer per destination folder.
//!
//! A TF checkpoint's data files are named by its prefix and shard count, so no single rename swaps a
//! whole checkpoint. [`AtomicOutput::commit`](crate::output::AtomicOutput::commit) of an output of
//! several files (the *key* file, the TF index, staged last) therefore runs a short journaled sequence:
//!
//! 1. every temporary file is flushed (fsync with `sync`), and the commit journal
//!    `<dest>.warmstart-commit` is written beside the destination (through a temporary file, fsynced,
//!    renamed into place, the folder fsynced): its plan lists, for each file, its destination, its
//!    temporary file, its size and whether an older file stood at the destination;
//! 2. the old key file (the old index) is moved aside to `.<name>.warmstart-old`: from now on no
//!    index stands under the prefix;
//! 3. each other file in staging order: the old one (if any) is moved aside to `.<name>.warmstart-old`,
//!    then the new one is renamed into place;
//! 4. the new key file is renamed into place, last;
//! 5. the journal is removed (the commit is done), then the files moved aside.
//!
//! The step reached is read off the files themselves (which of temporary file, destination and file
//! moved aside exist), so the sequence costs no write beyond the journal. At no moment do a key file and
//! data files of different outputs stand together: the old key leaves before any file is replaced and
//! the new key arrives after every file is in place. A failure in steps 2-4 rolls back (new files
//! removed, the key first; the files moved aside put back, the key last), so an older checkpoint is
//! never lost. After a kill, [`recover`] (or the next write to the folder, see [`claim`]) rolls the
//! commit forward if every new file is in place or staged whole (its recorded size), else back.
//!
//! Names left by a killed writer, all in the destination's folder and removed by the next write there
//! or by `recover`: `.<name>.<6 letters or digits>.tmp` (temporary files, the journal's own included),
//! `.<name>.warmstart-old` (files moved aside) and `<dest>.warmstart-commit` (the journal).
//!
//! Writers lock the destination folder (an advisory `flock` on the folder itself, so that nothing is
//! left behind) from their first staged file until their commit or drop: a second writer to the same
//! folder fails within half a second, or waits with [`set_wait_for_lock`].

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::{Error, Result};

/// The suffix of a commit journal: `<dest>.warmstart-commit`.
pub const JOURNAL_SUFFIX: &str = ".warmstart-commit";
/// The suffix of a file moved aside during a commit: `.<name>.warmstart-old`.
pub const ASIDE_SUFFIX: &str = ".warmstart-old";
/// The first line of a journal.
const MAGIC: &str = "warmstart-commit 1";

/// How long a writer without `--wait` retries a held lock before failing.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

static WAIT: AtomicBool = AtomicBool::new(false);
static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Makes writers wait for another writer's lock on their destination folder instead of failing.
pub fn set_wait_for_lock(wait: bool) {
    WAIT.store(wait, Ordering::Relaxed);
}

/// What the writes of this process recovered (one line each), taken from the list.
pub fn take_notes() -> Vec<String> {
    std::mem::take(&mut *NOTES.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// `<dest>.warmstart-commit`.
pub fn journal_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(JOURNAL_SUFFIX);
    PathBuf::from(s)
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn name_of(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `.<name>.warmstart-old` beside `dest`.
fn aside_path(dest: &Path) -> PathBuf {
    folder_of(dest).join(format!(".{}{ASIDE_SUFFIX}", name_of(dest)))
}

/// An advisory lock on a destination folder, held until dropped (shared by the outputs of this process
/// writing to that folder at once).
#[derive(Debug)]
pub struct FolderLock {
    _file: Arc<File>,
    /// Whether another output of this process held the lock already.
    shared: bool,
}

/// The folders this process holds locked, so that two outputs of one process (say a safetensors and
/// an HDF5 file written side by side) share the lock rather than refuse each other.
static LOCKED: Mutex<Vec<(PathBuf, Weak<File>)>> = Mutex::new(Vec::new());

/// Locks `dir` for writing (waiting if [`set_wait_for_lock`] said so).
pub fn lock_folder(dir: &Path) -> Result<FolderLock> {
    let key = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    let mut locked = LOCKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    locked.retain(|(_, f)| f.strong_count() > 0);
    if let Some(file) = locked.iter().find(|(d, _)| *d == key).and_then(|(_, f)| f.upgrade()) {
        return Ok(FolderLock { _file: file, shared: true });
    }
    drop(locked);
    let file = Arc::new(flock(dir)?);
    let mut locked = LOCKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    locked.push((key, Arc::downgrade(&file)));
    Ok(FolderLock { _file: file, shared: false })
}

/// Opens `dir` and takes its `flock`.
fn flock(dir: &Path) -> Result<File> {
    let file = File::open(dir).map_err(|e| Error::io(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        let wait = WAIT.load(Ordering::Relaxed);
        let op = if wait { libc::LOCK_EX } else { libc::LOCK_EX | libc::LOCK_NB };
        let start = std::time::Instant::now();
        loop {
            // SAFETY: flock only takes a file descriptor, which `file` keeps open, and flags.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                // A child forked by another thread of this process holds a copy of a lock just let go
                // until it execs: a short grace before giving up.
                io::ErrorKind::WouldBlock if start.elapsed() < LOCK_GRACE => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                io::ErrorKind::WouldBlock => {
                    let msg = "another warmstart is writing to this folder; wait for it, or pass --wait";
                    return Err(Error::io(dir, io::Error::new(io::ErrorKind::WouldBlock, msg)));
                }
                _ => return Err(Error::io(dir, e)),
            }
        }
    }
    Ok(file)
}

/// Locks the folder of `dest`, recovers every interrupted commit in it and removes what killed writes
/// of `dest` (or of the `extra` names in its folder, as TF's `checkpoint`) left behind.
pub fn claim(dest: &Path, extra: &[&str]) -> Result<FolderLock> {
    let dir = folder_of(dest);
    let lock = lock_folder(dir)?;
    if lock.shared {
        // Recovered when this process took the lock; its other outputs' files are not leftovers.
        return Ok(lock);
    }
    for (journal, outcome) in recover_folder(dir)? {
        let note = format!("{}: an interrupted write was {outcome}", journal_dest(&journal).display());
        NOTES.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(note);
    }
    let mut stems = vec![name_of(dest)];
    stems.extend(extra.iter().map(|s| s.to_string()));
    sweep(dir, &stems);
    Ok(lock)
}

fn journal_dest(journal: &Path) -> PathBuf {
    let s = journal.as_os_str().to_string_lossy();
    PathBuf::from(s.strip_suffix(JOURNAL_SUFFIX).unwrap_or(&s))
}

/// How an interrupted commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every new file was there: the commit was finished.
    RolledForward,
    /// The older files were put back.
    RolledBack,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::RolledForward => "rolled forward (the new output is in place)",
            Outcome::RolledBack => "rolled back (the earlier output is in place)",
        })
    }
}

/// Finishes or rolls back every interrupted commit in `dir` (whose lock the caller holds).
fn recover_folder(dir: &Path) -> Result<Vec<(PathBuf, Outcome)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut journals: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(JOURNAL_SUFFIX))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    journals.sort();
    let mut done = Vec::new();
    for journal in journals {
        let plan = Plan::read(&journal)?;
        let outcome = plan.recover().map_err(|e| Error::io(&journal, e))?;
        done.push((journal, outcome));
    }
    Ok(done)
}

/// `warmstart recover`: locks the folder of `dest` (or `dest` itself, a folder), finishes or rolls back
/// the interrupted commits there and removes what killed writes left. Gives each commit recovered and
/// how many leftover files were removed.
pub fn recover(dest: &Path) -> Result<(Vec<(PathBuf, Outcome)>, usize)> {
    let (dir, stems) = if dest.is_dir() {
        (dest.to_path_buf(), None)
    } else {
        (folder_of(dest).to_path_buf(), Some(vec![name_of(dest), "checkpoint".to_string()]))
    };
    let _lock = lock_folder(&dir)?;
    let done = recover_folder(&dir)?;
    let mut stems = stems.unwrap_or_default();
    for (journal, _) in &done {
        stems.push(name_of(&journal_dest(journal)));
    }
    if stems.is_empty() || dest.is_dir() {
        stems.push(String::new());
    }
    Ok((done, sweep(&dir, &stems)))
}

/// Whether `file_name` is a temporary file or a file moved aside of a write to a destination named
/// `stem` (or a name starting `stem.`; every such name when `stem` is empty).
fn is_leftover(file_name: &str, stem: &str) -> bool {
    let Some(rest) = file_name.strip_prefix('.') else { return false };
    let name = if let Some(n) = rest.strip_suffix(ASIDE_SUFFIX) {
        n
    } else if let Some(n) = rest.strip_suffix(".tmp") {
        match n.rsplit_once('.') {
            Some((n, random)) if random.len() == 6 && random.bytes().all(|b| b.is_ascii_alphanumeric()) => n,
            _ => return false,
        }
    } else {
        return false;
    };
    !name.is_empty() && (stem.is_empty() || name == stem || name.starts_with(&format!("{stem}.")))
}

/// Removes the leftovers of killed writes of `stems` in `dir`, giving how many.
fn sweep(dir: &Path, stems: &[String]) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = stems.iter().any(|s| is_leftover(&name, s));
        if ours && entry.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// One file of a journaled commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub dest: PathBuf,
    pub temp: PathBuf,
    pub size: u64,
    /// Whether an older file stood at `dest` when the journal was written.
    pub old: bool,
}

impl Entry {
    /// Whether the new file is in place.
    fn placed(&self) -> bool {
        !exists(&self.temp) && exists(&self.dest) && (!self.old || exists(&aside_path(&self.dest)))
    }

    /// Moves the older file aside, if it is still in place.
    fn set_aside(&self, rename: &mut Renamer<'_>) -> io::Result<()> {
        let aside = aside_path(&self.dest);
        if self.old && !exists(&aside) && exists(&self.dest) {
            rename.call(&self.dest, &aside)?;
        }
        Ok(())
    }
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The renames of a commit, through a hook that tests use to stop the sequence after some step.
pub(crate) struct Renamer<'a> {
    pub hook: Option<&'a mut dyn FnMut() -> io::Result<()>>,
}

impl Renamer<'_> {
    fn call(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if let Some(hook) = self.hook.as_mut() {
            hook()?;
        }
        std::fs::rename(from, to)
    }
}

/// A journaled commit: the journal's path and its files, the key file last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub journal: PathBuf,
    pub entries: Vec<Entry>,
}

/// Escapes a file name for a journal line: `%`, spaces and control bytes as `%XX`.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c == '%' || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn unescape(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut it = text.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

fn bad_journal(journal: &Path, what: &str) -> Error {
    let msg = format!("not a warmstart commit journal ({what}); move it away if it is not ours");
    Error::io(journal, io::Error::new(io::ErrorKind::InvalidData, msg))
}

impl Plan {
    /// The plan for moving `files` (destination, temporary file, size; the key file last) into place,
    /// with the journal beside `dest`.
    pub fn new(dest: &Path, files: &[(PathBuf, PathBuf, u64)]) -> Plan {
        let entries = files
            .iter()
            .map(|(dest, temp, size)| Entry { dest: dest.clone(), temp: temp.clone(), size: *size, old: exists(dest) })
            .collect();
        Plan { journal: journal_path(dest), entries }
    }

    fn text(&self) -> Result<String> {
        let mut text = format!("{MAGIC}\n");
        let dir = folder_of(&self.journal);
        for e in &self.entries {
            // Temporary files are made beside their destinations (under the folder's absolute path).
            let names = [&e.dest, &e.temp].map(|p| p.file_name()?.to_str());
            let names = if folder_of(&e.dest) == dir { names } else { [None, None] };
            let [Some(dest), Some(temp)] = names else {
                let msg = "a journaled output's files must be UTF-8 names in one folder";
                return Err(Error::io(&e.dest, io::Error::new(io::ErrorKind::InvalidInput, msg)));
            };
            text.push_str(&format!("{} {} {} {}\n", e.size, u8::from(e.old), escape(dest), escape(temp)));
        }
        Ok(text)
    }

    /// Writes the journal: a temporary file, flushed to the disk, renamed into place, the folder
    /// flushed.
    pub fn write(&self, rename: &mut Renamer<'_>) -> Result<()> {
        let text = self.text()?;
        let dir = folder_of(&self.journal);
        let io_err = |e| Error::io(&self.journal, e);
        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name_of(&self.journal)))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(io_err)?;
        temp.write_all(text.as_bytes()).and_then(|()| temp.as_file().sync_all()).map_err(io_err)?;
        let temp = temp.into_temp_path();
        rename.call(&temp, &self.journal).map_err(io_err)?;
        // The journal is in place; the temporary path is gone with the rename.
        let _ = temp.keep();
        sync_dir(dir).map_err(io_err)
    }

    /// Reads a journal written by [`write`](Plan::write).
    pub fn read(journal: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(journal).map_err(|e| Error::io(journal, e))?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(bad_journal(journal, "first line"));
        }
        let dir = folder_of(journal);
        let mut entries = Vec::new();
        for line in lines {
            let f: Vec<&str> = line.split(' ').collect();
            let parsed = match f[..] {
                [size, old, dest, temp] => (|| {
                    let old = match old {
                        "0" => false,
                        "1" => true,
                        _ => return None,
                    };
                    let (dest, temp) = (unescape(dest)?, unescape(temp)?);
                    Some(Entry { dest: dir.join(dest), temp: dir.join(temp), size: size.parse().ok()?, old })
                })(),
                _ => None,
            };
            entries.push(parsed.ok_or_else(|| bad_journal(journal, line))?);
        }
        if entries.is_empty() {
            return Err(bad_journal(journal, "no files"));
        }
        Ok(Plan { journal: journal.to_path_buf(), entries })
    }

    /// Steps 2-4: puts every new file in place, the old key aside first and the new key last. Starts
    /// from wherever an earlier attempt stopped.
    pub fn roll_forward(&self, rename: &mut Renamer<'_>) -> io::Result<()> {
        let Some((key, rest)) = self.entries.split_last() else { return Ok(()) };
        if !key.placed() {
            key.set_aside(rename)?;
        }
        for e in rest.iter().chain([key]) {
            if !e.placed() {
                e.set_aside(rename)?;
                rename.call(&e.temp, &e.dest)?;
            }
        }
        Ok(())
    }

    /// Puts the older files back: the new files in place are removed (the key first), then the files
    /// moved aside are renamed back (the key last); the temporary files and the journal are removed.
    pub fn roll_back(&self, rename: &mut Renamer<'_>) -> io::Result<()> {
        for e in self.entries.iter().rev() {
            if e.placed() {
                std::fs::remove_file(&e.dest)?;
            }
        }
        for e in &self.entries {
            let aside = aside_path(&e.dest);
            if e.old && exists(&aside) && !exists(&e.dest) {
                rename.call(&aside, &e.dest)?;
            }
        }
        for e in &self.entries {
            let _ = std::fs::remove_file(&e.temp);
        }
        self.remove_journal()
    }

    /// Step 5: the commit is done; the journal goes, then the files moved aside.
    pub fn done(&self) -> io::Result<()> {
        self.remove_journal()?;
        for e in &self.entries {
            let aside = aside_path(&e.dest);
            if e.old && exists(&aside) {
                let _ = std::fs::remove_file(aside);
            }
        }
        Ok(())
    }

    fn remove_journal(&self) -> io::Result<()> {
        match std::fs::remove_file(&self.journal) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(folder_of(&self.journal)),
        }
    }

    /// Whether every new file is in place or staged whole.
    fn complete(&self) -> bool {
        self.entries
            .iter()
            .all(|e| e.placed() || std::fs::symlink_metadata(&e.temp).is_ok_and(|m| m.is_file() && m.len() == e.size))
    }

    /// Finishes the interrupted commit if every new file is there, else rolls it back.
    pub fn recover(&self) -> io::Result<Outcome> {
        let mut rename = Renamer { hook: None };
        if self.complete() {
            self.roll_forward(&mut rename)?;
            self.done()?;
            Ok(Outcome::RolledForward)
        } else {
            self.roll_back(&mut rename)?;
            Ok(Outcome::RolledBack)
        }
    }
}

/// Flushes a folder's entries (renames, removals) to the disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests;
