//! `scriptorium model fetch NAME|URL`: downloads a GGUF file the way users get them (a Hugging
//! Face `resolve` URL), resuming a partial download with an HTTP `Range` request and checking
//! its SHA-256 (given, or the ETag Hugging Face serves LFS files under) before it is used.

use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

/// Models known by name, with their URLs (their checksum is the ETag the server gives).
pub const KNOWN: &[(&str, &str)] = &[(
    "smollm2",
    "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/resolve/main/smollm2-135m-instruct-q8_0.gguf",
)];

/// Options of `model fetch`.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// A known name or a URL.
    pub what: String,
    /// Directory to write into.
    pub dir: PathBuf,
    /// The file's SHA-256, hex (checked when given; else the server's, when it says).
    pub sha256: Option<String>,
}

/// The default directory of fetched models: `$XDG_CACHE_HOME/scriptorium/models`, else
/// `~/.cache/scriptorium/models`.
pub fn default_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("scriptorium").join("models")
}

/// A 64-digit hex SHA-256 in an ETag (`"abc..."` or `W/"abc..."`), if it is one.
fn etag_sha(etag: &str) -> Option<String> {
    let t = etag.trim().trim_start_matches("W/").trim_matches('"').to_ascii_lowercase();
    (t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit())).then_some(t)
}

/// Downloads the model and returns its path; a complete file already there is checked, not
/// downloaded again.
pub async fn fetch(opts: FetchOptions) -> anyhow::Result<PathBuf> {
    let url = match KNOWN.iter().find(|(n, _)| *n == opts.what) {
        Some((_, url)) => url.to_string(),
        None if opts.what.starts_with("http://") || opts.what.starts_with("https://") => {
            opts.what.clone()
        }
        None => bail!(
            "model {:?}: not a known name ({}) nor an http(s) URL",
            opts.what,
            KNOWN.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
        ),
    };
    let name = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty() && !n.starts_with('.'))
        .with_context(|| format!("{url}: no file name in the URL"))?
        .to_string();
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("creating {}", opts.dir.display()))?;
    let target = opts.dir.join(&name);
    let want = opts.sha256.as_deref().map(str::to_ascii_lowercase);
    if target.is_file() {
        let have = sha256_of(&target)?;
        match &want {
            Some(w) if *w != have => bail!(
                "{}: exists with SHA-256 {have}, not {w} (remove it to download again)",
                target.display()
            ),
            _ => {
                eprintln!("{} is already here (sha256 {have})", target.display());
                return Ok(target);
            }
        }
    }
    scriptorium_worker::tls::install_crypto_provider();
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(20))
        .build()
        .context("http client")?;
    let part = opts.dir.join(format!("{name}.part"));
    let mut have = std::fs::metadata(&part).map_or(0, |m| m.len());
    let mut req = http.get(&url);
    if have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut resp = req.send().await.with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    if !(status.is_success()) {
        bail!("GET {url}: HTTP {status}");
    }
    let resumed = status == reqwest::StatusCode::PARTIAL_CONTENT;
    if !resumed {
        have = 0;
    }
    let served = resp
        .headers()
        .get("x-linked-etag")
        .or_else(|| resp.headers().get(reqwest::header::ETAG))
        .and_then(|v| v.to_str().ok())
        .and_then(etag_sha);
    let total = resp.content_length().map(|n| n + have);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(resumed)
        .write(true)
        .truncate(!resumed)
        .open(&part)
        .with_context(|| format!("opening {}", part.display()))?;
    if resumed {
        eprintln!("resuming {name} at {have} bytes");
    }
    let mut got = have;
    let mut shown = 0u64;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            // A connection cut mid-body: what arrived is kept in the partial file.
            Err(e) => {
                file.flush()?;
                bail!(
                    "{url}: the download stopped at {got} bytes: {e} ({} kept; run again to resume)",
                    part.display()
                );
            }
        };
        file.write_all(&chunk).with_context(|| format!("writing {}", part.display()))?;
        got += chunk.len() as u64;
        if got - shown >= 16 << 20 {
            shown = got;
            match total {
                Some(t) => eprintln!("{name}: {} of {} MiB", got >> 20, t >> 20),
                None => eprintln!("{name}: {} MiB", got >> 20),
            }
        }
    }
    file.flush()?;
    drop(file);
    if let Some(t) = total
        && got != t
    {
        bail!("{url}: the download stopped at {got} of {t} bytes (run again to resume)");
    }
    let sha = sha256_of(&part)?;
    if let Some(expected) = want.or(served)
        && expected != sha
    {
        let _ = std::fs::remove_file(&part);
        bail!("{name}: SHA-256 {sha} does not match {expected}; the partial file was removed");
    }
    std::fs::rename(&part, &target).with_context(|| format!("renaming to {}", target.display()))?;
    eprintln!("{} ({got} bytes, sha256 {sha})", target.display());
    Ok(target)
}

/// The SHA-256 of a file, hex.
fn sha256_of(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_give_a_sha256_only_when_they_are_one() {
        let sha = "a".repeat(64);
        assert_eq!(etag_sha(&format!("\"{sha}\"")), Some(sha.clone()));
        assert_eq!(etag_sha(&format!("W/\"{}\"", sha.to_uppercase())), Some(sha));
        assert_eq!(etag_sha("\"abc\""), None);
        assert_eq!(etag_sha(&"g".repeat(64)), None);
    }
}
