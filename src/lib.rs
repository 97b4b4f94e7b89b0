//! `moe`: run Mixture-of-Experts LLMs from GGUF files on ordinary CPUs.
//!
//! Flow of one token: [`gguf`] opens and validates the file, [`config`] reads
//! the hyper-parameters, [`model`] runs the forward pass (experts come through
//! an `moe_offload::ExpertSource`), [`sampler`] picks the next token, and
//! [`tokenizer`] turns ids into text.

#![forbid(unsafe_op_in_unsafe_fn)]

pub mod arch;
pub mod chat;
pub mod config;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod inspect;
pub mod live;
pub mod model;
pub mod offload_setup;
pub mod report;
pub mod routing;
pub mod sampler;
pub mod server;
pub mod simulation;
pub mod speculative;
pub mod stop;
pub mod synth;
pub mod tokenizer;
pub mod trace;
pub mod tune;

pub use error::{Error, Result};
