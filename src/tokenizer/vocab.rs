//! The vocabulary as llama.cpp loads it from GGUF metadata: piece texts,
//! scores, per-token attributes, and the special token ids, including the
//! ones llama.cpp finds by their text (`<|im_end|>`, `<end_of_turn>`, ...)
//! and the attribute fixes it applies on the way.

use std::collections::BTreeSet;

use crate::error::Result;
use crate::gguf::{Array, Metadata};

use super::index::PieceIndex;

/// Token attributes, llama.cpp's `llama_token_attr` bits.
pub(crate) mod attr {
    pub const UNKNOWN: u16 = 1 << 0;
    pub const UNUSED: u16 = 1 << 1;
    pub const NORMAL: u16 = 1 << 2;
    pub const CONTROL: u16 = 1 << 3;
    pub const USER_DEFINED: u16 = 1 << 4;
    pub const BYTE: u16 = 1 << 5;
    pub const LSTRIP: u16 = 1 << 7;
    pub const RSTRIP: u16 = 1 << 8;
}

pub(crate) const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";

/// Which encoder the vocab belongs to; it decides the defaults below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// `tokenizer.ggml.model = "llama"`: SentencePiece BPE by piece score.
    Spm,
    /// `tokenizer.ggml.model = "gpt2"`: byte-level BPE by merge rank.
    Bpe,
}

pub(crate) struct Vocab {
    pub texts: Vec<String>,
    pub scores: Vec<f32>,
    pub attrs: Vec<u16>,
    index: PieceIndex,
}

impl Vocab {
    pub fn load(md: &Metadata) -> Result<Vocab> {
        let raw = md.strings(KEY_TOKENS)?;
        let n = raw.len();
        let mut texts = Vec::with_capacity(n);
        for (i, t) in raw.iter().enumerate() {
            if t.is_empty() {
                eprintln!(
                    "moe: tokenizer: empty token at index {i} in {}",
                    md.path.display()
                );
                texts.push(format!("[EMPTY_{i}]"));
            } else {
                texts.push(t.to_string());
            }
        }

        let scores = match md.opt_array(KEY_SCORES, "an array of f32 or i32")? {
            None => vec![0.0; n],
            Some(arr) => {
                check_len(md, KEY_SCORES, arr.len(), n)?;
                match arr {
                    Array::F32(v) => v[..n].to_vec(),
                    Array::I32(v) => v[..n].iter().map(|&i| i as f32).collect(),
                    other => {
                        return Err(md.error(KEY_SCORES, "an array of f32 or i32", &other.describe()))
                    }
                }
            }
        };

        let attrs = match md.opt_array(KEY_TOKEN_TYPE, "an array of i32")? {
            None => vec![attr::NORMAL; n],
            Some(arr) => {
                check_len(md, KEY_TOKEN_TYPE, arr.len(), n)?;
                arr.iter()
                    .take(n)
                    .map(|v| {
                        let t = v.as_i64().ok_or_else(|| {
                            md.error(KEY_TOKEN_TYPE, "an array of i32", &v.describe())
                        })?;
                        // GGUF token types: 1 normal, 2 unknown, 3 control,
                        // 4 user-defined, 5 unused, 6 byte; others undefined.
                        Ok(match t {
                            1 => attr::NORMAL,
                            2 => attr::UNKNOWN,
                            3 => attr::CONTROL,
                            4 => attr::USER_DEFINED,
                            5 => attr::UNUSED,
                            6 => attr::BYTE,
                            _ => 0,
                        })
                    })
                    .collect::<Result<Vec<u16>>>()?
            }
        };

        // llama.cpp asserts that every piece is unique.
        let index = PieceIndex::build(&texts).map_err(|(first, second)| {
            let t = &texts[first as usize];
            md.error(
                KEY_TOKENS,
                "unique token strings",
                &format!("{t:?} at both id {first} and id {second}"),
            )
        })?;
        Ok(Vocab {
            texts,
            scores,
            attrs,
            index,
        })
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn id(&self, text: &str) -> Option<u32> {
        self.index.get(&self.texts, text)
    }

    pub fn has(&self, id: u32, bits: u16) -> bool {
        self.attrs.get(id as usize).is_some_and(|a| a & bits != 0)
    }
}

fn check_len(md: &Metadata, key: &str, len: usize, n: usize) -> Result<()> {
    if len < n {
        return Err(md.error(
            key,
            &format!("at least {n} entries, one per token"),
            &format!("{len} entries"),
        ));
    }
    Ok(())
}

/// Special token ids and flags, after llama.cpp's defaults, the GGUF keys
/// and its text heuristics.
#[derive(Clone, Debug, Default)]
pub(crate) struct Specials {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
    /// End-of-generation ids, ascending.
    pub eog: Vec<u32>,
}

/// Picks one id field of [`Specials`].
type Slot = fn(&mut Specials) -> &mut Option<u32>;

// Texts llama.cpp recognises (llama-vocab.cpp, `load`), per role.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

impl Specials {
    /// Reads the ids and applies llama.cpp's heuristics, which also adjust
    /// `vocab.attrs` (found end tokens become CONTROL, and so on).
    pub fn load(md: &Metadata, kind: ModelKind, vocab: &mut Vocab) -> Result<Specials> {
        let n = vocab.len() as u64;
        let mut s = Specials::default();
        match kind {
            ModelKind::Spm => {
                s.bos = Some(1);
                s.eos = Some(2);
                s.unk = Some(0);
            }
            ModelKind::Bpe => {
                s.bos = Some(11);
                s.eos = Some(11);
            }
        }
        let keys: [(&str, Slot); 17] = [
            ("tokenizer.ggml.bos_token_id", |s| &mut s.bos),
            ("tokenizer.ggml.eos_token_id", |s| &mut s.eos),
            ("tokenizer.ggml.eot_token_id", |s| &mut s.eot),
            ("tokenizer.ggml.eom_token_id", |s| &mut s.eom),
            ("tokenizer.ggml.unknown_token_id", |s| &mut s.unk),
            ("tokenizer.ggml.seperator_token_id", |s| &mut s.sep),
            ("tokenizer.ggml.padding_token_id", |s| &mut s.pad),
            ("tokenizer.ggml.mask_token_id", |s| &mut s.mask),
            ("tokenizer.ggml.fim_pre_token_id", |s| &mut s.fim_pre),
            ("tokenizer.ggml.fim_suf_token_id", |s| &mut s.fim_suf),
            ("tokenizer.ggml.fim_mid_token_id", |s| &mut s.fim_mid),
            ("tokenizer.ggml.fim_pad_token_id", |s| &mut s.fim_pad),
            ("tokenizer.ggml.fim_rep_token_id", |s| &mut s.fim_rep),
            ("tokenizer.ggml.fim_sep_token_id", |s| &mut s.fim_sep),
            ("tokenizer.ggml.prefix_token_id", |s| &mut s.fim_pre),
            ("tokenizer.ggml.suffix_token_id", |s| &mut s.fim_suf),
            ("tokenizer.ggml.middle_token_id", |s| &mut s.fim_mid),
        ];
        for (key, field) in keys {
            let slot = field(&mut s);
            if slot.is_some_and(|id| id as u64 >= n) {
                *slot = None; // a default outside the vocab is disabled
            }
            if let Some(id) = md.opt_u64(key)? {
                if id < n {
                    *slot = Some(id as u32);
                } else {
                    eprintln!(
                        "moe: tokenizer: {}: {key} = {id} is outside the vocab of {n}, ignored",
                        md.path.display()
                    );
                }
            }
        }

        // Roles found by text. llama.cpp scans a hash map and takes the first
        // hit; where a vocab has several candidates we take the lowest id.
        let found: [(Slot, &[&str]); 8] = [
            (|s| &mut s.eot, EOT_TEXTS),
            (|s| &mut s.eom, EOM_TEXTS),
            (|s| &mut s.fim_pre, FIM_PRE_TEXTS),
            (|s| &mut s.fim_suf, FIM_SUF_TEXTS),
            (|s| &mut s.fim_mid, FIM_MID_TEXTS),
            (|s| &mut s.fim_pad, FIM_PAD_TEXTS),
            (|s| &mut s.fim_rep, FIM_REP_TEXTS),
            (|s| &mut s.fim_sep, FIM_SEP_TEXTS),
        ];
        for (field, texts) in found {
            let slot = field(&mut s);
            if slot.is_none() {
                if let Some(id) = texts.iter().filter_map(|t| vocab.id(t)).min() {
                    *slot = Some(id);
                    vocab.attrs[id as usize] |= attr::CONTROL;
                }
            }
        }

        // Control tokens named "unused..." are unused.
        for (a, t) in vocab.attrs.iter_mut().zip(&vocab.texts) {
            if *a & attr::CONTROL != 0 && t.contains("unused") {
                *a |= attr::UNUSED;
            }
        }

        let mut eog: BTreeSet<u32> = [s.fim_pad, s.fim_rep, s.fim_sep]
            .into_iter()
            .flatten()
            .collect();
        for t in EOG_TEXTS {
            if let Some(id) = vocab.id(t) {
                eog.insert(id);
                vocab.attrs[id as usize] |= attr::CONTROL;
            }
        }
        // gpt-oss: these always render.
        for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(id) = vocab.id(t) {
                vocab.attrs[id as usize] = attr::USER_DEFINED;
            }
        }
        eog.extend([s.eos, s.eot, s.eom].into_iter().flatten());

        // o200k_harmony / solar-open: `<|end|>` is not an end there.
        let find = |eog: &BTreeSet<u32>, t: &str| {
            eog.iter()
                .copied()
                .find(|&id| vocab.texts[id as usize] == t)
        };
        if let Some(end) = find(&eog, "<|end|>") {
            let call = find(&eog, "<|call|>").is_some() || find(&eog, "<|calls|>").is_some();
            if call && (find(&eog, "<|return|>").is_some() || find(&eog, "<|flush|>").is_some()) {
                eog.remove(&end);
                vocab.attrs[end as usize] = attr::USER_DEFINED;
            }
        }
        // gemma4 / plamo: `</s>` is a normal token there.
        if find(&eog, "<|tool_response>").is_some() || find(&eog, "<|plamo:eos|>").is_some() {
            if let Some(s_id) = find(&eog, "</s>") {
                eog.remove(&s_id);
                vocab.attrs[s_id as usize] = attr::NORMAL;
            }
        }
        s.eog = eog.into_iter().collect();
        Ok(s)
    }
}

/// llama.cpp's per-model attribute fixes keyed on `general.name`: Phi-3
/// strips the white space to the right of its special tokens.
pub(crate) fn apply_name_rules(
    md: &Metadata,
    vocab: &mut Vocab,
    special_ids: &[u32],
) -> Result<()> {
    let name = md.opt_str("general.name")?.unwrap_or("").to_lowercase();
    if name.contains("phi-3") || name.contains("phi3") {
        for &id in special_ids {
            vocab.attrs[id as usize] |= attr::RSTRIP;
        }
        let mut set = |t: &str, on: bool| {
            if let Some(id) = vocab.id(t) {
                let a = &mut vocab.attrs[id as usize];
                *a = if on {
                    *a | attr::RSTRIP
                } else {
                    *a & !attr::RSTRIP
                };
            }
        };
        set("</s>", true);
        for t in ["<unk>", "<s>", "<|endoftext|>"] {
            set(t, false);
        }
    }
    Ok(())
}
