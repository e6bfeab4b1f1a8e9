//! Splitting prose into paragraphs, sentences and word tokens, and normalising it for comparison.

/// The paragraphs of `text`: runs of non-blank lines, trimmed, without scene breaks
/// (`* * *`, `***`, `---`, `#`: lines of only break marks).
pub fn paragraphs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            if let Some(s) = start.take() {
                out.push(text[s..end].trim());
            }
        } else {
            start.get_or_insert(pos);
            end = pos + line.trim_end().len();
        }
        pos += line.len();
    }
    if let Some(s) = start {
        out.push(text[s..end].trim());
    }
    out.retain(|p| !is_scene_break(p));
    out
}

/// `n`'s digits as letters (`k` for 0 to `t` for 9): distinct words for tests' filler prose,
/// which machine-text rules would refuse as identifiers if they held digits.
#[cfg(test)]
pub(crate) fn letters(n: impl std::fmt::Display) -> String {
    n.to_string().chars().map(|c| c.to_digit(10).map_or(c, |d| (b'k' + d as u8) as char)).collect()
}

/// Whether a paragraph is only a scene break (`* * *`, `***`, `---`, `~`, `#`, `⁂`).
fn is_scene_break(p: &str) -> bool {
    p.chars().all(|c| c.is_whitespace() || "*-_~#=•·⁂◆".contains(c))
}

/// Number of words of `text`, scene breaks excluded.
pub fn word_count(text: &str) -> usize {
    paragraphs(text).iter().map(|p| p.split_whitespace().count()).sum()
}

/// `text` lowercased, every run of characters that are not letters or digits made one space,
/// trimmed: two paragraphs that differ only in case, punctuation or spacing normalise alike.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars() {
        // ASCII first: the same answer as the Unicode tables, without a table lookup.
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            space = false;
        } else if !c.is_ascii() && c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Abbreviations after which a full stop does not end a sentence.
#[rustfmt::skip]
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "sr", "jr", "prof", "capt", "gen", "lt", "col", "sgt", "mt",
    "vs", "etc", "no", "fig", "rev", "hon", "messrs", "mme", "mlle",
];

/// The sentences of `paragraph`: cut after `.`, `!`, `?` or `…` (and any closing quotes or
/// brackets) when whitespace follows, except after a common abbreviation or an initial.
pub fn sentences(paragraph: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = paragraph.char_indices().collect();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if matches!(c, '.' | '!' | '?' | '…') {
            let mut j = i + 1;
            while j < chars.len() && matches!(chars[j].1, '.' | '!' | '?' | '…') {
                j += 1;
            }
            while j < chars.len() && matches!(chars[j].1, '"' | '\'' | '”' | '’' | ')' | ']' | '»')
            {
                j += 1;
            }
            let end = chars.get(j).map_or(paragraph.len(), |(b, _)| *b);
            let at_break = j >= chars.len() || chars[j].1.is_whitespace();
            if at_break && !(c == '.' && j == i + 1 && is_abbreviation(&paragraph[..at])) {
                let s = paragraph[start..end].trim();
                if !s.is_empty() {
                    out.push(s);
                }
                start = end;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    let rest = paragraph[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Whether the text before a full stop ends with an abbreviation or a single capital (an initial).
fn is_abbreviation(before: &str) -> bool {
    let word: String = before
        .chars()
        .rev()
        .take_while(|c| c.is_alphabetic())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let mut cs = word.chars();
    match (cs.next(), cs.next()) {
        (Some(c), None) => c.is_uppercase(),
        (Some(_), Some(_)) => ABBREVIATIONS.contains(&word.to_lowercase().as_str()),
        _ => false,
    }
}

/// One word of a sentence with what the checks need to know about its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    /// The word as written (`Tobin's`).
    pub(crate) raw: &'a str,
    /// The word without a possessive `'s` (`Tobin`).
    pub(crate) base: &'a str,
    /// `base` lowercased.
    pub(crate) lower: String,
    /// First word of a sentence, of a quotation, or after a colon: capitalised by grammar.
    pub(crate) start: bool,
    /// Inside quotation marks (dialogue).
    pub(crate) quoted: bool,
    /// Only whitespace separates it from the previous word (no comma, quote or dash between).
    pub(crate) adjacent: bool,
    /// Written with a possessive `'s`.
    pub(crate) possessive: bool,
}

impl Token<'_> {
    /// Whether the word is capitalised like a proper noun: an upper-case letter followed by at
    /// least one lower-case letter (not `I`, not `NASA`), letters, hyphens and apostrophes only.
    pub(crate) fn capitalised(&self) -> bool {
        let mut cs = self.base.chars();
        cs.next().is_some_and(char::is_uppercase)
            && self.base.chars().skip(1).any(char::is_lowercase)
            && self.base.chars().all(|c| c.is_alphabetic() || matches!(c, '-' | '\'' | '’'))
    }

    /// Whether the word is written all in lower case.
    pub(crate) fn lowercase(&self) -> bool {
        self.base.chars().any(char::is_alphabetic) && !self.base.chars().any(char::is_uppercase)
    }
}

/// The words of one sentence (letters and digits, with inner apostrophes and hyphens).
pub(crate) fn tokens(sentence: &str) -> Vec<Token<'_>> {
    let chars: Vec<(usize, char)> = sentence.char_indices().collect();
    let mut out = Vec::new();
    let mut in_quote = false;
    let mut pending_start = true;
    let mut clean_gap = true;
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c.is_alphanumeric() {
            let mut j = i + 1;
            while j < chars.len() {
                let d = chars[j].1;
                let joins = matches!(d, '\'' | '’' | '-')
                    && chars.get(j + 1).is_some_and(|(_, n)| n.is_alphanumeric());
                if d.is_alphanumeric() || joins {
                    j += 1;
                } else {
                    break;
                }
            }
            let end = chars.get(j).map_or(sentence.len(), |(b, _)| *b);
            let raw = &sentence[at..end];
            let base = ["'s", "’s", "'S", "’S"]
                .iter()
                .find_map(|s| raw.strip_suffix(s))
                .filter(|b| !b.is_empty())
                .unwrap_or(raw);
            out.push(Token {
                raw,
                base,
                lower: base.to_lowercase(),
                start: pending_start,
                quoted: in_quote,
                adjacent: clean_gap && !out.is_empty(),
                possessive: base.len() < raw.len(),
            });
            pending_start = false;
            clean_gap = true;
            i = j;
            continue;
        }
        let prev = i.checked_sub(1).map(|k| chars[k].1);
        let next = chars.get(i + 1).map(|(_, n)| *n);
        match c {
            '"' => {
                in_quote = !in_quote;
                if in_quote {
                    pending_start = true;
                }
            }
            '“' | '‘' | '«' => {
                in_quote = true;
                pending_start = true;
            }
            '”' | '»' => in_quote = false,
            '’' if in_quote => in_quote = false,
            '\'' => {
                let opens = prev.is_none_or(|p| p.is_whitespace() || p == '(')
                    && next.is_some_and(char::is_alphanumeric);
                if opens {
                    in_quote = true;
                    pending_start = true;
                } else if in_quote {
                    in_quote = false;
                }
            }
            ':' => pending_start = true,
            _ => {}
        }
        if !c.is_whitespace() {
            clean_gap = false;
        }
        i += 1;
    }
    out
}

/// `s` cut to at most `max` characters (on a character boundary), with `…` when cut.
pub fn snippet(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", s[..at].trim_end()),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_are_runs_of_lines_without_scene_breaks() {
        let text = "One line.\nSame paragraph.\n\n\n* * *\n\n  Two.  \r\n\r\n---\n";
        assert_eq!(paragraphs(text), vec!["One line.\nSame paragraph.", "Two."]);
        assert_eq!(word_count(text), 5);
        assert_eq!(paragraphs("..."), vec!["..."]);
    }

    #[test]
    fn normalising_ignores_case_punctuation_and_spacing() {
        assert_eq!(normalise("  \"Well,\"  she SAID —\nwell!  "), "well she said well");
        assert_eq!(normalise("Well she said, well."), normalise("well — she said; WELL"));
    }

    #[test]
    fn sentences_end_at_terminal_punctuation_outside_abbreviations() {
        let s = sentences("\"Go!\" Mr. Vell said. J. R. Thorne waited… Then? Yes.");
        assert_eq!(s, vec!["\"Go!\"", "Mr. Vell said.", "J. R. Thorne waited…", "Then?", "Yes."]);
    }

    #[test]
    fn tokens_know_quotes_starts_and_possessives() {
        let t = tokens("\"Come,\" Tobin's sister said: Mara waited");
        let words: Vec<&str> = t.iter().map(|t| t.base).collect();
        assert_eq!(words, vec!["Come", "Tobin", "sister", "said", "Mara", "waited"]);
        assert!(t[0].start && t[0].quoted);
        assert!(!t[1].start && !t[1].quoted && !t[1].adjacent && t[1].possessive);
        assert!(t[2].adjacent && t[3].adjacent);
        assert!(t[4].start && !t[4].adjacent);
        assert!(t[1].capitalised() && !t[2].capitalised());
        let t = tokens("'Go,' said O'Brien, who didn't.");
        assert!(t[0].quoted && !t[1].quoted);
        assert_eq!(t[2].base, "O'Brien");
        assert!(t[2].capitalised());
        assert_eq!(t[4].base, "didn't");
    }

    #[test]
    fn snippets_are_cut_on_character_boundaries() {
        assert_eq!(snippet("héllo wörld", 5), "héllo…");
        assert_eq!(snippet("short", 80), "short");
    }
}
