use super::*;

fn res<'a>(verb: &'a str, group: &'a str, resource: &'a str) -> Attributes<'a> {
    Attributes {
        verb,
        group,
        resource,
        subresource: None,
        namespace: Some("default"),
        name: None,
        path: "",
    }
}

fn url<'a>(verb: &'a str, path: &'a str) -> Attributes<'a> {
    Attributes {
        verb,
        group: "",
        resource: "",
        subresource: None,
        namespace: None,
        name: None,
        path,
    }
}

#[test]
fn verbs_groups_and_resources() {
    let r = Rule::resource(&["", "apps"], &["pods", "deployments"], &["get", "list"]);
    assert!(r.allows(&res("get", "", "pods")));
    assert!(r.allows(&res("list", "apps", "deployments")));
    assert!(!r.allows(&res("delete", "", "pods")));
    assert!(!r.allows(&res("get", "batch", "pods")));
    assert!(!r.allows(&res("get", "", "secrets")));
    let all = Rule::resource(&["*"], &["*"], &["*"]);
    assert!(all.allows(&res("escalate", "rbac.authorization.k8s.io", "roles")));
    // a resource rule never allows a non-resource URL, and the other way round
    assert!(!all.allows(&url("get", "/healthz")));
    assert!(!Rule::urls(&["*"], &["*"]).allows(&res("get", "", "pods")));
}

#[test]
fn subresources() {
    let mut a = res("get", "", "pods");
    a.subresource = Some("log");
    assert!(!Rule::resource(&[""], &["pods"], &["get"]).allows(&a));
    assert!(Rule::resource(&[""], &["pods/log"], &["get"]).allows(&a));
    assert!(Rule::resource(&[""], &["*/log"], &["get"]).allows(&a));
    assert!(Rule::resource(&[""], &["*"], &["get"]).allows(&a));
    assert!(!Rule::resource(&[""], &["*/status"], &["get"]).allows(&a));
    // pods/log does not allow the pod itself
    assert!(!Rule::resource(&[""], &["pods/log"], &["get"]).allows(&res("get", "", "pods")));
}

#[test]
fn resource_names() {
    let r = Rule::resource(&[""], &["configmaps"], &["get", "list", "update"]).names(&["cfg"]);
    let mut a = res("get", "", "configmaps");
    a.name = Some("cfg");
    assert!(r.allows(&a));
    a.name = Some("other");
    assert!(!r.allows(&a));
    // a list has no name, so a rule with names never allows it
    assert!(!r.allows(&res("list", "", "configmaps")));
}

#[test]
fn non_resource_urls() {
    let r = Rule::urls(&["/healthz", "/apis/*", "/logs*"], &["get"]);
    assert!(r.allows(&url("get", "/healthz")));
    assert!(!r.allows(&url("get", "/healthz/etcd")));
    assert!(r.allows(&url("get", "/apis/apps/v1")));
    assert!(r.allows(&url("get", "/apis/")));
    assert!(!r.allows(&url("get", "/apis")));
    assert!(r.allows(&url("get", "/logs")));
    assert!(r.allows(&url("get", "/logsX/y")));
    assert!(!r.allows(&url("post", "/healthz")));
    assert!(Rule::urls(&["*"], &["*"]).allows(&url("delete", "/anything")));
}

#[test]
fn coverage() {
    let owner = vec![
        Rule::resource(&[""], &["pods", "services"], &["get", "list"]),
        Rule::resource(&["apps"], &["*"], &["*"]),
        Rule::resource(&[""], &["configmaps"], &["get"]).names(&["a", "b"]),
        Rule::urls(&["/apis/*"], &["get"]),
    ];
    assert!(uncovered(&owner, &[Rule::resource(&[""], &["pods"], &["get"])]).is_empty());
    assert!(uncovered(
        &owner,
        &[Rule::resource(&["apps"], &["deployments"], &["*"])]
    )
    .is_empty());
    assert!(uncovered(&owner, &[Rule::urls(&["/apis/apps"], &["get"])]).is_empty());
    assert!(uncovered(
        &owner,
        &[Rule::resource(&[""], &["configmaps"], &["get"]).names(&["a"])]
    )
    .is_empty());
    // names narrower than the request do not cover the whole collection
    let missing = uncovered(&owner, &[Rule::resource(&[""], &["configmaps"], &["get"])]);
    assert_eq!(missing.len(), 1);
    // a wildcard asked for is covered only by a wildcard held
    let missing = uncovered(&owner, &[Rule::resource(&[""], &["*"], &["get"])]);
    assert_eq!(missing[0].resources, vec!["*"]);
    let missing = uncovered(
        &owner,
        &[Rule::resource(
            &[""],
            &["pods", "secrets"],
            &["get", "delete"],
        )],
    );
    let shown: Vec<String> = compact(&missing).iter().map(Rule::compact_string).collect();
    assert_eq!(
        shown,
        vec![
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#,
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete"]}"#,
        ]
    );
}

#[test]
fn policy_rule_round_trip() {
    let r = Rule::resource(&["apps"], &["deployments"], &["get"]).names(&["web"]);
    let p = PolicyRule::from(&r);
    assert_eq!(p.non_resource_urls, None);
    assert_eq!(Rule::from(&p), r);
    assert_eq!(
        r.compact_string(),
        r#"{APIGroups:["apps"], Resources:["deployments"], ResourceNames:["web"], Verbs:["get"]}"#
    );
}
