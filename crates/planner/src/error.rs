//! [`PlanError`]: one variant per refusal of TF's `warm_start`, its `Display` being TF's own message
//! text (where TF has one), each naming the variable it is about through [`PlanError::variable`].

/// Why a warm-start is refused. `Display` is TF's message; [`PlanError::variable`] names the variable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    // ---- selection and naming ----
    /// A `vars_to_warm_start` or `non_trainable` regular expression does not compile: Python's `re`
    /// refuses it, and TF raises that `re.error` (or `OverflowError`) from `re.compile`.
    #[error("{reason}")]
    InvalidRegex {
        /// The expression.
        pattern: String,
        /// Python's message (`bad escape \z at position 3`).
        reason: String,
        /// Python's exception class (`error`, i.e. `re.error`, or `OverflowError`).
        class: &'static str,
    },
    /// A regular expression backtracks past the matcher's step budget on a variable name.
    #[error("regular expression {pattern:?}: {reason}")]
    RegexTooSlow {
        /// The expression.
        pattern: String,
        /// What the matcher said (it says TF would likely not finish either).
        reason: String,
    },
    /// The same variable was selected twice (a list of overlapping regexes).
    #[error("At least two variables have the same name: {variable}")]
    DuplicateVariable {
        /// The variable.
        variable: String,
    },
    /// `vars_to_warm_start`'s list of variables names one the target does not have (ours: in TF a
    /// `Variable` object cannot name a variable outside its graph).
    #[error(
        "vars_to_warm_start lists variable {variable}, which the target does not have (a TF Variable object \
         cannot name a variable outside its graph); its variables are {}",
        .known.join(", ")
    )]
    UnknownListedVariable {
        /// The listed name.
        variable: String,
        /// The target's variables.
        known: Vec<String>,
    },
    /// The target lists a variable its checkpoint does not hold.
    #[error("the target's graph lists variable {variable} but its checkpoint has no tensor {tensor}")]
    TargetTensorMissing {
        /// The variable.
        variable: String,
        /// The tensor looked for.
        tensor: String,
    },
    /// The target's graph places a partition outside its variable.
    #[error("variable {variable}: partition {part} (start {start:?}, shape {len:?}) lies outside the variable's shape {shape:?}")]
    PartitionOutside {
        /// The variable.
        variable: String,
        /// The partition.
        part: String,
        /// Its start.
        start: Vec<u64>,
        /// Its shape.
        len: Vec<u64>,
        /// The variable's shape.
        shape: Vec<u64>,
    },
    /// An object-based old checkpoint lacks some selected variables.
    #[error(
        "Attempting to warm-start from an object-based checkpoint, but found that the checkpoint did not \
         contain values for all variables. The following variables were missing: {}",
        py_set(.missing)
    )]
    ObjectCheckpointMissing {
        /// The first missing variable.
        variable: String,
        /// Every missing variable.
        missing: Vec<String>,
    },
    /// Renames that no selected variable used.
    #[error("{}", unused_message("var_name_to_prev_var_name", .unused, .viable))]
    UnusedRenames {
        /// The first unused name.
        variable: String,
        /// Every unused name.
        unused: Vec<String>,
        /// The grouped variable names.
        viable: Vec<String>,
    },
    /// Vocabulary infos that no selected variable used.
    #[error("{}", unused_message("var_name_to_vocab_info", .unused, .viable))]
    UnusedVocabInfos {
        /// The first unused name.
        variable: String,
        /// Every unused name.
        unused: Vec<String>,
        /// The grouped variable names.
        viable: Vec<String>,
    },

    // ---- init_from_checkpoint ----
    /// The old tensor is not in the old checkpoint.
    #[error("Tensor {tensor} is not found in {checkpoint} checkpoint {available}")]
    TensorNotFound {
        /// The variable warm-started.
        variable: String,
        /// The old tensor name.
        tensor: String,
        /// The old checkpoint as given.
        checkpoint: String,
        /// The checkpoint's variable-to-shape map, as Python prints it.
        available: String,
    },
    /// A whole variable's shape differs from its old tensor's.
    #[error(
        "Shape of variable {variable}:0 ({}) doesn't match with shape of tensor {tensor} ({}) from \
         checkpoint reader.",
        py_tuple(.variable_shape),
        py_list(.tensor_shape)
    )]
    ShapeMismatch {
        /// The variable (or the single selected partition).
        variable: String,
        /// Its shape.
        variable_shape: Vec<u64>,
        /// The old tensor.
        tensor: String,
        /// The old tensor's shape.
        tensor_shape: Vec<u64>,
    },
    /// A partitioned variable's full shape differs from its old tensor's (TF's RestoreV2).
    #[error(
        "tensor_name = {tensor}; shape in shape_and_slice spec {} does not match the shape stored in \
         checkpoint: {}",
        tf_shape(.variable_shape),
        tf_shape(.tensor_shape)
    )]
    SliceShapeMismatch {
        /// The variable.
        variable: String,
        /// Its full shape.
        variable_shape: Vec<u64>,
        /// The old tensor.
        tensor: String,
        /// The old tensor's shape.
        tensor_shape: Vec<u64>,
    },
    /// The variable's dtype differs from its old tensor's (TF's RestoreV2).
    #[error("tensor_name = {tensor}; expected dtype {} does not equal original dtype {}", cpp_dtype(*.expected), cpp_dtype(*.original))]
    DTypeMismatch {
        /// The variable.
        variable: String,
        /// The old tensor.
        tensor: String,
        /// The variable's dtype.
        expected: warmstart_core::DType,
        /// The old tensor's dtype.
        original: warmstart_core::DType,
    },

    // ---- _warm_start_var_with_vocab / _load_and_remap_matrix_initializer ----
    /// A required vocabulary argument is empty or zero.
    #[error(
        "Invalid args: Must provide all of [current_vocab_path, current_vocab_size, prev_ckpt, prev_vocab_path}}."
    )]
    VocabInvalidArgs {
        /// The variable.
        variable: String,
    },
    /// `axis` is neither 0 nor 1.
    #[error("The only supported values for the axis argument are 0 and 1.  Provided axis: {axis}")]
    VocabBadAxis {
        /// The variable.
        variable: String,
        /// The axis given.
        axis: i64,
    },
    /// A negative OOV bucket count.
    #[error("num_{which}_oov_buckets must be >= 0, but received {count}")]
    NegativeOovBuckets {
        /// The variable.
        variable: String,
        /// `row` or `col`.
        which: &'static str,
        /// The count.
        count: i64,
    },
    /// `old_vocab_size` below -1 (TF's attribute minimum).
    #[error("Attr 'old_vocab_size' of 'GenerateVocabRemapping' Op passed {size} less than minimum -1.")]
    OldVocabSizeBelowMinimum {
        /// The variable.
        variable: String,
        /// The size given.
        size: i64,
    },
    /// A partition of a vocabulary variable is not a matrix.
    #[error("Expected 2-dim shape, but received: {}", py_list(.shape))]
    RemapNotMatrix {
        /// The variable.
        variable: String,
        /// The partition's shape.
        shape: Vec<u64>,
    },
    /// A partition with no rows.
    #[error("Expected 1st dim of shape to be > 0, but received shape: {}", py_list(.shape))]
    RemapNoRows {
        /// The variable.
        variable: String,
        /// The partition's shape.
        shape: Vec<u64>,
    },
    /// The columns do not equal the column vocabulary plus OOV buckets.
    #[error(
        "Expected 2nd dim of shape to be new_col_vocab_size ({new_cols}) + num_col_oov_buckets ({col_oov}) = {}, \
         but received shape: {}",
        *.new_cols as i128 + *.col_oov as i128,
        py_list(.shape)
    )]
    RemapColumns {
        /// The variable.
        variable: String,
        /// New column vocabulary size.
        new_cols: i64,
        /// Column OOV buckets.
        col_oov: i64,
        /// The partition's shape.
        shape: Vec<u64>,
    },
    /// The rows exceed the vocabulary plus OOV buckets.
    #[error(
        "Trying to initialize {rows} additional rows after {offset} rows have already been initialized, which \
         would exceed expected total row count of new_row_vocab_size ({new_rows}) + num_row_oov_buckets \
         ({row_oov}) = {}.",
        *.new_rows as i128 + *.row_oov as i128
    )]
    RemapTooManyRows {
        /// The variable.
        variable: String,
        /// The partition's rows.
        rows: u64,
        /// The partition's offset.
        offset: u64,
        /// New row vocabulary size.
        new_rows: i64,
        /// Row OOV buckets.
        row_oov: i64,
    },
    /// A partition past the vocabulary that is not entirely OOV.
    #[error("Partitioned variable offset is greater than new vocab size and not operating on OOV-only partition.")]
    RemapNotOovOnly {
        /// The variable.
        variable: String,
    },
    /// A vocabulary variable partitioned along more than the first dimension.
    #[error("variable {variable} has a vocabulary but is partitioned along its columns, which TF's remapping does not support")]
    RemapColumnPartitioned {
        /// The variable.
        variable: String,
    },
    /// A vocabulary variable that is not float32.
    #[error(
        "Tensor conversion requested dtype {} for Tensor with dtype float32: <tf.Tensor 'LoadAndRemapMatrix:0' \
         shape={} dtype=float32>",
        py_dtype(*.dtype),
        py_tuple(.shape)
    )]
    RemapNotFloat32 {
        /// The variable.
        variable: String,
        /// Its dtype.
        dtype: warmstart_core::DType,
        /// The partition's shape.
        shape: Vec<u64>,
    },

    // ---- GenerateVocabRemapping (vocabulary files) ----
    /// A vocabulary file that cannot be read (TF's NotFoundError names the file and the reason).
    #[error("{file}; {reason}")]
    VocabFileUnreadable {
        /// The variable.
        variable: String,
        /// The file.
        file: String,
        /// What the system said.
        reason: String,
    },
    /// An empty vocabulary file.
    #[error("Read less bytes than requested")]
    VocabFileEmpty {
        /// The variable.
        variable: String,
        /// The file.
        file: String,
    },
    /// `old_vocab_size` 0.
    #[error("Finished reading {size} of lines from {file}")]
    VocabFinishedReading {
        /// The variable.
        variable: String,
        /// The file.
        file: String,
        /// The size asked for.
        size: i64,
    },
    /// `old_vocab_size` larger than the file.
    #[error("Invalid vocab_size in {file}: expected {expected} but got {got}")]
    VocabSizeInvalid {
        /// The variable.
        variable: String,
        /// The file.
        file: String,
        /// The size asked for.
        expected: i64,
        /// The lines the file has.
        got: i64,
    },
    /// An empty line in the range read.
    #[error("Invalid content in {file}: empty line found at position {position}.")]
    VocabEmptyLine {
        /// The variable.
        variable: String,
        /// The file.
        file: String,
        /// The byte offset just after the empty line's terminator.
        position: u64,
    },
    /// `new_vocab_size` (plus the partition offset) larger than the new file.
    #[error("lookup table size must be larger than last new vocab entry's line")]
    VocabTableTooSmall {
        /// The variable.
        variable: String,
        /// The new vocabulary file.
        file: String,
    },
    /// A token twice in the old vocabulary's range.
    #[error("HashTable has different value for same key. Key {key} has {previous} and trying to add value {value}")]
    VocabDuplicateToken {
        /// The variable.
        variable: String,
        /// The file.
        file: String,
        /// The token.
        key: String,
        /// Its first line.
        previous: i64,
        /// Its second line.
        value: i64,
    },

    // ---- LoadAndRemapMatrix ----
    /// Two new entries take the same old entry (a duplicate new token present in the old vocabulary).
    #[error("Old ID {old_id} is mapped to both new ID {first} and {second}, which is not supported.")]
    OldIdMappedTwice {
        /// The variable.
        variable: String,
        /// The old id.
        old_id: i64,
        /// The first new id.
        first: i64,
        /// The second new id.
        second: i64,
    },
    /// The old tensor of a vocabulary variable is not in the old checkpoint (TF's `BundleReader`).
    #[error("Key {tensor} not found in checkpoint")]
    RemapOldNotFound {
        /// The variable.
        variable: String,
        /// The old tensor.
        tensor: String,
    },
    /// One partition alone selected whose shape equals the whole old tensor: TF would restore the whole
    /// old tensor into that partition, which we do not support.
    #[error("variable {variable}: only partition {part} is selected and TF would restore all of tensor {tensor} into it; select the whole variable instead")]
    SinglePartitionSelected {
        /// The variable.
        variable: String,
        /// The partition.
        part: String,
        /// The old tensor.
        tensor: String,
    },
    /// The old tensor of a vocabulary variable is not float32.
    #[error("Tensor {tensor} has invalid type {} instead of expected type float", cpp_dtype(*.dtype))]
    RemapOldNotFloat32 {
        /// The variable.
        variable: String,
        /// The old tensor.
        tensor: String,
        /// Its dtype.
        dtype: warmstart_core::DType,
    },
    /// The old tensor of a vocabulary variable is not a matrix.
    #[error(
        "Tensor {tensor} has shape {} of invalid rank {} instead of expected shape of rank 2.",
        tf_shape(.shape),
        .shape.len()
    )]
    RemapOldNotMatrix {
        /// The variable.
        variable: String,
        /// The old tensor.
        tensor: String,
        /// Its shape.
        shape: Vec<u64>,
    },
    /// Without a column vocabulary, the old and new column counts differ.
    #[error(
        "Tensor {tensor} has shape {}, where the size of its 2nd dimension is {} instead of being equal to num_cols={num_cols}",
        tf_shape(.shape),
        .shape.get(1).copied().unwrap_or(0)
    )]
    RemapOldColumns {
        /// The variable.
        variable: String,
        /// The old tensor.
        tensor: String,
        /// Its shape.
        shape: Vec<u64>,
        /// The new column count.
        num_cols: u64,
    },
    /// A row to load lies beyond the old tensor.
    #[error("variable {variable}: old row {row} of tensor {tensor} is needed but the tensor has only {rows} rows")]
    RemapOldRowOutOfRange {
        /// The variable.
        variable: String,
        /// The old tensor.
        tensor: String,
        /// The row.
        row: i64,
        /// The rows the old tensor has.
        rows: u64,
    },
    /// A column of the old vocabulary lies beyond the old tensor (TF would leave the cell
    /// uninitialised).
    #[error(
        "variable {variable}: old column {column} of tensor {tensor} is needed but the tensor has only {columns} \
         columns (TF would leave these cells uninitialised)"
    )]
    RemapOldColumnOutOfRange {
        /// The variable.
        variable: String,
        /// The old tensor.
        tensor: String,
        /// The column.
        column: i64,
        /// The columns the old tensor has.
        columns: u64,
    },
    /// A size that does not fit this machine.
    #[error("variable {variable}: a size does not fit in memory")]
    TooLarge {
        /// The variable.
        variable: String,
    },
}

impl PlanError {
    /// The variable the refusal is about (for the unused-names refusals, the first unused name).
    pub fn variable(&self) -> &str {
        use PlanError::*;
        match self {
            InvalidRegex { pattern, .. } | RegexTooSlow { pattern, .. } => pattern,
            DuplicateVariable { variable }
            | UnknownListedVariable { variable, .. }
            | TargetTensorMissing { variable, .. }
            | PartitionOutside { variable, .. }
            | ObjectCheckpointMissing { variable, .. }
            | UnusedRenames { variable, .. }
            | UnusedVocabInfos { variable, .. }
            | TensorNotFound { variable, .. }
            | ShapeMismatch { variable, .. }
            | SliceShapeMismatch { variable, .. }
            | DTypeMismatch { variable, .. }
            | VocabInvalidArgs { variable }
            | VocabBadAxis { variable, .. }
            | NegativeOovBuckets { variable, .. }
            | OldVocabSizeBelowMinimum { variable, .. }
            | RemapNotMatrix { variable, .. }
            | RemapNoRows { variable, .. }
            | RemapColumns { variable, .. }
            | RemapTooManyRows { variable, .. }
            | RemapNotOovOnly { variable }
            | RemapColumnPartitioned { variable }
            | RemapNotFloat32 { variable, .. }
            | VocabFileEmpty { variable, .. }
            | VocabFileUnreadable { variable, .. }
            | VocabFinishedReading { variable, .. }
            | VocabSizeInvalid { variable, .. }
            | VocabEmptyLine { variable, .. }
            | VocabTableTooSmall { variable, .. }
            | VocabDuplicateToken { variable, .. }
            | OldIdMappedTwice { variable, .. }
            | RemapOldNotFloat32 { variable, .. }
            | RemapOldNotFound { variable, .. }
            | SinglePartitionSelected { variable, .. }
            | RemapOldNotMatrix { variable, .. }
            | RemapOldColumns { variable, .. }
            | RemapOldRowOutOfRange { variable, .. }
            | RemapOldColumnOutOfRange { variable, .. }
            | TooLarge { variable } => variable,
        }
    }

    /// The Python exception class TF raises for this refusal (`ValueError`, `InvalidArgumentError`, ...),
    /// or `None` for refusals of our own.
    pub fn tf_class(&self) -> Option<&'static str> {
        use PlanError::*;
        Some(match self {
            InvalidRegex { class, .. } => class,
            RegexTooSlow { .. } | TargetTensorMissing { .. } | RemapColumnPartitioned { .. } => return None,
            UnknownListedVariable { .. } => return None,
            RemapOldRowOutOfRange { .. } | RemapOldColumnOutOfRange { .. } | TooLarge { .. } => return None,
            SinglePartitionSelected { .. } | PartitionOutside { .. } => return None,
            RemapOldNotFound { .. } | VocabFileUnreadable { .. } => "NotFoundError",
            DuplicateVariable { .. }
            | ObjectCheckpointMissing { .. }
            | UnusedRenames { .. }
            | UnusedVocabInfos { .. }
            | TensorNotFound { .. }
            | ShapeMismatch { .. }
            | VocabInvalidArgs { .. }
            | VocabBadAxis { .. }
            | NegativeOovBuckets { .. }
            | OldVocabSizeBelowMinimum { .. }
            | RemapNotMatrix { .. }
            | RemapNoRows { .. }
            | RemapColumns { .. }
            | RemapTooManyRows { .. }
            | RemapNotOovOnly { .. }
            | RemapNotFloat32 { .. } => "ValueError",
            VocabFileEmpty { .. } | VocabFinishedReading { .. } => "OutOfRangeError",
            VocabSizeInvalid { .. }
            | VocabEmptyLine { .. }
            | VocabTableTooSmall { .. }
            | SliceShapeMismatch { .. }
            | DTypeMismatch { .. }
            | RemapOldNotFloat32 { .. }
            | RemapOldNotMatrix { .. }
            | RemapOldColumns { .. } => "InvalidArgumentError",
            VocabDuplicateToken { .. } => "FailedPreconditionError",
            OldIdMappedTwice { .. } => "UnimplementedError",
        })
    }

    /// Whether the message names the variable itself; if not, callers should show
    /// [`PlanError::variable`] beside it.
    pub fn message_names_variable(&self) -> bool {
        let message = self.to_string();
        let variable = self.variable();
        let is_name_char = |c: char| c.is_alphanumeric() || c == '_' || c == '/' || c == '.';
        message.match_indices(variable).any(|(at, _)| {
            let before = message[..at].chars().next_back();
            let after = message[at + variable.len()..].chars().next();
            !variable.is_empty() && !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
        })
    }
}

/// A Python `repr` of a string (single quotes unless the string holds one).
pub(crate) fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A Python set of strings, e.g. `{'a', 'b'}` (sorted: Python's order is arbitrary).
/// TF's message for entries of `setting` that no grouped variable used.
fn unused_message(setting: &str, unused: &[String], viable: &[String]) -> String {
    format!(
        "You provided the following variables in {setting} that were not used: {}.  \
         Perhaps you misspelled them?  Here is the list of viable variable names: {}",
        py_set(unused),
        py_dict_keys(viable)
    )
}

fn py_set(names: &[String]) -> String {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    let items: Vec<String> = sorted.iter().map(|s| py_str(s)).collect();
    format!("{{{}}}", items.join(", "))
}

/// Python's `dict_keys([...])`.
fn py_dict_keys(names: &[String]) -> String {
    let items: Vec<String> = names.iter().map(|s| py_str(s)).collect();
    format!("dict_keys([{}])", items.join(", "))
}

/// A `TensorShape` as Python prints it: `(3, 2)`, `(1,)`, `()`.
pub(crate) fn py_tuple(shape: &[u64]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// A Python list of dimensions: `[2, 3]`.
pub(crate) fn py_list(shape: &[u64]) -> String {
    format!("[{}]", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

/// A C++ `TensorShape::DebugString`: `[2,3]`.
pub(crate) fn tf_shape(shape: &[u64]) -> String {
    format!("[{}]", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","))
}

/// The C++ name of a dtype, as TF's `DataTypeString` spells it.
pub fn cpp_dtype(d: warmstart_core::DType) -> &'static str {
    use warmstart_core::DType::*;
    match d {
        Bool => "bool",
        U8 => "uint8",
        I8 => "int8",
        U16 => "uint16",
        I16 => "int16",
        U32 => "uint32",
        I32 => "int32",
        U64 => "uint64",
        I64 => "int64",
        F16 => "half",
        BF16 => "bfloat16",
        F32 => "float",
        F64 => "double",
        F8E5M2 => "float8_e5m2",
        F8E4M3 => "float8_e4m3fn",
        F8E8M0 => "float8_e8m0fnu",
        C64 => "complex64",
        C128 => "complex128",
        String => "string",
        _ => "unknown",
    }
}

/// The Python name of a dtype (`float64`, `int32`).
pub fn py_dtype(d: warmstart_core::DType) -> &'static str {
    use warmstart_core::DType::*;
    match d {
        Bool => "bool",
        U8 => "uint8",
        I8 => "int8",
        U16 => "uint16",
        I16 => "int16",
        U32 => "uint32",
        I32 => "int32",
        U64 => "uint64",
        I64 => "int64",
        F16 => "float16",
        BF16 => "bfloat16",
        F32 => "float32",
        F64 => "float64",
        F8E5M2 => "float8_e5m2",
        F8E4M3 => "float8_e4m3fn",
        F8E8M0 => "float8_e8m0fnu",
        C64 => "complex64",
        C128 => "complex128",
        String => "string",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_formatting() {
        assert_eq!(py_tuple(&[3, 2]), "(3, 2)");
        assert_eq!(py_tuple(&[1]), "(1,)");
        assert_eq!(py_tuple(&[]), "()");
        assert_eq!(py_list(&[2, 3]), "[2, 3]");
        assert_eq!(tf_shape(&[6, 1]), "[6,1]");
        assert_eq!(py_set(&["y".into()]), "{'y'}");
        assert_eq!(py_dict_keys(&["x".into(), "z".into()]), "dict_keys(['x', 'z'])");
    }

    #[test]
    fn every_refusal_names_its_variable() {
        let e = PlanError::PartitionOutside {
            variable: "x".into(),
            part: "x/part_1".into(),
            start: vec![3, 0],
            len: vec![2, 1],
            shape: vec![4, 1],
        };
        assert!(e.message_names_variable() && e.tf_class().is_none());
    }

    #[test]
    fn names_the_variable_as_a_whole_word() {
        let e = PlanError::VocabFileEmpty { variable: "w".into(), file: "new_vocab".into() };
        assert!(!e.message_names_variable());
        let e = PlanError::DTypeMismatch {
            variable: "w".into(),
            tensor: "w".into(),
            expected: warmstart_core::DType::I32,
            original: warmstart_core::DType::I64,
        };
        assert!(e.message_names_variable());
    }
}
