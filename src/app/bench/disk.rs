//! Where the bench's books are written ([`books_dir`]), and what creating a file costs there,
//! measured in the same run ([`create_us`]).
//!
//! Assembly creates 14 files and 2 directories a book, so the file system is part of every
//! figure, and its cost is not a constant of the machine: right after many files were deleted
//! (the previous bench run's books, a build), ext4 passes over each recently freed inode when it
//! allocates one (`find_inode_bit`, `recently_deleted`), and a file then took 400-550 us of
//! kernel time to create where it takes about 11 us on tmpfs (BENCHMARKS.md, 2026-12-06). The
//! line this prints says which of the two a run had.

use std::path::Path;
use std::time::Instant;

/// Files created for the figure.
pub(super) const FILES: usize = 64;

/// Bytes of each: a short chapter file.
const BYTES: usize = 3_000;

/// Microseconds to create and write one file in a new directory under `dir`, the mean of
/// [`FILES`]. The files stay: they go with `dir` (the run's own temporary directory), so the
/// measure deletes nothing that would slow what comes after it.
pub(super) fn create_us(dir: &Path) -> std::io::Result<f64> {
    let scratch = dir.join(".file-system-baseline");
    std::fs::create_dir_all(&scratch)?;
    let text = vec![b'x'; BYTES];
    let started = Instant::now();
    for i in 0..FILES {
        std::fs::write(scratch.join(format!("{i:02}.md")), &text)?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / FILES as f64)
}

/// The run's temporary directory of books: under `out` when given, else in memory
/// (`/dev/shm`) where the system has it, else in the system's temporary directory.
///
/// Not the disk by default: a run removes its few thousand files at the end, and for the next
/// minutes ext4 then takes 25 to 50 times longer to create a file (it passes over each recently
/// freed inode; 400-550 us a file against 22 us after five idle minutes, and 11 us on tmpfs;
/// BENCHMARKS.md, 2026-12-06). On the disk, runs close together measured the previous run's
/// clean-up. `--out` puts the books on a disk to measure it; the run prints what creating a
/// file costs where they went.
pub(super) fn books_dir(out: Option<&Path>) -> anyhow::Result<tempfile::TempDir> {
    let made = |dir: &Path| tempfile::Builder::new().prefix("scriptorium-bench-").tempdir_in(dir);
    match out {
        Some(dir) => made(dir).map_err(|e| {
            anyhow::anyhow!(
                "--out {}: cannot make the run's directory of books: {e}",
                dir.display()
            )
        }),
        None => made(Path::new("/dev/shm"))
            .or_else(|_| tempfile::tempdir())
            .map_err(|e| anyhow::anyhow!("cannot make the run's directory of books: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_creates_its_files_and_keeps_them() {
        let tmp = tempfile::tempdir().unwrap();
        let us = create_us(tmp.path()).unwrap();
        assert!(us > 0.0);
        let made = std::fs::read_dir(tmp.path().join(".file-system-baseline")).unwrap().count();
        assert_eq!(made, FILES);
        // A second measure in the same place rewrites the same files.
        create_us(tmp.path()).unwrap();
        let made = std::fs::read_dir(tmp.path().join(".file-system-baseline")).unwrap().count();
        assert_eq!(made, FILES);
    }

    #[test]
    fn the_books_go_under_out_when_given_and_a_missing_out_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let books = books_dir(Some(tmp.path())).unwrap();
        assert_eq!(books.path().parent(), Some(tmp.path()));
        let missing = tmp.path().join("missing");
        let err = books_dir(Some(&missing)).unwrap_err().to_string();
        assert!(err.starts_with("--out ") && err.contains("missing"), "{err}");
        // Without `--out`: memory where the system has it, else the temporary directory.
        let default = books_dir(None).unwrap();
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            assert_eq!(default.path().parent(), Some(shm));
        } else {
            assert_eq!(default.path().parent(), Some(std::env::temp_dir().as_path()));
        }
    }

    #[test]
    fn a_place_that_cannot_be_written_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        assert!(create_us(&file).is_err());
    }
}
