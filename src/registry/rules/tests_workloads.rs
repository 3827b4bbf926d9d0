//! apps/v1 and batch/v1 validation.

use serde_json::{json, Value};

use super::*;

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::message).collect()
}

fn assert_has(errs: &[FieldError], want: &str) {
    let m = messages(errs);
    assert!(m.iter().any(|x| x == want), "missing {want:?} in {m:#?}");
}

fn assert_clean(errs: &[FieldError]) {
    assert!(errs.is_empty(), "unexpected errors: {:#?}", messages(errs));
}

fn workload(group: &str, kind: &str, spec: Value) -> Value {
    let mut o = json!({"metadata": {"name": "w", "namespace": "default"}, "spec": spec});
    default_object(group, "v1", kind, &mut o);
    o
}

fn tmpl(labels: Value, restart: Option<&str>) -> Value {
    let mut t = json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}});
    if let Some(r) = restart {
        t["spec"]["restartPolicy"] = json!(r);
    }
    t
}

fn deployment(sel: Value, labels: Value) -> Value {
    workload(
        "apps",
        "Deployment",
        json!({"selector": sel, "template": tmpl(labels, None)}),
    )
}

#[test]
fn deployment_rules() {
    let good = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web", "tier": "fe"}),
    );
    assert_clean(&validate("apps", "v1", "Deployment", &good, None));
    let bad = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "api"}),
    );
    assert_has(
        &validate("apps", "v1", "Deployment", &bad, None),
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\"}: `selector` does not match template `labels`",
    );
    let no_sel = workload(
        "apps",
        "Deployment",
        json!({"template": tmpl(json!({"a": "b"}), None)}),
    );
    assert_has(
        &validate("apps", "v1", "Deployment", &no_sel, None),
        "spec.selector: Required value",
    );
    let empty = deployment(json!({}), json!({"a": "b"}));
    assert_has(
        &validate("apps", "v1", "Deployment", &empty, None),
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
    );
    let mut neg = good.clone();
    neg["spec"]["replicas"] = json!(-1);
    assert_has(
        &validate("apps", "v1", "Deployment", &neg, None),
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
    );
    let mut rp = good.clone();
    rp["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    assert_has(
        &validate("apps", "v1", "Deployment", &rp, None),
        "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
    );
    let mut zero = good.clone();
    zero["spec"]["strategy"]["rollingUpdate"] = json!({"maxUnavailable": 0, "maxSurge": 0});
    assert_has(
        &validate("apps", "v1", "Deployment", &zero, None),
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
    );
    let mut pct = good.clone();
    pct["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = json!("150%");
    assert_has(
        &validate("apps", "v1", "Deployment", &pct, None),
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%",
    );
    let mut expr = good.clone();
    expr["spec"]["selector"] =
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "x"]}]});
    assert_clean(&validate("apps", "v1", "Deployment", &expr, None));
    expr["spec"]["selector"]["matchExpressions"][0]["operator"] = json!("Like");
    assert_has(
        &validate("apps", "v1", "Deployment", &expr, None),
        "spec.selector.matchExpressions[0].operator: Invalid value: \"Like\": not a valid selector operator",
    );
    // Update: selector immutable, replicas mutable.
    let mut upd = good.clone();
    upd["spec"]["replicas"] = json!(5);
    assert_clean(&validate("apps", "v1", "Deployment", &upd, Some(&good)));
    let moved = deployment(
        json!({"matchLabels": {"app": "web", "tier": "fe"}}),
        json!({"app": "web", "tier": "fe"}),
    );
    assert_has(
        &validate("apps", "v1", "Deployment", &moved, Some(&good)),
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"fe\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
    );
}

#[test]
fn replicaset_daemonset_statefulset_rules() {
    let rs = workload(
        "apps",
        "ReplicaSet",
        json!({"selector": {"matchLabels": {"a": "b"}}, "template": tmpl(json!({"a": "b"}), None)}),
    );
    assert_clean(&validate("apps", "v1", "ReplicaSet", &rs, None));
    let ds = workload(
        "apps",
        "DaemonSet",
        json!({"selector": {"matchLabels": {"a": "b"}}, "template": tmpl(json!({"a": "b"}), None)}),
    );
    assert_clean(&validate("apps", "v1", "DaemonSet", &ds, None));
    let mut ds_bad = ds.clone();
    ds_bad["spec"]["template"]["metadata"]["labels"] = json!({"a": "c"});
    assert_has(
        &validate("apps", "v1", "DaemonSet", &ds_bad, None),
        "spec.template.metadata.labels: Invalid value: map[string]string{\"a\":\"c\"}: `selector` does not match template `labels`",
    );
    let ss = workload(
        "apps",
        "StatefulSet",
        json!({"serviceName": "s", "selector": {"matchLabels": {"a": "b"}}, "template": tmpl(json!({"a": "b"}), None)}),
    );
    assert_clean(&validate("apps", "v1", "StatefulSet", &ss, None));
    let mut ss_upd = ss.clone();
    ss_upd["spec"]["replicas"] = json!(3);
    ss_upd["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    assert_clean(&validate("apps", "v1", "StatefulSet", &ss_upd, Some(&ss)));
    ss_upd["spec"]["serviceName"] = json!("other");
    assert_has(
        &validate("apps", "v1", "StatefulSet", &ss_upd, Some(&ss)),
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
    );
    let mut ss_pol = ss.clone();
    ss_pol["spec"]["podManagementPolicy"] = json!("Random");
    assert_has(
        &validate("apps", "v1", "StatefulSet", &ss_pol, None),
        "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
    );
    // A mount may name a volumeClaimTemplate; any other unknown name is still an error.
    let mut ss_claim = ss.clone();
    ss_claim["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
    ss_claim["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/data"}]);
    assert_clean(&validate("apps", "v1", "StatefulSet", &ss_claim, None));
    ss_claim["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["name"] =
        json!("other");
    assert_has(
        &validate("apps", "v1", "StatefulSet", &ss_claim, None),
        "spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"other\"",
    );
    let mut ss_name = ss.clone();
    ss_name["metadata"]["name"] = json!("a.b");
    assert_has(
        &validate("apps", "v1", "StatefulSet", &ss_name, None),
        "metadata.name: Invalid value: \"a.b\": must not contain dots",
    );
}

#[test]
fn workload_status_rules() {
    let d = json!({"metadata": {"name": "d"}, "status": {"replicas": 1, "readyReplicas": 2, "availableReplicas": -1}});
    let errs = validate_status("apps", "v1", "Deployment", &d, &d);
    assert_has(
        &errs,
        "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas",
    );
    assert_has(
        &errs,
        "status.availableReplicas: Invalid value: -1: must be greater than or equal to 0",
    );
}

#[test]
fn job_rules() {
    let job = workload(
        "batch",
        "Job",
        json!({"template": tmpl(json!({"j": "1"}), Some("Never"))}),
    );
    assert_clean(&validate("batch", "v1", "Job", &job, None));
    let always = workload("batch", "Job", json!({"template": tmpl(json!({}), None)}));
    assert_has(
        &validate("batch", "v1", "Job", &always, None),
        "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
    );
    let mut neg = job.clone();
    neg["spec"]["parallelism"] = json!(-2);
    assert_has(
        &validate("batch", "v1", "Job", &neg, None),
        "spec.parallelism: Invalid value: -2: must be greater than or equal to 0",
    );
    let mut upd = job.clone();
    upd["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
    let errs = validate("batch", "v1", "Job", &upd, Some(&job));
    assert!(
        messages(&errs)
            .iter()
            .any(|m| m.starts_with("spec.template: Invalid value: ")
                && m.ends_with(": field is immutable")),
        "{:#?}",
        messages(&errs)
    );
    let mut par = job.clone();
    par["spec"]["parallelism"] = json!(4);
    assert_clean(&validate("batch", "v1", "Job", &par, Some(&job)));
    // Suspended, never started: scheduling directives may change.
    let mut susp = job.clone();
    susp["spec"]["suspend"] = json!(true);
    let mut moved = susp.clone();
    moved["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
    moved["spec"]["template"]["metadata"]["labels"]["extra"] = json!("x");
    assert_clean(&validate("batch", "v1", "Job", &moved, Some(&susp)));
    let mut comp = job.clone();
    comp["spec"]["completions"] = json!(5);
    assert_has(
        &validate("batch", "v1", "Job", &comp, Some(&job)),
        "spec.completions: Invalid value: 5: field is immutable",
    );
    let mut sel = job.clone();
    sel["spec"]["selector"] = json!({"matchLabels": {"j": "2"}});
    assert_has(
        &validate("batch", "v1", "Job", &sel, None),
        "spec.template.metadata.labels: Invalid value: map[string]string{\"j\":\"1\"}: `selector` does not match template `labels`",
    );
}

#[test]
fn cronjob_rules() {
    let cj = |schedule: &str| {
        workload(
            "batch",
            "CronJob",
            json!({"schedule": schedule, "jobTemplate": {"spec": {"template": tmpl(json!({}), Some("OnFailure"))}}}),
        )
    };
    assert_clean(&validate(
        "batch",
        "v1",
        "CronJob",
        &cj("*/5 * * * *"),
        None,
    ));
    assert_clean(&validate("batch", "v1", "CronJob", &cj("@daily"), None));
    assert_has(
        &validate("batch", "v1", "CronJob", &cj(""), None),
        "spec.schedule: Required value",
    );
    assert_has(
        &validate("batch", "v1", "CronJob", &cj("* * *"), None),
        "spec.schedule: Invalid value: \"* * *\": expected exactly 5 fields, found 3: [* * *]",
    );
    assert_has(
        &validate("batch", "v1", "CronJob", &cj("TZ=UTC * * * * *"), None),
        "spec.schedule: Invalid value: \"TZ=UTC * * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
    );
    let mut pol = cj("@hourly");
    pol["spec"]["concurrencyPolicy"] = json!("Sometimes");
    assert_has(
        &validate("batch", "v1", "CronJob", &pol, None),
        "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
    );
    let mut rp = cj("@hourly");
    rp["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    assert_has(
        &validate("batch", "v1", "CronJob", &rp, None),
        "spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
    );
    let mut long = cj("@hourly");
    long["metadata"]["name"] = json!("a".repeat(53));
    assert_has(
        &validate("batch", "v1", "CronJob", &long, None),
        &format!(
            "metadata.name: Invalid value: \"{}\": must be no more than 52 characters",
            "a".repeat(53)
        ),
    );
}
