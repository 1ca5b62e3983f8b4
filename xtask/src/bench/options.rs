//! The flags of `cargo xtask bench`.

use std::path::PathBuf;

/// Which page-cache states to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Files already in the page cache (after one untimed warm-up run).
    Warm,
    /// The page cache dropped before every run (needs root).
    Cold,
    /// Both.
    Both,
}

/// Everything `cargo xtask bench` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// Size relative to the full W1 (rows and layers scale).
    pub scale: f64,
    /// Embedding rows, overriding the scale.
    pub rows: Option<u64>,
    /// Embedding columns.
    pub dim: Option<u64>,
    /// Dense layers, overriding the scale.
    pub layers: Option<u64>,
    /// Dense layer width.
    pub width: Option<u64>,
    /// Generator seed.
    pub seed: u64,
    /// Timed runs per measurement (the median is reported).
    pub runs: usize,
    /// Also measure W1 at 1/4 and 1/2 of the size.
    pub scaling: bool,
    /// Page-cache states.
    pub cache: CacheMode,
    /// Print JSON on stdout (the table goes to stderr).
    pub json: bool,
    /// Python with TensorFlow, to time TF's own warm_start.
    pub with_tf: Option<PathBuf>,
    /// Python with torch and safetensors, to write W1 as a `torch.save` `.bin` and time our reader on it.
    pub with_torch: Option<PathBuf>,
    /// Skip the reader measurements.
    pub no_readers: bool,
    /// Also time `warmstart plan` alone on a vocabulary of this many tokens (its peak memory is the
    /// vocabulary tables').
    pub plan_tokens: Option<u64>,
}

pub const USAGE: &str = "usage: cargo xtask bench [--scale F] [--rows N] [--dim N] [--layers N] [--width N] [--seed N]
                        [--runs N] [--scaling] [--cache warm|cold|both] [--json] [--with-tf PYTHON]
                        [--with-torch PYTHON] [--no-readers] [--plan-tokens N]
  --scale F      W1 size relative to full (1,000,000 x 128 embedding, 8 dense 1024x1024 layers,
                 ~613 MB); rows and layers scale (default 1)
  --rows/--dim/--layers/--width  set one size exactly (overrides --scale for it)
  --runs N       timed rounds, each running every case once (interleaved); medians reported (default 3)
  --scaling      measure W1 at 1/4, 1/2, 1, 2 and 4 x the size
  --cache MODE   warm (after a warm-up run), cold (page cache dropped before each run, needs root) or
                 both (default: both if the cache can be dropped, else warm)
  --json         JSON on stdout, the table on stderr
  --with-tf PY   also time TensorFlow's warm_start + save with this python, and reading every tensor
                 from Python through warmstart.load_checkpoint (the package built in release into
                 target/python-bench-venv), tf.train.load_checkpoint (PY) and safetensors.numpy
  --with-torch PY  also write W1 once as a torch.save .bin with this python (torch and safetensors),
                 and time warmstart's torch reader on it against plain reads of the file
  --no-readers   only warmstart run and the cp floor
  --plan-tokens N  also time `warmstart plan` alone, warm, on a vocabulary of N tokens (a W1 of N rows
                 of one column and one 1x1 layer), with its peak memory";

impl Options {
    /// Parses the flags after `bench`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            scale: 1.0,
            rows: None,
            dim: None,
            layers: None,
            width: None,
            seed: 20_261_125,
            runs: 3,
            scaling: false,
            cache: CacheMode::Both,
            json: false,
            with_tf: None,
            with_torch: None,
            no_readers: false,
            plan_tokens: None,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
            let number = |v: &String| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
            match flag.as_str() {
                "--scale" => {
                    let v = value()?;
                    o.scale = v.parse().map_err(|e| format!("--scale {v}: {e}"))?;
                    if !(o.scale > 0.0 && o.scale <= 64.0) {
                        return Err(format!("--scale {v}: must be in (0, 64]"));
                    }
                }
                "--rows" => o.rows = Some(number(value()?)?),
                "--dim" => o.dim = Some(number(value()?)?),
                "--layers" => o.layers = Some(number(value()?)?),
                "--width" => o.width = Some(number(value()?)?),
                "--seed" => o.seed = number(value()?)?,
                "--runs" => o.runs = number(value()?)?.clamp(1, 100) as usize,
                "--scaling" => o.scaling = true,
                "--cache" => {
                    o.cache = match value()?.as_str() {
                        "warm" => CacheMode::Warm,
                        "cold" => CacheMode::Cold,
                        "both" => CacheMode::Both,
                        v => return Err(format!("--cache {v}: expected warm, cold or both")),
                    }
                }
                "--json" => o.json = true,
                "--with-tf" => o.with_tf = Some(PathBuf::from(value()?)),
                "--with-torch" => o.with_torch = Some(PathBuf::from(value()?)),
                "--no-readers" => o.no_readers = true,
                "--plan-tokens" => o.plan_tokens = Some(number(value()?)?.max(20)),
                "-h" | "--help" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown flag {other:?}\n{USAGE}")),
            }
        }
        if o.rows == Some(0) || o.dim == Some(0) || o.width == Some(0) {
            return Err("--rows, --dim and --width must be at least 1".into());
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_flags() {
        let o = Options::parse(&args(
            "--scale 0.25 --runs 5 --json --cache warm --rows 1000 --plan-tokens 5 --with-torch py",
        ))
        .unwrap();
        assert_eq!(o.with_torch, Some(PathBuf::from("py")));
        assert_eq!(o.plan_tokens, Some(20));
        assert_eq!(o.scale, 0.25);
        assert_eq!(o.runs, 5);
        assert!(o.json);
        assert_eq!(o.cache, CacheMode::Warm);
        assert_eq!(o.rows, Some(1000));
    }

    #[test]
    fn refuses_bad_flags() {
        assert!(Options::parse(&args("--scale 0")).is_err());
        assert!(Options::parse(&args("--runs")).is_err());
        assert!(Options::parse(&args("--cache hot")).is_err());
        assert!(Options::parse(&args("--frobnicate")).is_err());
    }
}
