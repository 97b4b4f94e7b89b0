//! What a template's source must pass before minijinja compiles it, and
//! the checks added to it. The source is at most [`MAX_TEMPLATE_BYTES`],
//! each line at most [`MAX_LINE_CHARS`], each tag at most
//! [`MAX_TAG_TOKENS`] tokens (minijinja's parser and compiler recurse once
//! per level of an expression). Every value a
//! template keeps goes through a check ([`super::value_guard`]): the value
//! of a `{% set %}`, of each `{% with %}` variable, and the sequence a
//! `{% for %}` loop walks are piped through a filter, spliced into the
//! source (no line changes, so errors keep their line numbers):
//!
//! ```text
//! {% set x = EXPR %}       ->  {% set x = (EXPR)|__moe_value %}
//! {% set ns.a = EXPR %}    ->  {% set ns.a = (EXPR)|__moe_namespace_value %}
//! {% set x | f %}          ->  {% set x | f|__moe_value %}
//! {% with a = E1, b = E2 %}->  {% with a = (E1)|__moe_value, b = (E2)|__moe_value %}
//! {% for x in EXPR if c %} ->  {% for x in (EXPR)|__moe_value if c %}
//! ```
//!
//! and every expression minijinja would turn into text by itself is
//! wrapped in a check on that text's length ([`super::text_guard`]).

use minijinja::machinery::{tokenize, Span, Token};
use minijinja::syntax::SyntaxConfig;

use super::limits::{MAX_LINE_CHARS, MAX_TAG_TOKENS, MAX_TEMPLATE_BYTES};
use super::text_guard;
use super::value_guard::{NAMESPACE_VALUE_FILTER, VALUE_FILTER};

/// Text spliced around the source's bytes `from..to`: `open` before them,
/// `close` after.
struct Splice {
    from: usize,
    to: usize,
    open: &'static str,
    close: String,
}

/// `text` with the checks spliced in, or what is wrong with it. A source
/// minijinja cannot tokenize comes back as it is, for its compiler to
/// report the syntax error.
pub fn guarded_source(text: &str, syntax: SyntaxConfig) -> Result<String, String> {
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(format!("the template is longer than the {MAX_TEMPLATE_BYTES} bytes accepted (MAX_TEMPLATE_BYTES)"));
    }
    if let Some(line) = text.split('\n').position(|l| l.len() > MAX_LINE_CHARS && l.chars().count() > MAX_LINE_CHARS) {
        return Err(format!("line {} is longer than the {MAX_LINE_CHARS} characters accepted (MAX_LINE_CHARS)", line + 1));
    }
    let mut splices: Vec<Splice> = Vec::new();
    let mut tag: Vec<(Token<'_>, Span)> = Vec::new();
    let mut tokens = Vec::new();
    for token in tokenize(text, false, syntax.clone()) {
        let Ok((token, span)) = token else { return Ok(text.to_string()) };
        tokens.push((text_guard::Bracket::of(&token), span));
        match token {
            Token::VariableStart | Token::BlockStart => tag.clear(),
            Token::VariableEnd => check_size(&tag, span)?,
            Token::BlockEnd => {
                check_size(&tag, span)?;
                guard_tag(text, &tag, span, &mut splices);
            }
            Token::TemplateData(_) => {}
            token => tag.push((token, span)),
        }
    }
    for w in text_guard::wraps(text, syntax, &tokens) {
        splices.push(Splice { from: w.from, to: w.to, open: "(", close: format!(")|{}", w.filter) });
    }
    // At one offset, closes before opens, and of two closes the inner one
    // (the later start) first: the splices nest as the expressions do.
    let mut inserts: Vec<(usize, bool, std::cmp::Reverse<usize>, &str)> = Vec::new();
    for s in &splices {
        inserts.push((s.from, true, std::cmp::Reverse(0), s.open));
        inserts.push((s.to, false, std::cmp::Reverse(s.from), &s.close));
    }
    inserts.sort_by_key(|&(at, open, from, _)| (at, open, from));
    let mut out = String::with_capacity(text.len() + inserts.iter().map(|(_, _, _, s)| s.len()).sum::<usize>());
    let mut from = 0;
    for (at, _, _, s) in inserts {
        out.push_str(&text[from..at]);
        out.push_str(s);
        from = at;
    }
    out.push_str(&text[from..]);
    Ok(out)
}

fn check_size(tag: &[(Token<'_>, Span)], end: Span) -> Result<(), String> {
    if tag.len() > MAX_TAG_TOKENS {
        return Err(format!(
            "line {}: a tag of {} tokens, more than the {MAX_TAG_TOKENS} accepted in one {{{{ ... }}}} or {{% ... %}} (MAX_TAG_TOKENS)",
            end.start_line,
            tag.len()
        ));
    }
    Ok(())
}

/// The inserts for one `{% ... %}` tag of `text` (its tokens without the
/// delimiters; `end` is its closing `%}`).
fn guard_tag(text: &str, tag: &[(Token<'_>, Span)], end: Span, splices: &mut Vec<Splice>) {
    let Some((Token::Ident(keyword), _)) = tag.first() else { return };
    let rest = &tag[1..];
    // `(` before the value in `from..to` (spaces around it left out),
    // `)|filter` after it.
    let mut wrap = |from: usize, to: usize, filter: &str| {
        let Some(span) = text.get(from..to) else { return };
        let value = span.trim();
        if !value.is_empty() {
            let from = from + span.len() - span.trim_start().len();
            let to = from + value.len();
            splices.push(Splice { from, to, open: "(", close: format!(")|{filter}") });
        }
    };
    match *keyword {
        "set" => {
            let filter = if top_level(rest).take_while(|(t, _)| !matches!(t, Token::Assign)).any(|(t, _)| matches!(t, Token::Dot)) {
                NAMESPACE_VALUE_FILTER
            } else {
                VALUE_FILTER
            };
            match top_level(rest).find(|(t, _)| matches!(t, Token::Assign)) {
                Some((_, assign)) => wrap(offset(assign.end_offset), offset(end.start_offset), filter),
                // `{% set x %}...{% endset %}`, `{% set x | f %}`: a filter more.
                None => {
                    let after = offset(tag.last().map_or(end.start_offset, |(_, span)| span.end_offset));
                    splices.push(Splice { from: 0, to: after, open: "", close: format!("|{filter}") });
                }
            }
        }
        "with" => {
            let mut value_from = None;
            for (t, span) in top_level(rest) {
                match t {
                    Token::Assign => value_from = Some(offset(span.end_offset)),
                    Token::Comma => {
                        if let Some(from) = value_from.take() {
                            wrap(from, offset(span.start_offset), VALUE_FILTER);
                        }
                    }
                    _ => {}
                }
            }
            if let Some(from) = value_from {
                wrap(from, offset(end.start_offset), VALUE_FILTER);
            }
        }
        "for" => {
            let mut top = top_level(rest);
            let Some((_, in_span)) = top.find(|(t, _)| matches!(t, Token::Ident("in"))) else { return };
            let to = top.find(|(t, _)| matches!(t, Token::Ident("if" | "recursive"))).map_or(end.start_offset, |(_, s)| s.start_offset);
            wrap(offset(in_span.end_offset), offset(to), VALUE_FILTER);
        }
        _ => {}
    }
}

/// The tokens of `tag` outside brackets, parentheses and braces.
fn top_level<'a, 'src>(tag: &'a [(Token<'src>, Span)]) -> impl Iterator<Item = &'a (Token<'src>, Span)> {
    let mut depth = 0usize;
    tag.iter().filter(move |(t, _)| {
        let top = depth == 0;
        match t {
            Token::ParenOpen | Token::BracketOpen | Token::BraceOpen => depth += 1,
            Token::ParenClose | Token::BracketClose | Token::BraceClose => depth = depth.saturating_sub(1),
            _ => return top,
        }
        false
    })
}

fn offset(o: u32) -> usize {
    o as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(text: &str) -> String {
        guarded_source(text, SyntaxConfig::default()).unwrap()
    }

    #[test]
    fn splices_a_check_into_every_assignment() {
        assert_eq!(guard("{% set x = [1, 2] %}"), "{% set x = ([1, 2])|__moe_value %}");
        assert_eq!(guard("{%- set ns.a, b = x, y -%}"), "{%- set ns.a, b = (x, y)|__moe_namespace_value -%}");
        assert_eq!(guard("{% set x | upper %}a{% endset %}"), "{% set x | upper|__moe_value %}a{% endset %}");
        assert_eq!(guard("{% with a = f(1, 2), (b, c) = d %}{% endwith %}"), "{% with a = (f(1, 2))|__moe_value, (b, c) = (d)|__moe_value %}{% endwith %}");
        assert_eq!(
            guard("{% for k, v in d.items() if v recursive +%}{% endfor %}"),
            "{% for k, v in (d.items())|__moe_value if v recursive +%}{% endfor %}"
        );
        assert_eq!(guard("é{{ x }}{# {% set a = 1 %} #}{% raw %}{% set a = 1 %}{% endraw %}"), "é{{ x }}{# {% set a = 1 %} #}{% raw %}{% set a = 1 %}{% endraw %}");
    }

    #[test]
    fn nests_the_text_checks_inside_the_value_checks() {
        assert_eq!(
            guard("{% set x = a ~ (b + 1) ~ c %}"),
            "{% set x = (((a)|__moe_str ~ ((b + 1)|__moe_str))|__moe_str ~ (c)|__moe_str)|__moe_value %}"
        );
        assert_eq!(guard("{{ 'x' in y|lower }}"), "{{ ('x')|__moe_printable in (y)|__moe_printable|lower }}");
    }

    #[test]
    fn refuses_long_sources_and_tags() {
        let e = guarded_source(&" ".repeat(MAX_TEMPLATE_BYTES + 1), SyntaxConfig::default()).unwrap_err();
        assert!(e.contains("MAX_TEMPLATE_BYTES"), "{e}");
        let e = guarded_source(&format!("\n{{{{ 1{} }}}}", "+1".repeat(MAX_TAG_TOKENS)), SyntaxConfig::default()).unwrap_err();
        assert!(e.starts_with("line 2: a tag of 513 tokens") && e.contains("MAX_TAG_TOKENS"), "{e}");
    }
}
