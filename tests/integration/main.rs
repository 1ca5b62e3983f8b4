//! The integration tests, one module per area.

mod checkpoints;
mod warmstart;
