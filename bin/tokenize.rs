//! `moe tokenize`: like `llama-tokenize`; the last stdout line is the JSON
//! array of ids. Works on vocab-only GGUF files.

use std::io::Write;

use moe::gguf::GgufFile;
use moe::tokenizer::Tokenizer;
use moe::Result;

use crate::args::TokenizeArgs;

pub fn tokenize(a: TokenizeArgs) -> Result<()> {
    let file = GgufFile::open(&a.model)?;
    let tokenizer = Tokenizer::from_metadata(file.metadata())?;
    let ids = tokenizer.encode(&a.prompt, !a.no_bos, !a.no_parse_special)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let io_err = crate::stdout_error;
    if !a.ids_only {
        for &id in &ids {
            let piece = String::from_utf8_lossy(tokenizer.token_piece_special(id));
            writeln!(out, "{id:>6} -> '{piece}'").map_err(io_err)?;
        }
    }
    let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    writeln!(out, "[{}]", list.join(", ")).map_err(io_err)?;
    Ok(())
}
