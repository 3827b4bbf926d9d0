//! JSON patch and merge patch.

use serde_json::{json, Value};

use super::{json_patch, merge_patch, try_merge_patch, PatchError, PatchType};

#[test]
fn json_patch_operations() {
    let doc = json!({"a": {"b": 1}, "list": [1, 2, 3]});
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "add",
            json!([{"op": "add", "path": "/a/c", "value": 2}]),
            json!({"a": {"b": 1, "c": 2}, "list": [1, 2, 3]}),
        ),
        (
            "add to end",
            json!([{"op": "add", "path": "/list/-", "value": 4}]),
            json!({"a": {"b": 1}, "list": [1, 2, 3, 4]}),
        ),
        (
            "remove",
            json!([{"op": "remove", "path": "/a/b"}]),
            json!({"a": {}, "list": [1, 2, 3]}),
        ),
        (
            "replace",
            json!([{"op": "replace", "path": "/list/0", "value": 9}]),
            json!({"a": {"b": 1}, "list": [9, 2, 3]}),
        ),
        (
            "move",
            json!([{"op": "move", "from": "/a/b", "path": "/moved"}]),
            json!({"a": {}, "list": [1, 2, 3], "moved": 1}),
        ),
        (
            "copy",
            json!([{"op": "copy", "from": "/a", "path": "/a2"}]),
            json!({"a": {"b": 1}, "list": [1, 2, 3], "a2": {"b": 1}}),
        ),
        (
            "test then replace",
            json!([{"op": "test", "path": "/a/b", "value": 1}, {"op": "replace", "path": "/a/b", "value": 5}]),
            json!({"a": {"b": 5}, "list": [1, 2, 3]}),
        ),
        (
            "escaped path",
            json!([{"op": "add", "path": "/a/x~1y~0z", "value": true}]),
            json!({"a": {"b": 1, "x/y~z": true}, "list": [1, 2, 3]}),
        ),
        ("empty patch", json!([]), doc.clone()),
    ];
    for (name, patch, want) in cases {
        let got = json_patch(&doc, &patch).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn json_patch_errors() {
    let doc = json!({"a": {"b": 1}});
    let r = json_patch(&doc, &json!([{"op": "test", "path": "/a/b", "value": 2}]));
    assert!(
        matches!(r, Err(PatchError::TestFailed { index: 0, .. })),
        "{r:?}"
    );
    let r = json_patch(&doc, &json!([{"op": "remove", "path": "/nope"}]));
    assert!(matches!(r, Err(PatchError::PathNotFound { .. })), "{r:?}");
    let r = json_patch(
        &doc,
        &json!([{"op": "replace", "path": "/x/y", "value": 1}]),
    );
    assert!(matches!(r, Err(PatchError::PathNotFound { .. })), "{r:?}");
    let r = json_patch(
        &doc,
        &json!([{"op": "move", "from": "/nope", "path": "/x"}]),
    );
    match r {
        Err(PatchError::PathNotFound { path, op, .. }) => {
            assert_eq!(path, "/nope");
            assert_eq!(op, "move");
        }
        other => panic!("{other:?}"),
    }
    let r = json_patch(
        &doc,
        &json!([{"op": "move", "from": "/a", "path": "/a/b/c"}]),
    );
    assert!(r.is_err());
    for bad in [
        json!({"op": "add"}),
        json!([{"op": "frobnicate", "path": "/a"}]),
        json!([{"path": "/a"}]),
        json!([{"op": "add", "path": "/a"}]),
        json!(["x"]),
        json!("x"),
    ] {
        assert!(
            matches!(json_patch(&doc, &bad), Err(PatchError::InvalidPatch(_))),
            "{bad}"
        );
    }
    // A failed patch leaves nothing applied: the input is untouched and
    // the error carries the failing operation's index.
    let r = json_patch(
        &doc,
        &json!([{"op": "add", "path": "/c", "value": 1}, {"op": "test", "path": "/c", "value": 2}]),
    );
    assert!(matches!(r, Err(PatchError::TestFailed { index: 1, .. })));
}

#[test]
fn json_patch_limits() {
    let ops: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "", "value": {}}))
        .collect();
    assert!(json_patch(&json!({}), &Value::Array(ops)).is_err());
    let big: Vec<Value> = (0..50_000).map(|i| json!(i)).collect();
    let got = json_patch(
        &json!({}),
        &json!([{"op": "add", "path": "/big", "value": big}]),
    );
    assert!(got.is_ok());
    let mut deep = json!(0);
    for _ in 0..1000 {
        deep = json!([deep]);
    }
    let r = json_patch(
        &json!({}),
        &json!([{"op": "add", "path": "/d", "value": deep}]),
    );
    assert!(matches!(r, Err(PatchError::TooDeep { .. })));
}

#[test]
fn merge_patch_rfc7386_examples() {
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (doc, patch, want) in cases {
        assert_eq!(merge_patch(&doc, &patch), want, "{doc} + {patch}");
    }
}

#[test]
fn try_merge_patch_checks_input() {
    assert!(try_merge_patch(&json!({}), &json!([1])).is_err());
    let mut deep = json!(0);
    for _ in 0..1000 {
        deep = json!({"a": deep});
    }
    assert!(matches!(
        try_merge_patch(&json!({}), &deep),
        Err(PatchError::TooDeep { .. })
    ));
    assert_eq!(
        try_merge_patch(&json!({"a": 1}), &json!({"b": 2})).ok(),
        Some(json!({"a": 1, "b": 2}))
    );
}

#[test]
fn content_types() {
    let cases = [
        ("application/json-patch+json", Some(PatchType::Json)),
        ("application/merge-patch+json", Some(PatchType::Merge)),
        (
            "application/strategic-merge-patch+json",
            Some(PatchType::StrategicMerge),
        ),
        ("application/apply-patch+yaml", Some(PatchType::Apply)),
        ("application/apply-patch+json", Some(PatchType::Apply)),
        ("application/apply-patch+cbor", None),
        (
            "Application/Merge-Patch+JSON; charset=utf-8",
            Some(PatchType::Merge),
        ),
        ("application/json", None),
        ("", None),
    ];
    for (ct, want) in cases {
        assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
        if let Some(t) = want {
            assert_eq!(PatchType::from_content_type(t.content_type()), Some(t));
        }
    }
}
