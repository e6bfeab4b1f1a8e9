//! What a sim server is told to do: latency, faults (scripted or drawn at rates), refusals of
//! structured-output formats, a key to require, a context window and deliberate mistakes.

use scriptorium_contracts::mistake::Mistakes;

/// What the server does with one completion request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    Ok,
    /// Answer with this HTTP status (429 carries `Retry-After` when configured).
    Status(u16),
    /// Wait `hang_secs` before answering, past any sensible client timeout.
    Hang,
    /// Answer 200 with text that holds no readable JSON object.
    Malformed,
    /// Answer 200 with half the answer and `finish_reason` "length".
    Truncated,
    /// Answer 200 with the JSON wrapped in prose and a code fence (extraction reads it).
    Prose,
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ok" => Ok(Fault::Ok),
            "hang" => Ok(Fault::Hang),
            "malformed" => Ok(Fault::Malformed),
            "truncated" => Ok(Fault::Truncated),
            "prose" => Ok(Fault::Prose),
            other => match other.parse::<u16>() {
                Ok(code) if (100..=599).contains(&code) => Ok(Fault::Status(code)),
                _ => Err(format!(
                    "unknown fault {s:?} (ok, hang, malformed, truncated, prose or an HTTP status)"
                )),
            },
        }
    }
}

impl Fault {
    /// The fault's name, as `GET /stats` counts it.
    pub(super) fn name(self) -> String {
        match self {
            Fault::Ok => "ok".into(),
            Fault::Status(s) => s.to_string(),
            Fault::Hang => "hang".into(),
            Fault::Malformed => "malformed".into(),
            Fault::Truncated => "truncated".into(),
            Fault::Prose => "prose".into(),
        }
    }
}

/// How the first outline answers break the brief's bounds, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overgrow {
    /// Three chapters more than asked.
    Chapters,
    /// Thirty scenes in the first chapter.
    Scenes,
}

impl std::str::FromStr for Overgrow {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "chapters" => Ok(Overgrow::Chapters),
            "scenes" => Ok(Overgrow::Scenes),
            _ => Err(format!("unknown overgrowth {s:?} (chapters or scenes)")),
        }
    }
}

/// Which `response_format` requests the server refuses with a 400, like servers without
/// structured output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RejectFormat {
    /// Accept every `response_format`.
    #[default]
    None,
    /// Refuse `json_schema`.
    JsonSchema,
    /// Refuse `json_schema` and `json_object`.
    Any,
    /// Refuse `json_schema` as llama-cpp-python does: HTTP 500 with pydantic's `literal_error`
    /// on `response_format.type` in the message (captured from llama-cpp-python 0.3.36).
    LikeLlamaCppPython,
}

/// Settings of the sim server.
#[derive(Debug, Clone)]
pub struct SimServerConfig {
    /// Fixed latency of each answer, in milliseconds.
    pub latency_ms: u64,
    /// Extra random latency up to this many milliseconds.
    pub jitter_ms: u64,
    /// Seed of the fault and latency draws.
    pub seed: u64,
    /// Share (0..1) of answers that deliberately break a validation rule.
    pub bad_rate: f64,
    /// Share of requests answered 429.
    pub rate_429: f64,
    /// Share of requests answered 500.
    pub rate_500: f64,
    /// Share of requests that hang.
    pub rate_hang: f64,
    /// Share of answers that are malformed.
    pub rate_malformed: f64,
    /// Share of answers that are truncated.
    pub rate_truncated: f64,
    /// `Retry-After` seconds sent with 429 answers (0: no header).
    pub retry_after_secs: u64,
    /// How long a hanging request waits before answering.
    pub hang_secs: u64,
    /// Faults of the first admitted requests (past the key and format checks), in order.
    pub script: Vec<Fault>,
    /// Which `response_format` requests are refused.
    pub reject_response_format: RejectFormat,
    /// The key clients must send (`Authorization: Bearer` or `x-api-key`); none: no check.
    pub require_key: Option<String>,
    /// Error bodies echo the request headers (to test that clients redact them).
    pub echo_headers: bool,
    /// Context window in tokens (prompt and answer together); none: unlimited.
    pub context_window: Option<u64>,
    /// How the first outline answers break the brief's bounds, in order.
    pub overgrow: Vec<Overgrow>,
    /// The mistakes first attempts of chapters make, and how often.
    pub mistakes: Mistakes,
}

impl Default for SimServerConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            jitter_ms: 0,
            seed: 0,
            bad_rate: 0.0,
            rate_429: 0.0,
            rate_500: 0.0,
            rate_hang: 0.0,
            rate_malformed: 0.0,
            rate_truncated: 0.0,
            retry_after_secs: 1,
            hang_secs: 600,
            script: Vec::new(),
            reject_response_format: RejectFormat::None,
            require_key: None,
            echo_headers: false,
            context_window: None,
            overgrow: Vec::new(),
            mistakes: Mistakes::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_names_and_statuses() {
        assert_eq!("429".parse::<Fault>(), Ok(Fault::Status(429)));
        assert_eq!("Hang".parse::<Fault>(), Ok(Fault::Hang));
        assert!("teapot".parse::<Fault>().is_err());
        assert!("999".parse::<Fault>().is_err());
    }
}
