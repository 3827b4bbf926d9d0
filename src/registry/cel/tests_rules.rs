//! Rules on schemas: `self` typed from the schema, errors worded as upstream words them,
//! transition rules and correlation, ratcheting, the cost budget, and the CRD-side checks.

use super::{check_crd_rules, validate_custom, RuleSet};
use serde_json::{json, Value};

fn schema() -> Value {
    json!({
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.startsWith('ok')", "message": "name must start with ok"},
            {"rule": "self.kind == 'Widget' && self.apiVersion == 'x.io/v1'"}
        ],
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.replicas <= self.max", "message": "replicas must not exceed max"},
                    {"rule": "!has(self.mode) || self.mode != 'bad'", "reason": "FieldValueForbidden", "fieldPath": ".mode", "message": "bad mode"},
                    {"rule": "self.max < 100", "messageExpression": "'max is ' + string(self.max)"}
                ],
                "properties": {
                    "replicas": {"type": "integer"},
                    "max": {"type": "integer"},
                    "mode": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "mode is immutable"}]},
                    "ratio": {"type": "number", "x-kubernetes-validations": [{"rule": "self < 1.5"}]},
                    "when": {"type": "string", "format": "date-time", "x-kubernetes-validations": [{"rule": "self.getFullYear() >= 2000"}]},
                    "timeout": {"type": "string", "format": "duration", "x-kubernetes-validations": [{"rule": "self <= duration('1h')"}]},
                    "size": {"x-kubernetes-int-or-string": true, "x-kubernetes-validations": [{"rule": "self == 1"}]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}, "x-kubernetes-validations": [{"rule": "self.all(k, size(self[k]) < 5)", "reason": "FieldValueDuplicate"}]},
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "port": {"type": "integer", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "port is immutable"}]}},
                            "x-kubernetes-validations": [{"rule": "self.port > 0", "reason": "FieldValueRequired", "message": "port must be positive"}]
                        }
                    }
                }
            }
        }
    })
}

fn obj(spec: Value) -> Value {
    json!({"apiVersion": "x.io/v1", "kind": "Widget", "metadata": {"name": "ok1", "namespace": "default"}, "spec": spec})
}

fn messages(spec: Value, old: Option<Value>) -> Vec<String> {
    let rules = RuleSet::new(&schema());
    let old = old.map(obj);
    let (errs, _) = validate_custom(&rules, &obj(spec), old.as_ref(), &[]);
    errs.into_iter().map(|e| e.message).collect()
}

#[test]
fn valid_objects_pass() {
    let spec = json!({"replicas": 1, "max": 3, "ratio": 1, "when": "2024-01-01T00:00:00Z", "timeout": "30m", "size": 1, "labels": {"a": "b"}, "ports": [{"name": "http", "port": 80}]});
    assert_eq!(messages(spec, None), Vec::<String>::new());
}

#[test]
fn failures_are_worded_as_upstream() {
    let m = messages(json!({"replicas": 5, "max": 3, "mode": "bad"}), None);
    assert_eq!(
        m,
        [
            "spec: Invalid value: \"object\": replicas must not exceed max",
            "spec.mode: Forbidden: bad mode",
        ]
    );
    let m = messages(json!({"replicas": 1, "max": 300}), None);
    assert_eq!(m, ["spec: Invalid value: \"object\": max is 300"]);
    let m = messages(
        json!({"replicas": 1, "max": 3, "ratio": 2.5, "when": "1999-01-01T00:00:00Z", "timeout": "2h", "size": "x"}),
        None,
    );
    assert_eq!(
        m,
        [
            "spec.ratio: Invalid value: \"number\": failed rule: self < 1.5",
            "spec.when: Invalid value: \"string\": failed rule: self.getFullYear() >= 2000",
            "spec.timeout: Invalid value: \"string\": failed rule: self <= duration('1h')",
            "spec.size: Invalid value: \"\": failed rule: self == 1",
        ]
    );
    let m = messages(
        json!({"replicas": 1, "max": 3, "labels": {"k": "toolong"}, "ports": [{"name": "a", "port": 0}]}),
        None,
    );
    assert_eq!(
        m,
        [
            "spec.labels: Duplicate value: \"object\"",
            "spec.ports[0]: Required value: port must be positive",
        ]
    );
}

#[test]
fn root_rules_see_type_and_name() {
    let rules = RuleSet::new(&schema());
    let mut o = obj(json!({"replicas": 1, "max": 3}));
    o["metadata"]["name"] = json!("nope");
    let (errs, _) = validate_custom(&rules, &o, None, &[]);
    assert_eq!(
        errs[0].message,
        "<nil>: Invalid value: \"object\": name must start with ok"
    );
    assert_eq!(errs[0].field, "<nil>");
}

#[test]
fn evaluation_errors_are_reported_per_rule() {
    // `self.replicas` absent: no such key.
    let m = messages(json!({"max": 3}), None);
    assert_eq!(
        m,
        ["spec: Invalid value: \"object\": no such key: replicas evaluating rule: replicas must not exceed max"]
    );
}

#[test]
fn transition_rules_need_a_correlated_old_value() {
    // Create: no old value, the immutability rules do not run.
    assert!(messages(json!({"replicas": 1, "max": 3, "mode": "a"}), None).is_empty());
    let old = json!({"replicas": 1, "max": 3, "mode": "a", "ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]});
    let m = messages(
        json!({"replicas": 1, "max": 3, "mode": "b", "ports": [{"name": "b", "port": 3}, {"name": "a", "port": 1}, {"name": "c", "port": 9}]}),
        Some(old),
    );
    assert_eq!(
        m,
        [
            "spec.mode: Invalid value: \"string\": mode is immutable",
            "spec.ports[0].port: Invalid value: \"integer\": port is immutable",
        ]
    );
}

#[test]
fn unchanged_invalid_values_are_ratcheted_to_warnings() {
    let rules = RuleSet::new(&schema());
    let old = obj(json!({"replicas": 5, "max": 3}));
    let mut new = old.clone();
    new["metadata"]["labels"] = json!({"a": "b"});
    let (errs, warnings) = validate_custom(&rules, &new, Some(&old), &[]);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        warnings,
        ["spec: Invalid value: \"object\": replicas must not exceed max"]
    );
    new["spec"]["replicas"] = json!(6);
    let (errs, _) = validate_custom(&rules, &new, Some(&old), &[]);
    assert_eq!(errs.len(), 1);
}

#[test]
fn the_cost_budget_stops_expensive_rules() {
    let s = json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "integer"},
        "x-kubernetes-validations": [{"rule": "self.all(a, self.all(b, self.all(c, a + b + c >= 0)))"}]}}});
    let rules = RuleSet::new(&s);
    let o = json!({"l": (0..200).collect::<Vec<i64>>()});
    let started = std::time::Instant::now();
    let (errs, _) = rules.validate(&o, None);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].message.starts_with("l: Invalid value: \"array\": 'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: self.all(a"),
        "{}",
        errs[0].message
    );
}

#[test]
fn the_object_budget_is_shared_by_all_rules() {
    let s = json!({"type": "object", "properties": {"rows": {"type": "array", "items": {
        "type": "array", "items": {"type": "integer"},
        "x-kubernetes-validations": [{"rule": "self.all(a, self.all(b, a + b >= 0))"}]}}}});
    let rules = RuleSet::new(&s);
    let row: Vec<i64> = (0..300).collect();
    let o = json!({"rows": vec![row; 40]});
    let (errs, _) = rules.validate(&o, None);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].message.ends_with(": Invalid value: \"array\": validation failed due to running out of cost budget, no further validation rules will be run"),
        "{}",
        errs[0].message
    );
}

#[test]
fn blocking_schema_errors_skip_rules() {
    let rules = RuleSet::new(&schema());
    let prior = vec![crate::registry::schema::SchemaError {
        field: "spec.max".into(),
        reason: "FieldValueTypeInvalid",
        message: "spec.max: Invalid value: \"string\": ...".into(),
    }];
    let (errs, _) = validate_custom(&rules, &obj(json!({"max": "x"})), None, &prior);
    assert_eq!(errs[0].message, "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation");
}

fn crd_errors(rules: Value) -> Vec<String> {
    let s = json!({"type": "object", "properties": {
        "spec": {"type": "object", "x-kubernetes-validations": rules,
            "properties": {"a": {"type": "integer"}, "m": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "list": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}
    }});
    check_crd_rules(&s, "spec.versions[0].schema.openAPIV3Schema")
        .into_iter()
        .map(|e| e.message)
        .collect()
}

#[test]
fn crd_rules_are_checked() {
    let base =
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0]";
    let list = "spec.versions[0].schema.openAPIV3Schema.properties[list].items.x-kubernetes-validations[0].rule: Invalid value: \"self == oldSelf\": oldSelf cannot be used on the uncorrelatable portion of the schema within spec.versions[0].schema.openAPIV3Schema.properties[list].items";
    assert_eq!(
        crd_errors(json!([{"rule": "self.a > 0", "fieldPath": ".m['k']"}])),
        [list]
    );
    let e = crd_errors(json!([{"rule": "self.a >"}]));
    assert_eq!(e[0], format!("{base}.rule: Invalid value: apiextensions.ValidationRule{{Rule:\"self.a >\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}}: compilation failed: ERROR: <input>:1:9: Syntax error: mismatched input <EOF> expecting expression\n | self.a >\n | ........^"));
    let e = crd_errors(json!([{"rule": "self.a.frobnicate()"}]));
    assert!(e[0].ends_with("compilation failed: ERROR: <input>:1:7: undeclared reference to 'frobnicate' (in container '')\n | self.a.frobnicate()\n | ......^"), "{}", e[0]);
    let e = crd_errors(json!([{"rule": "self.nope > 1"}]));
    assert!(e[0].contains("undefined field 'nope'"), "{}", e[0]);
    let e = crd_errors(json!([{"rule": "other > 1"}]));
    assert!(e[0].contains("undeclared reference to 'other'"), "{}", e[0]);
    let e = crd_errors(json!([{"rule": "self.a + 1"}]));
    assert!(
        e[0].ends_with(": cel expression must evaluate to a bool"),
        "{}",
        e[0]
    );
    let e = crd_errors(json!([{"rule": "self.a + 'x' > 1"}]));
    assert!(
        e[0].contains("found no matching overload for '_+_' applied to '(int, string)'"),
        "{}",
        e[0]
    );
    let e = crd_errors(json!([{"rule": "self.a.startsWith('x')"}]));
    assert!(
        e[0].contains("found no matching overload for 'startsWith' applied to 'int.(string)'"),
        "{}",
        e[0]
    );
    assert!(crd_errors(json!([{"rule": "self.m.all(k, self.m[k].startsWith('x'))"}])).len() == 1);
    let e = crd_errors(json!([{"rule": "true", "reason": "Nope", "fieldPath": ".zz"}]));
    assert_eq!(&e[..2], [
        format!("{base}.reason: Unsupported value: \"Nope\": supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\""),
        format!("{base}.fieldPath: Invalid value: \".zz\": fieldPath must be a valid path"),
    ]);
    let e = crd_errors(json!([{"rule": "true", "messageExpression": "1"}]));
    assert!(
        e[0].ends_with("messageExpression must evaluate to a string"),
        "{}",
        e[0]
    );
    let e = crd_errors(json!([{"rule": "true", "optionalOldSelf": true}]));
    assert!(
        e[0].ends_with(
            "optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule"
        ),
        "{}",
        e[0]
    );
    let e = crd_errors(json!([{"rule": ""}]));
    assert_eq!(
        e[0],
        format!("{base}.rule: Required value: rule is not specified")
    );
}

#[test]
fn optional_old_self_rules_run_on_create() {
    let s = json!({"type": "object", "properties": {"v": {"type": "string", "x-kubernetes-validations": [
        {"rule": "!oldSelf.hasValue() || self == oldSelf.value()", "optionalOldSelf": true, "message": "immutable once set"},
        {"rule": "oldSelf.hasValue() || self != 'forbidden'", "optionalOldSelf": true, "message": "not on create"}
    ]}}});
    let rules = RuleSet::new(&s);
    assert!(rules.validate(&json!({"v": "a"}), None).0.is_empty());
    let e = rules.validate(&json!({"v": "forbidden"}), None).0;
    assert_eq!(e[0].message, "v: Invalid value: \"string\": not on create");
    let e = rules
        .validate(&json!({"v": "b"}), Some(&json!({"v": "a"})))
        .0;
    assert_eq!(
        e[0].message,
        "v: Invalid value: \"string\": immutable once set"
    );
}

#[test]
fn embedded_resources_are_roots_of_their_own() {
    let s = json!({"type": "object", "properties": {"template": {
        "type": "object",
        "x-kubernetes-embedded-resource": true,
        "x-kubernetes-preserve-unknown-fields": true,
        "x-kubernetes-validations": [
            {"rule": "self.kind == 'Pod' && self.metadata.name == 'p' && self.spec.x == 1"},
            {"rule": "!has(self.metadata.namespace)"}
        ]
    }}});
    let rules = RuleSet::new(&s);
    let o = json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}, "spec": {"x": 1}}});
    assert_eq!(rules.validate(&o, None).0, vec![]);
}

/// The per-object cost of five rules, printed for the record (`cargo test --lib
/// cel::tests_rules::five_rules_cost -- --nocapture`).
#[test]
fn five_rules_cost() {
    let rules = RuleSet::new(&schema());
    let o = obj(
        json!({"replicas": 1, "max": 3, "mode": "a", "labels": {"a": "b"}, "ports": [{"name": "http", "port": 80}]}),
    );
    let n = 2000;
    let started = std::time::Instant::now();
    for _ in 0..n {
        let (errs, _) = rules.validate(&o, None);
        assert!(errs.is_empty());
    }
    let per = started.elapsed() / n;
    println!("rules evaluated per object: 7 (5 on spec and below, 2 at the root); time per object: {per:?}");
}
