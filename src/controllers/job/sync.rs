//! One pass of the Job controller's decisions, as upstream's `syncJob` makes them, over the
//! Job and its pods at one instant: which finished pods to count (into
//! `uncountedTerminatedPods` or completed/failed indexes) and release from the tracking
//! finalizer, whether the Job has met its success criteria or a failure target (pod failure
//! policy, backoffLimit, maxFailedIndexes, activeDeadlineSeconds), the Suspended condition,
//! and which pods to create or delete (parallelism, completions, work-queue semantics,
//! Indexed completion, back-off). Pure: the caller does the writes, then `finish` moves the
//! counted pods into the totals and adds the final condition once no pod is left running.

use super::indexes;
use super::pods::has_finalizer;
use super::policy::{self, Verdict};
use super::status::Status;
use crate::controllers::podutil;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// At most this many pods are created or deleted in one pass (upstream's burst).
const BURST: usize = 500;

/// The interim condition that precedes the final one.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `SuccessCriteriaMet` or `FailureTarget`.
    pub type_: &'static str,
    pub reason: String,
    pub message: String,
}

impl Target {
    fn failure(reason: &str, message: &str) -> Target {
        Target {
            type_: "FailureTarget",
            reason: reason.into(),
            message: message.into(),
        }
    }
}

pub struct Plan<'a> {
    /// The status to record before releasing finalizers (totals not yet moved).
    pub status: Status,
    pub to_finalize: Vec<&'a Pod>,
    pub delete: Vec<&'a Pod>,
    /// Pods to create: (index for Indexed Jobs, earlier failures of that index).
    pub create: Vec<(Option<i32>, i32)>,
    pub requeue: Option<Duration>,
    pub target: Option<Target>,
    /// Events: (warning, reason, message).
    pub events: Vec<(bool, &'static str, String)>,
    /// Active pods before any deletion, and how many of them are ready.
    pub active: Vec<&'a Pod>,
    pub terminating: i32,
}

fn min_requeue(a: Option<Duration>, b: Duration) -> Option<Duration> {
    Some(a.map_or(b, |a| a.min(b)))
}

pub fn plan<'a>(job: &Job, pods: &'a [Arc<Pod>], now: Timestamp) -> Plan<'a> {
    let spec = job.spec.clone().unwrap_or_default();
    let mut st = Status::of(job);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let limit = spec.completions.unwrap_or(0);
    let parallelism = usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
    let per_index = spec.backoff_limit_per_index;
    let suspended = spec.suspend == Some(true);
    let mut events = vec![];
    let mut target = ["FailureTarget", "SuccessCriteriaMet"]
        .into_iter()
        .find_map(|t| {
            let c = st.condition(t).filter(|c| c.status == "True")?;
            Some(Target {
                type_: t,
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
            })
        });

    // Count finished pods that still carry the tracking finalizer.
    let mut completed = indexes::parse(st.completed_indexes.as_deref(), limit);
    let mut failed_idx = indexes::parse(st.failed_indexes.as_deref(), limit);
    let mut to_finalize = vec![];
    let mut fail_job = None;
    for p in pods.iter().map(Arc::as_ref).filter(|p| has_finalizer(p)) {
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let failed = policy::is_failed(p, job);
        let succeeded = policy::phase(p) == "Succeeded";
        if !(succeeded || failed || target.is_some()) {
            continue;
        }
        to_finalize.push(p);
        let ix = indexes::of(p).filter(|i| *i < limit);
        if indexed && ix.is_none() {
            continue;
        }
        if succeeded && !st.uncounted_failed.contains(&uid) {
            match ix {
                Some(i) if indexed => {
                    completed.insert(i);
                }
                _ => {
                    st.uncounted_succeeded.insert(uid);
                }
            }
        } else if !succeeded
            && !st.uncounted_failed.contains(&uid)
            && (failed || target.as_ref().is_some_and(|t| t.type_ == "FailureTarget"))
        {
            // Once the Job is to fail, pods still running count as failed too.
            let v = policy::verdict(job, p);
            if v == Verdict::Ignore {
                continue;
            }
            if let Verdict::FailJob(m) = &v {
                fail_job.get_or_insert(m.clone());
            }
            let over = per_index.is_some_and(|l| policy::index_failures(p) + 1 > l);
            if let (Some(i), true) = (ix, v == Verdict::FailIndex || over) {
                failed_idx.insert(i);
            }
            st.uncounted_failed.insert(uid);
        }
    }
    if indexed {
        st.completed_indexes = Some(indexes::format(&completed)).filter(|s| !s.is_empty());
    }
    if per_index.is_some() {
        st.failed_indexes = Some(indexes::format(&failed_idx));
    }
    let succeeded_total = if indexed {
        completed.len()
    } else {
        usize::try_from(st.succeeded).unwrap_or(0) + st.uncounted_succeeded.len()
    };
    let failed_total = i64::from(st.failed) + st.uncounted_failed.len() as i64;

    let active: Vec<&Pod> = pods
        .iter()
        .map(Arc::as_ref)
        .filter(|p| podutil::is_active(p))
        .collect();
    let terminating: Vec<&Pod> = pods
        .iter()
        .map(Arc::as_ref)
        .filter(|p| p.metadata.deletion_timestamp.is_some() && !policy::is_terminal(p))
        .collect();

    // Suspension and the start time.
    if target.is_none() {
        if suspended {
            if st.ensure("Suspended", true, "JobSuspended", "Job suspended", now) {
                events.push((false, "Suspended", "Job suspended".to_string()));
            }
        } else if st.is_true("Suspended") {
            st.ensure("Suspended", false, "JobResumed", "Job resumed", now);
            events.push((false, "Resumed", "Job resumed".to_string()));
            // The deadline counts time continuously active: it starts again on resume.
            st.start_time = Some(now);
        }
    }
    if st.start_time.is_none() && !suspended {
        st.start_time = Some(now);
    }

    // Failure targets.
    let mut requeue = None;
    if target.is_none() {
        let backoff_limit = i64::from(spec.backoff_limit.unwrap_or(6));
        let on_failure = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            == Some("OnFailure");
        let restarts: i64 = active.iter().map(|p| policy::restarts(p)).sum();
        let past_restarts = on_failure
            && if backoff_limit == 0 {
                restarts > 0
            } else {
                restarts >= backoff_limit
            };
        let deadline = spec
            .active_deadline_seconds
            .filter(|_| !suspended)
            .zip(st.start_time)
            .map(|(s, start)| start + SignedDuration::from_secs(s));
        target = if let Some(m) = fail_job {
            Some(Target::failure("PodFailurePolicy", &m))
        } else if per_index.is_none() && (failed_total > backoff_limit || past_restarts) {
            Some(Target::failure(
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ))
        } else if per_index.is_some()
            && spec
                .max_failed_indexes
                .is_some_and(|m| failed_idx.len() as i64 > i64::from(m))
        {
            Some(Target::failure(
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes",
            ))
        } else if deadline.is_some_and(|d| d <= now) {
            Some(Target::failure(
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ))
        } else {
            if let Some(d) = deadline {
                let wait = d.duration_since(now) + SignedDuration::from_millis(50);
                requeue = Duration::try_from(wait).ok();
            }
            None
        };
    }

    // Pods to delete and create.
    let mut delete: Vec<&Pod> = vec![];
    let mut create = vec![];
    if target.is_some() || suspended {
        delete = active.clone();
    } else if indexed {
        let mut by_index: BTreeMap<i32, Vec<&Pod>> = BTreeMap::new();
        for p in &active {
            match indexes::of(p) {
                Some(i) if i < limit && !completed.contains(&i) && !failed_idx.contains(&i) => {
                    by_index.entry(i).or_default().push(p)
                }
                _ => delete.push(p),
            }
        }
        for v in by_index.values_mut() {
            if v.len() > 1 {
                podutil::rank_for_deletion(v);
                let keep = v.pop();
                delete.append(v);
                v.extend(keep);
            }
        }
        let remaining = usize::try_from(limit)
            .unwrap_or(0)
            .saturating_sub(completed.len() + failed_idx.len());
        let want = parallelism.min(remaining);
        let mut busy: BTreeSet<i32> = by_index.keys().copied().collect();
        if by_index.len() > want {
            let surplus: Vec<i32> = by_index
                .keys()
                .rev()
                .take(by_index.len() - want)
                .copied()
                .collect();
            for i in surplus {
                delete.extend(by_index.remove(&i).unwrap_or_default());
                busy.remove(&i);
            }
        } else {
            if policy::only_replace_failed(job) {
                busy.extend(terminating.iter().filter_map(|p| indexes::of(p)));
            }
            let global_wait = if per_index.is_none() {
                policy::backoff_remaining(job, pods.iter().map(Arc::as_ref), now)
            } else {
                None
            };
            if let Some(w) = global_wait {
                requeue = min_requeue(requeue, w);
            } else {
                let need = want.saturating_sub(by_index.len()).min(BURST);
                let mut finished_by_index: BTreeMap<i32, Vec<&Pod>> = BTreeMap::new();
                for p in pods
                    .iter()
                    .map(Arc::as_ref)
                    .filter(|p| policy::is_terminal(p))
                {
                    if let Some(i) = indexes::of(p) {
                        finished_by_index.entry(i).or_default().push(p);
                    }
                }
                for i in 0..limit {
                    if create.len() >= need {
                        break;
                    }
                    if completed.contains(&i) || failed_idx.contains(&i) || busy.contains(&i) {
                        continue;
                    }
                    let of_index = finished_by_index.get(&i).cloned().unwrap_or_default();
                    if per_index.is_some() {
                        if let Some(w) =
                            policy::backoff_remaining(job, of_index.iter().copied(), now)
                        {
                            requeue = min_requeue(requeue, w);
                            continue;
                        }
                    }
                    let failures = of_index
                        .iter()
                        .filter(|p| {
                            policy::is_failed(p, job) && policy::verdict(job, p) != Verdict::Ignore
                        })
                        .map(|p| policy::index_failures(p) + 1)
                        .max()
                        .unwrap_or(0);
                    create.push((Some(i), failures));
                }
            }
        }
    } else {
        // Succeeded pods stay with their Job: however stale the Job's counts in the cache,
        // there are at least as many successes as such pods. Never create past them.
        let visible = pods
            .iter()
            .filter(|p| policy::phase(p) == "Succeeded")
            .count();
        let succeeded_floor = succeeded_total.max(visible);
        let want = match spec.completions {
            None if succeeded_floor > 0 => active.len(),
            None => parallelism,
            Some(c) => usize::try_from(c)
                .unwrap_or(0)
                .saturating_sub(succeeded_floor)
                .min(parallelism),
        };
        if active.len() > want {
            let mut doomed = active.clone();
            podutil::rank_for_deletion(&mut doomed);
            doomed.truncate((active.len() - want).min(BURST));
            delete = doomed;
        } else {
            let mut have = active.len();
            if policy::only_replace_failed(job) {
                have += terminating.len();
            }
            if have < want {
                match policy::backoff_remaining(job, pods.iter().map(Arc::as_ref), now) {
                    Some(w) => requeue = min_requeue(requeue, w),
                    None => create = vec![(None, 0); (want - have).min(BURST)],
                }
            }
        }
    }

    // Success (or, with per-index limits, every index done and some failed).
    let active_after = active.len() - delete.len() + create.len();
    if target.is_none() && active_after == 0 {
        let complete = match spec.completions {
            None => succeeded_total > 0,
            Some(c) => succeeded_total >= usize::try_from(c).unwrap_or(0),
        };
        if complete {
            target = Some(Target {
                type_: "SuccessCriteriaMet",
                reason: "CompletionsReached".into(),
                message: "Reached expected number of succeeded pods".into(),
            });
        } else if indexed
            && !failed_idx.is_empty()
            && completed.len() + failed_idx.len() >= usize::try_from(limit).unwrap_or(0)
        {
            target = Some(Target::failure("FailedIndexes", "Job has failed indexes"));
        }
    }
    if let Some(t) = &target {
        st.ensure(t.type_, true, &t.reason, &t.message, now);
    }
    Plan {
        status: st,
        to_finalize,
        delete,
        create,
        requeue,
        target,
        events,
        terminating: i32::try_from(terminating.len()).unwrap_or(i32::MAX),
        active,
    }
}

/// After the writes: move counted pods whose finalizer is gone into the totals, set the
/// active, ready and terminating counts, and add the final condition (Complete or Failed)
/// once nothing is uncounted or still terminating. Returns the event for the final condition.
#[allow(clippy::too_many_arguments)]
pub fn finish(
    st: &mut Status,
    job: &Job,
    pods: &[Arc<Pod>],
    released: &HashSet<String>,
    active: i32,
    ready: i32,
    terminating: i32,
    target: Option<&Target>,
    now: Timestamp,
) -> Option<(bool, &'static str, String)> {
    let indexed = job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed");
    let held: HashSet<String> = pods
        .iter()
        .filter(|p| has_finalizer(p))
        .filter_map(|p| p.metadata.uid.clone())
        .filter(|u| !released.contains(u))
        .collect();
    let before = st.uncounted_succeeded.len();
    st.uncounted_succeeded.retain(|u| held.contains(u));
    let moved_s = before - st.uncounted_succeeded.len();
    let before = st.uncounted_failed.len();
    st.uncounted_failed.retain(|u| held.contains(u));
    let moved_f = before - st.uncounted_failed.len();
    if indexed {
        let limit = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(0);
        st.succeeded = i32::try_from(indexes::parse(st.completed_indexes.as_deref(), limit).len())
            .unwrap_or(0);
    } else {
        st.succeeded += i32::try_from(moved_s).unwrap_or(0);
    }
    st.failed += i32::try_from(moved_f).unwrap_or(0);
    st.active = active;
    st.ready = ready;
    st.terminating = terminating;
    let t = target?;
    let final_type = if t.type_ == "SuccessCriteriaMet" {
        "Complete"
    } else {
        "Failed"
    };
    let uncounted = st.uncounted_succeeded.len() + st.uncounted_failed.len();
    if uncounted > 0 || terminating > 0 || st.is_true(final_type) {
        return None;
    }
    st.ensure(final_type, true, &t.reason, &t.message, now);
    if final_type == "Complete" {
        st.completion_time = Some(now);
        Some((false, "Completed", "Job completed".to_string()))
    } else {
        let reason: &'static str = match t.reason.as_str() {
            "BackoffLimitExceeded" => "BackoffLimitExceeded",
            "DeadlineExceeded" => "DeadlineExceeded",
            "PodFailurePolicy" => "PodFailurePolicy",
            "MaxFailedIndexesExceeded" => "MaxFailedIndexesExceeded",
            "FailedIndexes" => "FailedIndexes",
            _ => "Failed",
        };
        Some((true, reason, t.message.clone()))
    }
}
