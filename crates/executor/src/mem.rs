//! Test-only in-memory checkpoint source and sink, and executor tests on them.

use std::collections::BTreeMap;
use std::path::Path;

use warmstart_core::test_support::MemorySource;
use warmstart_core::{CheckpointSink, CheckpointSource, Result, SinkTensor};

/// A source holding float32 tensors in memory.
pub(crate) fn mem_source(entries: &[(&str, &[u64], &[f32])]) -> MemorySource {
    entries.iter().fold(MemorySource::new(), |src, (name, shape, values)| src.with_f32(name, shape, values))
}

/// The largest read `src` served, in bytes.
pub(crate) fn max_read(src: &MemorySource) -> u64 {
    let row_bytes = |name: &str| src.tensor(name).and_then(|t| t.row_bytes()).unwrap_or(0);
    src.reads().iter().map(|(name, rows)| (rows.end - rows.start) * row_bytes(name)).max().unwrap_or(0)
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
    use warmstart_core::{DType, Slice, VariablePart};
    use warmstart_planner::*;

    fn vocab(name: &str, s: &str) -> VocabFile {
        VocabFile::new(name, s.as_bytes())
    }

    /// Spec §2.4's documented example: rows [1,0,-1], cols [0,2,-1], initializing values 42.
    #[test]
    fn load_and_remap_applies_rows_and_columns() {
        let w: Vec<f32> = (0..9).map(|x| x as f32).collect();
        let old = mem_source(&[("w", &[3, 3], &w)]);
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

    /// What the report counts, and which tensors and parts reach the sink, for a partitioned target
    /// written in parts, a remap and a passthrough tensor, in blocks of one row. (Their values are
    /// checked against TF's in the fixture cases, which also run in blocks of about a row.)
    #[test]
    fn reports_and_writes_every_output() {
        let old = mem_source(&[("w", &[4, 1], &[0.5, 1.0, 1.5, 2.0]), ("e", &[2, 2], &[1.0, 2.0, 3.0, 4.0])]);
        let target = mem_source(&[
            ("w", &[4, 1], &[0.0; 4]),
            ("e", &[3, 2], &[9.0, 9.5, 8.0, 8.5, 7.0, 7.5]),
            ("step", &[], &[3.0]),
        ]);
        let parts = vec![
            VariablePart { name: "w/part_0".into(), slice: Slice { start: vec![0, 0], len: vec![2, 1] } },
            VariablePart { name: "w/part_1".into(), slice: Slice { start: vec![2, 0], len: vec![2, 1] } },
        ];
        let vars = vec![
            TargetVariable {
                name: "w".into(),
                tensor: "w".into(),
                dtype: DType::F32,
                shape: vec![4, 1],
                trainable: true,
                parts,
            },
            TargetVariable {
                name: "e".into(),
                tensor: "e".into(),
                dtype: DType::F32,
                shape: vec![3, 2],
                trainable: true,
                parts: vec![],
            },
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
        let options = ExecOptions { block_bytes: 4, ..Default::default() };
        let report = execute(&p, &old, &target, &mut sink, &options).unwrap();
        assert_eq!((report.copied, report.remapped, report.passthrough, report.kept_initial), (1, 1, 1, 0));
        assert_eq!((report.tensors_written, report.bytes_written), (4, 4 * 4 + 6 * 4 + 4));
        let written: Vec<(&str, &[u64], usize)> = sink
            .written
            .iter()
            .map(|((name, start), values)| (name.as_str(), start.as_slice(), values.len()))
            .collect();
        assert_eq!(written, [("e", &[][..], 6), ("step", &[][..], 1), ("w", &[0, 0][..], 2), ("w", &[2, 0][..], 2)]);
    }
}

#[cfg(test)]
mod streaming {
    use super::*;
    use crate::{execute, ExecOptions};
    use warmstart_core::DType;
    use warmstart_planner::*;

    /// A copy of a 1 MiB tensor with 64 KiB blocks never reads more than a block at once.
    #[test]
    fn copies_stream_in_row_blocks() {
        let values = vec![1.5f32; 1024 * 256];
        let old = mem_source(&[("big", &[1024, 256], &values)]);
        let target = mem_source(&[("big", &[1024, 256], &vec![0.0; 1024 * 256])]);
        let vars = [TargetVariable {
            name: "big".into(),
            tensor: "big".into(),
            dtype: DType::F32,
            shape: vec![1024, 256],
            trainable: true,
            parts: vec![],
        }];
        let settings = PlanSettings::default();
        let p = plan(
            &settings,
            &OldCheckpoint { display: "old", tensors: old.tensors(), object_graph_keys: None },
            &Target { variables: &vars, tensors: target.tensors() },
        )
        .unwrap();
        let mut sink = MemSink::default();
        let options = ExecOptions { block_bytes: 64 << 10, ..Default::default() };
        let report = execute(&p, &old, &target, &mut sink, &options).unwrap();
        assert_eq!(report.bytes_written, 1 << 20);
        assert_eq!(max_read(&old), 64 << 10);
        assert_eq!(max_read(&target), 0);
        assert!(sink.written[&("big".to_string(), vec![])].iter().all(|&x| x == 1.5));
    }
}
