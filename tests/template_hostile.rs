//! Hostile chat templates (a GGUF's `tokenizer.chat_template` is untrusted)
//! end in a clear error naming the template and the bound it hit
//! (`moe::chat::limits`), or render; never in an abort, a panic, a hang or
//! an allocation past the caps. Each used to abort the process (stack
//! overflow, failed allocation) or run for minutes: values that contain
//! themselves, values nested tens of thousands deep, very long expressions,
//! a huge `tojson` indent or format width, texts of gigabytes. Through the
//! library, and a few through `moe render-template`.

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use moe::chat::limits::{MAX_TAG_TOKENS, MAX_TEMPLATE_BYTES};
use moe::chat::{ChatTemplate, RenderOptions, TemplateSource};

/// Where the templates "come from", as errors must name it.
const ORIGIN: &str = "/x/hostile.jinja";

/// Generous: only a missing bound takes this long (each case takes well
/// under a second in release, a few in debug).
const TIME_LIMIT: Duration = Duration::from_secs(20);

fn render_with(text: &str, messages: &serde_json::Value) -> moe::Result<String> {
    let t = ChatTemplate::new(text.into(), TemplateSource::File(ORIGIN.into()), "<s>", "</s>")?;
    t.render_json(messages, &RenderOptions { add_generation_prompt: true }, None)
}

fn render(text: &str) -> moe::Result<String> {
    render_with(text, &serde_json::json!([{"role": "user", "content": "hi"}]))
}

/// `text` fails, soon, with a chat-template error naming the template and
/// containing `want`.
fn assert_refused(text: &str, want: &str) {
    let t0 = Instant::now();
    let short: String = text.chars().take(120).collect();
    let e = render(text).expect_err(&short);
    let msg = e.to_string();
    assert!(matches!(e, moe::Error::ChatTemplate { .. }) && msg.contains(ORIGIN) && msg.contains(want), "{short}: {msg}");
    assert!(t0.elapsed() < TIME_LIMIT, "{short}: took {:?}", t0.elapsed());
}

fn assert_renders(text: &str, want: &str) {
    let t0 = Instant::now();
    let out = render(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(out, want, "{text}");
    assert!(t0.elapsed() < TIME_LIMIT, "{text}: took {:?}", t0.elapsed());
}

const SELF_HOLDING: &str = "a namespace attribute cannot hold a namespace";
const TOO_DEEP: &str = "nested more than 256 levels deep (MAX_VALUE_DEPTH)";
const TOO_LONG: &str = "longer than 16 MiB (MAX_TEXT_BYTES)";
const WORK: &str = "units of work a chat template may do";

/// Namespaces are minijinja's only mutable values, so the only way to a
/// value that contains itself; lists and dicts have no `append`/`update`.
#[test]
fn values_cannot_contain_themselves() {
    let ns = "{% set ns = namespace(a=1) %}";
    for set in ["{% set ns.x = ns %}", "{% set ns.x = [ns] %}", "{% set ns.x = {'k': [1, ns]} %}", "{% set ns.x = {ns: 1} %}"] {
        for print in ["{{ ns }}", "{{ ns | tojson }}", "{{ ns ~ '' }}", "{{ ns == ns }}", "{{ ns | pprint }}"] {
            assert_refused(&format!("{ns}{set}{print}"), SELF_HOLDING);
        }
    }
    // Through another namespace.
    assert_refused("{% set a = namespace() %}{% set b = namespace(x=a) %}{% set a.y = b %}{{ a ~ '' }}", SELF_HOLDING);
    assert_refused("{% set a = namespace() %}{% set b = namespace(x=[a]) %}{% set a.y = [b] %}{{ a }}", SELF_HOLDING);
    // A view of the namespace (a lazy merge) is copied, not kept.
    assert_renders(&format!("{ns}{{% set ns.x = ns | chain({{'b': 2}}) %}}{{{{ ns }}}}"), "{'a': 1, 'x': {'a': 1, 'b': 2}}");
    // A macro closes over the namespace: kept as its attributes.
    assert_renders(&format!("{ns}{{% macro m() %}}{{{{ ns }}}}{{% endmacro %}}{{% set ns.m = m %}}{{{{ ns.m.name }}}}"), "m");
    assert_refused("{% set a = [] %}{% set _ = a.append(a) %}{{ a }}", "has no method named append");
    assert_refused("{% set d = {} %}{% set _ = d.update({'x': d}) %}{{ d | tojson }}", "has no method named update");
    // Real templates keep plain values in namespaces.
    assert_renders(
        "{% set ns = namespace(xs=[], found=false) %}{% for i in range(3) %}{% set ns.xs = ns.xs + [i] %}{% endfor %}{% set ns.found = true %}{{ ns.xs }} {{ ns.found }}",
        "[0, 1, 2] True",
    );
}

#[test]
fn deep_values_are_refused() {
    // Built by a loop: 300,000 levels (it overflowed the stack when freed).
    assert_refused("{% set ns = namespace(x=[]) %}{% for i in range(1000) %}{% for j in range(300) %}{% set ns.x = [ns.x] %}{% endfor %}{% endfor %}", TOO_DEEP);
    // Built by 12,000 assignments in a row.
    assert_refused(&format!("{{% set a = 1 %}}{}{{{{ a ~ '' }}}}", "{% set a = [a] %}\n".repeat(12_000)), TOO_DEEP);
    // A literal of 50,000 brackets.
    assert_refused(&brackets(50_000), "(MAX_TAG_TOKENS)");
    assert_refused(&brackets(50_000).replace('\n', ""), "line 1 is longer than the 65534 characters accepted (MAX_LINE_CHARS)");
    // Messages and variables nested deeper than the bound.
    let mut deep = serde_json::json!("x");
    for _ in 0..2000 {
        deep = serde_json::json!([deep]);
    }
    let e = render_with("{{ messages }}", &serde_json::json!([{"role": "user", "content": deep.clone()}])).unwrap_err().to_string();
    assert!(e.contains(ORIGIN) && e.contains(&format!("messages: a value {TOO_DEEP}")), "{e}");
    let mut kwargs = serde_json::Map::new();
    kwargs.insert("tools".into(), deep);
    let t = ChatTemplate::new("{{ tools }}".into(), TemplateSource::File(ORIGIN.into()), "", "").unwrap().with_kwargs(kwargs);
    let e = t.render(&[], &RenderOptions { add_generation_prompt: false }).unwrap_err().to_string();
    assert!(e.contains(&format!("tools: a value {TOO_DEEP}")), "{e}");
    // tojson refuses, printing cuts off at the bound (as Python prints a
    // list that holds itself).
    let grow = format!("{{% for x in [1] recursive %}}{{% if loop.depth < 5 %}}{{{{ loop([{}x{}]) }}}}{{% else %}}{{{{ x | tojson }}}}{{% endif %}}{{% endfor %}}", "[".repeat(70), "]".repeat(70));
    assert_refused(&grow, &format!("tojson: the value is {TOO_DEEP}"));
}

/// A value can still grow between checks (the items a recursive loop or a
/// macro is given), by at most one tag per level of recursion: printing,
/// comparing and freeing it stay within the render's stack.
#[test]
fn the_deepest_value_recursion_can_build_renders() {
    let (open, close) = ("[".repeat(70), "]".repeat(70));
    let text = format!(
        "{{% for x in [1] recursive %}}{{% if loop.depth < 190 %}}{{{{ loop([{open}x{close}]) }}}}{{% else %}}{{{{ (x ~ '') | length }}}} {{{{ x == x }}}} {{{{ [x] | unique | length }}}} {{{{ x | string | length }}}} {{{{ x | lower | length }}}}{{% endif %}}{{% endfor %}}"
    );
    // 189 levels of 70: 13,230 deep (`str()`, and so `~`, prints 256
    // levels; minijinja's own text, which `lower` reads, all of them).
    assert_eq!(render(&text).unwrap(), "517 True 1 517 26461");
    let macro_text = format!("{{% macro f(x, n) %}}{{% if n %}}{{{{ f({open}x{close}, n - 1) }}}}{{% else %}}{{{{ x | lower | length }}}}{{% endif %}}{{% endmacro %}}{{{{ f(1, 25) }}}}");
    assert_eq!(render(&macro_text).unwrap(), "3501");
    // Deeper recursion is minijinja's error.
    assert_refused(&macro_text.replace("f(1, 25)", "f(1, 100)"), "recursion limit exceeded");
}

/// `{{ [[[...1]]] }}`, `n` brackets deep, one opening bracket a line.
fn brackets(n: usize) -> String {
    format!("{{{{ {}1{} }}}}", "[\n".repeat(n), "]".repeat(n))
}

/// Expressions of 20,000 operators (up to 140 KB, a line each).
#[test]
fn long_expressions_are_refused_before_compiling() {
    let n = 20_000;
    let cases = [
        format!("{{{{ 1{} }}}}", "+1\n".repeat(n)),
        format!("{{{{ 'a'{} }}}}", "|lower\n".repeat(n)),
        format!("{{{{ {}1 }}}}", "not\n".repeat(n)),
        format!("{{{{ {}1 }}}}", "-\n".repeat(n)),
        format!("{{{{ {}1 }}}}", "1 if x else\n".repeat(n)),
        format!("{{{{ {}1{} }}}}", "(\n".repeat(n), ")".repeat(n)),
        format!("{{% if {} %}}{{% endif %}}", "a and\n".repeat(n) + "a"),
    ];
    for text in &cases {
        assert_refused(text, &format!("more than the {MAX_TAG_TOKENS} accepted"));
    }
    assert_refused(&format!("{{{{ 1{} }}}}", "+1\n".repeat(100_000)), "(MAX_TEMPLATE_BYTES)");
    assert_refused(&format!("{{# {} #}}", "x".repeat(MAX_TEMPLATE_BYTES)), "(MAX_TEMPLATE_BYTES)");
    // minijinja's column count overflowed on a syntax error past column
    // 65,535 (found by fuzzing).
    assert_refused(&format!("\n{}{{{{", "é".repeat(70_000)), "line 2 is longer than the 65534 characters accepted (MAX_LINE_CHARS)");
    assert_renders(&format!("{}{{{{ 1 }}}}", "é".repeat(40_000)), &format!("{}1", "é".repeat(40_000)));
    // Long but within the bound: renders.
    assert_renders(&format!("{{{{ 1{} }}}}", "+1".repeat(100)), "101");
}

#[test]
fn huge_indents_and_widths_are_refused() {
    assert_refused("{{ [1] | tojson(indent=10**12) }}", "indent must be a number from 0 to 64 (MAX_JSON_INDENT)");
    assert_refused("{{ [1] | tojson(indent=65) }}", "(MAX_JSON_INDENT)");
    assert_renders("{{ {'a': [1]} | tojson(indent=2) }}", "{\n  \"a\": [\n    1\n  ]\n}");
    assert_refused("{{ '{:>999999999999}'.format(1) }}", "width or precision 999999999999 is more than 4096 (MAX_FORMAT_WIDTH)");
    assert_refused("{{ '{:.999999999f}'.format(1.5) }}", "(MAX_FORMAT_WIDTH)");
    assert_refused("{{ ('{:>4000}' * 10000).format(1) }}", &format!("str.format: the text would be {TOO_LONG}"));
    assert_renders("{{ '{:>5}|{:.2f}'.format(1, 2.5) }}", "    1|2.50");
    // printf style: Python's `%` operator is not minijinja's; its `format`
    // filter pays for the width in work before allocating.
    assert_refused("{{ '%999999999d' % 1 }}", "unsupported types string and number");
    assert_refused("{{ '%999999999999d' | format(1) }}", WORK);
}

#[test]
fn texts_of_gigabytes_are_refused() {
    assert_refused("{{ 'x' * 10**10 }}", WORK);
    assert_refused("{{ 'x' * 10**8 }}", &format!("the prompt would be {TOO_LONG}"));
    assert_refused("{% for i in range(100) %}{{ 'x' * 10**6 }}{% endfor %}", &format!("the prompt would be {TOO_LONG}"));
    assert_refused("{% for i in range(10**10) %}x{% endfor %}", "range has too many elements");
    let big = "{% set s = 'x' * 10**7 %}";
    for (expr, what) in [
        ("([s] * 1000) | join", "join"),
        ("'-'.join([s] * 1000)", "str.join"),
        ("([s] * 1000) | tojson", "tojson"),
        ("([s] * 1000) | pprint", "pprint"),
        ("([s] * 1000) | string", "printing a value"),
        ("'{}{}'.format([s] * 1000, 1)", "printing a value"),
    ] {
        assert_refused(&format!("{big}{{{{ {expr} }}}}"), &format!("{what}: the text would be {TOO_LONG}"));
    }
    assert_refused(&format!("{big}{{{{ [s] * 1000 }}}}"), TOO_LONG);
    assert_refused("{{ ([''] * 10**12) | join }}", "repeated sequence is too large");
}

/// Where minijinja turns a value into text by itself (`~`, `in` a string,
/// its string filters and tests, Python's string methods, our functions),
/// a list of 1,000 references to one 10 MB string (10 GB of text from a
/// few bytes) asked for all of it at once and aborted the process.
#[test]
fn texts_minijinja_makes_itself_are_refused() {
    let big = "{% set s = 'x' * 10**7 %}{% set l = [s] * 1000 %}";
    let printed = format!("a value turned into text: the text would be {TOO_LONG}");
    let str_of = format!("printing a value: the text would be {TOO_LONG}");
    for (expr, want) in [
        ("l ~ ''", &str_of),
        ("'' ~ l ~ ''", &str_of),
        ("(l if true else 1) ~ 'x'", &str_of),
        ("l in 'abc'", &printed),
        ("l not in 'abc'", &printed),
        ("l is in('abc')", &printed),
        ("l | lower", &printed),
        ("(l) | upper", &printed),
        ("l | title", &printed),
        ("l | capitalize", &printed),
        ("l | trim", &printed),
        ("l | indent(2)", &printed),
        ("l | escape", &printed),
        ("l | safe", &printed),
        ("l | split", &printed),
        ("l | replace('x', 'y')", &printed),
        ("'a' | replace(l, 'y')", &printed),
        ("'%s' | format(l)", &printed),
        ("l is startingwith('x')", &printed),
        ("'x' is endingwith(l)", &printed),
        ("'abc'.startswith(l)", &printed),
        ("'abc'.replace(l, 'y')", &printed),
        ("raise_exception(l)", &str_of),
        ("debug(l)", &format!("debug: the text would be {TOO_LONG}")),
    ] {
        assert_refused(&format!("{big}{{{{ {expr} }}}}"), want);
    }
    // Text captured by `{% filter %}` or a macro goes to minijinja's own
    // strings, not to the capped prompt.
    assert_refused(&format!("{big}{{% filter upper %}}{{{{ l }}}}{{% endfilter %}}"), TOO_LONG);
    assert_refused(&format!("{big}{{% filter upper %}}{{{{ l|reverse }}}}{{% endfilter %}}"), TOO_LONG);
    assert_refused(&format!("{big}{{% macro m() %}}{{{{ l }}}}{{% endmacro %}}{{{{ m()|length }}}}"), TOO_LONG);
    // Sorting and comparing charge for the bytes compared: 10^5 references
    // to one 1 MB string sorted for 23 s.
    let many = "{% set s = 'x' * 10**6 %}{% set l = [s] * 10**5 %}";
    for expr in ["l | sort | length", "l | unique | length", "l | min | length", "l | max | length", "l | dictsort | length", "l | groupby('x') | length"] {
        let e = render(&format!("{many}{{{{ {expr} }}}}")).expect_err(expr).to_string();
        assert!(e.contains(WORK) || e.contains("cannot convert"), "{expr}: {e}");
    }
    // minijinja walked format keys a byte at a time and panicked inside a
    // character of several bytes (found by fuzzing, the input is in
    // tests/fixtures/fuzz/): such keys are refused.
    assert_refused("{{ '{0[é]}'.format({'é': 1}) }}", "str.format: a field name or key with non-ASCII characters");
    assert_refused("{{ '%(é)s' | format(1) }}", "format: a field name or key with non-ASCII characters");
    let crash = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fuzz/chat-template-format-key.bin")).unwrap();
    let text = String::from_utf8_lossy(&crash[1..]).into_owned();
    let e = render(&text).expect_err("the fuzzer's input is refused");
    assert!(matches!(e, moe::Error::ChatTemplate { .. }), "{e}");
    // What real templates do with these is unchanged.
    assert_renders("{{ 'a' ~ 1 ~ none ~ true ~ [1, 'b'] }}", "a1NoneTrue[1, 'b']");
    assert_renders("{{ 'b' in 'abc' }} {{ 1 in [1, 2] }} {{ [1] in [[1]] }} {{ 'x' in {'x': 1} }}", "True True True True");
    assert_renders("{{ ['b', 'a'] | sort | join }} {{ 'A-b' | lower | replace('-', '_') }}", "ab a_b");
}

/// Runs `moe ARGS` with a time limit (killed past it); its exit status and
/// stderr.
fn moe_within(args: &[&str], limit: Duration) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running moe");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for moe") {
            break status;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("moe {args:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().expect("reading moe's stderr"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("moe-template-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `moe render-template` with the template in `file`: exits with an error
/// (status 1, not a signal) naming the file and `want`, and no panic.
fn assert_cli_refuses(model: &Path, file: &Path, messages: &str, want: &str) {
    let args = ["render-template", "-m", model.to_str().unwrap(), "--messages", messages, "--chat-template-file", file.to_str().unwrap()];
    let (status, stderr) = moe_within(&args, TIME_LIMIT + Duration::from_secs(10));
    assert_eq!((status.code(), status.signal()), (Some(1), None), "{file:?}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("overflow"), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("moe: error: chat template (") && first.contains(file.to_str().unwrap()) && first.contains(want), "{stderr}");
}

#[test]
fn render_template_cli_exits_with_the_error() {
    let model = common::smollm2();
    let user = r#"[{"role": "user", "content": "hi"}]"#;
    let cases = [
        ("cycle.jinja", "{% set ns = namespace() %}{% set ns.x = [ns] %}{{ ns }}".to_string(), SELF_HOLDING),
        ("brackets.jinja", brackets(50_000), "(MAX_TAG_TOKENS)"),
        ("loop-depth.jinja", "{% set ns = namespace(x=[]) %}{% for i in range(300) %}{% for j in range(1000) %}{% set ns.x = [ns.x] %}{% endfor %}{% endfor %}".into(), TOO_DEEP),
        ("indent.jinja", "{{ messages | tojson(indent=10**12) }}".into(), "(MAX_JSON_INDENT)"),
        ("width.jinja", "{{ '{:>999999999999}'.format(1) }}".into(), "(MAX_FORMAT_WIDTH)"),
        ("output.jinja", "{% for i in range(3000) %}{{ 'x' * 10**6 }}{% endfor %}".into(), TOO_LONG),
        ("source.jinja", format!("{{# {} #}}", "x".repeat(MAX_TEMPLATE_BYTES)), "(MAX_TEMPLATE_BYTES)"),
    ];
    for (name, text, want) in &cases {
        let file = scratch(name);
        std::fs::write(&file, text).unwrap();
        assert_cli_refuses(&model, &file, user, want);
    }
    // Messages nested deeper than serde_json reads: its error, as usual.
    let file = scratch("plain.jinja");
    std::fs::write(&file, "{{ messages }}").unwrap();
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let args = ["render-template", "-m", model.to_str().unwrap(), "--messages", &deep, "--chat-template-file", file.to_str().unwrap()];
    let (status, stderr) = moe_within(&args, TIME_LIMIT);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--messages: invalid JSON: recursion limit exceeded"), "{stderr}");
}
