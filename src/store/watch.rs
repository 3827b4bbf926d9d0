//! Watch streams: catch up from the revision log, then follow the live broadcast.
//!
//! The subscription and the catch-up boundary are taken together (see `Core::subscribe`), so
//! the log covers `(from, boundary]` and the broadcast starts right after `boundary`: no gap,
//! and a revision check drops anything already delivered. A watcher that lags behind the
//! broadcast buffer does not slow writers: it re-subscribes and catches up from the log again,
//! and only fails with `Compacted` if compaction has passed it by then.

use super::core::Core;
use super::{Event, Revision, StoreError};
use futures::stream::{BoxStream, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast::{error::RecvError, Receiver};

/// Log records read per catch-up step.
const CATCH_UP_BATCH: usize = 256;

pub type WatchStream = BoxStream<'static, Result<Event, StoreError>>;

enum Mode {
    CatchUp {
        until: Revision,
        rx: Receiver<Event>,
    },
    Live(Receiver<Event>),
    Done,
}

struct State {
    core: Arc<Core>,
    prefix: String,
    /// Every event at or below this revision has been delivered or filtered out.
    pos: Revision,
    mode: Mode,
    buf: VecDeque<Event>,
}

pub(crate) fn watch(
    core: Arc<Core>,
    prefix: &str,
    from: Revision,
) -> Result<WatchStream, StoreError> {
    core.check_open()?;
    let compacted = core.compacted();
    if from != 0 && from < compacted {
        return Err(StoreError::Compacted {
            requested: from,
            compacted,
        });
    }
    let (rx, boundary) = core.subscribe()?;
    let (pos, mode) = if from == 0 {
        (boundary, Mode::Live(rx))
    } else {
        (
            from,
            Mode::CatchUp {
                until: boundary,
                rx,
            },
        )
    };
    let state = State {
        core,
        prefix: prefix.to_string(),
        pos,
        mode,
        buf: VecDeque::new(),
    };
    Ok(futures::stream::unfold(state, step).boxed())
}

async fn step(mut st: State) -> Option<(Result<Event, StoreError>, State)> {
    loop {
        if let Some(ev) = st.buf.pop_front() {
            return Some((Ok(ev), st));
        }
        match std::mem::replace(&mut st.mode, Mode::Done) {
            Mode::Done => return None,
            Mode::CatchUp { until, rx } => {
                if st.pos >= until {
                    st.mode = Mode::Live(rx);
                    continue;
                }
                match st
                    .core
                    .read_events(st.prefix.as_bytes(), st.pos, until, CATCH_UP_BATCH)
                {
                    Ok((events, reached)) => {
                        st.buf.extend(events);
                        st.pos = reached;
                        st.mode = Mode::CatchUp { until, rx };
                    }
                    Err(e) => return Some((Err(e), st)),
                }
            }
            Mode::Live(mut rx) => match rx.recv().await {
                Ok(ev) => {
                    let rev = ev.kv.mod_revision;
                    st.mode = Mode::Live(rx);
                    if rev <= st.pos {
                        continue;
                    }
                    st.pos = rev;
                    if ev.kv.key.starts_with(&st.prefix) {
                        return Some((Ok(ev), st));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(
                        missed,
                        revision = st.pos,
                        "watcher lagged; catching up from the log"
                    );
                    match st.core.subscribe() {
                        Ok((rx, until)) => st.mode = Mode::CatchUp { until, rx },
                        Err(e) => return Some((Err(e), st)),
                    }
                }
                Err(RecvError::Closed) => return Some((Err(StoreError::Closed), st)),
            },
        }
    }
}
