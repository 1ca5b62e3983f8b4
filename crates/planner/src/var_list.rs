//! The third form of `vars_to_warm_start`: TF's list of `Variable` objects
//! ([`VarsToWarmStart::Variables`](crate::VarsToWarmStart::Variables)), given here by name.
//!
//! TF uses such a list as given (`list_of_vars = vars_to_warm_start` in `_get_grouped_variables`): no
//! regular expression, no collection filter (a non-trainable variable such as an optimizer slot is
//! warm-started if listed), in the list's order; each variable is then grouped under
//! `_infer_var_name([v])`, so the parts of a partitioned variable gather under its full name.
//!
//! How names stand for `Variable` objects:
//! - a plain variable's name is that variable;
//! - a part's name (`x/part_0`) is that part alone, grouped under `x` as TF groups it;
//! - a partitioned variable's full name is all its parts in order, as TF's `list(partitioned_variable)`
//!   (TF refuses the `PartitionedVariable` object itself in the list with a ValueError, so its parts
//!   are what a TF user passes);
//! - a name the target does not have is refused ([`PlanError::UnknownListedVariable`]): a `Variable`
//!   object that is not in the graph cannot exist in TF, so there is no TF behaviour to follow, and
//!   ignoring the name would silently warm-start less than asked.

use crate::plan::TargetVariable;
use crate::PlanError;

/// The variables and parts the list names, in its order: `(variable index, part index)` pairs, `None`
/// for a whole unpartitioned variable. Names are matched exactly (a variable's name is tried before a
/// part's).
pub(crate) fn select_listed_variables(
    names: &[String],
    vars: &[TargetVariable],
) -> Result<Vec<(usize, Option<usize>)>, PlanError> {
    let mut out = Vec::new();
    for name in names {
        if let Some(i) = vars.iter().position(|v| &v.name == name) {
            if vars[i].parts.is_empty() {
                out.push((i, None));
            } else {
                out.extend((0..vars[i].parts.len()).map(|p| (i, Some(p))));
            }
            continue;
        }
        let part =
            vars.iter().enumerate().find_map(|(i, v)| v.parts.iter().position(|p| &p.name == name).map(|p| (i, p)));
        match part {
            Some((i, p)) => out.push((i, Some(p))),
            None => return Err(unknown(name, vars)),
        }
    }
    Ok(out)
}

/// The refusal of a listed name that is neither a variable nor a part of the target.
fn unknown(name: &str, vars: &[TargetVariable]) -> PlanError {
    PlanError::UnknownListedVariable {
        variable: name.to_string(),
        known: vars.iter().map(|v| v.name.clone()).collect(),
    }
}

/// Why a variable is warm-started under the list form (`parts`: the listed parts, if not all).
pub(crate) fn listed_reason(var: &TargetVariable, parts: Option<&[usize]>) -> String {
    if parts.is_none() && !var.parts.is_empty() {
        "all its partitions listed in vars_to_warm_start's variables".to_string()
    } else {
        "listed in vars_to_warm_start's variables".to_string()
    }
}

/// Why a variable is left alone under the list form.
pub(crate) fn unlisted_reason(var: &TargetVariable) -> String {
    if var.parts.is_empty() {
        "not listed in vars_to_warm_start's variables".to_string()
    } else {
        "neither it nor any of its partitions is listed in vars_to_warm_start's variables".to_string()
    }
}

#[cfg(test)]
mod tests {
    use warmstart_core::{DType, Slice, VariablePart};

    use super::*;

    fn var(name: &str, parts: usize) -> TargetVariable {
        TargetVariable {
            name: name.into(),
            tensor: name.into(),
            dtype: DType::F32,
            shape: vec![parts.max(1) as u64],
            trainable: true,
            parts: (0..parts)
                .map(|i| VariablePart {
                    name: format!("{name}/part_{i}"),
                    slice: Slice { start: vec![i as u64], len: vec![1] },
                })
                .collect(),
        }
    }

    #[test]
    fn names_variables_parts_and_full_names_in_list_order() {
        let vars = [var("v1", 0), var("v1/Momentum", 0), var("w", 2)];
        let names = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(select_listed_variables(&names(&["v1"]), &vars).unwrap(), [(0, None)]);
        assert_eq!(
            select_listed_variables(&names(&["w/part_1", "v1/Momentum", "w"]), &vars).unwrap(),
            [(2, Some(1)), (1, None), (2, Some(0)), (2, Some(1))]
        );
        let e = select_listed_variables(&names(&["v1", "v2"]), &vars).unwrap_err();
        assert_eq!(e.variable(), "v2");
        assert_eq!(
            e.to_string(),
            "vars_to_warm_start lists variable v2, which the target does not have (a TF Variable object \
             cannot name a variable outside its graph); its variables are v1, v1/Momentum, w"
        );
    }

    #[test]
    fn plans_exactly_the_listed_variables_and_says_why() {
        use crate::{plan, Action, OldCheckpoint, PlanSettings, Target, VarsToWarmStart};
        use warmstart_core::TensorInfo;
        let mut momentum = var("v1/Momentum", 0);
        momentum.trainable = false;
        let vars = [var("v1", 0), momentum.clone()];
        let old: Vec<TensorInfo> = vars.iter().map(|v| TensorInfo::new(v.name.clone(), DType::F32, vec![1])).collect();
        let settings = |l: &[&str]| PlanSettings {
            vars_to_warm_start: VarsToWarmStart::Variables(l.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let run = |l: &[&str]| {
            plan(
                &settings(l),
                &OldCheckpoint { display: "old", tensors: &old, object_graph_keys: None },
                &Target { variables: &vars, tensors: &old },
            )
        };
        let p = run(&["v1"]).unwrap();
        assert!(matches!(&p.variables[0].action, Action::Copy { from, parts: None } if from == "v1"));
        assert_eq!(p.variables[0].reason, "listed in vars_to_warm_start's variables");
        assert!(matches!(p.variables[1].action, Action::KeepInitial));
        assert_eq!(p.variables[1].reason, "not listed in vars_to_warm_start's variables");
        // No collection filter: a non-trainable slot is taken when listed.
        let p = run(&["v1/Momentum"]).unwrap();
        assert!(matches!(p.variables[1].action, Action::Copy { .. }));
        assert!(matches!(run(&["v1", "v1"]).unwrap_err(), PlanError::DuplicateVariable { .. }));
        assert!(matches!(run(&["v2"]).unwrap_err(), PlanError::UnknownListedVariable { .. }));
    }
}
