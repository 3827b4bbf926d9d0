//! The REST operations of a group-version, in a form both document
//! renderers (v3 and swagger 2.0) turn into `paths`.

use super::schema::{gvk, API_RESOURCE_LIST, DELETE_OPTIONS, PATCH, STATUS};
use super::ServedKind;
use crate::apiserver::patch::PatchType;
use serde_json::Value;

pub(super) use super::params::Param;
use super::params::*;

/// What a request or response body is.
pub(super) enum Body {
    /// A definition, by name.
    Def(String),
    /// Plain text (logs, streams).
    Text,
}

/// Media types in the order the documents list them (alphabetical, as upstream's).
pub(super) fn sorted(types: &[&'static str]) -> Vec<&'static str> {
    let mut types = types.to_vec();
    types.sort_unstable();
    types
}

pub(super) struct Operation {
    pub method: &'static str,
    pub action: &'static str,
    pub id: String,
    pub description: String,
    pub tag: String,
    pub params: &'static [&'static Param],
    /// Request body; `patch` names the patch media types it is sent in.
    pub request: Option<String>,
    pub patch: Option<&'static [&'static str]>,
    /// Success codes and the body each returns.
    pub responses: Vec<(&'static str, Body)>,
    pub gvk: Value,
}

pub(super) struct PathItem {
    pub path: String,
    pub params: Vec<&'static Param>,
    pub operations: Vec<Operation>,
}

/// A served kind with the definitions its operations use.
pub(super) struct KindInfo {
    pub served: ServedKind,
    pub def: String,
    pub list: String,
}

/// Resolves a (group, version, kind) to the definition describing it.
pub(super) type Resolve<'a> = &'a dyn Fn(&str, &str, &str) -> Option<String>;

/// "" → "core", "rbac.authorization.k8s.io" → "rbacAuthorization".
fn group_tag(group: &str) -> String {
    if group.is_empty() {
        return "core".into();
    }
    let trimmed = group.strip_suffix(".k8s.io").unwrap_or(group);
    let mut out = String::new();
    for (i, part) in trimmed.split(['.', '-']).enumerate() {
        if i == 0 {
            out.push_str(part);
        } else {
            out.push_str(&upper_first(part));
        }
    }
    out
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The `/api/v1` or `/apis/<group>/<version>` prefix.
pub(super) fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// All path items of one group-version, sorted by path.
pub(super) fn group_version_paths(
    group: &str,
    version: &str,
    kinds: &[KindInfo],
    resolve: Resolve,
) -> Vec<PathItem> {
    let tag = format!("{}_{version}", group_tag(group));
    let gv_id = format!("{}{}", upper_first(&group_tag(group)), upper_first(version));
    let root = prefix(group, version);
    let mut items = vec![PathItem {
        path: format!("{root}/"),
        params: vec![],
        operations: vec![Operation {
            method: "get",
            action: "get",
            id: format!("get{gv_id}APIResources"),
            description: "get available resources".into(),
            tag: tag.clone(),
            params: &[],
            request: None,
            patch: None,
            responses: vec![("200", Body::Def(API_RESOURCE_LIST.into()))],
            gvk: Value::Null,
        }],
    }];
    for k in kinds {
        kind_paths(&mut items, &root, &tag, &gv_id, k, resolve);
    }
    items.sort_by(|a, b| a.path.cmp(&b.path));
    items
}

fn kind_paths(
    items: &mut Vec<PathItem>,
    root: &str,
    tag: &str,
    gv_id: &str,
    k: &KindInfo,
    resolve: Resolve,
) {
    let s = &k.served;
    let has = |verb: &str| s.verbs.iter().any(|v| v == verb);
    let kind = &s.kind;
    let ns = if s.namespaced { "Namespaced" } else { "" };
    let this = gvk(&s.group, &s.version, kind);
    let (collection, scope): (String, Vec<&'static Param>) = if s.namespaced {
        (
            format!("{root}/namespaces/{{namespace}}/{}", s.plural),
            vec![&NAMESPACE, &PRETTY],
        )
    } else {
        (format!("{root}/{}", s.plural), vec![&PRETTY])
    };
    let op = |method,
              action,
              id: String,
              description: String,
              params,
              request: Option<String>,
              responses| Operation {
        method,
        action,
        id,
        description,
        tag: tag.to_string(),
        params,
        patch: (method == "patch").then(|| PatchType::accepted(!k.served.strategic_merge_patch)),
        request,
        responses,
        gvk: this.clone(),
    };
    let def = || Body::Def(k.def.clone());
    let status = || Body::Def(STATUS.into());

    let mut ops = Vec::new();
    if has("list") {
        ops.push(op(
            "get",
            "list",
            format!("list{gv_id}{ns}{kind}"),
            format!("list or watch objects of kind {kind}"),
            LIST_PARAMS,
            None,
            vec![("200", Body::Def(k.list.clone()))],
        ));
    }
    if has("create") {
        ops.push(op(
            "post",
            "post",
            format!("create{gv_id}{ns}{kind}"),
            format!("create a {kind}"),
            WRITE_PARAMS,
            Some(k.def.clone()),
            vec![("200", def()), ("201", def()), ("202", def())],
        ));
    }
    if has("deletecollection") {
        ops.push(op(
            "delete",
            "deletecollection",
            format!("delete{gv_id}Collection{ns}{kind}"),
            format!("delete collection of {kind}"),
            DELETE_COLLECTION_PARAMS,
            Some(DELETE_OPTIONS.into()),
            vec![("200", status())],
        ));
    }
    if !ops.is_empty() {
        items.push(PathItem {
            path: collection.clone(),
            params: scope.clone(),
            operations: ops,
        });
    }
    if s.namespaced && has("list") {
        let all = op(
            "get",
            "list",
            format!("list{gv_id}{kind}ForAllNamespaces"),
            format!("list or watch objects of kind {kind}"),
            LIST_PARAMS,
            None,
            vec![("200", Body::Def(k.list.clone()))],
        );
        items.push(PathItem {
            path: format!("{root}/{}", s.plural),
            params: vec![],
            operations: vec![all],
        });
    }

    let mut item_scope = vec![&NAME];
    item_scope.extend(scope.iter().copied());
    let mut ops = Vec::new();
    if has("get") {
        ops.push(op(
            "get",
            "get",
            format!("read{gv_id}{ns}{kind}"),
            format!("read the specified {kind}"),
            &[],
            None,
            vec![("200", def())],
        ));
    }
    if has("update") {
        ops.push(op(
            "put",
            "put",
            format!("replace{gv_id}{ns}{kind}"),
            format!("replace the specified {kind}"),
            WRITE_PARAMS,
            Some(k.def.clone()),
            vec![("200", def()), ("201", def())],
        ));
    }
    if has("patch") {
        ops.push(op(
            "patch",
            "patch",
            format!("patch{gv_id}{ns}{kind}"),
            format!("partially update the specified {kind}"),
            PATCH_PARAMS,
            Some(PATCH.into()),
            vec![("200", def()), ("201", def())],
        ));
    }
    if has("delete") {
        ops.push(op(
            "delete",
            "delete",
            format!("delete{gv_id}{ns}{kind}"),
            format!("delete a {kind}"),
            DELETE_PARAMS,
            Some(DELETE_OPTIONS.into()),
            vec![("200", status()), ("202", status())],
        ));
    }
    let item_path = format!("{collection}/{{name}}");
    if !ops.is_empty() {
        items.push(PathItem {
            path: item_path.clone(),
            params: item_scope.clone(),
            operations: ops,
        });
    }

    for sub in &s.subresources {
        let sub = sub.rsplit('/').next().unwrap_or(sub);
        let camel = if sub == "portforward" {
            "PortForward".to_string()
        } else {
            upper_first(sub)
        };
        let (sub_def, sub_gvk) = match super::kinds::subresource_kind(&s.group, kind, sub) {
            Some((g, v, sk)) => match resolve(g, v, sk) {
                Some(d) => (d, gvk(g, v, sk)),
                None => continue,
            },
            None => (k.def.clone(), this.clone()),
        };
        let body = || Body::Def(sub_def.clone());
        let with_gvk = |mut o: Operation| {
            o.gvk = sub_gvk.clone();
            o
        };
        let mut ops = Vec::new();
        match sub {
            "eviction" | "binding" | "token" => {
                ops.push(with_gvk(op(
                    "post",
                    "post",
                    format!("create{gv_id}{ns}{kind}{camel}"),
                    format!("create {sub} of a {kind}"),
                    WRITE_PARAMS,
                    Some(sub_def.clone()),
                    vec![("200", body()), ("201", body()), ("202", body())],
                )));
            }
            "log" => {
                ops.push(op(
                    "get",
                    "get",
                    format!("read{gv_id}{ns}{kind}Log"),
                    format!("read log of the specified {kind}"),
                    LOG_PARAMS,
                    None,
                    vec![("200", Body::Text)],
                ));
            }
            "exec" | "attach" | "portforward" | "proxy" => {
                let options = gvk(&s.group, &s.version, &format!("{kind}{camel}Options"));
                for method in ["get", "post"] {
                    let mut o = op(
                        method,
                        "connect",
                        format!("connect{gv_id}{}{ns}{kind}{camel}", upper_first(method)),
                        format!(
                            "connect {} requests to {sub} of {kind}",
                            method.to_uppercase()
                        ),
                        CONNECT_PARAMS,
                        None,
                        vec![("200", Body::Text)],
                    );
                    o.patch = None;
                    o.gvk = options.clone();
                    ops.push(o);
                }
            }
            _ => {
                let what = format!("{sub} of the specified {kind}");
                ops.push(with_gvk(op(
                    "get",
                    "get",
                    format!("read{gv_id}{ns}{kind}{camel}"),
                    format!("read {what}"),
                    &[],
                    None,
                    vec![("200", body())],
                )));
                ops.push(with_gvk(op(
                    "put",
                    "put",
                    format!("replace{gv_id}{ns}{kind}{camel}"),
                    format!("replace {what}"),
                    WRITE_PARAMS,
                    Some(sub_def.clone()),
                    vec![("200", body()), ("201", body())],
                )));
                if sub != "finalize" {
                    ops.push(with_gvk(op(
                        "patch",
                        "patch",
                        format!("patch{gv_id}{ns}{kind}{camel}"),
                        format!("partially update {what}"),
                        PATCH_PARAMS,
                        Some(PATCH.into()),
                        vec![("200", body()), ("201", body())],
                    )));
                }
            }
        }
        items.push(PathItem {
            path: format!("{item_path}/{sub}"),
            params: item_scope.clone(),
            operations: ops,
        });
    }
}
