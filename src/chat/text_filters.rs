//! The filters and string methods that build texts out of a template's
//! values, with the size of what they build checked before it is built
//! ([`MAX_TEXT_BYTES`], [`MAX_FORMAT_WIDTH`]): minijinja's own `join` and
//! `pprint`, and minijinja-contrib's `str.join` and `str.format`, wrote
//! whatever a template asked for (`[s] * 1000 | join` with a 10 MB `s`,
//! `"{:>999999999999}".format(1)`), until the allocation aborted the
//! process.

use minijinja::value::{from_args, Kwargs, Rest};
use minijinja::{Error, ErrorKind, State, Value};

use super::limits::{too_long, CappedText, MAX_FORMAT_WIDTH, MAX_TEXT_BYTES};
use super::python::{push_str_of, str_of};

/// Room for one formatted value besides its width and precision (the
/// longest is a float in fixed notation: 309 digits).
const FORMATTED_NUMBER_BYTES: usize = 330;

/// `items | join(d="", attribute=None)`: jinja2's join (items as Python's
/// `str()`).
pub fn join(state: &State, value: &Value, joiner: Option<Value>, attribute: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let joiner = match joiner {
        Some(j) => Some(j),
        None => kwargs.get::<Option<Value>>("d")?,
    };
    let attribute = match attribute {
        Some(a) => Some(a),
        None => kwargs.get::<Option<Value>>("attribute")?,
    };
    kwargs.assert_all_used()?;
    let joiner = match joiner {
        Some(j) => str_of(state, &j)?,
        None => String::new(),
    };
    let items = value.try_iter().map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("cannot join a {}", value.kind())).with_source(e))?;
    let items = items.map(|item| match &attribute {
        Some(path) => attribute_of(&item, path),
        None => Ok(item),
    });
    join_items(state, items, &joiner, "join")
}

/// `item[path]`, or for "a.0.b" each step in turn (as jinja2's
/// `attribute=`).
fn attribute_of(item: &Value, path: &Value) -> Result<Value, Error> {
    let Some(path) = path.as_str() else { return item.get_item(path) };
    path.split('.').try_fold(item.clone(), |v, part| match part.parse::<i64>() {
        Ok(i) => v.get_item(&Value::from(i)),
        Err(_) => v.get_attr(part),
    })
}

fn join_items(state: &State, items: impl Iterator<Item = Result<Value, Error>>, joiner: &str, what: &'static str) -> Result<Value, Error> {
    let mut out = CappedText::new(what);
    for (i, item) in items.enumerate() {
        // Empty items add no bytes: count them as work.
        state.consume_fuel(1)?;
        if i > 0 {
            out.push_str(joiner)?;
        }
        push_str_of(state, &mut out, &item?)?;
    }
    Ok(Value::from(out.into_string()))
}

/// `value | pprint`: minijinja's pretty debug form.
pub fn pprint(value: &Value) -> Result<String, Error> {
    let mut out = CappedText::new("pprint");
    out.push_fmt(format_args!("{value:#?}"))?;
    Ok(out.into_string())
}

/// `debug(...)`: minijinja's dump of its arguments (or of the whole
/// context), within [`MAX_TEXT_BYTES`].
pub fn debug(state: &State, args: Rest<Value>) -> Result<String, Error> {
    let mut out = CappedText::new("debug");
    if args.is_empty() {
        out.push_fmt(format_args!("{state:#?}"))?;
    } else if args.len() == 1 {
        out.push_fmt(format_args!("{:#?}", args[0]))?;
    } else {
        out.push_fmt(format_args!("{:#?}", &args[..]))?;
    }
    Ok(out.into_string())
}

/// Python's string methods (minijinja-contrib's), with `join` and `format`
/// checked first, and the arguments of the others checked to print within
/// [`MAX_TEXT_BYTES`] (minijinja-contrib turns them into text).
pub fn unknown_method(state: &mut State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        match method {
            "join" => {
                let (items,): (&Value,) = from_args(args)?;
                return join_items(state, items.try_iter()?.map(Ok), s, "str.join");
            }
            "format" => check_str_format(state, s, args)?,
            _ => {
                for arg in args {
                    super::text_guard::printable(arg.clone())?;
                }
            }
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// Refuses a `str.format` whose widths or precisions pass
/// [`MAX_FORMAT_WIDTH`], or whose result could pass [`MAX_TEXT_BYTES`]:
/// each replacement field takes at most its width, its precision, a number's
/// digits and the longest argument.
fn check_str_format(state: &State, format: &str, args: &[Value]) -> Result<(), Error> {
    let mut longest_arg = 0;
    for arg in args {
        let len = match arg.as_str() {
            Some(s) => s.len(),
            None => str_of(state, arg)?.len(),
        };
        longest_arg = longest_arg.max(len);
    }
    let mut total = format.len();
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(after) = rest.strip_prefix('{') {
            rest = after;
            continue;
        }
        let field = &rest[..rest.find('}').unwrap_or(rest.len())];
        rest = &rest[field.len()..];
        refuse_non_ascii_key(field.split([':', '!']).next().unwrap_or(""), "str.format")?;
        let spec = field.split_once(':').map_or("", |(_, spec)| spec);
        let mut field_bytes = FORMATTED_NUMBER_BYTES.saturating_add(longest_arg);
        for number in spec.split(|c: char| !c.is_ascii_digit()).filter(|n| !n.is_empty()) {
            let n = number.parse::<usize>().unwrap_or(usize::MAX);
            if n > MAX_FORMAT_WIDTH {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("str.format: width or precision {number} is more than {MAX_FORMAT_WIDTH} (MAX_FORMAT_WIDTH)"),
                ));
            }
            field_bytes += n;
        }
        total = total.saturating_add(field_bytes);
    }
    if total > MAX_TEXT_BYTES {
        return Err(too_long("str.format"));
    }
    Ok(())
}

/// minijinja (3.1.0) walks a format key (`{0[key]}`, `%(key)s`) a byte at a
/// time and panicked on a character of several bytes (found by fuzzing).
/// Python allows any key; templates use ASCII ones.
fn refuse_non_ascii_key(key: &str, what: &str) -> Result<(), Error> {
    if key.is_ascii() {
        return Ok(());
    }
    Err(Error::new(ErrorKind::InvalidOperation, format!("{what}: a field name or key with non-ASCII characters ({key:?}) is not supported")))
}

/// The format string of `format` (printf style, `"%(key)s" | format(...)`),
/// checked as its key is (see [`refuse_non_ascii_key`]) and to print within
/// [`MAX_TEXT_BYTES`].
pub fn printf_format_string(value: Value) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        for (at, _) in s.match_indices("%(") {
            let key = &s[at + 2..];
            refuse_non_ascii_key(&key[..key.find(')').unwrap_or(key.len())], "format")?;
        }
    }
    super::text_guard::printable(value)
}
