//! The HTTP retry loop shared by the wire protocols: a timeout on every request, exponential
//! backoff with jitter on timeouts, connection errors, 408/409/425/429 and 5xx, and
//! `Retry-After` obeyed up to a cap. Other statuses are handed back at once.

use super::{ModelError, ProviderConfig};
use crate::redact::redact;
use scriptorium_proto::v1::FailureCause;
use std::time::Duration;

/// How one provider retries.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    /// Timeout of one request.
    pub(crate) timeout: Duration,
    /// Retries after the first attempt.
    pub(crate) max_retries: u32,
    /// First backoff.
    pub(crate) backoff: Duration,
    /// Longest backoff.
    pub(crate) max_backoff: Duration,
    /// Longest `Retry-After` obeyed.
    pub(crate) max_retry_after: Duration,
}

impl RetryPolicy {
    pub(crate) fn from_config(cfg: &ProviderConfig) -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
            max_retries: cfg.max_retries,
            backoff: Duration::from_millis(cfg.backoff_ms),
            max_backoff: Duration::from_millis(cfg.max_backoff_ms.max(cfg.backoff_ms)),
            max_retry_after: Duration::from_secs(cfg.max_retry_after_secs),
        }
    }

    /// Backoff before retry number `retry` (1-based): the doubled base, capped, with jitter
    /// over its upper half so parallel agents do not retry in step.
    fn backoff(&self, retry: u32) -> Duration {
        let cap = self
            .backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_backoff)
            .as_millis() as u64;
        // splitmix64 of the clock: spread enough for jitter, no generator to share.
        let mut z = crate::clock_nanos().wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let jitter = z ^ (z >> 31);
        Duration::from_millis(cap / 2 + jitter % (cap / 2 + 1))
    }
}

/// A final answer of the server.
#[derive(Debug)]
pub(crate) struct Reply {
    /// HTTP status: 2xx, or one that is not retried.
    pub(crate) status: u16,
    /// The body.
    pub(crate) body: String,
    /// Retries made before it.
    pub(crate) retries: u32,
}

/// Builds a `reqwest` client with the provider's timeout.
pub(crate) fn client(name: &str, policy: &RetryPolicy) -> Result<reqwest::Client, ModelError> {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(policy.timeout)
        .connect_timeout(policy.timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| ModelError::InvalidConfig(format!("provider '{name}': http client: {e}")))
}

/// Sends the request `build` makes until the server gives a final answer or retries run out.
pub(crate) async fn send(
    policy: &RetryPolicy,
    route: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Reply, ModelError> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let (failure, retry_after, cause) = match build().send().await {
            Ok(resp) => {
                let status = resp.status();
                let retry_after = retry_after(resp.headers(), policy.max_retry_after);
                match resp.text().await {
                    // A refused structured-output dialect is final for this request whatever
                    // its status (llama-cpp-python refuses with 500): the caller asks anew.
                    Ok(body)
                        if !retryable(status.as_u16())
                            || super::dialect::refusal(status.as_u16(), &body).is_some() =>
                    {
                        return Ok(Reply { status: status.as_u16(), body, retries: attempt - 1 });
                    }
                    Ok(body) => (
                        format!("HTTP {status}: {}", server_message(&body)),
                        retry_after,
                        status_cause(status.as_u16()),
                    ),
                    Err(e) => (describe(&e, policy.timeout), None, transport_cause(&e)),
                }
            }
            Err(e) => (describe(&e, policy.timeout), None, transport_cause(&e)),
        };
        let failure = redact(&failure);
        if attempt > policy.max_retries {
            return Err(ModelError::Exhausted {
                route: route.into(),
                attempts: attempt,
                last: failure,
                cause,
            });
        }
        let wait = retry_after.unwrap_or_else(|| policy.backoff(attempt));
        tracing::warn!(
            route = %route,
            attempt,
            wait_ms = wait.as_millis() as u64,
            error = %failure,
            "model call failed, retrying"
        );
        tokio::time::sleep(wait).await;
    }
}

/// Statuses worth another try: timeouts, conflicts, rate limits and server errors.
pub(crate) fn retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 425 | 429) || status >= 500
}

/// What a retryable status says went wrong.
fn status_cause(status: u16) -> FailureCause {
    match status {
        408 => FailureCause::Timeout,
        429 => FailureCause::RateLimited,
        _ => FailureCause::ServerError,
    }
}

/// What a transport error says went wrong: no answer in time, or no answer at all.
fn transport_cause(e: &reqwest::Error) -> FailureCause {
    if e.is_timeout() { FailureCause::Timeout } else { FailureCause::Connection }
}

/// `Retry-After` in seconds (or OpenAI's `retry-after-ms`), capped; HTTP dates are ignored.
fn retry_after(headers: &reqwest::header::HeaderMap, cap: Duration) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let from_ms = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()).map(|ms| ms / 1000.0);
    let secs = from_ms.or_else(|| get("retry-after").and_then(|v| v.parse::<f64>().ok()))?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(cap.as_secs_f64())))
}

/// A transport error in words, without the URL (which could carry a key in its query).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {}s", timeout.as_secs());
    }
    let mut msg =
        if e.is_connect() { "connection failed".to_string() } else { "request failed".into() };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// The human message of an error body (OpenAI and Anthropic shapes), shortened.
pub(crate) fn server_message(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let msg = v["error"]["message"]
        .as_str()
        .or(v["message"].as_str())
        .or(v["error"].as_str())
        .or(v["detail"].as_str());
    let msg = msg.map(str::to_string).unwrap_or_else(|| body.trim().to_string());
    redact(&msg.chars().take(500).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            timeout: Duration::from_secs(1),
            max_retries: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(5),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = policy();
        for _ in 0..50 {
            let b1 = p.backoff(1).as_millis();
            let b2 = p.backoff(2).as_millis();
            let b9 = p.backoff(9).as_millis();
            assert!((50..=100).contains(&b1), "{b1}");
            assert!((100..=200).contains(&b2), "{b2}");
            assert!((125..=250).contains(&b9), "{b9}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds_and_is_capped() {
        let mut h = reqwest::header::HeaderMap::new();
        let cap = Duration::from_secs(5);
        assert_eq!(retry_after(&h, cap), None);
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h, cap), Some(Duration::from_secs(2)));
        h.insert("retry-after", "3600".parse().unwrap());
        assert_eq!(retry_after(&h, cap), Some(cap));
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h, cap), None);
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h, cap), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 409, 425, 429, 500, 502, 503, 529] {
            assert!(retryable(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 422] {
            assert!(!retryable(s), "{s}");
        }
    }

    #[test]
    fn statuses_retried_to_the_end_say_why() {
        assert_eq!(status_cause(429), FailureCause::RateLimited);
        assert_eq!(status_cause(408), FailureCause::Timeout);
        for s in [409, 425, 500, 502, 503, 529] {
            assert_eq!(status_cause(s), FailureCause::ServerError, "{s}");
        }
    }

    #[test]
    fn server_message_reads_both_shapes() {
        assert_eq!(server_message(r#"{"error":{"message":"slow down"}}"#), "slow down");
        assert_eq!(
            server_message(r#"{"type":"error","error":{"type":"x","message":"overloaded"}}"#),
            "overloaded"
        );
        assert_eq!(server_message("plain text"), "plain text");
    }
}
