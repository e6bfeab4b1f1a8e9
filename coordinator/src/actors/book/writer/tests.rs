use super::*;
use crate::record::{self, BookRecord};
use scriptorium_proto::v1::BookBrief;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn record(id: &str) -> BookRecord {
    let brief = BookBrief { chapters: 1, ..Default::default() };
    let mut rec = BookRecord::new(id.into(), brief, 1);
    rec.plan = crate::plan::Plan::for_brief(&rec.brief);
    rec
}

/// An output put that lands only after a while.
fn slow_put(bus: &Bus, key: &str) -> OutputPut {
    let (bus, key) = (bus.clone(), key.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        bus.kv_put(Bucket::Outputs, &key, b"{}".to_vec().into()).await
    })
}

#[tokio::test]
async fn a_store_lands_after_its_outputs_and_what_follows_waits_for_both() {
    let bus = Bus::memory();
    let writer = Writer::start(bus.clone(), |e| panic!("no write fails here: {e}"));
    let mut rec = record("b1");
    rec.steps.get_mut("concept").unwrap().attempt = 1;
    let writes = record::prepare(&mut rec).unwrap();
    assert_eq!(writes.step_keys(), 2, "the plan and the dispatched step");
    writes.mark(&mut rec);
    writer.store(vec![slow_put(&bus, "b1.concept")], writes);
    let (tx, rx) = oneshot::channel();
    let seen = bus.clone();
    writer.then(move || {
        let _ = tx.send(seen);
    });
    let seen = rx.await.unwrap();
    // Both were there when the acknowledgement would have gone.
    assert!(seen.kv_get(Bucket::Outputs, "b1.concept").await.unwrap().is_some());
    let header = seen.kv_get(Bucket::Books, "b1").await.unwrap().expect("header stored");
    assert_eq!(record::parse_header(&header).unwrap().id, "b1");
    assert!(writer.landed().await.is_ok());
    // Marked as written when handed over: the next store writes the header alone.
    let again = record::prepare(&mut rec).unwrap().step_keys();
    assert_eq!(again, 0, "unchanged steps or the plan written again");
}

#[tokio::test]
async fn a_failed_write_stops_every_later_write_and_acknowledgement() {
    let bus = Bus::memory();
    let (told, failure) = oneshot::channel();
    let writer = Writer::start(bus.clone(), move |e| {
        let _ = told.send(e);
    });
    let mut first = record("b2");
    let writes = record::prepare(&mut first).unwrap();
    let lost: OutputPut = tokio::spawn(async { Err(BusError::Closed) });
    writer.store(vec![lost], writes);
    let acked = Arc::new(AtomicBool::new(false));
    let flag = acked.clone();
    writer.then(move || flag.store(true, Ordering::SeqCst));
    let mut second = record("b3");
    writer.store(Vec::new(), record::prepare(&mut second).unwrap());
    let error = failure.await.unwrap();
    assert!(error.contains("output not stored"), "{error}");
    assert!(writer.landed().await.is_err(), "nothing lands after a failed write");
    assert!(!acked.load(Ordering::SeqCst), "a result after a failed write was acknowledged");
    assert!(bus.kv_get(Bucket::Books, "b2").await.unwrap().is_none());
    assert!(bus.kv_get(Bucket::Books, "b3").await.unwrap().is_none(), "a later store landed");
}

#[tokio::test]
async fn what_follows_a_side_write_waits_for_it() {
    let bus = Bus::memory();
    let writer = Writer::start(bus.clone(), |e| panic!("no write fails here: {e}"));
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    writer.after(tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        flag.store(true, Ordering::SeqCst);
    }));
    let mut rec = record("b4");
    writer.store(Vec::new(), record::prepare(&mut rec).unwrap());
    let (tx, rx) = oneshot::channel();
    let seen = done.clone();
    writer.then(move || {
        let _ = tx.send(seen.load(Ordering::SeqCst));
    });
    assert!(rx.await.unwrap(), "acknowledged before the side write ended");
    assert!(bus.kv_get(Bucket::Books, "b4").await.unwrap().is_some());
    // One that panics fails nothing: the writes after it still land.
    writer.after(tokio::spawn(async { panic!("a side write that breaks") }));
    let mut rec = record("b5");
    writer.store(Vec::new(), record::prepare(&mut rec).unwrap());
    assert!(writer.landed().await.is_ok());
    assert!(bus.kv_get(Bucket::Books, "b5").await.unwrap().is_some());
}
