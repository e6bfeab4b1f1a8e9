//! The one nats-server launcher of tests: a single server or a cluster of servers on loopback,
//! with JetStream and temporary stores, killed on drop.
//!
//! The API is blocking (std processes, polling with timeouts) so sync and async tests can both
//! use it; from async code, call it where blocking a runtime thread is acceptable (a
//! multi-threaded test runtime) or through `spawn_blocking`. Every constructor returns an
//! error, never panics, so a test can say what is missing.
//!
//! Each server runs from a generated config file (client port, monitoring port, JetStream store,
//! and for a cluster its name, route port and routes) and logs to a file beside it; readiness is
//! the monitoring endpoint `/healthz`, which answers 200 only once JetStream is ready (in a
//! cluster: a meta leader is known and this server is current with it).

use anyhow::{Context as _, bail};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to become ready (a loaded machine starts servers slowly).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The `nats-server` binary: the first of `/usr/sbin`, `/usr/bin`, `/usr/local/bin` that has
/// it, else the first on `PATH`.
pub fn binary() -> anyhow::Result<PathBuf> {
    let fixed = ["/usr/sbin", "/usr/bin", "/usr/local/bin"].into_iter().map(PathBuf::from);
    let path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    fixed
        .chain(path)
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
        .context("nats-server not found in /usr/sbin, /usr/bin, /usr/local/bin or PATH (install the nats-server package)")
}

/// One server: its ports, files and process.
struct Node {
    name: String,
    port: u16,
    http_port: u16,
    cluster_port: Option<u16>,
    dir: PathBuf,
    child: Option<Child>,
    /// Config text appended to the generated one (authorization, TLS).
    extra: String,
}

impl Node {
    fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("nats.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nats.log")
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Writes the config file; `routes` are the cluster ports of every node of the cluster.
    fn write_config(&self, cluster: Option<(&str, &[u16])>) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.store())
            .with_context(|| format!("creating {}", self.store().display()))?;
        let mut conf = format!(
            "server_name: \"{name}\"\nlisten: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{http}\"\n\
             jetstream {{\n  store_dir: \"{store}\"\n}}\n",
            name = self.name,
            port = self.port,
            http = self.http_port,
            store = self.store().display(),
        );
        if let (Some((cluster_name, ports)), Some(own)) = (cluster, self.cluster_port) {
            let routes: Vec<String> = ports
                .iter()
                .filter(|p| **p != own)
                .map(|p| format!("    \"nats-route://127.0.0.1:{p}\""))
                .collect();
            conf.push_str(&format!(
                "cluster {{\n  name: \"{cluster_name}\"\n  listen: \"127.0.0.1:{own}\"\n  \
                 routes: [\n{}\n  ]\n}}\n",
                routes.join("\n")
            ));
        }
        conf.push_str(&self.extra);
        std::fs::write(self.config_path(), conf)
            .with_context(|| format!("writing {}", self.config_path().display()))
    }

    fn spawn(&mut self, binary: &Path) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("opening {}", self.log_path().display()))?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(self.config_path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Whether `/healthz` answers 200 (JetStream ready).
    fn healthy(&self) -> bool {
        matches!(http_get(self.http_port, "/healthz"), Ok((200, _)))
    }

    /// The last lines of the server's log, for errors.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// Waits until the server is ready, failing early when it exits.
    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if !self.is_running() {
                bail!("nats-server {} exited while starting:\n{}", self.name, self.log_tail());
            }
            if self.healthy() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!(
                    "nats-server {} not ready after {timeout:?} (port {}):\n{}",
                    self.name,
                    self.port,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// How many times a server is started on fresh ports when a port was taken meanwhile.
const PORT_TRIES: u32 = 3;

/// `n` free TCP ports on loopback, distinct (all held open until every one is picked).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("finding free ports on 127.0.0.1")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .context("finding free ports on 127.0.0.1")
}

/// A plain HTTP/1.0 GET on loopback (so the answer is never chunked): status and body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// A single nats-server with JetStream on a free loopback port and a temporary store; killed
/// on drop.
pub struct NatsServer {
    node: Node,
    binary: PathBuf,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server and waits until JetStream is ready.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with("")
    }

    /// Starts a server whose config also holds `extra` (an `authorization` block, a `tls`
    /// block, variables), and waits until JetStream is ready. Readiness is read from the
    /// monitoring port, which stays plain HTTP and open.
    pub fn start_with(extra: &str) -> anyhow::Result<Self> {
        let binary = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("scriptorium-nats-")
            .tempdir()
            .context("creating a temporary directory for nats-server")?;
        // The ports are picked before the server binds them, so another test's process can
        // take one meanwhile: the server then exits at once, and is started again on others.
        let mut tries = 0;
        loop {
            tries += 1;
            let ports = free_ports(2)?;
            let mut node = Node {
                name: "scriptorium-test".into(),
                port: ports[0],
                http_port: ports[1],
                cluster_port: None,
                dir: dir.path().to_path_buf(),
                child: None,
                extra: extra.to_string(),
            };
            node.write_config(None)?;
            node.spawn(&binary)?;
            match node.wait_ready(READY_TIMEOUT) {
                Ok(()) => return Ok(Self { node, binary, _dir: dir }),
                Err(e)
                    if tries < PORT_TRIES && node.log_tail().contains("address already in use") =>
                {
                    eprintln!("nats-server: a port was taken meanwhile, trying others: {e}");
                    node.kill();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        self.node.url()
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.node.port
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.node.store()
    }

    /// Kills the server (SIGKILL): nothing is flushed, as in a crash.
    pub fn kill(&mut self) {
        self.node.kill();
    }

    /// Kills the server if it runs, starts it again on the same port and store, and waits
    /// until JetStream is ready.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.node.kill();
        self.node.spawn(&self.binary)?;
        self.node.wait_ready(READY_TIMEOUT)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.node.kill();
    }
}

/// A cluster of nats-servers with JetStream on loopback, each with its own client port, route
/// port, monitoring port, store and server name (`n0`, `n1`...); killed on drop.
pub struct Cluster {
    nodes: Vec<Node>,
    binary: PathBuf,
    _dir: tempfile::TempDir,
}

/// Name of the cluster the servers form.
pub const CLUSTER_NAME: &str = "scriptorium";

impl Cluster {
    /// Starts `size` servers routed to each other and waits until every one is ready
    /// (JetStream has a meta leader and every server is current with it).
    pub fn start(size: usize) -> anyhow::Result<Self> {
        if size == 0 {
            bail!("a cluster needs at least one server");
        }
        let binary = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("scriptorium-cluster-")
            .tempdir()
            .context("creating a temporary directory for the cluster")?;
        let ports = free_ports(3 * size)?;
        let route_ports: Vec<u16> = (0..size).map(|i| ports[3 * i + 2]).collect();
        let mut nodes = Vec::with_capacity(size);
        for i in 0..size {
            let node = Node {
                name: format!("n{i}"),
                port: ports[3 * i],
                http_port: ports[3 * i + 1],
                cluster_port: Some(route_ports[i]),
                dir: dir.path().join(format!("n{i}")),
                child: None,
                extra: String::new(),
            };
            node.write_config(Some((CLUSTER_NAME, &route_ports)))?;
            nodes.push(node);
        }
        let mut cluster = Self { nodes, binary, _dir: dir };
        for node in &mut cluster.nodes {
            node.spawn(&cluster.binary)?;
        }
        cluster.wait_ready(READY_TIMEOUT)?;
        Ok(cluster)
    }

    /// How many servers the cluster has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no server (never: `start` refuses it).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Client URLs of every server, comma separated (what a client connects with).
    pub fn urls(&self) -> String {
        self.nodes.iter().map(Node::url).collect::<Vec<_>>().join(",")
    }

    /// Client URL of server `node`.
    pub fn url(&self, node: usize) -> String {
        self.nodes[node].url()
    }

    /// Server name of server `node` (what JetStream reports as a leader).
    pub fn server_name(&self, node: usize) -> &str {
        &self.nodes[node].name
    }

    /// The index of the server called `server_name`.
    pub fn node_named(&self, server_name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == server_name)
    }

    /// Whether server `node` is running.
    pub fn is_running(&mut self, node: usize) -> bool {
        self.nodes[node].is_running()
    }

    /// Kills server `node` (SIGKILL), as in a crash.
    pub fn kill(&mut self, node: usize) {
        self.nodes[node].kill();
    }

    /// Kills server `node` if it runs, starts it again with the same ports and store, and
    /// waits until it is ready (current with the meta leader).
    pub fn restart(&mut self, node: usize) -> anyhow::Result<()> {
        let n = &mut self.nodes[node];
        n.kill();
        n.spawn(&self.binary)?;
        n.wait_ready(READY_TIMEOUT)
    }

    /// Waits until every running server is ready.
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        for node in self.nodes.iter_mut().filter(|n| n.child.is_some()) {
            node.wait_ready(timeout.saturating_sub(start.elapsed()))?;
        }
        Ok(())
    }

    /// The server leading `stream` (of the default account), as the running servers report it
    /// on their monitoring endpoint; `None` while it has no leader or nobody answers.
    pub fn stream_leader(&self, stream: &str) -> Option<usize> {
        self.nodes.iter().filter(|n| n.child.is_some()).find_map(|n| {
            let (200, body) = http_get(n.http_port, "/jsz?accounts=true&streams=true").ok()? else {
                return None;
            };
            let jsz: serde_json::Value = serde_json::from_str(&body).ok()?;
            let leader = jsz["account_details"]
                .as_array()?
                .iter()
                .filter_map(|a| a["stream_detail"].as_array())
                .flatten()
                .find(|s| s["name"] == stream)?["cluster"]["leader"]
                .as_str()?
                .to_string();
            self.node_named(&leader)
        })
    }

    /// Waits until `stream` has a leader among the running servers; returns its index.
    pub fn wait_for_stream_leader(
        &mut self,
        stream: &str,
        timeout: Duration,
    ) -> anyhow::Result<usize> {
        let start = Instant::now();
        loop {
            if let Some(i) = self.stream_leader(stream)
                && self.nodes[i].is_running()
            {
                return Ok(i);
            }
            if start.elapsed() > timeout {
                bail!("stream {stream} has no leader among the running servers after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_restarts_on_its_port_and_store() {
        let mut server = NatsServer::start().unwrap();
        let port = server.port();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(server.store_dir().is_dir());
        server.kill();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "killed means gone");
        server.restart().unwrap();
        assert_eq!(server.url(), format!("nats://127.0.0.1:{port}"));
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    }

    #[test]
    fn a_cluster_forms_and_a_node_comes_back() {
        let mut cluster = Cluster::start(3).unwrap();
        assert_eq!(cluster.urls().split(',').count(), 3);
        let jsz = http_get(cluster.nodes[0].http_port, "/jsz").unwrap().1;
        let jsz: serde_json::Value = serde_json::from_str(&jsz).unwrap();
        assert_eq!(jsz["meta_cluster"]["cluster_size"], 3, "{jsz}");
        assert_eq!(cluster.node_named("n2"), Some(2));
        assert_eq!(cluster.stream_leader("NO_SUCH_STREAM"), None);
        cluster.kill(1);
        assert!(!cluster.is_running(1));
        cluster.restart(1).unwrap();
        assert!(cluster.is_running(1));
    }

    #[test]
    fn a_missing_binary_or_empty_cluster_is_an_error_not_a_panic() {
        assert!(Cluster::start(0).is_err());
        assert!(http_get(free_ports(1).unwrap()[0], "/").is_err());
    }
}
