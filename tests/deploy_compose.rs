//! The compose services, started as plain processes with exactly their commands and environment
//! (no Docker engine here): three nats-servers in a cluster, the coordinator and the workers
//! write books submitted from outside.

mod common;
mod deploy_support;

use common::*;
use deploy_support::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A plain GET on loopback: status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    get_with(addr, path, "")
}

/// A GET with extra header lines (each ending in CRLF).
fn get_with(addr: &str, path: &str, headers: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return (0, String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// What the test sets of the variables compose requires (`${VAR:?message}`).
const REQUIRED: [(&str, &str); 5] = [
    ("SCRIPTORIUM_HTTP_TOKEN", "compose-test-token"),
    ("SCRIPTORIUM_COORDINATOR_PASSWORD", "compose-coordinator-pw"),
    ("SCRIPTORIUM_WORKER_PASSWORD", "compose-worker-pw"),
    ("SCRIPTORIUM_SUBMITTER_PASSWORD", "compose-submitter-pw"),
    ("SCRIPTORIUM_OPERATOR_PASSWORD", "compose-operator-pw"),
];

/// `${VAR:-default}` as compose interpolates it (here: nothing is set, so the default), and
/// `${VAR:?message}` with the value the test sets ([`REQUIRED`]).
fn interpolate(v: &str) -> String {
    match v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        Some(inner) if inner.contains(":?") => {
            let name = inner.split(":?").next().unwrap_or_default();
            REQUIRED
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        }
        Some(inner) => inner.split_once(":-").map(|(_, d)| d.to_string()).unwrap_or_default(),
        None => v.to_string(),
    }
}

struct Started {
    child: Child,
    log: PathBuf,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Maps what a container sees to this machine: service host names and container ports to
/// loopback and free ports, volume targets to directories.
struct Mapping {
    hosts: BTreeMap<String, String>,
    ports: BTreeMap<u16, u16>,
    paths: Vec<(String, PathBuf)>,
}

impl Mapping {
    fn value(&self, v: &str) -> String {
        let v = interpolate(v);
        if v.contains(',') {
            // A list (of servers, of routes): each element on its own.
            return v.split(',').map(|one| self.value(one)).collect::<Vec<_>>().join(",");
        }
        let mut v = v;
        for (host, local) in &self.hosts {
            v = v.replace(&format!("//{host}:"), &format!("//{local}:"));
        }
        for listen in ["nats://127.0.0.1:", "nats://0.0.0.0:"] {
            if let Some(rest) = v.strip_prefix(listen)
                && let Some(local) = rest.parse().ok().and_then(|p: u16| self.ports.get(&p))
            {
                return format!("nats://127.0.0.1:{local}");
            }
        }
        if let Some((h, p)) = v.rsplit_once(':')
            && (h == "0.0.0.0" || h == "127.0.0.1")
            && let Some(local) = p.parse().ok().and_then(|p: u16| self.ports.get(&p))
        {
            return format!("127.0.0.1:{local}");
        }
        for (target, local) in &self.paths {
            if let Some(rest) = v.strip_prefix(target.as_str()) {
                return format!("{}{rest}", local.display());
            }
        }
        v
    }
}

#[test]
fn compose_services_started_as_processes_write_books() {
    let c = compose();
    let services = &c["services"];
    let work = tempfile::tempdir().unwrap();
    let image_env: BTreeMap<String, String> = dockerfile_final_stage()
        .into_iter()
        .filter(|(op, _)| op == "ENV")
        .map(|(_, e)| e.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap())
        .collect();

    // The NATS servers, each with its compose command; their container ports (distinct across
    // the servers) and store volumes mapped, their host names to loopback.
    let nats = nats_services(&c);
    let client_port = free_port();
    let mut ports: BTreeMap<u16, u16> = BTreeMap::from([(4222, client_port)]);
    for (_, s) in &nats {
        for p in strings(&s["ports"]) {
            let container: u16 = p.rsplit(':').next().unwrap().parse().unwrap();
            ports.entry(container).or_insert_with(free_port);
        }
        let cmd = strings(&s["command"]);
        if let Some(cluster) = cmd.iter().skip_while(|a| *a != "--cluster").nth(1) {
            ports.entry(port_of(cluster)).or_insert_with(free_port);
        }
    }
    let nats_hosts: BTreeMap<String, String> =
        nats.iter().map(|(name, _)| (name.clone(), "127.0.0.1".to_string())).collect();
    let server = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("nats-server");
    let mut _nats = Vec::new();
    let mut health = Vec::new();
    for (name, s) in &nats {
        let mut paths = Vec::new();
        for (i, v) in strings(&s["volumes"]).iter().enumerate() {
            let (src, target) = (v.split(':').next().unwrap(), v.split(':').nth(1).unwrap());
            // A file of deploy/ (the role config), or a named volume (the store).
            let local = if src.starts_with("./") {
                deploy().join(src.trim_start_matches("./"))
            } else {
                let dir = work.path().join(format!("{name}-volume-{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                dir
            };
            paths.push((target.to_string(), local));
        }
        let map = Mapping { hosts: nats_hosts.clone(), ports: ports.clone(), paths };
        let args: Vec<String> = strings(&s["command"])
            .iter()
            .map(|a| {
                a.parse::<u16>()
                    .ok()
                    .and_then(|p| ports.get(&p))
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| map.value(a))
            })
            .collect();
        let log = work.path().join(format!("{name}.log"));
        _nats.push(Started {
            child: Command::new(server)
                .args(&args)
                .args(["--addr", "127.0.0.1"])
                .envs(env_map(&s["environment"]).into_iter().map(|(k, v)| (k, map.value(&v))))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
            log,
        });
        // The compose healthcheck, against the mapped monitoring port.
        let check = strings(&s["healthcheck"]["test"]);
        let url = check.iter().find(|a| a.starts_with("http://")).unwrap();
        let (hostport, path) = url.trim_start_matches("http://").split_once('/').unwrap();
        health.push((map.value(&format!("0.0.0.0:{}", port_of(hostport))), format!("/{path}")));
    }
    for (addr, path) in &health {
        wait_until(Duration::from_secs(30), &format!("nats healthcheck {addr}"), || {
            get(addr, path).0 == 200
        });
    }

    // Coordinator and workers: the compose command and environment, plus the image's ENV.
    let books = work.path().join("books");
    std::fs::create_dir_all(&books).unwrap();
    let replicas = services["worker"]["deploy"]["replicas"].as_u64().unwrap_or(1) as usize;
    assert!(replicas >= 2, "compose starts several workers");
    let mut procs = Vec::new();
    let mut served: BTreeMap<String, BTreeMap<u16, u16>> = BTreeMap::new();
    let instances: Vec<(String, String)> =
        std::iter::once(("coordinator".to_string(), "coordinator".to_string()))
            .chain((1..=replicas).map(|i| ("worker".to_string(), format!("worker-{i}"))))
            .collect();
    for (service, instance) in &instances {
        let s = &services[service.as_str()];
        // Each container has its own network namespace: its ports map to its own free ports.
        let mut own_ports = BTreeMap::new();
        for (k, v) in env_map(&s["environment"]) {
            if k.ends_with("_ADDR") {
                own_ports.insert(port_of(&v), free_port());
            }
        }
        let mut all_ports = ports.clone();
        all_ports.extend(own_ports.clone());
        let mut paths = vec![];
        for v in strings(&s["volumes"]) {
            let mut parts = v.split(':');
            let (src, target) = (parts.next().unwrap(), parts.next().unwrap().to_string());
            let local = if src.starts_with("./") {
                deploy().join(src.trim_start_matches("./"))
            } else {
                books.clone()
            };
            paths.push((target, local));
        }
        let map = Mapping { hosts: nats_hosts.clone(), ports: all_ports, paths };
        let mut env: BTreeMap<String, String> =
            image_env.iter().map(|(k, v)| (k.clone(), map.value(v))).collect();
        for (k, v) in env_map(&s["environment"]) {
            env.insert(k, map.value(&v));
        }
        env.insert("HOSTNAME".into(), instance.clone());
        let log = work.path().join(format!("{instance}.log"));
        let cwd = work.path().join(instance);
        std::fs::create_dir_all(&cwd).unwrap();
        let child = Command::new(bin())
            .args(strings(&s["command"]))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&env)
            .current_dir(&cwd)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        procs.push(Started { child, log });
        served.insert(instance.clone(), own_ports);
    }
    // Every instance becomes ready on its metrics port (the probes of deploy/k8s use the same).
    for (instance, ports) in &served {
        let metrics = ports.values().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>();
        wait_until(Duration::from_secs(30), &format!("{instance} ready"), || {
            metrics.iter().any(|a| get(a, "/readyz").0 == 200)
        });
    }
    let coord_ports = &served["coordinator"];
    let dashboard = format!(
        "127.0.0.1:{}",
        coord_ports
            [&port_of(&env_map(&services["coordinator"]["environment"])["SCRIPTORIUM_HTTP_ADDR"])]
    );
    // The token compose requires opens the dashboard (here bound to loopback, as every address
    // is mapped; beyond loopback it is closed without the token: tests/auth.rs).
    let (code, page) = get_with(&dashboard, "/", "Authorization: Bearer compose-test-token\r\n");
    assert_eq!(code, 200);
    assert!(page.contains("<title>Scriptorium</title>"));

    // Books submitted from outside, as an operator would.
    let url = format!("nats://127.0.0.1:{client_port}");
    let submits: Vec<_> = [("fantasy.toml", "1"), ("nonfiction.toml", "2"), ("business.toml", "3")]
        .into_iter()
        .map(|(b, seed)| {
            let (url, brief) = (url.clone(), example(b).display().to_string());
            std::thread::spawn(move || {
                run(
                    &[
                        "submit",
                        &brief,
                        "--nats",
                        &url,
                        "--seed",
                        seed,
                        "--wait",
                        "--timeout",
                        "120",
                    ],
                    &[
                        ("SCRIPTORIUM_NATS_USER", "submitter"),
                        ("SCRIPTORIUM_NATS_PASSWORD", "compose-submitter-pw"),
                    ],
                )
            })
        })
        .collect();
    for s in submits {
        let o = s.join().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_books(&books, &["salt-harbour", "quiet-systems", "small-bets"]);
    // Every stream is kept on as many servers as the config file asks.
    let file: toml::Value = toml::from_str(&read(&deploy().join("scriptorium.toml"))).unwrap();
    let want = file["nats"]["replicas"].as_integer().unwrap_or(1);
    let jsz = http_get(&health[0].0, "/jsz?accounts=true&streams=true&config=true");
    let jsz: Value = serde_json::from_str(&jsz).unwrap();
    let streams: Vec<&Value> = jsz["account_details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["stream_detail"].as_array())
        .flatten()
        .collect();
    assert_eq!(streams.len(), 12, "{jsz}");
    for st in streams {
        assert_eq!(st["config"]["num_replicas"], want, "{}", st["name"]);
    }
    let o = run(
        &["workers", "--nats", &url, "--json"],
        &[
            ("SCRIPTORIUM_NATS_USER", "submitter"),
            ("SCRIPTORIUM_NATS_PASSWORD", "compose-submitter-pw"),
        ],
    );
    let w: Value = serde_json::from_slice(&o.stdout).unwrap();
    let hosts: BTreeSet<&str> = w["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["state"] == "up")
        .map(|w| w["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts.len(), replicas, "{w}");

    // JSON logs (SCRIPTORIUM_LOG_FORMAT=json): every line is JSON, and the coordinator's lines
    // inside a step handler carry the book, step, agent kind and attempt.
    let coordinator_log = read(&procs[0].log);
    let mut in_step = 0;
    for line in coordinator_log.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if v["fields"]["message"] == "book done" {
            let span = &v["span"];
            assert!(span["book_id"].is_string() && span["step"].is_string(), "{line}");
            assert!(span["kind"].is_string() && span["attempt"].is_number(), "{line}");
            in_step += 1;
        }
    }
    assert_eq!(in_step, 3, "one `book done` line per book, inside the step that finished it");
    for p in &procs[1..] {
        let text = read(&p.log);
        assert!(
            text.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()),
            "{}",
            p.log.display()
        );
    }
}
