//! A restricted unpickler for the `data.pkl` of a `torch.save` archive, that runs nothing.
//!
//! Python's `pickle` (and `torch.load` without `weights_only=True`) calls whatever callable the stream
//! names: loading a checkpoint runs arbitrary code. This interpreter instead knows a fixed list of
//! globals and builds plain values from them; any other global is refused, by name, the moment the
//! stream names it ([`PickleError::Disallowed`]). The allow-list is what state dicts hold:
//!
//! - `collections.OrderedDict` (called with no arguments, or a list of pairs; its `BUILD` state,
//!   the `_metadata` of `state_dict()`, is ignored);
//! - `torch._utils._rebuild_tensor_v2`, `_rebuild_tensor_v3` (torch 2.x, for dtypes without a typed
//!   storage class: float8, uint16..uint64), `_rebuild_parameter`, `_rebuild_parameter_with_state`;
//! - the typed storage classes (`torch.FloatStorage`, `torch.HalfStorage`, `torch.BFloat16Storage`,
//!   ...) and `torch.storage.UntypedStorage`, only inside a persistent id
//!   `('storage', type, key, location, numel)`, which names the archive's member `data/<key>`;
//! - the dtypes (`torch.float32`, `torch.float8_e4m3fn`, ...), as `_rebuild_tensor_v3` takes them;
//! - dicts, lists, tuples, ints, floats, strings, bytes, bools and None.
//!
//! Why hand-written: the `serde-pickle` crate (1.2) decodes values but has no persistent ids
//! (`BINPERSID`, how every storage is referenced: "unsupported opcode"), turns every global into an
//! error or `None` (so `_rebuild_tensor_v2` calls cannot be told from others), and sorts dict keys
//! (losing the state dict's order); and no crate offers a safe restricted subset with storages. The interpreter is
//! small: the ~40 opcodes protocols 2 to 5 use for such values.
//!
//! Memory is bounded: the stack, the marks, the memo and the values made are counted against fixed
//! limits, and every length is checked against the bytes left before anything is allocated. Values
//! are shared (`Rc`), so a memo entry fetched many times costs nothing; a dict that holds itself is
//! caught by the depth limit of the walk that names the tensors ([`crate::names`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use warmstart_core::{DType, PickleProblem};

/// The most values on the stack at once.
const MAX_STACK: usize = 1 << 20;
/// The most marks open at once.
const MAX_MARKS: usize = 1 << 16;
/// The most memo entries.
const MAX_MEMO: usize = 1 << 20;
/// The most values made in one stream (a state dict of 10,000 tensors makes about 200,000).
const MAX_VALUES: u64 = 1 << 22;
/// The longest module or name of a `GLOBAL`.
const MAX_GLOBAL_LINE: usize = 256;

/// A value the stream built. The payloads of bools, floats and bytes are only looked at by tests
/// (no tensor needs them), but are kept so that a value is what the stream said.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<[Value]>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    Global(Global),
    Storage(Rc<Storage>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    /// The value's type, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// An allowed global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildParameterWithState,
    /// A storage class: typed (its dtype) or untyped (`None`).
    StorageType(Option<DType>),
    /// A `torch.dtype`.
    DType(DType),
}

/// A storage a persistent id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Storage {
    /// The archive member `data/<key>`.
    pub(crate) key: String,
    /// Its dtype, for a typed storage.
    pub(crate) dtype: Option<DType>,
    /// Its length: elements of a typed storage, bytes of an untyped one.
    pub(crate) numel: u64,
}

/// A tensor: a view of a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TensorRef {
    /// The storage's archive key.
    pub(crate) key: String,
    /// The element type.
    pub(crate) dtype: DType,
    /// The storage's length in bytes.
    pub(crate) storage_bytes: u64,
    /// The view's first element, in elements.
    pub(crate) offset: u64,
    /// The view's shape.
    pub(crate) shape: Vec<u64>,
    /// The view's strides, in elements.
    pub(crate) strides: Vec<u64>,
}

/// Why a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PickleError {
    /// A global outside the allow-list.
    Disallowed { module: String, name: String },
    /// Anything else, at a byte offset.
    At { offset: u64, problem: PickleProblem },
}

type Step<T = ()> = std::result::Result<T, Fail>;

/// A failure before its offset is attached.
enum Fail {
    Disallowed { module: String, name: String },
    Problem(PickleProblem),
}

impl From<PickleProblem> for Fail {
    fn from(p: PickleProblem) -> Self {
        Fail::Problem(p)
    }
}

/// Runs the pickle `bytes` and returns the value `STOP` leaves.
pub(crate) fn load(bytes: &[u8]) -> Result<Value, PickleError> {
    let mut machine = Machine { bytes, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), made: 0 };
    loop {
        let at = machine.pos;
        match machine.step() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(Fail::Disallowed { module, name }) => return Err(PickleError::Disallowed { module, name }),
            Err(Fail::Problem(problem)) => return Err(PickleError::At { offset: at as u64, problem }),
        }
    }
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    made: u64,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: u64) -> Step<&'a [u8]> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(PickleProblem::Truncated.into());
        }
        let n = n as usize;
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Step<u8> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: u64) -> Step<u64> {
        let bytes = self.take(n)?;
        Ok(bytes.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn push(&mut self, value: Value) -> Step {
        self.made += 1;
        if self.made > MAX_VALUES {
            return Err(PickleProblem::Limit { what: "values", max: MAX_VALUES }.into());
        }
        if self.stack.len() >= MAX_STACK {
            return Err(PickleProblem::Limit { what: "stack entries", max: MAX_STACK as u64 }.into());
        }
        self.stack.push(value);
        Ok(())
    }

    fn pop(&mut self, op: &'static str) -> Step<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(PickleProblem::StackUnderflow(op).into());
        }
        self.stack.pop().ok_or_else(|| PickleProblem::StackUnderflow(op).into())
    }

    /// The top of the stack above the last mark (as Python's unpickler sees it).
    fn top(&self, op: &'static str) -> Step<&Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        self.stack.get(floor..).and_then(<[Value]>::last).ok_or_else(|| PickleProblem::StackUnderflow(op).into())
    }

    /// The values above the last mark, removing them and the mark.
    fn pop_mark(&mut self, op: &'static str) -> Step<Vec<Value>> {
        let mark = self.marks.pop().ok_or(PickleProblem::StackUnderflow(op))?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn memo_put(&mut self, index: u64) -> Step {
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(PickleProblem::Limit { what: "memo entries", max: MAX_MEMO as u64 }.into());
        }
        let value = self.top("PUT")?.clone();
        self.memo.insert(index, value);
        Ok(())
    }

    fn memo_get(&mut self, index: u64) -> Step {
        let value = self.memo.get(&index).cloned().ok_or(PickleProblem::MissingMemo(index))?;
        self.push(value)
    }

    fn string(&mut self, n: u64) -> Step {
        let bytes = self.take(n)?;
        let text = std::str::from_utf8(bytes).map_err(|_| PickleProblem::NotUtf8)?;
        self.push(Value::Str(Rc::from(text)))
    }

    fn bytes_value(&mut self, n: u64) -> Step {
        let bytes = self.take(n)?;
        self.push(Value::Bytes(Rc::from(bytes)))
    }

    /// A Python 2 `str` (BINSTRING): text if it is UTF-8, else bytes.
    fn legacy_string(&mut self, n: u64) -> Step {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => self.push(Value::Str(Rc::from(text))),
            Err(_) => self.push(Value::Bytes(Rc::from(bytes))),
        }
    }

    /// A little-endian two's-complement integer of `n` bytes (LONG1, LONG4).
    fn long(&mut self, n: u64) -> Step {
        if n > 8 {
            return Err(PickleProblem::IntTooLarge(n).into());
        }
        let bytes = self.take(n)?;
        let mut value = bytes.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)) as i64;
        if (1..8).contains(&n) && bytes[n as usize - 1] & 0x80 != 0 {
            value -= 1i64 << (8 * n);
        }
        self.push(Value::Int(value))
    }

    fn line(&mut self) -> Step<&'a str> {
        let rest = &self.bytes[self.pos..];
        let end = rest.iter().take(MAX_GLOBAL_LINE + 1).position(|&b| b == b'\n').ok_or(PickleProblem::Truncated)?;
        let line = std::str::from_utf8(&rest[..end]).map_err(|_| PickleProblem::NotUtf8)?;
        self.pos += end + 1;
        Ok(line)
    }

    fn global(&mut self, module: &str, name: &str) -> Step {
        let global = resolve_global(module, name)
            .ok_or_else(|| Fail::Disallowed { module: module.to_string(), name: name.to_string() })?;
        self.push(Value::Global(global))
    }

    fn tuple(&mut self, n: usize) -> Step {
        let len = self.stack.len();
        let floor = self.marks.last().copied().unwrap_or(0);
        if len < floor + n {
            return Err(PickleProblem::StackUnderflow("TUPLE").into());
        }
        let items: Rc<[Value]> = self.stack.split_off(len - n).into();
        self.push(Value::Tuple(items))
    }

    /// Runs one opcode; `Some` is the value at `STOP`.
    fn step(&mut self) -> Step<Option<Value>> {
        let op = self.u8()?;
        match op {
            b'.' => return Ok(Some(self.pop("STOP")?)),
            0x80 => {
                let protocol = self.u8()?;
                if protocol > 5 {
                    return Err(PickleProblem::UnknownProtocol(protocol).into());
                }
            }
            0x95 => {
                self.take(8)?;
            }
            b'}' => self.push(Value::Dict(Rc::default()))?,
            b']' => self.push(Value::List(Rc::default()))?,
            b')' => self.push(Value::Tuple(Rc::from(Vec::new())))?,
            b'(' => {
                if self.marks.len() >= MAX_MARKS {
                    return Err(PickleProblem::Limit { what: "open marks", max: MAX_MARKS as u64 }.into());
                }
                self.marks.push(self.stack.len());
            }
            b'N' => self.push(Value::None)?,
            0x88 => self.push(Value::Bool(true))?,
            0x89 => self.push(Value::Bool(false))?,
            b'J' => {
                let v = self.le(4)? as u32 as i32;
                self.push(Value::Int(i64::from(v)))?;
            }
            b'K' => {
                let v = self.le(1)?;
                self.push(Value::Int(v as i64))?;
            }
            b'M' => {
                let v = self.le(2)?;
                self.push(Value::Int(v as i64))?;
            }
            0x8a => {
                let n = self.le(1)?;
                self.long(n)?;
            }
            0x8b => {
                let n = self.le(4)?;
                self.long(n)?;
            }
            b'G' => {
                let bytes = self.take(8)?;
                let v = f64::from_be_bytes(bytes.try_into().map_err(|_| PickleProblem::Truncated)?);
                self.push(Value::Float(v))?;
            }
            _ => self.step_more(op)?,
        }
        Ok(None)
    }

    /// Strings, memo, globals and containers (split from [`Machine::step`] to keep it short).
    fn step_more(&mut self, op: u8) -> Step {
        match op {
            b'X' => {
                let n = self.le(4)?;
                self.string(n)
            }
            0x8c => {
                let n = self.le(1)?;
                self.string(n)
            }
            0x8d => {
                let n = self.le(8)?;
                self.string(n)
            }
            b'T' => {
                let n = self.le(4)? as u32 as i32;
                let n = u64::try_from(n).map_err(|_| PickleProblem::Negative("string length"))?;
                self.legacy_string(n)
            }
            b'U' => {
                let n = self.le(1)?;
                self.legacy_string(n)
            }
            b'B' => {
                let n = self.le(4)?;
                self.bytes_value(n)
            }
            b'C' => {
                let n = self.le(1)?;
                self.bytes_value(n)
            }
            0x8e => {
                let n = self.le(8)?;
                self.bytes_value(n)
            }
            b'q' => {
                let i = self.le(1)?;
                self.memo_put(i)
            }
            b'r' => {
                let i = self.le(4)?;
                self.memo_put(i)
            }
            0x94 => {
                let i = self.memo.len() as u64;
                self.memo_put(i)
            }
            b'h' => {
                let i = self.le(1)?;
                self.memo_get(i)
            }
            b'j' => {
                let i = self.le(4)?;
                self.memo_get(i)
            }
            _ => self.step_objects(op),
        }
    }

    /// Globals, calls, containers and stack manipulation.
    fn step_objects(&mut self, op: u8) -> Step {
        match op {
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name)
            }
            0x93 => {
                let name = self.pop("STACK_GLOBAL")?;
                let module = self.pop("STACK_GLOBAL")?;
                match (&module, &name) {
                    (Value::Str(m), Value::Str(n)) => {
                        let (m, n) = (m.clone(), n.clone());
                        self.global(&m, &n)
                    }
                    _ => Err(wrong("STACK_GLOBAL", "two strings", &module).into()),
                }
            }
            b't' => {
                let items: Rc<[Value]> = self.pop_mark("TUPLE")?.into();
                self.push(Value::Tuple(items))
            }
            0x85 => self.tuple(1),
            0x86 => self.tuple(2),
            0x87 => self.tuple(3),
            b'l' => {
                let items = self.pop_mark("LIST")?;
                self.push(Value::List(Rc::new(RefCell::new(items))))
            }
            b'd' => {
                let items = self.pop_mark("DICT")?;
                let dict = Value::Dict(Rc::default());
                set_items(&dict, items, "DICT")?;
                self.push(dict)
            }
            b'Q' => {
                let pid = self.pop("BINPERSID")?;
                let storage = persistent_storage(&pid)?;
                self.push(Value::Storage(Rc::new(storage)))
            }
            b'R' => {
                let args = self.pop("REDUCE")?;
                let callable = self.pop("REDUCE")?;
                let value = reduce(&callable, &args)?;
                self.push(value)
            }
            _ => self.step_containers(op),
        }
    }

    fn step_containers(&mut self, op: u8) -> Step {
        match op {
            b's' => {
                let value = self.pop("SETITEM")?;
                let key = self.pop("SETITEM")?;
                set_items(self.top("SETITEM")?, vec![key, value], "SETITEM")
            }
            b'u' => {
                let items = self.pop_mark("SETITEMS")?;
                set_items(self.top("SETITEMS")?, items, "SETITEMS")
            }
            b'a' => {
                let value = self.pop("APPEND")?;
                append(self.top("APPEND")?, vec![value])
            }
            b'e' => {
                let items = self.pop_mark("APPENDS")?;
                append(self.top("APPENDS")?, items)
            }
            b'b' => {
                // The state of an OrderedDict (`state_dict()._metadata`): ignored.
                let state = self.pop("BUILD")?;
                match self.top("BUILD")? {
                    Value::Dict(_) => Ok(()),
                    other => Err(wrong("BUILD", "a dict", other).into()),
                }
                .map(|()| drop(state))
            }
            b'0' => self.pop("POP").map(drop),
            b'1' => self.pop_mark("POP_MARK").map(drop),
            b'2' => {
                let top = self.top("DUP")?.clone();
                self.push(top)
            }
            _ => Err(unsupported(op).into()),
        }
    }
}

/// The problem for opcode `op`, which is not handled.
fn unsupported(op: u8) -> PickleProblem {
    let name = match op {
        b'P' => "PERSID",
        b'I' => "INT",
        b'L' => "LONG",
        b'F' => "FLOAT",
        b'S' => "STRING",
        b'V' => "UNICODE",
        b'p' => "PUT",
        b'g' => "GET",
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        0x82..=0x84 => "EXT",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return PickleProblem::UnknownOpcode(op),
    };
    PickleProblem::UnsupportedOpcode(name)
}

fn wrong(op: &'static str, expected: &'static str, found: &Value) -> PickleProblem {
    PickleProblem::WrongType { op, expected, found: found.kind() }
}

fn set_items(target: &Value, items: Vec<Value>, op: &'static str) -> Step {
    let Value::Dict(dict) = target else { return Err(wrong(op, "a dict", target).into()) };
    if !items.len().is_multiple_of(2) {
        return Err(PickleProblem::StackUnderflow(op).into());
    }
    let mut dict = dict.try_borrow_mut().map_err(|_| wrong(op, "a dict", target))?;
    let mut items = items.into_iter();
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        dict.push((k, v));
    }
    Ok(())
}

fn append(target: &Value, items: Vec<Value>) -> Step {
    let Value::List(list) = target else { return Err(wrong("APPEND", "a list", target).into()) };
    list.try_borrow_mut().map_err(|_| wrong("APPEND", "a list", target))?.extend(items);
    Ok(())
}

/// The global `module.name`, if it is allowed.
fn resolve_global(module: &str, name: &str) -> Option<Global> {
    match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_tensor_v3") => Some(Global::RebuildTensorV3),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("torch._utils", "_rebuild_parameter_with_state") => Some(Global::RebuildParameterWithState),
        ("torch.storage" | "torch", "UntypedStorage") => Some(Global::StorageType(None)),
        ("torch", name) => {
            if let Some(dtype) = name.strip_suffix("Storage").and_then(storage_dtype) {
                Some(Global::StorageType(Some(dtype)))
            } else {
                torch_dtype(name).map(Global::DType)
            }
        }
        _ => None,
    }
}

/// The dtype of `torch.<name>Storage`.
fn storage_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "Double" => DType::F64,
        "Float" => DType::F32,
        "Half" => DType::F16,
        "BFloat16" => DType::BF16,
        "Long" => DType::I64,
        "Int" => DType::I32,
        "Short" => DType::I16,
        "Char" => DType::I8,
        "Byte" => DType::U8,
        "Bool" => DType::Bool,
        "ComplexFloat" => DType::C64,
        "ComplexDouble" => DType::C128,
        _ => return None,
    })
}

/// The dtype `torch.<name>`.
fn torch_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "float64" | "double" => DType::F64,
        "float32" | "float" => DType::F32,
        "float16" | "half" => DType::F16,
        "bfloat16" => DType::BF16,
        "int64" | "long" => DType::I64,
        "int32" | "int" => DType::I32,
        "int16" | "short" => DType::I16,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "uint16" => DType::U16,
        "uint32" => DType::U32,
        "uint64" => DType::U64,
        "bool" => DType::Bool,
        "complex64" | "cfloat" => DType::C64,
        "complex128" | "cdouble" => DType::C128,
        "float8_e4m3fn" => DType::F8E4M3,
        "float8_e5m2" => DType::F8E5M2,
        "float8_e4m3fnuz" => DType::F8E4M3Fnuz,
        "float8_e5m2fnuz" => DType::F8E5M2Fnuz,
        "float8_e8m0fnu" => DType::F8E8M0,
        _ => return None,
    })
}

/// The storage of a persistent id `('storage', type, key, location, numel)`.
fn persistent_storage(pid: &Value) -> Step<Storage> {
    let bad = || PickleProblem::BadPersistentId(describe(pid));
    let Value::Tuple(items) = pid else { return Err(bad().into()) };
    match &items[..] {
        [Value::Str(tag), Value::Global(Global::StorageType(dtype)), Value::Str(key), Value::Str(_), Value::Int(n)]
            if &**tag == "storage" =>
        {
            let numel = u64::try_from(*n).map_err(|_| PickleProblem::Negative("storage size"))?;
            Ok(Storage { key: key.to_string(), dtype: *dtype, numel })
        }
        _ => Err(bad().into()),
    }
}

/// A short description of a value, for messages: its type, or a tuple's item types.
fn describe(value: &Value) -> String {
    match value {
        Value::Tuple(items) => format!("({})", items.iter().map(Value::kind).collect::<Vec<_>>().join(", ")),
        other => other.kind().to_string(),
    }
}

/// Calls the allowed `callable` with `args`.
fn reduce(callable: &Value, args: &Value) -> Step<Value> {
    let Value::Global(global) = callable else { return Err(wrong("REDUCE", "an allowed global", callable).into()) };
    let Value::Tuple(args) = args else { return Err(wrong("REDUCE", "a tuple of arguments", args).into()) };
    match global {
        Global::OrderedDict => ordered_dict(args),
        Global::RebuildTensorV2 => rebuild_tensor("_rebuild_tensor_v2", args, None),
        Global::RebuildTensorV3 => match args.get(6) {
            Some(Value::Global(Global::DType(dtype))) => rebuild_tensor("_rebuild_tensor_v3", args, Some(*dtype)),
            _ => Err(bad_call("_rebuild_tensor_v3", "no dtype as 7th argument")),
        },
        Global::RebuildParameter | Global::RebuildParameterWithState => match args.first() {
            Some(Value::Tensor(t)) if (3..=4).contains(&args.len()) => Ok(Value::Tensor(t.clone())),
            _ => Err(bad_call("_rebuild_parameter", &format!("arguments {}", describe(&Value::Tuple(args.clone()))))),
        },
        Global::StorageType(_) | Global::DType(_) => Err(wrong("REDUCE", "a callable", callable).into()),
    }
}

fn bad_call(callable: &'static str, reason: &str) -> Fail {
    PickleProblem::BadCall { callable, reason: reason.to_string() }.into()
}

fn ordered_dict(args: &[Value]) -> Step<Value> {
    let dict = Value::Dict(Rc::default());
    match args {
        [] => {}
        [Value::List(pairs)] => {
            let mut items = Vec::new();
            for pair in pairs.borrow().iter() {
                match pair {
                    Value::Tuple(kv) if kv.len() == 2 => items.extend(kv.iter().cloned()),
                    other => return Err(wrong("OrderedDict", "(key, value) pairs", other).into()),
                }
            }
            set_items(&dict, items, "OrderedDict")?;
        }
        _ => return Err(bad_call("collections.OrderedDict", "arguments other than () or a list of pairs")),
    }
    Ok(dict)
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`, or v3 with
/// the dtype as seventh argument.
fn rebuild_tensor(callable: &'static str, args: &[Value], dtype: Option<DType>) -> Step<Value> {
    let arity = if dtype.is_some() { 7..=8 } else { 6..=7 };
    if !arity.contains(&args.len()) {
        return Err(bad_call(callable, &format!("{} arguments", args.len())));
    }
    let Value::Storage(storage) = &args[0] else { return Err(wrong(callable, "a storage", &args[0]).into()) };
    let dtype = match (storage.dtype, dtype) {
        (_, Some(d)) | (Some(d), None) => d,
        (None, None) => return Err(PickleProblem::UntypedStorage.into()),
    };
    dtype.size().ok_or_else(|| PickleProblem::UnsupportedDType(dtype.to_string()))?;
    let storage_bytes = match storage.dtype {
        Some(typed) => {
            let elem = typed.size().ok_or_else(|| PickleProblem::UnsupportedDType(typed.to_string()))? as u64;
            storage.numel.checked_mul(elem).ok_or(PickleProblem::Limit { what: "storage bytes", max: u64::MAX })?
        }
        None => storage.numel,
    };
    let Value::Int(offset) = args[1] else { return Err(wrong(callable, "an int offset", &args[1]).into()) };
    let offset = u64::try_from(offset).map_err(|_| PickleProblem::Negative("storage offset"))?;
    let shape = ints(callable, &args[2], "size")?;
    let strides = ints(callable, &args[3], "stride")?;
    if shape.len() != strides.len() {
        return Err(PickleProblem::StrideRank { shape: shape.len(), strides: strides.len() }.into());
    }
    let key = storage.key.clone();
    Ok(Value::Tensor(Rc::new(TensorRef { key, dtype, storage_bytes, offset, shape, strides })))
}

/// A tuple of non-negative ints (a size or a stride).
fn ints(callable: &'static str, value: &Value, what: &'static str) -> Step<Vec<u64>> {
    let Value::Tuple(items) = value else { return Err(wrong(callable, "a tuple of ints", value).into()) };
    items
        .iter()
        .map(|v| match v {
            Value::Int(i) => u64::try_from(*i).map_err(|_| PickleProblem::Negative(what).into()),
            other => Err(wrong(callable, "a tuple of ints", other).into()),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pickle of `{"w": tensor}` as torch 2.x writes it for a float32 [2, 3] tensor of storage "0".
    pub(crate) fn state_dict_pickle() -> Vec<u8> {
        let mut p = b"\x80\x02}q\x00(X\x01\x00\x00\x00wq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06K\x06tq\x07QK\x00K\x02K\x03\x86q\x08K\x03K\x01\x86q\t\x89ccollections\nOrderedDict\nq\n)Rq\x0btq\x0cRq\ru".to_vec();
        p.push(b'.');
        p
    }

    fn problem(bytes: &[u8]) -> PickleProblem {
        match load(bytes).unwrap_err() {
            PickleError::At { problem, .. } => problem,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_state_dict_as_torch_writes_it() {
        let Value::Dict(dict) = load(&state_dict_pickle()).unwrap() else { panic!("not a dict") };
        let dict = dict.borrow();
        assert!(matches!(&dict[0].0, Value::Str(k) if &**k == "w"));
        let Value::Tensor(t) = &dict[0].1 else { panic!("not a tensor") };
        let want = TensorRef {
            key: "0".into(),
            dtype: DType::F32,
            storage_bytes: 24,
            offset: 0,
            shape: vec![2, 3],
            strides: vec![3, 1],
        };
        assert_eq!(**t, want);
    }

    #[test]
    fn scalars_strings_and_containers() {
        // [None, True, -2, 300, 2**40, -1.5, "é", b"\x00", (1,), {}] with protocol 4 opcodes too.
        let p = b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00](N\x88J\xfe\xff\xff\xffM\x2c\x01\x8a\x06\x00\x00\x00\x00\x00\x01G\xbf\xf8\x00\x00\x00\x00\x00\x00\x8c\x02\xc3\xa9C\x01\x00K\x01\x85}\x94e.";
        let Value::List(list) = load(p).unwrap() else { panic!("not a list") };
        let kinds: Vec<_> = list.borrow().iter().map(Value::kind).collect();
        assert_eq!(kinds, ["None", "bool", "int", "int", "int", "float", "str", "bytes", "tuple", "dict"]);
        let list = list.borrow();
        assert!(matches!(list[2], Value::Int(-2)));
        assert!(matches!(list[3], Value::Int(300)));
        assert!(matches!(list[4], Value::Int(v) if v == 1 << 40));
        assert!(matches!(list[5], Value::Float(v) if v == -1.5));
        assert!(matches!(&list[6], Value::Str(s) if &**s == "é"));
        // LONG1 with a negative value.
        assert!(matches!(load(b"\x8a\x02\x00\xff.").unwrap(), Value::Int(-256)));
    }

    #[test]
    fn other_globals_are_refused_by_name_before_anything_runs() {
        let p = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.";
        assert_eq!(load(p).unwrap_err(), PickleError::Disallowed { module: "posix".into(), name: "system".into() });
        let p = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
        assert_eq!(load(p).unwrap_err(), PickleError::Disallowed { module: "builtins".into(), name: "eval".into() });
        // A torch name that is no storage or dtype.
        let p = b"ctorch\nload\n.";
        assert!(matches!(load(p).unwrap_err(), PickleError::Disallowed { name, .. } if name == "load"));
    }

    #[test]
    fn malformed_streams_are_problems_at_an_offset() {
        assert_eq!(problem(b""), PickleProblem::Truncated);
        assert_eq!(problem(b"\x80\x02}"), PickleProblem::Truncated);
        assert_eq!(problem(b"X\xff\xff\xff\xff"), PickleProblem::Truncated);
        assert_eq!(problem(b"\xff"), PickleProblem::UnknownOpcode(0xff));
        assert_eq!(problem(b"\x81"), PickleProblem::UnsupportedOpcode("NEWOBJ"));
        assert_eq!(problem(b"\x80\x09"), PickleProblem::UnknownProtocol(9));
        assert_eq!(problem(b"."), PickleProblem::StackUnderflow("STOP"));
        assert_eq!(problem(b"h\x05"), PickleProblem::MissingMemo(5));
        assert_eq!(problem(b"\x8a\x09"), PickleProblem::IntTooLarge(9));
        assert_eq!(problem(b"X\x01\x00\x00\x00\xff"), PickleProblem::NotUtf8);
        assert!(matches!(problem(b"K\x01K\x01K\x02s"), PickleProblem::WrongType { op: "SETITEM", .. }));
        assert!(matches!(problem(b"(K\x01Q"), PickleProblem::BadPersistentId(_)));
        assert!(matches!(problem(b"(u"), PickleProblem::StackUnderflow("SETITEMS")));
        // Underflow below a mark is refused too.
        assert_eq!(problem(b"K\x01(0"), PickleProblem::StackUnderflow("POP"));
        assert_eq!(problem(b"}(K\x01K\x02s"), PickleProblem::StackUnderflow("SETITEM"));
        assert_eq!(problem(b"K\x01(2"), PickleProblem::StackUnderflow("DUP"));
        assert!(matches!(load(b"K\x01(0").unwrap_err(), PickleError::At { offset: 3, .. }));
    }

    #[test]
    fn tensors_with_bad_views_are_refused() {
        let base = state_dict_pickle();
        // A negative offset: K\x00 (offset 0) becomes J -1.
        let at = base.windows(3).position(|w| w == b"QK\x00").unwrap() + 1;
        let mut p = base[..at].to_vec();
        p.extend_from_slice(b"J\xff\xff\xff\xff");
        p.extend_from_slice(&base[at + 2..]);
        assert_eq!(problem(&p), PickleProblem::Negative("storage offset"));
        // Shape of rank 2 and a stride of rank 1: the stride tuple `K\x03K\x01\x86` becomes `K\x01\x85`.
        let stride = base.windows(5).position(|w| w == b"K\x03K\x01\x86").unwrap();
        let mut p = base[..stride].to_vec();
        p.extend_from_slice(b"K\x01\x85");
        p.extend_from_slice(&base[stride + 5..]);
        assert_eq!(problem(&p), PickleProblem::StrideRank { shape: 2, strides: 1 });
    }

    #[test]
    fn the_limits_keep_memory_bounded() {
        // More marks than allowed.
        let p = vec![b'('; MAX_MARKS + 1];
        assert_eq!(problem(&p), PickleProblem::Limit { what: "open marks", max: MAX_MARKS as u64 });
        // More stack entries than allowed: `N` repeated.
        let p = vec![b'N'; MAX_STACK + 1];
        assert_eq!(problem(&p), PickleProblem::Limit { what: "stack entries", max: MAX_STACK as u64 });
        // More values than allowed, through DUP and POP (each DUP makes one).
        let mut p = vec![b'N'];
        p.extend(std::iter::repeat_n(*b"20", MAX_VALUES as usize).flatten());
        assert_eq!(problem(&p), PickleProblem::Limit { what: "values", max: MAX_VALUES });
        // More memo entries than allowed.
        let mut p = vec![b'N'];
        for i in 0..=MAX_MEMO as u32 {
            p.push(b'r');
            p.extend_from_slice(&i.to_le_bytes());
        }
        assert_eq!(problem(&p), PickleProblem::Limit { what: "memo entries", max: MAX_MEMO as u64 });
    }
}
