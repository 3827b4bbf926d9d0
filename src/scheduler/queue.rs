//! The scheduling queue: pending pods waiting for a scheduling attempt. Three places, as
//! upstream: the active queue (highest priority first, then oldest), the back-off queue
//! (pods that failed and wait 1 s, doubling to 10 s, before another try) and the
//! unschedulable set (pods no node fits, retried when the cluster changes: a node added or
//! updated, a pod deleted). It owns only pod keys, attempts and timers; it must never
//! decide placements or call the API.

use k8s_openapi::api::core::v1::Pod;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried at least this often even if nothing seems to change,
/// in case an event that would have helped was missed.
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable(Instant),
    InFlight,
}

#[derive(Debug)]
struct Queued {
    pod: Arc<Pod>,
    place: Place,
    attempts: u32,
    backoff_until: Option<Instant>,
    /// Bumped on every change so stale heap entries are skipped.
    generation: u64,
    /// The pod changed while it was being scheduled: try again without waiting.
    dirty: bool,
}

#[derive(Debug, PartialEq, Eq)]
struct Entry {
    priority: i32,
    created: i64,
    seq: u64,
    key: String,
    generation: u64,
}

impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        // BinaryHeap pops the greatest: higher priority, then older, then first queued
        self.priority
            .cmp(&o.priority)
            .then(o.created.cmp(&self.created))
            .then(o.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

#[derive(Debug, Default)]
struct Inner {
    pods: HashMap<String, Queued>,
    active: BinaryHeap<Entry>,
    /// When back-off pods become active and unschedulable pods are retried anyway.
    timers: BinaryHeap<Reverse<(Instant, String, u64)>>,
    seq: u64,
    /// Counts cluster changes; a pod that fails after a change that happened during its
    /// attempt goes to back-off rather than waiting for the next change.
    moves: u64,
}

/// What `pop` hands out: the pod and the move counter at the start of its attempt.
pub struct Popped {
    pub key: String,
    pub pod: Arc<Pod>,
    pub moves: u64,
}

#[derive(Default)]
pub struct Queue {
    inner: Mutex<Inner>,
    notify: Notify,
}

fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF)
}

fn created(pod: &Pod) -> i64 {
    pod.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_nanosecond() as i64)
        .unwrap_or(0)
}

impl Inner {
    /// Moves a pod to `place`, invalidating its older heap and timer entries.
    fn set_place(&mut self, key: &str, place: Place) {
        self.seq += 1;
        let seq = self.seq;
        let Some(q) = self.pods.get_mut(key) else {
            return;
        };
        q.place = place;
        q.generation += 1;
        let generation = q.generation;
        let at = match place {
            Place::Active => {
                let priority = q.pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
                let created = created(&q.pod);
                self.active.push(Entry {
                    priority,
                    created,
                    seq,
                    key: key.to_string(),
                    generation,
                });
                return;
            }
            Place::InFlight => return,
            Place::Backoff => q.backoff_until.unwrap_or_else(Instant::now),
            Place::Unschedulable(since) => since + MAX_UNSCHEDULABLE,
        };
        self.timers.push(Reverse((at, key.to_string(), generation)));
    }

    /// Back-off pods whose time has come, and unschedulable pods waiting too long,
    /// become active; returns the next deadline.
    fn promote(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse((at, key, generation))) = self.timers.peek().cloned() {
            if at > now {
                return Some(at);
            }
            self.timers.pop();
            let current = self
                .pods
                .get(&key)
                .is_some_and(|q| q.generation == generation);
            if current {
                self.set_place(&key, Place::Active);
            }
        }
        None
    }
}

impl Queue {
    /// A pending pod appeared or changed.
    pub fn add_or_update(&self, key: &str, pod: Arc<Pod>) {
        let mut g = self.inner.lock().expect("queue lock");
        match g.pods.get_mut(key) {
            None => {
                g.pods.insert(
                    key.to_string(),
                    Queued {
                        pod,
                        place: Place::Active,
                        attempts: 0,
                        backoff_until: None,
                        generation: 0,
                        dirty: false,
                    },
                );
                g.set_place(key, Place::Active);
            }
            Some(q) => {
                let changed =
                    q.pod.spec != pod.spec || q.pod.metadata.labels != pod.metadata.labels;
                q.pod = pod;
                match q.place {
                    Place::InFlight => q.dirty |= changed,
                    Place::Unschedulable(_) if changed => g.set_place(key, Place::Backoff),
                    // re-queue so a priority change reorders it
                    Place::Active if changed => g.set_place(key, Place::Active),
                    _ => {}
                }
            }
        }
        drop(g);
        self.notify.notify_one();
    }

    pub fn delete(&self, key: &str) {
        self.inner.lock().expect("queue lock").pods.remove(key);
    }

    pub fn contains(&self, key: &str) -> bool {
        self.inner
            .lock()
            .expect("queue lock")
            .pods
            .contains_key(key)
    }

    #[cfg(test)]
    pub fn keys(&self) -> Vec<String> {
        self.inner
            .lock()
            .expect("queue lock")
            .pods
            .keys()
            .cloned()
            .collect()
    }

    /// The cluster changed: every unschedulable pod gets another try (after its back-off).
    pub fn move_all(&self) {
        let mut g = self.inner.lock().expect("queue lock");
        g.moves += 1;
        let waiting: Vec<String> = g
            .pods
            .iter()
            .filter(|(_, q)| matches!(q.place, Place::Unschedulable(_)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in waiting {
            g.set_place(&k, Place::Backoff);
        }
        drop(g);
        self.notify.notify_one();
    }

    /// Waits for the next pod to schedule; `None` once `cancel` fires.
    pub async fn pop(&self, cancel: &tokio_util::sync::CancellationToken) -> Option<Popped> {
        loop {
            let notified = self.notify.notified();
            let next = {
                let mut g = self.inner.lock().expect("queue lock");
                let next = g.promote(Instant::now());
                while let Some(e) = g.active.pop() {
                    let moves = g.moves;
                    let Some(q) = g.pods.get_mut(&e.key) else {
                        continue;
                    };
                    if q.generation != e.generation || q.place != Place::Active {
                        continue;
                    }
                    q.dirty = false;
                    let pod = q.pod.clone();
                    g.set_place(&e.key, Place::InFlight);
                    return Some(Popped {
                        key: e.key,
                        pod,
                        moves,
                    });
                }
                next
            };
            let sleep = next.map(|n| n.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = notified => {}
                _ = tokio::time::sleep(sleep.unwrap_or(MAX_UNSCHEDULABLE)) => {}
            }
        }
    }

    /// The pod was bound: it leaves the queue.
    pub fn done(&self, key: &str) {
        self.delete(key);
    }

    /// The attempt failed. `unschedulable`: no node fits (wait for a cluster change);
    /// otherwise an error (binding failed): retry after the back-off.
    pub fn failed(&self, popped_moves: u64, key: &str, unschedulable: bool) {
        let mut g = self.inner.lock().expect("queue lock");
        let moved = g.moves != popped_moves;
        let Some(q) = g.pods.get_mut(key) else { return };
        q.attempts += 1;
        let now = Instant::now();
        q.backoff_until = Some(now + backoff(q.attempts));
        let place = if unschedulable && !moved && !q.dirty {
            Place::Unschedulable(now)
        } else {
            Place::Backoff
        };
        g.set_place(key, place);
        drop(g);
        self.notify.notify_one();
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
