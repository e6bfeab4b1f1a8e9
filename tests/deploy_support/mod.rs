//! Shared helpers of the deployment tests (`deploy.rs`, `deploy_compose.rs`): the files of
//! `deploy/` read as JSON values.

use super::common::root;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

/// The `deploy/` directory.
pub fn deploy() -> PathBuf {
    root().join("deploy")
}

/// A file's text; panics naming the file.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A YAML value as JSON (numbers, strings, lists and maps; keys as strings).
pub fn to_json(y: &Yaml) -> Value {
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
pub fn yaml_docs(path: &Path) -> Vec<Value> {
    let docs = YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
    docs.iter().map(to_json).filter(|d| !d.is_null()).collect()
}

/// `deploy/compose.yaml`.
pub fn compose() -> Value {
    yaml_docs(&deploy().join("compose.yaml")).remove(0)
}

/// The NATS services of the compose file (image `nats:...`), by name.
pub fn nats_services(compose: &Value) -> Vec<(String, Value)> {
    let services = compose["services"].as_object().unwrap();
    let nats: Vec<(String, Value)> = services
        .iter()
        .filter(|(_, s)| s["image"].as_str().is_some_and(|i| i.starts_with("nats:")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(!nats.is_empty(), "compose runs NATS");
    nats
}

/// The host:port of an address value (`0.0.0.0:9090`), its port.
pub fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap_or_else(|_| panic!("no port in {addr}"))
}

/// A compose or Kubernetes `environment` map, values as strings.
pub fn env_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or(v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A list of strings (empty when absent).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Dockerfile instructions (`ENV`, `EXPOSE`, ...) of the last stage.
pub fn dockerfile_final_stage() -> Vec<(String, String)> {
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
