//! The dashboard's actions and the book view behind them: `GET /api/books/{id}` (a book's record
//! and the answers waiting at its gates) and `POST /api/books/{id}/{action}` (approve, reject,
//! cancel, pause, resume), sent to the coordinator as operators' commands, as the CLI sends them.
//!
//! Actions always need the operator token: `Authorization: Bearer <SCRIPTORIUM_HTTP_TOKEN>`.
//! Without a token configured, actions are off (403 says how to turn them on); a missing or wrong
//! token is 401. The token is compared in constant time and never logged.

use super::super::report;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::response::{IntoResponse, Response};
use scriptorium_coordinator::client;
use scriptorium_coordinator::control::Action;
use scriptorium_coordinator::record::output_key;
use scriptorium_proto::transport::Bucket;
use scriptorium_proto::{Bus, names};
use serde::Deserialize;
use serde_json::json;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What the action routes need: the bus (once the coordinator started) and the token.
#[derive(Clone)]
pub(super) struct Actions {
    pub(super) bus: Arc<OnceLock<Bus>>,
    pub(super) token: Option<Arc<str>>,
}

/// The body of an action: the step and the note, when the action takes them.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ActBody {
    step: Option<String>,
    note: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Whether two byte strings are equal, in time that depends on their lengths only.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An answer other than success: its status and message.
type Refusal = (StatusCode, &'static str);

/// `Err` unless `headers` carry the operator token.
pub(super) fn authorised(token: Option<&str>, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(token) = token else {
        return Err((
            StatusCode::FORBIDDEN,
            "actions are off: start the coordinator with SCRIPTORIUM_HTTP_TOKEN set, and send it as `Authorization: Bearer <token>`",
        ));
    };
    let sent = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if same(sent.trim().as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            "a valid operator token is required (Authorization: Bearer <token>)",
        ))
    }
}

fn bus(a: &Actions) -> Result<&Bus, Refusal> {
    a.bus.get().ok_or((StatusCode::SERVICE_UNAVAILABLE, "the coordinator is starting"))
}

/// `GET /api/books/{id}`: the book as `status BOOK --json` shows it, with the answers waiting
/// at its gates (`awaiting_answers`: step and answer).
pub(super) async fn book(State(a): State<Actions>, Path(id): Path<String>) -> Response {
    if !names::valid_id(&id) {
        return error(StatusCode::BAD_REQUEST, "invalid book id");
    }
    let bus = match bus(&a) {
        Ok(b) => b,
        Err((status, why)) => return error(status, why),
    };
    let rec = match client::load(bus, &id).await {
        Ok(Some(rec)) => rec,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no book with id {id}")),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    };
    let mut waiting = Vec::new();
    for step in &rec.awaiting {
        let answer = match bus.kv_get(Bucket::Outputs, &output_key(&rec.id, step)).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            _ => serde_json::Value::Null,
        };
        waiting.push(json!({ "step": step, "answer": answer }));
    }
    let mut doc = report::book_json(&rec);
    doc["awaiting_answers"] = waiting.into();
    doc["actions"] = serde_json::to_value(&rec.actions).unwrap_or_default();
    Json(doc).into_response()
}

/// `POST /api/books/{id}/{action}`: an operator's command, applied or refused by the coordinator.
pub(super) async fn act(
    State(a): State<Actions>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<ActBody>>,
) -> Response {
    if let Err((status, why)) = authorised(a.token.as_deref(), &headers) {
        return error(status, why);
    }
    if !names::valid_id(&id) {
        return error(StatusCode::BAD_REQUEST, "invalid book id");
    }
    let ActBody { step, note } = body.map(|Json(b)| b).unwrap_or_default();
    let action = match action.as_str() {
        "approve" => Action::Approve { step },
        "reject" => match note.filter(|n| !n.trim().is_empty()) {
            Some(note) => Action::Reject { step, note },
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "note: a rejection needs a note (it goes into the new attempt's prompt)",
                );
            }
        },
        "cancel" => Action::Cancel,
        "pause" => Action::Pause,
        "resume" => Action::Resume,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no action {other:?} (approve, reject, cancel, pause, resume)"),
            );
        }
    };
    let bus = match bus(&a) {
        Ok(b) => b,
        Err((status, why)) => return error(status, why),
    };
    let name = action.name();
    match client::run_command(bus, &id, action, "dashboard", Duration::from_secs(15)).await {
        Ok(done) => {
            Json(json!({ "applied": name, "step": done.step, "at_ms": done.at_ms })).into_response()
        }
        Err(e) => error(StatusCode::CONFLICT, format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_need_the_token_and_are_off_without_one() {
        let mut h = HeaderMap::new();
        assert_eq!(authorised(None, &h).unwrap_err().0, StatusCode::FORBIDDEN);
        assert_eq!(authorised(Some("s3cret"), &h).unwrap_err().0, StatusCode::UNAUTHORIZED);
        h.insert(AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert_eq!(authorised(Some("s3cret"), &h).unwrap_err().0, StatusCode::UNAUTHORIZED);
        h.insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorised(Some("s3cret"), &h).is_ok());
        assert!(!same(b"abc", b"abd") && !same(b"abc", b"ab") && same(b"", b""));
    }
}
