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
//! Files *retired* by the commit (a TF prefix's data files of an earlier shard count, which the new
//! index does not name) are moved aside in step 2 with the old key, put back on a rollback and removed
//! in step 5 with the other files moved aside.
//!
//! The journal (version 2; version 1, without step lines and retired files, is still read) records
//! the step reached: after steps 2, 3 (each file) and 4 a line `step 2`, `step 3 <file>` or `step 4` is
//! appended. The lines are a hint, neither flushed to the disk nor checked for errors; recovery takes
//! the last one if the files (which of temporary file, destination and file moved aside exist) confirm
//! it, else reads the step off the files alone (only the lines tell a step 2 that moved nothing from
//! step 1). [`recover`] and the next write say where the interrupted write had stopped.
//!
//! At no moment do a key file and data files of different outputs stand together: the old key leaves
//! before any file is replaced and the new key arrives after every file is in place. A failure in steps 2-4 rolls back (new files
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
const MAGIC: &str = "warmstart-commit 2";
/// The first line of a journal of version 1 (no step lines, no retired files), still read.
const MAGIC_V1: &str = "warmstart-commit 1";
/// How many steps a commit has.
const STEPS: u8 = 5;

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
    for done in recover_folder(dir)? {
        let note = format!("{}: an interrupted write was {done}", journal_dest(&done.journal).display());
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

/// Where an interrupted commit had stopped: the last step done, and the last file placed in step 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// 1 (the journal written) to 4 (the new key placed).
    pub step: u8,
    /// The name of the last file put in place in step 3, if the commit had stopped there.
    pub placed: Option<String>,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "it had stopped after step {} of {STEPS}", self.step)?;
        match (self.step, &self.placed) {
            (3, Some(name)) => write!(f, ", {name} placed"),
            (1, _) => f.write_str(", the journal written"),
            (2, _) => f.write_str(", the old files moved aside"),
            (4, _) => f.write_str(", the new key file placed"),
            _ => Ok(()),
        }
    }
}

/// An interrupted commit that was recovered: its journal, how it ended and where it had stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The journal, now removed.
    pub journal: PathBuf,
    /// Rolled forward or back.
    pub outcome: Outcome,
    /// Where the write had stopped.
    pub stopped: Stopped,
}

impl std::fmt::Display for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.outcome, self.stopped)
    }
}

/// Finishes or rolls back every interrupted commit in `dir` (whose lock the caller holds).
fn recover_folder(dir: &Path) -> Result<Vec<Recovered>> {
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
        let stopped = plan.stopped();
        let outcome = plan.recover().map_err(|e| Error::io(&journal, e))?;
        done.push(Recovered { journal, outcome, stopped });
    }
    Ok(done)
}

/// `warmstart recover`: locks the folder of `dest` (or `dest` itself, a folder), finishes or rolls back
/// the interrupted commits there and removes what killed writes left. Gives each commit recovered and
/// how many leftover files were removed.
pub fn recover(dest: &Path) -> Result<(Vec<Recovered>, usize)> {
    let (dir, stems) = if dest.is_dir() {
        (dest.to_path_buf(), None)
    } else {
        (folder_of(dest).to_path_buf(), Some(vec![name_of(dest), "checkpoint".to_string()]))
    };
    let _lock = lock_folder(&dir)?;
    let done = recover_folder(&dir)?;
    let mut stems = stems.unwrap_or_default();
    for r in &done {
        stems.push(name_of(&journal_dest(&r.journal)));
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

/// The renames of a commit, through a hook that tests use to stop the sequence after some step, and
/// the journal's step lines.
pub(crate) struct Renamer<'a> {
    pub hook: Option<&'a mut dyn FnMut() -> io::Result<()>>,
    /// The journal, open for appending step lines (set by [`Plan::write`]).
    log: Option<File>,
}

impl<'a> Renamer<'a> {
    /// Renames without a hook.
    pub fn new() -> Renamer<'a> {
        Renamer { hook: None, log: None }
    }

    /// Renames through `hook`, called before each rename; an error from it is the rename's.
    #[cfg(test)]
    pub fn with_hook(hook: &'a mut dyn FnMut() -> io::Result<()>) -> Renamer<'a> {
        Renamer { hook: Some(hook), log: None }
    }

    fn call(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if let Some(hook) = self.hook.as_mut() {
            hook()?;
        }
        std::fs::rename(from, to)
    }

    /// Appends a step line to the journal: a hint, neither flushed nor checked (a full disk loses it).
    fn note(&mut self, step: &Stopped) {
        if let Some(log) = self.log.as_mut() {
            let line = match &step.placed {
                Some(name) => format!("step {} {}\n", step.step, escape(name)),
                None => format!("step {}\n", step.step),
            };
            let _ = log.write_all(line.as_bytes());
        }
    }
}

/// A journaled commit: the journal's path, its files (the key file last), the older files it retires
/// and the step lines read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub journal: PathBuf,
    pub entries: Vec<Entry>,
    /// Older files that the new output does not replace but makes stale: moved aside with the old key.
    pub retired: Vec<PathBuf>,
    /// The step lines of a journal read back, in order.
    pub steps: Vec<Stopped>,
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

/// One line of a journal.
enum Line {
    File(Entry),
    Retired(PathBuf),
    Step(Stopped),
}

/// Parses a journal line, the names relative to `dir`.
fn parse_line(line: &str, dir: &Path) -> Option<Line> {
    let f: Vec<&str> = line.split(' ').collect();
    match f[..] {
        ["retire", dest] => Some(Line::Retired(dir.join(unescape(dest)?))),
        ["step", n] => Some(Line::Step(Stopped { step: n.parse().ok()?, placed: None })),
        ["step", n, name] => Some(Line::Step(Stopped { step: n.parse().ok()?, placed: Some(unescape(name)?) })),
        [size, old, dest, temp] => {
            let old = match old {
                "0" => false,
                "1" => true,
                _ => return None,
            };
            let (dest, temp) = (unescape(dest)?, unescape(temp)?);
            Some(Line::File(Entry { dest: dir.join(dest), temp: dir.join(temp), size: size.parse().ok()?, old }))
        }
        _ => None,
    }
}

/// The name of `path`, if it is a UTF-8 name in `dir`.
fn name_in<'p>(path: &'p Path, dir: &Path) -> Option<&'p str> {
    if folder_of(path) == dir {
        path.file_name()?.to_str()
    } else {
        None
    }
}

fn not_in_one_folder(path: &Path) -> Error {
    let msg = "a journaled output's files must be UTF-8 names in one folder";
    Error::io(path, io::Error::new(io::ErrorKind::InvalidInput, msg))
}

/// Moves an older file the commit retires aside, if it is still in place.
fn retire(path: &Path, rename: &mut Renamer<'_>) -> io::Result<()> {
    let aside = aside_path(path);
    if exists(path) && !exists(&aside) {
        rename.call(path, &aside)?;
    }
    Ok(())
}

impl Plan {
    /// The plan for moving `files` (destination, temporary file, size; the key file last) into place,
    /// with the journal beside `dest`, retiring those of `retired` that exist and are not among the
    /// destinations.
    pub fn new(dest: &Path, files: &[(PathBuf, PathBuf, u64)], retired: &[PathBuf]) -> Plan {
        let entries: Vec<Entry> = files
            .iter()
            .map(|(dest, temp, size)| Entry { dest: dest.clone(), temp: temp.clone(), size: *size, old: exists(dest) })
            .collect();
        let retired = retired.iter().filter(|r| exists(r) && !entries.iter().any(|e| e.dest == **r)).cloned().collect();
        Plan { journal: journal_path(dest), entries, retired, steps: Vec::new() }
    }

    fn text(&self) -> Result<String> {
        let mut text = format!("{MAGIC}\n");
        let dir = folder_of(&self.journal);
        for e in &self.entries {
            // Temporary files are made beside their destinations (under the folder's absolute path).
            let temp = e.temp.file_name().and_then(|n| n.to_str());
            let (Some(dest), Some(temp)) = (name_in(&e.dest, dir), temp) else {
                return Err(not_in_one_folder(&e.dest));
            };
            text.push_str(&format!("{} {} {} {}\n", e.size, u8::from(e.old), escape(dest), escape(temp)));
        }
        for r in &self.retired {
            let name = name_in(r, dir).ok_or_else(|| not_in_one_folder(r))?;
            text.push_str(&format!("retire {}\n", escape(name)));
        }
        Ok(text)
    }

    /// Writes the journal: a temporary file, flushed to the disk, renamed into place, the folder
    /// flushed. `rename` keeps it open for the step lines.
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
        let (file, temp) = temp.into_parts();
        rename.call(&temp, &self.journal).map_err(io_err)?;
        // The journal is in place; the temporary path is gone with the rename.
        let _ = temp.keep();
        rename.log = Some(file);
        sync_dir(dir).map_err(io_err)
    }

    /// Reads a journal written by [`write`](Plan::write) (or by version 1). The lines after the first
    /// step line are hints: one that does not parse (a crash of the machine may leave one half
    /// written) ends them.
    pub fn read(journal: &Path) -> Result<Plan> {
        let bytes = std::fs::read(journal).map_err(|e| Error::io(journal, e))?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines();
        let v1 = match lines.next() {
            Some(MAGIC) => false,
            Some(MAGIC_V1) => true,
            _ => return Err(bad_journal(journal, "first line")),
        };
        let dir = folder_of(journal);
        let mut plan =
            Plan { journal: journal.to_path_buf(), entries: Vec::new(), retired: Vec::new(), steps: Vec::new() };
        for line in lines {
            match parse_line(line, dir) {
                Some(Line::Step(_) | Line::Retired(_)) if v1 => return Err(bad_journal(journal, line)),
                Some(Line::Step(step)) => plan.steps.push(step),
                _ if !plan.steps.is_empty() => break,
                Some(Line::File(entry)) => plan.entries.push(entry),
                Some(Line::Retired(path)) => plan.retired.push(path),
                None => return Err(bad_journal(journal, line)),
            }
        }
        if plan.entries.is_empty() {
            return Err(bad_journal(journal, "no files"));
        }
        Ok(plan)
    }

    /// Steps 2-4: puts every new file in place, the old key (and the files retired) aside first and
    /// the new key last, appending a step line after each. Starts from wherever an earlier attempt
    /// stopped.
    pub fn roll_forward(&self, rename: &mut Renamer<'_>) -> io::Result<()> {
        let Some((key, rest)) = self.entries.split_last() else { return Ok(()) };
        if key.placed() {
            return Ok(());
        }
        key.set_aside(rename)?;
        for r in &self.retired {
            retire(r, rename)?;
        }
        rename.note(&Stopped { step: 2, placed: None });
        for e in rest {
            if !e.placed() {
                e.set_aside(rename)?;
                rename.call(&e.temp, &e.dest)?;
                rename.note(&Stopped { step: 3, placed: Some(name_of(&e.dest)) });
            }
        }
        rename.call(&key.temp, &key.dest)?;
        rename.note(&Stopped { step: 4, placed: None });
        Ok(())
    }

    /// Puts the older files back: the new files in place are removed (the key first), then the files
    /// moved aside are renamed back (the retired ones first, the key last); the temporary files and the
    /// journal are removed.
    pub fn roll_back(&self, rename: &mut Renamer<'_>) -> io::Result<()> {
        for e in self.entries.iter().rev() {
            if e.placed() {
                std::fs::remove_file(&e.dest)?;
            }
        }
        let olds = self.entries.iter().filter(|e| e.old).map(|e| &e.dest);
        for dest in self.retired.iter().chain(olds) {
            let aside = aside_path(dest);
            if exists(&aside) && !exists(dest) {
                rename.call(&aside, dest)?;
            }
        }
        for e in &self.entries {
            let _ = std::fs::remove_file(&e.temp);
        }
        self.remove_journal()
    }

    /// Step 5: the commit is done; the journal goes, then the files moved aside and retired.
    pub fn done(&self) -> io::Result<()> {
        self.remove_journal()?;
        let olds = self.entries.iter().filter(|e| e.old).map(|e| &e.dest);
        for dest in olds.chain(&self.retired) {
            let aside = aside_path(dest);
            if exists(&aside) {
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

    /// The step reached as the files show it: 4 once the new key is placed, 3 (and the last file
    /// placed) once a file is, 2 once the old key (or a retired file) is aside, else 1.
    fn step_of_files(&self) -> Stopped {
        let Some((key, rest)) = self.entries.split_last() else { return Stopped { step: 1, placed: None } };
        if key.placed() {
            return Stopped { step: 4, placed: None };
        }
        if let Some(last) = rest.iter().rev().find(|e| e.placed()) {
            return Stopped { step: 3, placed: Some(name_of(&last.dest)) };
        }
        let aside = |p: &PathBuf| exists(&aside_path(p)) && !exists(p);
        if (key.old && aside(&key.dest)) || self.retired.iter().any(aside) {
            return Stopped { step: 2, placed: None };
        }
        Stopped { step: 1, placed: None }
    }

    /// Where the commit had stopped: the last step line if the files confirm it (a step 2 without an
    /// old key is seen only there), else what the files show.
    pub fn stopped(&self) -> Stopped {
        let files = self.step_of_files();
        match self.steps.last() {
            Some(hint) if *hint == files => files,
            Some(hint) if hint.step == 2 && files.step == 1 => hint.clone(),
            _ => files,
        }
    }

    /// Finishes the interrupted commit if the new key was placed (step 4) or every new file is there,
    /// else rolls it back.
    pub fn recover(&self) -> io::Result<Outcome> {
        let mut rename = Renamer::new();
        if self.stopped().step == 4 || self.complete() {
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
