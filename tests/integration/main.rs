//! The integration tests: one test binary that runs the built `warmstart` on fixture files, with a
//! module per area.

// The one-pass remap's phases, on safetensors inputs.
#[cfg(feature = "safetensors")]
mod cancel;
#[cfg(feature = "tf")]
mod checkpoints;
mod cli;
// Inputs are made as safetensors files; signals and pipes as on Unix.
#[cfg(all(unix, feature = "safetensors"))]
mod faults;
#[cfg(feature = "hdf5")]
mod hdf5;
#[cfg(feature = "keras")]
mod keras;
// Inputs truncated or rewritten under the reader; made as safetensors files, like `faults`.
#[cfg(all(unix, feature = "safetensors"))]
mod inputs;
// TF outputs' commit journal, killed with strace (Linux).
#[cfg(all(unix, feature = "tf"))]
mod journal;
// Checked against TF-made cases and converted through safetensors.
#[cfg(all(feature = "numpy", feature = "tf", feature = "safetensors"))]
mod numpy;
// Where outputs go: run on TF-made cases, shards checked against safetensors fixtures.
#[cfg(all(feature = "tf", feature = "safetensors"))]
mod outputs;
// Porting rules, diff and stats: fixtures are safetensors files, some runs write TF bundles.
#[cfg(all(feature = "tf", feature = "safetensors"))]
mod port;
#[cfg(feature = "safetensors")]
mod safetensors;
// Written out as safetensors, so both are needed.
#[cfg(all(feature = "tf", feature = "safetensors"))]
mod tf;
// Written out as safetensors (and TF and HDF5 where those are built too).
#[cfg(all(feature = "torch", feature = "safetensors"))]
mod torch;
mod util;
// The TF-made cases are written out as safetensors (and HDF5 where that is built too).
#[cfg(all(feature = "tf", feature = "safetensors"))]
mod warmstart;
// `run --worker I/N` and `merge`, against single runs of TF-made cases and TF's MergeV2Checkpoints.
#[cfg(feature = "tf")]
mod workers;
