//! A private nats-server for a bench run without `--nats`.

use anyhow::Context as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// JetStream on a free loopback port with a temporary store, killed on drop.
///
/// Not the tests' launcher (`scriptorium-test-support`, which no product crate depends on): the
/// bench needs no config file, cluster, restart or health endpoint. It waits for the client port
/// to accept connections (a single server enables JetStream before that), and `Bus::connect`
/// retries whatever is not ready yet.
pub(super) struct PrivateNats {
    child: Child,
    pub(super) url: String,
    /// Its monitoring endpoint (`/varz`), for the messages and bytes it took in.
    monitor: String,
    _store: tempfile::TempDir,
}

/// What the server has done so far: CPU time (user and system, from `/proc`) and the messages
/// and bytes clients sent it (its `/varz`). The difference of two is the work between them.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ServerWork {
    pub(super) cpu_s: f64,
    pub(super) msgs_in: f64,
    pub(super) bytes_in: f64,
}

impl std::ops::Sub for ServerWork {
    type Output = ServerWork;
    fn sub(self, o: ServerWork) -> ServerWork {
        ServerWork {
            cpu_s: self.cpu_s - o.cpu_s,
            msgs_in: self.msgs_in - o.msgs_in,
            bytes_in: self.bytes_in - o.bytes_in,
        }
    }
}

/// CPU seconds (user and system) process `pid` has used, where the system tells it.
pub(super) fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from the 3rd: utime is the 14th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel's clock tick for these fields is USER_HZ, 100 on every Linux port.
    Some(ticks / 100.0)
}

impl PrivateNats {
    pub(super) async fn start() -> anyhow::Result<Self> {
        let store = tempfile::Builder::new()
            .prefix("scriptorium-bench-nats-")
            .tempdir()
            .context("creating a store for the private nats-server")?;
        // Free now; another process taking it before the server does shows as a failed connect.
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .context("finding a free port for the private nats-server")
                .map(|a| a.port())
        };
        let (port, monitor) = (free()?, free()?);
        let spawn = |binary: &str| {
            Command::new(binary)
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-m", &monitor.to_string()])
                .args(["-js", "-sd"])
                .arg(store.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        // Debian and Ubuntu install it in /usr/sbin, which a user's PATH often lacks.
        let child = spawn("nats-server")
            .or_else(|_| spawn("/usr/sbin/nats-server"))
            .context("starting nats-server (install the nats-server package, or pass --nats)")?;
        let mut server = Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            monitor: format!("http://127.0.0.1:{monitor}/varz"),
            _store: store,
        };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("the private nats-server exited while starting ({status})");
            }
            if started.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("the private nats-server took over 30 s to open port {port}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(server)
    }
}

impl PrivateNats {
    /// The server's work so far; `None` where the system or the server does not tell it.
    pub(super) async fn work(&self) -> Option<ServerWork> {
        #[derive(serde::Deserialize)]
        struct Varz {
            in_msgs: f64,
            in_bytes: f64,
        }
        scriptorium_worker::tls::install_crypto_provider();
        let varz: Varz = reqwest::get(&self.monitor).await.ok()?.json().await.ok()?;
        let cpu_s = cpu_seconds(&self.child.id().to_string())?;
        Some(ServerWork { cpu_s, msgs_in: varz.in_msgs, bytes_in: varz.in_bytes })
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
