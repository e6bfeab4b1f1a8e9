//! The deployment files against the binary: every manifest parses; every command, flag,
//! environment variable, port, probe path, stream and consumer they name exists (in
//! `scriptorium --help`, the README's configuration table, `proto/src/names.rs`, the metrics);
//! and the compose services, started as plain processes with exactly their commands and
//! environment (no Docker engine here), write books.

mod common;

use common::*;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use yaml_rust2::{Yaml, YamlLoader};

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => {
            s.parse::<f64>().map(Value::from).unwrap_or_else(|_| Value::from(s.clone()))
        }
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::from(s.clone()),
        Yaml::Boolean(b) => Value::from(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    other => to_json(other).to_string(),
                };
                m.insert(key, to_json(v));
            }
            Value::Object(m)
        }
        Yaml::Null | Yaml::BadValue | Yaml::Alias(_) => Value::Null,
    }
}

/// Every document of a YAML file, as JSON values.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let docs = YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
    docs.iter().map(to_json).filter(|d| !d.is_null()).collect()
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn k8s_docs() -> Vec<Value> {
    let mut all = Vec::new();
    let mut paths = Vec::new();
    files(&deploy().join("k8s"), &mut paths);
    for p in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
        all.extend(yaml_docs(p));
    }
    all
}

fn compose() -> Value {
    yaml_docs(&deploy().join("compose.yaml")).remove(0)
}

/// The NATS services of the compose file (image `nats:...`), by name.
fn nats_services(compose: &Value) -> Vec<(String, Value)> {
    let services = compose["services"].as_object().unwrap();
    let nats: Vec<(String, Value)> = services
        .iter()
        .filter(|(_, s)| s["image"].as_str().is_some_and(|i| i.starts_with("nats:")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(!nats.is_empty(), "compose runs NATS");
    nats
}

/// What `scriptorium --help` and each subcommand's help offer.
struct Cli {
    subcommands: BTreeSet<String>,
    flags: BTreeMap<String, BTreeSet<String>>,
    envs: BTreeMap<String, BTreeSet<String>>,
    global_envs: BTreeSet<String>,
}

fn help(args: &[&str]) -> String {
    let o = run(args, &[]);
    assert!(o.status.success(), "{args:?}");
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn envs_in(text: &str) -> BTreeSet<String> {
    text.match_indices("[env: ")
        .map(|(i, _)| text[i + 6..].split(['=', ']']).next().unwrap().to_string())
        .collect()
}

fn flags_in(text: &str) -> BTreeSet<String> {
    text.split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches([',', '.']).split('=').next().unwrap().to_string())
        .map(|w| w.split(['<', ' ']).next().unwrap().to_string())
        .collect()
}

fn cli() -> Cli {
    let top = help(&["--help"]);
    let commands = top.split("Commands:").nth(1).unwrap().split("Options:").next().unwrap();
    let subcommands: BTreeSet<String> = commands
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .map(str::to_string)
        .collect();
    let global_envs = envs_in(&top);
    let mut flags = BTreeMap::new();
    let mut envs = BTreeMap::new();
    for s in &subcommands {
        let text = help(&[s, "--help"]);
        flags.insert(s.clone(), flags_in(&text));
        envs.insert(s.clone(), envs_in(&text));
    }
    Cli { subcommands, flags, envs, global_envs }
}

/// The first-column names of the README's configuration table.
fn config_table() -> BTreeSet<String> {
    let readme = read(&root().join("README.md"));
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README has a `## Configuration` section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut names = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with('|')) {
        let first = row.split('|').nth(1).unwrap_or("");
        for (i, part) in first.split('`').enumerate() {
            if i % 2 == 1 {
                names.insert(part.to_string());
            }
        }
    }
    assert!(names.len() > 20, "configuration table too small: {names:?}");
    names
}

/// The host:port of an address value (`0.0.0.0:9090`), its port.
fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap_or_else(|_| panic!("no port in {addr}"))
}

/// Checks one scriptorium container: its command, flags and environment exist, and returns the
/// ports its address variables listen on.
fn check_container(
    cli: &Cli,
    table: &BTreeSet<String>,
    what: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
) -> BTreeSet<u16> {
    let sub = &args[0];
    assert!(cli.subcommands.contains(sub), "{what}: `{sub}` is not a subcommand");
    for a in args.iter().filter(|a| a.starts_with("--")) {
        let flag = a.split('=').next().unwrap();
        assert!(cli.flags[sub].contains(flag), "{what}: `{sub}` has no flag {flag}");
    }
    let mut ports = BTreeSet::new();
    for (k, v) in env {
        assert!(table.contains(k), "{what}: env {k} is not in the README configuration table");
        if k.starts_with("SCRIPTORIUM_") {
            assert!(
                cli.envs[sub].contains(k) || cli.global_envs.contains(k),
                "{what}: `scriptorium {sub} --help` reads no {k}"
            );
        }
        if k.ends_with("_ADDR") {
            ports.insert(port_of(v));
        }
    }
    ports
}

fn env_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or(v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Dockerfile instructions (`ENV`, `EXPOSE`, ...) of the last stage.
fn dockerfile_final_stage() -> Vec<(String, String)> {
    let text = read(&deploy().join("Dockerfile")).replace("\\\n", " ");
    let mut stage = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (op, rest) = line.split_once(' ').unwrap_or((line, ""));
        if op == "FROM" {
            stage.clear();
        }
        stage.push((op.to_string(), rest.trim().to_string()));
    }
    stage
}

#[test]
fn every_manifest_parses_and_the_config_file_is_the_one_in_the_configmap() {
    let mut paths = Vec::new();
    files(&deploy(), &mut paths);
    let mut seen = 0;
    for p in &paths {
        match p.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                assert!(!yaml_docs(p).is_empty(), "{}: empty", p.display());
                seen += 1;
            }
            Some("json") => {
                let _: Value = serde_json::from_str(&read(p))
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                seen += 1;
            }
            _ => {}
        }
    }
    assert!(seen >= 10, "manifests found: {seen}");
    let cm = k8s_docs().into_iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert_eq!(
        cm["data"]["scriptorium.toml"].as_str().unwrap(),
        read(&deploy().join("scriptorium.toml")),
        "deploy/k8s/configmap.yaml holds deploy/scriptorium.toml"
    );
    // The config file loads (keys known, values valid) and writes a book.
    let out = tempfile::tempdir().unwrap();
    let cfg = deploy().join("scriptorium.toml");
    let o = run(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "write",
            example("nonfiction.toml").to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(book_dirs(out.path()).len(), 1);
    // Every key of the file is in the table.
    let table = config_table();
    let mut section = String::new();
    for line in read(&cfg).lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_string();
        } else if let Some((k, _)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            let key = format!("{section}.{}", k.trim());
            let generic = key.rsplit_once('.').map(|(s, _)| format!("{s}.<kind>")).unwrap();
            assert!(
                table.contains(&key) || table.contains(&generic),
                "{key} is not in the README configuration table"
            );
        }
    }
}

#[test]
fn manifests_name_only_real_commands_flags_variables_ports_and_names() {
    let cli = cli();
    let table = config_table();
    // The table documents every variable the binary reads.
    for e in cli.envs.values().flatten().chain(&cli.global_envs) {
        assert!(table.contains(e), "{e} (in --help) is not in the README configuration table");
    }

    // Dockerfile: non-root, the binary as entrypoint, the config path, every served port exposed.
    let stage = dockerfile_final_stage();
    let get = |op: &str| {
        stage.iter().filter(|(o, _)| o == op).map(|(_, r)| r.clone()).collect::<Vec<_>>()
    };
    assert!(get("FROM")[0].contains("slim"), "small runtime image");
    assert!(get("USER").iter().all(|u| !u.starts_with("root") && !u.starts_with('0')));
    assert_eq!(get("ENTRYPOINT"), ["[\"scriptorium\"]"]);
    let image_env: BTreeMap<String, String> = get("ENV")
        .iter()
        .map(|e| e.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap())
        .collect();
    for k in image_env.keys() {
        assert!(table.contains(k) && cli.global_envs.contains(k), "image ENV {k}");
    }
    let exposed: BTreeSet<u16> = get("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace().map(|p| p.parse::<u16>().unwrap()))
        .collect();
    for (op, rest) in &stage {
        if op == "COPY" && !rest.starts_with("--from") {
            let src = rest.split_whitespace().next().unwrap();
            assert!(root().join(src).exists(), "COPY {src}: no such file");
        }
    }

    // Compose.
    let c = compose();
    let services = c["services"].as_object().unwrap();
    let mut compose_ports = BTreeMap::new();
    for (name, s) in services {
        let is_ours = s["image"].as_str().is_some_and(|i| i.starts_with("scriptorium"));
        if !is_ours {
            continue;
        }
        let ports = check_container(
            &cli,
            &table,
            &format!("compose {name}"),
            &strings(&s["command"]),
            &env_map(&s["environment"]),
        );
        for p in strings(&s["ports"]).iter().chain(&strings(&s["expose"])) {
            let container: u16 = p.rsplit(':').next().unwrap().parse().unwrap();
            assert!(
                ports.contains(&container),
                "compose {name}: port {container} is served by no address ({ports:?})"
            );
        }
        assert!(ports.is_subset(&exposed), "Dockerfile EXPOSE {exposed:?} lacks {ports:?}");
        compose_ports.insert(name.clone(), ports);
    }
    assert!(compose_ports.contains_key("coordinator") && compose_ports.contains_key("worker"));
    assert!(services["worker"]["ports"].is_null(), "workers publish no host port, so they scale");
    for profile in ["prometheus", "grafana"] {
        assert_eq!(
            strings(&services[profile]["profiles"]),
            ["monitoring"],
            "{profile} is optional"
        );
    }
    // NATS: a JetStream cluster of as many servers as the config file's replicas, each routed
    // to every server.
    let nats = nats_services(&c);
    for (name, s) in &nats {
        let cmd = strings(&s["command"]);
        assert!(cmd.contains(&"--jetstream".to_string()), "{name} runs JetStream");
        if nats.len() > 1 {
            let routes = cmd.iter().skip_while(|a| *a != "--routes").nth(1).unwrap();
            for (other, _) in &nats {
                assert!(routes.contains(&format!("//{other}:")), "{name} routes to {other}");
            }
        }
    }
    let file: toml::Value = toml::from_str(&read(&deploy().join("scriptorium.toml"))).unwrap();
    let replicas = file["nats"]["replicas"].as_integer().unwrap_or(1) as usize;
    assert!(nats.len() >= replicas, "{replicas} replicas need as many servers ({})", nats.len());

    // Prometheus scrapes the ports the services serve metrics on.
    let prom = yaml_docs(&deploy().join("prometheus/prometheus.yml")).remove(0);
    let metrics_port =
        |svc: &str| port_of(&env_map(&services[svc]["environment"])["SCRIPTORIUM_METRICS_ADDR"]);
    let text = prom.to_string();
    assert!(text.contains(&format!("coordinator:{}", metrics_port("coordinator"))), "{text}");
    let worker_job = prom["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "scriptorium-worker")
        .unwrap();
    assert_eq!(worker_job["dns_sd_configs"][0]["port"], metrics_port("worker") as i64);

    // Grafana: every metric the dashboard plots exists.
    let known: BTreeSet<&str> = scriptorium_coordinator::metrics::NAMES
        .iter()
        .chain(scriptorium_worker::metrics::NAMES)
        .copied()
        .collect();
    let dash: Value =
        serde_json::from_str(&read(&deploy().join("grafana/dashboards/scriptorium.json"))).unwrap();
    let mut plotted = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("scriptorium_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .fold(name.clone(), |n, s| n.strip_suffix(s).map(str::to_string).unwrap_or(n));
                assert!(known.contains(base.as_str()), "grafana plots unknown metric {name}");
                plotted.insert(base);
            }
        }
    }
    for needed in [
        "scriptorium_queue_waiting",
        "scriptorium_worker_steps_total",
        "scriptorium_step_latency_seconds",
        "scriptorium_model_cost_microdollars_total",
        "scriptorium_cache_events_total",
    ] {
        assert!(plotted.contains(needed), "the dashboard shows {needed}");
    }
    let provisioning =
        yaml_docs(&deploy().join("grafana/provisioning/dashboards/scriptorium.yaml")).remove(0);
    let mounted = strings(&services["grafana"]["volumes"]);
    let path = provisioning["providers"][0]["options"]["path"].as_str().unwrap();
    assert!(
        mounted
            .iter()
            .any(|m| m.ends_with(&format!(":{path}:ro")) && m.starts_with("./grafana/dashboards")),
        "{mounted:?}"
    );

    // Kubernetes.
    let docs = k8s_docs();
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for k in ["Deployment", "ConfigMap", "Secret", "PodDisruptionBudget", "ScaledObject", "Service"]
    {
        assert!(kinds.contains(k), "deploy/k8s has a {k}");
    }
    let kustomization = docs.iter().find(|d| d["kind"] == "Kustomization").unwrap();
    for r in strings(&kustomization["resources"]) {
        assert!(deploy().join("k8s").join(&r).exists(), "kustomization lists missing {r}");
    }
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let secret = docs.iter().find(|d| d["kind"] == "Secret").unwrap();
    for key in secret["stringData"].as_object().unwrap().keys() {
        assert!(table.contains(key), "secret key {key} is not in the configuration table");
    }
    let deployments: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Deployment").collect();
    assert_eq!(deployments.len(), 2);
    for d in &deployments {
        let name = d["metadata"]["name"].as_str().unwrap();
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        let c = &pod["containers"][0];
        let env: BTreeMap<String, String> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["value"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let ports = check_container(&cli, &table, name, &strings(&c["args"]), &env);
        let declared: BTreeMap<String, u16> = c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["containerPort"].as_i64().unwrap() as u16,
                )
            })
            .collect();
        assert_eq!(
            declared.values().copied().collect::<BTreeSet<_>>(),
            ports,
            "{name}: containerPorts are the served ports"
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &c[probe]["httpGet"];
            assert_eq!(get["path"], path, "{name} {probe}");
            let port = get["port"].as_str().unwrap();
            let metrics = port_of(&env["SCRIPTORIUM_METRICS_ADDR"]);
            assert_eq!(
                declared.get(port),
                Some(&metrics),
                "{name} {probe} probes the metrics listener"
            );
        }
        // The config file comes from the ConfigMap, at the path SCRIPTORIUM_CONFIG names.
        let cfg_path = Path::new(&env["SCRIPTORIUM_CONFIG"]);
        let mount =
            c["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == "config").unwrap();
        assert_eq!(cfg_path.parent().unwrap(), Path::new(mount["mountPath"].as_str().unwrap()));
        let vol =
            pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "config").unwrap();
        assert_eq!(vol["configMap"]["name"], cm["metadata"]["name"]);
        assert!(cm["data"][cfg_path.file_name().unwrap().to_str().unwrap()].is_string());
        assert!(env["SCRIPTORIUM_NATS"].starts_with("nats://"), "{name}");
    }
    let worker = deployments
        .iter()
        .find(|d| d["spec"]["template"]["spec"]["containers"][0]["args"][0] == "worker")
        .unwrap();
    let worker_pod = &worker["spec"]["template"]["spec"];
    assert_eq!(
        worker_pod["containers"][0]["envFrom"][0]["secretRef"]["name"], secret["metadata"]["name"],
        "keys from the Secret"
    );
    let labels = &worker["spec"]["template"]["metadata"]["labels"];
    let pdb = docs.iter().find(|d| d["kind"] == "PodDisruptionBudget").unwrap();
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "the PodDisruptionBudget selects the workers");
    }
    for svc in docs.iter().filter(|d| d["kind"] == "Service") {
        let target = deployments.iter().find(|d| {
            svc["spec"]["selector"]
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| &d["spec"]["template"]["metadata"]["labels"][k] == v)
        });
        let target = target.expect("every Service selects a Deployment");
        let names: Vec<&str> = target["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for p in svc["spec"]["ports"].as_array().unwrap() {
            assert!(names.contains(&p["targetPort"].as_str().unwrap()), "service port {p}");
        }
    }
    // KEDA scales the worker Deployment on the lag of every step consumer.
    let so = docs.iter().find(|d| d["kind"] == "ScaledObject").unwrap();
    assert_eq!(so["spec"]["scaleTargetRef"]["name"], worker["metadata"]["name"]);
    let triggers = so["spec"]["triggers"].as_array().unwrap();
    let consumers: BTreeSet<String> = triggers
        .iter()
        .map(|t| {
            assert_eq!(t["type"], "nats-jetstream");
            assert_eq!(t["metadata"]["stream"], scriptorium_proto::names::STEPS_STREAM);
            assert!(t["metadata"]["lagThreshold"].as_str().unwrap().parse::<u32>().unwrap() > 0);
            t["metadata"]["consumer"].as_str().unwrap().to_string()
        })
        .collect();
    let expected: BTreeSet<String> =
        scriptorium_proto::kind::agents().map(scriptorium_proto::names::step_consumer).collect();
    assert_eq!(consumers, expected);
}

/// A plain GET on loopback: status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return (0, String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// `${VAR:-default}` as compose interpolates it (here: nothing is set, so the default).
fn interpolate(v: &str) -> String {
    match v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
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
            let target = v.split(':').nth(1).unwrap().to_string();
            let dir = work.path().join(format!("{name}-volume-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            paths.push((target, dir));
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
    let (code, page) = get(&dashboard, "/");
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
                    &[],
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
    assert_eq!(streams.len(), 9, "{jsz}");
    for st in streams {
        assert_eq!(st["config"]["num_replicas"], want, "{}", st["name"]);
    }
    let o = run(&["workers", "--nats", &url, "--json"], &[]);
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
