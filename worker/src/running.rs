//! The steps running in this worker process, and how each is stopped before it finishes: the
//! coordinator cancelled its attempt, or the process is shutting down.
//!
//! A cancellation can arrive before the step does (the attempt still waits in the queue, or
//! is being redelivered): recent cancellations are remembered, so the delivery is then
//! acknowledged without running it.

use scriptorium_proto::v1::StepTask;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

/// How many recent cancellations are remembered for steps that have not arrived yet.
const RECENT_CANCELS: usize = 4096;

/// Why a running step is stopped before it finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The coordinator no longer wants this attempt: drop it, report nothing.
    Cancelled,
    /// This process is stopping: hand the step back for another worker.
    Shutdown,
}

/// One step running here.
struct Entry {
    /// `book/step#attempt`.
    id: String,
    /// `kind:book/step#attempt`, as heartbeats list it.
    label: String,
    stop: watch::Sender<Option<Stop>>,
}

/// The steps running in this process, by registration number (a delivery that comes back
/// while its first copy still runs here is a second entry, not a replacement).
#[derive(Default)]
pub struct Running {
    steps: dashmap::DashMap<u64, Entry>,
    next: AtomicU64,
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    order: VecDeque<String>,
    set: HashSet<String>,
}

fn id(book_id: &str, step_id: &str, attempt: u32) -> String {
    format!("{book_id}/{step_id}#{attempt}")
}

/// A step registered as running; unregisters it when dropped.
pub struct Registration<'a> {
    running: &'a Running,
    number: u64,
    /// Set once the step must stop, with the reason.
    pub stop: watch::Receiver<Option<Stop>>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.running.steps.remove(&self.number);
    }
}

impl Running {
    /// Registers `task` as running here.
    pub fn start(&self, task: &StepTask) -> Registration<'_> {
        let id = id(&task.book_id, &task.step_id, task.attempt);
        let label = format!(
            "{}:{}/{}#{}",
            scriptorium_proto::kind::name(task.kind()),
            task.book_id,
            task.step_id,
            task.attempt
        );
        let (tx, rx) = watch::channel(None);
        if self.was_cancelled(task) {
            let _ = tx.send(Some(Stop::Cancelled));
        }
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        self.steps.insert(number, Entry { id, label, stop: tx });
        Registration { running: self, number, stop: rx }
    }

    /// Stops the attempt if it runs here, and remembers it in case it has not arrived yet;
    /// whether it was running here.
    pub fn cancel(&self, book_id: &str, step_id: &str, attempt: u32) -> bool {
        let id = id(book_id, step_id, attempt);
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.set.insert(id.clone()) {
                recent.order.push_back(id.clone());
                while recent.order.len() > RECENT_CANCELS {
                    if let Some(old) = recent.order.pop_front() {
                        recent.set.remove(&old);
                    }
                }
            }
        }
        let mut found = false;
        for e in self.steps.iter().filter(|e| e.id == id) {
            let _ = e.stop.send(Some(Stop::Cancelled));
            found = true;
        }
        found
    }

    /// Whether the coordinator cancelled this attempt recently.
    pub fn was_cancelled(&self, task: &StepTask) -> bool {
        let id = id(&task.book_id, &task.step_id, task.attempt);
        self.recent.lock().unwrap_or_else(|p| p.into_inner()).set.contains(&id)
    }

    /// Stops every running step for `reason`.
    pub fn stop_all(&self, reason: Stop) {
        for e in self.steps.iter() {
            e.stop.send_if_modified(|s| {
                let first = s.is_none();
                if first {
                    *s = Some(reason);
                }
                first
            });
        }
    }

    /// How many steps run here.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether no step runs here.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The running steps as `kind:book/step#attempt`.
    pub fn labels(&self) -> Vec<String> {
        self.steps.iter().map(|e| e.label.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scriptorium_proto::v1::AgentKind;

    fn task(step: &str, attempt: u32) -> StepTask {
        StepTask {
            book_id: "b".into(),
            step_id: step.into(),
            attempt,
            kind: AgentKind::Chapter as i32,
            ..Default::default()
        }
    }

    #[test]
    fn a_cancel_stops_only_its_attempt_and_is_remembered_for_late_arrivals() {
        let running = Running::default();
        let one = running.start(&task("chapter-1", 1));
        let two = running.start(&task("chapter-1", 2));
        // The same attempt delivered again while its first copy runs: both are stopped.
        let again = running.start(&task("chapter-1", 1));
        assert_eq!(running.labels().len(), 3);
        assert!(running.cancel("b", "chapter-1", 1));
        assert_eq!(*one.stop.borrow(), Some(Stop::Cancelled));
        assert_eq!(*again.stop.borrow(), Some(Stop::Cancelled));
        assert_eq!(*two.stop.borrow(), None, "a later attempt runs on");
        drop(again);
        // Cancelled before it arrived: it starts stopped.
        assert!(!running.cancel("b", "chapter-2", 1));
        assert!(running.was_cancelled(&task("chapter-2", 1)));
        let late = running.start(&task("chapter-2", 1));
        assert_eq!(*late.stop.borrow(), Some(Stop::Cancelled));
        drop(one);
        drop(late);
        assert_eq!(running.len(), 1);
        running.stop_all(Stop::Shutdown);
        assert_eq!(*two.stop.borrow(), Some(Stop::Shutdown));
        drop(two);
        assert!(running.is_empty());
    }
}
