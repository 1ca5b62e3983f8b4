//! Criterion benchmarks of warmstart's hot inner loops (`cargo bench --bench hot_loops`):
//! - CRC32C of a 4 MiB block (the `crc32c` crate, hardware instruction), as every TF read and write does;
//! - the vocabulary table build (`generate_vocab_remapping`, TF's `GenerateVocabRemapping`) on 100k and
//!   1M tokens, 5% of the new vocabulary new, shuffled: what the planner does once per vocabulary;
//! - the row gather of a vocabulary remap alone (`gather_partition`: a 100k x 128 float32 embedding in
//!   memory, rows gathered in parallel with rayon, the remapping computed beforehand), and the whole
//!   `load_and_remap` from an in-memory source, which includes one 100k-token table build.
//!
//! The workload-level numbers (whole checkpoints, against `cp`) come from `cargo xtask bench`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use warmstart_core::test_support::MemorySource;
use warmstart_core::{CheckpointSource, DType, TensorInfo};
use warmstart_planner::remap_plan::{partition_geometry, remap_partition};
use warmstart_planner::vocab::generate_vocab_remapping;
use warmstart_planner::{BackupInitializer, RemapParams, VocabFile};

/// A deterministic 64-bit generator (SplitMix64), so every run benchmarks the same data.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = ((u128::from(self.next()) * (i as u128 + 1)) >> 64) as usize;
            items.swap(i, j);
        }
    }
}

/// Old vocabulary `tok0..tokN`; new: the old tokens shuffled with 5% of them replaced by new tokens.
fn vocabularies(n: u64) -> (VocabFile, VocabFile) {
    let mut rng = SplitMix64(n);
    let old: String = (0..n).map(|i| format!("tok{i}\n")).collect();
    let mut ids: Vec<u64> = (0..n).collect();
    rng.shuffle(&mut ids);
    let fresh = n / 20;
    let mut lines: Vec<String> = ids[fresh as usize..].iter().map(|i| format!("tok{i}\n")).collect();
    lines.extend((0..fresh).map(|j| format!("new{j}\n")));
    rng.shuffle(&mut lines);
    (VocabFile::new("old_vocab.txt", old), VocabFile::new("new_vocab.txt", lines.concat()))
}

fn crc(c: &mut Criterion) {
    let mut rng = SplitMix64(1);
    let block: Vec<u8> = (0..(4 << 20) / 8).flat_map(|_| rng.next().to_le_bytes()).collect();
    let mut group = c.benchmark_group("crc32c");
    group.throughput(Throughput::Bytes(block.len() as u64));
    group.bench_function("4MiB", |b| b.iter(|| crc32c::crc32c(black_box(&block))));
    group.finish();
}

fn vocab_table(c: &mut Criterion) {
    let mut group = c.benchmark_group("vocab_table");
    group.sample_size(10);
    for n in [100_000u64, 1_000_000] {
        let (old, new) = vocabularies(n);
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                let r = generate_vocab_remapping("embedding", &new, &old, 0, n, -1).unwrap();
                assert_eq!(r.num_present, n - n / 20);
                r
            })
        });
    }
    group.finish();
}

fn row_gather(c: &mut Criterion) {
    let (rows, dim) = (100_000u64, 128u64);
    let (old_vocab, new_vocab) = vocabularies(rows);
    let mut rng = SplitMix64(2);
    let data: Vec<u8> = (0..rows * dim / 2).flat_map(|_| rng.next().to_le_bytes()).collect();
    let source = MemorySource::new().with_bytes(TensorInfo::new("embedding", DType::F32, vec![rows, dim]), data);
    let params = RemapParams {
        variable: "embedding",
        old_tensor: "embedding",
        new_row_vocab_size: rows as i64,
        new_col_vocab_size: dim as i64,
        old_row_vocab_size: -1,
        row_vocab: Some((&old_vocab, &new_vocab)),
        col_vocab: None,
        num_row_oov_buckets: 0,
        num_col_oov_buckets: 0,
    };
    let mut group = c.benchmark_group("row_gather");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(rows * dim * 4));
    let geometry = partition_geometry(&params, &[rows, dim], 0).unwrap();
    let part = remap_partition(&params, None, geometry, source.tensor("embedding")).unwrap();
    let mut dst = vec![0u8; (rows * dim * 4) as usize];
    group.bench_function("gather_partition/100000x128", |b| {
        b.iter(|| {
            warmstart_executor::gather_partition(
                &part,
                black_box(source.bytes("embedding")),
                (dim * 4) as usize,
                0.0,
                &mut dst,
            )
            .unwrap();
            black_box(&dst);
        })
    });
    group.bench_function("load_and_remap/100000x128", |b| {
        b.iter(|| {
            let values =
                warmstart_executor::load_and_remap(&source, &params, &[rows, dim], 0, BackupInitializer::Zeros)
                    .unwrap();
            assert_eq!(values.len() as u64, rows * dim);
            values
        })
    });
    group.finish();
}

criterion_group!(hot_loops, crc, vocab_table, row_gather);
criterion_main!(hot_loops);
