use super::*;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.into(), name.into())
}

fn get<'a>(resource: &'a str, ns: Option<&'a str>) -> Attributes<'a> {
    Attributes {
        verb: "get",
        group: "",
        resource,
        subresource: None,
        namespace: ns,
        name: Some("x"),
        path: "",
    }
}

#[derive(Default)]
struct Owned {
    roles: Table<Arc<[Rule]>>,
    cluster_roles: Table<Arc<[Rule]>>,
    role_bindings: Table<Binding>,
    cluster_role_bindings: Table<Binding>,
}

impl Owned {
    fn build(&self) -> Snapshot {
        Snapshot::build(Tables {
            roles: &self.roles,
            cluster_roles: &self.cluster_roles,
            role_bindings: &self.role_bindings,
            cluster_role_bindings: &self.cluster_role_bindings,
        })
    }
}

fn tables() -> Owned {
    let mut t = Owned::default();
    t.cluster_roles.insert(
        key("", "view"),
        vec![Rule::resource(&[""], &["pods"], &["get", "list"])].into(),
    );
    t.cluster_roles.insert(
        key("", "nodes"),
        vec![Rule::resource(&[""], &["nodes"], &["get"])].into(),
    );
    t.roles.insert(
        key("dev", "cm"),
        vec![Rule::resource(&[""], &["configmaps"], &["get"])].into(),
    );
    t.role_bindings.insert(
        key("dev", "jane-view"),
        Binding {
            role_kind: "ClusterRole".into(),
            role_name: "view".into(),
            subjects: vec![
                Subject::User("jane".into()),
                Subject::Group("devs".into()),
                Subject::ServiceAccount(String::new(), "builder".into()),
            ],
        },
    );
    t.role_bindings.insert(
        key("dev", "cm"),
        Binding {
            role_kind: "Role".into(),
            role_name: "cm".into(),
            subjects: vec![Subject::Group("devs".into())],
        },
    );
    t.cluster_role_bindings.insert(
        key("", "nodes"),
        Binding {
            role_kind: "ClusterRole".into(),
            role_name: "nodes".into(),
            subjects: vec![Subject::ServiceAccount("ops".into(), "agent".into())],
        },
    );
    t
}

#[test]
fn bindings_apply_by_user_group_and_service_account() {
    let s = tables().build();
    let jane = user("jane", &["system:authenticated"]);
    let reason = s.authorize(&jane, &get("pods", Some("dev"))).unwrap();
    assert_eq!(
        reason,
        "RBAC: allowed by RoleBinding \"jane-view/dev\" of ClusterRole \"view\" to User \"jane\""
    );
    // a RoleBinding grants nothing outside its namespace, nor cluster-wide
    assert!(s.authorize(&jane, &get("pods", Some("prod"))).is_err());
    assert!(s.authorize(&jane, &get("pods", None)).is_err());
    assert!(s.authorize(&jane, &get("configmaps", Some("dev"))).is_err());
    let dev = user("bob", &["devs"]);
    assert!(s.authorize(&dev, &get("configmaps", Some("dev"))).is_ok());
    // the service account subject without a namespace is the binding's namespace's
    let sa = user(
        "system:serviceaccount:dev:builder",
        &["system:serviceaccounts"],
    );
    assert!(s.authorize(&sa, &get("pods", Some("dev"))).is_ok());
    let other = user("system:serviceaccount:prod:builder", &[]);
    assert!(s.authorize(&other, &get("pods", Some("dev"))).is_err());
    let agent = user("system:serviceaccount:ops:agent", &[]);
    assert!(s.authorize(&agent, &get("nodes", None)).is_ok());
    assert!(s.authorize(&agent, &get("nodes", Some("dev"))).is_ok());
}

#[test]
fn missing_roles_are_reasons() {
    let mut t = tables();
    t.role_bindings.insert(
        key("dev", "dangling"),
        Binding {
            role_kind: "ClusterRole".into(),
            role_name: "nope".into(),
            subjects: vec![Subject::User("jane".into())],
        },
    );
    let s = t.build();
    let jane = user("jane", &[]);
    assert_eq!(
        s.authorize(&jane, &get("secrets", Some("dev")))
            .unwrap_err(),
        "RBAC: clusterrole.rbac.authorization.k8s.io \"nope\" not found"
    );
    // other bindings still work
    assert!(s.authorize(&jane, &get("pods", Some("dev"))).is_ok());
    let (rules, errors) = s.rules_for(&jane, Some("dev"));
    assert_eq!(rules.len(), 1);
    assert_eq!(errors.len(), 1);
}

#[test]
fn rules_count_each_binding_once() {
    let s = tables().build();
    // jane-view names both the user and her group: its rules come once
    let jane = user("jane", &["devs"]);
    let (rules, errors) = s.rules_for(&jane, Some("dev"));
    assert!(errors.is_empty());
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(s.rules_for(&jane, Some("prod")).0.is_empty());
    assert_eq!(
        s.role_ref_rules("Role", "cm", Some("dev")).unwrap().len(),
        1
    );
    assert!(s.role_ref_rules("Role", "cm", Some("prod")).is_err());
}
