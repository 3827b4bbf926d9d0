//! The CronJob controller's notion of now, behind a trait so tests can move time by hours
//! without waiting. The system clock never ticks (the controller requeues itself for the next
//! schedule time); the manual clock ticks on every change so the controller looks again.

use futures::stream::BoxStream;
use futures::StreamExt;
use jiff::Timestamp;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
    /// Fires when time jumps (never for the system clock): every CronJob is looked at again.
    fn ticks(&self) -> BoxStream<'static, ()>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn ticks(&self) -> BoxStream<'static, ()> {
        futures::stream::pending().boxed()
    }
}

/// A clock that only moves when told to: the in-memory twin of `SystemClock`.
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
    tick: Arc<watch::Sender<u64>>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        let (tick, _) = watch::channel(0);
        Self {
            now: Arc::new(Mutex::new(start)),
            tick: Arc::new(tick),
        }
    }

    /// Set the time and have the controller look at every CronJob again.
    pub fn set(&self, t: Timestamp) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = t;
        self.tick.send_modify(|n| *n += 1);
    }

    pub fn advance(&self, d: jiff::SignedDuration) {
        let t = self.now() + d;
        self.set(t);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ticks(&self) -> BoxStream<'static, ()> {
        let rx = self.tick.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        })
        .boxed()
    }
}
