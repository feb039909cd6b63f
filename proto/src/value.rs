//! Lenient decoding of XML-RPC structs.
//!
//! Perl and Python clients omit members they have no value for instead of sending `<nil/>`,
//! and Perl often sends numbers as strings. [`StructReader`] accepts both, refuses members it
//! does not know (a typo should not silently do nothing), and reports the first problem as an
//! [`RpcError`] with code `InvalidParams`.

use std::collections::{BTreeMap, BTreeSet};

use dxr::Value;

use crate::fault::RpcError;

/// Reads members out of one struct parameter.
pub struct StructReader<'a> {
    members: &'a BTreeMap<String, Value>,
    seen: BTreeSet<&'static str>,
}

impl<'a> StructReader<'a> {
    /// Expects `params` to be exactly one struct.
    pub fn single(params: &'a [Value]) -> Result<StructReader<'a>, RpcError> {
        match params {
            [Value::Struct(members)] => Ok(StructReader { members, seen: BTreeSet::new() }),
            [_] => Err(RpcError::invalid_params("expected one struct parameter")),
            _ => {
                Err(RpcError::invalid_params(format!("expected one struct parameter, got {} parameters", params.len())))
            }
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.insert(key);
        self.members.get(key)
    }

    pub fn opt_str(&mut self, key: &'static str) -> Result<Option<String>, RpcError> {
        self.get(key).map(|v| value_str(key, v)).transpose()
    }

    pub fn req_str(&mut self, key: &'static str) -> Result<String, RpcError> {
        self.opt_str(key)?.ok_or_else(|| missing(key))
    }

    pub fn opt_int(&mut self, key: &'static str) -> Result<Option<i64>, RpcError> {
        self.get(key).map(|v| value_int(key, v)).transpose()
    }

    pub fn req_int(&mut self, key: &'static str) -> Result<i64, RpcError> {
        self.opt_int(key)?.ok_or_else(|| missing(key))
    }

    pub fn opt_bool(&mut self, key: &'static str) -> Result<Option<bool>, RpcError> {
        self.get(key).map(|v| value_bool(key, v)).transpose()
    }

    pub fn opt_bytes(&mut self, key: &'static str) -> Result<Option<Vec<u8>>, RpcError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Base64(b)) => Ok(Some(b.clone())),
            Some(_) => Err(RpcError::invalid_params(format!("member {key} must be base64"))),
        }
    }

    /// An array of strings (each read as `opt_str` reads one).
    pub fn opt_str_array(&mut self, key: &'static str) -> Result<Option<Vec<String>>, RpcError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items.iter().map(|v| value_str(key, v)).collect::<Result<_, _>>().map(Some),
            Some(_) => Err(RpcError::invalid_params(format!("member {key} must be an array of strings"))),
        }
    }

    pub fn req_bytes(&mut self, key: &'static str) -> Result<Vec<u8>, RpcError> {
        self.opt_bytes(key)?.ok_or_else(|| missing(key))
    }

    pub fn opt_array(&mut self, key: &'static str) -> Result<Option<&'a [Value]>, RpcError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items.as_slice())),
            Some(_) => Err(RpcError::invalid_params(format!("member {key} must be an array"))),
        }
    }

    /// Members that older SWAMP callers send but that this protocol no longer uses.
    pub fn tolerate(&mut self, keys: &[&'static str]) {
        self.seen.extend(keys.iter().copied());
    }

    /// Refuses any member that was not asked for.
    pub fn finish(self) -> Result<(), RpcError> {
        match self.members.keys().find(|k| !self.seen.contains(k.as_str())) {
            Some(k) => {
                Err(RpcError::invalid_params(format!("unknown member {:?}", k.chars().take(40).collect::<String>())))
            }
            None => Ok(()),
        }
    }
}

fn missing(key: &str) -> RpcError {
    RpcError::invalid_params(format!("missing member {key}"))
}

/// A string member as every client sends it: Perl's RPC::XML sends a digit-only string (a
/// numeric project name) as `<int>`.
pub fn lenient_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// An integer member as every client sends it (Perl may send numbers as strings).
pub fn lenient_int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(i64::from(*i)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn value_str(key: &str, v: &Value) -> Result<String, RpcError> {
    lenient_str(v).ok_or_else(|| RpcError::invalid_params(format!("member {key} must be a string")))
}

fn value_int(key: &str, v: &Value) -> Result<i64, RpcError> {
    lenient_int(v).ok_or_else(|| RpcError::invalid_params(format!("member {key} must be an integer")))
}

fn value_bool(key: &str, v: &Value) -> Result<bool, RpcError> {
    match v {
        Value::Boolean(b) => Ok(*b),
        Value::Integer(0) => Ok(false),
        Value::Integer(1) => Ok(true),
        _ => Err(RpcError::invalid_params(format!("member {key} must be a boolean"))),
    }
}

/// Positional string parameters (SWAMP's `isViewerAvailable(viewer, project)`).
pub fn positional_strings<const N: usize>(params: &[Value]) -> Result<[String; N], RpcError> {
    if params.len() != N {
        return Err(RpcError::invalid_params(format!("expected {N} string parameters, got {}", params.len())));
    }
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (slot, v) in out.iter_mut().zip(params) {
        *slot = value_str("parameter", v)?;
    }
    Ok(out)
}

/// Deepest `<array>`/`<struct>` nesting accepted ([`crate::wire`] refuses deeper while
/// parsing). Real calls nest two or three levels.
pub const MAX_NESTING: usize = 32;

/// Most `<value>`s one call may hold ([`crate::wire`] counts them while parsing). Real calls
/// hold under twenty; the limit bounds the memory a call's parsed values can take.
pub const MAX_VALUES: usize = 10_000;

/// XML-RPC integers are 32-bit; generations and times stay far below that in practice, and
/// a value that does not fit is clamped rather than wrapped.
pub fn clamp_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

/// Where a reply's struct members go: a [`StructBuilder`] (a [`Value`]), or
/// [`crate::wire::StructAnswer`] (the answer's XML directly). One list of members per reply
/// type serves both.
pub trait StructSink: Sized {
    fn str(self, key: &str, v: &str) -> Self;
    fn int(self, key: &str, v: i64) -> Self;
    fn bool(self, key: &str, v: bool) -> Self;
}

impl StructSink for StructBuilder {
    fn str(self, key: &str, v: &str) -> Self {
        StructBuilder::str(self, key, v)
    }
    fn int(self, key: &str, v: i64) -> Self {
        StructBuilder::int(self, key, v)
    }
    fn bool(self, key: &str, v: bool) -> Self {
        StructBuilder::bool(self, key, v)
    }
}

/// Builds struct values without ceremony.
#[derive(Default)]
pub struct StructBuilder(BTreeMap<String, Value>);

impl StructBuilder {
    pub fn new() -> StructBuilder {
        StructBuilder::default()
    }

    pub fn str(mut self, key: &str, v: impl Into<String>) -> Self {
        self.0.insert(key.to_owned(), Value::String(v.into()));
        self
    }

    pub fn opt_str(self, key: &str, v: Option<impl Into<String>>) -> Self {
        match v {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    pub fn int(mut self, key: &str, v: i64) -> Self {
        self.0.insert(key.to_owned(), Value::Integer(clamp_i32(v)));
        self
    }

    pub fn bool(mut self, key: &str, v: bool) -> Self {
        self.0.insert(key.to_owned(), Value::Boolean(v));
        self
    }

    pub fn bytes(mut self, key: &str, v: Vec<u8>) -> Self {
        self.0.insert(key.to_owned(), Value::Base64(v));
        self
    }

    pub fn value(mut self, key: &str, v: Value) -> Self {
        self.0.insert(key.to_owned(), v);
        self
    }

    pub fn build(self) -> Value {
        Value::Struct(self.0)
    }
}
