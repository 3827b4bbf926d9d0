//! One pass of the DaemonSet controller over one DaemonSet: claiming its pods (adopting
//! orphans, releasing strays), creating daemon pods pinned to their nodes in slow-start
//! batches, deleting pods, the events for each, and what the cache must show afterwards.
//! It decides nothing; `plan.rs` does.

use super::nodes;
use super::{Ctx, Error};
use crate::controllers::common::{self, Claim, Expect};
use crate::controllers::history;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::ResourceExt;
use std::sync::Arc;

/// One pass over one DaemonSet.
pub(super) struct Pass<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) ds: &'a DaemonSet,
    pub(super) ns: String,
    pub(super) name: String,
    pub(super) pods: Api<Pod>,
    pub(super) expect: Vec<Expect>,
    pub(super) failure: bool,
}

impl Pass<'_> {
    pub(super) fn err(&self, source: kube::Error) -> Error {
        Error::Api {
            ns: self.ns.clone(),
            name: self.name.clone(),
            source,
        }
    }

    pub(super) fn history_err(&self, source: history::Error) -> Error {
        Error::History {
            ns: self.ns.clone(),
            name: self.name.clone(),
            source,
        }
    }

    /// The pods this DaemonSet controls, after adopting orphans and releasing strays.
    pub(super) async fn claim_pods(&mut self) -> Result<Vec<Arc<Pod>>, Error> {
        let ds = self.ds;
        let uid = ds.uid().unwrap_or_default();
        let deleting = ds.metadata.deletion_timestamp.is_some();
        let selector = ds.spec.as_ref().map(|s| &s.selector);
        let mut owned = vec![];
        for pod in self.ctx.pods.state() {
            if pod.namespace().as_deref() != Some(self.ns.as_str()) {
                continue;
            }
            let matches = common::selects(selector, pod.labels());
            let rv = pod.resource_version().unwrap_or_default();
            let adopt = match common::claim(&uid, deleting, &pod.metadata, matches) {
                Claim::Keep(true) => {
                    owned.push(pod);
                    continue;
                }
                Claim::Keep(false) => continue,
                Claim::Adopt => Some(common::owner_ref(ds)),
                Claim::Release => None,
            };
            let adopting = adopt.is_some();
            match common::set_controller(&self.pods, &pod, adopt, &uid).await {
                Ok(p) if adopting => owned.push(Arc::new(p)),
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => continue,
                Err(e) => return Err(self.err(e)),
            }
            self.expect.push(Expect::Changed(pod.name_any(), rv));
        }
        Ok(owned)
    }

    /// Create daemon pods on `nodes` in slow-start batches; stop at the first failing batch.
    pub(super) async fn create(&mut self, nodes: &[String], hash: &str) {
        let template = nodes::pod_template(self.ds, hash);
        let mut rest = nodes.iter();
        let this = &*self;
        let mut created = vec![];
        let mut failed = false;
        for batch in crate::controllers::podutil::slow_start_batches(nodes.len()) {
            let results = futures::future::join_all(rest.by_ref().take(batch).map(|node| {
                let mut t = template.clone();
                nodes::pin_to_node(&mut t, node);
                let tmeta = t.metadata.unwrap_or_default();
                let pod = Pod {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{}-", this.name)),
                        namespace: Some(this.ns.clone()),
                        labels: tmeta.labels,
                        annotations: tmeta.annotations,
                        finalizers: tmeta.finalizers,
                        owner_references: Some(vec![common::owner_ref(this.ds)]),
                        ..Default::default()
                    },
                    spec: t.spec,
                    status: None,
                };
                async move {
                    let r = this.pods.create(&PostParams::default(), &pod).await;
                    let rec = &this.ctx.recorder;
                    match &r {
                        Ok(p) => {
                            let msg = format!("Created pod: {}", p.name_any());
                            rec.publish(this.ds, false, "SuccessfulCreate", msg).await
                        }
                        Err(e) => {
                            let msg = format!("Error creating: {}", message(e));
                            rec.publish(this.ds, true, "FailedCreate", msg).await
                        }
                    }
                    r
                }
            }))
            .await;
            for r in results {
                match r {
                    Ok(p) => created.push(Expect::Present(p.name_any())),
                    Err(_) => failed = true,
                }
            }
            if failed {
                break;
            }
        }
        self.expect.extend(created);
        self.failure |= failed;
    }

    pub(super) async fn delete(&mut self, names: &[String], owned: &[Arc<Pod>]) {
        let this = &*self;
        let results = futures::future::join_all(names.iter().map(|name| async move {
            let uid = owned
                .iter()
                .find(|p| p.name_any() == *name)
                .and_then(|p| p.uid());
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid,
                    resource_version: None,
                }),
                ..Default::default()
            };
            let r = match this.pods.delete(name, &dp).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(e),
            };
            let rec = &this.ctx.recorder;
            match &r {
                Ok(()) => {
                    let msg = format!("Deleted pod: {name}");
                    rec.publish(this.ds, false, "SuccessfulDelete", msg).await
                }
                Err(e) => {
                    let msg = format!("Error deleting: {}", message(e));
                    rec.publish(this.ds, true, "FailedDelete", msg).await
                }
            }
            (name.clone(), r)
        }))
        .await;
        for (name, r) in results {
            match r {
                Ok(()) => self.expect.push(Expect::Gone(name)),
                Err(_) => self.failure = true,
            }
        }
    }
}

fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}
