//! TF's `warm_start` as a pure function: selects and groups the target's variables
//! (`_get_grouped_variables`), resolves old names (renames, object graph), and decides for every target
//! variable what it gets, refusing what TF refuses in the order TF would: first the errors Python raises
//! while building the graph, then those the ops raise when the initialisers run.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;
use warmstart_core::{DType, SinkTensor, Slice, TensorInfo, VariablePart};
use warmstart_pyre::Regex;

use crate::error::py_str;
use crate::kernel_limits::TfKernelFailure;
use crate::remap_plan::{check_vocab_partitions, plan_variable_remap, RemapPlan};
use crate::settings::{PlanSettings, VarsToWarmStart, VocabInfo};
use crate::var_list::{listed_reason, select_listed_variables, unlisted_reason};
use crate::PlanError;

/// A variable of the target model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetVariable {
    /// Full name, without `:0`: what selection, renames, vocabularies and messages use.
    pub name: String,
    /// The tensor holding it in the target checkpoint (the name, or a TF2 checkpoint key).
    pub tensor: String,
    /// Element type.
    pub dtype: DType,
    /// Full shape.
    pub shape: Vec<u64>,
    /// In the trainable-variables collection.
    pub trainable: bool,
    /// Its partitions (empty if it is not partitioned).
    pub parts: Vec<VariablePart>,
}

/// What the planner knows of the old checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct OldCheckpoint<'a> {
    /// The checkpoint as the user gave it (for TF's messages).
    pub display: &'a str,
    /// Its logical tensors.
    pub tensors: &'a [TensorInfo],
    /// For an object-based (TF2) checkpoint, variable full name -> checkpoint key.
    pub object_graph_keys: Option<&'a HashMap<String, String>>,
}

/// What the planner knows of the target (the new model's initial checkpoint).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Its variables, in the order of the global-variables collection.
    pub variables: &'a [TargetVariable],
    /// Its logical tensors, in checkpoint order (variables and others such as `global_step`).
    pub tensors: &'a [TensorInfo],
}

/// A partition as the plan reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartInfo {
    /// The part's name (`x/part_0`).
    pub name: String,
    /// Its start in the full variable.
    pub start: Vec<u64>,
    /// Its shape.
    pub shape: Vec<u64>,
}

/// What a target variable gets.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Its initial value from the target.
    KeepInitial,
    /// The old tensor's value, whole (`parts` is `None`) or only in the listed partitions.
    Copy {
        /// The old tensor.
        from: String,
        /// The partitions copied, if not all.
        parts: Option<Vec<usize>>,
    },
    /// A vocabulary remap of the old tensor.
    Remap(RemapPlan),
}

/// The plan for one target variable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariablePlan {
    /// Full name.
    pub name: String,
    /// Its tensor in the target (and in the output).
    pub tensor: String,
    /// Element type.
    #[serde(serialize_with = "serialize_dtype")]
    pub dtype: DType,
    /// Full shape.
    pub shape: Vec<u64>,
    /// Partitions, empty if unpartitioned.
    pub parts: Vec<PartInfo>,
    /// What it gets.
    pub action: Action,
    /// Why.
    pub reason: String,
    /// Where TensorFlow itself would fail for a kernel it lacks (see `kernel_limits`); warmstart still
    /// produces the values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensorflow_fails: Option<TfKernelFailure>,
}

/// One tensor of the output, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputTensor {
    /// The target tensor (a variable's full name, or another tensor copied through).
    pub name: String,
    /// The variable plan index, if a variable.
    pub variable: Option<usize>,
    /// The partition written, if the output keeps partitions.
    pub part: Option<usize>,
    /// What the sink is told.
    #[serde(skip)]
    pub sink: SinkTensor,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The old checkpoint as given.
    pub old_checkpoint: String,
    /// Every target variable.
    pub variables: Vec<VariablePlan>,
    /// Target tensors that are not variables, copied through unchanged.
    pub passthrough: Vec<String>,
    /// The output tensors in writing order.
    pub outputs: Vec<OutputTensor>,
    /// Target tensors left out of the output (string tensors, for formats that cannot store them).
    pub skipped: Vec<String>,
}

impl Plan {
    /// The list the sink must be created with.
    pub fn sink_tensors(&self) -> Vec<SinkTensor> {
        self.outputs.iter().map(|o| o.sink.clone()).collect()
    }

    /// Leaves string tensors out of the output, listing them in `skipped`.
    pub fn skip_string_tensors(&mut self) {
        let (strings, kept): (Vec<OutputTensor>, Vec<OutputTensor>) =
            std::mem::take(&mut self.outputs).into_iter().partition(|o| o.sink.info.dtype == DType::String);
        self.outputs = kept;
        self.skipped.extend(strings.into_iter().map(|o| o.name));
        self.skipped.dedup();
    }

    /// How many variables are warm-started (copied or remapped).
    pub fn warm_started(&self) -> usize {
        self.variables.iter().filter(|v| !matches!(v.action, Action::KeepInitial)).count()
    }
}

fn serialize_dtype<S: serde::Serializer>(d: &DType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.name())
}

/// Compiles a Python regex for `re.match` (anchored at the start only) with Python 3.11's `re` dialect
/// and messages (warmstart-pyre).
pub fn compile_match_regex(pattern: &str) -> Result<Regex, PlanError> {
    Regex::new(pattern).map_err(|e| PlanError::InvalidRegex {
        pattern: pattern.to_string(),
        reason: e.to_string(),
        class: e.python_class(),
    })
}

/// `re.match(re, name) is not None`; a match past the step budget is refused (TF would likely hang).
fn is_match(re: &Regex, name: &str) -> Result<bool, PlanError> {
    re.is_match(name).map_err(|e| PlanError::RegexTooSlow { pattern: re.as_str().to_string(), reason: e.to_string() })
}

/// One member of the collections: a variable, or one partition of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    var: usize,
    part: Option<usize>,
}

/// A grouped variable (`grouped_variables[name]`).
struct Group {
    name: String,
    var: usize,
    members: Vec<Member>,
}

/// Everything `_get_grouped_variables` does.
fn group_variables(settings: &PlanSettings, vars: &[TargetVariable]) -> Result<Vec<Group>, PlanError> {
    let members = |trainable_only: bool| -> Vec<(Member, String)> {
        let mut out = Vec::new();
        for (i, v) in vars.iter().enumerate() {
            if trainable_only && !v.trainable {
                continue;
            }
            if v.parts.is_empty() {
                out.push((Member { var: i, part: None }, format!("{}:0", v.name)));
            } else {
                for (p, part) in v.parts.iter().enumerate() {
                    out.push((Member { var: i, part: Some(p) }, format!("{}:0", part.name)));
                }
            }
        }
        out
    };
    let selected: Vec<Member> = match &settings.vars_to_warm_start {
        VarsToWarmStart::Nothing => members(true).into_iter().map(|(m, _)| m).collect(),
        VarsToWarmStart::Regex(re) => {
            // get_collection compiles the scope only when the collection exists (has a variable).
            let trainable = members(true);
            let re = if trainable.is_empty() { None } else { Some(compile_match_regex(re)?) };
            let mut out = Vec::new();
            for (m, n) in trainable {
                if let Some(re) = &re {
                    if is_match(re, &n)? {
                        out.push(m);
                    }
                }
            }
            out
        }
        VarsToWarmStart::List(list) => {
            let all = members(false);
            let mut out = Vec::new();
            for re in list {
                if all.is_empty() {
                    continue;
                }
                let re = compile_match_regex(re)?;
                for (m, n) in &all {
                    if is_match(&re, n)? {
                        out.push(*m);
                    }
                }
            }
            out
        }
        VarsToWarmStart::Variables(names) => {
            select_listed_variables(names, vars)?.into_iter().map(|(var, part)| Member { var, part }).collect()
        }
    };
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<usize, usize> = HashMap::new();
    for m in selected {
        let g = *index.entry(m.var).or_insert_with(|| {
            groups.push(Group { name: vars[m.var].name.clone(), var: m.var, members: Vec::new() });
            groups.len() - 1
        });
        groups[g].members.push(m);
    }
    Ok(groups)
}

/// A variable restored by `init_from_checkpoint`, waiting for its batch to be flushed.
struct PendingCopy {
    group: usize,
}

/// A decision made at "graph construction" time, checked further at "run time".
enum Decision {
    Copy {
        tensor: String,
        parts: Option<Vec<usize>>,
        reason: String,
    },
    Remap {
        tensor: String,
        vocab: Box<VocabInfo>,
        parts: Vec<Option<usize>>,
        listed: Vec<Option<usize>>,
        reason: String,
    },
}

/// Python's `str(dict)` of the checkpoint's variable-to-shape map.
fn shape_map_repr(tensors: &[TensorInfo]) -> String {
    let mut sorted: Vec<&TensorInfo> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let items: Vec<String> = sorted
        .iter()
        .map(|t| {
            let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
            format!("{}: [{}]", py_str(&t.name), dims.join(", "))
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// Plans TF's `warm_start(old, vars_to_warm_start, var_name_to_vocab_info, var_name_to_prev_var_name)`
/// for the target, or says why TF would refuse.
///
/// When a configuration has several problems, the refusal is TF's first: the stages are TF's order of
/// work (`python/training/warm_starting_util.py`, spec §1.2-1.4 and §7), each refusing what TF refuses at
/// that point:
/// 1. `check_target` (ours): the target's own consistency, which a real graph guarantees.
/// 2. `check_vocab_infos`: `VocabInfo(...)` itself, built before `warm_start` is called, refuses an
///    `axis` other than 0 or 1.
/// 3. `group_variables` (`_get_grouped_variables`): the selection (a string over TRAINABLE, a list over
///    GLOBAL, each regex in turn, the union without de-duplication), grouped under the full name in the
///    order the names first appear (a Python dict keeps insertion order); partitions gather under their
///    variable.
/// 4. `prev_var_names` (`_get_object_checkpoint_renames`): without renames, an object-based checkpoint
///    must hold every grouped variable.
/// 5. `GraphConstruction::warm_start_var`, per grouped variable in that order: its previous name, then
///    `_warm_start_var_with_vocab` (argument checks, "At least two variables have the same name" for an
///    unpartitioned variable listed twice without a previous name, each listed partition's geometry)
///    or `_warm_start_var` (the same duplicate refusal, in `_get_var_info`), whose copies join
///    `init_from_checkpoint`'s batch; a batch is flushed (`GraphConstruction::flush_restores`: missing
///    tensors, a single variable's shape, by checkpoint tensor name) when its old tensor comes again.
/// 6. The last batch is flushed, then `GraphConstruction::check_all_used`: unused renames, then unused
///    vocabulary infos.
/// 7. `run_time`: `global_variables_initializer` runs the ops built above, RestoreV2 (dtype, a
///    partitioned variable's full shape) and the remap ops (vocabulary files, table sizes, the old
///    tensor). They run concurrently, so which failing op TF reports varies from run to run (spec §7.1);
///    in our runs of TF 2.21 the op built last was reported most often (a RestoreV2 of the final batch
///    over an earlier vocabulary remap 7-8 times in 10; of two remaps, the later one 6-9 times in 10), so
///    the ops are checked in reverse order of building. Within one remap, the vocabulary files are read
///    (GenerateVocabRemapping) before the old tensor (LoadAndRemapMatrix, which depends on it).
///
/// The output tensors follow (`output_tensors`).
pub fn plan(settings: &PlanSettings, old: &OldCheckpoint<'_>, target: &Target<'_>) -> Result<Plan, PlanError> {
    check_target(target)?;
    check_vocab_infos(settings)?;
    let old_by_name: HashMap<&str, &TensorInfo> = old.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let groups = group_variables(settings, target.variables)?;
    let prev_names = prev_var_names(settings, old, &groups)?;
    let mut graph = GraphConstruction::new(settings, old, &old_by_name, target.variables, &groups, &prev_names);
    for gi in 0..groups.len() {
        graph.warm_start_var(gi)?;
    }
    graph.flush_restores()?;
    graph.check_all_used()?;
    let built = std::mem::take(&mut graph.built);
    let variables = run_time(settings, target.variables, &groups, &old_by_name, graph.decisions, &built)?;
    let (outputs, passthrough) = output_tensors(settings, target);
    Ok(Plan { old_checkpoint: old.display.to_string(), variables, passthrough, outputs, skipped: Vec::new() })
}

/// `VocabInfo`'s constructor: `axis` must be 0 or 1 (checked before `warm_start` runs, so even for a
/// vocabulary info no variable uses).
fn check_vocab_infos(settings: &PlanSettings) -> Result<(), PlanError> {
    for (name, vocab) in &settings.var_name_to_vocab_info {
        if vocab.axis != 0 && vocab.axis != 1 {
            return Err(PlanError::VocabBadAxis { variable: name.clone(), axis: vocab.axis });
        }
    }
    Ok(())
}

/// Before TF's work: every variable of the target has its tensor, and its partitions lie inside it
/// (what a real graph guarantees, and a target given as plain data might not).
fn check_target(target: &Target<'_>) -> Result<(), PlanError> {
    let target_names: HashSet<&str> = target.tensors.iter().map(|t| t.name.as_str()).collect();
    for v in target.variables {
        if !target_names.contains(v.tensor.as_str()) {
            return Err(PlanError::TargetTensorMissing { variable: v.name.clone(), tensor: v.tensor.clone() });
        }
        check_partitions_inside(v)?;
    }
    Ok(())
}

/// Every partition of `v` lies inside its shape.
fn check_partitions_inside(v: &TargetVariable) -> Result<(), PlanError> {
    for part in &v.parts {
        let rank = v.shape.len();
        let inside = part.slice.start.len() == rank
            && part.slice.len.len() == rank
            && (0..rank)
                .all(|d| part.slice.start[d].checked_add(part.slice.len[d]).is_some_and(|end| end <= v.shape[d]));
        if !inside {
            return Err(PlanError::PartitionOutside {
                variable: v.name.clone(),
                part: part.name.clone(),
                start: part.slice.start.clone(),
                len: part.slice.len.clone(),
                shape: v.shape.clone(),
            });
        }
    }
    Ok(())
}

/// The previous names of the grouped variables.
struct PrevNames {
    /// Variable name -> old tensor name.
    names: BTreeMap<String, String>,
    /// Whether they come from the old checkpoint's object graph rather than `var_name_to_prev_var_name`.
    by_object_graph: bool,
}

/// TF's `var_name_to_prev_var_name`, or, when it is empty and the old checkpoint is object-based, the
/// names its object graph gives every grouped variable (refusing if one has none).
fn prev_var_names(settings: &PlanSettings, old: &OldCheckpoint<'_>, groups: &[Group]) -> Result<PrevNames, PlanError> {
    let names = &settings.var_name_to_prev_var_name;
    let keys = match old.object_graph_keys {
        Some(keys) if names.is_empty() => keys,
        _ => return Ok(PrevNames { names: names.clone(), by_object_graph: false }),
    };
    let missing: Vec<String> = groups.iter().filter(|g| !keys.contains_key(&g.name)).map(|g| g.name.clone()).collect();
    if let Some(first) = missing.first() {
        return Err(PlanError::ObjectCheckpointMissing { variable: first.clone(), missing });
    }
    let names = groups.iter().map(|g| (g.name.clone(), keys[&g.name].clone())).collect();
    Ok(PrevNames { names, by_object_graph: true })
}

/// TF's loop over the grouped variables while it builds the graph: what each variable gets, and the
/// refusals Python raises on the way.
struct GraphConstruction<'a> {
    settings: &'a PlanSettings,
    old: &'a OldCheckpoint<'a>,
    old_by_name: &'a HashMap<&'a str, &'a TensorInfo>,
    vars: &'a [TargetVariable],
    groups: &'a [Group],
    prev_names: &'a PrevNames,
    /// Variables whose previous name was looked up.
    used_renames: BTreeSet<String>,
    /// Variables whose vocabulary info was used.
    used_vocab: BTreeSet<String>,
    /// Per target variable, what it gets (`None`: its initial value).
    decisions: Vec<Option<Decision>>,
    /// `init_from_checkpoint`'s current batch, by old tensor (it restores in checkpoint-name order).
    pending: BTreeMap<String, PendingCopy>,
    /// The variables in the order their initialising ops were built.
    built: Vec<usize>,
}

impl<'a> GraphConstruction<'a> {
    fn new(
        settings: &'a PlanSettings,
        old: &'a OldCheckpoint<'a>,
        old_by_name: &'a HashMap<&'a str, &'a TensorInfo>,
        vars: &'a [TargetVariable],
        groups: &'a [Group],
        prev_names: &'a PrevNames,
    ) -> Self {
        GraphConstruction {
            settings,
            old,
            old_by_name,
            vars,
            groups,
            prev_names,
            used_renames: BTreeSet::new(),
            used_vocab: BTreeSet::new(),
            decisions: (0..vars.len()).map(|_| None).collect(),
            pending: BTreeMap::new(),
            built: Vec::new(),
        }
    }

    /// TF's step for grouped variable `gi`: its previous name, then `_warm_start_var_with_vocab` if it
    /// has a vocabulary info, else (when `vars_to_warm_start` is truthy) `_warm_start_var`.
    fn warm_start_var(&mut self, gi: usize) -> Result<(), PlanError> {
        let g = &self.groups[gi];
        let prev = self.prev_var_name(g);
        // `op_list_to_dict` refuses a name seen twice only for unpartitioned variables: partitions are
        // slices, gathered into one list under the full name, however often each is listed.
        let has_duplicates = g.members.len() > 1 && self.vars[g.var].parts.is_empty();
        if let Some(vocab) = self.settings.var_name_to_vocab_info.get(&g.name) {
            self.used_vocab.insert(g.name.clone());
            self.warm_start_var_with_vocab(g, vocab, prev, has_duplicates)
        } else if self.settings.vars_to_warm_start.is_truthy() {
            self.warm_start_var_copy(gi, prev, has_duplicates)
        } else {
            Ok(())
        }
    }

    /// The lookup in the previous names (an empty name counts as none), marking it used.
    fn prev_var_name(&mut self, g: &Group) -> Option<String> {
        let prev = self.prev_names.names.get(&g.name).filter(|p| !p.is_empty()).cloned();
        if prev.is_some() {
            self.used_renames.insert(g.name.clone());
        }
        prev
    }

    /// `_warm_start_var_with_vocab`'s Python checks (its arguments, duplicates, every partition's
    /// geometry); the remap itself is planned at run time.
    fn warm_start_var_with_vocab(
        &mut self,
        g: &Group,
        vocab: &VocabInfo,
        prev: Option<String>,
        has_duplicates: bool,
    ) -> Result<(), PlanError> {
        if vocab.new_vocab.display.is_empty() || vocab.new_vocab_size == 0 || vocab.old_vocab.display.is_empty() {
            return Err(PlanError::VocabInvalidArgs { variable: g.name.clone() });
        }
        if has_duplicates && prev.is_none() {
            return Err(PlanError::DuplicateVariable { variable: g.name.clone() });
        }
        let tensor = prev.unwrap_or_else(|| g.name.clone());
        // TF's list, duplicates included: its Python checks run over it in order, and a column remap's
        // rows are the sum over it.
        let listed: Vec<Option<usize>> = g.members.iter().map(|m| m.part).collect();
        check_vocab_partitions(&self.vars[g.var], &listed, vocab, &tensor)?;
        let mut parts = listed.clone();
        parts.sort_unstable();
        parts.dedup();
        let note = rename_note(&g.name, &tensor, self.prev_names.by_object_graph);
        let reason = format!("has a vocabulary (axis {}){note}", vocab.axis);
        self.decisions[g.var] = Some(Decision::Remap { tensor, vocab: Box::new(vocab.clone()), parts, listed, reason });
        self.built.push(g.var);
        Ok(())
    }

    /// `_warm_start_var`: the variable joins `init_from_checkpoint`'s batch, which is checked (flushed)
    /// first if it already restores the same old tensor.
    fn warm_start_var_copy(&mut self, gi: usize, prev: Option<String>, has_duplicates: bool) -> Result<(), PlanError> {
        let g = &self.groups[gi];
        if has_duplicates {
            return Err(PlanError::DuplicateVariable { variable: g.name.clone() });
        }
        let tensor = prev.unwrap_or_else(|| g.name.clone());
        if self.pending.contains_key(&tensor) {
            self.flush_restores()?;
        }
        self.pending.insert(tensor, PendingCopy { group: gi });
        Ok(())
    }

    /// `init_from_checkpoint`'s checks for the batch of pending copies, in old-tensor order.
    fn flush_restores(&mut self) -> Result<(), PlanError> {
        for (tensor, p) in std::mem::take(&mut self.pending) {
            let g = &self.groups[p.group];
            let decision = self.init_from_checkpoint(g, tensor)?;
            self.decisions[g.var] = Some(decision);
            self.built.push(g.var);
        }
        Ok(())
    }

    /// `init_from_checkpoint` for grouped variable `g` from old tensor `tensor`: the tensor exists and,
    /// for a single variable or partition, has its shape.
    fn init_from_checkpoint(&self, g: &Group, tensor: String) -> Result<Decision, PlanError> {
        let var = &self.vars[g.var];
        let Some(old_tensor) = self.old_by_name.get(tensor.as_str()) else {
            return Err(PlanError::TensorNotFound {
                variable: g.name.clone(),
                tensor,
                checkpoint: self.old.display.to_string(),
                available: shape_map_repr(self.old.tensors),
            });
        };
        let parts = copied_parts(var, g);
        if let [member] = g.members.as_slice() {
            check_single_restore(var, member, &tensor, old_tensor)?;
        }
        let reason =
            copy_reason(self.settings, &g.name, &tensor, self.prev_names.by_object_graph, parts.as_deref(), var);
        Ok(Decision::Copy { tensor, parts, reason })
    }

    /// TF's refusals of renames and vocabulary infos that no grouped variable used.
    fn check_all_used(&self) -> Result<(), PlanError> {
        let viable: Vec<String> = self.groups.iter().map(|g| g.name.clone()).collect();
        let unused: Vec<String> =
            self.prev_names.names.keys().filter(|k| !self.used_renames.contains(*k)).cloned().collect();
        if let Some(first) = unused.first() {
            return Err(PlanError::UnusedRenames { variable: first.clone(), unused, viable });
        }
        let unused: Vec<String> =
            self.settings.var_name_to_vocab_info.keys().filter(|k| !self.used_vocab.contains(*k)).cloned().collect();
        if let Some(first) = unused.first() {
            return Err(PlanError::UnusedVocabInfos { variable: first.clone(), unused, viable });
        }
        Ok(())
    }
}

/// The partitions of `var` that group `g` copies, sorted, or `None` for all of them (or an
/// unpartitioned variable).
fn copied_parts(var: &TargetVariable, g: &Group) -> Option<Vec<usize>> {
    if var.parts.is_empty() {
        return None;
    }
    let mut ps: Vec<usize> = g.members.iter().filter_map(|m| m.part).collect();
    ps.sort_unstable();
    ps.dedup();
    if ps.len() == var.parts.len() {
        None
    } else {
        Some(ps)
    }
}

/// A plain variable, or one partition alone: TF checks its shape against the old tensor's, and
/// refuses a single partition of a variable that has several.
fn check_single_restore(
    var: &TargetVariable,
    member: &Member,
    tensor: &str,
    old_tensor: &TensorInfo,
) -> Result<(), PlanError> {
    let (shown, shape) = match member.part {
        None => (var.name.clone(), var.shape.clone()),
        Some(p) => (var.parts[p].name.clone(), var.parts[p].slice.len.clone()),
    };
    if shape != old_tensor.shape {
        return Err(PlanError::ShapeMismatch {
            variable: shown,
            variable_shape: shape,
            tensor: tensor.to_string(),
            tensor_shape: old_tensor.shape.clone(),
        });
    }
    if let Some(p) = member.part {
        if var.parts.len() > 1 {
            return Err(PlanError::SinglePartitionSelected {
                variable: var.name.clone(),
                part: var.parts[p].name.clone(),
                tensor: tensor.to_string(),
            });
        }
    }
    Ok(())
}

/// "Run time": the restore and remap ops' own checks, in reverse order of building (`built`; see
/// [`plan`]), then the plan of every variable in the target's order.
fn run_time(
    settings: &PlanSettings,
    vars: &[TargetVariable],
    groups: &[Group],
    old_by_name: &HashMap<&str, &TensorInfo>,
    mut decisions: Vec<Option<Decision>>,
    built: &[usize],
) -> Result<Vec<VariablePlan>, PlanError> {
    let mut actions: Vec<Option<(Action, String)>> = (0..vars.len()).map(|_| None).collect();
    for &i in built.iter().rev() {
        if let Some(decision) = decisions[i].take() {
            actions[i] = Some(run_ops(&vars[i], old_by_name, decision)?);
        }
    }
    let grouped: HashSet<usize> = groups.iter().map(|g| g.var).collect();
    Ok(vars
        .iter()
        .zip(actions)
        .enumerate()
        .map(|(i, (var, action))| {
            let (action, reason) =
                action.unwrap_or_else(|| (Action::KeepInitial, keep_reason(settings, var, grouped.contains(&i))));
            variable_plan(var, action, reason)
        })
        .collect())
}

/// The ops that initialise `var` as `decision` says: their checks, and what `var` gets and why.
fn run_ops(
    var: &TargetVariable,
    old_by_name: &HashMap<&str, &TensorInfo>,
    decision: Decision,
) -> Result<(Action, String), PlanError> {
    match decision {
        Decision::Copy { tensor, parts, reason } => {
            check_restore_op(var, &tensor, old_by_name[tensor.as_str()])?;
            Ok((Action::Copy { from: tensor, parts }, reason))
        }
        Decision::Remap { tensor, vocab, parts, listed, reason } => {
            let old = old_by_name.get(tensor.as_str()).copied();
            let remap = plan_variable_remap(var, &parts, &listed, &vocab, &tensor, old)?;
            let reason = format!(
                "{reason}: {} of {} vocabulary entries found in the old vocabulary, {} missing, {} OOV buckets",
                remap.entries_found,
                remap.entries_found + remap.entries_missing,
                remap.entries_missing,
                remap.oov_buckets
            );
            Ok((Action::Remap(remap), reason))
        }
    }
}

/// The restore op's checks of the old tensor `tensor` against `var`: same dtype, and for a partitioned
/// variable (restored slice by slice) the same full shape.
fn check_restore_op(var: &TargetVariable, tensor: &str, old_tensor: &TensorInfo) -> Result<(), PlanError> {
    if old_tensor.dtype != var.dtype {
        return Err(PlanError::DTypeMismatch {
            variable: var.name.clone(),
            tensor: tensor.to_string(),
            expected: var.dtype,
            original: old_tensor.dtype,
        });
    }
    if !var.parts.is_empty() && old_tensor.shape != var.shape {
        return Err(PlanError::SliceShapeMismatch {
            variable: var.name.clone(),
            variable_shape: var.shape.clone(),
            tensor: tensor.to_string(),
            tensor_shape: old_tensor.shape.clone(),
        });
    }
    Ok(())
}

/// The plan of `var`: what it gets and why.
fn variable_plan(var: &TargetVariable, action: Action, reason: String) -> VariablePlan {
    VariablePlan {
        name: var.name.clone(),
        tensor: var.tensor.clone(),
        dtype: var.dtype,
        shape: var.shape.clone(),
        parts: var
            .parts
            .iter()
            .map(|p| PartInfo { name: p.name.clone(), start: p.slice.start.clone(), shape: p.slice.len.clone() })
            .collect(),
        action,
        reason,
        tensorflow_fails: None,
    }
}

/// The output tensors in the target's order (a partitioned variable once per partition if the output
/// keeps partitions), and the target tensors that are not variables (copied through).
fn output_tensors(settings: &PlanSettings, target: &Target<'_>) -> (Vec<OutputTensor>, Vec<String>) {
    let vars = target.variables;
    let var_index: HashMap<&str, usize> = vars.iter().enumerate().map(|(i, v)| (v.tensor.as_str(), i)).collect();
    let mut outputs = Vec::new();
    let mut passthrough = Vec::new();
    for t in target.tensors {
        match var_index.get(t.name.as_str()) {
            Some(&vi) if settings.keep_partitions && !vars[vi].parts.is_empty() => {
                for (p, part) in vars[vi].parts.iter().enumerate() {
                    outputs.push(OutputTensor {
                        name: t.name.clone(),
                        variable: Some(vi),
                        part: Some(p),
                        sink: SinkTensor { info: t.clone(), slice: Some(part.slice.clone()) },
                    });
                }
            }
            Some(&vi) => outputs.push(OutputTensor {
                name: t.name.clone(),
                variable: Some(vi),
                part: None,
                sink: SinkTensor::whole(t.clone()),
            }),
            None => {
                passthrough.push(t.name.clone());
                outputs.push(OutputTensor {
                    name: t.name.clone(),
                    variable: None,
                    part: None,
                    sink: SinkTensor::whole(t.clone()),
                });
            }
        }
    }
    (outputs, passthrough)
}

fn rename_note(name: &str, tensor: &str, by_object_graph: bool) -> String {
    if tensor == name {
        String::new()
    } else if by_object_graph {
        format!(", found as {tensor} through the old checkpoint's object graph")
    } else {
        format!(", renamed from {tensor} by var_name_to_prev_var_name")
    }
}

fn copy_reason(
    settings: &PlanSettings,
    name: &str,
    tensor: &str,
    by_object_graph: bool,
    parts: Option<&[usize]>,
    var: &TargetVariable,
) -> String {
    let selection = match &settings.vars_to_warm_start {
        VarsToWarmStart::Regex(r) => format!("matches vars_to_warm_start {r:?}"),
        VarsToWarmStart::List(l) => format!("matches vars_to_warm_start {l:?}"),
        VarsToWarmStart::Variables(_) => listed_reason(var, parts),
        VarsToWarmStart::Nothing => String::new(),
    };
    let parts = match parts {
        Some(ps) => format!(
            " (only partitions {})",
            ps.iter().map(|&p| var.parts[p].name.as_str()).collect::<Vec<_>>().join(", ")
        ),
        None => String::new(),
    };
    format!("{selection}{}{parts}", rename_note(name, tensor, by_object_graph))
}

fn keep_reason(settings: &PlanSettings, var: &TargetVariable, grouped: bool) -> String {
    match &settings.vars_to_warm_start {
        _ if grouped => "vars_to_warm_start is false (empty): only variables with a vocabulary are warm-started".into(),
        VarsToWarmStart::Regex(r) if !var.trainable => {
            format!("not trainable, and the string vars_to_warm_start {r:?} selects only trainable variables")
        }
        VarsToWarmStart::Regex(r) => format!("does not match vars_to_warm_start {r:?}"),
        VarsToWarmStart::List(l) => format!("matches none of vars_to_warm_start {l:?}"),
        VarsToWarmStart::Variables(_) => unlisted_reason(var),
        VarsToWarmStart::Nothing => {
            "not trainable, and vars_to_warm_start is false: only trainable variables with a vocabulary are warm-started"
                .into()
        }
    }
}

/// The string tensor holding a TF2 checkpoint's object graph: metadata, not a variable.
pub const OBJECT_GRAPH_KEY: &str = "_CHECKPOINTABLE_OBJECT_GRAPH";

/// Builds the target variables of a checkpoint without a graph: every tensor but the TF2 object graph
/// is a variable, trainable unless a `non_trainable` regex matches its `name:0`; `slices` says how each
/// is partitioned. With `object_graph_keys` (a TF2 target: full name -> checkpoint key), a variable is
/// named by its full name and still read from and written to its checkpoint key.
pub fn variables_without_graph(
    tensors: &[TensorInfo],
    non_trainable: &[String],
    object_graph_keys: Option<&HashMap<String, String>>,
    slices: impl Fn(&str) -> Option<Vec<Slice>>,
) -> Result<Vec<TargetVariable>, PlanError> {
    let regexes = non_trainable.iter().map(|r| compile_match_regex(r)).collect::<Result<Vec<_>, _>>()?;
    let full_names: HashMap<&str, &str> = object_graph_keys
        .map(|keys| keys.iter().map(|(name, key)| (key.as_str(), name.as_str())).collect())
        .unwrap_or_default();
    tensors
        .iter()
        .filter(|t| t.name != OBJECT_GRAPH_KEY)
        .map(|t| {
            let name = full_names.get(t.name.as_str()).map(|n| n.to_string()).unwrap_or_else(|| t.name.clone());
            let tensor_name = format!("{name}:0");
            let parts = slices(&t.name)
                .filter(|s| s.len() > 1)
                .map(|s| {
                    s.into_iter()
                        .enumerate()
                        .map(|(i, slice)| VariablePart { name: format!("{name}/part_{i}"), slice })
                        .collect()
                })
                .unwrap_or_default();
            let mut trainable = true;
            for re in &regexes {
                if is_match(re, &tensor_name)? {
                    trainable = false;
                    break;
                }
            }
            Ok(TargetVariable {
                trainable,
                name,
                tensor: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                parts,
            })
        })
        .collect()
}

/// Builds the target variables from a graph's variable list and the checkpoint's tensors.
pub fn variables_from_graph(
    graph: &warmstart_core::GraphInfo,
    tensors: &[TensorInfo],
) -> Result<Vec<TargetVariable>, PlanError> {
    let by_name: HashMap<&str, &TensorInfo> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    graph
        .variables
        .iter()
        .map(|v| {
            let t = by_name
                .get(v.name.as_str())
                .ok_or_else(|| PlanError::TargetTensorMissing { variable: v.name.clone(), tensor: v.name.clone() })?;
            Ok(TargetVariable {
                name: v.name.clone(),
                tensor: v.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                trainable: v.trainable,
                parts: v.parts.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str, trainable: bool) -> TargetVariable {
        TargetVariable {
            name: name.into(),
            tensor: name.into(),
            dtype: DType::F32,
            shape: vec![2],
            trainable,
            parts: vec![],
        }
    }

    fn run(
        settings: &PlanSettings,
        vars: &[TargetVariable],
        old: &[&str],
        keys: Option<&HashMap<String, String>>,
    ) -> Result<Plan, PlanError> {
        let old: Vec<TensorInfo> = old.iter().map(|n| TensorInfo::new(*n, DType::F32, vec![2])).collect();
        let tensors: Vec<TensorInfo> =
            vars.iter().map(|v| TensorInfo::new(v.name.clone(), v.dtype, v.shape.clone())).collect();
        plan(
            settings,
            &OldCheckpoint { display: "old", tensors: &old, object_graph_keys: keys },
            &Target { variables: vars, tensors: &tensors },
        )
    }

    fn copied(p: &Plan) -> Vec<&str> {
        p.variables.iter().filter(|v| matches!(v.action, Action::Copy { .. })).map(|v| v.name.as_str()).collect()
    }

    fn with(vars: VarsToWarmStart) -> PlanSettings {
        PlanSettings { vars_to_warm_start: vars, ..Default::default() }
    }

    #[test]
    fn string_selects_trainable_by_re_match_on_tensor_names() {
        let vars = [var("v", true), var("v1", true), var("v1/Momentum", false)];
        let all = ["v", "v1", "v1/Momentum"];
        assert_eq!(copied(&run(&with(VarsToWarmStart::default()), &vars, &all, None).unwrap()), ["v", "v1"]);
        // `$` never matches: the name is `v:0`.
        assert!(copied(&run(&with(VarsToWarmStart::Regex("v$".into())), &vars, &all, None).unwrap()).is_empty());
        assert_eq!(copied(&run(&with(VarsToWarmStart::Regex("v:0".into())), &vars, &all, None).unwrap()), ["v"]);
        let lookahead = VarsToWarmStart::Regex("(?!v1).*".into());
        assert_eq!(copied(&run(&with(lookahead), &vars, &all, None).unwrap()), ["v"]);
    }

    #[test]
    fn lists_select_global_variables_and_refuse_overlaps() {
        let vars = [var("v1", true), var("v1/Momentum", false), var("v2", true), var("v2/Momentum", false)];
        let all = ["v1", "v1/Momentum", "v2", "v2/Momentum"];
        let list = VarsToWarmStart::List(vec!["v1".into(), "v2[^/]".into()]);
        assert_eq!(copied(&run(&with(list), &vars, &all, None).unwrap()), ["v1", "v1/Momentum", "v2"]);
        let overlap = VarsToWarmStart::List(vec!["v".into(), "v1".into()]);
        let e = run(&with(overlap), &vars, &all, None).unwrap_err();
        assert_eq!(e.to_string(), "At least two variables have the same name: v1");
    }

    #[test]
    fn falsy_selection_warm_starts_nothing_but_still_uses_renames() {
        let vars = [var("v", true)];
        let mut s = with(VarsToWarmStart::Regex(String::new()));
        s.var_name_to_prev_var_name.insert("v".into(), "old_v".into());
        assert!(copied(&run(&s, &vars, &["old_v"], None).unwrap()).is_empty());
        s.vars_to_warm_start = VarsToWarmStart::List(vec![]);
        let e = run(&s, &vars, &["old_v"], None).unwrap_err();
        assert!(matches!(e, PlanError::UnusedRenames { .. }), "{e}");
        assert_eq!(e.variable(), "v");
    }

    #[test]
    fn object_graph_renames_and_missing_values() {
        let vars = [var("fruit_weights", true), var("extra", true)];
        let mut keys = HashMap::new();
        keys.insert("fruit_weights".to_string(), "v/.ATTRIBUTES/VARIABLE_VALUE".to_string());
        let e =
            run(&with(VarsToWarmStart::default()), &vars, &["v/.ATTRIBUTES/VARIABLE_VALUE"], Some(&keys)).unwrap_err();
        assert!(e.to_string().ends_with("The following variables were missing: {'extra'}"), "{e}");
        let p =
            run(&with(VarsToWarmStart::default()), &vars[..1], &["v/.ATTRIBUTES/VARIABLE_VALUE"], Some(&keys)).unwrap();
        assert!(matches!(&p.variables[0].action, Action::Copy { from, .. } if from == "v/.ATTRIBUTES/VARIABLE_VALUE"));
    }

    #[test]
    fn partitions_outside_their_variable_are_refused() {
        let mut v = var("x", true);
        v.parts = vec![VariablePart { name: "x/part_0".into(), slice: Slice { start: vec![1], len: vec![2] } }];
        let e = run(&with(VarsToWarmStart::default()), &[v], &["x"], None).unwrap_err();
        assert!(matches!(e, PlanError::PartitionOutside { .. }), "{e}");
    }

    fn partitioned(name: &str, rows: u64) -> TargetVariable {
        let half = rows / 2;
        let part = |i: u64, start: u64, len: u64| VariablePart {
            name: format!("{name}/part_{i}"),
            slice: Slice { start: vec![start], len: vec![len] },
        };
        TargetVariable {
            shape: vec![rows],
            parts: vec![part(0, 0, half), part(1, half, rows - half)],
            ..var(name, true)
        }
    }

    #[test]
    fn only_unpartitioned_variables_selected_twice_are_refused() {
        let vars = [partitioned("p", 2), var("v", true)];
        let twice = |re: &str| VarsToWarmStart::List(vec![re.into(), re.into()]);
        let p = run(&with(twice("p")), &vars, &["p", "v"], None).unwrap();
        assert_eq!(copied(&p), ["p"]);
        let e = run(
            &with(VarsToWarmStart::List(vec![".*part_1".into(), "v".into(), ".*".into()])),
            &vars,
            &["p", "v"],
            None,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "At least two variables have the same name: v");
    }

    #[test]
    fn run_time_refusals_come_from_the_op_built_last() {
        // Both restores fail in RestoreV2 (full shape [4] against [2]); their batch is built in
        // checkpoint-name order, a then b, and b's op, built last, is reported.
        let vars = [partitioned("a", 4), partitioned("b", 4)];
        let e = run(&with(VarsToWarmStart::default()), &vars, &["a", "b"], None).unwrap_err();
        assert!(matches!(e, PlanError::SliceShapeMismatch { .. }), "{e}");
        assert_eq!(e.variable(), "b");
    }

    #[test]
    fn one_old_tensor_feeds_two_variables() {
        let vars = [var("v1", true), var("v2", true)];
        let mut s = with(VarsToWarmStart::List(vec!["v1".into(), "v2".into()]));
        s.var_name_to_prev_var_name.insert("v2".into(), "v1".into());
        let p = run(&s, &vars, &["v1"], None).unwrap();
        assert_eq!(copied(&p), ["v1", "v2"]);
    }
}
