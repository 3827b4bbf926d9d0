use serde_json::{json, Value};

use super::super::*;
use super::{ago, names, now};

fn printer_columns() -> Value {
    json!([
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "description": "ready"},
        {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio", "priority": 1},
        {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
        {"name": "Labels", "type": "string", "jsonPath": ".metadata.labels"},
        {"name": "App", "type": "string", "jsonPath": ".metadata.labels['app.kubernetes.io/name']"},
        {"name": "Last", "type": "string", "jsonPath": ".status.items[-1].name"},
        {"name": "Created", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"},
    ])
}

#[test]
fn crd_columns_and_cells() {
    let cols = crd_columns(&printer_columns());
    assert_eq!(cols[0].name, "Name");
    assert_eq!(cols[0].format, "name");
    assert_eq!(
        cols[1].description,
        "Custom resource definition column (in JSONPath format): .spec.replicas"
    );
    assert_eq!(cols[2].description, "ready");
    assert_eq!(cols[3].priority, 1);
    let obj = json!({"metadata": {"name": "w", "creationTimestamp": ago(3600),
        "labels": {"b": "2", "app.kubernetes.io/name": "<x>"}},
        "spec": {"replicas": 3, "paused": false},
        "status": {"ratio": 1.5, "conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}],
            "items": [{"name": "first"}, {"name": "last"}]}});
    assert_eq!(
        crd_cells(&printer_columns(), &obj, now()),
        vec![
            json!("w"),
            json!(3),
            json!("True"),
            json!(1.5),
            json!(false),
            json!("{\"app.kubernetes.io/name\":\"\\u003cx\\u003e\",\"b\":\"2\"}"),
            json!("<x>"),
            json!("last"),
            json!("60m"),
            Value::Null
        ]
    );
    let none = crd_columns(&json!([]));
    assert_eq!(names(&none), ["Name", "Age"]);
    assert_eq!(none[1].type_, "date");
    assert_eq!(
        crd_cells(&json!(null), &obj, now()),
        vec![json!("w"), json!("60m")]
    );
    let bad_date = json!([{"name": "D", "type": "date", "jsonPath": ".spec.when"}]);
    assert_eq!(
        crd_cells(&bad_date, &json!({"spec": {"when": "yesterday"}}), now())[1],
        json!("<invalid>")
    );
}

#[test]
fn jsonpath_forms() {
    let doc = json!({"a": {"b": [1, 2, 3], "c.d": "x"}, "list": [{"k": 1, "v": "one"}, {"k": 2, "v": "two"}]});
    let cases: &[(&str, Value)] = &[
        (".a.b[0]", json!(1)),
        ("{.a.b[-1]}", json!(3)),
        (".a['c.d']", json!("x")),
        (".a.c\\.d", json!("x")),
        (".list[?(@.k > 1)].v", json!("two")),
        (".list[?(@.v != 'one')].k", json!(2)),
        (".list[*].v", json!("one")),
        ("..v", json!("one")),
    ];
    for (path, want) in cases {
        let steps = jsonpath::parse(path).unwrap_or_else(|| panic!("parse {path}"));
        assert_eq!(
            jsonpath::evaluate(&steps, &doc).first(),
            Some(&want),
            "{path}"
        );
    }
    for bad in [".a[", ".a[?(@.x==)]", "a b"] {
        assert!(jsonpath::parse(bad).is_none(), "{bad}");
    }
}
