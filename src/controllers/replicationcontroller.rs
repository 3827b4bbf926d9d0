//! The ReplicationController controller: the ReplicaSet controller's logic
//! (`replicaset::run_for`) over core/v1 ReplicationControllers, whose selector is a plain
//! label map (defaulted by the API to the template's labels) and whose template is optional.
//! Only the mapping of the kind's fields lives here.

use super::informers::Informers;
use super::replicaset::{run_for, PodSet};
use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use tokio_util::sync::CancellationToken;

impl PodSet for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";

    fn selector(&self) -> Option<LabelSelector> {
        let labels = self.spec.as_ref()?.selector.clone()?;
        Some(LabelSelector {
            match_labels: Some(labels),
            match_expressions: None,
        })
    }

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn template(&self) -> Option<PodTemplateSpec> {
        self.spec.as_ref()?.template.clone()
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
}

pub async fn run(informers: Informers, cancel: CancellationToken) {
    run_for::<ReplicationController>(informers, cancel).await
}
