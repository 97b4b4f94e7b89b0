//! The expressions of a template whose values minijinja turns into text on
//! its own, outside the filters that check how long a text gets
//! ([`super::text_filters`]): the operands of `~`, the needle of `in`, and
//! the input and arguments of the built-in string filters and tests. A
//! list of a million references to one 10 MB string (`[s] * 10**6`, a few
//! bytes of memory) printed there asked for terabytes and aborted the
//! process. [`super::source_guard`] wraps each such expression in a filter
//! found here (by span, from minijinja's parse of the source):
//!
//! ```text
//! a ~ b                 ->  (a)|__moe_str ~ (b)|__moe_str
//! x in y                ->  (x)|__moe_printable in y
//! v|replace(a, b)       ->  (v)|__moe_printable|replace((a)|__moe_printable, (b)|__moe_printable)
//! v is startingwith(p)  ->  (v)|__moe_printable is startingwith((p)|__moe_printable)
//! ```
//!
//! The input of the filters that sort or compare their items (`sort`,
//! `unique`, `min`, ...) goes through `__moe_compared`, which charges the
//! work of comparing its strings (minijinja charges a comparison the same
//! whatever the strings' length: sorting 10^5 references to one 1 MB
//! string took 23 s).
//!
//! `__moe_str` is Python's `str()` within [`MAX_TEXT_BYTES`](super::limits::MAX_TEXT_BYTES) (what jinja2
//! gives `~`: `True ~ ''` is "True"); `__moe_printable` passes its value on
//! unchanged once its printed form is known to fit.

use minijinja::machinery::ast::{self, CallArg, Expr, Stmt};
use minijinja::machinery::{parse, Span, Token};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Error, State, Value};

use super::limits::{CappedText, MAX_VALUE_DEPTH};
use super::python::str_of;

/// The filter on each operand of `~`.
pub const STR_FILTER: &str = "__moe_str";

/// The filter on the needle of `in` and on what the string filters read.
pub const PRINTABLE_FILTER: &str = "__moe_printable";

/// The filter on the format string of `format` (printf style): its keys
/// checked, and its text ([`super::text_filters::printf_format_string`]).
pub const PRINTF_FILTER: &str = "__moe_printf";

/// minijinja's built-in filters that turn their input and arguments into
/// text (`lower`, `replace`, ...). `string`, `join`, `pprint`, `tojson` and
/// printing are ours, checked already.
const STRING_FILTERS: &[&str] =
    &["safe", "escape", "e", "upper", "lower", "title", "capitalize", "trim", "replace", "split", "lines", "indent", "urlencode", "format"];

/// minijinja's built-in filters that compare the items of their input.
const COMPARING_FILTERS: &[&str] = &["sort", "unique", "min", "max", "dictsort", "groupby"];

/// The filter on the input of the [`COMPARING_FILTERS`].
pub const COMPARED_FILTER: &str = "__moe_compared";

/// minijinja's built-in tests that turn their input and arguments into text.
const STRING_TESTS: &[&str] = &["startingwith", "endingwith"];

/// An expression to wrap: the source's bytes `from..to` and the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wrap {
    pub from: usize,
    pub to: usize,
    pub filter: &'static str,
}

/// The expressions of `text` to wrap; none if it does not parse (the
/// compiler then reports the error). `tokens` are the source's tokens.
pub fn wraps(text: &str, syntax: SyntaxConfig, tokens: &[(Bracket, Span)]) -> Vec<Wrap> {
    let mut found = Found::default();
    if let Ok(template) = parse(text, "chat_template", syntax) {
        stmt(&template, &mut found);
    }
    found.0.into_iter().map(|(from, to, filter)| {
        let (from, to) = balanced(tokens, from, to);
        Wrap { from, to, filter }
    }).collect()
}

/// What [`balanced`] needs to know of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bracket {
    Open,
    Close,
    Other,
}

impl Bracket {
    pub fn of(token: &Token<'_>) -> Bracket {
        match token {
            Token::ParenOpen | Token::BracketOpen | Token::BraceOpen => Bracket::Open,
            Token::ParenClose | Token::BracketClose | Token::BraceClose => Bracket::Close,
            _ => Bracket::Other,
        }
    }
}

/// The source ranges found, before [`balanced`].
#[derive(Default)]
struct Found(Vec<(usize, usize, &'static str)>);

/// A node's span does not always cover its text: a filter's or test's is
/// its name, an attribute's `.name`, a call's `(args)`, an inline `if`'s
/// starts at the parenthesis before it and ends before the one after. The
/// text of an expression is the union of its node's span and those of all
/// the nodes under it...
fn full_span(e: &Expr<'_>) -> (usize, usize) {
    let own = e.span();
    let mut range = (own.start_offset as usize, own.end_offset as usize);
    let mut add = |e: &Expr<'_>| {
        let (from, to) = full_span(e);
        range = (range.0.min(from), range.1.max(to));
    };
    let args = |list: &[CallArg<'_>], add: &mut dyn FnMut(&Expr<'_>)| {
        for arg in list {
            let (CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e)) = arg;
            add(e);
        }
    };
    match e {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::Slice(s) => {
            add(&s.expr);
            [&s.start, &s.stop, &s.step].into_iter().flatten().for_each(&mut add);
        }
        Expr::UnaryOp(u) => add(&u.expr),
        Expr::BinOp(b) => {
            add(&b.left);
            add(&b.right);
        }
        Expr::Compare(c) => {
            add(&c.expr);
            c.ops.iter().for_each(|op| add(&op.expr));
        }
        Expr::IfExpr(i) => {
            add(&i.test_expr);
            add(&i.true_expr);
            i.false_expr.iter().for_each(&mut add);
        }
        Expr::Filter(f) => {
            f.expr.iter().for_each(&mut add);
            args(&f.args, &mut add);
        }
        Expr::Test(t) => {
            add(&t.expr);
            args(&t.args, &mut add);
        }
        Expr::GetAttr(g) => add(&g.expr),
        Expr::GetItem(g) => {
            add(&g.expr);
            add(&g.subscript_expr);
        }
        Expr::Call(c) => {
            add(&c.expr);
            args(&c.args, &mut add);
        }
        Expr::List(l) => l.items.iter().for_each(&mut add),
        Expr::Tuple(t) => t.items.iter().for_each(&mut add),
        Expr::Map(m) => m.keys.iter().chain(&m.values).for_each(&mut add),
    }
    range
}

/// ... widened to the brackets it opens or closes without the other half
/// (`(a + b)|upper` is found as `a + b)|upper`).
fn balanced(tokens: &[(Bracket, Span)], mut from: usize, mut to: usize) -> (usize, usize) {
    let at = |i: usize| tokens[i].1.start_offset as usize;
    let first = tokens.partition_point(|(_, s)| (s.start_offset as usize) < from);
    let end = tokens.partition_point(|(_, s)| (s.start_offset as usize) < to);
    // Closers without their opener inside, and openers without their closer.
    let (mut closers, mut openers) = (0usize, 0usize);
    for (t, _) in &tokens[first..end] {
        match t {
            Bracket::Open => openers += 1,
            Bracket::Close if openers > 0 => openers -= 1,
            Bracket::Close => closers += 1,
            Bracket::Other => {}
        }
    }
    let mut i = first;
    while closers > 0 && i > 0 {
        i -= 1;
        match tokens[i].0 {
            Bracket::Open => closers -= 1,
            Bracket::Close => closers += 1,
            Bracket::Other => {}
        }
        from = at(i);
    }
    let mut i = end;
    while openers > 0 && i < tokens.len() {
        match tokens[i].0 {
            Bracket::Close => openers -= 1,
            Bracket::Open => openers += 1,
            Bracket::Other => {}
        }
        to = tokens[i].1.end_offset as usize;
        i += 1;
    }
    (from, to)
}

fn stmts(body: &[Stmt<'_>], out: &mut Found) {
    body.iter().for_each(|s| stmt(s, out));
}

fn stmt(s: &Stmt<'_>, out: &mut Found) {
    match s {
        Stmt::Template(t) => stmts(&t.children, out),
        Stmt::EmitExpr(e) => expr(&e.expr, out),
        Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => {}
        Stmt::ForLoop(f) => {
            expr(&f.target, out);
            expr(&f.iter, out);
            f.filter_expr.iter().for_each(|e| expr(e, out));
            stmts(&f.body, out);
            stmts(&f.else_body, out);
        }
        Stmt::IfCond(i) => {
            expr(&i.expr, out);
            stmts(&i.true_body, out);
            stmts(&i.false_body, out);
        }
        Stmt::WithBlock(w) => {
            for (target, value) in &w.assignments {
                expr(target, out);
                expr(value, out);
            }
            stmts(&w.body, out);
        }
        Stmt::Set(s) => {
            expr(&s.target, out);
            expr(&s.expr, out);
        }
        Stmt::SetBlock(s) => {
            expr(&s.target, out);
            s.filter.iter().for_each(|e| expr(e, out));
            stmts(&s.body, out);
        }
        Stmt::AutoEscape(a) => {
            expr(&a.enabled, out);
            stmts(&a.body, out);
        }
        Stmt::FilterBlock(f) => {
            expr(&f.filter, out);
            stmts(&f.body, out);
        }
        Stmt::Block(b) => stmts(&b.body, out),
        Stmt::Import(i) => {
            expr(&i.expr, out);
            expr(&i.name, out);
        }
        Stmt::FromImport(i) => {
            expr(&i.expr, out);
            for (name, alias) in &i.names {
                expr(name, out);
                alias.iter().for_each(|e| expr(e, out));
            }
        }
        Stmt::Extends(e) => expr(&e.name, out),
        Stmt::Include(i) => expr(&i.name, out),
        Stmt::Macro(m) => macro_decl(m, out),
        Stmt::CallBlock(c) => {
            call(&c.call, out);
            macro_decl(&c.macro_decl, out);
        }
        Stmt::Do(d) => call(&d.call, out),
    }
}

fn macro_decl(m: &ast::Macro<'_>, out: &mut Found) {
    m.args.iter().chain(&m.defaults).for_each(|e| expr(e, out));
    stmts(&m.body, out);
}

fn call(c: &ast::Call<'_>, out: &mut Found) {
    expr(&c.expr, out);
    args(&c.args, None, out);
}

/// Walks call arguments, wrapping each in `filter` if one is given.
fn args(list: &[CallArg<'_>], filter: Option<&'static str>, out: &mut Found) {
    for arg in list {
        let (CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e)) = arg;
        if let Some(filter) = filter {
            wrap(e, filter, out);
        }
        expr(e, out);
    }
}

fn wrap(e: &Expr<'_>, filter: &'static str, out: &mut Found) {
    let (from, to) = full_span(e);
    out.0.push((from, to, filter));
}

fn expr(e: &Expr<'_>, out: &mut Found) {
    match e {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::Slice(s) => {
            expr(&s.expr, out);
            [&s.start, &s.stop, &s.step].into_iter().flatten().for_each(|e| expr(e, out));
        }
        Expr::UnaryOp(u) => expr(&u.expr, out),
        Expr::BinOp(b) => {
            match b.op {
                ast::BinOpKind::Concat => {
                    wrap(&b.left, STR_FILTER, out);
                    wrap(&b.right, STR_FILTER, out);
                }
                ast::BinOpKind::In => wrap(&b.left, PRINTABLE_FILTER, out),
                _ => {}
            }
            expr(&b.left, out);
            expr(&b.right, out);
        }
        Expr::Compare(c) => {
            let mut left = &c.expr;
            for op in &c.ops {
                if matches!(op.op, ast::CompareOpKind::In | ast::CompareOpKind::NotIn) {
                    wrap(left, PRINTABLE_FILTER, out);
                }
                left = &op.expr;
            }
            expr(&c.expr, out);
            c.ops.iter().for_each(|op| expr(&op.expr, out));
        }
        Expr::IfExpr(i) => {
            expr(&i.test_expr, out);
            expr(&i.true_expr, out);
            i.false_expr.iter().for_each(|e| expr(e, out));
        }
        Expr::Filter(f) => {
            let filter = STRING_FILTERS.contains(&f.name).then_some(PRINTABLE_FILTER);
            let input_filter = match f.name {
                "format" => Some(PRINTF_FILTER),
                name if COMPARING_FILTERS.contains(&name) => Some(COMPARED_FILTER),
                _ => filter,
            };
            if let Some(input) = &f.expr {
                if let Some(filter) = input_filter {
                    wrap(input, filter, out);
                }
                expr(input, out);
            }
            args(&f.args, filter, out);
        }
        Expr::Test(t) => {
            let filter = STRING_TESTS.contains(&t.name).then_some(PRINTABLE_FILTER);
            // `x is in(y)` turns `x` into text when `y` is a string.
            if filter.is_some() || t.name == "in" {
                wrap(&t.expr, PRINTABLE_FILTER, out);
            }
            expr(&t.expr, out);
            args(&t.args, filter, out);
        }
        Expr::GetAttr(g) => expr(&g.expr, out),
        Expr::GetItem(g) => {
            expr(&g.expr, out);
            expr(&g.subscript_expr, out);
        }
        Expr::Call(c) => call(c, out),
        Expr::List(l) => l.items.iter().for_each(|e| expr(e, out)),
        Expr::Tuple(t) => t.items.iter().for_each(|e| expr(e, out)),
        Expr::Map(m) => m.keys.iter().chain(&m.values).for_each(|e| expr(e, out)),
    }
}

/// `value | __moe_str`: Python's `str(value)`, within [`MAX_TEXT_BYTES`](super::limits::MAX_TEXT_BYTES).
pub fn str_filter(state: &State, value: Value) -> Result<Value, Error> {
    if value.as_str().is_some() {
        return Ok(value);
    }
    Ok(Value::from(str_of(state, &value)?))
}

/// `value | __moe_printable`: the value unchanged, once minijinja's text of
/// it is known to fit in [`MAX_TEXT_BYTES`](super::limits::MAX_TEXT_BYTES) (written out, then dropped).
pub fn printable(value: Value) -> Result<Value, Error> {
    if value.as_object().is_some() {
        CappedText::new("a value turned into text").push_fmt(format_args!("{value}"))?;
    }
    Ok(value)
}

/// `items | __moe_compared`: the items unchanged, once the work of
/// comparing them is charged: a unit of fuel per 64 bytes of the strings
/// in them (at any depth), times log2 of their number (a sort's passes).
pub fn compared(state: &State, items: Value) -> Result<Value, Error> {
    let Some(obj) = items.as_object() else { return Ok(items) };
    let mut bytes = 0u64;
    let mut n = 0u64;
    if let Some(iter) = obj.try_iter() {
        for item in iter {
            n += 1;
            bytes = bytes.saturating_add(string_bytes(state, &item, 0)?);
        }
    }
    let passes = u64::from(64 - n.leading_zeros()).max(1);
    state.consume_fuel(bytes.saturating_mul(passes) / 64)?;
    Ok(items)
}

/// The bytes of the strings in `value`, at any depth (a unit of fuel per
/// item visited; deeper than [`MAX_VALUE_DEPTH`] is not visited).
fn string_bytes(state: &State, value: &Value, depth: usize) -> Result<u64, Error> {
    state.consume_fuel(1)?;
    if let Some(s) = value.as_str() {
        return Ok(s.len() as u64);
    }
    let Some(obj) = value.as_object().filter(|_| depth < MAX_VALUE_DEPTH) else { return Ok(0) };
    let mut bytes = 0u64;
    for item in obj.try_iter().into_iter().flatten() {
        bytes = bytes.saturating_add(string_bytes(state, &item, depth + 1)?);
        if obj.repr() == minijinja::value::ObjectRepr::Map {
            bytes = bytes.saturating_add(string_bytes(state, &value.get_item(&item).unwrap_or_default(), depth + 1)?);
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(text: &str) -> Vec<(&str, &'static str)> {
        let tokens: Vec<_> =
            minijinja::machinery::tokenize(text, false, SyntaxConfig::default()).map(|t| t.map(|(t, s)| (Bracket::of(&t), s)).unwrap()).collect();
        wraps(text, SyntaxConfig::default(), &tokens).into_iter().map(|w| (&text[w.from..w.to], w.filter)).collect()
    }

    #[test]
    fn finds_what_turns_into_text() {
        assert_eq!(wrapped("{{ a ~ (b + 1) ~ 'c' }}"), [("a ~ (b + 1)", STR_FILTER), ("'c'", STR_FILTER), ("a", STR_FILTER), ("b + 1", STR_FILTER)]);
        assert_eq!(wrapped("{% if x.y in z %}{% endif %}"), [("x.y", PRINTABLE_FILTER)]);
        assert_eq!(wrapped("{{ a not in b }}"), [("a", PRINTABLE_FILTER)]);
        assert_eq!(wrapped("{{ v|replace(a, b)|length }}"), [("v", PRINTABLE_FILTER), ("a", PRINTABLE_FILTER), ("b", PRINTABLE_FILTER)]);
        assert_eq!(wrapped("{{ v is startingwith(p) }}"), [("v", PRINTABLE_FILTER), ("p", PRINTABLE_FILTER)]);
        assert_eq!(wrapped("{{ v is in(p) }}"), [("v", PRINTABLE_FILTER)]);
        assert_eq!(wrapped("{{ v|map('upper')|join }}{{ f(x) }}"), []);
        assert_eq!(wrapped("{{ (v|sort(attribute='a'))|min }}"), [("v|sort(attribute='a')", COMPARED_FILTER), ("v", COMPARED_FILTER)]);
        assert_eq!(wrapped("{% macro m(a=x ~ y) %}{{ a }}{% endmacro %}"), [("x", STR_FILTER), ("y", STR_FILTER)]);
        assert!(wrapped("{{ a ~ }}").is_empty());
        // Whole expressions, whatever their nodes' spans cover.
        assert_eq!(
            wrapped("{{ (a + b)|upper ~ x.y(1)[2] ~ (c if d else e) ~ -f|abs ~ g is defined }}")[..5],
            [
                ("(a + b)|upper ~ x.y(1)[2] ~ (c if d else e) ~ -f|abs", STR_FILTER),
                ("g is defined", STR_FILTER),
                ("(a + b)|upper ~ x.y(1)[2] ~ (c if d else e)", STR_FILTER),
                ("-f|abs", STR_FILTER),
                ("(a + b)|upper ~ x.y(1)[2]", STR_FILTER),
            ]
        );
        assert_eq!(
            wrapped("{{ (a + b)|upper ~ x.y(1)[2] ~ (c if d else e) ~ -f|abs ~ g is defined }}")[5..],
            [("(c if d else e)", STR_FILTER), ("(a + b)|upper", STR_FILTER), ("x.y(1)[2]", STR_FILTER), ("a + b", PRINTABLE_FILTER)]
        );
    }
}
