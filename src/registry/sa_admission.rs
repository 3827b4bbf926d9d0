//! Upstream's ServiceAccount admission for new pods: unless the pod or its service account
//! opts out with `automountServiceAccountToken: false`, the pod gets a `kube-api-access-*`
//! projected volume (a bound token, the cluster CA from `kube-root-ca.crt`, the namespace)
//! mounted read-only at the path in-cluster clients read, in every container that does not
//! already mount something there.
//!
//! Unlike upstream, a pod whose service account does not exist yet is not refused: the
//! kubelet cannot get its token until the account exists and reports that on the pod, which
//! keeps the usual "create namespace, then pods" race harmless.

use super::{codec, generate_name, ApiError, ApiResult, Registry};
use serde_json::{json, Value};

/// Where in-cluster clients (client-go, the Python and Rust clients) look for credentials.
pub const TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The kubelet's token lifetime: one hour and seven seconds, as upstream.
const TOKEN_SECONDS: i64 = 3607;

impl Registry {
    pub(super) async fn mount_service_account(&self, ns: &str, pod: &mut Value) -> ApiResult<()> {
        let spec = &pod["spec"];
        if !spec.is_object()
            || spec["automountServiceAccountToken"] == false
            || !pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null()
        {
            return Ok(());
        }
        let sa = spec["serviceAccountName"]
            .as_str()
            .or(spec["serviceAccount"].as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        if spec["automountServiceAccountToken"].is_null() {
            let key = format!("/registry/core/serviceaccounts/{ns}/{sa}");
            if let Some(kv) = self
                .store
                .get(&key)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
            {
                if codec::decode(&kv)?["automountServiceAccountToken"] == false {
                    return Ok(());
                }
            }
        }
        mount(&mut pod["spec"]);
        Ok(())
    }
}

fn mounts_token_dir(c: &Value) -> bool {
    c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["mountPath"].as_str().map(|p| p.trim_end_matches('/')) == Some(TOKEN_DIR))
}

/// Add the volume and its mounts to a pod spec (idempotent per container).
fn mount(spec: &mut Value) {
    let lacking = |spec: &Value| {
        ["initContainers", "containers"].iter().any(|k| {
            spec[*k]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| !mounts_token_dir(c))
        })
    };
    if !lacking(spec) {
        return;
    }
    let name = generate_name("kube-api-access-");
    let volume = json!({
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    });
    match spec["volumes"].as_array_mut() {
        Some(v) => v.push(volume),
        None => spec["volumes"] = json!([volume]),
    }
    for k in ["initContainers", "containers"] {
        for c in spec[k].as_array_mut().into_iter().flatten() {
            if mounts_token_dir(c) {
                continue;
            }
            let m = json!({"name": name, "mountPath": TOKEN_DIR, "readOnly": true});
            match c["volumeMounts"].as_array_mut() {
                Some(v) => v.push(m),
                None => c["volumeMounts"] = json!([m]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_mounts_the_token_unless_it_mounts_the_path_itself() {
        let mut spec = json!({
            "containers": [
                {"name": "a"},
                {"name": "b", "volumeMounts": [{"name": "own", "mountPath": format!("{TOKEN_DIR}/")}]},
            ],
            "initContainers": [{"name": "i", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}],
            "volumes": [{"name": "own", "emptyDir": {}}],
        });
        mount(&mut spec);
        let vols = spec["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 2);
        let name = vols[1]["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(spec["containers"][0]["volumeMounts"][0]["name"], name);
        assert_eq!(spec["containers"][0]["volumeMounts"][0]["readOnly"], true);
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            spec["initContainers"][0]["volumeMounts"][1]["mountPath"],
            TOKEN_DIR
        );
    }

    #[test]
    fn nothing_is_added_when_every_container_has_its_own_mount() {
        let mut spec = json!({
            "containers": [{"name": "a", "volumeMounts": [{"name": "own", "mountPath": TOKEN_DIR}]}],
            "volumes": [{"name": "own", "emptyDir": {}}],
        });
        let before = spec.clone();
        mount(&mut spec);
        assert_eq!(spec, before);
    }
}
