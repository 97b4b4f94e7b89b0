//! Tokenizers built from GGUF metadata, giving llama.cpp's token ids.
//!
//! Two vocab kinds, as `tokenizer.ggml.model` names them:
//! - `"llama"`: SentencePiece BPE by piece score with byte fallback
//!   (Llama 1/2, Mistral, Mixtral, Gemma); see [`spm`].
//! - `"gpt2"`: byte-level BPE by merge rank, split first by the
//!   pre-tokenizer `tokenizer.ggml.pre` names; see [`bpe`], [`pretokenize`].
//!
//! Around both, as llama.cpp: special tokens in the text are split out first
//! ([`special`]), BOS/EOS are added per the vocab's flags, and decoding
//! renders pieces the way `llama_token_to_piece` / `llama_detokenize` do
//! ([`decode`], [`stream`]).

mod bpe;
mod decode;
mod gpt4o;
mod index;
mod longest_match;
mod pretokenize;
mod special;
mod spm;
mod stream;
mod unicode;
mod unicode_table;
mod vocab;

use std::sync::Once;

use crate::error::{Error, Result};
use crate::gguf::Metadata;

use bpe::BpeModel;
use decode::Pieces;
use pretokenize::PreTokenizer;
use special::{Fragment, SpecialMatcher};
use vocab::{attr, Specials, Vocab};

pub use bpe::byte_to_char;
pub use stream::StreamDecoder;
pub use vocab::ModelKind;

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_MERGES: &str = "tokenizer.ggml.merges";

enum Encoder {
    Spm {
        byte_tokens: Box<[Option<u32>; 256]>,
    },
    Bpe(Box<BpeModel>),
}

/// A vocab loaded from GGUF metadata, encoding and decoding as llama.cpp.
pub struct Tokenizer {
    vocab: Vocab,
    kind: ModelKind,
    encoder: Encoder,
    specials: Specials,
    matcher: SpecialMatcher,
    pieces: Pieces,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    chat_template: Option<String>,
    /// The file the vocab came from, for errors found while encoding.
    origin: std::path::PathBuf,
}

impl Tokenizer {
    /// Builds the tokenizer from a file's `tokenizer.*` keys. Errors name
    /// the file and the key: a missing `tokenizer.ggml.tokens`, a model
    /// other than `llama`/`gpt2`, an unsupported `tokenizer.ggml.pre`, ...
    pub fn from_metadata(md: &Metadata) -> Result<Tokenizer> {
        let model = md.str(KEY_MODEL)?;
        let kind = match model {
            "llama" => ModelKind::Spm,
            "gpt2" => ModelKind::Bpe,
            other => {
                return Err(md.error(
                    KEY_MODEL,
                    "\"llama\" (SentencePiece) or \"gpt2\" (byte-level BPE), the tokenizers this engine supports",
                    &format!("{other:?}"),
                ))
            }
        };
        let pre = match kind {
            ModelKind::Spm => None,
            ModelKind::Bpe => Some(pre_tokenizer(md)?),
        };
        let mut vocab = Vocab::load(md)?;

        let specials = Specials::load(md, kind, &mut vocab)?;
        let (mut add_bos, mut add_space_prefix, clean_spaces) = match &pre {
            None => (true, true, false),
            Some(p) => (p.add_bos, false, p.clean_spaces),
        };
        let mut add_eos = false;
        if let Some(v) = md.opt_bool("tokenizer.ggml.add_space_prefix")? {
            add_space_prefix = v;
        }
        if let Some(v) = md.opt_bool("tokenizer.ggml.add_bos_token")? {
            add_bos = v;
        }
        if let Some(v) = md.opt_bool("tokenizer.ggml.add_eos_token")? {
            add_eos = v;
        }

        let matcher = SpecialMatcher::new(&vocab)
            .map_err(|e| md.error(vocab::KEY_TOKENS, "indexable special tokens", &e))?;
        let pieces = Pieces::new(&vocab, kind);
        vocab::apply_name_rules(md, &mut vocab, matcher.ids())?;

        let encoder = match pre {
            None => Encoder::Spm {
                byte_tokens: Box::new(spm::byte_tokens(&vocab)),
            },
            Some(pre) => {
                let merges: Vec<&str> = md.strings(KEY_MERGES)?.iter().collect();
                Encoder::Bpe(Box::new(
                    BpeModel::new(&vocab, &merges, pre)
                        .map_err(|e| md.error(KEY_MERGES, "usable BPE merges", &e))?,
                ))
            }
        };
        let chat_template = md.opt_str("tokenizer.chat_template")?.map(str::to_string);
        Ok(Tokenizer {
            vocab,
            kind,
            encoder,
            specials,
            matcher,
            pieces,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
            chat_template,
            origin: md.path.clone(),
        })
    }

    /// Text to ids, as `llama_tokenize(text, add_special, parse_special)`.
    /// `add_special` adds BOS/EOS where the vocab asks for them;
    /// `parse_special` turns control-token texts in `text` (`<|im_end|>`)
    /// into those tokens (user-defined tokens are always matched).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        if add_special && self.add_bos {
            out.push(
                self.specials
                    .bos
                    .ok_or_else(|| self.no_special("BOS", "add_bos_token", "bos_token_id"))?,
            );
        }
        let frags = self.matcher.partition(&self.vocab, text, parse_special);
        match &self.encoder {
            Encoder::Spm { byte_tokens } => {
                let mut prev_special = true; // the text start counts as special
                let mut buf = String::new();
                for f in frags {
                    match f {
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                        Fragment::Text { start, end } => {
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.push(' ');
                            }
                            buf.push_str(&text[start..end]);
                            let escaped = buf.replace(' ', "\u{2581}");
                            let before = out.len();
                            spm::encode(&self.vocab, byte_tokens, &escaped, &mut out).map_err(
                                |b| {
                                    Error::Tokenizer(format!(
                                        "{}: tokenizer.ggml.tokens has no byte token <0x{b:02X}>, which \
                                         SentencePiece byte fallback needs for this text",
                                        self.origin.display()
                                    ))
                                },
                            )?;
                            self.check_encoded(&text[start..end], out.len() - before)?;
                            prev_special = false;
                        }
                    }
                }
            }
            Encoder::Bpe(model) => {
                for f in frags {
                    match f {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text { start, end } => {
                            let before = out.len();
                            model.encode(&text[start..end], &mut out).map_err(Error::Tokenizer)?;
                            self.check_encoded(&text[start..end], out.len() - before)?;
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.push(
                self.specials
                    .eos
                    .ok_or_else(|| self.no_special("EOS", "add_eos_token", "eos_token_id"))?,
            );
        }
        Ok(out)
    }

    /// Ids to text, as `llama_detokenize(ids, remove_special = false,
    /// unparse_special = !skip_special)`, invalid UTF-8 replaced by U+FFFD.
    /// With `skip_special`, control and unknown tokens render as nothing.
    /// Ids outside the vocab render as nothing.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        String::from_utf8_lossy(&self.detokenize(ids, false, !skip_special)).into_owned()
    }

    /// `llama_detokenize` in full, as bytes. `remove_special` drops a
    /// leading BOS and trailing EOS where the vocab adds them;
    /// `unparse_special` renders control tokens as their text.
    pub fn detokenize(&self, ids: &[u32], remove_special: bool, unparse_special: bool) -> Vec<u8> {
        let mut ids = ids;
        // The first piece loses a leading space if the vocab adds one.
        let mut strip_space = self.add_space_prefix;
        if remove_special && self.add_bos && !ids.is_empty() && Some(ids[0]) == self.specials.bos {
            strip_space = false;
            ids = &ids[1..];
        }
        if remove_special
            && self.add_eos
            && ids.last().is_some_and(|&id| Some(id) == self.specials.eos)
        {
            ids = &ids[..ids.len() - 1];
        }
        let mut out = Vec::new();
        for &id in ids {
            let piece = if unparse_special {
                self.token_piece_special(id)
            } else {
                self.token_piece(id)
            };
            let piece = if strip_space {
                piece.strip_prefix(b" ").unwrap_or(piece)
            } else {
                piece
            };
            strip_space = false;
            out.extend_from_slice(piece);
        }
        if self.clean_spaces {
            decode::clean_spaces(&mut out);
        }
        out
    }

    /// The bytes token `id` decodes to, as `llama_token_to_piece(special =
    /// false)`: control and unknown tokens give nothing. Empty for an id
    /// outside the vocab.
    pub fn token_piece(&self, id: u32) -> &[u8] {
        if self.vocab.has(id, attr::CONTROL | attr::UNKNOWN) {
            return &[];
        }
        self.pieces.get(id)
    }

    /// As [`token_piece`](Self::token_piece), but control and unknown tokens
    /// give their text (`llama_token_to_piece(special = true)`).
    pub fn token_piece_special(&self, id: u32) -> &[u8] {
        self.pieces.get(id)
    }

    /// The vocab entry of `id`, as stored (`▁` for spaces in SentencePiece,
    /// GPT-2's byte alphabet in byte-level BPE).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.texts.get(id as usize).map(String::as_str)
    }

    /// The id of the vocab entry `text`, if there is one.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.id(text)
    }

    /// Whether `id` is a control token (rendered only when asked).
    pub fn is_control(&self, id: u32) -> bool {
        self.vocab.has(id, attr::CONTROL)
    }

    pub fn bos(&self) -> Option<u32> {
        self.specials.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.specials.eos
    }

    /// End of turn: `tokenizer.ggml.eot_token_id`, or found by its text.
    pub fn eot(&self) -> Option<u32> {
        self.specials.eot
    }

    /// Whether `encode(.., add_special = true, ..)` starts with BOS.
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(.., add_special = true, ..)` ends with EOS.
    pub fn adds_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether generation stops at `id`: EOS, EOT, EOM, the FIM pad /
    /// repo / file-separator tokens, and the end tokens llama.cpp knows by
    /// their text (`<|im_end|>`, `<|endoftext|>`, `<end_of_turn>`, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.specials.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> &[u32] {
        &self.specials.eog
    }

    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// `tokenizer.chat_template`, the Jinja template, if the file has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }
}

impl Tokenizer {
    /// Text that came out as no tokens at all: the vocab cannot encode it
    /// (say so, rather than run an empty or shortened prompt).
    fn check_encoded(&self, piece: &str, ids: usize) -> Result<()> {
        if ids == 0 && !piece.is_empty() {
            return Err(Error::Tokenizer(format!(
                "{}: the vocab (tokenizer.ggml.tokens) has no tokens for the text {:?}",
                self.origin.display(),
                piece.chars().take(40).collect::<String>()
            )));
        }
        Ok(())
    }

    fn no_special(&self, what: &str, flag: &str, id_key: &str) -> Error {
        Error::Tokenizer(format!(
            "{}: the vocab asks for {what} (tokenizer.ggml.{flag}, or the tokenizer's default) but has no {what} \
             token (tokenizer.ggml.{id_key} absent or not a token); --no-bos leaves it out",
            self.origin.display()
        ))
    }
}

/// The pre-tokenizer `tokenizer.ggml.pre` names. llama.cpp treats a missing
/// key as "default", with a warning; so do we, once per process.
fn pre_tokenizer(md: &Metadata) -> Result<PreTokenizer> {
    static WARN_MISSING: Once = Once::new();
    let name = match md.opt_str(KEY_PRE)? {
        Some(name) => name,
        None => {
            WARN_MISSING.call_once(|| {
                eprintln!(
                    "moe: warning: {}: no {KEY_PRE}; using \"default\" as llama.cpp does. \
                     Tokenization may differ from the model's own; consider regenerating the GGUF.",
                    md.path.display()
                )
            });
            "default"
        }
    };
    PreTokenizer::by_name(name).ok_or_else(|| {
        md.error(
            KEY_PRE,
            &format!(
                "one of the supported pre-tokenizers: {}",
                PreTokenizer::supported_names().join(", ")
            ),
            &format!("{name:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    /// The engine shares one tokenizer between threads.
    #[test]
    fn tokenizer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Tokenizer>();
    }
}
