//! A pod's status computed from what the agent observed: each container's latest and
//! previous instance (from its shim) or why it is waiting, the sandbox and its IP. Phase,
//! conditions and container statuses follow upstream's kubelet. Pure: no I/O.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One container instance as its shim reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: String,
    pub running: bool,
    pub exit_code: Option<i32>,
    pub started_at: Option<Time>,
    pub finished_at: Option<Time>,
    pub oom_killed: bool,
    pub message: Option<String>,
}

/// What the agent knows about one container of the pod.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub latest: Option<Instance>,
    pub previous: Option<Instance>,
    pub restart_count: i32,
    /// Why no instance is running now, when the agent knows (pulling, back-off, bad config).
    pub waiting: Option<(String, Option<String>)>,
    pub image_id: String,
    pub ready: bool,
}

/// Everything observed about a pod.
#[derive(Debug, Clone, Default)]
pub struct PodView {
    pub containers: BTreeMap<String, Observed>,
    pub sandbox_ready: bool,
    pub pod_ips: Vec<IpAddr>,
    pub host_ip: Option<IpAddr>,
    /// The pod will never run again (all done under its restart policy, or failed for good).
    pub terminal: Option<bool>,
}

fn terminated(i: &Instance) -> ContainerStateTerminated {
    let code = i.exit_code.unwrap_or(137);
    let reason = if i.oom_killed {
        "OOMKilled"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    };
    ContainerStateTerminated {
        exit_code: code,
        reason: Some(reason.into()),
        message: i.message.clone(),
        started_at: i.started_at.clone(),
        finished_at: i.finished_at.clone(),
        container_id: Some(format!("k1s://{}", i.id)),
        signal: None,
    }
}

fn state_of(i: &Instance) -> ContainerState {
    if i.running {
        ContainerState {
            running: Some(ContainerStateRunning {
                started_at: i.started_at.clone(),
            }),
            ..Default::default()
        }
    } else {
        ContainerState {
            terminated: Some(terminated(i)),
            ..Default::default()
        }
    }
}

fn container_status(name: &str, image: &str, o: &Observed, default_wait: &str) -> ContainerStatus {
    let waiting = |reason: &str, message: Option<String>| ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    };
    let state = match (&o.waiting, &o.latest) {
        (Some((r, m)), _) => waiting(r, m.clone()),
        (None, Some(i)) => state_of(i),
        (None, None) => waiting(default_wait, None),
    };
    // When waiting to restart, the instance that ended is the last state.
    let last = match (&o.waiting, &o.latest) {
        (Some(_), Some(i)) if !i.running => Some(i),
        _ => o.previous.as_ref(),
    };
    let running = state.running.is_some();
    ContainerStatus {
        name: name.into(),
        image: image.into(),
        image_id: o.image_id.clone(),
        container_id: o.latest.as_ref().map(|i| format!("k1s://{}", i.id)),
        ready: o.ready && running,
        started: Some(running),
        restart_count: o.restart_count,
        state: Some(state),
        last_state: Some(
            last.map(|i| ContainerState {
                terminated: Some(terminated(i)),
                ..Default::default()
            })
            .unwrap_or_default(),
        ),
        ..Default::default()
    }
}

fn set_condition(
    conds: &mut Vec<PodCondition>,
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    now: &Time,
) {
    let status = if ok { "True" } else { "False" };
    match conds.iter_mut().find(|c| c.type_ == kind) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(now.clone());
            }
            c.status = status.into();
            c.reason = reason.map(str::to_string);
        }
        None => conds.push(PodCondition {
            type_: kind.into(),
            status: status.into(),
            reason: reason.map(str::to_string),
            last_transition_time: Some(now.clone()),
            ..Default::default()
        }),
    }
}

/// The pod's status from `view`, keeping what others own (PodScheduled, qosClass, other
/// conditions) and timestamps that did not change.
pub fn compute(pod: &Pod, view: &PodView) -> PodStatus {
    let now = Time(jiff::Timestamp::now());
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let inits = spec.init_containers.clone().unwrap_or_default();
    let init_statuses: Vec<ContainerStatus> = inits
        .iter()
        .map(|c| {
            let o = view.containers.get(&c.name).cloned().unwrap_or_default();
            container_status(
                &c.name,
                c.image.as_deref().unwrap_or(""),
                &o,
                "PodInitializing",
            )
        })
        .collect();
    let initialized = inits.iter().zip(&init_statuses).all(|(c, s)| {
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        let st = s.state.as_ref();
        if sidecar {
            st.is_some_and(|st| st.running.is_some())
        } else {
            st.and_then(|st| st.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0)
        }
    });
    let default_wait = if initialized {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| {
            let o = view.containers.get(&c.name).cloned().unwrap_or_default();
            container_status(&c.name, c.image.as_deref().unwrap_or(""), &o, default_wait)
        })
        .collect();

    let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready);
    // A container waiting to restart after it ran counts as running, as upstream.
    let any_running = statuses.iter().any(|s| {
        s.state.as_ref().is_some_and(|st| st.running.is_some())
            || s.last_state
                .as_ref()
                .is_some_and(|l| l.terminated.is_some())
    });
    let terminated: Vec<&ContainerStateTerminated> = statuses
        .iter()
        .filter_map(|s| s.state.as_ref()?.terminated.as_ref())
        .collect();
    let init_failed = view.terminal == Some(true) && !initialized;
    let phase = match view.terminal {
        Some(true) if init_failed || terminated.iter().any(|t| t.exit_code != 0) => "Failed",
        Some(true) => "Succeeded",
        _ if initialized && (any_running || !terminated.is_empty()) => "Running",
        _ => "Pending",
    };

    let mut conditions = old.conditions.clone().unwrap_or_default();
    set_condition(
        &mut conditions,
        "PodReadyToStartContainers",
        view.sandbox_ready,
        None,
        &now,
    );
    set_condition(
        &mut conditions,
        "Initialized",
        initialized,
        (!initialized).then_some("ContainersNotInitialized"),
        &now,
    );
    let ready = all_ready && phase == "Running";
    let not_ready = if phase == "Succeeded" || phase == "Failed" {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    set_condition(
        &mut conditions,
        "ContainersReady",
        ready,
        (!ready).then_some(not_ready),
        &now,
    );
    set_condition(
        &mut conditions,
        "Ready",
        ready,
        (!ready).then_some(not_ready),
        &now,
    );
    if !conditions.iter().any(|c| c.type_ == "PodScheduled") {
        set_condition(&mut conditions, "PodScheduled", true, None, &now);
    }
    for c in conditions.iter_mut() {
        if !ready
            && (c.type_ == "Ready" || c.type_ == "ContainersReady")
            && phase != "Succeeded"
            && phase != "Failed"
        {
            let waiting: Vec<&str> = statuses
                .iter()
                .filter(|s| !s.ready)
                .map(|s| s.name.as_str())
                .collect();
            c.message = Some(format!(
                "containers with unready status: [{}]",
                waiting.join(" ")
            ));
        } else if c.type_ == "Ready" || c.type_ == "ContainersReady" {
            c.message = None;
        }
        if c.type_ == "Initialized" {
            c.message = (!initialized).then(|| {
                let names: Vec<&str> = inits
                    .iter()
                    .zip(&init_statuses)
                    .filter(|(_, s)| {
                        !s.state.as_ref().is_some_and(|st| {
                            st.terminated.as_ref().is_some_and(|t| t.exit_code == 0)
                        })
                    })
                    .map(|(c, _)| c.name.as_str())
                    .collect();
                format!("containers with incomplete status: [{}]", names.join(" "))
            });
        }
    }

    let pod_ips: Vec<PodIP> = view
        .pod_ips
        .iter()
        .map(|ip| PodIP { ip: ip.to_string() })
        .collect();
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        container_statuses: Some(statuses),
        init_container_statuses: (!inits.is_empty()).then_some(init_statuses),
        pod_ip: pod_ips.first().map(|p| p.ip.clone()),
        pod_ips: (!pod_ips.is_empty()).then_some(pod_ips),
        host_ip: view.host_ip.map(|i| i.to_string()),
        host_ips: view.host_ip.map(|i| vec![HostIP { ip: i.to_string() }]),
        start_time: old.start_time.clone().or(Some(now)),
        qos_class: old.qos_class.clone(),
        nominated_node_name: old.nominated_node_name.clone(),
        ..Default::default()
    }
}

/// Equal apart from timestamps that move on every computation (heartbeats are not ours).
pub fn same(a: &PodStatus, b: &PodStatus) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: &[&str], inits: &[&str]) -> Pod {
        let c: Vec<_> = containers
            .iter()
            .map(|n| serde_json::json!({"name": n, "image": "busybox"}))
            .collect();
        let i: Vec<_> = inits
            .iter()
            .map(|n| serde_json::json!({"name": n, "image": "busybox"}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "d"},
            "spec": {"containers": c, "initContainers": i},
            "status": {"qosClass": "BestEffort", "conditions": [{"type": "PodScheduled", "status": "True"}]}
        }))
        .unwrap()
    }

    fn inst(running: bool, code: Option<i32>) -> Instance {
        Instance {
            id: "abc".into(),
            running,
            exit_code: code,
            started_at: Some(Time(jiff::Timestamp::now())),
            finished_at: (!running).then(|| Time(jiff::Timestamp::now())),
            oom_killed: false,
            message: None,
        }
    }

    fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    #[test]
    fn pending_while_creating_then_running_and_ready() {
        let p = pod(&["web"], &[]);
        let mut v = PodView {
            sandbox_ready: true,
            pod_ips: vec!["10.42.0.5".parse().unwrap()],
            ..Default::default()
        };
        let s = compute(&p, &v);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let w = s.container_statuses.as_ref().unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .waiting
            .clone()
            .unwrap();
        assert_eq!(w.reason.as_deref(), Some("ContainerCreating"));
        assert_eq!(cond(&s, "Ready").status, "False");
        v.containers.insert(
            "web".into(),
            Observed {
                latest: Some(inst(true, None)),
                ready: true,
                ..Default::default()
            },
        );
        let s = compute(&p, &v);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(s.pod_ip.as_deref(), Some("10.42.0.5"));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        assert_eq!(cond(&s, "PodScheduled").status, "True");
    }

    #[test]
    fn crash_loop_shows_last_state_and_terminal_phases() {
        let p = pod(&["job"], &[]);
        let mut v = PodView::default();
        v.containers.insert(
            "job".into(),
            Observed {
                latest: Some(inst(false, Some(1))),
                restart_count: 3,
                waiting: Some((
                    "CrashLoopBackOff".into(),
                    Some("back-off 40s restarting failed container".into()),
                )),
                ..Default::default()
            },
        );
        let s = compute(&p, &v);
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.restart_count, 3);
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        assert_eq!(
            cs.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));

        v.containers.get_mut("job").unwrap().waiting = None;
        v.terminal = Some(true);
        assert_eq!(compute(&p, &v).phase.as_deref(), Some("Failed"));
        v.containers.get_mut("job").unwrap().latest = Some(inst(false, Some(0)));
        let s = compute(&p, &v);
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let p = pod(&["app"], &["setup"]);
        let mut v = PodView::default();
        v.containers.insert(
            "setup".into(),
            Observed {
                latest: Some(inst(true, None)),
                ..Default::default()
            },
        );
        let s = compute(&p, &v);
        assert_eq!(cond(&s, "Initialized").status, "False");
        let app = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            app.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        v.containers.get_mut("setup").unwrap().latest = Some(inst(false, Some(0)));
        let s = compute(&p, &v);
        assert_eq!(cond(&s, "Initialized").status, "True");
        assert_eq!(
            s.init_container_statuses.as_ref().unwrap()[0]
                .state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("Completed")
        );
    }
}
