//! Writes that bypass the generic update path because upstream gives them their own rules:
//! binding a pod to a node (spec.nodeName is otherwise immutable) and finalizing a
//! namespace (spec.finalizers is only writable through `/finalize`).

use super::{codec, ApiError, ApiResult, Registry, Target};
use crate::store::StoreError;
use serde_json::{json, Value};

/// What a raw rewrite does with the changed object.
enum Outcome {
    Store,
    Remove,
}

impl Registry {
    /// Read-modify-write of one stored object with compare-and-swap, retried on conflict.
    async fn rewrite(
        &self,
        key: &str,
        t: Target<'_>,
        mut change: impl FnMut(&mut Value) -> ApiResult<Outcome>,
    ) -> ApiResult<Value> {
        loop {
            let kv = self
                .store
                .get(key)
                .await
                .map_err(|e| ApiError::from_store(e, t))?
                .ok_or_else(|| ApiError::not_found(t))?;
            let mut obj = codec::decode(&kv)?;
            let result = match change(&mut obj)? {
                Outcome::Store => {
                    self.store
                        .update(key, codec::encode(&obj)?, kv.mod_revision)
                        .await
                }
                Outcome::Remove => self.store.delete(key, Some(kv.mod_revision)).await,
            };
            match result {
                Ok(kv) => {
                    codec::set_rv(&mut obj, kv.mod_revision);
                    return Ok(obj);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, t)),
            }
        }
    }

    /// pods/binding: set spec.nodeName once, with the PodScheduled condition.
    pub async fn bind_pod(&self, ns: &str, name: &str, node: &str) -> ApiResult<Value> {
        let t = Target {
            group: "",
            resource: "pods",
            kind: "Pod",
            name,
        };
        let key = format!("/registry/core/pods/{ns}/{name}");
        self.rewrite(&key, t, |pod| {
            if !pod["metadata"]["deletionTimestamp"].is_null() {
                return Err(ApiError::conflict(t, "pod is being deleted, cannot be assigned to a host"));
            }
            if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(ApiError::conflict(t, &format!("pod {name} is already assigned to node \"{n}\"")));
            }
            pod["spec"]["nodeName"] = json!(node);
            let now = super::strategy::now_rfc3339();
            let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
            let mut conds: Vec<Value> =
                pod["status"]["conditions"].as_array().cloned().unwrap_or_default().into_iter().filter(|c| c["type"] != "PodScheduled").collect();
            conds.push(cond);
            pod["status"]["conditions"] = Value::Array(conds);
            Ok(Outcome::Store)
        })
        .await
    }

    /// namespaces/finalize: replace spec.finalizers; a terminating namespace with none left
    /// (and no metadata finalizers) is removed.
    pub async fn finalize_namespace(&self, name: &str, finalizers: &Value) -> ApiResult<Value> {
        let t = Target {
            group: "",
            resource: "namespaces",
            kind: "Namespace",
            name,
        };
        let key = format!("/registry/core/namespaces/{name}");
        let list = finalizers.as_array().cloned().unwrap_or_default();
        self.rewrite(&key, t, |ns| {
            ns["spec"]["finalizers"] = Value::Array(list.clone());
            let terminating = !ns["metadata"]["deletionTimestamp"].is_null();
            let meta_finalizers = ns["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            Ok(if terminating && list.is_empty() && !meta_finalizers {
                Outcome::Remove
            } else {
                Outcome::Store
            })
        })
        .await
    }
}
