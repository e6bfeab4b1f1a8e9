//! Context-overflow detection: an error answer that says the prompt does not fit the window,
//! which is never a refusal of the format.

use serde_json::Value;

/// Whether an error answer says the prompt does not fit the context window, from its fields:
/// OpenAI's and llama-cpp-python's `code` `context_length_exceeded`, llama-server's `type`
/// `exceed_context_size_error` or its `n_ctx` and `n_prompt_tokens`.
pub fn overflows_context(status: u16, body: &str) -> bool {
    if !matches!(status, 400 | 413 | 500) {
        return false;
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else { return false };
    let err = if v["error"].is_object() { &v["error"] } else { &v };
    overflows_context_fields(err)
}

/// The same, from an error object already read (`error`, or the body when it has none): the
/// refusal parser asks it first, since an overflow is never a refusal.
pub(super) fn overflows_context_fields(err: &Value) -> bool {
    err["code"] == "context_length_exceeded"
        || err["type"] == "exceed_context_size_error"
        || (err["n_ctx"].is_u64() && err["n_prompt_tokens"].is_u64())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::capture;
    use super::super::refusal;
    use super::*;

    #[test]
    fn llama_cpp_python_context_overflow_is_not_a_refusal() {
        let c = capture("context_overflow");
        assert_eq!(c.status, 400);
        assert!(overflows_context(c.status, &c.body));
        assert_eq!(refusal(c.status, &c.body), None);
    }

    #[test]
    fn llama_cpp_python_cuts_max_tokens_to_the_window_silently() {
        let c = capture("max_tokens_over_window");
        assert!(c.request["max_tokens"].as_u64().unwrap() > 8192);
        assert_eq!(c.status, 200);
        assert!(!overflows_context(c.status, &c.body));
    }
}
