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
    _store: tempfile::TempDir,
}

impl PrivateNats {
    pub(super) async fn start() -> anyhow::Result<Self> {
        let store = tempfile::Builder::new()
            .prefix("scriptorium-bench-nats-")
            .tempdir()
            .context("creating a store for the private nats-server")?;
        // Free now; another process taking it before the server does shows as a failed connect.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port for the private nats-server")?
            .port();
        let spawn = |binary: &str| {
            Command::new(binary)
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(store.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        // Debian and Ubuntu install it in /usr/sbin, which a user's PATH often lacks.
        let child = spawn("nats-server")
            .or_else(|_| spawn("/usr/sbin/nats-server"))
            .context("starting nats-server (install the nats-server package, or pass --nats)")?;
        let mut server = Self { child, url: format!("nats://127.0.0.1:{port}"), _store: store };
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

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
