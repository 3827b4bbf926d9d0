//! What a pod's worker says about the pod: the view of its containers (states read back from
//! the shim, waiting reasons, probe verdicts, termination messages) that `status` turns into
//! the pod's status, and the write of that status when it changed. It decides nothing about
//! what runs.

use super::images::image_id;
use super::{identify, Worker};
use crate::kubelet::status::{self, Instance, Observed, PodView};
use crate::sandbox::shim::{ContainerState, Status};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use std::collections::BTreeMap;

impl Worker {
    /// Write the pod's status when it differs from what the API has.
    pub(super) async fn report(&self, pod: &Pod, view: &PodView) -> Result<(), String> {
        let new = status::compute(pod, view);
        let changed = pod
            .status
            .as_ref()
            .is_none_or(|old| !same_ignoring_time(old, &new));
        if changed {
            let api: Api<Pod> = Api::namespaced(
                self.rt.client.clone(),
                pod.metadata.namespace.as_deref().unwrap_or("default"),
            );
            let patch = serde_json::json!({"status": new});
            api.patch_status(
                pod.metadata.name.as_deref().unwrap_or(""),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| format!("updating status: {e}"))?;
        }
        Ok(())
    }

    pub(super) fn view(
        &self,
        pod: &Pod,
        states: &[ContainerState],
        terminal: Option<bool>,
        host_network: bool,
    ) -> PodView {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut view = PodView {
            sandbox_ready: true,
            pod_ips: if host_network {
                vec![self.rt.node_ip]
            } else {
                self.pod_ips.clone()
            },
            host_ip: Some(self.rt.node_ip),
            terminal,
            ..Default::default()
        };
        let mut by_name: BTreeMap<String, Vec<(u32, &ContainerState)>> = BTreeMap::new();
        for s in states {
            if let Some((name, r)) = identify(s) {
                by_name.entry(name).or_default().push((r, s));
            }
        }
        let all: Vec<&Container> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .collect();
        for c in all {
            let mut list = by_name.remove(&c.name).unwrap_or_default();
            list.sort_by_key(|(r, _)| *r);
            let latest = list.last();
            let previous = list.len().checked_sub(2).and_then(|i| list.get(i));
            let image_id = c
                .image
                .as_deref()
                .and_then(|i| self.rt.images.lookup(i))
                .map(|i| image_id(&i))
                .unwrap_or_default();
            let waiting = self
                .waiting
                .get(&c.name)
                .map(|w| (w.reason.to_string(), Some(w.message.clone())));
            let running = latest.is_some_and(|(_, s)| s.status != Status::Exited);
            let probed = c.readiness_probe.is_some() || c.startup_probe.is_some();
            let ready =
                running && (!probed || self.probe_ready.get(&c.name).copied().unwrap_or(false));
            let with_message = |s: &ContainerState| {
                let mut i = instance(s);
                if s.status == Status::Exited {
                    i.message = self.termination_message(c, s);
                }
                i
            };
            view.containers.insert(
                c.name.clone(),
                Observed {
                    latest: latest.map(|(_, s)| with_message(s)),
                    previous: previous.map(|(_, s)| with_message(s)),
                    restart_count: latest.map(|(r, _)| *r as i32).unwrap_or(0),
                    waiting: if running { None } else { waiting },
                    image_id,
                    ready,
                },
            );
        }
        view
    }
}

pub(super) fn time(s: &Option<String>) -> Option<Time> {
    s.as_deref()?.parse::<jiff::Timestamp>().ok().map(Time)
}

pub(super) fn instance(s: &ContainerState) -> Instance {
    Instance {
        id: s.id.clone(),
        running: s.status != Status::Exited,
        exit_code: s.exit_code,
        started_at: time(&s.started_at).or_else(|| time(&Some(s.created_at.clone()))),
        finished_at: time(&s.finished_at),
        oom_killed: s.oom_killed,
        message: None,
    }
}

pub(super) fn same_ignoring_time(
    a: &k8s_openapi::api::core::v1::PodStatus,
    b: &k8s_openapi::api::core::v1::PodStatus,
) -> bool {
    status::same(a, b)
}
