//! Only those who should: a real nats-server with the shipped role config
//! (`deploy/nats/auth.conf`, its passwords set for the test), and one with TLS from a CA the
//! test makes. Every process runs on its own role; the server refuses what a role may not do;
//! wrong or missing credentials fail at start, naming the problem and showing no secret; a
//! forged result changes nothing.

mod common;

use async_nats::jetstream;
use common::*;
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::{Bucket, NatsAuth, NatsOptions, Role, Secret};
use scriptorium_proto::{Bus, names};
use std::path::Path;
use std::time::{Duration, Instant};

const ROLES: [&str; 4] = ["coordinator", "worker", "submitter", "operator"];

/// A password per role, different in every run.
fn password(role: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    format!("pw-{role}-{nanos:09}-{}", std::process::id())
}

/// A server running the shipped role config, with `tls` (a `tls { }` block) when given.
struct AuthServer {
    nats: NatsServer,
    passwords: Vec<(&'static str, String)>,
}

impl AuthServer {
    fn start(tls: &str) -> Self {
        let shipped = std::fs::read_to_string(root().join("deploy/nats/auth.conf"))
            .expect("deploy/nats/auth.conf is shipped");
        let passwords: Vec<_> = ROLES.iter().map(|r| (*r, password(r))).collect();
        let mut extra = String::new();
        for (role, pw) in &passwords {
            extra.push_str(&format!("SCRIPTORIUM_{}_PASSWORD: \"{pw}\"\n", role.to_uppercase()));
        }
        extra.push_str(tls);
        extra.push_str(&shipped);
        AuthServer { nats: NatsServer::start_with(&extra), passwords }
    }

    fn password(&self, role: &str) -> &str {
        self.passwords.iter().find(|(r, _)| *r == role).map(|(_, p)| p.as_str()).unwrap_or("")
    }

    /// The environment a process of `role` runs with.
    fn env(&self, role: &'static str) -> Vec<(&'static str, String)> {
        vec![
            ("SCRIPTORIUM_NATS_USER", role.to_string()),
            ("SCRIPTORIUM_NATS_PASSWORD", self.password(role).to_string()),
        ]
    }

    /// Library options for `role`, connecting as `user`.
    fn options(&self, user: &str, role: Role) -> NatsOptions {
        NatsOptions {
            name: format!("auth-test-{user}"),
            auth: NatsAuth {
                user: Some(user.into()),
                password: Some(Secret::new(self.password(user))),
                ..Default::default()
            },
            role,
            connect_timeout: Duration::from_secs(10),
            publish_retry: Duration::from_secs(2),
            ..Default::default()
        }
    }
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Runs the binary with `env`, returning its output and how long it took.
fn run_timed(args: &[&str], env: &[(&'static str, String)]) -> (std::process::Output, Duration) {
    let start = Instant::now();
    let o = run(args, &env_refs(env));
    (o, start.elapsed())
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Asserts no password of `server` appears in `what`.
fn assert_no_secret(server: &AuthServer, what: &str, label: &str) {
    for (role, pw) in &server.passwords {
        assert!(!what.contains(pw.as_str()), "{label} shows the {role} password:\n{what}");
    }
}

/// A raw client as `user`, replying on `inbox`, with the server's errors (permission
/// violations) sent to the returned channel.
async fn raw(
    url: &str,
    user: &str,
    pass: &str,
    inbox: &str,
) -> (async_nats::Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
        .custom_inbox_prefix(inbox)
        .event_callback(move |ev| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = ev {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(url)
        .await
        .expect("the raw client connects");
    (client, rx)
}

/// Waits up to 10 s for a permission violation naming `subject`.
async fn refused(errors: &mut tokio::sync::mpsc::UnboundedReceiver<String>, subject: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, errors.recv()).await {
            Ok(Some(e)) if e.contains("Permissions Violation") && e.contains(subject) => return,
            Ok(Some(_)) => {}
            _ => panic!("the server did not refuse {subject}"),
        }
    }
}

/// A JetStream context whose requests give up after 2 s (a refused request gets no answer).
fn js(client: async_nats::Client) -> jetstream::Context {
    jetstream::context::ContextBuilder::new().timeout(Duration::from_secs(2)).build(client)
}

#[test]
fn a_book_completes_with_every_process_on_its_own_role_and_forged_results_change_nothing() {
    let server = AuthServer::start("");
    let url = server.nats.url();
    let out = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let outs = out.path().display().to_string();
    let coord_env = server.env("coordinator");
    let coord = Proc::start(
        &["coordinator", "--nats", &url, "--out", &outs],
        &logs.path().join("coordinator.log"),
        &env_refs(&coord_env),
    );
    let submitter = server.env("submitter");
    let brief = example("fantasy.toml").display().to_string();
    let o = run(&["submit", &brief, "--nats", &url, "--chapters", "2"], &env_refs(&submitter));
    assert!(o.status.success(), "submit as submitter: {}", text(&o));
    let book = String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().to_string();
    assert!(names::valid_id(&book), "a book id: {book:?}");

    // No worker yet: the book waits on its concept step, attempt 1.
    wait_until(Duration::from_secs(30), "the book running", || {
        let o = run(&["status", &book, "--nats", &url, "--json"], &env_refs(&submitter));
        String::from_utf8_lossy(&o.stdout).contains("\"running\"")
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let forged = |attempt: u32, worker: &str| scriptorium_proto::v1::StepResult {
            book_id: book.clone(),
            step_id: "concept".into(),
            attempt,
            worker_id: worker.into(),
            status: scriptorium_proto::v1::StepStatus::Ok as i32,
            output: "{\"title\":\"Forged\"}".into(),
            ..Default::default()
        };
        // The submitter may not publish a result: the server refuses it.
        let (sub, mut sub_errors) =
            raw(&url, "submitter", server.password("submitter"), "_INBOX_tool").await;
        let subject = names::result_subject(&book);
        let payload = forged(1, "mallory").encode_to_vec();
        let _ = js(sub.clone()).publish(subject.clone(), payload.into()).await;
        refused(&mut sub_errors, &subject).await;
        // A worker's credentials may publish results, but not for an attempt never dispatched.
        let (w, _) = raw(&url, "worker", server.password("worker"), "_INBOX_worker").await;
        let ack = js(w.clone())
            .publish(subject.clone(), forged(7, "mallory").encode_to_vec().into())
            .await
            .expect("a worker may publish results");
        ack.await.expect("the results stream takes it");
    });
    let worker_env = server.env("worker");
    let _worker = Proc::start(
        &["worker", "--nats", &url, "--id", "w-auth"],
        &logs.path().join("worker.log"),
        &env_refs(&worker_env),
    );
    let (o, _) = run_timed(
        &["submit", &brief, "--nats", &url, "--chapters", "1", "--wait", "--timeout", "120"],
        &submitter,
    );
    assert!(o.status.success(), "a second book completes: {}", text(&o));
    wait_until(Duration::from_secs(120), "both books written", || book_dirs(out.path()).len() == 2);
    // The forged attempt changed nothing: the concept was answered by the worker, attempt 1.
    for dir in book_dirs(out.path()) {
        let b = book_json(&dir);
        let concept = b["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["id"] == "concept"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(concept["worker"], "w-auth", "{concept}");
        assert_ne!(b["title"], "Forged");
    }
    // ...and it is a dead letter with the reason, which the operator role may read.
    let operator = server.env("operator");
    let o = run(&["dead-letters", "--nats", &url, "--json"], &env_refs(&operator));
    assert!(o.status.success(), "dead-letters as operator: {}", text(&o));
    let letters = String::from_utf8_lossy(&o.stdout).to_string();
    let coord_log =
        std::fs::read_to_string(logs.path().join("coordinator.log")).unwrap_or_default();
    assert!(letters.contains("never dispatched"), "{letters}\ncoordinator:\n{coord_log}");
    assert!(letters.contains(&book), "{letters}");
    // The submitter reads status.
    let o = run(&["status", &book, "--nats", &url, "--json"], &env_refs(&submitter));
    assert!(o.status.success(), "status as submitter: {}", text(&o));
    drop(coord);
    for log in ["coordinator.log", "worker.log"] {
        let t = std::fs::read_to_string(logs.path().join(log)).unwrap_or_default();
        assert_no_secret(&server, &t, log);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_credentials_cannot_submit_read_book_records_or_delete_streams() {
    let server = tokio::task::spawn_blocking(|| AuthServer::start("")).await.unwrap();
    let url = server.nats.url();
    let owner = Bus::connect(&url, server.options("coordinator", Role::Coordinator))
        .await
        .expect("the coordinator role sets everything up");
    owner
        .kv_put(Bucket::Books, "b1", b"{\"secret\":\"manuscript\"}".to_vec().into())
        .await
        .unwrap();

    // The worker role's own connection works, and never opens the books.
    let worker = Bus::connect(&url, server.options("worker", Role::Worker))
        .await
        .expect("the worker role connects with worker credentials");
    let e = worker.kv_get(Bucket::Books, "b1").await.expect_err("books are not the worker's");
    assert!(e.to_string().contains("not opened by the worker role"), "{e}");

    let (client, mut errors) =
        raw(&url, "worker", server.password("worker"), "_INBOX_worker").await;
    let js = js(client);
    // Submit: refused, and nothing reached the submit stream.
    let _ = js.publish(names::SUBMIT_SUBJECT, b"forged".to_vec().into()).await;
    refused(&mut errors, names::SUBMIT_SUBJECT).await;
    // Read a book record: refused.
    let books = js.get_key_value(names::BOOKS_BUCKET).await.expect("stream info is allowed");
    assert!(books.get("b1").await.is_err(), "a worker must not read a book record");
    refused(&mut errors, "$JS.API.STREAM.MSG.GET.KV_scriptorium_books").await;
    // Delete a stream: refused, and the stream is still there.
    assert!(js.delete_stream(names::STEPS_STREAM).await.is_err());
    refused(&mut errors, "$JS.API.STREAM.DELETE.SCRIPTORIUM_STEPS").await;

    let (c, _) =
        raw(&url, "coordinator", server.password("coordinator"), "_INBOX_coordinator").await;
    let owner_js = jetstream::new(c);
    let mut submit = owner_js.get_stream(names::SUBMIT_STREAM).await.unwrap();
    assert_eq!(submit.info().await.unwrap().state.messages, 0, "no submission got through");
    assert!(owner_js.get_stream(names::STEPS_STREAM).await.is_ok(), "the steps stream remains");
    // Steering is the operator's: a worker may not publish a command either.
    let subject = names::control_subject("b1");
    let _ = js.publish(subject.clone(), b"forged".to_vec().into()).await;
    refused(&mut errors, &subject).await;
}

#[test]
fn wrong_or_missing_credentials_fail_at_start_naming_the_problem_and_no_secret() {
    let server = AuthServer::start("");
    let url = server.nats.url();
    // Streams exist (so tools only look them up).
    let out = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let coord_env = server.env("coordinator");
    let outs = out.path().display().to_string();
    let _coord = Proc::start(
        &["coordinator", "--nats", &url, "--out", &outs],
        &logs.path().join("coordinator.log"),
        &env_refs(&coord_env),
    );
    let submitter = server.env("submitter");
    wait_until(Duration::from_secs(30), "the coordinator up", || {
        run(&["status", "--nats", &url], &env_refs(&submitter)).status.success()
    });

    // Missing credentials.
    let (o, took) = run_timed(&["status", "--nats", &url], &[]);
    assert!(!o.status.success());
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let t = text(&o);
    assert!(t.contains("authorization violation"), "{t}");
    assert!(t.contains("refused these credentials"), "{t}");

    // A wrong password, from the environment and in the URL.
    let wrong = "wrong-password-123456".to_string();
    let env = vec![
        ("SCRIPTORIUM_NATS_USER", "submitter".to_string()),
        ("SCRIPTORIUM_NATS_PASSWORD", wrong.clone()),
    ];
    let (o, took) = run_timed(&["status", "--nats", &url], &env);
    assert!(!o.status.success() && took < Duration::from_secs(10), "{took:?} {}", text(&o));
    assert!(text(&o).contains("authorization violation"), "{}", text(&o));
    assert!(!text(&o).contains(&wrong), "{}", text(&o));
    let port = server.nats.port();
    let wrong_url = format!("nats://submitter:{wrong}@127.0.0.1:{port}");
    let (o, _) = run_timed(&["status", "--nats", &wrong_url], &[]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(!t.contains(&wrong), "{t}");
    assert!(t.contains("submitter:***@127.0.0.1"), "{t}");
    // The right password in the URL works (it used to be dropped).
    let right_url = format!("nats://submitter:{}@127.0.0.1:{port}", server.password("submitter"));
    let o = run(&["status", "--nats", &right_url], &[]);
    assert!(o.status.success(), "credentials in the URL: {}", text(&o));
    assert_no_secret(&server, &text(&o), "status");

    // A worker with wrong credentials exits at once; one on the submitter's role says which
    // permission it is refused, in one line, and exits.
    let (o, took) = run_timed(&["worker", "--nats", &url, "--id", "w-bad"], &env);
    assert!(!o.status.success() && took < Duration::from_secs(10), "{took:?} {}", text(&o));
    assert!(text(&o).contains("authorization violation"), "{}", text(&o));
    let (o, took) = run_timed(&["worker", "--nats", &url, "--id", "w-sub"], &submitter);
    assert!(!o.status.success() && took < Duration::from_secs(15), "{took:?} {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
    assert!(line.contains("Permissions Violation") && line.contains("worker role"), "{err}");
    assert_no_secret(&server, &err, "worker");
}

/// A CA, and a server certificate for 127.0.0.1 and localhost it signed, written as PEM files.
fn make_certificates(dir: &Path) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "scriptorium test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server-key.pem"), key.serialize_pem()).unwrap();
    // A client certificate, for servers that verify clients.
    let mut client = rcgen::CertificateParams::new(vec!["scriptorium-client".to_string()]).unwrap();
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client_cert = client.signed_by(&client_key, &ca).unwrap();
    std::fs::write(dir.join("client.pem"), client_cert.pem()).unwrap();
    std::fs::write(dir.join("client-key.pem"), client_key.serialize_pem()).unwrap();
}

#[test]
fn a_server_that_verifies_clients_takes_the_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let path = |f: &str| certs.path().join(f).display().to_string();
    let tls = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n}}\n",
        path("server.pem"),
        path("server-key.pem"),
        path("ca.pem")
    );
    let server = AuthServer::start(&tls);
    let url = format!("tls://127.0.0.1:{}", server.nats.port());
    let mut env = server.env("submitter");
    env.push(("SCRIPTORIUM_NATS_CA", path("ca.pem")));
    // The coordinator role sets the streams up (over TLS, with its client certificate).
    let owner = NatsOptions {
        auth: NatsAuth {
            ca_file: Some(certs.path().join("ca.pem")),
            cert_file: Some(certs.path().join("client.pem")),
            key_file: Some(certs.path().join("client-key.pem")),
            ..server.options("coordinator", Role::Coordinator).auth
        },
        ..server.options("coordinator", Role::Coordinator)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _owner = rt.block_on(Bus::connect(&url, owner)).expect("the coordinator connects");
    // Without a client certificate the handshake fails, at once.
    let (o, took) = run_timed(&["status", "--nats", &url], &env);
    assert!(!o.status.success() && took < Duration::from_secs(10), "{took:?} {}", text(&o));
    // With one (flags: file paths are no secret), the tool reads status.
    let (cert, key) = (path("client.pem"), path("client-key.pem"));
    let args = ["status", "--nats", &url, "--nats-cert", &cert, "--nats-key", &key];
    let (o, _) = run_timed(&args, &env);
    assert!(o.status.success(), "with the client certificate: {}", text(&o));
    // A certificate without its key is refused before any connection.
    let (o, _) = run_timed(&["status", "--nats", &url, "--nats-cert", &cert], &env);
    assert!(!o.status.success());
    assert!(text(&o).contains("--nats-key"), "{}", text(&o));
}

#[test]
fn a_book_completes_over_tls_with_a_ca_the_test_made() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let tls = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
        certs.path().join("server.pem").display(),
        certs.path().join("server-key.pem").display()
    );
    let server = AuthServer::start(&tls);
    let url = format!("tls://127.0.0.1:{}", server.nats.port());
    let ca = certs.path().join("ca.pem").display().to_string();
    let with_ca = |role: &'static str| {
        let mut env = server.env(role);
        env.push(("SCRIPTORIUM_NATS_CA", ca.clone()));
        env
    };
    // Without the CA, the server's certificate is not trusted: a TLS error, at once.
    let (o, took) = run_timed(&["status", "--nats", &url], &server.env("submitter"));
    assert!(!o.status.success() && took < Duration::from_secs(10), "{took:?} {}", text(&o));
    assert!(
        text(&o).to_lowercase().contains("tls") || text(&o).contains("certificate"),
        "{}",
        text(&o)
    );

    let out = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let outs = out.path().display().to_string();
    let coord_env = with_ca("coordinator");
    let _coord = Proc::start(
        &["coordinator", "--nats", &url, "--out", &outs],
        &logs.path().join("coordinator.log"),
        &env_refs(&coord_env),
    );
    let worker_env = with_ca("worker");
    let _worker = Proc::start(
        &["worker", "--nats", &url, "--id", "w-tls"],
        &logs.path().join("worker.log"),
        &env_refs(&worker_env),
    );
    let brief = example("fantasy.toml").display().to_string();
    let o = run(
        &["submit", &brief, "--nats", &url, "--chapters", "1", "--wait", "--timeout", "120"],
        &env_refs(&with_ca("submitter")),
    );
    assert!(o.status.success(), "submit over TLS: {}", text(&o));
    wait_until(Duration::from_secs(60), "the book written", || !book_dirs(out.path()).is_empty());
    let dirs = book_dirs(out.path());
    assert_eq!(dirs.len(), 1, "one book written");
    assert_book(&dirs[0]);
}

/// A coordinator whose dashboard listens on every interface (`0.0.0.0`), reached on loopback.
fn dashboard(nats: &NatsServer, token: Option<&str>, logs: &Path) -> (Proc, String) {
    let bind = "0.0.0.0:0";
    let out = logs.join("books");
    let env: Vec<(&str, &str)> =
        token.map(|t| vec![("SCRIPTORIUM_HTTP_TOKEN", t)]).unwrap_or_default();
    let mut coord = Proc::start(
        &[
            "coordinator",
            "--nats",
            &nats.url(),
            "--out",
            out.to_str().unwrap(),
            "--http-addr",
            bind,
        ],
        &logs.join(format!("coordinator-{}.log", token.is_some())),
        &env,
    );
    let addr = coord.ready_http(Duration::from_secs(30));
    (coord, addr)
}

/// The status of a GET with `Authorization: Bearer <token>`.
fn bearer_get(addr: &str, path: &str, token: &str) -> u16 {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).expect("the dashboard answers");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 16];
    let n = s.read(&mut head).unwrap_or(0);
    let text = String::from_utf8_lossy(&head[..n]).to_string();
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn a_dashboard_beyond_loopback_needs_the_token_and_its_actions_always_do() {
    use common::browser::{Driver, http};
    const TOKEN: &str = "dash-token-for-tests-0077";
    let nats = NatsServer::start();
    let logs = tempfile::tempdir().unwrap();
    let (_coord, addr) = dashboard(&nats, Some(TOKEN), logs.path());
    // Probes and Prometheus stay open.
    for open in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(http(&addr, "GET", open, None).0, 200, "{open} stays open");
    }
    // The page and its API need the token.
    for closed in ["/", "/api/snapshot", "/api/books/b1"] {
        let (code, body) = http(&addr, "GET", closed, None);
        assert_eq!(code, 401, "{closed} without the token: {body}");
        assert!(!body.contains(TOKEN));
    }
    assert_eq!(bearer_get(&addr, "/", TOKEN), 200, "with the token the page opens");
    assert_eq!(bearer_get(&addr, "/api/snapshot", TOKEN), 200);
    assert_eq!(bearer_get(&addr, "/", "wrong-token"), 401);
    // An action without the token is refused, whatever the bind.
    let (code, _) = http(&addr, "POST", "/api/books/b1/cancel", Some(&serde_json::json!({})));
    assert_eq!(code, 401, "an action without the token");

    // In a browser: refused without the token; `/?token=` once opens it (a cookie) and the page
    // loads its snapshots.
    let driver = Driver::start();
    driver.cmd("POST", "/url", Some(&serde_json::json!({"url": format!("http://{addr}/")})));
    let body = driver.text("body");
    assert!(body.contains("operator token is required"), "{body}");
    let opened = format!("http://{addr}/?token={TOKEN}");
    driver.cmd("POST", "/url", Some(&serde_json::json!({ "url": opened })));
    let title = driver.js("return document.title;");
    assert_eq!(title, "Scriptorium");
    let url = driver.js("return location.href;");
    assert!(!url.as_str().unwrap_or_default().contains(TOKEN), "the token leaves the address bar");

    // Beyond loopback without any token configured, the dashboard is closed, probes open.
    let (_bare, bare) = dashboard(&nats, None, logs.path());
    assert_eq!(http(&bare, "GET", "/", None).0, 403);
    assert_eq!(http(&bare, "GET", "/readyz", None).0, 200);
}
