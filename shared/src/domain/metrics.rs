//! Content metrics derived from a node's content; never sent by clients.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Reading speed used for `reading_minutes`.
pub const WORDS_PER_MINUTE: f64 = 200.0;

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct ContentMetrics {
    /// Whitespace-separated tokens containing at least one letter or digit.
    pub words: u64,
    /// Unicode scalar values.
    pub characters: u64,
    /// Runs of text ended by `.`, `!` or `?` (or the end of the text) that contain a word.
    pub sentences: u64,
    /// Blocks of text separated by one or more blank lines.
    pub paragraphs: u64,
    /// `words / 200`, rounded up to a tenth of a minute.
    pub reading_minutes: f64,
}

impl ContentMetrics {
    pub fn of(content: &str) -> Self {
        let words = words(content).count() as u64;
        ContentMetrics {
            words,
            characters: content.chars().count() as u64,
            sentences: sentences(content).len() as u64,
            paragraphs: paragraphs(content),
            reading_minutes: reading_minutes(words),
        }
    }
}

pub fn reading_minutes(words: u64) -> f64 {
    (words as f64 / WORDS_PER_MINUTE * 10.0).ceil() / 10.0
}

/// The words of a text: whitespace-separated tokens with at least one alphanumeric character.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
}

/// The sentences of a text, each as its slice; a terminator run (`?!`, `...`) ends one sentence.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') {
            // Take the whole run of terminators.
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if matches!(d, '.' | '!' | '?') {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            // A terminator followed by a letter or digit ("3.14", "e.g") does not end a sentence.
            if chars.peek().is_some_and(|&(_, d)| d.is_alphanumeric()) {
                continue;
            }
            push_sentence(&mut out, &text[start..end]);
            start = end;
        }
    }
    push_sentence(&mut out, &text[start..]);
    out
}

fn push_sentence<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    if words(s).next().is_some() {
        out.push(s.trim());
    }
}

fn paragraphs(text: &str) -> u64 {
    let mut count = 0;
    let mut in_paragraph = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            in_paragraph = false;
        } else if !in_paragraph {
            in_paragraph = true;
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_content_has_zero_metrics() {
        assert_eq!(ContentMetrics::of(""), ContentMetrics::default());
        assert_eq!(
            ContentMetrics::of("  \n\n "),
            ContentMetrics {
                characters: 5,
                ..Default::default()
            }
        );
    }

    #[test]
    fn counts_words_sentences_paragraphs() {
        let text = "The first sentence. And a second one!\n\nA new paragraph? Yes... indeed\n";
        let m = ContentMetrics::of(text);
        assert_eq!(m.words, 12);
        assert_eq!(m.sentences, 5);
        assert_eq!(m.paragraphs, 2);
        assert_eq!(m.characters, text.chars().count() as u64);
    }

    #[test]
    fn decimals_and_abbreviations_inside_words_do_not_split() {
        assert_eq!(
            sentences("Pi is 3.14 roughly. Done"),
            ["Pi is 3.14 roughly.", "Done"]
        );
    }

    #[test]
    fn punctuation_only_tokens_are_not_words() {
        assert_eq!(words("hello - world — !").count(), 2);
    }

    #[test]
    fn characters_are_unicode_scalars() {
        assert_eq!(ContentMetrics::of("héllo wörld").characters, 11);
    }

    #[test]
    fn reading_minutes_at_200_wpm_rounded_up_to_tenths() {
        assert_eq!(reading_minutes(0), 0.0);
        assert_eq!(reading_minutes(200), 1.0);
        assert_eq!(reading_minutes(201), 1.1);
        assert_eq!(reading_minutes(50), 0.3);
    }
}
