//! Project tasks run as `cargo xtask <task>`: `test` (what CI runs), `example`, `bench`.
fn main() {}
