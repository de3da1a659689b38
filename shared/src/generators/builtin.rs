//! The built-in generator: deterministic text from the prompt, offline, with no model at all.
//! The same prompt always gives the same text; it streams word by word like a model would.

use crate::ports::{GenFut, Generated, Generation, OnDelta, TextGenerator};
use sha2::{Digest, Sha256};

const WORDS: &[&str] = &[
    "the",
    "chain",
    "document",
    "continues",
    "with",
    "a",
    "clear",
    "account",
    "of",
    "what",
    "follows",
    "each",
    "part",
    "builds",
    "on",
    "its",
    "parent",
    "and",
    "adds",
    "detail",
    "plan",
    "team",
    "review",
    "draft",
    "section",
    "next",
    "idea",
    "result",
    "note",
    "example",
    "shows",
    "how",
    "work",
    "moves",
    "from",
    "step",
    "to",
    "careful",
    "simple",
    "useful",
];

/// Writes sentences chosen by the prompt's hash: as many words as `max_tokens` allows, at most
/// 120, in sentences of 8 to 15 words.
#[derive(Debug, Clone, Copy, Default)]
pub struct Builtin;

impl Builtin {
    /// The text for `prompt`, at most `max_words` words.
    pub fn text(prompt: &str, max_words: usize) -> String {
        let mut seed: Vec<u8> = Sha256::digest(prompt.as_bytes()).to_vec();
        let mut out = String::new();
        let mut words = 0;
        let mut sentence = 0;
        let mut i = 0;
        while words < max_words {
            if i + 2 > seed.len() {
                seed = Sha256::digest(&seed).to_vec();
                i = 0;
            }
            let length = 8 + usize::from(seed[i]) % 8;
            let w = WORDS[usize::from(seed[i + 1]) % WORDS.len()];
            i += 2;
            if sentence == 0 {
                if !out.is_empty() {
                    out.push(' ');
                }
                let mut c = w.chars();
                if let Some(first) = c.next() {
                    out.extend(first.to_uppercase());
                    out.push_str(c.as_str());
                }
            } else {
                out.push(' ');
                out.push_str(w);
            }
            words += 1;
            sentence += 1;
            if sentence >= length || words == max_words {
                out.push('.');
                sentence = 0;
            }
        }
        out
    }
}

impl TextGenerator for Builtin {
    fn generate<'a>(&'a self, request: &'a Generation, on_delta: OnDelta<'a>) -> GenFut<'a> {
        Box::pin(async move {
            let max_words = (request.max_tokens as usize).clamp(1, 120);
            let prompt = format!(
                "{}\n{}",
                request.system.as_deref().unwrap_or(""),
                request.prompt
            );
            let text = Builtin::text(&prompt, max_words);
            for (n, piece) in text.split_inclusive(' ').enumerate() {
                on_delta(piece);
                if n % 16 == 15 {
                    tokio::task::yield_now().await;
                }
            }
            Ok(Generated {
                input_tokens: request.prompt.split_whitespace().count() as u64,
                output_tokens: text.split_whitespace().count() as u64,
                text,
                finish_reason: "stop".into(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn request(prompt: &str, max_tokens: u32) -> Generation {
        Generation {
            model: "builtin".into(),
            system: None,
            prompt: prompt.into(),
            max_tokens,
            temperature: 0.7,
            timeout: std::time::Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn the_same_prompt_writes_the_same_text_and_streams_it_whole() {
        let pieces = Mutex::new(Vec::new());
        let on_delta = |p: &str| pieces.lock().unwrap().push(p.to_string());
        let a = Builtin
            .generate(&request("Write part one", 60), &on_delta)
            .await
            .unwrap();
        let b = Builtin
            .generate(&request("Write part one", 60), &|_: &str| {})
            .await
            .unwrap();
        let c = Builtin
            .generate(&request("Write part two", 60), &|_: &str| {})
            .await
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a.text, c.text);
        assert_eq!(pieces.lock().unwrap().concat(), a.text);
        assert_eq!(a.output_tokens, 60);
        assert_eq!(a.text.split_whitespace().count(), 60);
        assert!(a.text.ends_with('.') && a.text.chars().next().unwrap().is_uppercase());
        assert_eq!(a.finish_reason, "stop");
    }

    #[tokio::test]
    async fn the_length_follows_max_tokens_up_to_a_cap() {
        let short = Builtin
            .generate(&request("p", 5), &|_: &str| {})
            .await
            .unwrap();
        assert_eq!(short.output_tokens, 5);
        let long = Builtin
            .generate(&request("p", 10_000), &|_: &str| {})
            .await
            .unwrap();
        assert_eq!(long.output_tokens, 120);
    }
}
