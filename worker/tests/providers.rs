//! The real HTTP providers against the in-process sim server: every failure class shows its
//! retry, fallback or error behaviour, counted by the server.

use scriptorium_proto::v1::{AgentKind, Failure, FailureCause};
use scriptorium_sim::server::{
    self as sim_server, Fault, RejectFormat, SimServer, SimServerConfig,
};
use scriptorium_worker::providers::{
    JsonAnswer, ModelAnswer, ModelError, ModelRequest, Models, ModelsConfig, Price, Protocol,
    ProviderConfig, first_route,
};
use std::time::{Duration, Instant};

fn request() -> ModelRequest {
    ModelRequest {
        kind: AgentKind::Characters,
        system: "You answer with one JSON object.".into(),
        user: "Facts:\n- Characters: 2\n".into(),
        temperature: 0.5,
        top_p: 0.9,
        max_tokens: 800,
        seed: 7,
        schema: None,
    }
}

async fn server(script: Vec<Fault>) -> SimServer {
    sim_server::start(SimServerConfig { script, hang_secs: 30, ..Default::default() })
        .await
        .expect("sim server starts")
}

/// A provider on `srv` with fast backoff, a 1 s timeout and two retries.
fn provider(protocol: Protocol, srv: &SimServer) -> ProviderConfig {
    let mut p = ProviderConfig::new(protocol, &srv.base_url(), "", "sim");
    p.timeout_secs = 1;
    p.max_retries = 2;
    p.backoff_ms = 10;
    p.max_backoff_ms = 40;
    p
}

fn models(providers: Vec<(&str, ProviderConfig)>) -> Models {
    let cfg = ModelsConfig {
        providers: providers.into_iter().map(|(n, p)| (n.to_string(), p)).collect(),
        ..Default::default()
    };
    cfg.validate().expect("valid config");
    Models::with_local(&cfg, Some(std::sync::Arc::new(scriptorium_sim::SimModel::default())))
}

/// The worker's route loop ([`first_route`]) over `routes`, each route one JSON request (with
/// its repair): the answer with every call made on the way (failed routes' included), or the
/// failure of every route with those calls.
async fn first_json(
    m: &Models,
    routes: &[String],
    req: &ModelRequest,
) -> Result<JsonAnswer, (Failure, Vec<ModelAnswer>)> {
    let calls = std::sync::Mutex::new(Vec::new());
    let answer = first_route(routes, |route| {
        let calls = &calls;
        async move {
            let (answer, mut made) = match m.call_json_route(route, req).await {
                Ok(mut a) => {
                    let made = std::mem::take(&mut a.calls);
                    (Ok(a), made)
                }
                Err(f) => (Err(f.failure), f.calls),
            };
            calls.lock().unwrap().append(&mut made);
            answer
        }
    })
    .await;
    let calls = calls.into_inner().unwrap();
    match answer {
        Ok(a) => Ok(JsonAnswer { calls, ..a }),
        Err(f) => Err((f, calls)),
    }
}

fn status_count(srv: &SimServer, status: u16) -> u64 {
    srv.stats().by_status.get(&status.to_string()).copied().unwrap_or(0)
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let srv = server(vec![Fault::Status(429)]).await;
    let m = models(vec![("fake", provider(Protocol::Openai, &srv))]);
    let start = Instant::now();
    let a = m.call_route("fake/sim", &request()).await.expect("answer after one retry");
    // Backoff alone is at most 40 ms: the second attempt waited for Retry-After (1 s).
    assert!(start.elapsed() >= Duration::from_millis(950), "{:?}", start.elapsed());
    assert_eq!(a.retries, 1);
    assert_eq!(a.route, "fake/sim");
    assert_eq!((srv.stats().requests, status_count(&srv, 429), status_count(&srv, 200)), (2, 1, 1));
}

#[tokio::test]
async fn a_500_is_retried_then_succeeds() {
    let srv = server(vec![Fault::Status(500), Fault::Status(502)]).await;
    let m = models(vec![("fake", provider(Protocol::Openai, &srv))]);
    let a = m.call_route("fake/sim", &request()).await.expect("answer on the third attempt");
    assert_eq!(a.retries, 2);
    assert!(a.prompt_tokens > 0 && a.completion_tokens > 0);
    assert_eq!(srv.stats().requests, 3);
}

#[tokio::test]
async fn persistent_5xx_exhausts_the_retries() {
    let srv = server(vec![Fault::Status(503); 5]).await;
    let m = models(vec![("fake", provider(Protocol::Openai, &srv))]);
    let e = m.call_route("fake/sim", &request()).await.unwrap_err();
    assert!(matches!(e, ModelError::Exhausted { attempts: 3, .. }), "{e}");
    assert!(e.to_string().contains("fake/sim") && e.to_string().contains("503"), "{e}");
    assert_eq!(srv.stats().requests, 3);
}

#[tokio::test]
async fn a_hang_past_the_timeout_is_retried() {
    let srv = server(vec![Fault::Hang]).await;
    let m = models(vec![("fake", provider(Protocol::Openai, &srv))]);
    let start = Instant::now();
    let a = m.call_route("fake/sim", &request()).await.expect("answer after the timeout");
    assert_eq!(a.retries, 1);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(950) && took < Duration::from_secs(10), "{took:?}");
    assert_eq!(srv.stats().requests, 2);
}

#[tokio::test]
async fn hanging_every_time_fails_with_a_timeout_error() {
    let srv = server(vec![Fault::Hang; 3]).await;
    let mut p = provider(Protocol::Openai, &srv);
    p.max_retries = 1;
    let m = models(vec![("fake", p)]);
    let e = m.call_route("fake/sim", &request()).await.unwrap_err();
    assert!(matches!(e, ModelError::Exhausted { attempts: 2, .. }), "{e}");
    assert!(e.to_string().contains("timed out after 1s"), "{e}");
}

#[tokio::test]
async fn client_errors_fail_at_once_naming_provider_route_and_status() {
    for status in [400, 401, 403, 404] {
        let srv = server(vec![Fault::Status(status)]).await;
        let m = models(vec![("fake", provider(Protocol::Openai, &srv))]);
        let e = m.call_route("fake/sim", &request()).await.unwrap_err();
        match &e {
            ModelError::Rejected { provider, route, status: s, .. } => {
                assert_eq!((provider.as_str(), route.as_str(), *s), ("fake", "fake/sim", status));
            }
            other => panic!("{status}: expected a rejection, got {other}"),
        }
        let text = e.to_string();
        assert!(
            text.contains("'fake'")
                && text.contains("fake/sim")
                && text.contains(&status.to_string()),
            "{text}"
        );
        assert_eq!(srv.stats().requests, 1, "{status} must not be retried");
    }
}

#[tokio::test]
async fn a_malformed_answer_gets_one_repair_request() {
    let srv = server(vec![Fault::Malformed]).await;
    let m = models(vec![("fake", provider(Protocol::Openai, &srv))]);
    let a = first_json(&m, &["fake/sim".into()], &request()).await.expect("repaired");
    assert_eq!(a.route, "fake/sim");
    assert_eq!(a.value["characters"].as_array().map(Vec::len), Some(2));
    assert_eq!(a.calls.len(), 2, "the answer and the repair are both counted");
    assert_eq!(srv.stats().completions, 2);
}

#[tokio::test]
async fn json_wrapped_in_prose_is_extracted_without_a_repair() {
    let srv = server(vec![Fault::Prose]).await;
    let m = models(vec![("fake", provider(Protocol::Openai, &srv))]);
    let a = first_json(&m, &["fake/sim".into()], &request()).await.expect("extracted");
    assert_eq!(a.calls.len(), 1);
    assert_eq!(srv.stats().completions, 1);
}

#[tokio::test]
async fn a_truncated_answer_is_unreadable_and_gets_no_repair() {
    // Cut off before its max_tokens: the server's context filled up; a smaller request may do.
    let srv = server(vec![Fault::Truncated]).await;
    let cut = server(vec![Fault::Truncated]).await;
    let up = server(vec![]).await;
    let m = models(vec![
        ("fake", provider(Protocol::Openai, &srv)),
        ("cut", provider(Protocol::Openai, &cut)),
        ("next", provider(Protocol::Openai, &up)),
    ]);
    let f = m.call_json_route("fake/sim", &request()).await.expect_err("cut off");
    assert!(f.context.is_some(), "a smaller request may fit: {}", f.failure);
    assert_eq!(f.calls.len(), 1, "no repair request");
    assert!(f.calls[0].truncated && f.calls[0].completion_tokens > 0, "still billed");
    assert_eq!(srv.stats().completions, 1);

    // Cut off at its own max_tokens: a repair would have no more room, the next route answers.
    let small = ModelRequest { max_tokens: 20, ..request() };
    let f = m.call_json_route("next/sim", &small).await.expect_err("cut off");
    assert!(f.failure.message.contains("cut off at the token limit"), "{}", f.failure);
    assert_eq!(f.failure.cause(), FailureCause::Refused, "asked again, not given up");
    assert!(f.context.is_none(), "{}", f.failure);
    assert_eq!((f.calls.len(), up.stats().completions), (1, 1), "no repair request");
    let routes = ["cut/sim".to_string(), "next/sim".to_string()];
    let a = first_json(&m, &routes, &request()).await.expect("the next route answers");
    assert_eq!(a.route, "next/sim");
    assert_eq!(a.calls.len(), 2, "the cut-off answer and the next route's");
    assert_eq!(cut.stats().completions, 1);
}

#[tokio::test]
async fn a_route_that_exhausts_its_retries_falls_back_to_the_next() {
    let down = server(vec![Fault::Status(500); 3]).await;
    let up = server(vec![]).await;
    let m = models(vec![
        ("first", provider(Protocol::Openai, &down)),
        ("second", provider(Protocol::Openai, &up)),
    ]);
    let routes = ["first/m".to_string(), "second/m".to_string()];
    let a = first_json(&m, &routes, &request()).await.expect("the second route answers");
    assert_eq!(a.route, "second/m");
    assert_eq!((down.stats().requests, up.stats().requests), (3, 1));
}

#[tokio::test]
async fn unreadable_after_repair_falls_back_and_all_routes_failing_is_an_error() {
    let garbled = server(vec![Fault::Malformed, Fault::Malformed]).await;
    let up = server(vec![]).await;
    let m = models(vec![
        ("first", provider(Protocol::Openai, &garbled)),
        ("second", provider(Protocol::Openai, &up)),
    ]);
    let routes = ["first/m".to_string(), "second/m".to_string()];
    let a = first_json(&m, &routes, &request()).await.expect("the second route answers");
    assert_eq!((a.route.as_str(), a.calls.len()), ("second/m", 3));

    let dead = server(vec![Fault::Status(401)]).await;
    let m = models(vec![("only", provider(Protocol::Openai, &dead))]);
    let (f, calls) = first_json(&m, &["only/m".to_string()], &request()).await.unwrap_err();
    assert!(f.message.contains("HTTP 401"), "{}", f.message);
    assert_eq!((f.cause(), f.http_status), (FailureCause::Auth, 401));
    assert!(calls.is_empty());
}

#[tokio::test]
async fn json_schema_refused_falls_back_to_the_schema_in_json_object_and_is_remembered() {
    let srv = sim_server::start(SimServerConfig {
        reject_response_format: RejectFormat::JsonSchema,
        ..Default::default()
    })
    .await
    .unwrap();
    let m = models(vec![("fake", provider(Protocol::Openai, &srv))]);
    let a = first_json(&m, &["fake/sim".into()], &request()).await.expect("answer");
    assert_eq!(a.calls[0].retries, 0, "a format fallback is not a retry");
    m.call_route("fake/sim", &request()).await.expect("answer");
    let s = srv.stats();
    assert_eq!(s.by_format.get("json_schema"), Some(&1), "{s:?}");
    // A generic server's next dialect: the schema inside json_object (llama-cpp-python's form).
    assert_eq!(s.by_format.get("json_object_schema"), Some(&2), "{s:?}");
    assert_eq!(s.by_kind.get("characters"), Some(&3), "{s:?}");
}

#[tokio::test]
async fn no_structured_output_at_all_falls_back_to_plain_text() {
    let srv = sim_server::start(SimServerConfig {
        reject_response_format: RejectFormat::Any,
        ..Default::default()
    })
    .await
    .unwrap();
    let m = models(vec![("fake", provider(Protocol::Openai, &srv))]);
    let a = first_json(&m, &["fake/sim".into()], &request()).await.expect("answer");
    assert_eq!(a.value["characters"].as_array().map(Vec::len), Some(2));
    let s = srv.stats();
    assert_eq!(
        (
            s.by_format.get("json_schema"),
            s.by_format.get("json_object_schema"),
            s.by_format.get("json_object"),
            s.by_format.get("none")
        ),
        // json_object itself is skipped: the refusal of json_object_schema was of that kind.
        (Some(&1), Some(&1), None, Some(&1)),
        "{s:?}"
    );
    // The kind still reaches the server without a schema name: by header.
    assert_eq!(s.by_kind.get("characters"), Some(&3), "{s:?}");
}

#[tokio::test]
async fn anthropic_protocol_speaks_the_messages_api_and_retries() {
    let srv = sim_server::start(SimServerConfig {
        script: vec![Fault::Status(529)],
        ..Default::default()
    })
    .await
    .unwrap();
    let m = models(vec![("claude", provider(Protocol::Anthropic, &srv))]);
    let a = first_json(&m, &["claude/sim-haiku".into()], &request()).await.expect("answer");
    assert_eq!(a.route, "claude/sim-haiku");
    assert_eq!(a.value["characters"].as_array().map(Vec::len), Some(2));
    assert_eq!(a.calls[0].retries, 1);
    assert!(a.calls[0].prompt_tokens > 0 && a.calls[0].completion_tokens > 0);
    let s = srv.stats();
    assert_eq!((s.requests, s.completions), (2, 1));
    assert_eq!(s.by_kind.get("characters"), Some(&2), "{s:?}");
}

#[tokio::test]
async fn prices_give_a_cost_per_call() {
    let srv = server(vec![]).await;
    let mut p = provider(Protocol::Openai, &srv);
    p.prices.insert("priced".into(), Price { input: 1000.0, output: 2000.0 });
    let m = models(vec![("fake", p)]);
    let a = m.call_route("fake/priced", &request()).await.unwrap();
    let want = (a.prompt_tokens as f64 * 1000.0 + a.completion_tokens as f64 * 2000.0) / 1e6;
    assert!(a.cost_usd > 0.0 && (a.cost_usd - want).abs() < 1e-9, "{} vs {want}", a.cost_usd);
    let free = m.call_route("fake/other", &request()).await.unwrap();
    assert_eq!(free.cost_usd, 0.0);
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_is_shared_by_every_clone() {
    let mut p = ProviderConfig::new(Protocol::Sim, "", "", "default");
    p.requests_per_minute = 2;
    let m = models(vec![("limited", p)]);
    let start = tokio::time::Instant::now();
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.call_route("limited/default", &request()).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    // Five calls at two per minute (burst of two): the last starts 90 s after the first.
    let secs = start.elapsed().as_secs_f64();
    assert!((89.0..=95.0).contains(&secs), "{secs}");
}
