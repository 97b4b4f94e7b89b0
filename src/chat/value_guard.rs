//! The checks on every value a template keeps ([`super::source_guard`]
//! splices them into its `set`, `with` and `for` tags).
//!
//! - No kept value is nested deeper than [`MAX_VALUE_DEPTH`]: a loop that
//!   wraps a list in a list 300,000 times made a value whose printing,
//!   comparing and freeing recursed beyond any stack.
//! - No value contains itself. Namespaces are minijinja's only mutable
//!   values, so a cycle needs one that holds (or views) itself: `{% set
//!   ns.x = ns %}`, `{% set ns.x = [ns] %}`, `{% set ns.x = ns|chain(d) %}`.
//!   A value assigned to a namespace attribute is therefore copied as plain
//!   data (lists, dicts, strings, numbers: lazy views are read out, macros
//!   and loop objects become their attributes), and may not contain a
//!   namespace. Printing or comparing a cyclic value recursed until the
//!   stack overflowed.
//!
//! The walk charges one unit of fuel per item, so checking the same big
//! list on every turn of a loop stays within the render's work.

use std::fmt::{self, Write};

use minijinja::value::{DynObject, ObjectRepr, Tuple};
use minijinja::{Error, ErrorKind, State, Value};

use super::limits::MAX_VALUE_DEPTH;

/// The filter that checks a `{% set %}`, `{% with %}` or `{% for %}` value.
pub const VALUE_FILTER: &str = "__moe_value";

/// The filter that checks and copies a value for `{% set ns.attr = ... %}`.
pub const NAMESPACE_VALUE_FILTER: &str = "__moe_namespace_value";

/// `value | __moe_value`: the value, if nested at most [`MAX_VALUE_DEPTH`].
pub fn checked_value(state: &State, value: Value) -> Result<Value, Error> {
    check_depth(state, &value, 0)?;
    Ok(value)
}

/// `value | __moe_namespace_value`: a plain copy of the value, if it holds
/// no namespace and is nested at most [`MAX_VALUE_DEPTH`].
pub fn namespace_value(state: &State, value: Value) -> Result<Value, Error> {
    plain_copy(state, &value, 0)
}

fn check_depth(state: &State, value: &Value, depth: usize) -> Result<(), Error> {
    let Some(obj) = visit(state, value, depth)? else { return Ok(()) };
    match obj.repr() {
        ObjectRepr::Map => {
            for (k, v) in obj.try_iter_pairs().into_iter().flatten() {
                check_depth(state, &k, depth + 1)?;
                check_depth(state, &v, depth + 1)?;
            }
        }
        ObjectRepr::Seq | ObjectRepr::Iterable => {
            for item in obj.try_iter().into_iter().flatten() {
                check_depth(state, &item, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn plain_copy(state: &State, value: &Value, depth: usize) -> Result<Value, Error> {
    let Some(obj) = visit(state, value, depth)? else { return Ok(value.clone()) };
    match obj.repr() {
        ObjectRepr::Map => {
            if is_namespace(obj) {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "a namespace attribute cannot hold a namespace (the value could come to contain itself)",
                ));
            }
            let mut pairs = Vec::new();
            for (k, v) in obj.try_iter_pairs().into_iter().flatten() {
                pairs.push((plain_copy(state, &k, depth + 1)?, plain_copy(state, &v, depth + 1)?));
            }
            Ok(Value::from_pairs(pairs))
        }
        ObjectRepr::Seq | ObjectRepr::Iterable => {
            let mut items = Vec::new();
            for item in obj.try_iter().into_iter().flatten() {
                items.push(plain_copy(state, &item, depth + 1)?);
            }
            match value.downcast_object_ref::<Tuple>() {
                Some(_) => Ok(Value::from_object(Tuple::from(items))),
                None => Ok(Value::from(items)),
            }
        }
        _ => Ok(value.clone()),
    }
}

/// Counts one item (fuel) and checks its depth; the object, if it is one.
fn visit<'v>(state: &State, value: &'v Value, depth: usize) -> Result<Option<&'v DynObject>, Error> {
    if depth > MAX_VALUE_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("a value nested more than {MAX_VALUE_DEPTH} levels deep (MAX_VALUE_DEPTH)"),
        ));
    }
    state.consume_fuel(1)?;
    Ok(value.as_object())
}

/// Whether `obj` is a namespace. minijinja keeps its type private; its
/// debug form starts with the type's name, and only that much is written.
fn is_namespace(obj: &DynObject) -> bool {
    const NAME: &str = "Namespace {";
    struct Prefix(String);
    impl Write for Prefix {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.extend(s.chars().take(NAME.len().saturating_sub(self.0.len())));
            if self.0.len() >= NAME.len() {
                return Err(fmt::Error);
            }
            Ok(())
        }
    }
    let mut prefix = Prefix(String::new());
    let _ = write!(prefix, "{obj:?}");
    prefix.0 == NAME
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_a_namespace_from_other_maps() {
        let ns = minijinja::functions::namespace(None).unwrap();
        assert!(is_namespace(ns.as_object().unwrap()));
        let map = Value::from_pairs([("Namespace", 1)]);
        assert!(!is_namespace(map.as_object().unwrap()));
    }
}
