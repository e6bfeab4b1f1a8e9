//! A provider's key never shows in errors, even when the server echoes it back.
//!
//! The only test of this binary: it sets a process variable, which is sound only while no
//! other thread reads the environment.

use scriptorium_proto::v1::AgentKind;
use scriptorium_sim::server::{self as sim_server, Fault, SimServerConfig};
use scriptorium_worker::providers::{ModelRequest, Models, ModelsConfig, Protocol, ProviderConfig};

const KEY: &str = "sk-test-SECRET123456789";
const KEY_TAIL: &str = "SECRET123456789";

#[test]
fn keys_echoed_by_the_server_are_redacted_from_errors() {
    // SAFETY: single-threaded here: the runtime below is built after this line and this binary
    // runs no other test.
    unsafe { std::env::set_var("SIM_REDACTION_TEST_KEY", KEY) };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let req = ModelRequest {
            kind: AgentKind::Concept,
            system: "s".into(),
            user: "u".into(),
            temperature: 0.5,
            top_p: 0.9,
            max_tokens: 100,
            seed: 1,
            schema: None,
        };
        for protocol in [Protocol::Openai, Protocol::Anthropic] {
            // A wrong-key 401 and persistent 500s, both echoing the request headers.
            let rejecting = sim_server::start(SimServerConfig {
                require_key: Some("the-right-key-000".into()),
                echo_headers: true,
                ..Default::default()
            })
            .await
            .unwrap();
            let failing = sim_server::start(SimServerConfig {
                script: vec![Fault::Status(500); 5],
                echo_headers: true,
                ..Default::default()
            })
            .await
            .unwrap();
            let provider = |url: String| {
                let mut p = ProviderConfig::new(protocol, &url, "SIM_REDACTION_TEST_KEY", "m");
                p.max_retries = 1;
                p.backoff_ms = 5;
                p
            };
            let cfg = ModelsConfig {
                providers: [
                    ("rejecting".to_string(), provider(rejecting.base_url())),
                    ("failing".to_string(), provider(failing.base_url())),
                ]
                .into_iter()
                .collect(),
                ..Default::default()
            };
            let models = Models::new(&cfg);
            for route in ["rejecting/m", "failing/m"] {
                let e = models.call_route(route, &req).await.unwrap_err();
                let text = format!("{e} {e:?}");
                // The server did echo the headers (the key was sent and came back) ...
                assert!(text.contains("request headers"), "{protocol:?} {route}: {text}");
                // ... and none of it survived.
                assert!(!text.contains(KEY_TAIL), "{protocol:?} {route}: key leaked: {text}");
                let f = models.call_json_route(route, &req).await.unwrap_err().failure;
                let text = format!("{f} {f:?}");
                assert!(!text.contains(KEY_TAIL), "{protocol:?} {route}: {text}");
            }
            assert_eq!(rejecting.stats().requests, 2, "401 is not retried");
            assert_eq!(failing.stats().requests, 4, "500 is retried once per call");
        }
    });
}
