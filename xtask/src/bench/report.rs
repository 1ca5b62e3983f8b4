//! The results of `cargo xtask bench`: a text table and JSON, with the median time, throughput, the
//! ratio to each case's floor and peak memory.

use serde_json::{json, Value};

use super::measure::{median, Sample};

/// All runs of one case on one workload in one cache mode.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The workload's cache key (its sizes).
    pub workload: String,
    /// Its size relative to full W1.
    pub scale: f64,
    /// Bytes of tensor data in its checkpoint.
    pub data_bytes: u64,
    /// `warm` or `cold`.
    pub cache: &'static str,
    /// What was run.
    pub case: String,
    /// The case it is compared with.
    pub floor: Option<String>,
    /// Bytes the case reads (for the throughput).
    pub bytes: u64,
    /// The timed runs.
    pub samples: Vec<Sample>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// For TensorFlow's row: whether its output equals `warmstart run`'s, byte for byte.
    pub output_check: Option<String>,
}

impl Measurement {
    /// Median wall time, seconds.
    pub fn seconds(&self) -> f64 {
        median(&self.samples.iter().map(|s| s.seconds).collect::<Vec<_>>())
    }

    /// The highest peak RSS over the runs, bytes.
    pub fn max_rss(&self) -> u64 {
        self.samples.iter().map(|s| s.max_rss).max().unwrap_or(0)
    }

    /// The highest sampled anonymous memory over the runs, bytes.
    pub fn max_anon(&self) -> u64 {
        self.samples.iter().map(|s| s.max_anon).max().unwrap_or(0)
    }

    /// MB/s of the case's bytes at the median time.
    pub fn throughput(&self) -> f64 {
        let s = self.seconds();
        if s > 0.0 {
            self.bytes as f64 / 1e6 / s
        } else {
            0.0
        }
    }

    /// This case's median time over its floor's, when both ran.
    pub fn ratio(&self, all: &[Measurement]) -> Option<f64> {
        let floor = self.floor.as_ref()?;
        let f = all.iter().find(|m| m.workload == self.workload && m.cache == self.cache && &m.case == floor)?;
        if f.samples.is_empty() || self.samples.is_empty() {
            return None;
        }
        Some(self.seconds() / f.seconds())
    }
}

const MIB: f64 = (1u64 << 20) as f64;

/// The results as an aligned text table.
pub fn table(all: &[Measurement]) -> String {
    let mut rows = vec![[
        "workload".to_string(),
        "cache".into(),
        "case".into(),
        "median s".into(),
        "min s".into(),
        "MB/s".into(),
        "x floor".into(),
        "peak RSS MiB".into(),
        "peak anon MiB".into(),
    ]];
    for m in all {
        if m.error.is_some() {
            let failed = || "failed".to_string();
            rows.push([
                m.workload.clone(),
                m.cache.into(),
                m.case.clone(),
                failed(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
            ]);
            continue;
        }
        let min = m.samples.iter().map(|s| s.seconds).fold(f64::INFINITY, f64::min);
        rows.push([
            m.workload.clone(),
            m.cache.into(),
            m.case.clone(),
            format!("{:.3}", m.seconds()),
            format!("{min:.3}"),
            format!("{:.0}", m.throughput()),
            m.ratio(all).map(|r| format!("{r:.2}")).unwrap_or_default(),
            format!("{:.0}", m.max_rss() as f64 / MIB),
            format!("{:.0}", m.max_anon() as f64 / MIB),
        ]);
    }
    let widths: Vec<usize> = (0..9).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut text = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(
                |(c, cell)| {
                    if c < 3 {
                        format!("{cell:<w$}", w = widths[c])
                    } else {
                        format!("{cell:>w$}", w = widths[c])
                    }
                },
            )
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text.push_str(&speedups(all));
    text.push_str(&scaling(all));
    for m in all {
        if let Some(e) = &m.error {
            text.push_str(&format!("{} {} {} failed: {e}\n", m.workload, m.cache, m.case));
        }
    }
    text
}

impl Measurement {
    /// For a TensorFlow row: its median time over `warmstart run`'s on the same workload and cache.
    pub fn speedup(&self, all: &[Measurement]) -> Option<f64> {
        if !self.case.starts_with("tensorflow warm_start") || self.samples.is_empty() {
            return None;
        }
        let ours =
            all.iter().find(|m| m.workload == self.workload && m.cache == self.cache && m.case == "warmstart run")?;
        (!ours.samples.is_empty()).then(|| self.seconds() / ours.seconds())
    }
}

/// "warmstart run is N x faster than TensorFlow" lines, for each workload and cache mode where both ran.
fn speedups(all: &[Measurement]) -> String {
    let mut text = String::new();
    for tf in all {
        if let Some(speedup) = tf.speedup(all) {
            text.push_str(&format!(
                "{} {}: warmstart run is {speedup:.1} x faster than {}\n",
                tf.workload, tf.cache, tf.case
            ));
        }
        if let Some(check) = &tf.output_check {
            text.push_str(&format!("{}: warmstart run's output against TensorFlow's: {check}\n", tf.workload));
        }
    }
    text
}

/// With several workload sizes: how time and memory of `warmstart run` and `cp` grow with the bytes.
fn scaling(all: &[Measurement]) -> String {
    let mut workloads: Vec<&str> = all.iter().map(|m| m.workload.as_str()).collect();
    workloads.dedup();
    if workloads.len() < 2 {
        return String::new();
    }
    let mut text = String::from("scaling (seconds per GB of tensor data, peak RSS / peak anonymous memory):\n");
    let mut keys: Vec<(&str, &str)> = all.iter().map(|m| (m.case.as_str(), m.cache)).collect();
    keys.sort_unstable();
    keys.dedup();
    for (case, cache) in keys.into_iter().filter(|(c, _)| matches!(*c, "warmstart run" | "cp (floor)")) {
        let points: Vec<String> = all
            .iter()
            .filter(|m| m.case == case && m.cache == cache && !m.samples.is_empty())
            .map(|m| {
                format!(
                    "x{}: {:.3} s/GB, {:.0}/{:.0} MiB",
                    m.scale,
                    m.seconds() / (m.data_bytes as f64 / 1e9),
                    m.max_rss() as f64 / MIB,
                    m.max_anon() as f64 / MIB
                )
            })
            .collect();
        text.push_str(&format!("  {case} ({cache}): {}\n", points.join("; ")));
    }
    text
}

/// The JSON schema's name and version: bumped whenever a field changes meaning or goes away (adding a
/// field keeps the version), so that runs can be compared over time.
pub const SCHEMA: &str = "warmstart-bench/1";

/// The results as JSON, schema [`SCHEMA`]: `{"schema", "environment": {cpus, loadavg, runs,
/// cache_modes}, "results": [...]}`, one result per case, workload and cache mode, with `workload`,
/// `scale`, `data_bytes`, `cache` (`warm`|`cold`), `case`, `floor` (the case it is compared with, or
/// null), `bytes`, `error` (null, or why it failed), `median_seconds`, `min_seconds`, `seconds` (every
/// timed run), `throughput_mb_per_s`, `ratio_to_floor` (null without a floor), `peak_rss_bytes`,
/// `peak_anon_bytes`, `warmstart_speedup` (TensorFlow's rows) and `output_check` (TensorFlow's rows).
pub fn json(all: &[Measurement], environment: &Value) -> Value {
    let results: Vec<Value> = all
        .iter()
        .map(|m| {
            json!({
                "workload": m.workload,
                "scale": m.scale,
                "data_bytes": m.data_bytes,
                "cache": m.cache,
                "case": m.case,
                "floor": m.floor,
                "bytes": m.bytes,
                "error": m.error,
                "median_seconds": m.seconds(),
                "min_seconds": m.samples.iter().map(|s| s.seconds).reduce(f64::min),
                "seconds": m.samples.iter().map(|s| s.seconds).collect::<Vec<_>>(),
                "throughput_mb_per_s": m.throughput(),
                "ratio_to_floor": m.ratio(all),
                "peak_rss_bytes": m.max_rss(),
                "peak_anon_bytes": m.max_anon(),
                "warmstart_speedup": m.speedup(all),
                "output_check": m.output_check,
            })
        })
        .collect();
    json!({ "schema": SCHEMA, "environment": environment, "results": results })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(case: &str, floor: Option<&str>, seconds: &[f64]) -> Measurement {
        Measurement {
            workload: "w".into(),
            scale: 1.0,
            data_bytes: 1_000_000,
            cache: "warm",
            case: case.into(),
            floor: floor.map(String::from),
            bytes: 1_000_000,
            samples: seconds.iter().map(|&seconds| Sample { seconds, max_rss: 1 << 20, max_anon: 1 << 19 }).collect(),
            error: None,
            output_check: None,
        }
    }

    #[test]
    fn ratio_throughput_and_table() {
        let all =
            vec![m("cp (floor)", None, &[1.0, 3.0, 2.0]), m("warmstart run", Some("cp (floor)"), &[3.0, 3.0, 3.0])];
        assert_eq!(all[1].ratio(&all), Some(1.5));
        assert_eq!(all[0].ratio(&all), None);
        assert_eq!(all[0].throughput(), 0.5);
        let t = table(&all);
        assert!(t.contains("warmstart run") && t.contains("1.50"), "{t}");
        let j = json(&all, &json!({}));
        assert_eq!(j["results"][1]["ratio_to_floor"], json!(1.5));
        assert_eq!(j["results"][0]["median_seconds"], json!(2.0));
        assert_eq!(j["results"][0]["min_seconds"], json!(1.0));
        assert_eq!(j["schema"], json!(SCHEMA));
    }
}
