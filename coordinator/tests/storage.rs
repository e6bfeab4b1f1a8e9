//! How books are stored: per step, not per book (the bytes a store writes do not grow with
//! the book or with the chapter a result is for), listings that read headers only, and
//! retention of finished books.

mod support;

use scriptorium_coordinator::record::{self, BookRecord, Status, StepStatus};
use scriptorium_coordinator::{CoordinatorConfig, brief, client};
use scriptorium_proto::transport::Bucket;
use scriptorium_proto::{Bus, clock};
use std::time::Duration;
use support::start_on;

fn book(id: &str, chapters: u32) -> BookRecord {
    let text = format!(
        "title = \"Long {chapters}\"\ncategory = \"fiction\"\ndescription = \"A test.\"\n\
         chapters = {chapters}\ncharacters = 2\nwords_per_chapter = 300\n"
    );
    BookRecord::new(id.into(), brief::parse(&text).unwrap(), clock::now_ms())
}

/// A result accepted for `step`: what the book actor changes in its record.
fn accept(rec: &mut BookRecord, step: &str) {
    let s = rec.steps.get_mut(step).unwrap();
    s.status = StepStatus::Done;
    s.attempt = 1;
    s.route = "sim/default".into();
    s.worker = "w1".into();
    s.usage.calls = 1;
    s.usage.prompt_tokens = 1200;
    rec.usage.calls += 1;
    rec.accepted_results += 1;
}

#[tokio::test]
async fn a_store_writes_the_steps_that_changed_and_a_small_header() {
    let bus = Bus::memory();
    let mut small = book("small", 1);
    let mut long = book("long", 40);
    let first_small = record::store(&bus, &mut small).await.unwrap();
    let first_long = record::store(&bus, &mut long).await.unwrap();
    assert!(first_long > first_small, "the first store writes the plan, longer for 40 chapters");
    for id in ["small", "long"] {
        let plan = bus.kv_get(Bucket::StepStates, &format!("{id}._plan")).await.unwrap();
        assert!(plan.is_some(), "{id}'s plan is stored with its first header");
    }
    let states = |id: &str| {
        let bus = bus.clone();
        let key = format!("{id}.concept");
        async move { bus.kv_get(Bucket::StepStates, &key).await.unwrap() }
    };
    assert_eq!(states("long").await, None, "a step is not written before anything happens to it");
    let planned = record::load_record(&bus, "long").await.unwrap().unwrap();
    assert_eq!(planned.progress(), (0, long.steps.len() as u32), "read back as planned");
    assert!(planned.steps.values().all(|s| s.status == StepStatus::Pending && s.attempt == 0));

    let unchanged = record::store(&bus, &mut long).await.unwrap();
    accept(&mut long, "chapter-01");
    let chapter_1 = record::store(&bus, &mut long).await.unwrap();
    accept(&mut long, "chapter-40");
    let chapter_40 = record::store(&bus, &mut long).await.unwrap();
    accept(&mut small, "chapter-01");
    let small_chapter_1 = record::store(&bus, &mut small).await.unwrap();
    eprintln!(
        "bytes per store: first {first_small} / {first_long}, unchanged {unchanged}, chapter 1 \
         {chapter_1}, chapter 40 {chapter_40}, 1-chapter book {small_chapter_1}"
    );
    assert!(chapter_1 > unchanged, "the changed step is written");
    assert!(chapter_1 < 2 * unchanged + 1024, "one step and the header, not the book");
    assert!(chapter_40 * 2 <= chapter_1 * 3, "chapter 40 costs what chapter 1 does");
    assert!(chapter_1 * 2 <= small_chapter_1 * 3, "a 40-chapter book's store costs a 1-chapter's");

    // What was stored reads back whole.
    assert!(states("small").await.is_none() && states("long").await.is_none());
    let back = record::load_record(&bus, "long").await.unwrap().unwrap();
    assert_eq!(back.layout, record::LAYOUT);
    assert_eq!(back.plan, long.plan);
    assert_eq!(back.steps["chapter-40"].status, StepStatus::Done);
    assert_eq!(back.steps["chapter-40"].usage.prompt_tokens, 1200);
    assert_eq!(back.progress(), (2, long.steps.len() as u32));
    let header = bus.kv_get(Bucket::Books, "long").await.unwrap().unwrap();
    assert!(header.len() < 4096, "the header stays small: {} bytes", header.len());

    // A stored step sent back to its planned state (an operator's rewrite) is written as such.
    let as_planned = planned.steps["chapter-01"].clone();
    long.steps.insert("chapter-01".into(), as_planned);
    record::store(&bus, &mut long).await.unwrap();
    let back = record::load_record(&bus, "long").await.unwrap().unwrap();
    assert_eq!(back.steps["chapter-01"].status, StepStatus::Pending);
    assert_eq!(back.steps["chapter-01"].attempt, 0);
    assert_eq!(back.progress(), (1, long.steps.len() as u32));
}

#[tokio::test]
async fn listings_read_headers_and_still_show_progress() {
    let bus = Bus::memory();
    let mut rec = book("listed", 3);
    accept(&mut rec, "concept");
    rec.steps.get_mut("characters").unwrap().status = StepStatus::Running;
    record::store(&bus, &mut rec).await.unwrap();
    let listed = client::list(&bus).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].steps.is_empty(), "a listing does not read the steps");
    assert_eq!(listed[0].progress(), (1, rec.steps.len() as u32));
    assert_eq!(listed[0].running(), ["characters"]);
}

#[tokio::test]
async fn finished_books_past_retention_are_deleted_at_start_and_no_other() {
    let bus = Bus::memory();
    let hour: i64 = 3_600_000;
    for (id, state, ended_ago_ms) in [
        ("oldbook", Status::Done, 3 * hour),
        ("recentbook", Status::Failed, hour / 2),
        ("pausedbook", Status::Paused, 0),
    ] {
        let mut rec = book(id, 1);
        rec.state = state;
        rec.finished_ms = if state.is_final() { clock::now_ms() - ended_ago_ms } else { 0 };
        accept(&mut rec, "concept");
        record::store(&bus, &mut rec).await.unwrap();
        let key = record::output_key(id, "concept");
        bus.kv_put(Bucket::Outputs, &key, "{}".into()).await.unwrap();
    }
    let cfg = CoordinatorConfig { keep_finished_hours: 1, ..Default::default() };
    let (handle, _out) = start_on(bus.clone(), cfg).await;
    let mut gone = false;
    for _ in 0..300 {
        if bus.kv_get(Bucket::Books, "oldbook").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "a book that ended 3 h ago is deleted with keep_finished_hours = 1");
    assert_eq!(bus.kv_get(Bucket::Outputs, "oldbook.concept").await.unwrap(), None);
    assert_eq!(bus.kv_get(Bucket::StepStates, "oldbook.concept").await.unwrap(), None);
    assert_eq!(bus.kv_get(Bucket::StepStates, "oldbook._plan").await.unwrap(), None);
    for kept in ["recentbook", "pausedbook"] {
        assert!(bus.kv_get(Bucket::Books, kept).await.unwrap().is_some(), "{kept} kept");
        let key = format!("{kept}.concept");
        assert!(bus.kv_get(Bucket::Outputs, &key).await.unwrap().is_some(), "{key} kept");
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn a_header_one_result_behind_its_steps_is_caught_up_on_load() {
    // A coordinator killed between writing a step and the header: the step is done, the
    // header's totals do not count it yet.
    let bus = Bus::memory();
    let mut rec = book("killed", 1);
    record::store(&bus, &mut rec).await.unwrap();
    let stale = bus.kv_get(Bucket::Books, "killed").await.unwrap().unwrap();
    accept(&mut rec, "concept");
    record::store(&bus, &mut rec).await.unwrap();
    bus.kv_put(Bucket::Books, "killed", stale).await.unwrap();
    let back = record::load_record(&bus, "killed").await.unwrap().unwrap();
    assert_eq!(back.steps["concept"].status, StepStatus::Done);
    assert_eq!(back.accepted_results, 1, "the accepted step is counted");
    assert_eq!(back.usage.calls, 1);
    assert_eq!(back.usage.prompt_tokens, 1200);
}
