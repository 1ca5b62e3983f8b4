//! Test-only in-memory checkpoint source and sink, and executor tests on them.

use std::any::Any;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use warmstart_core::{CheckpointSink, CheckpointSource, DType, Error, Result, SinkTensor, TensorInfo};

/// A source holding float32 tensors in memory.
pub(crate) struct MemSource {
    tensors: Vec<TensorInfo>,
    data: Vec<Vec<u8>>,
    /// The largest read served, in bytes.
    pub(crate) max_read: std::sync::atomic::AtomicUsize,
}

impl MemSource {
    pub(crate) fn new(entries: &[(&str, &[u64], &[f32])]) -> Self {
        let tensors = entries.iter().map(|(n, s, _)| TensorInfo::new(*n, DType::F32, s.to_vec())).collect();
        let data = entries.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
        MemSource { tensors, data, max_read: Default::default() }
    }
}

impl CheckpointSource for MemSource {
    fn format(&self) -> &'static str {
        "memory"
    }
    fn path(&self) -> &Path {
        Path::new("memory")
    }
    fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    fn read_rows(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>> {
        let i = self.tensors.iter().position(|t| t.name == name).ok_or_else(|| Error::TensorNotFound {
            path: PathBuf::from("memory"),
            name: name.to_string(),
        })?;
        let row = self.tensors[i].row_bytes().unwrap_or(0) as usize;
        let (a, b) = (rows.start as usize * row, rows.end as usize * row);
        self.max_read.fetch_max(b.saturating_sub(a), std::sync::atomic::Ordering::Relaxed);
        self.data[i].get(a..b).map(Cow::Borrowed).ok_or(Error::RowsOutOfRange {
            path: PathBuf::from("memory"),
            name: name.to_string(),
            start: rows.start,
            end: rows.end,
            rows: self.tensors[i].rows(),
        })
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A sink collecting what it is given, per (name, slice start).
#[derive(Default)]
pub(crate) struct MemSink {
    pub(crate) written: BTreeMap<(String, Vec<u64>), Vec<f32>>,
    current: Option<(String, Vec<u64>, Vec<u8>)>,
}

impl CheckpointSink for MemSink {
    fn path(&self) -> &Path {
        Path::new("memory")
    }
    fn begin_tensor(&mut self, tensor: &SinkTensor) -> Result<()> {
        let start = tensor.slice.as_ref().map(|s| s.start.clone()).unwrap_or_default();
        self.current = Some((tensor.info.name.clone(), start, Vec::new()));
        Ok(())
    }
    fn write_data(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some((_, _, buf)) = &mut self.current {
            buf.extend_from_slice(bytes);
        }
        Ok(())
    }
    fn end_tensor(&mut self) -> Result<()> {
        if let Some((n, s, buf)) = self.current.take() {
            let v = buf.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            self.written.insert((n, s), v);
        }
        Ok(())
    }
    fn write_strings(&mut self, _tensor: &SinkTensor, _values: &[Vec<u8>]) -> Result<()> {
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{execute, load_and_remap, ExecOptions};
    use warmstart_core::{Slice, VariablePart};
    use warmstart_planner::*;

    fn vocab(name: &str, s: &str) -> VocabFile {
        VocabFile::new(name, s.as_bytes())
    }

    /// Spec §2.4's documented example: rows [1,0,-1], cols [0,2,-1], initializing values 42.
    #[test]
    fn load_and_remap_applies_rows_and_columns() {
        let w: Vec<f32> = (0..9).map(|x| x as f32).collect();
        let old = MemSource::new(&[("w", &[3, 3], &w)]);
        let (old_rows, new_rows) = (vocab("or", "a\nb\nc"), vocab("nr", "b\na\nz"));
        let (old_cols, new_cols) = (vocab("oc", "x\ny\nz"), vocab("nc", "x\nz\nq"));
        let params = RemapParams {
            variable: "w",
            old_tensor: "w",
            new_row_vocab_size: 3,
            new_col_vocab_size: 3,
            old_row_vocab_size: -1,
            row_vocab: Some((&old_rows, &new_rows)),
            col_vocab: Some((&old_cols, &new_cols)),
            num_row_oov_buckets: 0,
            num_col_oov_buckets: 0,
        };
        let got = load_and_remap(&old, &params, &[3, 3], 0, BackupInitializer::Constant(42.0)).unwrap();
        assert_eq!(got, [3.0, 5.0, 42.0, 0.0, 2.0, 42.0, 42.0, 42.0, 42.0]);
    }

    /// A partitioned target written in parts or whole; a remap with the target's own initial values.
    #[test]
    fn executes_copies_parts_and_initial_backup() {
        let old = MemSource::new(&[("w", &[4, 1], &[0.5, 1.0, 1.5, 2.0]), ("e", &[2, 2], &[1.0, 2.0, 3.0, 4.0])]);
        let target = MemSource::new(&[
            ("w", &[4, 1], &[0.0; 4]),
            ("e", &[3, 2], &[9.0, 9.5, 8.0, 8.5, 7.0, 7.5]),
            ("step", &[], &[3.0]),
        ]);
        let parts = vec![
            VariablePart { name: "w/part_0".into(), slice: Slice { start: vec![0, 0], len: vec![2, 1] } },
            VariablePart { name: "w/part_1".into(), slice: Slice { start: vec![2, 0], len: vec![2, 1] } },
        ];
        let vars = vec![
            TargetVariable { name: "w".into(), tensor: "w".into(), dtype: DType::F32, shape: vec![4, 1], trainable: true, parts },
            TargetVariable { name: "e".into(), tensor: "e".into(), dtype: DType::F32, shape: vec![3, 2], trainable: true, parts: vec![] },
        ];
        let mut settings = PlanSettings { keep_partitions: true, ..Default::default() };
        settings.var_name_to_vocab_info.insert(
            "e".into(),
            VocabInfo {
                new_vocab: vocab("new", "b\nz\na"),
                new_vocab_size: 3,
                num_oov_buckets: 0,
                old_vocab: vocab("old", "a\nb"),
                old_vocab_size: -1,
                backup_initializer: BackupInitializer::Initial,
                axis: 0,
            },
        );
        let old_ck = OldCheckpoint { display: "old", tensors: old.tensors(), object_graph_keys: None };
        let tgt = Target { variables: &vars, tensors: target.tensors() };
        let p = plan(&settings, &old_ck, &tgt).unwrap();
        assert_eq!(p.passthrough, ["step"]);
        let mut sink = MemSink::default();
        let options = ExecOptions { block_bytes: 4, progress: None };
        let report = execute(&p, &old, &target, &mut sink, &options).unwrap();
        assert_eq!((report.copied, report.remapped, report.passthrough), (1, 1, 1));
        assert_eq!(sink.written[&("w".to_string(), vec![0, 0])], [0.5, 1.0]);
        assert_eq!(sink.written[&("w".to_string(), vec![2, 0])], [1.5, 2.0]);
        assert_eq!(sink.written[&("e".to_string(), vec![])], [3.0, 4.0, 8.0, 8.5, 1.0, 2.0]);
        assert_eq!(sink.written[&("step".to_string(), vec![])], [3.0]);
    }
}

#[cfg(test)]
mod streaming {
    use super::*;
    use crate::{execute, ExecOptions};
    use std::sync::atomic::Ordering;
    use warmstart_planner::*;

    /// A copy of a 1 MiB tensor with 64 KiB blocks never reads more than a block at once.
    #[test]
    fn copies_stream_in_row_blocks() {
        let values = vec![1.5f32; 1024 * 256];
        let old = MemSource::new(&[("big", &[1024, 256], &values)]);
        let target = MemSource::new(&[("big", &[1024, 256], &vec![0.0; 1024 * 256])]);
        let vars = [TargetVariable { name: "big".into(), tensor: "big".into(), dtype: DType::F32, shape: vec![1024, 256], trainable: true, parts: vec![] }];
        let settings = PlanSettings::default();
        let p = plan(
            &settings,
            &OldCheckpoint { display: "old", tensors: old.tensors(), object_graph_keys: None },
            &Target { variables: &vars, tensors: target.tensors() },
        )
        .unwrap();
        let mut sink = MemSink::default();
        let options = ExecOptions { block_bytes: 64 << 10, progress: None };
        let report = execute(&p, &old, &target, &mut sink, &options).unwrap();
        assert_eq!(report.bytes_written, 1 << 20);
        assert_eq!(old.max_read.load(Ordering::Relaxed), 64 << 10);
        assert_eq!(target.max_read.load(Ordering::Relaxed), 0);
        assert!(sink.written[&("big".to_string(), vec![])].iter().all(|&x| x == 1.5));
    }
}
