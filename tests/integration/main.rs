//! The integration tests: one test binary that runs the built `warmstart` on fixture files, with a
//! module per area.

mod checkpoints;
mod cli;
#[cfg(feature = "hdf5")]
mod hdf5;
#[cfg(feature = "safetensors")]
mod safetensors;
mod util;
mod warmstart;
