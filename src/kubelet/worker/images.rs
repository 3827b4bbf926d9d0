//! The images a pod's containers run: pull policies, pull secrets turned into registry
//! credentials, back-off after failed pulls (ErrImagePull, ImagePullBackOff) and the pull
//! events. The image store itself is `sandbox::image`'s.

use super::{backoff, Waiting, Worker};
use crate::kubelet::events;
use crate::sandbox::image::{parse_docker_config_json, Image, PullPolicy, RegistryAuth};
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::api::Api;
use std::time::Instant;

impl Worker {
    pub(super) async fn pull(&mut self, pod: &Pod, c: &Container) -> Result<Image, Waiting> {
        let name = c.image.clone().unwrap_or_default();
        let policy = match c.image_pull_policy.as_deref() {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            _ => PullPolicy::IfNotPresent,
        };
        if let Some((until, _, last)) = self.pull_backoff.get(&c.name) {
            if Instant::now() < *until {
                return Err(Waiting {
                    reason: "ImagePullBackOff",
                    message: format!("Back-off pulling image \"{name}\": {last}"),
                });
            }
        }
        let auth = self.pull_secrets(pod).await;
        let node = self.rt.node_name.clone();
        let present = policy != PullPolicy::Always && self.rt.images.lookup(&name).is_some();
        if !present && policy != PullPolicy::Never {
            events::record(
                &self.rt.client,
                &node,
                pod,
                Some(&c.name),
                false,
                "Pulling",
                &format!("Pulling image \"{name}\""),
            )
            .await;
        }
        let began = Instant::now();
        let gone = self.gone.clone();
        let result = tokio::select! {
            r = self.rt.images.ensure(&name, policy, &auth) => r,
            // The pod is being deleted: the pull is dropped (its partial blobs with it) so the
            // deletion does not wait on a slow or hung registry.
            _ = gone.cancelled() => {
                return Err(Waiting {
                    reason: "ErrImagePull",
                    message: format!("pulling image \"{name}\" cancelled: the pod is being deleted"),
                });
            }
        };
        match result {
            Ok(img) => {
                let msg = if present {
                    format!("Container image \"{name}\" already present on machine")
                } else {
                    format!(
                        "Successfully pulled image \"{name}\" in {:?}",
                        began.elapsed()
                    )
                };
                events::record(
                    &self.rt.client,
                    &node,
                    pod,
                    Some(&c.name),
                    false,
                    "Pulled",
                    &msg,
                )
                .await;
                Ok(img)
            }
            // Nothing to back off from: the image can only appear by import.
            Err(e) if policy == PullPolicy::Never => Err(Waiting {
                reason: "ErrImageNeverPull",
                message: e.to_string(),
            }),
            Err(e) => {
                let n = self.pull_backoff.get(&c.name).map(|b| b.1 + 1).unwrap_or(1);
                let message = e.to_string();
                let until = Instant::now() + backoff(n);
                events::record(
                    &self.rt.client,
                    &node,
                    pod,
                    Some(&c.name),
                    true,
                    "Failed",
                    &format!("Failed to pull image \"{name}\": {message}"),
                )
                .await;
                self.pull_backoff
                    .insert(c.name.clone(), (until, n, message.clone()));
                Err(Waiting {
                    reason: "ErrImagePull",
                    message,
                })
            }
        }
    }

    pub(super) async fn pull_secrets(&self, pod: &Pod) -> Vec<RegistryAuth> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Secret> = Api::namespaced(self.rt.client.clone(), ns);
        let mut out = Vec::new();
        for r in pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
        {
            if let Ok(Some(s)) = api.get_opt(&r.name).await {
                for key in [".dockerconfigjson", ".dockercfg"] {
                    if let Some(b) = s.data.as_ref().and_then(|d| d.get(key)) {
                        out.extend(parse_docker_config_json(&b.0).unwrap_or_default());
                    }
                }
            }
        }
        out
    }
}

pub(super) fn image_id(i: &Image) -> String {
    i.repo_digests
        .first()
        .cloned()
        .unwrap_or_else(|| i.id.clone())
}
