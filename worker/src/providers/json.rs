//! One route's readable JSON answer: the request, tolerant extraction, one repair request when
//! the answer cannot be read, and what a cut-off answer says about the server's context.

use super::{
    ContextHint, JsonAnswer, ModelAnswer, ModelError, ModelRequest, Models, RouteFailure, dialect,
};
use scriptorium_contracts::extract;
use scriptorium_contracts::tokens::estimate_tokens;
use scriptorium_proto::v1::{Failure, FailureCause};
use serde_json::Value;

impl Models {
    /// One route's readable JSON answer: the request, then one repair request if the answer
    /// cannot be read. An answer cut off at the token limit gets no repair (the repair would
    /// have no more room); when it did not fit the server's context (a context-exceeded error,
    /// or an answer cut off before its `max_tokens` because the window filled up) the failure
    /// carries a [`ContextHint`] so the caller can send a smaller request.
    pub async fn call_json_route(
        &self,
        route: &str,
        req: &ModelRequest,
    ) -> Result<JsonAnswer, RouteFailure> {
        let estimated_prompt = estimate_tokens(&req.system) + estimate_tokens(&req.user);
        let fail = |failure: Failure, context, calls| RouteFailure { failure, context, calls };
        let refused = |message: String| Failure::new(FailureCause::Refused, message);
        let full_context = |message: String| Failure::new(FailureCause::ContextExceeded, message);
        let mut answer = match self.call_route(route, req).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(route = %route, error = %e, cause = e.cause().label(), "route failed");
                let context = match &e {
                    ModelError::ContextExceeded { prompt_tokens, window, .. } => {
                        Some(ContextHint {
                            window: *window,
                            server_prompt: *prompt_tokens,
                            estimated_prompt,
                        })
                    }
                    _ => None,
                };
                return Err(fail(e.failure(), context, Vec::new()));
            }
        };
        let answered = answer.route.clone();
        let read = readable(&answer, req.schema.as_ref());
        let full = context_full(&answer, req.max_tokens, estimated_prompt);
        let truncated = answer.truncated;
        answer.text.clear();
        let mut calls = vec![answer];
        let parse_error = match read {
            Ok(value) => return Ok(JsonAnswer { value, route: answered, calls }),
            Err(e) => e,
        };
        if truncated {
            // A repair has the same room and a longer prompt: an answer that ran out of room
            // (a model looping inside a string) runs out again. The step's re-ask samples anew.
            return Err(match full {
                Some((hint, error)) => {
                    fail(full_context(format!("{answered}: {error}")), Some(hint), calls)
                }
                None => fail(refused(format!("{answered}: {parse_error}")), None, calls),
            });
        }
        tracing::warn!(route = %answered, error = %parse_error, "unreadable answer, asking for a repair");
        let mut repair = req.clone();
        repair.user = format!(
            "{}\n\nYour previous answer could not be read: {parse_error}. Answer again with \
             only the JSON object, complete and no longer than needed.",
            req.user
        );
        // The request keeps its size: the longer prompt is paid for by the answer's room.
        let added = estimate_tokens(&repair.user).saturating_sub(estimate_tokens(&req.user));
        repair.max_tokens = req.max_tokens.saturating_sub(added as u32).max(1);
        match self.call_route(route, &repair).await {
            Ok(mut a) => {
                let read = readable(&a, repair.schema.as_ref());
                a.text.clear();
                let full = context_full(&a, repair.max_tokens, estimated_prompt);
                calls.push(a);
                match (read, full) {
                    (Ok(value), _) => Ok(JsonAnswer { value, route: answered, calls }),
                    (Err(_), Some((hint, error))) => {
                        tracing::warn!(route = %answered, window = ?hint.window, "answers cut off by the context window");
                        Err(fail(full_context(format!("{answered}: {error}")), Some(hint), calls))
                    }
                    (Err(e), None) => Err(fail(
                        refused(format!("{answered}: unreadable answer after repair: {e}")),
                        None,
                        calls,
                    )),
                }
            }
            Err(e) => Err(fail(e.failure(), None, calls)),
        }
    }
}

/// Whether `answer` stopped before its `max_tokens` with `finish_reason` "length": the
/// server's context filled up (llama.cpp without context shift does this). Read from the
/// answer's reported usage, never from text; the hint's window is what the usage adds up to.
fn context_full(
    answer: &ModelAnswer,
    max_tokens: u32,
    estimated_prompt: u64,
) -> Option<(ContextHint, String)> {
    if !answer.truncated || answer.estimated || answer.completion_tokens >= u64::from(max_tokens) {
        return None;
    }
    let window = answer.prompt_tokens + answer.completion_tokens + 1;
    let hint = ContextHint {
        window: Some(window),
        server_prompt: Some(answer.prompt_tokens),
        estimated_prompt,
    };
    let error = format!(
        "the answer filled the server's context ({} prompt and {} answer tokens) before its max_tokens ({max_tokens})",
        answer.prompt_tokens, answer.completion_tokens
    );
    Some((hint, error))
}

/// The JSON object of an answer to a request with `schema`, or why there is none.
fn readable(answer: &ModelAnswer, schema: Option<&Value>) -> Result<Value, String> {
    if answer.truncated {
        return Err("the answer was cut off at the token limit (finish_reason \"length\")".into());
    }
    // Grammar-constrained servers (llama-cpp-python) let raw newlines into JSON strings.
    let mut value = extract::json_object(&dialect::escape_raw_controls(&answer.text))
        .map_err(|e| e.to_string())?;
    // Long strings a grammar was asked for in paragraphs are strings again.
    if let Some(schema) = schema {
        dialect::rejoin(schema, &mut value);
    }
    Ok(value)
}
