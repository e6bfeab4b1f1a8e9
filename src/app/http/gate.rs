//! Who may see the dashboard: anyone on loopback; beyond loopback, only a client that sends the
//! operator token (`Authorization: Bearer <SCRIPTORIUM_HTTP_TOKEN>`, or the cookie a browser gets
//! by opening `/?token=<token>` once). Without a token configured, a dashboard listening beyond
//! loopback answers 403 and says how to set one. `/metrics`, `/healthz` and `/readyz` never pass
//! through here: Prometheus and probes need them open.

use super::actions::same;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// The cookie holding the token in a browser.
const COOKIE_NAME: &str = "scriptorium_token";

/// The dashboard's gate.
#[derive(Clone)]
pub(super) struct Gate {
    /// Whether a token is needed (the dashboard listens beyond loopback).
    required: bool,
    token: Option<Arc<str>>,
}

impl Gate {
    /// The gate of a dashboard listening on `addr`.
    pub(super) fn new(addr: Option<SocketAddr>, token: Option<Arc<str>>) -> Self {
        Gate { required: addr.is_some_and(|a| !a.ip().is_loopback()), token }
    }
}

/// The token sent as a bearer header or the cookie.
fn sent(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    bearer.or_else(|| {
        headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
            c.split(';').map(str::trim).find_map(|kv| kv.strip_prefix("scriptorium_token="))
        })
    })
}

/// Passes the request on when the gate allows it.
pub(super) async fn guard(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    if !gate.required {
        return next.run(req).await;
    }
    let Some(token) = gate.token.as_deref() else {
        return (
            StatusCode::FORBIDDEN,
            "the dashboard listens beyond loopback and needs an operator token: start the \
             coordinator with SCRIPTORIUM_HTTP_TOKEN set\n",
        )
            .into_response();
    };
    // `/?token=...` once: the token goes into a cookie and out of the address bar.
    let query_token = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")).map(str::to_string));
    if let Some(t) = query_token
        && same(t.as_bytes(), token.as_bytes())
    {
        let cookie = format!("{COOKIE_NAME}={t}; HttpOnly; SameSite=Strict; Path=/");
        let path = req.uri().path().to_string();
        return (StatusCode::SEE_OTHER, [(LOCATION, path), (SET_COOKIE, cookie)]).into_response();
    }
    if sent(req.headers()).is_some_and(|t| same(t.as_bytes(), token.as_bytes())) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, "Bearer")],
        "an operator token is required: send Authorization: Bearer <token>, or open \
         /?token=<token> once in a browser\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dashboard_beyond_loopback_needs_the_token() {
        let token: Option<Arc<str>> = Some(Arc::from("s3cret"));
        assert!(!Gate::new("127.0.0.1:8080".parse().ok(), token.clone()).required);
        assert!(!Gate::new("[::1]:8080".parse().ok(), token.clone()).required);
        assert!(Gate::new("0.0.0.0:8080".parse().ok(), token.clone()).required);
        assert!(Gate::new("10.1.2.3:8080".parse().ok(), None).required);
        let mut h = HeaderMap::new();
        assert_eq!(sent(&h), None);
        h.insert(COOKIE, "a=b; scriptorium_token=s3cret".parse().unwrap());
        assert_eq!(sent(&h), Some("s3cret"));
        h.insert(AUTHORIZATION, "Bearer other".parse().unwrap());
        assert_eq!(sent(&h), Some("other"), "the header wins");
    }
}
