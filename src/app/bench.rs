//! `scriptorium bench`: steps per second through coordinator and workers over real NATS with a
//! zero-latency simulated model, beside the pipelined floor of raw JetStream round trips
//! measured in the same run; or the makespan of many books with a latency model beside its
//! lower bound; or how long a priority book behind many others takes.
//!
//! The raw baseline ([`Bus::raw_round_trips`]) does what one step costs at the transport level
//! and nothing else, pipelined: publish a step to a work-queue stream, pull it, publish a
//! result to a second stream, pull that, and acknowledge both, PubAcks awaited together with
//! many round trips in flight and several pullers. Scriptorium adds decoding, prompt rendering,
//! the simulated model, validation and the KV writes of each accepted step.
//!
//! Beside this file: [`private_nats`] (a nats-server of the run's own), [`makespan`] (the
//! latency-model run and its lower bound), [`priority`] (a priority book behind others) and
//! [`cache`] (the response-cache figure).

mod cache;
mod disk;
mod long;
mod makespan;
mod priority;
mod private_nats;
mod work;

pub use makespan::MakespanOptions;
pub use priority::PriorityOptions;

use super::{AppConfig, connect};
use scriptorium_coordinator::record::BookRecord;
use scriptorium_coordinator::{CoordinatorHandle, brief, client};
use scriptorium_proto::Bus;
use scriptorium_proto::v1::BookBrief;
use scriptorium_worker::Worker;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use work::Work;

/// What the bench measures.
#[derive(Debug, Clone)]
pub enum BenchMode {
    /// Steps per second beside the pipelined floor, unloaded latency, counters and memory.
    Throughput,
    /// Makespan of many books with a latency model, beside its lower bound.
    Makespan(MakespanOptions),
    /// A priority book submitted behind many others, beside the same book alone.
    Priority(PriorityOptions),
}

/// Options of the benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// NATS URL; `None` starts a private nats-server on a free port.
    pub nats: Option<String>,
    /// Books written in parallel for the throughput figure.
    pub books: u32,
    /// Chapters per book.
    pub chapters: u32,
    /// Books written one at a time for the unloaded latency figure.
    pub latency_books: u32,
    /// Chapters of each of those books.
    pub latency_chapters: u32,
    /// Words a chapter of the throughput run's books (loaded and unloaded) asks for.
    pub words_per_chapter: u32,
    /// Round trips in flight in the raw baseline.
    pub concurrency: usize,
    /// Books written twice for the cache figure (0 skips it).
    pub cache_books: u32,
    /// Whether the measured books' steps look their requests up in the shared response cache,
    /// as a deployment's default has them do (the bench's default: they do not).
    pub response_cache: bool,
    /// Where the run's temporary directory of books is made; `None`: memory (`/dev/shm`) where
    /// the system has it, else the system's temporary directory ([`disk::books_dir`]).
    pub out: Option<PathBuf>,
    /// What to measure.
    pub mode: BenchMode,
}

/// The command line of `scriptorium bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// NATS server URL (default: start a private nats-server on a free port).
    #[arg(long)]
    nats: Option<String>,
    /// Books written in parallel.
    #[arg(long, default_value_t = 100)]
    books: u32,
    /// Chapters per book.
    #[arg(long, default_value_t = 10)]
    chapters: u32,
    /// Books written one at a time for the unloaded latency.
    #[arg(long, default_value_t = 20)]
    latency_books: u32,
    /// Chapters of each unloaded book; from 2 on, the time and KV bytes per step of its first
    /// chapter are printed beside those of its last.
    #[arg(long, default_value_t = 1)]
    latency_chapters: u32,
    /// Words a chapter of the throughput run's books asks for (the examples ask for 900; short
    /// chapters keep the figure on the step path, long ones show what a book in flight holds).
    #[arg(long, default_value_t = BENCH_WORDS)]
    words_per_chapter: u32,
    /// Round trips in flight in the raw baseline (the pipelined floor).
    #[arg(long, default_value_t = 512)]
    concurrency: usize,
    /// Books written twice for the response-cache figure (0 skips it).
    #[arg(long, default_value_t = 20)]
    cache_books: u32,
    /// Keep the response cache on for the measured books, as a deployment's default has it:
    /// each step then looks its request up in the shared cache (and leases it) before the
    /// model is asked. Off by default, so the figure is the step path alone.
    #[arg(long)]
    response_cache: bool,
    /// Directory the run writes its books under (in a temporary directory of its own, removed
    /// at the end); default: /dev/shm where the system has it (a file system in memory: see
    /// BENCHMARKS.md for why), else the system's temporary directory. The run prints what
    /// creating a file costs there.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Measure the makespan of --books books with the latency model, beside its lower
    /// bound, instead of the throughput.
    #[arg(long, conflicts_with = "priority_behind")]
    makespan: bool,
    /// Measure a priority book submitted after this many normal books, beside the same
    /// book alone, instead of the throughput.
    #[arg(long)]
    priority_behind: Option<u32>,
    /// Mean model time per answer for --makespan and --priority-behind, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Spread of the model time: each answer takes --latency-ms plus or minus up to this.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Agents per agent kind for --makespan and --priority-behind (the fleet's size).
    #[arg(long, default_value_t = 16)]
    agents: usize,
}

impl BenchArgs {
    /// The options these arguments ask for; an error names the argument and its rule.
    pub fn options(self) -> anyhow::Result<BenchOptions> {
        let (latency_ms, jitter_ms, agents) = (self.latency_ms, self.jitter_ms, self.agents);
        if jitter_ms > latency_ms {
            anyhow::bail!("--jitter-ms ({jitter_ms}) must not exceed --latency-ms ({latency_ms})");
        }
        if self.latency_chapters == 0 {
            anyhow::bail!("--latency-chapters must be at least 1");
        }
        let words = brief::WORDS_PER_CHAPTER;
        if !words.contains(&self.words_per_chapter) {
            anyhow::bail!(
                "--words-per-chapter must be between {} and {}, as a brief's words_per_chapter (got {})",
                words.start(),
                words.end(),
                self.words_per_chapter
            );
        }
        let (books, chapters) = (self.books, self.chapters);
        let mode = match (self.makespan, self.priority_behind) {
            (true, _) => BenchMode::Makespan(MakespanOptions {
                books,
                chapters,
                latency_ms,
                jitter_ms,
                agents,
            }),
            (false, Some(behind)) => BenchMode::Priority(PriorityOptions {
                behind,
                chapters,
                latency_ms,
                jitter_ms,
                agents,
            }),
            (false, None) => BenchMode::Throughput,
        };
        Ok(BenchOptions {
            nats: self.nats,
            books,
            chapters,
            latency_books: self.latency_books,
            latency_chapters: self.latency_chapters,
            words_per_chapter: self.words_per_chapter,
            concurrency: self.concurrency,
            cache_books: self.cache_books,
            response_cache: self.response_cache,
            out: self.out,
            mode,
        })
    }
}

/// A coordinator and one worker process's agents (`agents` per kind), in this process.
struct Fleet {
    /// The coordinator's connection, also used to submit and wait.
    bus: Bus,
    coordinator: CoordinatorHandle,
    worker: Worker,
}

impl Fleet {
    async fn start(url: &str, cfg: &AppConfig, name: &str, agents: usize) -> anyhow::Result<Self> {
        let bus = connect(url, &format!("{name}-coordinator"), cfg).await?;
        let worker_bus = connect(url, &format!("{name}-worker"), cfg).await?;
        let pools = [format!("all={agents}")];
        let worker =
            Worker::start(worker_bus, cfg.worker_config(format!("{name}-worker"), &pools)?).await?;
        let coordinator = CoordinatorHandle::start(bus.clone(), cfg.coordinator.clone()).await?;
        Ok(Self { bus, coordinator, worker })
    }

    async fn stop(self) {
        self.coordinator.shutdown().await;
        self.worker.shutdown(Duration::from_secs(1)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Words a chapter of a bench book asks for unless `--words-per-chapter` says otherwise.
const BENCH_WORDS: u32 = 120;

fn bench_brief(chapters: u32, seed: u64) -> BookBrief {
    BookBrief {
        project: "bench".into(),
        title: "Bench".into(),
        category: "fiction".into(),
        genre: "fantasy".into(),
        language: "English".into(),
        description: "A benchmark book.".into(),
        length: "short".into(),
        chapters,
        words_per_chapter: BENCH_WORDS,
        characters: 2,
        worldbuilding: true,
        review_mode: "ai".into(),
        tone: "plain".into(),
        audience: "machines".into(),
        author: "Bench".into(),
        seed,
        ..Default::default()
    }
}

async fn submit_all(bus: &Bus, briefs: Vec<BookBrief>) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(briefs.len());
    for b in briefs {
        ids.push(client::submit(bus, b).await?);
    }
    Ok(ids)
}

async fn wait_done(bus: &Bus, ids: &[String]) -> anyhow::Result<Vec<BookRecord>> {
    let recs = client::wait(bus, ids, Some(Duration::from_secs(1800)), |_| {}).await?;
    if let Some(failed) = recs.iter().find(|r| r.failure.is_some()) {
        anyhow::bail!("bench book {} failed: {:?}", failed.id, failed.failure);
    }
    Ok(recs)
}

async fn write_books(bus: &Bus, briefs: Vec<BookBrief>) -> anyhow::Result<Vec<BookRecord>> {
    let ids = submit_all(bus, briefs).await?;
    wait_done(bus, &ids).await
}

/// Books done and model steps of `ids`, waited for in chunks of the coordinator's admission
/// cap in submission order (the order they are admitted in) and summarised as they come, so
/// that the bench does not hold a thousand records while it measures the process's memory.
async fn wait_counted(bus: &Bus, ids: &[String], chunk: usize) -> anyhow::Result<(usize, usize)> {
    let (mut done, mut steps) = (0, 0);
    for part in ids.chunks(chunk.max(1)) {
        for r in wait_done(bus, part).await? {
            done += usize::from(r.failure.is_none());
            steps += r.steps.values().filter(|s| !s.route.is_empty()).count();
        }
    }
    Ok((done, steps))
}

/// Peak resident memory of this process (`VmHWM`), in MiB, where the system tells it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs the benchmark and prints its figures.
pub async fn run(cfg: AppConfig, opts: BenchOptions) -> anyhow::Result<()> {
    let (server, url) = match &opts.nats {
        Some(u) => (None, u.clone()),
        None => {
            let server = private_nats::PrivateNats::start().await?;
            let url = server.url.clone();
            (Some(server), url)
        }
    };
    let out = disk::books_dir(opts.out.as_deref())?;
    let mut cfg = cfg;
    cfg.models.sim = Default::default();
    cfg.coordinator.out_dir = PathBuf::from(out.path());
    cfg.coordinator.cache = opts.response_cache;
    println!(
        "scriptorium bench: NATS {url}, simulated model, response cache {}, {} cores (shared \
         machines: compare figures of one run only)",
        if opts.response_cache { "on (--response-cache)" } else { "off" },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    match &opts.mode {
        BenchMode::Makespan(m) => makespan::run(&url, cfg, *m).await,
        BenchMode::Priority(p) => priority::run(&url, cfg, *p).await,
        BenchMode::Throughput => throughput(&url, cfg, &opts, server.as_ref()).await,
    }
}

async fn throughput(
    url: &str,
    cfg: AppConfig,
    opts: &BenchOptions,
    server: Option<&private_nats::PrivateNats>,
) -> anyhow::Result<()> {
    let steps_per_book = 4 + 3 * opts.chapters as usize;
    let total_steps = (steps_per_book * opts.books as usize).max(1000);
    let raw_bus = connect(url, "bench-raw", &cfg).await?;
    let work = Work::new(server);
    let floor_work = std::cell::Cell::new(None);
    let floor = async |when: &str| -> anyhow::Result<f64> {
        let at = work.now().await;
        let raw = raw_bus.raw_round_trips(total_steps, opts.concurrency).await?;
        floor_work.set(work.since(at, total_steps).await);
        println!(
            "pipelined floor, {when} (raw JetStream: publish step, pull, publish result, pull, ack both; 2 KiB; PubAcks awaited together, {} in flight, 4 pullers a stream): {:.0} round trips/s; sequential p50 {:.0} us",
            opts.concurrency, raw.per_sec, raw.p50_us
        );
        Ok(raw.per_sec)
    };
    let before = floor("before").await?;

    let fleet = Fleet::start(url, &cfg, "bench", 16).await?;
    // Unloaded: one book at a time, so each step is alone in the system.
    let mut lat = Vec::new();
    let mut by_kind: std::collections::BTreeMap<&'static str, Vec<f64>> = Default::default();
    let mut by_chapter = long::ByChapter::default();
    // The run's books, loaded and unloaded, ask for `--words-per-chapter`.
    let sized = |chapters, seed| BookBrief {
        words_per_chapter: opts.words_per_chapter,
        ..bench_brief(chapters, seed)
    };
    for i in 0..opts.latency_books {
        let brief = sized(opts.latency_chapters, 1_000 + u64::from(i));
        let kv_before = fleet.bus.kv_bytes_written();
        let recs = write_books(&fleet.bus, vec![brief]).await?;
        by_chapter.add(&recs[0], fleet.bus.kv_bytes_written() - kv_before);
        for p in &recs[0].plan.steps {
            let Some(s) = recs[0].steps.get(&p.id).filter(|s| long::answered(s)) else { continue };
            let us = (s.finished_us - s.dispatched_us) as f64;
            lat.push(us);
            by_kind.entry(scriptorium_proto::kind::name(p.kind)).or_default().push(us);
        }
    }
    lat.sort_by(f64::total_cmp);

    // What creating a file costs where the books go, now (a book is 16 of them).
    let out = &cfg.coordinator.out_dir;
    match disk::create_us(out) {
        Ok(us) => println!(
            "file system: creating a 3 KB file where the books are written ({}) took {us:.0} us ({} files, before the loaded run); a book's assembly creates 14 files and 2 directories",
            out.display(),
            disk::FILES
        ),
        Err(e) => println!("file system: not measured ({e})"),
    }

    // Loaded: many books in parallel.
    let stats = fleet.coordinator.stats();
    let accepted_before = stats.accepted.load(Ordering::Relaxed);
    let kv_before = fleet.bus.kv_bytes_written();
    let briefs = (0..opts.books).map(|i| sized(opts.chapters, u64::from(i))).collect();
    let at = work.now().await;
    let started = Instant::now();
    let ids = submit_all(&fleet.bus, briefs).await?;
    let chunk = cfg.coordinator.max_books_in_flight.max(100);
    let (done, steps) = wait_counted(&fleet.bus, &ids, chunk).await?;
    let secs = started.elapsed().as_secs_f64();
    let loaded_work = work.since(at, steps).await;
    let accepted = stats.accepted.load(Ordering::Relaxed) - accepted_before;
    let kv_bytes = fleet.bus.kv_bytes_written() - kv_before;
    let rate = steps as f64 / secs;
    let after = floor("after").await?;
    let floor = (before + after) / 2.0;
    println!(
        "scriptorium: {} books x {} chapters = {steps} model steps in {secs:.2}s: {rate:.0} steps/s = {:.1}% of the pipelined floor (mean of before and after, {floor:.0}/s)",
        opts.books,
        opts.chapters,
        100.0 * rate / floor
    );
    println!(
        "per-step latency unloaded (dispatch to acceptance, {} steps): p50 {:.0} us, p90 {:.0} us, p99 {:.0} us",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99)
    );
    let kinds: Vec<String> = by_kind
        .iter_mut()
        .map(|(kind, us)| {
            us.sort_by(f64::total_cmp);
            format!("{kind} {:.0}", percentile(us, 0.5))
        })
        .collect();
    println!("unloaded p50 by kind (us): {}", kinds.join(", "));
    if opts.latency_chapters > 1 {
        by_chapter.print(&fleet.bus, opts.latency_chapters).await?;
    }
    println!(
        "books done {done} of {}; steps accepted {accepted} for {steps} model steps ({})",
        opts.books,
        if accepted as usize == steps { "none accepted twice" } else { "MISMATCH" }
    );
    println!(
        "KV bytes written by the coordinator during the loaded run: {kv_bytes} = {:.0} bytes per accepted step",
        kv_bytes as f64 / accepted.max(1) as f64
    );
    println!(
        "coordinator counters: dispatched {}, accepted {}, rejected {}, ignored {}",
        stats.dispatched.load(Ordering::Relaxed),
        stats.accepted.load(Ordering::Relaxed),
        stats.rejected.load(Ordering::Relaxed),
        stats.ignored.load(Ordering::Relaxed)
    );
    if let (Some(ours), Some(raw), true) = (loaded_work, floor_work.get(), steps > 0) {
        println!("work per step, loaded run / per round trip, floor after: {}", ours.beside(&raw));
    }
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS of this process (coordinator, worker and bench): {mib:.0} MiB");
    }
    fleet.stop().await;
    if opts.cache_books > 0 {
        cache::runs(url, cfg, opts.cache_books).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn options(args: &[&str]) -> anyhow::Result<BenchOptions> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))?;
        cli.bench.options()
    }

    #[test]
    fn the_books_words_a_chapter_default_to_the_bench_books_and_follow_the_flag() {
        assert_eq!(options(&[]).unwrap().words_per_chapter, BENCH_WORDS);
        assert_eq!(options(&["--words-per-chapter", "900"]).unwrap().words_per_chapter, 900);
    }

    #[test]
    fn words_a_chapter_outside_a_briefs_bounds_are_refused_by_name() {
        for bad in ["99", "20001"] {
            let err = options(&["--words-per-chapter", bad]).unwrap_err().to_string();
            assert!(err.contains("--words-per-chapter") && err.contains(bad), "{err}");
        }
    }
}
