//! A recording HTTP proxy: forwards every request to a server and keeps each exchange, so that a
//! test can read what the engine sent (messages, `max_tokens`) and what the server answered
//! (status, its own token counts).
//!
//! One request per connection (`Connection: close` both ways), bodies by `Content-Length`, as
//! the worker's HTTP client and the servers under test (llama-cpp-python, the sim server) send
//! them.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request and its answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// `GET`, `POST`...
    pub method: String,
    /// The request's path.
    pub path: String,
    /// The request's headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The request's body as JSON (`Null` when it is not JSON).
    pub body: Value,
    /// The answer's HTTP status.
    pub status: u16,
    /// The answer's body as JSON (`Null` when it is not JSON).
    pub answer: Value,
}

impl Exchange {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The text of the message with `role` in a chat request.
    pub fn message(&self, role: &str) -> &str {
        self.body["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["role"] == role))
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
    }
}

/// The proxy, listening on a free loopback port for as long as the test runs.
pub struct Recorder {
    /// `host:port` it listens on.
    pub addr: String,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl Recorder {
    /// A proxy in front of `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the recorder");
        let addr = listener.local_addr().expect("its address").to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (upstream, kept) = (upstream.to_string(), log.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, log) = (upstream.clone(), kept.clone());
                std::thread::spawn(move || {
                    if let Ok(x) = forward(client, &upstream) {
                        log.lock().unwrap().push(x);
                    }
                });
            }
        });
        Recorder { addr, log }
    }

    /// The OpenAI base URL through the proxy.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every exchange so far, in the order the answers came.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }

    /// The chat completion requests so far.
    pub fn chats(&self) -> Vec<Exchange> {
        self.exchanges().into_iter().filter(|x| x.path.ends_with("/chat/completions")).collect()
    }
}

/// Reads one HTTP message: its head (up to the blank line) and a body of `Content-Length`.
fn read_message(s: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((head, body))
}

/// A head's lines other than `Connection:` (the proxy closes every connection itself).
fn head_lines(head: &str) -> impl Iterator<Item = &str> {
    head.split("\r\n").filter(|l| {
        !l.split_once(':').is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"))
    })
}

/// Forwards one request from `client` to `upstream` and the answer back.
fn forward(mut client: TcpStream, upstream: &str) -> std::io::Result<Exchange> {
    let (head, body) = read_message(&mut client)?;
    let mut up = TcpStream::connect(upstream)?;
    // A real model may take minutes for one answer.
    up.set_read_timeout(Some(Duration::from_secs(1800)))?;
    for line in head_lines(&head) {
        write!(up, "{line}\r\n")?;
    }
    write!(up, "Connection: close\r\n\r\n")?;
    up.write_all(&body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(answer.len());
    let answer_head = String::from_utf8_lossy(&answer[..end]).to_string();
    let answer_body = answer.get(end + 4..).unwrap_or_default();
    for line in head_lines(&answer_head) {
        write!(client, "{line}\r\n")?;
    }
    write!(client, "Connection: close\r\n\r\n")?;
    client.write_all(answer_body)?;
    client.flush()?;

    let mut request_line = head.split("\r\n").next().unwrap_or("").split(' ');
    let (method, path) = (request_line.next(), request_line.next());
    let chunked = answer_head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let answer_text = String::from_utf8_lossy(answer_body);
    let answer_text = if chunked { super::dechunk(&answer_text) } else { answer_text.into_owned() };
    Ok(Exchange {
        method: method.unwrap_or("").to_string(),
        path: path.unwrap_or("").to_string(),
        headers: head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status: answer_head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0),
        answer: serde_json::from_str(&answer_text).unwrap_or(Value::Null),
    })
}
