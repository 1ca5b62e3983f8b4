//! The integration tests: one test binary that runs the built `warmstart` on fixture files, with a
//! module per area.

#[cfg(feature = "tf")]
mod checkpoints;
mod cli;
#[cfg(feature = "hdf5")]
mod hdf5;
#[cfg(feature = "safetensors")]
mod safetensors;
#[cfg(feature = "tf")]
mod tf;
mod util;
#[cfg(feature = "tf")]
mod warmstart;
