//! The work a step costs, beside the work a raw round trip of the floor costs: CPU time of the
//! private nats-server and of this process, and the messages and bytes the server took in. It
//! says where a gap to the floor comes from (more messages, bigger ones, or our own CPU).

use super::private_nats::{PrivateNats, ServerWork, cpu_seconds};

/// Reads the counters of the private server (none with `--nats`) and of this process.
pub(super) struct Work<'a> {
    server: Option<&'a PrivateNats>,
}

/// The counters at one moment.
#[derive(Clone, Copy)]
pub(super) struct Sample {
    server: ServerWork,
    own_cpu_s: f64,
}

/// The work between two samples, per unit (a step, a round trip).
#[derive(Clone, Copy, Debug)]
pub(super) struct PerUnit {
    server_cpu_us: f64,
    own_cpu_us: f64,
    msgs_in: f64,
    bytes_in: f64,
}

impl<'a> Work<'a> {
    pub(super) fn new(server: Option<&'a PrivateNats>) -> Self {
        Work { server }
    }

    /// The counters now; `None` without a private server or where the system does not tell.
    pub(super) async fn now(&self) -> Option<Sample> {
        let server = self.server?.work().await?;
        Some(Sample { server, own_cpu_s: cpu_seconds("self")? })
    }

    /// The work since `at`, per one of `units`.
    pub(super) async fn since(&self, at: Option<Sample>, units: usize) -> Option<PerUnit> {
        let (at, now) = (at?, self.now().await?);
        let d = now.server - at.server;
        let n = units.max(1) as f64;
        Some(PerUnit {
            server_cpu_us: d.cpu_s * 1e6 / n,
            own_cpu_us: (now.own_cpu_s - at.own_cpu_s) * 1e6 / n,
            msgs_in: d.msgs_in / n,
            bytes_in: d.bytes_in / n,
        })
    }
}

impl PerUnit {
    /// These figures beside `floor`'s, each as `ours / floor's (ratio)`.
    pub(super) fn beside(&self, floor: &PerUnit) -> String {
        let pair =
            |ours: f64, raw: f64| format!("{ours:.0} / {raw:.0} ({:.1}x)", ours / raw.max(1e-9));
        format!(
            "nats-server CPU {} us, messages into the server {}, bytes into the server {}, this process's CPU (coordinator, worker, simulated model; the floor's clients) {} us",
            pair(self.server_cpu_us, floor.server_cpu_us),
            format_args!(
                "{:.1} / {:.1} ({:.1}x)",
                self.msgs_in,
                floor.msgs_in,
                self.msgs_in / floor.msgs_in.max(1e-9)
            ),
            pair(self.bytes_in, floor.bytes_in),
            pair(self.own_cpu_us, floor.own_cpu_us),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_cpu_time_is_read_and_counts_work() {
        let before = cpu_seconds("self").expect("/proc/self/stat tells the CPU time");
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(std::hint::black_box(1));
        }
        std::hint::black_box(x);
        let after = cpu_seconds("self").expect("still readable");
        assert!(after > before, "300 ms of spinning is counted: {before} -> {after}");
        assert!(cpu_seconds("0").is_none(), "no such process");
    }

    #[test]
    fn figures_are_per_unit_and_set_beside_the_floor() {
        let ours =
            PerUnit { server_cpu_us: 260.0, own_cpu_us: 840.0, msgs_in: 11.0, bytes_in: 16000.0 };
        let floor =
            PerUnit { server_cpu_us: 65.0, own_cpu_us: 28.0, msgs_in: 4.4, bytes_in: 4400.0 };
        let line = ours.beside(&floor);
        assert!(line.contains("nats-server CPU 260 / 65 (4.0x) us"), "{line}");
        assert!(line.contains("messages into the server 11.0 / 4.4 (2.5x)"), "{line}");
        assert!(line.contains("840 / 28 (30.0x) us"), "{line}");
        let d = ServerWork { cpu_s: 3.0, msgs_in: 10.0, bytes_in: 100.0 }
            - ServerWork { cpu_s: 1.0, msgs_in: 4.0, bytes_in: 40.0 };
        assert_eq!((d.cpu_s, d.msgs_in, d.bytes_in), (2.0, 6.0, 60.0));
    }
}
