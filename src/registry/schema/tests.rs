use super::pattern::Regex;
use super::*;
use serde_json::{json, Value};

fn spec_schema(spec_props: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": { "type": "object", "properties": spec_props }
        }
    })
}

fn messages(errs: &[SchemaError]) -> Vec<String> {
    errs.iter().map(|e| e.message.clone()).collect()
}

/// (field schema, good values, bad value, expected messages) for `spec.f`.
type Case = (Value, Vec<Value>, Value, Vec<&'static str>);

#[test]
fn keywords_table() {
    let cases: Vec<Case> = vec![
        (
            json!({"type": "integer"}),
            vec![json!(3), json!(-1), json!(2.0)],
            json!("string"),
            vec![
                r#"spec.f: Invalid value: "string": spec.f in body must be of type integer: "string""#,
            ],
        ),
        (
            json!({"type": "integer"}),
            vec![],
            json!(1.5),
            vec![
                r#"spec.f: Invalid value: "number": spec.f in body must be of type integer: "number""#,
            ],
        ),
        (
            json!({"type": "number"}),
            vec![json!(1), json!(1.5)],
            json!(true),
            vec![
                r#"spec.f: Invalid value: "boolean": spec.f in body must be of type number: "boolean""#,
            ],
        ),
        (
            json!({"type": "string"}),
            vec![json!("x")],
            json!(null),
            vec![r#"spec.f: Invalid value: "null": spec.f in body must be of type string: "null""#],
        ),
        (
            json!({"type": "string", "nullable": true}),
            vec![json!(null), json!("a")],
            json!(1),
            vec![
                r#"spec.f: Invalid value: "integer": spec.f in body must be of type string: "integer""#,
            ],
        ),
        (
            json!({"type": "boolean"}),
            vec![json!(false)],
            json!({"a": 1}),
            vec![
                r#"spec.f: Invalid value: "object": spec.f in body must be of type boolean: "object""#,
            ],
        ),
        (
            json!({"type": "array", "items": {"type": "string"}}),
            vec![json!([]), json!(["a"])],
            json!(["a", 2]),
            vec![
                r#"spec.f[1]: Invalid value: "integer": spec.f[1] in body must be of type string: "integer""#,
            ],
        ),
        (
            json!({"x-kubernetes-int-or-string": true}),
            vec![json!(1), json!("50%")],
            json!(true),
            vec![
                r#"spec.f: Invalid value: "boolean": spec.f in body must be of type integer,string: "boolean""#,
            ],
        ),
        (
            json!({"type": "string", "enum": ["red", "blue"]}),
            vec![json!("red"), json!("blue")],
            json!("pink"),
            vec![r#"spec.f: Unsupported value: "pink": supported values: "red", "blue""#],
        ),
        (
            json!({"type": "integer", "enum": [1, 2]}),
            vec![json!(1), json!(2.0)],
            json!(3),
            vec![r#"spec.f: Unsupported value: 3: supported values: "1", "2""#],
        ),
        (
            json!({"type": "integer", "maximum": 10}),
            vec![json!(10), json!(-5)],
            json!(11),
            vec!["spec.f: Invalid value: 11: spec.f in body should be less than or equal to 10"],
        ),
        (
            json!({"type": "integer", "maximum": 10, "exclusiveMaximum": true}),
            vec![json!(9)],
            json!(10),
            vec!["spec.f: Invalid value: 10: spec.f in body should be less than 10"],
        ),
        (
            json!({"type": "integer", "minimum": 1}),
            vec![json!(1)],
            json!(0),
            vec!["spec.f: Invalid value: 0: spec.f in body should be greater than or equal to 1"],
        ),
        (
            json!({"type": "number", "minimum": 0.5, "exclusiveMinimum": true}),
            vec![json!(0.6)],
            json!(0.5),
            vec!["spec.f: Invalid value: 0.5: spec.f in body should be greater than 0.5"],
        ),
        (
            json!({"type": "integer", "maximum": 1000000}),
            vec![],
            json!(1000001),
            vec![
                "spec.f: Invalid value: 1000001: spec.f in body should be less than or equal to 1e+06",
            ],
        ),
        (
            json!({"type": "integer", "multipleOf": 5}),
            vec![json!(10), json!(0)],
            json!(7),
            vec!["spec.f: Invalid value: 7: spec.f in body should be a multiple of 5"],
        ),
        (
            json!({"type": "string", "maxLength": 5}),
            vec![json!("abcde"), json!("ééééé")],
            json!("abcdef"),
            vec!["spec.f: Too long: may not be more than 5 bytes"],
        ),
        (
            json!({"type": "string", "minLength": 3}),
            vec![json!("abc")],
            json!("ab"),
            vec![r#"spec.f: Invalid value: "ab": spec.f in body should be at least 3 chars long"#],
        ),
        (
            json!({"type": "string", "pattern": "^[a-z]+$"}),
            vec![json!("abc")],
            json!("ABC"),
            vec![r#"spec.f: Invalid value: "ABC": spec.f in body should match '^[a-z]+$'"#],
        ),
        (
            json!({"type": "string", "pattern": "[0-9]"}),
            vec![json!("a1b")],
            json!("abc"),
            vec![r#"spec.f: Invalid value: "abc": spec.f in body should match '[0-9]'"#],
        ),
        (
            json!({"type": "string", "pattern": "(?=x)"}),
            vec![json!("anything")],
            json!(1),
            vec![
                r#"spec.f: Invalid value: "integer": spec.f in body must be of type string: "integer""#,
            ],
        ),
        (
            json!({"type": "string", "format": "date-time"}),
            vec![
                json!("2024-01-02T03:04:05Z"),
                json!("2024-01-02T03:04:05.123+02:00"),
            ],
            json!("yesterday"),
            vec![
                r#"spec.f: Invalid value: "yesterday": spec.f in body must be of type date-time: "yesterday""#,
            ],
        ),
        (
            json!({"type": "string", "format": "date"}),
            vec![json!("2024-02-29")],
            json!("2023-02-29"),
            vec![
                r#"spec.f: Invalid value: "2023-02-29": spec.f in body must be of type date: "2023-02-29""#,
            ],
        ),
        (
            json!({"type": "string", "format": "byte"}),
            vec![json!("aGVsbG8="), json!("")],
            json!("not base64!"),
            vec![
                r#"spec.f: Invalid value: "not base64!": spec.f in body must be of type byte: "not base64!""#,
            ],
        ),
        (
            json!({"type": "integer", "format": "int32"}),
            vec![json!(1), json!(99999999999_i64)],
            json!("1"),
            vec![
                r#"spec.f: Invalid value: "string": spec.f in body must be of type integer: "string""#,
            ],
        ),
        (
            json!({"type": "array", "items": {"type": "integer"}, "minItems": 1}),
            vec![json!([1])],
            json!([]),
            vec!["spec.f: Invalid value: 0: spec.f in body should have at least 1 items"],
        ),
        (
            json!({"type": "array", "items": {"type": "integer"}, "maxItems": 2}),
            vec![json!([1, 2])],
            json!([1, 2, 3]),
            vec!["spec.f: Too many: 3: must have at most 2 items"],
        ),
        (
            json!({"type": "array", "items": {"type": "integer"}, "uniqueItems": true}),
            vec![json!([1, 2])],
            json!([1, 2, 1]),
            vec![r#"spec.f: Invalid value: "": spec.f in body shouldn't contain duplicates"#],
        ),
        (
            json!({"type": "object", "minProperties": 1}),
            vec![json!({"a": 1})],
            json!({}),
            vec!["spec.f: Invalid value: 0: spec.f in body should have at least 1 properties"],
        ),
        (
            json!({"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}}),
            vec![json!({"a": "x"})],
            json!({"a": "x", "b": "y"}),
            vec!["spec.f: Too many: 2: must have at most 1 item"],
        ),
        (
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
            vec![json!({"a": "x"})],
            json!({"a": "x", "b": 2}),
            vec![
                r#"spec.f.b: Invalid value: "integer": spec.f.b in body must be of type string: "integer""#,
            ],
        ),
        (
            json!({"type": "object", "required": ["size"], "properties": {"size": {"type": "integer"}}}),
            vec![json!({"size": 1})],
            json!({}),
            vec!["spec.f.size: Required value"],
        ),
        (
            json!({"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 0}]}),
            vec![json!(11), json!(-1)],
            json!(5),
            vec![
                r#"spec.f: Invalid value: "": spec.f must validate at least one schema (anyOf)"#,
                "spec.f: Invalid value: 5: spec.f in body should be greater than or equal to 10",
            ],
        ),
        (
            json!({"type": "integer", "oneOf": [{"minimum": 0}, {"minimum": 10}]}),
            vec![json!(5)],
            json!(11),
            vec![
                r#"spec.f: Invalid value: "": spec.f must validate one and only one schema (oneOf). Found 2 valid alternatives"#,
            ],
        ),
        (
            json!({"type": "integer", "allOf": [{"minimum": 0}, {"maximum": 10}]}),
            vec![json!(5)],
            json!(11),
            vec![
                "spec.f: Invalid value: 11: spec.f in body should be less than or equal to 10",
                r#"spec.f: Invalid value: "": spec.f must validate all the schemas (allOf)"#,
            ],
        ),
        (
            json!({"type": "string", "not": {"enum": ["bad"]}}),
            vec![json!("good")],
            json!("bad"),
            vec![r#"spec.f: Invalid value: "": spec.f must not validate the schema (not)"#],
        ),
        (
            json!({"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}),
            vec![json!({"apiVersion": "v1", "kind": "Pod"})],
            json!({"apiVersion": "a/b/c"}),
            vec![
                r#"spec.f.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c"#,
                "spec.f.kind: Required value: must not be empty",
            ],
        ),
        (
            json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}),
            vec![json!(["a", "b"])],
            json!(["a", "b", "a"]),
            vec![r#"spec.f[2]: Duplicate value: "a""#],
        ),
        (
            json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                   "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}}),
            vec![json!([{"name": "a", "v": 1}, {"name": "b", "v": 1}])],
            json!([{"name": "a", "v": 1}, {"name": "a", "v": 2}]),
            vec![r#"spec.f[1]: Duplicate value: {"name":"a"}"#],
        ),
    ];
    for (i, (field, good, bad, want)) in cases.into_iter().enumerate() {
        let schema = spec_schema(json!({ "f": field }));
        for g in good {
            let obj = json!({"spec": {"f": g}});
            let errs = validate(&schema, &obj);
            assert!(errs.is_empty(), "case {i}: {g} should pass: {errs:?}");
        }
        let obj = json!({"spec": {"f": bad}});
        let got = messages(&validate(&schema, &obj));
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn reasons_and_fields() {
    let schema = spec_schema(json!({
        "replicas": {"type": "integer", "maximum": 10},
        "name": {"type": "string", "maxLength": 2},
        "color": {"type": "string", "enum": ["red"]},
        "items": {"type": "array", "maxItems": 0, "items": {"type": "string"}},
    }));
    let mut s = schema.clone();
    s["properties"]["spec"]["required"] = json!(["size"]);
    let obj = json!({"spec": {"replicas": "x", "name": "abc", "color": "pink", "items": ["a"]}});
    let got: Vec<(String, &str)> = validate(&s, &obj)
        .into_iter()
        .map(|e| (e.field, e.reason))
        .collect();
    let want = vec![
        ("spec.replicas".to_string(), "FieldValueTypeInvalid"),
        ("spec.name".to_string(), "FieldValueTooLong"),
        ("spec.color".to_string(), "FieldValueNotSupported"),
        ("spec.items".to_string(), "FieldValueTooMany"),
        ("spec.size".to_string(), "FieldValueRequired"),
    ];
    assert_eq!(got, want);
    let obj = json!({"spec": {"replicas": 11}});
    let errs = validate(&schema, &obj);
    assert_eq!(errs[0].reason, "FieldValueInvalid");
}

#[test]
fn nested_array_paths() {
    let schema = spec_schema(json!({
        "items": {"type": "array", "items": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}}
        }}
    }));
    let obj = json!({"spec": {"items": [{"name": "ok"}, {}, {"name": "NO"}]}});
    assert_eq!(
        messages(&validate(&schema, &obj)),
        vec![
            "spec.items[1].name: Required value",
            r#"spec.items[2].name: Invalid value: "NO": spec.items[2].name in body should match '^[a-z]+$'"#,
        ]
    );
}

#[test]
fn pattern_engine() {
    let cases: &[(&str, &str, bool)] = &[
        ("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "my-name-1", true),
        ("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "-bad", false),
        (r"^\d{3}-\d{2,4}$", "123-4567", true),
        (r"^\d{3}-\d{2,4}$", "123-45678", false),
        ("^(foo|bar)+$", "foobarfoo", true),
        ("^(foo|bar)+$", "foobaz", false),
        (r"^\w+\s\w+$", "hello world", true),
        ("^a.c$", "a\nc", false),
        ("^a.c$", "abc", true),
        ("b", "abc", true),
        ("^$", "", true),
        ("x{2}", "axxb", true),
        ("x{", "ax{", true),
        (r"^[^\s]+$", "no-space", true),
        (r"^[^\s]+$", "a space", false),
        (r"^(?:[0-9]+(?:\.[0-9]+)?)(m|Mi|Gi)?$", "1.5Gi", true),
        (r"\bword\b", "a word here", true),
        (r"\bword\b", "swordfish", false),
        ("^(a+)+$", &format!("{}b", "a".repeat(5000)), false),
    ];
    for (p, s, want) in cases {
        let re = Regex::new(p).unwrap_or_else(|| panic!("{p} should compile"));
        assert_eq!(re.is_match(s), *want, "{p} on {s:?}");
    }
    for bad in [
        "(?=x)",
        "(?i)abc",
        r"\1",
        r"\p{L}",
        "[[:alpha:]]",
        "(",
        "a)",
        "*a",
    ] {
        assert!(Regex::new(bad).is_none(), "{bad} should be unsupported");
    }
    let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(Regex::new(&deep).is_none());
    assert!(Regex::new("(a{1000}){1000}").is_none());
    let long = "a".repeat(1_000_000);
    assert!(Regex::new("^a*$").is_some_and(|r| r.is_match(&long)));
}

#[test]
fn formats_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("date-time", "2024-01-02T03:04:05Z", true),
        ("date-time", "2024-13-02T03:04:05Z", false),
        ("date-time", "2024-01-02", false),
        ("uuid", "123e4567-e89b-12d3-a456-426614174000", true),
        ("uuid", "123e4567e89b12d3a456426614174000", true),
        ("uuid", "not-a-uuid", false),
        ("uuid4", "123e4567-e89b-42d3-a456-426614174000", true),
        ("uuid4", "123e4567-e89b-12d3-a456-426614174000", false),
        ("ipv4", "10.0.0.1", true),
        ("ipv4", "10.0.0.256", false),
        ("ipv6", "::1", true),
        ("ipv6", "10.0.0.1", false),
        ("cidr", "10.0.0.0/8", true),
        ("cidr", "10.0.0.0/33", false),
        ("mac", "00:1a:2b:3c:4d:5e", true),
        ("mac", "00:1a:2b", false),
        ("hostname", "example.com", true),
        ("hostname", "-bad.com", false),
        ("email", "a@b.c", true),
        ("email", "nope", false),
        ("uri", "https://example.com/x", true),
        ("uri", "relative/path", false),
        ("duration", "1h30m", true),
        ("duration", "3 days", true),
        ("duration", "soon", false),
        ("hexcolor", "#ffaa00", true),
        ("hexcolor", "#ffaa0", false),
        ("rgbcolor", "rgb(1, 2, 3)", true),
        ("bsonobjectid", "507f1f77bcf86cd799439011", true),
        ("ssn", "123-45-6789", true),
        ("isbn", "0321751043", true),
        ("password", "anything", true),
    ];
    for (f, s, want) in cases {
        let schema = spec_schema(json!({"f": {"type": "string", "format": f}}));
        let errs = validate(&schema, &json!({"spec": {"f": s}}));
        assert_eq!(errs.is_empty(), *want, "{f} on {s:?}: {errs:?}");
    }
    // Unknown formats are not enforced.
    let schema = spec_schema(json!({"f": {"type": "string", "format": "k8s-magic"}}));
    assert!(validate(&schema, &json!({"spec": {"f": "x"}})).is_empty());
}

#[test]
fn value_rendering() {
    assert_eq!(go_float(10.0), "10");
    assert_eq!(go_float(1.5), "1.5");
    assert_eq!(go_float(1e6), "1e+06");
    assert_eq!(go_float(123456.5), "123456.5");
    assert_eq!(go_float(1234567.0), "1.234567e+06");
    assert_eq!(go_float(0.0001), "0.0001");
    assert_eq!(go_float(0.00001), "1e-05");
    assert_eq!(go_float(-2.5), "-2.5");
    assert_eq!(go_quote("a\"b\n"), r#""a\"b\n""#);
    assert_eq!(show(&json!(null)), r#""null""#);
    assert_eq!(show(&json!({"a": [1]})), r#"{"a":[1]}"#);
}

#[test]
fn prune_levels() {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "keep": {"type": "string"},
                "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "integer"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {"type": "string"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                         "properties": {"typed": {"type": "object", "properties": {"k": {"type": "string"}}}}},
                "tmpl": {"type": "object", "x-kubernetes-embedded-resource": true,
                         "properties": {"spec": {"type": "object"}}},
            }}
        }
    });
    let mut obj = json!({
        "apiVersion": "x.io/v1", "kind": "Thing",
        "metadata": {"name": "n", "bogus": 1},
        "status": {"s": 1},
        "spec": {
            "keep": "k", "drop": 1,
            "list": [{"a": 1, "b": 2}, {"c": 3}],
            "labels": {"one": {"x": "1", "y": "2"}},
            "free": {"anything": {"deep": true}, "typed": {"k": "v", "junk": 1}},
            "tmpl": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1},
                     "spec": {"gone": 1}, "extra": 1}
        }
    });
    let pruned = prune(&schema, &mut obj);
    assert_eq!(
        pruned,
        vec![
            "metadata.bogus",
            "status",
            "spec.drop",
            "spec.list[0].b",
            "spec.list[1].c",
            "spec.labels.one.y",
            "spec.free.typed.junk",
            "spec.tmpl.metadata.junk",
            "spec.tmpl.spec.gone",
            "spec.tmpl.extra",
        ]
    );
    assert_eq!(
        obj,
        json!({
            "apiVersion": "x.io/v1", "kind": "Thing",
            "metadata": {"name": "n"},
            "spec": {
                "keep": "k",
                "list": [{"a": 1}, {}],
                "labels": {"one": {"x": "1"}},
                "free": {"anything": {"deep": true}, "typed": {"k": "v"}},
                "tmpl": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
            }
        })
    );
    // Idempotent.
    assert!(prune(&schema, &mut obj).is_empty());
}

#[test]
fn prune_root_preserve_and_missing_schema() {
    let schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let mut obj =
        json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"x": 1}, "spec": {"a": 1}});
    assert_eq!(prune(&schema, &mut obj), vec!["metadata.x"]);
    assert_eq!(obj["spec"], json!({"a": 1}));

    let mut obj = json!({"apiVersion": "a/v1", "kind": "K", "spec": {"a": 1}});
    assert_eq!(prune(&json!("garbage"), &mut obj), vec!["spec"]);
    assert_eq!(obj, json!({"apiVersion": "a/v1", "kind": "K"}));
}

#[test]
fn defaults_nested_arrays_maps_and_idempotent() {
    let schema = json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "replicas": {"type": "integer", "default": 1},
            "mode": {"type": "string", "default": "fast"},
            "opt": {"type": "string", "nullable": true, "default": "d"},
            "nested": {"type": "object", "default": {}, "properties": {
                "inner": {"type": "boolean", "default": true}
            }},
            "ports": {"type": "array", "items": {"type": "object", "properties": {
                "protocol": {"type": "string", "default": "TCP"}
            }}},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "w": {"type": "integer", "default": 5}
            }}},
            "none": {"type": "string", "default": null}
        }}}
    });
    let mut obj = json!({"spec": {
        "mode": null, "opt": null,
        "ports": [{"port": 80}, {"protocol": "UDP"}],
        "map": {"a": {}, "b": {"w": 1}}
    }});
    apply_defaults(&schema, &mut obj);
    let want = json!({"spec": {
        "mode": "fast", "opt": null,
        "ports": [{"port": 80, "protocol": "TCP"}, {"protocol": "UDP"}],
        "map": {"a": {"w": 5}, "b": {"w": 1}},
        "replicas": 1,
        "nested": {"inner": true}
    }});
    assert_eq!(obj, want);
    apply_defaults(&schema, &mut obj);
    assert_eq!(obj, want);
    // No spec: nothing to default into.
    let mut empty = json!({});
    apply_defaults(&schema, &mut empty);
    assert_eq!(empty, json!({}));
}

/// Builds `{"a": {"a": ... }}` `levels` deep without recursion.
fn deep_object(levels: usize) -> Value {
    let mut v = json!({});
    for _ in 0..levels {
        let mut m = serde_json::Map::new();
        m.insert("a".into(), v);
        v = Value::Object(m);
    }
    v
}

fn dismantle(v: Value) {
    drop_deep(v);
}

#[test]
fn hostile_depth() {
    let self_similar = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let typed = json!({"type": "object", "properties": {"a": {"type": "object", "additionalProperties": {"type": "object"}}}});
    for schema in [self_similar, typed, json!({})] {
        let mut obj = deep_object(10_000);
        let errs = validate(&schema, &obj);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].message.contains("maximum nesting depth"),
            "{}",
            errs[0].message
        );
        assert!(errs[0].field.starts_with("a.a.a"));
        prune(&schema, &mut obj);
        apply_defaults(&schema, &mut obj);
        dismantle(obj);
    }
    // Arrays nested deep under no schema.
    let mut arr = json!([]);
    for _ in 0..10_000 {
        arr = Value::Array(vec![arr]);
    }
    let mut obj = json!({"spec": {"x": null}});
    obj["spec"]["x"] = arr;
    let schema = spec_schema(json!({"x": {"type": "array", "items": {"type": "array"}}}));
    assert_eq!(validate(&schema, &obj).len(), 1);
    prune(&schema, &mut obj);
    dismantle(obj);

    // A schema nested 10,000 levels deep (allOf chain) on a shallow object.
    let mut s = json!({"type": "integer"});
    for _ in 0..10_000 {
        let mut m = serde_json::Map::new();
        m.insert("allOf".into(), Value::Array(vec![s]));
        s = Value::Object(m);
    }
    let errs = validate(&s, &json!(1));
    assert!(errs
        .iter()
        .any(|e| e.message.contains("maximum nesting depth")));
    assert!(!check_structural(&s, "x").is_empty());
    dismantle(s);
}

#[test]
fn huge_arrays() {
    let n = 200_000;
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("n{i}"), "junk": 1}))
        .collect();
    let schema = spec_schema(json!({"l": {
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
        "items": {"type": "object", "properties": {"name": {"type": "string"}}}
    }}));
    let mut obj = json!({"spec": {"l": items}});
    assert_eq!(prune(&schema, &mut obj).len(), n);
    assert!(validate(&schema, &obj).is_empty());
    let set = spec_schema(
        json!({"s": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "integer"}}}),
    );
    let ints: Vec<Value> = (0..n).map(|i| json!(i)).collect();
    assert!(validate(&set, &json!({"spec": {"s": ints}})).is_empty());
}

#[test]
fn malformed_schemas_do_not_panic() {
    let schemas = [
        json!({"type": 5}),
        json!({"properties": []}),
        json!({"type": "object", "properties": {"spec": "nope"}}),
        json!({"type": "array", "items": [1, 2]}),
        json!({"type": "string", "maxLength": -1, "minLength": "x", "pattern": 7, "enum": "x"}),
        json!({"allOf": "x", "anyOf": [1], "oneOf": {}, "not": 3}),
        json!({"additionalProperties": 1, "required": [1, null]}),
        json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": "k"}),
        json!(null),
        json!([]),
    ];
    let objs = [
        json!({"spec": {"a": [1, {"b": null}]}}),
        json!(null),
        json!([1, "x"]),
        json!("s"),
    ];
    for s in &schemas {
        for o in &objs {
            let _ = validate(s, o);
            let mut p = o.clone();
            let _ = prune(s, &mut p);
            let mut d = o.clone();
            apply_defaults(s, &mut d);
        }
        let _ = check_structural(s, "spec.versions[0].schema.openAPIV3Schema");
    }
}

#[test]
fn structural_checks() {
    let p = "spec.versions[0].schema.openAPIV3Schema";
    let ok = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "port": {"x-kubernetes-int-or-string": true},
            "free": {"x-kubernetes-preserve-unknown-fields": true},
            "list": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                     "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "choice": {"type": "string", "anyOf": [{"enum": ["a"]}, {"pattern": "^b"}]}
        }}
    }});
    assert_eq!(check_structural(&ok, p), vec![]);

    let bad = json!({"properties": {
        "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
        "spec": {"type": "object", "properties": {
            "untyped": {"description": "x"},
            "arr": {"type": "array"},
            "ref": {"$ref": "#/definitions/x", "type": "string"},
            "weird": {"type": "date"},
            "uniq": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
            "both": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
            "ios": {"type": "string", "x-kubernetes-int-or-string": true},
            "emb": {"x-kubernetes-embedded-resource": true},
            "pf": {"type": "object", "x-kubernetes-preserve-unknown-fields": false},
            "lm": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}
        }}
    }});
    let got = messages(&check_structural(&bad, p));
    let want = vec![
        format!("{p}.type: Required value: must not be empty at the root"),
        format!(
            "{p}.properties[metadata].properties: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
        ),
        format!(
            "{p}.properties[spec].properties[untyped].type: Required value: must not be empty for specified object fields"
        ),
        format!("{p}.properties[spec].properties[arr].items: Required value: must be specified"),
        format!("{p}.properties[spec].properties[ref].$ref: Forbidden: $ref is not supported"),
        format!(
            r#"{p}.properties[spec].properties[weird].type: Unsupported value: "date": supported values: "array", "boolean", "integer", "number", "object", "string""#
        ),
        format!(
            "{p}.properties[spec].properties[uniq].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        ),
        format!(
            "{p}.properties[spec].properties[both].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        ),
        format!(
            r#"{p}.properties[spec].properties[ios].type: Invalid value: "string": must be empty if x-kubernetes-int-or-string is true"#
        ),
        format!(
            "{p}.properties[spec].properties[emb].type: Required value: must be object if x-kubernetes-embedded-resource is true"
        ),
        format!(
            "{p}.properties[spec].properties[pf].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"
        ),
        format!(
            "{p}.properties[spec].properties[lm].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
        ),
    ];
    assert_eq!(got, want);
}
