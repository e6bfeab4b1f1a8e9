//! Fixtures the dialect's unit tests share: captures of a real llama-cpp-python 0.3.36
//! (`worker/tests/fixtures/llama_cpp_python/`) and a chat body to shape.

use serde_json::{Value, json};

/// A capture of a real server: the request sent, the status and body it answered.
pub(super) struct Capture {
    pub(super) request: Value,
    pub(super) status: u16,
    pub(super) body: String,
}

pub(super) fn capture(name: &str) -> Capture {
    let path =
        format!("{}/tests/fixtures/llama_cpp_python/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    Capture {
        request: v["request"].clone(),
        status: v["status"].as_u64().unwrap() as u16,
        body: v["body"].as_str().unwrap().to_string(),
    }
}

pub(super) fn chat_body() -> Value {
    json!({
        "model": "m",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 400,
        "seed": 3,
    })
}
