//! A vocabulary remap whose old tensor is larger than a block, in one pass over the old tensor in
//! file order and in bounded memory, whatever the permutation of the vocabulary.
//!
//! Gathering new rows at random from the old tensor would need all of it resident (a memory map's
//! pages count in resident memory), and filling new rows window by window, each window in one pass over
//! the old tensor, costs one pass per window: quadratic. Here the new tensor's bytes are cut into
//! *regions* of about two blocks, and:
//! 1. the old tensor is read once, in file order, chunk by chunk (each chunk released once used), by
//!    one task per thread on its own contiguous range of old rows. Each old row feeding a new row (the
//!    remap is injective but for duplicate new tokens, which are read again in step 2) is made into its
//!    new row at once (columns remapped, the backup constant in the missing cells) and appended to a
//!    small staging buffer of its destination region; full buffers are queued for the writer thread
//!    about a MiB at a time ([`STAGE_BATCH_BYTES`]: one job per buffer made 53-93k context switches
//!    at 4 x W1, batches 10-17k), which writes each, in one positional write, to the next free
//!    *slots* of its region in the output
//!    (the rows of a region arrive in old row order, so each row's slot is known beforehand);
//! 2. once the writer has written them all (a fence), each region in turn is read back (one positional
//!    read, from the page cache; a cancel is noticed before each), its rows put in order, the rows
//!    without an old row (and, for a backup that is the target's initial value, the missing cells)
//!    filled, and queued for the writer thread, which appends it to the tensor's CRC32C (if the sink
//!    wants it; the regions come in order) a MiB at a time, each piece just before it writes it back in
//!    place.
//!
//! The output is written at offsets ([`warmstart_core::TensorRegion`]) when the sink can
//! ([`warmstart_core::CheckpointSink::writes_at_offsets`]: TF bundles and safetensors); otherwise step 1
//! goes to an anonymous temporary file and step 2 streams the regions to the sink in order. Memory: the
//! staging buffers (at most [`STAGE_BYTES`] per thread, and a few more queued), up to [`IN_FLIGHT`] + 1
//! regions, and 8 bytes per row of the old and the new vocabulary (the inverse map and each row's slot).
//!
//! Why (measured with `perf` on W1 of `cargo xtask bench`, a shuffled 1,000,000 x 128 embedding): the
//! windowed remap this replaces spent its time re-reading the old tensor once per 64 MiB window (8
//! passes over 512 MB, page faults and copies of rows it did not keep); here the old tensor is read
//! once, and the output is written twice (once in slots, once in order) through the page cache.
//!
//! Every write goes through the writer thread (`Job::WriteAt`), because:
//! - the kernel serialises writes to one file on its inode's lock: with the threads making rows writing
//!   themselves, `perf` showed 5-6% of the time spinning on it (a session of 2026-11-30, on a quiet
//!   machine); a single writer never contends, and the threads making rows never wait on the file;
//! - the output's CRC32C is then computed in order on one thread, where it was computed per thread and
//!   combined with `crc32c_combine`, about 250 us a call: at 1/4 of W1 the combines were 14.4M of 394M
//!   instructions (callgrind, user space), and 0.4M after.
//!
//! An old tensor whose source stores its CRC32C ([`CheckpointSource::stores_crc32c`]: a TF bundle's
//! entry) is verified in step 1's own pass: every chunk is read unverified and hashed, the threads'
//! sums combined (one combine per thread) and checked ([`CheckpointSource::verify_crc32c`]) before
//! step 2 (which writes nothing before it, and whose reads of duplicate rows then find the tensor
//! verified). The source used to verify it on its first read, a separate pass over the whole tensor
//! (its pages faulted in and released once more), which the read-ahead in `execute` could not hide when
//! the embedding is the first tensor written. A damaged embedding is refused as before
//! (`a_damaged_old_embedding_is_refused_and_nothing_is_written`). Measured at 1/4 of W1 (callgrind):
//! 381.3M -> 373.6M instructions (-2%; the chunked check's own combines go).
//!
//! Measured at 1/4 of W1 with callgrind (user space, so the kernel's locking does not show): 394M
//! instructions before, 381M after (-3%); the buffers queued add about 10 MiB of peak memory (85 -> 95
//! MiB at W1) and 4,500 page faults. The wall-time gain could not be measured on the loaded machine of
//! 2026-12-07 (load 7-12 on 2 cores, +-40% between rounds).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{mpsc, Arc};

use rayon::prelude::*;
use warmstart_core::{CheckpointSource, TensorRegion};
use warmstart_planner::{Action, OutputTensor, PartitionRemap, RemapPlan, VariablePlan};

use crate::remap::{fill_row_from, first_read_here, old_row_of, Backup};
use crate::rows::{check_len, checked_len, Release};
use crate::writer::{Stop, Writer};
use crate::{ExecError, Job};

/// No row (in the inverse map and the slots).
const NONE: u32 = u32::MAX;
/// A new row whose old row already feeds another new row: read again in step 2.
const DUP: u32 = u32::MAX - 1;

/// The most bytes of staging buffers one thread holds (each region's buffer gets its share, at most a
/// sixteenth of a block, at least one row).
pub(crate) const STAGE_BYTES: u64 = 16 << 20;

/// Rows per parallel task when a region is put in order.
const ROWS_PER_TASK: usize = 64;

/// The remap of `var`, if its output tensor (`rows` whole rows of `row_bytes`, `whole_rows` unless the
/// output is a box cut out of its rows) is written here: its old tensor is listed with rows of some
/// bytes, more than `block_bytes` in all.
pub(crate) fn applies<'a>(
    var: &'a VariablePlan,
    old: &dyn CheckpointSource,
    row_bytes: usize,
    rows: u64,
    whole_rows: bool,
    block_bytes: u64,
) -> Option<&'a RemapPlan> {
    let Action::Remap(remap) = &var.action else { return None };
    let info = old.tensor(&remap.from)?;
    info.row_bytes().filter(|&b| b > 0)?;
    let large = info.byte_len().is_some_and(|b| b > block_bytes);
    let fits = rows < u64::from(DUP) && info.rows() < u64::from(DUP);
    (whole_rows && row_bytes > 0 && large && fits).then_some(remap)
}

/// What the variable's rows are made of.
struct Ctx<'a> {
    var: &'a VariablePlan,
    remap: &'a RemapPlan,
    old: &'a dyn CheckpointSource,
    target: &'a dyn CheckpointSource,
    row_bytes: usize,
    block_bytes: u64,
}

/// Writes the output tensor `out` of the remapped variable `var`: its rows `rows` (of the variable),
/// `row_bytes` each. Returns the bytes written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_remapped<'a>(
    var: &'a VariablePlan,
    remap: &'a RemapPlan,
    out: &'a OutputTensor,
    rows: Range<u64>,
    row_bytes: usize,
    old: &'a dyn CheckpointSource,
    target: &'a dyn CheckpointSource,
    writer: &Writer<'a>,
    block_bytes: u64,
    done: u64,
) -> Result<u64, Stop> {
    let len = checked_len(&var.name, rows.end - rows.start, row_bytes)? as u64;
    let (region, offsets) = if writer.offsets() {
        (writer.begin_at(&out.sink)?, true)
    } else {
        writer.send(Job::Begin(&out.sink))?;
        (TensorRegion::scratch(len)?, false)
    };
    let hash = offsets && region.wants_crc32c();
    let region = Arc::new(region);
    let mut emitter = Emitter { writer, region, offsets, hash, done, written: 0, in_flight: 0 };
    let ctx = Ctx { var, remap, old, target, row_bytes, block_bytes };
    let mut parts: Vec<&PartitionRemap> = remap.partitions.iter().collect();
    parts.sort_by_key(|p| p.geometry.offset);
    let mut at = rows.start;
    for part in parts {
        let (a, b) = (part.geometry.offset, part.geometry.offset.saturating_add(part.geometry.rows));
        let (s, e) = (a.max(at), b.min(rows.end));
        if s >= e {
            continue;
        }
        // Rows of a partition the selection left out keep their initial value.
        emitter.initial_rows(&ctx, at..s)?;
        let base = (s - rows.start) * row_bytes as u64;
        remap_segment(&ctx, part, s - a..e - a, s, base, &mut emitter)?;
        at = e;
    }
    emitter.initial_rows(&ctx, at..rows.end)?;
    let Emitter { region, written, .. } = emitter;
    if offsets {
        writer.send(Job::EndAt(region))?;
    } else {
        writer.send(Job::End)?;
    }
    Ok(written)
}

/// The output tensor's bytes in order: written back at offsets (and hashed) or streamed to the sink.
struct Emitter<'w, 'a> {
    writer: &'w Writer<'a>,
    /// The output tensor's region, or the scratch file of step 1.
    region: Arc<TensorRegion>,
    offsets: bool,
    /// Whether the writer hashes the bytes (the sink wants the tensor's CRC32C).
    hash: bool,
    /// Progress already reported before this tensor.
    done: u64,
    written: u64,
    /// Buffers queued for the writer and not yet taken back (at most about).
    in_flight: usize,
}

/// The buffers of ordered bytes queued for the writer at once: more would cost memory, and new buffers
/// (zeroed, and faulted in) cost more than waiting for the writer to give one back.
const IN_FLIGHT: usize = 2;

impl<'a> Emitter<'_, 'a> {
    /// The next bytes of the tensor; gives back a buffer for the next ones.
    fn emit(&mut self, bytes: Vec<u8>) -> Result<Vec<u8>, Stop> {
        self.written += bytes.len() as u64;
        if !self.offsets {
            let done = Some(self.done + self.written);
            self.writer.send(Job::Data { bytes: Cow::Owned(bytes), done, release: None })?;
            return Ok(self.writer.buffer());
        }
        let (region, at) = (Arc::clone(&self.region), self.written - bytes.len() as u64);
        let done = Some(self.done + self.written);
        self.writer.send(Job::WriteAt { region, at, bytes, hash: self.hash, done, back: None })?;
        self.in_flight += 1;
        // Its bytes as they were: the caller overwrites every byte it uses.
        let buf = self.writer.buffer_as_is(self.in_flight > IN_FLIGHT);
        if buf.capacity() > 0 {
            // Any buffer the writer gave back (another's too: the count stays at most the true one, so
            // a wait always has a buffer coming).
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        Ok(buf)
    }

    /// Rows `rows` of the target's tensor, as they are.
    fn initial_rows(&mut self, ctx: &Ctx<'a>, rows: Range<u64>) -> Result<(), Stop> {
        let per_block = (ctx.block_bytes / ctx.row_bytes as u64).max(1);
        let mut start = rows.start;
        while start < rows.end {
            let end = start.saturating_add(per_block).min(rows.end);
            let (bytes, release) = Release::read(ctx.target, &ctx.var.tensor, start..end)?;
            check_len(&ctx.var.tensor, start, end, bytes.len(), (end - start) as usize * ctx.row_bytes)?;
            if self.offsets {
                let _ = self.emit(bytes.into_owned())?;
                if let Some(release) = release {
                    release.run();
                }
            } else {
                self.written += bytes.len() as u64;
                let done = Some(self.done + self.written);
                self.writer.send(Job::Data { bytes, done, release })?;
            }
            start = end;
        }
        Ok(())
    }
}

/// Where each row of a segment comes from, and where step 1 puts it.
struct Layout {
    /// Old row -> the local row (from the segment's start) it feeds, or [`NONE`].
    inverse: Vec<u32>,
    /// Local row -> its slot in its region, [`DUP`] or [`NONE`] (no old row).
    slot: Vec<u32>,
    /// Slots used per region.
    used: Vec<u32>,
    region_rows: usize,
}

/// The layout of local rows `local` of `part` (old rows `old_rows` of `from`).
fn layout(
    part: &PartitionRemap,
    from: &str,
    local: &Range<u64>,
    old_rows: usize,
    region_rows: usize,
) -> Result<Layout, ExecError> {
    let n = (local.end - local.start) as usize;
    let mut inverse = vec![NONE; old_rows];
    let mut slot = vec![NONE; n];
    for (k, s) in slot.iter_mut().enumerate() {
        let Ok(o) = usize::try_from(old_row_of(part, local.start + k as u64)) else { continue };
        match inverse.get_mut(o) {
            None => {
                let expected = o.saturating_add(1);
                return Err(ExecError::ShortRead {
                    tensor: from.to_string(),
                    start: o as u64,
                    end: o as u64 + 1,
                    got: old_rows,
                    expected,
                });
            }
            Some(i) if *i == NONE => *i = k as u32,
            Some(_) => *s = DUP,
        }
    }
    let mut used = vec![0u32; n.div_ceil(region_rows)];
    for &k in &inverse {
        if k != NONE {
            let r = k as usize / region_rows;
            slot[k as usize] = used[r];
            used[r] += 1;
        }
    }
    Ok(Layout { inverse, slot, used, region_rows })
}

/// Remaps local rows `local` of `part` (variable rows from `first`) into the output at byte `base`.
fn remap_segment(
    ctx: &Ctx<'_>,
    part: &PartitionRemap,
    local: Range<u64>,
    first: u64,
    base: u64,
    emitter: &mut Emitter<'_, '_>,
) -> Result<(), Stop> {
    let from = ctx.remap.from.as_str();
    let too_large = || ExecError::TooLarge { tensor: from.to_string() };
    let info = ctx.old.tensor(from).ok_or_else(too_large)?;
    let old_row_bytes = info.row_bytes().and_then(|b| usize::try_from(b).ok()).ok_or_else(too_large)?;
    let old_rows = usize::try_from(info.rows()).map_err(|_| too_large())?;
    let region_rows = usize::try_from(2 * ctx.block_bytes / ctx.row_bytes as u64).unwrap_or(usize::MAX).max(1);
    let layout = layout(part, from, &local, old_rows, region_rows)?;
    if let Some(o) = layout.inverse.iter().position(|&k| k != NONE) {
        // A tensor the pass verifies itself is not verified on its first read.
        if !ctx.old.stores_crc32c(from) {
            first_read_here(ctx.old, from, o as u64)?;
        }
        scatter(ctx, part, &layout, old_row_bytes, base, &emitter.region, emitter.writer)?;
        // Step 2 reads back what step 1 queued.
        emitter.writer.fence()?;
    }
    put_in_order(ctx, part, &local, &layout, old_row_bytes, first, base, emitter)
}

/// Step 1: every old row that feeds a new row, made into it and queued for the writer thread to write
/// to its slot.
#[allow(clippy::too_many_arguments)]
fn scatter<'a>(
    ctx: &Ctx<'_>,
    part: &PartitionRemap,
    layout: &Layout,
    old_row_bytes: usize,
    base: u64,
    out: &Arc<TensorRegion>,
    writer: &Writer<'a>,
) -> Result<(), Stop> {
    let old_rows = layout.inverse.len();
    let groups = rayon::current_num_threads().max(1);
    let per_group = old_rows.div_ceil(groups).max(1);
    let queues: Vec<_> = (0..groups).map(|_| writer.sender()).collect();
    let from = ctx.remap.from.as_str();
    let verify = ctx.old.stores_crc32c(from);
    let sums = queues
        .into_par_iter()
        .enumerate()
        .map(|(g, queue)| {
            let rows = (g * per_group).min(old_rows)..((g + 1) * per_group).min(old_rows);
            let len = (rows.end - rows.start) as u64 * old_row_bytes as u64;
            let crc = scatter_rows(ctx, part, layout, old_row_bytes, base, Staged { out, queue, verify }, rows)?;
            Ok((crc, len))
        })
        .collect::<Result<Vec<(u32, u64)>, Stop>>()?;
    if verify {
        // One combine per thread (each costs about 250 us).
        let crc = sums
            .into_iter()
            .filter(|&(_, len)| len > 0)
            .fold(0, |acc, (crc, len)| crc32c::crc32c_combine(acc, crc, usize::try_from(len).unwrap_or(usize::MAX)));
        ctx.old.verify_crc32c(from, crc)?;
    }
    Ok(())
}

/// Where step 1's full staging buffers go: to the writer thread, to be written at their slots in `out`.
struct Staged<'r, 'a> {
    out: &'r Arc<TensorRegion>,
    queue: mpsc::SyncSender<Job<'a>>,
    /// Whether the old rows are read unverified, every one of them, and hashed.
    verify: bool,
}

/// About how many bytes of full staging buffers one thread sends the writer at once (one job, so that
/// the writer is woken once for them: with one job per buffer, 68 KiB each at 4 x W1, the run made
/// 53k context switches).
const STAGE_BATCH_BYTES: usize = 1 << 20;

/// Step 1 for old rows `rows`, read chunk by chunk; returns their CRC32C if `staged.verify` (else 0).
fn scatter_rows(
    ctx: &Ctx<'_>,
    part: &PartitionRemap,
    layout: &Layout,
    old_row_bytes: usize,
    base: u64,
    staged: Staged<'_, '_>,
    rows: Range<usize>,
) -> Result<u32, Stop> {
    let (from, rb) = (ctx.remap.from.as_str(), ctx.row_bytes);
    let regions = layout.used.len().max(1) as u64;
    let stage_bytes = (STAGE_BYTES / regions).min(ctx.block_bytes / 16);
    let stage_len = (stage_bytes as usize / rb).max(1) * rb;
    let chunk_rows = usize::try_from(ctx.block_bytes / old_row_bytes as u64).unwrap_or(usize::MAX).max(1);
    let backup = Backup::Constant(ctx.remap.backup.constant().unwrap_or(0.0).to_le_bytes());
    // Per region: the slot of its first staged row, the bytes staged, and the buffer (made at its first
    // row, never zeroed again: every staged byte is written before it is flushed).
    let mut stages: Vec<(u32, usize, Vec<u8>)> = (0..regions).map(|_| (0, 0, Vec::new())).collect();
    // Buffers the writer is done with (their pages stay mapped), for the next stages: two batches.
    let per_batch = (STAGE_BATCH_BYTES / stage_len).max(1);
    let (back, pool) = mpsc::sync_channel::<Vec<u8>>(2 * per_batch);
    let mut batch: Vec<(u64, Vec<u8>)> = Vec::with_capacity(per_batch);
    let send = |batch: &mut Vec<(u64, Vec<u8>)>| {
        let (region, back) = (Arc::clone(staged.out), back.clone());
        let job = Job::WriteMany { region, writes: std::mem::replace(batch, Vec::with_capacity(per_batch)), back };
        staged.queue.send(job).map_err(|_| Stop::Writer(crate::writer::WriterStopped))
    };
    let mut flush = |r: usize, stage: &mut (u32, usize, Vec<u8>)| -> Result<(), Stop> {
        let at = base + (r * layout.region_rows + stage.0 as usize) as u64 * rb as u64;
        let mut bytes = std::mem::take(&mut stage.2);
        bytes.truncate(stage.1);
        batch.push((at, bytes));
        stage.1 = 0;
        if batch.len() >= per_batch {
            send(&mut batch)?;
        }
        Ok(())
    };
    let (mut start, mut crc) = (rows.start, 0);
    while start < rows.end {
        let chunk = start..(start + chunk_rows).min(rows.end);
        start = chunk.end;
        if !staged.verify && layout.inverse[chunk.clone()].iter().all(|&k| k == NONE) {
            continue;
        }
        let (a, b) = (chunk.start as u64, chunk.end as u64);
        let bytes =
            if staged.verify { ctx.old.read_rows_unverified(from, a..b)? } else { ctx.old.read_rows(from, a..b)? };
        check_len(from, a, b, bytes.len(), chunk.len() * old_row_bytes)?;
        if staged.verify {
            crc = crc32c::crc32c_append(crc, &bytes);
        }
        for (src, &k) in bytes.chunks_exact(old_row_bytes).zip(&layout.inverse[chunk.clone()]) {
            if k == NONE {
                continue;
            }
            let r = k as usize / layout.region_rows;
            let stage = &mut stages[r];
            if stage.1 == 0 {
                stage.0 = layout.slot[k as usize];
                if stage.2.is_empty() {
                    // A buffer given back keeps its bytes (every staged byte is written before it is
                    // flushed); a new one comes zeroed from the allocator, which need not write them.
                    stage.2 = pool.try_recv().unwrap_or_default();
                    if stage.2.len() < stage_len {
                        stage.2 = vec![0; stage_len];
                    }
                }
            }
            let at = stage.1;
            fill_row_from(src, part, backup, &mut stage.2[at..at + rb]);
            stage.1 += rb;
            if stage.1 >= stage_len {
                flush(r, stage)?;
            }
        }
        drop(bytes);
        ctx.old.release(from, a..b);
    }
    for (r, stage) in stages.iter_mut().enumerate() {
        if stage.1 > 0 {
            flush(r, stage)?;
        }
    }
    if !batch.is_empty() {
        send(&mut batch)?;
    }
    Ok(crc)
}

/// The cells of a new row that its old row (of `old_cols` cells) has no value for, as ranges: what
/// [`fill_row_from`] takes from the backup.
fn missing_cells(part: &PartitionRemap, old_cols: usize, cols: usize) -> Vec<Range<usize>> {
    let g = &part.geometry;
    let new_cols = usize::try_from(g.new_cols).unwrap_or(usize::MAX);
    if part.col_remap.is_empty() {
        return std::iter::once(cols.min(old_cols).min(new_cols)..cols).collect();
    }
    let mut ranges: Vec<Range<usize>> = Vec::new();
    for j in 0..cols {
        let old_col = if j >= new_cols { -1 } else { part.col_remap[j] };
        if old_col >= 0 && (old_col as usize) < old_cols {
            continue;
        }
        match ranges.last_mut() {
            Some(r) if r.end == j => r.end = j + 1,
            _ => ranges.push(j..j + 1),
        }
    }
    ranges
}

/// Step 2: each region read back, put in order, completed and emitted.
#[allow(clippy::too_many_arguments)]
fn put_in_order(
    ctx: &Ctx<'_>,
    part: &PartitionRemap,
    local: &Range<u64>,
    layout: &Layout,
    old_row_bytes: usize,
    first: u64,
    base: u64,
    emitter: &mut Emitter<'_, '_>,
) -> Result<(), Stop> {
    let (rb, rr) = (ctx.row_bytes, layout.region_rows);
    let n = (local.end - local.start) as usize;
    let constant = ctx.remap.backup.constant();
    let missing = missing_cells(part, old_row_bytes / 4, rb / 4);
    let (mut slots, mut out) = (Vec::new(), emitter.writer.buffer());
    for r in 0..n.div_ceil(rr) {
        // A region whose rows all come from the slots reads no checkpoint: a cancel is noticed here.
        ctx.old.check_cancelled()?;
        let (k0, k1) = (r * rr, ((r + 1) * rr).min(n));
        slots.resize(layout.used[r] as usize * rb, 0);
        emitter.region.read_at(base + (k0 * rb) as u64, &mut slots)?;
        let (g0, g1) = (first + k0 as u64, first + k1 as u64);
        let initial = match constant {
            Some(_) => None,
            None => Some(ctx.target.read_rows(&ctx.var.tensor, g0..g1)?),
        };
        if let Some(rows) = &initial {
            check_len(&ctx.var.tensor, g0, g1, rows.len(), (k1 - k0) * rb)?;
        }
        // Every byte is overwritten: only new capacity is zeroed, and a new buffer comes zeroed from the
        // allocator (fresh pages), which need not write the zeros itself.
        if out.capacity() < (k1 - k0) * rb {
            out = vec![0; (k1 - k0) * rb];
        }
        out.resize((k1 - k0) * rb, 0);
        let row = |k: usize, dst: &mut [u8]| -> Result<(), ExecError> {
            let init = initial.as_deref().map(|b| &b[(k - k0) * rb..(k - k0 + 1) * rb]);
            let backup = match (constant, init) {
                (Some(c), _) => Backup::Constant(c.to_le_bytes()),
                (None, Some(row)) => Backup::Initial(row),
                (None, None) => Backup::Constant([0; 4]),
            };
            match layout.slot[k] {
                NONE => backup.fill(dst, 0),
                DUP => {
                    let o = old_row_of(part, local.start + k as u64) as u64;
                    let src = ctx.old.read_rows(&ctx.remap.from, o..o + 1)?;
                    check_len(&ctx.remap.from, o, o + 1, src.len(), old_row_bytes)?;
                    fill_row_from(&src, part, backup, dst);
                }
                s => {
                    dst.copy_from_slice(&slots[s as usize * rb..(s as usize + 1) * rb]);
                    if let Some(init) = init.filter(|_| constant.is_none()) {
                        for cells in &missing {
                            dst[cells.start * 4..cells.end * 4].copy_from_slice(&init[cells.start * 4..cells.end * 4]);
                        }
                    }
                }
            }
            Ok(())
        };
        out.par_chunks_mut(rb * ROWS_PER_TASK).enumerate().try_for_each(|(c, run)| {
            run.chunks_exact_mut(rb).enumerate().try_for_each(|(i, dst)| row(k0 + c * ROWS_PER_TASK + i, dst))
        })?;
        if initial.is_some() {
            ctx.target.release(&ctx.var.tensor, g0..g1);
        }
        out = emitter.emit(out)?;
    }
    Ok(())
}
