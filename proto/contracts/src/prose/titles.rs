//! Titles, loglines and names: a logline that is the title (or little more), chapter titles
//! an earlier chapter has, and a character's name that is no name (`Elara the most skilled
//! mn`). Refused at the concept, outline and cast, and reported by `check` on any book.

use super::text::normalise;
use super::{Finding, Rule};

/// Least words a logline has besides the title's.
pub const MIN_LOGLINE_WORDS: usize = 4;

/// Most words of a name, particles (`of`, `van`, `the`) not counted.
pub const MAX_NAME_WORDS: usize = 4;

/// Lowercase words a name may hold: particles of names and epithets.
#[rustfmt::skip]
const PARTICLES: &[&str] = &[
    "of", "the", "de", "da", "di", "del", "della", "der", "den", "du", "la", "le", "van", "von",
    "bin", "ibn", "al", "el", "ter", "zu", "y", "and",
];

/// Whether `logline` is the book's `title` or little more: the same words after normalising,
/// or fewer than [`MIN_LOGLINE_WORDS`] words once the title's are taken out.
pub fn logline_is_title(title: &str, logline: &str) -> bool {
    let (t, l) = (normalise(title), normalise(logline));
    if t.is_empty() {
        return false;
    }
    let rest = l.replacen(&t, " ", 1);
    l == t || (l.contains(&t) && rest.split_whitespace().count() < MIN_LOGLINE_WORDS)
}

/// The finding on a concept whose logline is its title (see [`logline_is_title`]).
pub fn logline_finding(title: &str, logline: &str) -> Option<Finding> {
    logline_is_title(title, logline).then(|| {
        Finding::in_field(
            Rule::LoglineIsTitle,
            0,
            "concept.logline",
            logline,
            "the logline only repeats the book's title: write one sentence on who wants what \
             and what stands in the way"
                .to_string(),
        )
    })
}

/// For each title of `titles` (in chapter order) that an earlier one has too (after
/// normalising): its index and the earlier one's.
pub fn repeated_titles(titles: &[&str]) -> Vec<(usize, usize)> {
    let norm: Vec<String> = titles.iter().map(|t| normalise(t)).collect();
    (0..norm.len())
        .filter_map(|i| {
            let first = norm[..i].iter().position(|t| !t.is_empty() && *t == norm[i])?;
            Some((i, first))
        })
        .collect()
}

/// The findings on outline chapter titles an earlier chapter has (chapter numbers 1-based).
pub fn repeated_title_findings(titles: &[&str]) -> Vec<Finding> {
    repeated_titles(titles)
        .into_iter()
        .map(|(i, first)| {
            Finding::in_field(
                Rule::RepeatedTitle,
                i as u32 + 1,
                &format!("outline.chapters[{i}].title"),
                titles[i],
                format!(
                    "chapter {}'s title repeats chapter {}'s: give every chapter a title of its own",
                    i + 1,
                    first + 1
                ),
            )
        })
        .collect()
}

/// Why `name` is not a person's name, if it is not: words of letters (and `-`, `'`, `.`) only,
/// each capitalised but for particles (`of`, `the`, `van`), at most [`MAX_NAME_WORDS`] of them.
pub fn not_a_name(name: &str) -> Option<&'static str> {
    let words: Vec<&str> = name.split_whitespace().collect();
    if words.is_empty() {
        return Some("it is empty");
    }
    let ok_char = |c: char| c.is_alphabetic() || matches!(c, '-' | '\'' | '’' | '.');
    if words.iter().any(|w| !w.chars().all(ok_char)) {
        return Some("it holds characters no name has");
    }
    let proper: Vec<&&str> =
        words.iter().filter(|w| !PARTICLES.contains(&w.to_lowercase().as_str())).collect();
    if proper.is_empty() || !words[0].starts_with(char::is_uppercase) {
        return Some("it does not start with a capitalised name");
    }
    if proper.iter().any(|w| !w.starts_with(char::is_uppercase)) {
        return Some("it holds words that are not names");
    }
    if proper.len() > MAX_NAME_WORDS {
        return Some("it has too many words");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logline_that_is_the_title_is_found() {
        assert!(logline_is_title("Elara the Unbounded", "Elara the Unbounded."));
        assert!(logline_is_title("The Salt Harbour", "The Salt Harbour: a story"));
        assert!(!logline_is_title(
            "The Salt Harbour",
            "In The Salt Harbour a tide-reader must sell her last tide to save her brother."
        ));
        assert!(!logline_is_title("", "anything"));
        let f = logline_finding("Elara", "elara").expect("a finding");
        assert_eq!((f.rule, f.field.as_deref()), (Rule::LoglineIsTitle, Some("concept.logline")));
    }

    #[test]
    fn repeated_chapter_titles_are_found() {
        let titles = ["The Gate", "Elara the wari ln ela", "Elara the wari ln ela", "the gate!"];
        assert_eq!(repeated_titles(&titles), vec![(2, 1), (3, 0)]);
        let f = repeated_title_findings(&titles);
        assert_eq!(
            f[0].message,
            "chapter 3's title repeats chapter 2's: give every chapter a title of its own"
        );
        assert!(repeated_titles(&["A", "B", ""]).is_empty());
    }

    #[test]
    fn names_that_are_not_names_are_found() {
        for bad in [
            "Elara the most skilled mn",
            "heroes\tadzirak-128974565_https://github.com",
            "mara vell",
            "Agent 47",
            "",
        ] {
            assert!(not_a_name(bad).is_some(), "{bad}");
        }
        for good in [
            "Mara Vell",
            "Elara the Unbounded",
            "Jean-Luc O'Brien",
            "Ludwig van Beethoven",
            "J. R. Tolkien",
            "Wren",
        ] {
            assert_eq!(not_a_name(good), None, "{good}");
        }
    }
}
