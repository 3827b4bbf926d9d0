use super::*;
use crate::apiserver::rbac::snapshot::{Binding, Subject, Table, Tables};
use std::sync::Arc;

struct Cluster {
    roles: Table<Arc<[Rule]>>,
    cluster_roles: Table<Arc<[Rule]>>,
    role_bindings: Table<Binding>,
    cluster_role_bindings: Table<Binding>,
}

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.into(), name.into())
}

/// jane may write roles and bindings in `dev` and read pods there; `escalator` may also
/// escalate and bind roles there.
fn snapshot() -> Snapshot {
    let mut c = Cluster {
        roles: Table::new(),
        cluster_roles: Table::new(),
        role_bindings: Table::new(),
        cluster_role_bindings: Table::new(),
    };
    c.roles.insert(
        key("dev", "writer"),
        vec![
            Rule::resource(&[GROUP], &["roles", "rolebindings"], &["create", "update"]),
            Rule::resource(&[""], &["pods"], &["get", "list"]),
        ]
        .into(),
    );
    c.roles.insert(
        key("dev", "secrets"),
        vec![Rule::resource(&[""], &["secrets"], &["get"])].into(),
    );
    c.roles.insert(
        key("dev", "escalate"),
        vec![Rule::resource(&[GROUP], &["roles"], &["escalate", "bind"])].into(),
    );
    let bind = |role: &str, user: &str| Binding {
        role_kind: "Role".into(),
        role_name: role.into(),
        subjects: vec![Subject::User(user.into())],
    };
    c.role_bindings
        .insert(key("dev", "jane"), bind("writer", "jane"));
    c.role_bindings
        .insert(key("dev", "esc-w"), bind("writer", "escalator"));
    c.role_bindings
        .insert(key("dev", "esc-e"), bind("escalate", "escalator"));
    Snapshot::build(Tables {
        roles: &c.roles,
        cluster_roles: &c.cluster_roles,
        role_bindings: &c.role_bindings,
        cluster_role_bindings: &c.cluster_role_bindings,
    })
}

fn user(name: &str) -> UserInfo {
    UserInfo {
        name: name.into(),
        groups: vec!["system:authenticated".into()],
    }
}

fn role(rules: Value) -> Value {
    json!({"metadata": {"name": "r", "namespace": "dev"}, "rules": rules})
}

fn write<'a>(resource: &'a str, obj: &'a Value, old: Option<&'a Value>) -> GrantWrite<'a> {
    GrantWrite {
        group: GROUP,
        resource,
        namespace: Some("dev"),
        name: obj["metadata"]["name"].as_str().unwrap_or_default(),
        obj,
        old,
    }
}

#[test]
fn roles_only_with_rules_held() {
    let s = snapshot();
    let held = role(json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]));
    assert!(check(&s, &user("jane"), &write("roles", &held, None)).is_ok());
    let more =
        role(json!([{"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get"]}]));
    let e = check(&s, &user("jane"), &write("roles", &more, None)).unwrap_err();
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"jane\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}"
    );
    // escalate lets a user write any rules; system:masters needs nothing
    assert!(check(&s, &user("escalator"), &write("roles", &more, None)).is_ok());
    let admin = UserInfo {
        name: "admin".into(),
        groups: vec![MASTERS.into()],
    };
    assert!(check(&s, &admin, &write("roles", &more, None)).is_ok());
    // an update touching only what the garbage collector needs is not an escalation
    let mut gc = more.clone();
    gc["metadata"]["finalizers"] = json!(["x"]);
    assert!(check(&s, &user("jane"), &write("roles", &gc, Some(&more))).is_ok());
    let mut labelled = more.clone();
    labelled["metadata"]["labels"] = json!({"a": "b"});
    assert!(check(&s, &user("jane"), &write("roles", &labelled, Some(&more))).is_err());
}

#[test]
fn bindings_only_to_roles_held_or_bindable() {
    let s = snapshot();
    let binding = |role: &str| {
        json!({"metadata": {"name": "b", "namespace": "dev"},
               "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": role},
               "subjects": [{"kind": "User", "apiGroup": GROUP, "name": "bob"}]})
    };
    let writer = binding("writer");
    assert!(check(&s, &user("jane"), &write("rolebindings", &writer, None)).is_ok());
    let secrets = binding("secrets");
    let e = check(&s, &user("jane"), &write("rolebindings", &secrets, None)).unwrap_err();
    assert!(
        e.message.starts_with(
            "rolebindings.rbac.authorization.k8s.io \"b\" is forbidden: user \"jane\""
        ),
        "{}",
        e.message
    );
    assert!(check(
        &s,
        &user("escalator"),
        &write("rolebindings", &secrets, None)
    )
    .is_ok());
    let missing = binding("nope");
    let e = check(&s, &user("jane"), &write("rolebindings", &missing, None)).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "role.rbac.authorization.k8s.io \"nope\" not found")
    );
}

#[test]
fn aggregation_rules_need_everything() {
    let s = snapshot();
    let agg = json!({"metadata": {"name": "agg"}, "rules": [],
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}});
    let w = GrantWrite {
        group: GROUP,
        resource: "clusterroles",
        namespace: None,
        name: "agg",
        obj: &agg,
        old: None,
    };
    let e = check(&s, &user("jane"), &w).unwrap_err();
    assert!(
        e.message
            .ends_with("must have cluster-admin privileges to use the aggregationRule"),
        "{}",
        e.message
    );
    let mut plain = agg.clone();
    plain["aggregationRule"] = Value::Null;
    let w = GrantWrite { obj: &plain, ..w };
    assert!(check(&s, &user("jane"), &w).is_ok());
}
