//! Long books: whether a step costs more the later its chapter. The unloaded books (written one
//! at a time, `--latency-chapters` chapters each) are split by chapter: the time per step
//! (dispatch to acceptance) and the KV bytes per step of the first chapter beside those of the
//! last. A step's bytes are read back from the store: its output and its step state, plus the
//! book's header once for each store the step caused (two an attempt: its dispatch and its
//! result); the bytes the bus counted for the whole book are printed beside them.

use scriptorium_coordinator::record::{BookRecord, StepRecord, output_key};
use scriptorium_proto::Bus;
use scriptorium_proto::transport::Bucket;

/// Whether `s` was answered by a model (not skipped, not the coordinator's own step).
pub(super) fn answered(s: &StepRecord) -> bool {
    s.dispatched_us > 0 && s.finished_us > s.dispatched_us && s.attempt > 0 && !s.route.is_empty()
}

/// One answered step of a chapter.
struct Step {
    book: String,
    step: String,
    attempts: u32,
    us: f64,
}

/// The unloaded books' answered steps, by chapter.
#[derive(Default)]
pub(super) struct ByChapter {
    steps: Vec<(u32, Step)>,
    books: usize,
    accepted: usize,
    kv_bytes: u64,
}

impl ByChapter {
    /// Adds a finished book and the KV bytes the bus counted while it was written.
    pub(super) fn add(&mut self, rec: &BookRecord, kv_bytes: u64) {
        self.books += 1;
        self.kv_bytes += kv_bytes;
        for p in &rec.plan.steps {
            let Some(s) = rec.steps.get(&p.id).filter(|s| answered(s)) else { continue };
            self.accepted += 1;
            if p.chapter == 0 {
                continue;
            }
            let step = Step {
                book: rec.id.clone(),
                step: p.id.clone(),
                attempts: s.attempt,
                us: (s.finished_us - s.dispatched_us) as f64,
            };
            self.steps.push((p.chapter, step));
        }
    }

    /// Prints chapter 1's figures beside chapter `last`'s.
    pub(super) async fn print(&self, bus: &Bus, last: u32) -> anyhow::Result<()> {
        let first = self.figures(bus, 1).await?;
        let end = self.figures(bus, last).await?;
        println!(
            "per step by chapter, {} unloaded books of {last} chapters: chapter 1 median {:.0} us and {:.0} KV bytes ({} steps), chapter {last} median {:.0} us and {:.0} KV bytes ({} steps): {:.2}x the time, {:.2}x the bytes; the bus counted {:.0} KV bytes per accepted step over the whole books",
            self.books,
            first.0,
            first.1,
            first.2,
            end.0,
            end.1,
            end.2,
            end.0 / first.0.max(1.0),
            end.1 / first.1.max(1.0),
            self.kv_bytes as f64 / self.accepted.max(1) as f64
        );
        Ok(())
    }

    /// Median time (us), mean bytes per step and the number of steps of chapter `n`.
    async fn figures(&self, bus: &Bus, n: u32) -> anyhow::Result<(f64, f64, usize)> {
        let mut times = Vec::new();
        let mut bytes = 0usize;
        for (_, s) in self.steps.iter().filter(|(c, _)| *c == n) {
            times.push(s.us);
            let key = output_key(&s.book, &s.step);
            let header = bus.kv_get(Bucket::Books, &s.book).await?.map_or(0, |v| v.len());
            let output = bus.kv_get(Bucket::Outputs, &key).await?.map_or(0, |v| v.len());
            let state = bus.kv_get(Bucket::StepStates, &key).await?.map_or(0, |v| v.len());
            bytes += output + state * 2 * s.attempts as usize + header * 2 * s.attempts as usize;
        }
        times.sort_by(f64::total_cmp);
        let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
        Ok((median, bytes as f64 / times.len().max(1) as f64, times.len()))
    }
}
