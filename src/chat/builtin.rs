//! Named chat templates for files that carry no `tokenizer.chat_template`
//! (or to override the one they carry): the formats these model families
//! were trained on, written as the Jinja templates their Hugging Face
//! tokenizers ship.

/// ChatML (`<|im_start|>role\n...<|im_end|>`): Qwen, SmolLM, many fine-tunes.
pub const CHATML: &str = "{%- for message in messages %}\
{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/// Mistral / Mixtral Instruct v0.1 (`<s> [INST] ... [/INST] answer</s>`);
/// a system message is put before the first user message.
pub const MISTRAL: &str = r#"{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"#;

/// Llama 3 Instruct (`<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>`).
pub const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}\
{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}\
{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}\
{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

/// Gemma (`<start_of_turn>user\n...<end_of_turn>`, the assistant is
/// `model`); a system message is put before the first user message, as
/// Gemma 3's template does.
pub const GEMMA: &str = r#"{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {{- message['content'] | trim }}
    {{- '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"#;

/// `(name, template)`, the names `--chat-template` accepts.
pub const ALL: &[(&str, &str)] = &[("chatml", CHATML), ("mistral", MISTRAL), ("llama3", LLAMA3), ("gemma", GEMMA)];

/// Other names people use for the same formats (llama.cpp's among them).
const ALIASES: &[(&str, &str)] = &[
    ("mixtral", "mistral"),
    ("llama2", "mistral"),
    ("mistral-v1", "mistral"),
    ("llama-3", "llama3"),
    ("gemma3", "gemma"),
    ("qwen", "chatml"),
];

/// The template called `name` (or one of its aliases), with its canonical name.
pub fn by_name(name: &str) -> Option<(&'static str, &'static str)> {
    let name = name.to_ascii_lowercase();
    let canonical = ALIASES.iter().find(|(a, _)| *a == name).map_or(name.as_str(), |(_, c)| c);
    ALL.iter().find(|(n, _)| *n == canonical).copied()
}

pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|(n, _)| *n).collect()
}

/// The built-in a vocab's special tokens point to: `<|im_start|>` → chatml,
/// `<|start_header_id|>` → llama3, `<start_of_turn>` → gemma, `[INST]` or a
/// SentencePiece llama vocab → mistral; otherwise chatml.
pub fn guess(has_token: impl Fn(&str) -> bool, is_spm: bool) -> &'static str {
    if has_token("<|im_start|>") {
        "chatml"
    } else if has_token("<|start_header_id|>") {
        "llama3"
    } else if has_token("<start_of_turn>") {
        "gemma"
    } else if has_token("[INST]") || is_spm {
        "mistral"
    } else {
        "chatml"
    }
}
