//! Completion indexes of Indexed Jobs: the annotation and label that carry a pod's index,
//! and the compressed range strings of `status.completedIndexes` and `status.failedIndexes`
//! ("1,3-5,7"). Pure; no I/O.

use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeSet;

pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
pub const FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";

/// The pod's completion index, if it carries a valid one.
pub fn of(pod: &Pod) -> Option<i32> {
    let v = pod.metadata.annotations.as_ref()?.get(COMPLETION_INDEX)?;
    v.parse::<i32>().ok().filter(|i| *i >= 0)
}

/// Parse a range string; malformed parts are skipped, indexes at or past `limit` dropped.
pub fn parse(s: Option<&str>, limit: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.unwrap_or_default().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(lo), Ok(hi)) = (lo, hi) {
            for i in lo.max(0)..=hi.min(limit.saturating_sub(1)) {
                out.insert(i);
            }
        }
    }
    out
}

/// Format a set as upstream does: ascending, consecutive runs of two or more as "a-b".
pub fn format(set: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = vec![];
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if end > start {
            format!("{start}-{end}")
        } else {
            start.to_string()
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_trip() {
        let s: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format(&s), "0-2,4,6-7");
        assert_eq!(parse(Some("0-2,4,6-7"), 10), s);
        assert_eq!(format(&BTreeSet::new()), "");
        assert_eq!(parse(None, 3), BTreeSet::new());
        // out of range and malformed parts are dropped
        assert_eq!(parse(Some("1,x,2-9"), 4), [1, 2, 3].into_iter().collect());
        assert_eq!(format(&[5].into_iter().collect()), "5");
    }
}
