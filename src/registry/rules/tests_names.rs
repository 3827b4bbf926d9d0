//! Name syntax, quantity parsing and error rendering (cron parsing is tested in `crate::cron`).

use super::*;

#[test]
fn dns1123_subdomain_messages() {
    assert!(is_dns1123_subdomain("example.com").is_empty());
    assert_eq!(
        is_dns1123_subdomain("Foo_"),
        vec!["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()]
    );
    assert_eq!(
        is_dns1123_subdomain(&"a".repeat(254))[0],
        "must be no more than 253 characters"
    );
}

#[test]
fn dns1123_label_messages() {
    assert!(is_dns1123_label("my-name").is_empty());
    assert_eq!(
        is_dns1123_label("a.b"),
        vec!["must not contain dots".to_string()]
    );
    assert_eq!(
        is_dns1123_label("-x")[0],
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    );
}

#[test]
fn dns1035_label_messages() {
    assert!(is_dns1035_label("svc-1").is_empty());
    assert_eq!(
        is_dns1035_label("1svc")[0],
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    );
}

#[test]
fn qualified_names() {
    assert!(is_qualified_name("app").is_empty());
    assert!(is_qualified_name("example.com/My_Name.1").is_empty());
    assert_eq!(
        is_qualified_name("/x"),
        vec!["prefix part must be non-empty".to_string()]
    );
    assert_eq!(is_qualified_name("a/")[0], "name part must be non-empty");
    assert!(is_qualified_name("a/b/c")[0].starts_with("a qualified name must consist of"));
    assert_eq!(
        is_qualified_name("-bad")[0],
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    );
}

#[test]
fn label_values() {
    assert!(is_valid_label_value("").is_empty());
    assert!(is_valid_label_value("v1.2_3-a").is_empty());
    assert_eq!(
        is_valid_label_value(&"a".repeat(64))[0],
        "must be no more than 63 characters"
    );
    assert!(
        is_valid_label_value("bad value")[0].starts_with("a valid label must be an empty string")
    );
}

#[test]
fn generate_name_prefix_allows_trailing_dash() {
    assert!(names::NameRule::Subdomain.check("web-", true).is_empty());
    assert!(!names::NameRule::Subdomain.check("web-", false).is_empty());
    assert_eq!(
        names::NameRule::PathSegment.check("..", false),
        vec!["may not be '..'".to_string()]
    );
    assert_eq!(names::NameRule::PathSegment.check("a/b%", false).len(), 2);
}

#[test]
fn quantities_parse_and_compare() {
    let q = |s: &str| Quantity::parse(s).unwrap();
    assert_eq!(q("1000m"), q("1"));
    assert_eq!(q("1Ki"), q("1024"));
    assert_eq!(q("1e3"), q("1k"));
    assert_eq!(q("0.5"), q("500m"));
    assert!(q("1Gi") > q("1G"));
    assert!(q("100m") < q("0.2"));
    assert!(q("-1").is_negative());
    assert!(q("0").is_zero());
    assert!(q("1.5Gi") > q("1Gi"));
    for bad in ["", "abc", "1.2.3", "1Xi", "1e", "--1", "."] {
        assert_eq!(
            Quantity::parse(bad).unwrap_err(),
            quantity::FORMAT_ERROR,
            "{bad}"
        );
    }
    assert!(q("123456789012345678901234567890123456789012345Ei") > q("1"));
}

#[test]
fn error_rendering() {
    let e = json::invalid_str("metadata.name", "Foo_", "bad");
    assert_eq!(e.message(), "metadata.name: Invalid value: \"Foo_\": bad");
    assert_eq!(e.reason(), "FieldValueInvalid");
    let e = json::required("spec.containers[0].image", "");
    assert_eq!(e.message(), "spec.containers[0].image: Required value");
    let e = json::not_supported(
        "spec.restartPolicy",
        "Sometimes",
        &["Always", "OnFailure", "Never"],
    );
    assert_eq!(
        e.message(),
        "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
    );
    assert_eq!(
        json::forbidden("spec", "nope").message(),
        "spec: Forbidden: nope"
    );
    assert_eq!(
        json::too_long("metadata.annotations", 262144).message(),
        "metadata.annotations: Too long: may not be more than 262144 bytes"
    );
    assert_eq!(
        json::too_many("x", 5, 3).message(),
        "x: Too many: 5: must have at most 3 items"
    );
    assert_eq!(
        json::duplicate_str("a", "b").message(),
        "a: Duplicate value: \"b\""
    );
    assert_eq!(
        json::not_found_str("a", "b").message(),
        "a: Not found: \"b\""
    );
    assert_eq!(render::go_quote("a\"b\\\n"), "\"a\\\"b\\\\\\n\"");
    assert_eq!(
        render::go_string_map(Some(&serde_json::json!({"b": "2", "a": "1"}))),
        "map[string]string{\"a\":\"1\", \"b\":\"2\"}"
    );
}
