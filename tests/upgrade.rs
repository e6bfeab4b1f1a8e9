//! Upgrades without losing books: what earlier releases stored and sent (the fixtures under
//! `tests/fixtures/layout-<n>/`, captured from those releases and never edited) is read by
//! today's code. Stored books resume and finish (and are written in today's layout from then
//! on), finished ones list and read, wire messages decode, and a record from a newer layout is
//! left alone rather than misread.

mod common;

use common::*;
use scriptorium_coordinator::record::{self, LAYOUT, StepStatus};
use scriptorium_coordinator::{CoordinatorConfig, CoordinatorHandle, client};
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::{Bucket, NatsOptions};
use scriptorium_proto::v1::{
    AgentKind, StepResult, StepStatus as WireStatus, StepTask, SubmitBook,
};
use scriptorium_proto::{Bus, names};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The book every fixture is about.
const BOOK: &str = "fixturebook01";

/// Every captured layout, oldest first.
fn layouts() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("layout-")))
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "fixtures of at least one earlier layout");
    dirs
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

/// Puts what `dir` says was stored of the fixture book (its record as `record_file`, and the
/// outputs of the steps that record has done) into `bus`, as the release that wrote them left
/// them. Returns how many outputs.
async fn plant(bus: &Bus, dir: &Path, record_file: &str) -> usize {
    let stored = read(dir, record_file);
    let old: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    bus.kv_put(Bucket::Books, BOOK, stored.into()).await.unwrap();
    let mut outputs = 0;
    for e in std::fs::read_dir(dir.join("outputs")).unwrap() {
        let path = e.unwrap().path();
        let step = path.file_stem().unwrap().to_string_lossy().to_string();
        if old["steps"][&step]["status"] != "done" {
            continue;
        }
        let key = record::output_key(BOOK, &step);
        bus.kv_put(Bucket::Outputs, &key, std::fs::read(&path).unwrap().into()).await.unwrap();
        outputs += 1;
    }
    outputs
}

#[test]
fn wire_messages_of_every_earlier_layout_decode() {
    for dir in layouts() {
        let submit = SubmitBook::decode(read(&dir, "submit.pb").as_slice()).unwrap();
        assert_eq!(submit.book_id, BOOK, "{}", dir.display());
        assert!(submit.brief.is_some_and(|b| b.chapters == 2));
        for (kind, name) in [
            (AgentKind::Concept, "concept"),
            (AgentKind::Characters, "characters"),
            (AgentKind::World, "world"),
            (AgentKind::Outline, "outline"),
            (AgentKind::Chapter, "chapter"),
            (AgentKind::Review, "review"),
            (AgentKind::Edit, "edit"),
        ] {
            let task = StepTask::decode(read(&dir, &format!("step-{name}.pb")).as_slice()).unwrap();
            assert_eq!((task.book_id.as_str(), task.kind()), (BOOK, kind), "{}", dir.display());
            assert!(task.attempt >= 1 && task.brief.is_some() && !task.routes.is_empty());
            // A task from before versions needs no particular worker: any worker takes it.
            assert!(task.min_worker_version <= names::WIRE_VERSION);
            let result =
                StepResult::decode(read(&dir, &format!("result-{name}.pb")).as_slice()).unwrap();
            assert_eq!((result.step_id.as_str(), result.kind()), (task.step_id.as_str(), kind));
            assert_eq!(result.status(), WireStatus::Ok);
            serde_json::from_str::<serde_json::Value>(&result.output)
                .unwrap_or_else(|e| panic!("{name} result output is JSON: {e}"));
        }
    }
}

/// A book stored mid-way by an earlier release resumes on today's coordinator and workers,
/// keeps what was accepted (chapter 1 is not written again), finishes, and is stored in
/// today's layout from its first store on.
async fn resumes_and_finishes(bus: Bus, dir: &Path, out: &Path) {
    let planted = plant(&bus, dir, "book-running.json").await;
    let before = bus.kv_get(Bucket::Outputs, &record::output_key(BOOK, "chapter-01")).await;
    let old = record::load_record(&bus, BOOK).await.unwrap().expect("the old record reads");
    assert_eq!(old.layout, 1, "the fixture predates layout numbers");
    assert_eq!(old.steps["chapter-01"].status, StepStatus::Done);
    assert_eq!(old.progress().0 as usize, planted, "one output per accepted step");

    let cfg = CoordinatorConfig { out_dir: out.into(), ..Default::default() };
    let coordinator = CoordinatorHandle::start(bus.clone(), cfg).await.unwrap();
    let mut wcfg = scriptorium_worker::WorkerConfig::new("upgrade-w1");
    wcfg.local_model = Some(std::sync::Arc::new(scriptorium_sim::SimModel::new(
        scriptorium_sim::SimSettings::default(),
    )));
    let worker = scriptorium_worker::Worker::start(bus.clone(), wcfg).await.unwrap();
    let done = client::wait(&bus, &[BOOK.to_string()], Some(Duration::from_secs(60)), |_| {})
        .await
        .unwrap();
    assert_eq!(done[0].state, record::Status::Done, "{:?}", done[0].failure);

    let rec = record::load_record(&bus, BOOK).await.unwrap().unwrap();
    assert_eq!(rec.layout, LAYOUT, "stored in today's layout once resumed");
    let header = bus.kv_get(Bucket::Books, BOOK).await.unwrap().unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert!(header.get("steps").is_none() && header.get("plan").is_none(), "a header only");
    assert_eq!(header["summary"]["done"], header["summary"]["total"]);
    for step in ["concept", "chapter-01", "chapter-02", "edit-02"] {
        let key = format!("{BOOK}.{step}");
        assert!(bus.kv_get(Bucket::StepStates, &key).await.unwrap().is_some(), "{key} stored");
    }
    assert_eq!(rec.steps["chapter-01"].attempt, old.steps["chapter-01"].attempt, "not redone");
    assert_eq!(
        bus.kv_get(Bucket::Outputs, &record::output_key(BOOK, "chapter-01")).await.unwrap(),
        before.unwrap(),
        "the accepted chapter 1 is kept byte for byte"
    );
    assert!(rec.steps.values().all(|s| s.status == StepStatus::Done));
    let manuscript = std::fs::read_to_string(Path::new(&rec.output_dir).join("manuscript.md"));
    assert!(manuscript.is_ok_and(|m| m.contains("The Fixture Harbour")));
    worker.shutdown(Duration::from_secs(5)).await;
    coordinator.shutdown().await;
}

#[test]
fn a_book_stored_mid_way_by_an_earlier_layout_finishes_over_nats() {
    let nats = NatsServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for dir in layouts() {
        let out = tempfile::tempdir().unwrap();
        rt.block_on(async {
            let bus = Bus::connect(&nats.url(), NatsOptions::default()).await.unwrap();
            resumes_and_finishes(bus.clone(), &dir, out.path()).await;
            // The next layout's fixture plants the same book id again.
            let rec = record::load_record(&bus, BOOK).await.unwrap().unwrap();
            record::delete(&bus, &rec).await.unwrap();
        });
    }
}

#[test]
fn a_book_stored_mid_way_by_an_earlier_layout_finishes_in_process() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for dir in layouts() {
        let out = tempfile::tempdir().unwrap();
        rt.block_on(resumes_and_finishes(Bus::memory(), &dir, out.path()));
    }
}

#[test]
fn a_finished_book_of_an_earlier_layout_lists_and_reads() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for dir in layouts() {
        rt.block_on(async {
            let bus = Bus::memory();
            plant(&bus, &dir, "book-done.json").await;
            let listed = client::list(&bus).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].state, record::Status::Done);
            let (done, total) = listed[0].progress();
            assert!(total == 11 && done == total, "progress from the old record: {done}/{total}");
            let rec = client::load(&bus, BOOK).await.unwrap().unwrap();
            assert_eq!(rec.plan.steps.len(), 11);
            let book = record::load_book(&bus, BOOK).await.unwrap().unwrap();
            assert_eq!(book.outputs.len(), 10, "every accepted output found (assembly has none)");
        });
    }
}

#[test]
fn a_record_of_a_newer_layout_is_left_alone() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = Bus::memory();
        let dir = layouts().remove(0);
        let mut newer: serde_json::Value =
            serde_json::from_slice(&read(&dir, "book-running.json")).unwrap();
        newer["layout"] = (LAYOUT + 1).into();
        bus.kv_put(Bucket::Books, BOOK, serde_json::to_vec(&newer).unwrap().into()).await.unwrap();
        let e = record::load_record(&bus, BOOK).await.unwrap_err();
        assert!(e.to_string().contains("newer"), "{e}");
        // The coordinator starts all the same, does not resume it and does not overwrite it.
        let out = tempfile::tempdir().unwrap();
        let cfg = CoordinatorConfig { out_dir: out.path().into(), ..Default::default() };
        let coordinator = CoordinatorHandle::start(bus.clone(), cfg).await.unwrap();
        assert_eq!(coordinator.in_flight().await.unwrap(), 0);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stored = bus.kv_get(Bucket::Books, BOOK).await.unwrap().unwrap();
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&stored).unwrap(), newer);
        coordinator.shutdown().await;
    });
}
