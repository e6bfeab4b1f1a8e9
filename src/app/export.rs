//! `scriptorium export BOOK`: a done book's EPUB or Markdown manuscript, rebuilt from its
//! directory's `book.json` or from its record in the NATS books bucket.

use anyhow::Context as _;
use scriptorium_coordinator::assembly::{self, Publication, epub};
use scriptorium_coordinator::record::{self, Status, StepStatus};
use std::path::{Path, PathBuf};

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `book.epub`, the EPUB 3 edition.
    Epub,
    /// `manuscript.md`, the Markdown manuscript.
    Md,
}

impl Format {
    /// The file name the format is written under, as in a book directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Epub => "book.epub",
            Format::Md => "manuscript.md",
        }
    }
}

/// Writes `book`'s file in `format` into `out` (default: the book's directory, or the current
/// directory for a book id) and returns its path. `book` is a book directory when one exists
/// at that path, otherwise the id of a book in the books bucket of the NATS server at `nats`.
pub async fn export(
    book: &str,
    format: Format,
    out: Option<PathBuf>,
    nats: &str,
) -> anyhow::Result<PathBuf> {
    let dir = Path::new(book);
    let (publication, default_out) = if dir.is_dir() {
        (from_dir(dir)?, dir.to_path_buf())
    } else if book.contains(std::path::MAIN_SEPARATOR) || dir.exists() {
        anyhow::bail!("{book} is not a book directory");
    } else {
        (from_bucket(nats, book).await?, PathBuf::from("."))
    };
    let bytes = match format {
        Format::Epub => epub::render(&publication)?,
        Format::Md => assembly::manuscript(&publication).into_bytes(),
    };
    let out = out.unwrap_or(default_out);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(format.file_name());
    // Written beside and renamed: a reader never sees half a file.
    let partial = out.join(format!(".{}.partial", format.file_name()));
    std::fs::write(&partial, &bytes).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The publication of the book written in `dir`.
fn from_dir(dir: &Path) -> anyhow::Result<Publication> {
    let file = dir.join("book.json");
    let bytes = std::fs::read(&file).with_context(|| {
        format!("{} is not a book directory: cannot read {}", dir.display(), file.display())
    })?;
    Publication::from_book_json(&bytes).with_context(|| file.display().to_string())
}

/// The publication of the done book `id`, read from the books and outputs buckets.
async fn from_bucket(nats: &str, id: &str) -> anyhow::Result<Publication> {
    let bus = super::connect_tool(nats, "scriptorium-export").await?;
    let rec = record::load_book(&bus, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no book directory and no book with id {id}"))?;
    if rec.state != Status::Done {
        let state = format!("{:?}", rec.state).to_lowercase();
        anyhow::bail!("book {id} is {state}: only a done book can be exported");
    }
    // A done step whose output is gone from the store comes back pending from the load.
    let lost: Vec<&str> = rec
        .steps
        .iter()
        .filter(|(_, s)| s.status != StepStatus::Done)
        .map(|(k, _)| k.as_str())
        .collect();
    if !lost.is_empty() {
        anyhow::bail!("book {id}: the stored outputs of {} are missing", lost.join(", "));
    }
    Ok(Publication::from_record(&rec))
}
