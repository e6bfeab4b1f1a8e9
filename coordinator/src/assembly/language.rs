//! The BCP 47 tag of a brief's language, for the EPUB's `dc:language` and `xml:lang`.
//!
//! A brief names its language in words (`language = "English"`). [`tag`] looks the name up in
//! [`LANGUAGES`] (case and surrounding spaces ignored), takes a name that already is a tag
//! (`"pt-BR"`, `"en_GB"`) as it is, and falls back to [`UNDETERMINED`]. docs/briefs.md shows
//! the table.

/// Language names, in English and in the language itself, and their BCP 47 tags.
pub const LANGUAGES: &[(&str, &str)] = &[
    ("english", "en"),
    ("british english", "en-GB"),
    ("american english", "en-US"),
    ("french", "fr"),
    ("français", "fr"),
    ("german", "de"),
    ("deutsch", "de"),
    ("spanish", "es"),
    ("español", "es"),
    ("italian", "it"),
    ("italiano", "it"),
    ("portuguese", "pt"),
    ("português", "pt"),
    ("brazilian portuguese", "pt-BR"),
    ("dutch", "nl"),
    ("nederlands", "nl"),
    ("swedish", "sv"),
    ("svenska", "sv"),
    ("norwegian", "no"),
    ("norsk", "no"),
    ("danish", "da"),
    ("dansk", "da"),
    ("finnish", "fi"),
    ("suomi", "fi"),
    ("icelandic", "is"),
    ("polish", "pl"),
    ("polski", "pl"),
    ("czech", "cs"),
    ("čeština", "cs"),
    ("slovak", "sk"),
    ("hungarian", "hu"),
    ("magyar", "hu"),
    ("romanian", "ro"),
    ("română", "ro"),
    ("greek", "el"),
    ("ελληνικά", "el"),
    ("russian", "ru"),
    ("русский", "ru"),
    ("ukrainian", "uk"),
    ("українська", "uk"),
    ("turkish", "tr"),
    ("türkçe", "tr"),
    ("catalan", "ca"),
    ("català", "ca"),
    ("basque", "eu"),
    ("galician", "gl"),
    ("irish", "ga"),
    ("welsh", "cy"),
    ("latin", "la"),
    ("esperanto", "eo"),
    ("arabic", "ar"),
    ("العربية", "ar"),
    ("hebrew", "he"),
    ("עברית", "he"),
    ("persian", "fa"),
    ("farsi", "fa"),
    ("urdu", "ur"),
    ("hindi", "hi"),
    ("हिन्दी", "hi"),
    ("bengali", "bn"),
    ("chinese", "zh"),
    ("mandarin", "zh"),
    ("中文", "zh"),
    ("simplified chinese", "zh-Hans"),
    ("traditional chinese", "zh-Hant"),
    ("japanese", "ja"),
    ("日本語", "ja"),
    ("korean", "ko"),
    ("한국어", "ko"),
    ("vietnamese", "vi"),
    ("tiếng việt", "vi"),
    ("thai", "th"),
    ("indonesian", "id"),
    ("bahasa indonesia", "id"),
    ("malay", "ms"),
    ("swahili", "sw"),
];

/// The tag of a language neither in [`LANGUAGES`] nor written as a tag: BCP 47's "undetermined".
pub const UNDETERMINED: &str = "und";

/// Primary subtags of the languages written right to left (among those of [`LANGUAGES`]).
const RIGHT_TO_LEFT: &[&str] = &["ar", "he", "fa", "ur"];

/// The BCP 47 tag of the language a brief names.
pub fn tag(language: &str) -> String {
    let name = language.trim().to_lowercase();
    if let Some((_, tag)) = LANGUAGES.iter().find(|(n, _)| *n == name) {
        return (*tag).to_string();
    }
    as_tag(language.trim()).unwrap_or_else(|| UNDETERMINED.to_string())
}

/// Whether the language of `tag` is written right to left.
pub fn right_to_left(tag: &str) -> bool {
    let primary = tag.split('-').next().unwrap_or_default();
    RIGHT_TO_LEFT.contains(&primary)
}

/// `s` in the canonical case of a tag when it has the shape of one: a primary language subtag of
/// 2 or 3 letters, then subtags of 1 to 8 letters or digits (`-` or `_` between them). Regions
/// are upper case (`GB`), scripts title case (`Hant`), everything else lower case.
fn as_tag(s: &str) -> Option<String> {
    let mut parts = s.split(['-', '_']);
    let primary = parts.next()?;
    if !(2..=3).contains(&primary.len()) || !primary.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let mut out = primary.to_ascii_lowercase();
    for part in parts {
        if !(1..=8).contains(&part.len()) || !part.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        out.push('-');
        let letters = part.chars().all(|c| c.is_ascii_alphabetic());
        match part.len() {
            2 if letters => out.push_str(&part.to_ascii_uppercase()),
            4 if letters => {
                out.push_str(&part[..1].to_ascii_uppercase());
                out.push_str(&part[1..].to_ascii_lowercase());
            }
            _ => out.push_str(&part.to_ascii_lowercase()),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_tags() {
        assert_eq!(tag("English"), "en");
        assert_eq!(tag("  FRENCH "), "fr");
        assert_eq!(tag("Deutsch"), "de");
        assert_eq!(tag("Brazilian Portuguese"), "pt-BR");
        assert_eq!(tag("日本語"), "ja");
    }

    #[test]
    fn tags_are_kept_in_canonical_case() {
        assert_eq!(tag("en-gb"), "en-GB");
        assert_eq!(tag("pt_BR"), "pt-BR");
        assert_eq!(tag("ZH-hant-tw"), "zh-Hant-TW");
        assert_eq!(tag("es-419"), "es-419");
    }

    #[test]
    fn unknown_names_are_undetermined() {
        assert_eq!(tag("Klingon"), UNDETERMINED);
        assert_eq!(tag("Old Norse"), UNDETERMINED);
        assert_eq!(tag(""), UNDETERMINED);
        assert_eq!(tag("en--gb"), UNDETERMINED);
    }

    #[test]
    fn every_table_entry_is_lowercase_and_a_tag() {
        for (name, t) in LANGUAGES {
            assert_eq!(*name, name.to_lowercase(), "{name}");
            assert_eq!(as_tag(t).as_deref(), Some(*t), "{name}: {t}");
        }
    }

    #[test]
    fn the_table_of_docs_briefs_md_shows_every_entry() {
        let page = include_str!("../../../docs/briefs.md").to_lowercase();
        for (name, t) in LANGUAGES {
            assert!(page.contains(name), "docs/briefs.md lacks {name}");
            assert!(page.contains(&format!("`{}`", t.to_lowercase())), "docs/briefs.md lacks {t}");
        }
    }

    #[test]
    fn scripts_of_arabic_and_hebrew_run_right_to_left() {
        assert!(right_to_left("ar"));
        assert!(right_to_left("he-IL"));
        assert!(!right_to_left("en"));
    }
}
