//! The deployment files against the binary: every manifest parses; every command, flag,
//! environment variable, port, probe path, stream and consumer they name exists (in
//! `scriptorium --help`, the configuration table of `docs/configuration.md`,
//! `proto/src/names.rs`, the metrics). `deploy_compose.rs` starts the compose services.

mod common;
mod deploy_support;

use common::*;
use deploy_support::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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

/// The first-column names of the configuration table: `docs/configuration.md` holds one table,
/// of every key and variable.
fn config_table() -> BTreeSet<String> {
    let page = read(&root().join("docs/configuration.md"));
    let lines: Vec<&str> = page.lines().collect();
    let rows: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].starts_with('|')).collect();
    assert!(
        rows.windows(2).all(|w| w[1] == w[0] + 1),
        "docs/configuration.md holds one table, not several"
    );
    let mut names = BTreeSet::new();
    for row in rows.iter().map(|&i| lines[i]) {
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

/// Secrets the binary reads from the environment only (a flag would show in `ps`, so `--help`
/// has none): each must be read by name in the sources that take it.
const ENV_ONLY: [(&str, &str); 4] = [
    ("SCRIPTORIUM_HTTP_TOKEN", "src/main.rs"),
    ("SCRIPTORIUM_NATS_USER", "proto/src/transport/nats/auth.rs"),
    ("SCRIPTORIUM_NATS_PASSWORD", "proto/src/transport/nats/auth.rs"),
    ("SCRIPTORIUM_NATS_TOKEN", "proto/src/transport/nats/auth.rs"),
];

/// Whether `k` is one of [`ENV_ONLY`], checking that its source reads it.
fn env_only(k: &str) -> bool {
    let Some((_, source)) = ENV_ONLY.iter().find(|(name, _)| *name == k) else { return false };
    let text = read(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(source));
    assert!(text.contains(&format!("\"{k}\"")), "{source} reads {k}");
    true
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
        assert!(table.contains(k), "{what}: env {k} is not in the configuration table");
        if k.starts_with("SCRIPTORIUM_") && !env_only(k) {
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
                "{key} is not in the configuration table"
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
        assert!(table.contains(e), "{e} (in --help) is not in the configuration table");
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
    let secret = docs
        .iter()
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "scriptorium-keys")
        .unwrap();
    // Every other Secret holds variables the binary reads (NATS roles, the dashboard token).
    for s in docs.iter().filter(|d| d["kind"] == "Secret") {
        for key in s["stringData"].as_object().unwrap().keys() {
            assert!(table.contains(key), "secret key {key} is not in the configuration table");
        }
    }
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
        // Over TLS, with the CA from its Secret, as its own role.
        assert!(env["SCRIPTORIUM_NATS"].starts_with("tls://"), "{name}");
        let ca = Path::new(&env["SCRIPTORIUM_NATS_CA"]);
        let mount =
            c["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == "nats-ca").unwrap();
        assert_eq!(ca.parent().unwrap(), Path::new(mount["mountPath"].as_str().unwrap()));
        let roles: Vec<&str> = c["envFrom"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["secretRef"]["name"].as_str())
            .filter(|n| n.starts_with("scriptorium-nats-"))
            .collect();
        assert_eq!(roles.len(), 1, "{name} runs as one NATS role: {roles:?}");
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
    // KEDA scales the worker Deployment on the lag of every step consumer, priority ones too.
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
    let expected: BTreeSet<String> = scriptorium_proto::kind::agents()
        .flat_map(|k| {
            [
                scriptorium_proto::names::step_consumer(k),
                scriptorium_proto::names::priority_step_consumer(k),
            ]
        })
        .collect();
    assert_eq!(consumers, expected, "the normal and the priority consumer of every kind");
}
