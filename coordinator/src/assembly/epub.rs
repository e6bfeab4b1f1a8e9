//! The EPUB 3 edition of a finished book, `book.epub`: a title page, the navigation document
//! (with an NCX table of contents for EPUB 2 reading systems), one XHTML file per chapter.
//!
//! A few templates in a zip container: `mimetype` first and stored, as the OCF requires, the rest
//! deflated. Every file depends only on the [`Publication`] (dates included: the book's finish
//! time), so the same book always gives the same bytes and `scriptorium export` reproduces the
//! file assembly wrote.

use super::language;
use super::publication::{Publication, SIMULATED_NOTICE};
use scriptorium_contracts::ChapterText;
use std::io::{Cursor, Write as _};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// The media type of an EPUB, the content of its `mimetype` file.
pub const MEDIA_TYPE: &str = "application/epub+zip";

/// The directory of the publication's files inside the container.
const OEBPS: &str = "OEBPS";

const CONTAINER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>
"#;

const STYLE: &str = "body { margin: 0 5%; line-height: 1.5; }
h1 { font-size: 1.5em; text-align: center; margin: 2em 0 1.5em; }
p { margin: 0; text-indent: 1.5em; }
h1 + p, p.scene-break + p { text-indent: 0; }
p.scene-break { text-align: center; text-indent: 0; margin: 1em 0; }
section.titlepage { text-align: center; margin-top: 20%; }
section.titlepage p { text-indent: 0; margin: 1em 0; }
p.author { font-size: 1.2em; }
p.logline, p.notice { font-style: italic; }
nav ol { list-style: none; padding: 0; }
";

/// A chapter's file, id and label.
struct Entry<'a> {
    file: String,
    id: String,
    label: String,
    chapter: &'a ChapterText,
}

/// The EPUB of `book`, as bytes.
pub fn render(book: &Publication) -> std::io::Result<Vec<u8>> {
    let lang = language::tag(&book.language);
    let entries: Vec<Entry<'_>> = book
        .chapters
        .iter()
        .enumerate()
        .map(|(i, c)| Entry {
            file: format!("chapter-{:02}.xhtml", i + 1),
            id: format!("chapter-{:02}", i + 1),
            label: format!("Chapter {}: {}", c.number, c.title.trim()),
            chapter: c,
        })
        .collect();
    let modified = utc(book.finished_ms);
    let stamp = zip::DateTime::from_date_and_time(
        modified.year.clamp(1980, 2107) as u16,
        modified.month,
        modified.day,
        modified.hour,
        modified.minute,
        modified.second,
    )
    .unwrap_or_default();
    let stored = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(stamp);
    let deflated = stored.compression_method(CompressionMethod::Deflated);

    let mut files: Vec<(String, String)> = vec![
        ("META-INF/container.xml".into(), CONTAINER.into()),
        (format!("{OEBPS}/content.opf"), package(book, &lang, &entries, &modified)),
        (format!("{OEBPS}/toc.ncx"), ncx(book, &lang, &entries)),
        (format!("{OEBPS}/nav.xhtml"), nav(&lang, &entries)),
        (format!("{OEBPS}/style.css"), STYLE.into()),
        (format!("{OEBPS}/title.xhtml"), title_page(book, &lang)),
    ];
    for e in &entries {
        files.push((format!("{OEBPS}/{}", e.file), chapter(e, &lang)));
    }

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("mimetype", stored).map_err(std::io::Error::other)?;
    zip.write_all(MEDIA_TYPE.as_bytes())?;
    for (name, text) in files {
        zip.start_file(name, deflated).map_err(std::io::Error::other)?;
        zip.write_all(text.as_bytes())?;
    }
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}

/// `s` as XML text or a double-quoted attribute value (every attribute here is one, so
/// apostrophes stay as they are): markup characters escaped (`"` as a character reference, not
/// the named entity epubcheck points at), and the characters XML 1.0 does not allow (control
/// characters other than tab and line breaks) left out.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The paragraphs of a scene: its blank-line-separated blocks, trimmed, none empty.
pub fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(line.trim());
        }
    }
    if !current.is_empty() {
        out.push(current.join("\n"));
    }
    out
}

/// An XHTML content document.
fn xhtml(lang: &str, title: &str, body: &str) -> String {
    let dir = if language::right_to_left(lang) { " dir=\"rtl\"" } else { "" };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" xml:lang="{lang}" lang="{lang}"{dir}>
<head>
<title>{title}</title>
<link rel="stylesheet" type="text/css" href="style.css"/>
</head>
<body>
{body}</body>
</html>
"#,
        title = escape(title)
    )
}

fn title_page(book: &Publication, lang: &str) -> String {
    let mut body = String::from("<section class=\"titlepage\" epub:type=\"titlepage\">\n");
    body += &format!("<h1>{}</h1>\n", escape(&book.title));
    body += &format!("<p class=\"author\">by {}</p>\n", escape(&book.author));
    if !book.logline.trim().is_empty() {
        body += &format!("<p class=\"logline\">{}</p>\n", escape(book.logline.trim()));
    }
    if book.simulated {
        body +=
            &format!("<p class=\"notice\">{}</p>\n", escape(&SIMULATED_NOTICE.replace('`', "")));
    }
    body += "</section>\n";
    xhtml(lang, &book.title, &body)
}

fn chapter(e: &Entry<'_>, lang: &str) -> String {
    let mut body = format!(
        "<section epub:type=\"chapter\" role=\"doc-chapter\" aria-labelledby=\"{0}-title\">\n",
        e.id
    );
    body += &format!("<h1 id=\"{}-title\">{}</h1>\n", e.id, escape(&e.label));
    let scenes = e.chapter.scenes.iter().map(|s| paragraphs(&s.text)).filter(|p| !p.is_empty());
    for (i, scene) in scenes.enumerate() {
        if i > 0 {
            body += "<p class=\"scene-break\">* * *</p>\n";
        }
        for p in scene {
            body += &format!("<p>{}</p>\n", escape(&p));
        }
    }
    body += "</section>\n";
    xhtml(lang, &e.label, &body)
}

fn nav(lang: &str, entries: &[Entry<'_>]) -> String {
    let mut body = String::from(
        "<nav epub:type=\"toc\" role=\"doc-toc\" id=\"toc\">\n<h1>Contents</h1>\n<ol>\n\
         <li><a href=\"title.xhtml\">Title page</a></li>\n",
    );
    for e in entries {
        body += &format!("<li><a href=\"{}\">{}</a></li>\n", e.file, escape(&e.label));
    }
    body += "</ol>\n</nav>\n";
    body += "<nav epub:type=\"landmarks\" hidden=\"hidden\">\n<h2>Landmarks</h2>\n<ol>\n";
    body += "<li><a epub:type=\"titlepage\" href=\"title.xhtml\">Title page</a></li>\n";
    body += "<li><a epub:type=\"toc\" href=\"nav.xhtml\">Contents</a></li>\n";
    if let Some(first) = entries.first() {
        body +=
            &format!("<li><a epub:type=\"bodymatter\" href=\"{}\">Start</a></li>\n", first.file);
    }
    body += "</ol>\n</nav>\n";
    xhtml(lang, "Contents", &body)
}

fn identifier(book: &Publication) -> String {
    format!("urn:scriptorium:book:{}", book.id)
}

fn package(book: &Publication, lang: &str, entries: &[Entry<'_>], modified: &Utc) -> String {
    let direction = if language::right_to_left(lang) { "rtl" } else { "ltr" };
    let mut meta = format!(
        "    <dc:identifier id=\"book-id\">{}</dc:identifier>\n    <dc:title>{}</dc:title>\n",
        escape(&identifier(book)),
        escape(&book.title)
    );
    meta += &format!("    <dc:creator id=\"author\">{}</dc:creator>\n", escape(&book.author));
    meta += "    <meta refines=\"#author\" property=\"role\" scheme=\"marc:relators\">aut</meta>\n";
    meta += &format!("    <dc:language>{lang}</dc:language>\n");
    if !book.logline.trim().is_empty() {
        meta += &format!("    <dc:description>{}</dc:description>\n", escape(book.logline.trim()));
    }
    meta += &format!("    <dc:date>{}</dc:date>\n", modified.date());
    meta += &format!("    <meta property=\"dcterms:modified\">{}</meta>\n", modified.timestamp());
    meta += "    <meta property=\"schema:accessMode\">textual</meta>\n";
    meta += "    <meta property=\"schema:accessModeSufficient\">textual</meta>\n";
    meta += "    <meta property=\"schema:accessibilityFeature\">structuralNavigation</meta>\n";
    meta += "    <meta property=\"schema:accessibilityFeature\">tableOfContents</meta>\n";
    meta += "    <meta property=\"schema:accessibilityHazard\">none</meta>\n";
    let mut items = String::from(
        "    <item id=\"nav\" href=\"nav.xhtml\" media-type=\"application/xhtml+xml\" properties=\"nav\"/>\n\
         \x20   <item id=\"ncx\" href=\"toc.ncx\" media-type=\"application/x-dtbncx+xml\"/>\n\
         \x20   <item id=\"style\" href=\"style.css\" media-type=\"text/css\"/>\n\
         \x20   <item id=\"title-page\" href=\"title.xhtml\" media-type=\"application/xhtml+xml\"/>\n",
    );
    let mut spine =
        String::from("    <itemref idref=\"title-page\"/>\n    <itemref idref=\"nav\"/>\n");
    for e in entries {
        items += &format!(
            "    <item id=\"{}\" href=\"{}\" media-type=\"application/xhtml+xml\"/>\n",
            e.id, e.file
        );
        spine += &format!("    <itemref idref=\"{}\"/>\n", e.id);
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="book-id" xml:lang="{lang}">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
{meta}  </metadata>
  <manifest>
{items}  </manifest>
  <spine toc="ncx" page-progression-direction="{direction}">
{spine}  </spine>
</package>
"#
    )
}

fn ncx(book: &Publication, lang: &str, entries: &[Entry<'_>]) -> String {
    // Every page of the spine, in its order.
    let front = [("title-page", "title.xhtml", "Title page"), ("nav", "nav.xhtml", "Contents")];
    let pages = front
        .into_iter()
        .map(|(id, file, label)| (id.to_string(), file.to_string(), label.to_string()))
        .chain(entries.iter().map(|e| (e.id.clone(), e.file.clone(), e.label.clone())));
    let mut points = String::new();
    for (i, (id, file, label)) in pages.enumerate() {
        points += &format!(
            "    <navPoint id=\"nav-{id}\" playOrder=\"{order}\">\n      <navLabel><text>{label}</text></navLabel>\n      <content src=\"{file}\"/>\n    </navPoint>\n",
            order = i + 1,
            label = escape(&label),
        );
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1" xml:lang="{lang}">
  <head>
    <meta name="dtb:uid" content="{uid}"/>
    <meta name="dtb:depth" content="1"/>
    <meta name="dtb:totalPageCount" content="0"/>
    <meta name="dtb:maxPageNumber" content="0"/>
  </head>
  <docTitle><text>{title}</text></docTitle>
  <docAuthor><text>{author}</text></docAuthor>
  <navMap>
{points}  </navMap>
</ncx>
"#,
        uid = escape(&identifier(book)),
        title = escape(&book.title),
        author = escape(&book.author)
    )
}

/// A UTC date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Utc {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl Utc {
    /// `YYYY-MM-DD`.
    fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `YYYY-MM-DDThh:mm:ssZ`, the form `dcterms:modified` requires.
    fn timestamp(&self) -> String {
        format!("{}T{:02}:{:02}:{:02}Z", self.date(), self.hour, self.minute, self.second)
    }
}

/// The UTC calendar date and time of `ms` after the Unix epoch (Howard Hinnant's
/// `civil_from_days`).
fn utc(ms: i64) -> Utc {
    let secs = ms.max(0) / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Utc {
        year,
        month,
        day,
        hour: (rest / 3600) as u8,
        minute: (rest % 3600 / 60) as u8,
        second: (rest % 60) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scriptorium_contracts::ProseScene;
    use std::io::Read as _;

    fn scene(text: &str) -> ProseScene {
        ProseScene { heading: "h".into(), text: text.into() }
    }

    fn book() -> Publication {
        Publication {
            id: "b1".into(),
            title: "Salt & <Tides>".into(),
            author: "A. \"N.\" Writer".into(),
            language: "English".into(),
            logline: "Tides are bought.".into(),
            simulated: true,
            finished_ms: 1_700_000_000_000,
            chapters: vec![
                ChapterText {
                    number: 1,
                    title: "The <Wall>".into(),
                    scenes: vec![
                        scene("First & only.\n\nSecond\nline."),
                        scene("  \n"),
                        scene("After the break."),
                    ],
                    ..Default::default()
                },
                ChapterText {
                    number: 2,
                    title: "Lamps".into(),
                    scenes: vec![scene("Bell\u{7} rang.")],
                    ..Default::default()
                },
            ],
        }
    }

    fn unzip(bytes: &[u8]) -> Vec<(String, String, CompressionMethod)> {
        let mut z = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        (0..z.len())
            .map(|i| {
                let mut f = z.by_index(i).unwrap();
                let mut s = String::new();
                f.read_to_string(&mut s).unwrap();
                (f.name().to_string(), s, f.compression())
            })
            .collect()
    }

    #[test]
    fn mimetype_comes_first_and_stored_then_one_file_per_chapter() {
        let files = unzip(&render(&book()).unwrap());
        assert_eq!(files[0], ("mimetype".into(), MEDIA_TYPE.into(), CompressionMethod::Stored));
        let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names[1..],
            [
                "META-INF/container.xml",
                "OEBPS/content.opf",
                "OEBPS/toc.ncx",
                "OEBPS/nav.xhtml",
                "OEBPS/style.css",
                "OEBPS/title.xhtml",
                "OEBPS/chapter-01.xhtml",
                "OEBPS/chapter-02.xhtml"
            ]
        );
        assert!(files[1..].iter().all(|f| f.2 == CompressionMethod::Deflated));
    }

    #[test]
    fn prose_is_escaped_in_paragraphs_with_scene_breaks_between_scenes() {
        let files = unzip(&render(&book()).unwrap());
        let ch1 = &files[7].1;
        assert!(ch1.contains("<h1 id=\"chapter-01-title\">Chapter 1: The &lt;Wall&gt;</h1>"));
        assert!(ch1.contains("<p>First &amp; only.</p>\n<p>Second\nline.</p>\n"));
        // The blank scene gives no break of its own.
        assert_eq!(ch1.matches("scene-break\">").count(), 1);
        assert!(ch1.contains("<p class=\"scene-break\">* * *</p>\n<p>After the break.</p>"));
        assert!(files[8].1.contains("<p>Bell rang.</p>"), "control characters are left out");
        let title = &files[6].1;
        assert!(title.contains("<h1>Salt &amp; &lt;Tides&gt;</h1>"));
        assert!(title.contains("by A. &#34;N.&#34; Writer"));
        assert!(title.contains("simulated model (sim)"));
        let opf = &files[2].1;
        assert!(opf.contains("<dc:language>en</dc:language>"));
        assert!(opf.contains("<meta property=\"dcterms:modified\">2023-11-14T22:13:20Z</meta>"));
    }

    #[test]
    fn a_real_model_book_has_no_notice_and_the_same_book_gives_the_same_bytes() {
        let mut b = book();
        b.simulated = false;
        let bytes = render(&b).unwrap();
        assert!(!unzip(&bytes)[6].1.contains("simulated"));
        assert_eq!(bytes, render(&b).unwrap());
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(utc(0).timestamp(), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000).date(), "2000-02-29");
        assert_eq!(utc(1_700_000_000_000).timestamp(), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn paragraphs_split_on_blank_lines() {
        assert_eq!(paragraphs("a\nb\n \n\n c \n"), vec!["a\nb", "c"]);
        assert!(paragraphs("  \n\n").is_empty());
    }
}
