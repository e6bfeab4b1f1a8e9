//! `scriptorium model fetch URL` against a local HTTP server shaped like Hugging Face's file
//! server: the SHA-256 in the ETag, `Range` requests answered 206. The first download is cut
//! off half-way; the second resumes where it stopped and checks the whole file's checksum.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// What the server saw: the `Range` header of each request (empty without one).
type Seen = Arc<Mutex<Vec<String>>>;

/// Serves `body` at any path; the first answer stops after `cut` bytes (its Content-Length
/// says the whole file). Returns the address and the requests' ranges.
fn serve(body: Vec<u8>, cut: usize, etag: String) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut range = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = v.trim().trim_end_matches('-').to_string();
                }
            }
            log.lock().unwrap().push(range.clone());
            let from: usize = range.parse().unwrap_or(0);
            let (status, rest) = if from > 0 {
                ("206 Partial Content", &body[from..])
            } else {
                ("200 OK", &body[..])
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: \"{etag}\"\r\nConnection: close\r\n\r\n",
                rest.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let send = if n == 0 { &rest[..cut] } else { rest };
            let _ = stream.write_all(send);
            let _ = stream.flush();
            let _ = stream.shutdown(std::net::Shutdown::Both);
            let _ = reader.read(&mut [0u8; 1]);
        }
    });
    (addr, seen)
}

#[test]
fn a_cut_download_resumes_with_a_range_request_and_is_checked() {
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sha: String = Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
    let (addr, seen) = serve(body.clone(), 1_000_000, sha.clone());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let url = format!("http://{addr}/org/repo/resolve/main/tiny.gguf");
    let first = run(&["model", "fetch", &url, "--dir", &d], &[]);
    assert!(!first.status.success(), "a cut download is not a model");
    assert!(String::from_utf8_lossy(&first.stderr).contains("run again to resume"));
    assert!(!dir.path().join("tiny.gguf").exists());
    let part = std::fs::metadata(dir.path().join("tiny.gguf.part")).unwrap().len();
    assert_eq!(part, 1_000_000, "the partial file keeps what arrived");
    let second = run(&["model", "fetch", &url, "--dir", &d], &[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("resuming tiny.gguf at 1000000 bytes"), "{stderr}");
    let path = String::from_utf8_lossy(&second.stdout).trim().to_string();
    assert_eq!(std::fs::read(&path).unwrap(), body, "the resumed file is the file");
    assert_eq!(*seen.lock().unwrap(), ["", "1000000"], "the second request asked for the rest");
    // Fetched already: checked, not downloaded again; a wrong checksum is refused.
    let again = run(&["model", "fetch", &url, "--dir", &d], &[]);
    assert!(again.status.success());
    assert_eq!(seen.lock().unwrap().len(), 2);
    let wrong = run(&["model", "fetch", &url, "--dir", &d, "--sha256", &"0".repeat(64)], &[]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not 0000"));
}

#[test]
fn a_download_whose_checksum_differs_from_the_servers_is_refused() {
    let body = b"not the model the server vouches for".repeat(1000);
    let (addr, _) = serve(body.clone(), body.len(), "ab".repeat(32));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let o = run(&["model", "fetch", &format!("http://{addr}/x/m.gguf"), "--dir", &d], &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(stderr.contains("does not match"), "{stderr}");
    assert!(!dir.path().join("m.gguf").exists() && !dir.path().join("m.gguf.part").exists());
    let unknown = run(&["model", "fetch", "no-such-model", "--dir", &d], &[]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not a known name"));
}
