//! Machine text: what a program or a markup language writes, never a storyteller. URLs, e-mail
//! addresses, identifiers that mix letters and digits or join words with `_`, markup (tags,
//! `<![CDATA[`, entities), JSON and template braces, `key: value` lines whatever their quoting
//! (`title : \`X\``, `text:'...'`, `summary :`), and lines that are mostly punctuation.
//!
//! Judged by shape, not by a list of phrases: prose has none of these shapes (a line of prose
//! may hold a colon, a bracket or a number, and those stay).

/// The JSON keys of every answer kind: a line opening with one of them and a colon is a field
/// written out, not prose.
#[rustfmt::skip]
pub const FIELD_NAMES: &[&str] = &[
    "title", "logline", "description", "themes", "summary", "scenes", "scene_text", "text",
    "content", "heading", "characters", "continuity", "emotional_beat", "internal_conflict",
    "external_conflict", "motivations", "relationships", "threads_opened", "threads_resolved",
    "whereabouts", "verdict", "scores", "suggestions", "issues", "changes", "sections",
    "chapters", "prose", "json", "output", "answer", "response",
];

/// Why the whole `line` is machine text, if it is: markup, braces, a `key: value` line or a
/// line mostly of punctuation.
pub fn machine_line(line: &str) -> Option<&'static str> {
    let t = line.trim();
    if t.is_empty() {
        return None;
    }
    if has_markup(t) {
        return Some("markup");
    }
    if t.contains(['{', '}']) {
        return Some("JSON or template braces");
    }
    if key_value(t) {
        return Some("a key: value line");
    }
    let marks = t.chars().filter(|c| !c.is_whitespace()).count();
    let words = t.chars().filter(|c| c.is_alphanumeric()).count();
    if marks >= 2 && words * 2 < marks {
        return Some("a line mostly of punctuation");
    }
    None
}

/// Why `text` holds a machine token, if it does: a URL, an e-mail address or an identifier.
pub fn machine_token(text: &str) -> Option<&'static str> {
    text.split_whitespace().find_map(|raw| {
        let w = raw.trim_matches(|c: char| !c.is_alphanumeric() && c != '_' && c != '/');
        if w.is_empty() || !token_shaped(w) {
            return None;
        }
        let lower = w.to_lowercase();
        if lower.contains("://") || lower.starts_with("www.") || has_domain(&lower) {
            return Some("a URL");
        }
        if is_email(w) {
            return Some("an e-mail address");
        }
        is_identifier(w).then_some("an identifier")
    })
}

/// Everything of `line` before its first machine token, trimmed; all of it when it has none.
pub fn before_machine_token(line: &str) -> &str {
    let mut end = line.len();
    let mut at = 0;
    for raw in line.split_whitespace() {
        let start = at + line[at..].find(raw).unwrap_or(0);
        if machine_token(raw).is_some() {
            end = start;
            break;
        }
        at = start + raw.len();
    }
    line[..end].trim_end_matches(|c: char| c.is_whitespace() || matches!(c, ',' | ':' | ';' | '-'))
}

/// Whether `w` could be a machine token at all: a URL needs `.`, `:` or `/`, an e-mail address
/// `@`, an identifier `_` or three digits. Most words of prose have none, and are passed over
/// without the checks below (which allocate).
fn token_shaped(w: &str) -> bool {
    let mut digits = 0;
    for b in w.bytes() {
        match b {
            b'.' | b':' | b'/' | b'@' | b'_' => return true,
            b'0'..=b'9' => digits += 1,
            _ => {}
        }
    }
    digits >= 3
}

/// `a.com/`, `gitter.im/x`: a host name with a path, written without its scheme.
fn has_domain(lower: &str) -> bool {
    const TLDS: &[&str] = &[".com", ".org", ".net", ".io", ".im", ".dev", ".gov", ".edu", ".ai"];
    TLDS.iter().any(|t| {
        lower.find(t).is_some_and(|i| {
            let after = &lower[i + t.len()..];
            i > 0 && (after.is_empty() || after.starts_with('/'))
        })
    })
}

fn is_email(w: &str) -> bool {
    let Some((user, host)) = w.split_once('@') else { return false };
    !user.is_empty()
        && user.chars().all(|c| c.is_alphanumeric() || "._+-".contains(c))
        && host.split('.').filter(|p| !p.is_empty()).count() >= 2
        && host.chars().all(|c| c.is_alphanumeric() || ".-".contains(c))
}

/// `soul_219544676`, `RIA_16849-CACDA`, `adzirak-128974565`: words joined with `_`, or letters
/// mixed with three digits or more. Ordinals, decades and units (`21st`, `1920s`, `500km`)
/// are prose.
fn is_identifier(w: &str) -> bool {
    let inner = w.trim_matches('_');
    if inner.contains('_') && inner.chars().any(char::is_alphanumeric) {
        return true;
    }
    let digits = inner.chars().filter(char::is_ascii_digit).count();
    let letters = inner.chars().filter(|c| c.is_alphabetic()).count();
    if digits < 3 || letters == 0 {
        return false;
    }
    let number: String =
        inner.chars().take_while(|c| c.is_ascii_digit() || matches!(c, ',' | ':' | '.')).collect();
    let unit = &inner[number.len()..];
    let prose_unit = !number.is_empty()
        && unit.len() <= 3
        && unit.chars().all(|c| c.is_ascii_lowercase())
        && !unit.is_empty();
    !prose_unit
}

/// Tags (`<p>`, `</div>`, `<br/>`), `<![CDATA[`, `]]>`, `<!--` and HTML entities.
fn has_markup(t: &str) -> bool {
    // Every mark below holds `<`, `>` or `&`: a line with none of them is passed over at once.
    if !t.bytes().any(|b| matches!(b, b'<' | b'>' | b'&')) {
        return false;
    }
    if ["<![", "]]>", "<!--", "-->", "&lt;", "&gt;", "&amp;", "&quot;", "&#"]
        .iter()
        .any(|m| t.contains(m))
    {
        return true;
    }
    let b = t.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b'<'
            && b.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, b'/' | b'?'))
            && t[i..].contains('>')
    })
}

/// `title : \`X\``, `text:'...'`, `"name": "Ann"`, `summary :`, `Title: The Gate`: a key (one
/// identifier, possibly quoted) and a colon, written as a program writes a field: a space before
/// the colon, a quoted key or value, nothing after it, or a key that is a field of an answer.
pub fn key_value(line: &str) -> bool {
    key_value_split(line).is_some()
}

/// The value of a `key: value` line (see [`key_value`]), without its quotes; empty when none.
pub fn key_value_split(line: &str) -> Option<&str> {
    let t = line.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, '*' | '-' | '>' | '#' | '[' | '{' | ',')
    });
    let opened = t.starts_with(['"', '\'', '`']);
    let t = t.trim_start_matches(['"', '\'', '`']);
    let key_len = t.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(t.len());
    if key_len == 0 {
        return None;
    }
    let key = &t[..key_len];
    let rest = &t[key_len..];
    let unquoted = rest.trim_start_matches(['"', '\'', '`']);
    let quoted = opened && unquoted.len() < rest.len();
    let spaced = unquoted.starts_with([' ', '\t']);
    let value = unquoted.trim_start().strip_prefix(':')?;
    if value.starts_with("//") {
        return None;
    }
    let value = value.trim();
    let value_quoted = value.starts_with(['"', '\'', '`', '[', '<']);
    let lower = key.to_lowercase();
    let field = FIELD_NAMES.contains(&lower.as_str());
    let code_key = key.contains('_') || key.chars().any(|c| c.is_ascii_digit());
    // `Dream:` alone on its line: a label with nothing after it.
    let bare = value.is_empty()
        && !rest.trim_start_matches(['"', '\'', '`', ' ', '\t', ':']).contains(' ');
    if quoted || spaced || value_quoted || field || code_key || bare {
        Some(value.trim_matches(|c: char| matches!(c, '"' | '\'' | '`' | ',')).trim())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_a_program_wrote_are_machine_text() {
        for line in [
            "text:<![CDATARIA_16849-CACDA-4456]>",
            "text:'soul_219544676}'",
            "content}",
            "title : `The Salt Harbour`",
            "summary :",
            "\"name\": \"Ann\"",
            "Title: The Salt Harbour",
            "<p>She ran.</p>",
            "}}]",
            "\"...\",",
            "Dream:",
        ] {
            assert!(machine_line(line).is_some(), "{line}");
        }
    }

    #[test]
    fn tokens_a_program_wrote_are_found() {
        for text in [
            "heroes\tadzirak-128974565_https://github.com/x",
            "See https://gitter.com/Lilun//ElaraTheUnbounded_https:",
            "write to elara@harbour.org today",
            "the soul_219544676 stirred",
            "visit gitter.im/lilun now",
        ] {
            assert!(machine_token(text).is_some(), "{text}");
        }
        assert_eq!(before_machine_token("heroes\tadzirak-128974565_https://x.com"), "heroes");
    }

    #[test]
    fn prose_with_colons_brackets_and_numbers_is_not_machine_text() {
        for line in [
            "The note said only: come alone.",
            "The sign read [closed], and the door stayed shut.",
            "\"Yes,\" she said: 'the tide.'",
            "In the 1920s the 21st regiment marched 500km north.",
            "Silence: the kind that fills a house after a funeral.",
            "At 3:15 the bell rang; at 4:00 it rang again.",
            "She counted: one, two, three.",
            "The B-52 roared over the harbour at dawn.",
            "\"...and then?\" he asked.",
            "Mr. Vell's well-kept ledger lay open.",
        ] {
            assert_eq!(machine_line(line), None, "{line}");
            assert_eq!(machine_token(line), None, "{line}");
        }
    }
}
