//! The DefaultStorageClass admission step: a PersistentVolumeClaim created without a
//! `storageClassName` (absent, not "", which asks for no class) gets the default class,
//! the StorageClass annotated `storageclass.kubernetes.io/is-default-class: "true"` (or the
//! beta annotation). With several defaults the newest wins, as upstream since 1.26. It only
//! fills in the field on create; it never changes a class a claim names.

use super::{codec, ApiResult, ListOptions, Registry, ResourceInfo};
use serde_json::{json, Value};

pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// The pre-1.6 way of naming a claim's class; a claim using it has a class.
const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

fn is_default(sc: &Value) -> bool {
    let a = &sc["metadata"]["annotations"];
    a[DEFAULT_CLASS_ANNOTATION] == "true" || a[BETA_DEFAULT_CLASS_ANNOTATION] == "true"
}

/// The default among `classes`: the newest, then by name.
pub fn pick_default(classes: &[Value]) -> Option<&str> {
    classes
        .iter()
        .filter(|c| is_default(c))
        .max_by(|a, b| {
            let ts = |v: &Value| {
                v["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            let name = |v: &Value| {
                v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            ts(a).cmp(&ts(b)).then_with(|| name(b).cmp(&name(a)))
        })
        .and_then(|c| c["metadata"]["name"].as_str())
}

impl Registry {
    pub(super) async fn default_storage_class(
        &self,
        res: &ResourceInfo,
        obj: &mut Value,
    ) -> ApiResult<()> {
        if !(res.group.is_empty() && res.kind == "PersistentVolumeClaim") {
            return Ok(());
        }
        if !obj["spec"].is_object()
            || !obj["spec"]["storageClassName"].is_null()
            || !obj["metadata"]["annotations"][BETA_CLASS_ANNOTATION].is_null()
        {
            return Ok(());
        }
        let Some(sc) = self
            .catalog
            .snapshot()
            .by_kind("storage.k8s.io", "StorageClass")
        else {
            return Ok(());
        };
        let page = self.list(&sc, None, &ListOptions::default()).await?;
        let classes: Vec<Value> = page
            .items
            .iter()
            .filter_map(|kv| codec::decode(kv).ok())
            .collect();
        if let Some(name) = pick_default(&classes) {
            obj["spec"]["storageClassName"] = json!(name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(name: &str, created: &str, default: bool) -> Value {
        json!({"metadata": {"name": name, "creationTimestamp": created,
            "annotations": {DEFAULT_CLASS_ANNOTATION: if default {"true"} else {"false"}}}})
    }

    #[test]
    fn newest_default_wins() {
        let classes = vec![
            sc("old", "2024-01-01T00:00:00Z", true),
            sc("new", "2025-01-01T00:00:00Z", true),
            sc("newer-not-default", "2026-01-01T00:00:00Z", false),
        ];
        assert_eq!(pick_default(&classes), Some("new"));
        assert_eq!(pick_default(&classes[2..]), None);
    }
}
