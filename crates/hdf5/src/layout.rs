//! Copying a Keras template's layout into a new file: every group (empty ones included) with its
//! attributes, and the root's attributes. Datasets are not copied; the writer creates them, and then
//! copies a template dataset's attributes onto the dataset written at the same path.

use std::path::Path;

use hdf5::{File, Group, LocationToken, LocationType};

use crate::heaps::GlobalHeaps;
use crate::raw;
use crate::{Hdf5Error, Hdf5Source};

/// Groups nested deeper than this are refused.
const MAX_DEPTH: usize = 256;

/// Writes the groups and attributes of `template` into `dest` (being written at `path`).
pub(crate) fn copy_layout(template: &Hdf5Source, dest: &File, path: &Path) -> Result<(), Hdf5Error> {
    let err = |what: String, source: hdf5::Error| Hdf5Error::Template {
        path: path.to_path_buf(),
        template: warmstart_core::CheckpointSource::path(template).to_path_buf(),
        what,
        source: source.into(),
    };
    raw::copy_attributes(template.file(), dest, template.global_heaps())
        .map_err(|(what, e)| err(format!("{what} of /"), e))?;
    let mut seen = Vec::new();
    copy_groups(template.file(), template.global_heaps(), dest, "", 0, &mut seen, &err)
}

fn copy_groups(
    from: &Group,
    heaps: &GlobalHeaps,
    dest: &File,
    prefix: &str,
    depth: usize,
    seen: &mut Vec<LocationToken>,
    err: &dyn Fn(String, hdf5::Error) -> Hdf5Error,
) -> Result<(), Hdf5Error> {
    let here = if prefix.is_empty() { "/".to_string() } else { format!("/{prefix}") };
    if depth > MAX_DEPTH {
        return Err(err(format!("group {here}"), format!("groups nested more than {MAX_DEPTH} deep").into()));
    }
    let token = from.loc_info().map_err(|e| err(format!("group {here}"), e))?.token;
    if seen.contains(&token) {
        return Ok(());
    }
    seen.push(token);
    for member in from.member_names().map_err(|e| err(format!("group {here}"), e))? {
        let full = if prefix.is_empty() { member.clone() } else { format!("{prefix}/{member}") };
        if !matches!(from.loc_type_by_name(&member), Ok(LocationType::Group)) {
            continue;
        }
        let child = from.group(&member).map_err(|e| err(format!("group /{full}"), e))?;
        let copy = match dest.group(&full) {
            Ok(g) => g,
            Err(_) => dest.create_group(&full).map_err(|e| err(format!("group /{full}"), e))?,
        };
        raw::copy_attributes(&child, &copy, heaps).map_err(|(what, e)| err(format!("{what} of /{full}"), e))?;
        copy_groups(&child, heaps, dest, &full, depth + 1, seen, err)?;
    }
    Ok(())
}

/// Copies the attributes of the template's dataset at `dataset` (if there is one) onto `onto`.
pub(crate) fn copy_dataset_attributes(
    template: &Hdf5Source,
    dataset: &str,
    onto: &hdf5::Dataset,
    path: &Path,
) -> Result<(), Hdf5Error> {
    let Ok(original) = template.file().dataset(dataset) else { return Ok(()) };
    raw::copy_attributes(&original, onto, template.global_heaps()).map_err(|(what, source)| Hdf5Error::Template {
        path: path.to_path_buf(),
        template: warmstart_core::CheckpointSource::path(template).to_path_buf(),
        what: format!("{what} of dataset /{dataset}"),
        source: source.into(),
    })
}
