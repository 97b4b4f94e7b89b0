//! `tojson` as transformers defines it for chat templates:
//! `json.dumps(x, ensure_ascii=False, indent=indent, separators=separators,
//! sort_keys=sort_keys)`, so a template prints tools and arguments exactly as
//! Python does (minijinja's own `tojson` escapes HTML characters and spaces
//! differently).

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};

use super::limits::{CappedText, MAX_JSON_INDENT, MAX_VALUE_DEPTH};

/// The filter: `x | tojson`, `x | tojson(indent=2)`, `tojson(x, 4)`,
/// `separators=(',', ':')`, `sort_keys=true`, `ensure_ascii=true`.
pub fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match indent {
        Some(v) => Some(v),
        None => kwargs.get::<Option<Value>>("indent")?,
    };
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match usize::try_from(v.clone()) {
            Ok(n) if n <= MAX_JSON_INDENT => Some(n),
            _ => return Err(bad(&format!("tojson: indent must be a number from 0 to {MAX_JSON_INDENT} (MAX_JSON_INDENT), not {v}"))),
        },
    };
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let separators = match kwargs.get::<Option<Value>>("separators")? {
        Some(v) if !v.is_none() => {
            let items: Vec<Value> = v.try_iter()?.collect();
            match items.as_slice() {
                [a, b] => match (a.as_str(), b.as_str()) {
                    (Some(a), Some(b)) => Some((a.to_string(), b.to_string())),
                    _ => return Err(bad("tojson: separators must be two strings")),
                },
                _ => return Err(bad("tojson: separators must be a pair (item, key)")),
            }
        }
        _ => None,
    };
    kwargs.assert_all_used()?;
    // Python's defaults: (', ', ': '), or (',', ': ') when indenting.
    let (item_sep, key_sep) = separators.unwrap_or_else(|| (if indent.is_some() { "," } else { ", " }.to_string(), ": ".to_string()));
    let mut out = CappedText::new("tojson");
    let fmt = Format { indent, item_sep: &item_sep, key_sep: &key_sep, sort_keys, ensure_ascii };
    fmt.value(&mut out, value, 0)?;
    Ok(Value::from(out.into_string()))
}

fn bad(msg: &str) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.to_string())
}

struct Format<'a> {
    indent: Option<usize>,
    item_sep: &'a str,
    key_sep: &'a str,
    sort_keys: bool,
    /// Non-ASCII characters as `\uXXXX` escapes (UTF-16, as Python writes them).
    ensure_ascii: bool,
}

impl Format<'_> {
    fn newline(&self, out: &mut CappedText, depth: usize) -> Result<(), Error> {
        if let Some(n) = self.indent {
            out.push('\n')?;
            out.push_repeated(' ', n * depth)?;
        }
        Ok(())
    }

    fn value(&self, out: &mut CappedText, v: &Value, depth: usize) -> Result<(), Error> {
        if depth > MAX_VALUE_DEPTH {
            return Err(bad(&format!("tojson: the value is nested more than {MAX_VALUE_DEPTH} levels deep (MAX_VALUE_DEPTH)")));
        }
        match v.kind() {
            ValueKind::Undefined | ValueKind::None => out.push_str("null")?,
            ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" })?,
            ValueKind::Number => number(out, v)?,
            ValueKind::String => string(out, v.as_str().unwrap_or_default(), self.ensure_ascii)?,
            ValueKind::Seq | ValueKind::Iterable => self.seq(out, v.try_iter()?, depth)?,
            ValueKind::Map => {
                let mut entries = Vec::new();
                for k in v.try_iter()? {
                    let item = v.get_item(&k)?;
                    entries.push((key_text(&k)?, item));
                }
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.map(out, &entries, depth)?;
            }
            _ => return Err(bad(&format!("tojson: cannot serialize a {} value", v.kind()))),
        }
        Ok(())
    }

    /// Items one at a time: a lazy list (`[0] * 10**12`) stops at the cap.
    fn seq(&self, out: &mut CappedText, items: impl Iterator<Item = Value>, depth: usize) -> Result<(), Error> {
        let mut items = items.peekable();
        if items.peek().is_none() {
            return out.push_str("[]");
        }
        out.push('[')?;
        for (i, item) in items.enumerate() {
            if i > 0 {
                out.push_str(self.item_sep)?;
            }
            self.newline(out, depth + 1)?;
            self.value(out, &item, depth + 1)?;
        }
        self.newline(out, depth)?;
        out.push(']')
    }

    fn map(&self, out: &mut CappedText, entries: &[(String, Value)], depth: usize) -> Result<(), Error> {
        if entries.is_empty() {
            return out.push_str("{}");
        }
        out.push('{')?;
        for (i, (k, item)) in entries.iter().enumerate() {
            if i > 0 {
                out.push_str(self.item_sep)?;
            }
            self.newline(out, depth + 1)?;
            string(out, k, self.ensure_ascii)?;
            out.push_str(self.key_sep)?;
            self.value(out, item, depth + 1)?;
        }
        self.newline(out, depth)?;
        out.push('}')
    }
}

/// Python turns keys that are numbers, booleans or None into strings.
fn key_text(k: &Value) -> Result<String, Error> {
    Ok(match k.kind() {
        ValueKind::String => k.as_str().unwrap_or_default().to_string(),
        ValueKind::None | ValueKind::Undefined => "null".into(),
        ValueKind::Bool => if k.is_true() { "true" } else { "false" }.into(),
        ValueKind::Number => {
            let mut s = CappedText::new("tojson");
            number(&mut s, k)?;
            s.into_string()
        }
        other => return Err(bad(&format!("tojson: keys must be strings, not {other}"))),
    })
}

fn number(out: &mut CappedText, v: &Value) -> Result<(), Error> {
    if v.is_integer() {
        return out.push_fmt(format_args!("{v}"));
    }
    let x = f64::try_from(v.clone()).unwrap_or(f64::NAN);
    out.push_str(&python_float(x))
}

/// `repr(float)`, but `NaN`/`Infinity` as json.dumps writes them.
fn python_float(x: f64) -> String {
    match x {
        x if x.is_nan() => "NaN".into(),
        x if x.is_infinite() => if x > 0.0 { "Infinity" } else { "-Infinity" }.into(),
        x => super::python::float_repr(x),
    }
}

/// A JSON string with Python's escapes; non-ASCII text stays as is unless
/// `ascii`.
fn string(out: &mut CappedText, s: &str, ascii: bool) -> Result<(), Error> {
    // The escapes only lengthen it: fail early on a text that cannot fit.
    out.reserve(s.len().saturating_add(2))?;
    out.push('"')?;
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            c if (c as u32) < 0x20 || (ascii && !c.is_ascii()) => "",
            _ => continue,
        };
        out.push_str(&s[plain..i])?;
        plain = i + c.len_utf8();
        if escape.is_empty() {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_fmt(format_args!("\\u{:04x}", unit))?;
            }
        } else {
            out.push_str(escape)?;
        }
    }
    out.push_str(&s[plain..])?;
    out.push('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dumps(json: &str, template: &str) -> String {
        let mut env = minijinja::Environment::new();
        env.add_filter("tojson", tojson);
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        env.render_str(template, minijinja::context! { x => crate::chat::template::json_value(&v, 0).unwrap() }).unwrap()
    }

    // Expected strings are Python 3.11's json.dumps(x, ensure_ascii=False, ...).
    #[test]
    fn matches_python_json_dumps() {
        let x = r#"{"b": [1, 2.5, true, null], "a": "é\"<&>\n", "c": {}}"#;
        assert_eq!(dumps(x, "{{ x | tojson }}"), r#"{"b": [1, 2.5, true, null], "a": "é\"<&>\n", "c": {}}"#);
        assert_eq!(
            dumps(x, "{{ x | tojson(indent=2) }}"),
            "{\n  \"b\": [\n    1,\n    2.5,\n    true,\n    null\n  ],\n  \"a\": \"é\\\"<&>\\n\",\n  \"c\": {}\n}"
        );
        assert_eq!(dumps(x, "{{ x | tojson(sort_keys=true) }}"), r#"{"a": "é\"<&>\n", "b": [1, 2.5, true, null], "c": {}}"#);
        assert_eq!(dumps(x, "{{ x | tojson(separators=(',', ':')) }}"), r#"{"b":[1,2.5,true,null],"a":"é\"<&>\n","c":{}}"#);
        assert_eq!(dumps("[1e-05, 1e16, 100.0, 0.1]", "{{ x | tojson }}"), "[1e-05, 1e+16, 100.0, 0.1]");
        assert_eq!(dumps(r#""\u0001""#, "{{ x | tojson }}"), r#""\u0001""#);
        assert_eq!(dumps(r#"{"é": "a😀~"}"#, "{{ x | tojson(ensure_ascii=true) }}"), r#"{"\u00e9": "a\ud83d\ude00~"}"#);
        assert_eq!(dumps(r#""é""#, "{{ x | tojson(ensure_ascii=false) }}"), r#""é""#);
    }
}
