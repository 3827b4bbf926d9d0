//! How the Job controller judges finished pods: which count as failed, what the Job's
//! `podFailurePolicy` says about a failed pod (FailJob, Ignore, Count, FailIndex on container
//! exit codes or pod conditions, first matching rule wins), when a pod finished, and
//! upstream's exponential back-off before replacing failed pods (10 s, doubling, at most
//! 6 min, counted over the failures since the last success). Pure functions; no I/O.

use super::indexes;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{Job, PodFailurePolicy};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use std::time::Duration;

/// The first back-off after a failure.
pub const BACKOFF_BASE: SignedDuration = SignedDuration::from_secs(10);
/// The longest back-off.
pub const BACKOFF_MAX: SignedDuration = SignedDuration::from_secs(360);

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Replace only pods that reached the Failed phase (podReplacementPolicy Failed, or any pod
/// failure policy), not those merely being deleted.
pub fn only_replace_failed(job: &Job) -> bool {
    let spec = job.spec.as_ref();
    spec.and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed")
        || spec.is_some_and(|s| s.pod_failure_policy.is_some())
}

/// Upstream's `isPodFailed`: the Failed phase, or (unless only failed pods are replaced) a pod
/// being deleted before it succeeded, so pods that never get to finish still count.
pub fn is_failed(pod: &Pod, job: &Job) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    if only_replace_failed(job) {
        return false;
    }
    pod.metadata.deletion_timestamp.is_some() && phase(pod) != "Succeeded"
}

/// What the pod failure policy decided for one failed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Fail the whole Job, with the message for its condition.
    FailJob(String),
    /// Do not count the failure.
    Ignore,
    /// Fail the pod's index (with backoffLimitPerIndex).
    FailIndex,
    /// Count it (no rule matched, or a Count rule).
    Count,
}

fn statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let st = pod.status.as_ref();
    let init = st.and_then(|s| s.init_container_statuses.as_deref());
    let main = st.and_then(|s| s.container_statuses.as_deref());
    init.unwrap_or_default()
        .iter()
        .chain(main.unwrap_or_default())
}

/// Apply `policy` to a pod in the Failed phase.
pub fn judge(policy: &PodFailurePolicy, pod: &Pod) -> Verdict {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    for (i, rule) in policy.rules.iter().enumerate() {
        let mut matched = None;
        if let Some(req) = &rule.on_exit_codes {
            for cs in statuses(pod) {
                if req.container_name.as_ref().is_some_and(|n| *n != cs.name) {
                    continue;
                }
                let Some(code) = cs
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| t.exit_code)
                else {
                    continue;
                };
                let listed = req.values.contains(&code);
                let hit = match req.operator.as_str() {
                    "In" => listed,
                    "NotIn" => !listed,
                    _ => false,
                };
                if code != 0 && hit {
                    matched = Some(format!(
                        "Container {} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {i}",
                        cs.name, rule.action
                    ));
                    break;
                }
            }
        }
        if let Some(pats) = &rule.on_pod_conditions {
            let conds = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_deref())
                .unwrap_or_default();
            for p in pats {
                let want = if p.status.is_empty() {
                    "True"
                } else {
                    p.status.as_str()
                };
                if conds.iter().any(|c| c.type_ == p.type_ && c.status == want) {
                    matched = Some(format!(
                        "Pod {ns}/{name} has condition {} matching {} rule at index {i}",
                        p.type_, rule.action
                    ));
                    break;
                }
            }
        }
        if let Some(msg) = matched {
            return match rule.action.as_str() {
                "FailJob" => Verdict::FailJob(msg),
                "Ignore" => Verdict::Ignore,
                "FailIndex" => Verdict::FailIndex,
                _ => Verdict::Count,
            };
        }
    }
    Verdict::Count
}

/// The failure policy's verdict on a failed pod: only pods in the Failed phase are judged.
pub fn verdict(job: &Job, pod: &Pod) -> Verdict {
    match job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
    {
        Some(p) if phase(pod) == "Failed" => judge(p, pod),
        _ => Verdict::Count,
    }
}

/// When the pod finished: its containers' last finish, else when it was deleted, else when it
/// was created.
pub fn finish_time(pod: &Pod) -> Timestamp {
    statuses(pod)
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
        .or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// How long to wait before creating a replacement, given the finished pods (of one index, or
/// of the whole Job): `10 s * 2^(n-1)`, capped at 6 min, for n failures since the last
/// success, counted from the last failure. None when no wait is due.
pub fn backoff_remaining<'a>(
    job: &Job,
    finished: impl Iterator<Item = &'a Pod>,
    now: Timestamp,
) -> Option<Duration> {
    let mut last_success: Option<Timestamp> = None;
    let mut failures: Vec<Timestamp> = vec![];
    for p in finished {
        if phase(p) == "Succeeded" {
            let t = finish_time(p);
            last_success = Some(last_success.map_or(t, |l| l.max(t)));
        } else if is_failed(p, job) && verdict(job, p) != Verdict::Ignore {
            failures.push(finish_time(p));
        }
    }
    let after: Vec<Timestamp> = failures
        .into_iter()
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last = after.iter().max()?;
    let n = u32::try_from(after.len()).unwrap_or(u32::MAX);
    let mut delay = BACKOFF_BASE;
    for _ in 1..n {
        delay = delay.saturating_mul(2);
        if delay >= BACKOFF_MAX {
            break;
        }
    }
    let delay = delay.min(BACKOFF_MAX);
    let wait = (*last + delay).duration_since(now);
    if wait.is_positive() {
        Duration::try_from(wait).ok()
    } else {
        None
    }
}

/// Restarts of an active pod's containers (for `restartPolicy: OnFailure`, where failures
/// are restarts, not failed pods).
pub fn restarts(pod: &Pod) -> i64 {
    statuses(pod).map(|c| i64::from(c.restart_count)).sum()
}

/// The number of earlier failures of this pod's index (`job-index-failure-count`).
pub fn index_failures(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(indexes::FAILURE_COUNT))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
