//! `run --rules`: a warm-start whose output is then ported by a rules file. The warm-start is written
//! to a temporary folder beside the destination, then converted through a
//! [`RulesSource`](warmstart_rules::RulesSource) into the destination, so the rules apply to the
//! warm-started output's names and layout exactly as `convert --rules` applies them. Nothing is left
//! at the destination, and no temporary folder, if either step fails or a signal ends the run (the
//! folder is a `warmstart_core::output::ScratchFolder`).

use std::path::Path;

use warmstart_core::output::{CreatedFolders, ScratchFolder};
use warmstart_formats::{ConvertReport, Format, WriteOptions};
use warmstart_rules::{Mapping, Rules, RulesError, RulesSource};

use crate::{OutputOptions, Plan, Report, RunOptions, WarmStartSettings};

/// Why a warm-start with rules failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The warm-start itself.
    #[error(transparent)]
    Run(#[from] crate::Error),
    /// The rules cannot be applied to the warm-started output.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// Writing the ported output, or its temporary folder.
    #[error(transparent)]
    Checkpoint(#[from] warmstart_core::Error),
}

/// What [`run_files`] did.
#[derive(Debug)]
pub struct PortedRun {
    /// The warm-start's plan.
    pub plan: Plan,
    /// The warm-start's report.
    pub report: Report,
    /// What the rules made of the warm-started tensors.
    pub mapping: Mapping,
    /// What was written to the destination.
    pub written: ConvertReport,
}

/// [`crate::run_files`], then `rules` applied to its output (see the module docs). `strict`: a rule
/// matching no output tensor is an error.
pub fn run_files(
    settings: &WarmStartSettings,
    out: &Path,
    output: &OutputOptions,
    options: &RunOptions<'_>,
    rules: &Rules,
    strict: bool,
) -> Result<PortedRun, Error> {
    let format = warmstart_formats::destination_format(out, output.format).map_err(crate::Error::from)?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let folders = CreatedFolders::create(parent)?;
    let mut temp = ScratchFolder::new_in(parent, ".warmstart-rules-")?;
    let staged = temp.path().join(match format {
        Format::Safetensors => "model.safetensors",
        Format::Hdf5 => "model.weights.h5",
        Format::Tf => "model.ckpt",
        Format::Numpy => "model.npz",
        Format::Keras => "model.keras",
        // Read only: the warm-start itself refuses it, before writing anything.
        Format::Torch => "pytorch_model.bin",
    });
    let staged_output = OutputOptions { format: Some(format), ..Default::default() };
    let (plan, report) = crate::run_files(settings, &staged, &staged_output, options)?;
    // A signal from here on removes the warm-started output in the scratch folder too.
    temp.register_contents()?;
    let warm = warmstart_formats::open(&staged)?;
    let ported = RulesSource::new(warm.as_ref(), rules, strict)?;
    let write = WriteOptions {
        shards: output.shards,
        max_shard_size: output.max_shard_size,
        compress: output.compress,
        sync: output.sync,
        ..Default::default()
    };
    let written = warmstart_formats::convert(&ported, out, format, &write)?;
    let mapping = ported.mapping().clone();
    folders.keep();
    Ok(PortedRun { plan, report, mapping, written })
}
