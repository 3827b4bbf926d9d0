//! The Job status the controller writes, as a plain value it can compare and patch: counts,
//! times, `uncountedTerminatedPods`, completed and failed indexes, and conditions with
//! upstream's `ensureJobConditionStatus` rules. No I/O.

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    pub active: i32,
    pub ready: i32,
    pub terminating: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub start_time: Option<Timestamp>,
    pub completion_time: Option<Timestamp>,
    pub uncounted_succeeded: BTreeSet<String>,
    pub uncounted_failed: BTreeSet<String>,
    pub completed_indexes: Option<String>,
    pub failed_indexes: Option<String>,
    pub conditions: Vec<JobCondition>,
}

impl Status {
    pub fn of(job: &Job) -> Status {
        let s = job.status.clone().unwrap_or_default();
        let unc = s.uncounted_terminated_pods.unwrap_or_default();
        Status {
            active: s.active.unwrap_or(0),
            ready: s.ready.unwrap_or(0),
            terminating: s.terminating.unwrap_or(0),
            succeeded: s.succeeded.unwrap_or(0),
            failed: s.failed.unwrap_or(0),
            start_time: s.start_time.map(|t| t.0),
            completion_time: s.completion_time.map(|t| t.0),
            uncounted_succeeded: unc.succeeded.unwrap_or_default().into_iter().collect(),
            uncounted_failed: unc.failed.unwrap_or_default().into_iter().collect(),
            completed_indexes: s.completed_indexes.filter(|s| !s.is_empty()),
            failed_indexes: s.failed_indexes,
            conditions: s.conditions.unwrap_or_default(),
        }
    }

    /// The status as a merge patch: every field the controller owns, absent ones as null.
    pub fn to_patch(&self, resource_version: Option<&str>) -> Value {
        let nz = |n: i32| (n != 0).then_some(n);
        let list =
            |s: &BTreeSet<String>| (!s.is_empty()).then(|| s.iter().cloned().collect::<Vec<_>>());
        json!({
            "metadata": {"resourceVersion": resource_version},
            "status": {
                "active": nz(self.active),
                "ready": self.ready,
                "terminating": self.terminating,
                "succeeded": nz(self.succeeded),
                "failed": nz(self.failed),
                "startTime": self.start_time.map(Time),
                "completionTime": self.completion_time.map(Time),
                "uncountedTerminatedPods": {
                    "succeeded": list(&self.uncounted_succeeded),
                    "failed": list(&self.uncounted_failed),
                },
                "completedIndexes": self.completed_indexes,
                "failedIndexes": self.failed_indexes,
                "conditions": (!self.conditions.is_empty()).then_some(&self.conditions),
            }
        })
    }

    pub fn condition(&self, type_: &str) -> Option<&JobCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    pub fn is_true(&self, type_: &str) -> bool {
        self.condition(type_).is_some_and(|c| c.status == "True")
    }

    /// Upstream's `ensureJobConditionStatus`: add a True condition that is missing, update one
    /// whose status, reason or message changed (the transition time only moves with the
    /// status), never add a False one. Returns whether anything changed.
    pub fn ensure(
        &mut self,
        type_: &str,
        status: bool,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) -> bool {
        let st = if status { "True" } else { "False" };
        if let Some(c) = self.conditions.iter_mut().find(|c| c.type_ == type_) {
            if c.status == st
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message)
            {
                return false;
            }
            if c.status != st {
                c.last_transition_time = Some(Time(now));
            }
            c.status = st.into();
            c.reason = Some(reason.into());
            c.message = Some(message.into());
            c.last_probe_time = Some(Time(now));
            return true;
        }
        if !status {
            return false;
        }
        self.conditions.push(JobCondition {
            type_: type_.into(),
            status: st.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_probe_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
        });
        true
    }
}

/// Whether the Job is finished, with the condition that says so and when.
pub fn finished(job: &Job) -> Option<(&'static str, Option<Timestamp>)> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    for kind in ["Complete", "Failed"] {
        if let Some(c) = conds.iter().find(|c| c.type_ == kind && c.status == "True") {
            return Some((kind, c.last_transition_time.as_ref().map(|t| t.0)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_as_upstream() {
        let t1: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t2: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let mut s = Status::default();
        assert!(!s.ensure("Suspended", false, "JobResumed", "Job resumed", t1));
        assert!(s.conditions.is_empty());
        assert!(s.ensure("Suspended", true, "JobSuspended", "Job suspended", t1));
        assert!(!s.ensure("Suspended", true, "JobSuspended", "Job suspended", t2));
        assert!(s.ensure("Suspended", false, "JobResumed", "Job resumed", t2));
        let c = s.condition("Suspended").unwrap();
        assert_eq!(c.status, "False");
        assert_eq!(c.last_transition_time.as_ref().unwrap().0, t2);
        assert!(!s.is_true("Suspended"));
        let p = s.to_patch(Some("7"));
        assert_eq!(p["status"]["active"], Value::Null);
        assert_eq!(p["status"]["ready"], 0);
        assert_eq!(p["metadata"]["resourceVersion"], "7");
    }
}
