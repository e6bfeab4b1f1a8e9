//! Writing a record in layout 2: what changed since the last write, in an order a reader can
//! trust. A write is prepared (serialised) at once and lands later ([`Writes::land`]), so a
//! book actor can go on with its next result while its last one is written
//! (`actors/book/writer.rs`).

use super::{BookRecord, LAYOUT, LoadError, PLAN_KEY, output_key};
use scriptorium_proto::Bus;
use scriptorium_proto::transport::Bucket;
use serde_json::Value;
use std::hash::{DefaultHasher, Hash, Hasher};

/// One store of a record, serialised: the plan (the first time), the steps that changed, and
/// the header.
pub struct Writes {
    book_id: String,
    /// Keys and values in the step-states bucket: the plan and the changed steps.
    steps: Vec<(String, Vec<u8>)>,
    header: Vec<u8>,
    /// Whether the header waits for the steps: when the plan is new (a header announces a
    /// plan that must be there) and when the book ends (a final header is never resumed, so
    /// the steps it ends with must be stored first). While the book runs the header goes with
    /// the steps: its summary is only a listing's view of them, and a load reads the steps.
    header_last: bool,
    marks: Marks,
}

/// What a store records in its record once written: the steps, with the hash of what was
/// written, and whether the plan was.
#[derive(Default)]
struct Marks {
    changed: Vec<(String, u64)>,
    plan: bool,
}

impl Marks {
    fn apply(&self, rec: &mut BookRecord) {
        for (id, h) in &self.changed {
            rec.stored.insert(id.clone(), *h);
        }
        rec.plan_stored |= self.plan;
        rec.layout = LAYOUT;
    }
}

impl Writes {
    /// Records in `rec` that this store is written, so the next writes only what changes
    /// after it.
    pub fn mark(&self, rec: &mut BookRecord) {
        self.marks.apply(rec);
    }

    /// Keys this store writes in the step-states bucket (the plan's among them).
    pub fn step_keys(&self) -> usize {
        self.steps.len()
    }

    /// Bytes this store writes.
    pub fn bytes(&self) -> usize {
        self.header.len() + self.steps.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    /// Writes it: the steps, then (or with them, see `header_last`) the header.
    pub async fn land(self, bus: &Bus) -> Result<(), LoadError> {
        let steps =
            futures::future::try_join_all(self.steps.into_iter().map(|(key, bytes)| async move {
                bus.kv_put(Bucket::StepStates, &key, bytes.into()).await
            }));
        let header = bus.kv_put(Bucket::Books, &self.book_id, self.header.into());
        if self.header_last {
            steps.await?;
            header.await?;
        } else {
            futures::future::try_join(steps, header).await?;
        }
        Ok(())
    }
}

/// What storing `rec` now writes, read off it without changing it ([`Writes::mark`] records
/// it as written).
pub fn prepare(rec: &mut BookRecord) -> Result<Writes, LoadError> {
    let mut steps = Vec::new();
    let mut changed = Vec::new();
    let plan = !rec.plan_stored;
    if plan {
        steps.push((step_key(&rec.id, PLAN_KEY), serde_json::to_vec(&rec.plan)?));
    }
    for (id, step) in &rec.steps {
        let bytes = serde_json::to_vec(step)?;
        let h = hash(&bytes);
        // A step never stored that is still as it was planned is not written (a load reads a
        // missing step as that): a book's first store is its plan and header, and each step
        // is written from its first dispatch on.
        if !rec.stored.contains_key(id) && h == untouched() {
            continue;
        }
        if rec.stored.get(id) != Some(&h) {
            steps.push((step_key(&rec.id, id), bytes));
            changed.push((id.clone(), h));
        }
    }
    let header = header_bytes(rec)?;
    let header_last = plan || rec.state.is_final();
    let marks = Marks { changed, plan };
    Ok(Writes { book_id: rec.id.clone(), steps, header, header_last, marks })
}

/// The hash of a step as it is planned, before anything happens to it.
fn untouched() -> u64 {
    static UNTOUCHED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *UNTOUCHED.get_or_init(|| serde_json::to_vec(&super::StepRecord::new()).map_or(0, |b| hash(&b)))
}

/// Stores `rec` in layout 2: the plan once, the steps that changed since the last store or
/// load, then the header (last, so a header never names progress its steps do not hold).
/// Returns the bytes written.
pub async fn store(bus: &Bus, rec: &mut BookRecord) -> Result<usize, LoadError> {
    let mut writes = prepare(rec)?;
    let written = writes.bytes();
    // Marked only once written: a failed store is written whole by the next.
    let marks = std::mem::take(&mut writes.marks);
    writes.land(bus).await?;
    marks.apply(rec);
    Ok(written)
}

/// The header of `rec` as stored: the record without its plan and steps, with its summary.
/// The plan and the steps are taken out while the rest is serialised (and put back whatever
/// happens), so a store does not turn every step into a JSON value only to drop it.
fn header_bytes(rec: &mut BookRecord) -> Result<Vec<u8>, serde_json::Error> {
    let summary = serde_json::to_value(rec.current_summary())?;
    let plan = std::mem::take(&mut rec.plan);
    let steps = std::mem::take(&mut rec.steps);
    let v = serde_json::to_value(&*rec);
    rec.plan = plan;
    rec.steps = steps;
    let mut v = v?;
    if let Value::Object(map) = &mut v {
        map.remove("plan");
        map.remove("steps");
        map.insert("layout".into(), LAYOUT.into());
        map.insert("summary".into(), summary);
    }
    serde_json::to_vec(&v)
}

/// Deletes everything stored of a book (its outputs, steps, plan and header), header last, so
/// that an interrupted deletion is found and finished by the next.
pub async fn delete(bus: &Bus, rec: &BookRecord) -> Result<(), LoadError> {
    for step in &rec.plan.steps {
        bus.kv_delete(Bucket::Outputs, &output_key(&rec.id, &step.id)).await?;
        bus.kv_delete(Bucket::StepStates, &step_key(&rec.id, &step.id)).await?;
    }
    bus.kv_delete(Bucket::StepStates, &step_key(&rec.id, PLAN_KEY)).await?;
    bus.kv_delete(Bucket::Books, &rec.id).await?;
    Ok(())
}

/// Key of a step's state (or the plan's) in the step-states bucket.
pub(super) fn step_key(book_id: &str, step_id: &str) -> String {
    format!("{book_id}.{step_id}")
}

pub(super) fn hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}
