//! Quality heuristics: simple, explainable scores from the content alone.
//!
//! - `readability`: the Flesch reading-ease formula
//!   `206.835 - 1.015 * (words / sentences) - 84.6 * (syllables / words)`, clamped to 0..=100.
//!   Syllables are estimated per word as groups of vowels (`aeiouy`), minus a silent final `e`,
//!   at least one per word. Higher is easier to read; 60-70 is plain English.
//! - `length`: 100 for 150..=2000 words; below 150 it grows linearly from 0; above 2000 it falls
//!   by 10 per further 1000 words, down to 50.
//! - `structure`: starts at 100; loses up to 50 when the average sentence is outside 8..=25 words
//!   (2 points per word outside the range) and 30 when a text over 300 words is one paragraph.
//! - `overall` = round(0.4 * readability + 0.3 * length + 0.3 * structure), 0..=100.
//!
//! Empty content scores 0 everywhere.

use super::metrics::{self, ContentMetrics};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct QualityScores {
    pub readability: u8,
    pub length: u8,
    pub structure: u8,
    pub overall: u8,
}

impl QualityScores {
    pub fn of(content: &str, m: &ContentMetrics) -> Self {
        if m.words == 0 {
            return Self::default();
        }
        let readability = readability(content, m);
        let length = length_score(m.words);
        let structure = structure_score(m);
        let overall =
            (0.4 * readability as f64 + 0.3 * length as f64 + 0.3 * structure as f64).round();
        QualityScores {
            readability,
            length,
            structure,
            overall: overall.clamp(0.0, 100.0) as u8,
        }
    }
}

fn readability(content: &str, m: &ContentMetrics) -> u8 {
    let syllables: u64 = metrics::words(content).map(syllables).sum();
    let words = m.words as f64;
    let sentences = m.sentences.max(1) as f64;
    let score = 206.835 - 1.015 * (words / sentences) - 84.6 * (syllables as f64 / words);
    score.clamp(0.0, 100.0).round() as u8
}

/// Estimated syllables of one word (vowel groups, silent final `e`, at least one).
pub fn syllables(word: &str) -> u64 {
    let letters: Vec<char> = word
        .chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(char::to_lowercase)
        .collect();
    if letters.is_empty() {
        return 1;
    }
    let is_vowel = |c: char| matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y');
    let mut groups = 0;
    let mut previous = false;
    for &c in &letters {
        let v = is_vowel(c);
        if v && !previous {
            groups += 1;
        }
        previous = v;
    }
    let n = letters.len();
    if groups > 1 && letters[n - 1] == 'e' && !is_vowel(letters[n - 2]) {
        groups -= 1;
    }
    groups.max(1)
}

fn length_score(words: u64) -> u8 {
    match words {
        0..150 => (words as f64 / 150.0 * 100.0).round() as u8,
        150..=2000 => 100,
        _ => {
            let over = (words - 2000) as f64 / 1000.0;
            (100.0 - 10.0 * over).max(50.0).round() as u8
        }
    }
}

fn structure_score(m: &ContentMetrics) -> u8 {
    let mut score = 100.0;
    let avg = m.words as f64 / m.sentences.max(1) as f64;
    let outside = if avg < 8.0 {
        8.0 - avg
    } else if avg > 25.0 {
        avg - 25.0
    } else {
        0.0
    };
    score -= (outside * 2.0).min(50.0);
    if m.words > 300 && m.paragraphs <= 1 {
        score -= 30.0;
    }
    score.max(0.0).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(text: &str) -> QualityScores {
        QualityScores::of(text, &ContentMetrics::of(text))
    }

    #[test]
    fn syllable_estimates() {
        assert_eq!(syllables("cat"), 1);
        assert_eq!(syllables("make"), 1);
        assert_eq!(syllables("readability"), 5);
        assert_eq!(syllables("the"), 1);
        assert_eq!(syllables("42"), 1);
    }

    #[test]
    fn empty_content_scores_zero() {
        assert_eq!(scores(""), QualityScores::default());
    }

    #[test]
    fn plain_prose_reads_easier_than_jargon() {
        let plain = "The cat sat on the mat. It was a warm day. The sun was out.";
        let jargon = "Institutionalized interoperability necessitates comprehensive organizational reconfiguration.";
        assert!(scores(plain).readability > scores(jargon).readability);
        assert_eq!(scores(jargon).readability, 0);
    }

    #[test]
    fn length_score_bands() {
        assert_eq!(length_score(75), 50);
        assert_eq!(length_score(150), 100);
        assert_eq!(length_score(2000), 100);
        assert_eq!(length_score(3000), 90);
        assert_eq!(length_score(100_000), 50);
    }

    #[test]
    fn one_giant_paragraph_loses_structure() {
        let sentence = "This sentence has exactly ten words in it for testing. ";
        let one = sentence.repeat(40);
        let many = format!("{}\n\n{}", sentence.repeat(20), sentence.repeat(20));
        assert_eq!(scores(&one).structure, 70);
        assert_eq!(scores(&many).structure, 100);
    }

    #[test]
    fn overall_is_the_documented_weighting_and_bounded() {
        let text = "A short note. With two sentences.";
        let s = scores(text);
        let expected =
            (0.4 * s.readability as f64 + 0.3 * s.length as f64 + 0.3 * s.structure as f64).round()
                as u8;
        assert_eq!(s.overall, expected);
        assert!(s.overall <= 100);
    }
}
