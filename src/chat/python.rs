//! Where minijinja and Python's jinja2 disagree on a chat template's
//! output, jinja2's way: values print as Python's `str()` does (floats as
//! `1e-07` and `1e+20`, containers as their repr), and the `iterable` and
//! `sequence` tests follow Python (`none is iterable` is false; strings and
//! dicts are sequences). Strings, booleans, `None` and most containers
//! already print as Python's in minijinja; this keeps one path for all.

use minijinja::value::{Tuple, ValueKind};
use minijinja::{Error, Output, State, Value};

use super::limits::{CappedText, MAX_VALUE_DEPTH};

/// The formatter for `{{ value }}`: Python's `str(value)`.
pub fn formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    match value.kind() {
        ValueKind::Number | ValueKind::Seq | ValueKind::Map => out.write_str(&str_of(state, value)?).map_err(Error::from),
        // Other objects (iterators, macros, ...) print as minijinja prints
        // them, within the cap: inside `{% filter %}` or a macro the text
        // goes to a string of minijinja's, not to the capped prompt.
        _ if value.as_object().is_some() => {
            let mut text = CappedText::new("printing a value");
            text.push_fmt(format_args!("{value}"))?;
            out.write_str(&text.into_string()).map_err(Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// `value | string`: Python's `str(value)`.
pub fn string(state: &State, value: &Value) -> Result<Value, Error> {
    match value.kind() {
        ValueKind::String => Ok(value.clone()),
        _ => Ok(Value::from(str_of(state, value)?)),
    }
}

/// `value is iterable`: whether Python's `iter(value)` works (an undefined
/// value iterates as empty, `None` and numbers do not iterate).
pub fn is_iterable(value: &Value) -> bool {
    match value.kind() {
        ValueKind::None | ValueKind::Bool | ValueKind::Number => false,
        ValueKind::Undefined => true,
        _ => value.try_iter().is_ok(),
    }
}

/// `value is sequence`: whether it has a length and items, as strings,
/// lists, tuples, dicts and undefined values have in Python.
pub fn is_sequence(value: &Value) -> bool {
    matches!(value.kind(), ValueKind::Undefined | ValueKind::String | ValueKind::Bytes | ValueKind::Seq | ValueKind::Map)
}

/// `str(value)`: a string as it is, anything else as its repr; at most
/// [`MAX_TEXT_BYTES`](super::limits::MAX_TEXT_BYTES).
pub(super) fn str_of(state: &State, value: &Value) -> Result<String, Error> {
    let mut out = CappedText::new("printing a value");
    push_str_of(state, &mut out, value)?;
    Ok(out.into_string())
}

/// Appends `str(value)` to `out`.
pub(super) fn push_str_of(state: &State, out: &mut CappedText, value: &Value) -> Result<(), Error> {
    match value.kind() {
        ValueKind::String => out.push_str(value.as_str().unwrap_or_default()),
        ValueKind::Undefined => Ok(()),
        _ => repr_at(state, out, value, 0),
    }
}

/// `repr(value)`: strings quoted (minijinja's debug form is Python's),
/// tuples in parentheses, numbers as Python prints them; containers nested
/// deeper than [`MAX_VALUE_DEPTH`] as `...` (as Python prints a container
/// that holds itself).
fn repr_at(state: &State, out: &mut CappedText, value: &Value, depth: usize) -> Result<(), Error> {
    // One unit of work per item: a lazy list of a trillion items stops.
    state.consume_fuel(1)?;
    if depth > MAX_VALUE_DEPTH && matches!(value.kind(), ValueKind::Seq | ValueKind::Map) {
        return out.push_str("...");
    }
    match value.kind() {
        ValueKind::Number if !value.is_integer() => out.push_str(&float_repr(f64::try_from(value.clone()).unwrap_or(f64::NAN))),
        ValueKind::Seq => {
            let tuple = value.downcast_object_ref::<Tuple>().is_some();
            out.push(if tuple { '(' } else { '[' })?;
            let mut n = 0;
            for (i, item) in value.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ")?;
                }
                repr_at(state, out, &item, depth + 1)?;
                n += 1;
            }
            out.push_str(match (tuple, n) {
                (true, 1) => ",)",
                (true, _) => ")",
                _ => "]",
            })
        }
        ValueKind::Map => {
            out.push('{')?;
            for (i, key) in value.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ")?;
                }
                repr_at(state, out, &key, depth + 1)?;
                out.push_str(": ")?;
                repr_at(state, out, &value.get_item(&key).unwrap_or_default(), depth + 1)?;
            }
            out.push('}')
        }
        _ => out.push_fmt(format_args!("{value:?}")),
    }
}

/// `repr(float)`: the shortest digits that read back the same, in exponent
/// form below 1e-4 and from 1e16 (`1e-05`, `1e+16`); `nan`, `inf`, `-inf`.
pub(super) fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{x:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = exp.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", e.abs());
    }
    let s = format!("{x:?}");
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str) -> String {
        let mut env = minijinja::Environment::new();
        env.set_formatter(formatter);
        env.add_filter("string", string);
        env.add_test("iterable", is_iterable);
        env.add_test("sequence", is_sequence);
        env.render_str(template, minijinja::context! {}).unwrap()
    }

    #[test]
    fn deep_nesting_prints_without_recursing_without_end() {
        let mut v = Value::from(1);
        for _ in 0..10_000 {
            v = Value::from(vec![v]);
        }
        let mut env = minijinja::Environment::new();
        env.set_formatter(formatter);
        let s = env.render_str("{{ v }}", minijinja::context! { v }).unwrap();
        assert!(s.starts_with("[[[") && s.contains("...") && s.len() < 2000, "{}", &s[..64]);
    }

    // Expected strings are Python 3.11 jinja2 3.1.6's output.
    #[test]
    fn prints_as_python() {
        assert_eq!(render("{{ 1e-7 }}|{{ 1e20 }}|{{ 2.5 }}|{{ 3 * 1.0 }}|{{ -0.0 }}|{{ 7 }}"), "1e-07|1e+20|2.5|3.0|-0.0|7");
        assert_eq!(
            render("{{ [1e-7, 'it\\'s', none, true] }}|{{ {'a': (1,), 'b': (1, 2.0)} }}"),
            "[1e-07, \"it's\", None, True]|{'a': (1,), 'b': (1, 2.0)}"
        );
        assert_eq!(render("{{ 1e16 | string }}|{{ false | string }}|{{ none | string }}|{{ 'x' | string }}"), "1e+16|False|None|x");
        assert_eq!(float_repr(1.2345678901234567e19), "1.2345678901234567e+19");
        assert_eq!(float_repr(0.0001), "0.0001");
    }

    #[test]
    fn tests_as_python() {
        let t = "{% for v in [none, nope, 'a', {}, 1, [], (1,)] %}{{ v is iterable }}/{{ v is sequence }} {% endfor %}";
        assert_eq!(render(t), "False/False True/True True/True True/True False/False True/True True/True ");
    }
}
