//! End-to-end: CEL validation rules (`x-kubernetes-validations`) of a CRD, with the real kubectl
//! against a real `k1s server` over HTTPS: rules at the root, on spec and on nested fields, a
//! transition rule, messageExpression, reason and fieldPath, a rule under status, and CRDs whose
//! rules do not compile.

mod common;
use common::TestServer;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.cel.example.com
spec:
  group: cel.example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-validations:
        - rule: "self.metadata.name.startsWith('g-')"
          message: name must start with g-
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.replicas <= self.maxReplicas"
              message: replicas must not exceed maxReplicas
            - rule: "self.maxReplicas < 100"
              messageExpression: "'maxReplicas is ' + string(self.maxReplicas) + ', the limit is 99'"
            - rule: "!has(self.tier) || self.tier != 'gold' || self.replicas >= 2"
              reason: FieldValueForbidden
              fieldPath: .tier
              message: gold needs two replicas
            properties:
              replicas: {type: integer}
              maxReplicas: {type: integer}
              tier: {type: string}
              region:
                type: string
                x-kubernetes-validations:
                - rule: "self == oldSelf"
                  message: region is immutable
              memory:
                type: string
                x-kubernetes-validations:
                - rule: "isQuantity(self) && quantity(self).isLessThan(quantity('1Gi'))"
                  message: memory must be below 1Gi
              hosts:
                type: array
                items: {type: string}
                x-kubernetes-validations:
                - rule: "self.all(h, h.matches('^[a-z.]+$'))"
          status:
            type: object
            properties:
              phase:
                type: string
                x-kubernetes-validations:
                - rule: "self in ['Pending', 'Ready']"
"#;

fn gadget(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: cel.example.com/v1\nkind: Gadget\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

/// Applies `doc`, which must be refused with exactly `message` on stderr.
fn refused(s: &TestServer, doc: &str, message: &str) {
    let (ok, out, err) = s.kubectl_stdin(&["apply", "-f", "-"], Some(doc));
    assert!(!ok, "accepted: {out}");
    assert_eq!(err.trim(), message, "for {doc}");
}

fn setup() -> TestServer {
    let s = TestServer::start();
    s.k_in(&["apply", "-f", "-"], CRD);
    s.k(&[
        "wait",
        "--for",
        "condition=established",
        "crd/gadgets.cel.example.com",
        "--timeout=10s",
    ]);
    s
}

#[test]
fn rules_refuse_bad_custom_resources() {
    let s = setup();
    let good = gadget(
        "g-one",
        "{replicas: 1, maxReplicas: 3, region: eu, memory: 512Mi, hosts: [a.example]}",
    );
    s.k_in(&["apply", "-f", "-"], &good);
    refused(
        &s,
        &gadget("bad-one", "{replicas: 1, maxReplicas: 3}"),
        "The Gadget \"bad-one\" is invalid: <nil>: Invalid value: \"object\": name must start with g-",
    );
    refused(
        &s,
        &gadget("g-two", "{replicas: 5, maxReplicas: 3}"),
        "The Gadget \"g-two\" is invalid: spec: Invalid value: \"object\": replicas must not exceed maxReplicas",
    );
    refused(
        &s,
        &gadget("g-two", "{replicas: 1, maxReplicas: 200}"),
        "The Gadget \"g-two\" is invalid: spec: Invalid value: \"object\": maxReplicas is 200, the limit is 99",
    );
    refused(
        &s,
        &gadget("g-two", "{replicas: 1, maxReplicas: 3, tier: gold}"),
        "The Gadget \"g-two\" is invalid: spec.tier: Forbidden: gold needs two replicas",
    );
    refused(
        &s,
        &gadget("g-two", "{replicas: 1, maxReplicas: 3, memory: 2Gi}"),
        "The Gadget \"g-two\" is invalid: spec.memory: Invalid value: \"string\": memory must be below 1Gi",
    );
    refused(
        &s,
        &gadget("g-two", "{replicas: 1, maxReplicas: 3, hosts: [Bad_Host]}"),
        "The Gadget \"g-two\" is invalid: spec.hosts: Invalid value: \"array\": failed rule: self.all(h, h.matches('^[a-z.]+$'))",
    );
    // A missing field is an evaluation error of each rule that selects it, reported as
    // upstream reports it; kubectl lists several causes one per line.
    refused(
        &s,
        &gadget("g-two", "{replicas: 1}"),
        "The Gadget \"g-two\" is invalid: \n\
         * spec: Invalid value: \"object\": no such key: maxReplicas evaluating rule: replicas must not exceed maxReplicas\n\
         * spec: Invalid value: \"object\": no such key: maxReplicas evaluating rule: self.maxReplicas < 100",
    );
    refused(
        &s,
        &gadget("g-two", "{replicas: 1, maxReplicas: 0, tier: gold}"),
        "The Gadget \"g-two\" is invalid: \n\
         * spec: Invalid value: \"object\": replicas must not exceed maxReplicas\n\
         * spec.tier: Forbidden: gold needs two replicas",
    );
    let (ok, _, _) = s.kubectl(&["get", "gadget", "g-two"]);
    assert!(!ok, "a refused gadget was stored");

    // The transition rule: region may not change, other fields may.
    let (ok, _, err) = s.kubectl(&[
        "patch",
        "gadget",
        "g-one",
        "--type=merge",
        "-p",
        "{\"spec\":{\"region\":\"us\"}}",
    ]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "The Gadget \"g-one\" is invalid: spec.region: Invalid value: \"string\": region is immutable"
    );
    s.k(&[
        "patch",
        "gadget",
        "g-one",
        "--type=merge",
        "-p",
        "{\"spec\":{\"replicas\":2}}",
    ]);
    let (ok, _, err) = s.kubectl(&[
        "patch",
        "gadget",
        "g-one",
        "--type=merge",
        "-p",
        "{\"spec\":{\"replicas\":9}}",
    ]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "The Gadget \"g-one\" is invalid: spec: Invalid value: \"object\": replicas must not exceed maxReplicas"
    );
    assert_eq!(
        s.k(&["get", "gadget", "g-one", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );

    // Rules under status run on the status subresource.
    let (ok, _, err) = s.kubectl(&[
        "patch",
        "gadget",
        "g-one",
        "--subresource=status",
        "--type=merge",
        "-p",
        "{\"status\":{\"phase\":\"Broken\"}}",
    ]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "The Gadget \"g-one\" is invalid: status.phase: Invalid value: \"string\": failed rule: self in ['Pending', 'Ready']"
    );
    s.k(&[
        "patch",
        "gadget",
        "g-one",
        "--subresource=status",
        "--type=merge",
        "-p",
        "{\"status\":{\"phase\":\"Ready\"}}",
    ]);
    assert_eq!(
        s.k(&["get", "gadget", "g-one", "-o", "jsonpath={.status.phase}"]),
        "Ready"
    );
}

fn crd_with_rule(name: &str, rule: &str) -> String {
    format!(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {name}s.cel.example.com
spec:
  group: cel.example.com
  scope: Namespaced
  names: {{plural: {name}s, singular: {name}, kind: Thing}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "{rule}"
            properties:
              replicas: {{type: integer}}
"#
    )
}

#[test]
fn crds_with_bad_rules_are_refused() {
    let s = TestServer::start();
    let prefix = "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule";
    let (ok, _, err) = s.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&crd_with_rule("syntax", "self.replicas >")),
    );
    assert!(!ok);
    assert!(
        err.contains(&format!("The CustomResourceDefinition \"syntaxs.cel.example.com\" is invalid: {prefix}{{Rule:\"self.replicas >\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}}: compilation failed: ERROR: <input>:1:16: Syntax error: mismatched input <EOF> expecting expression")),
        "{err}"
    );
    let (ok, _, err) = s.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&crd_with_rule("unknown", "self.replicas.frobnicate() > 1")),
    );
    assert!(!ok);
    assert!(
        err.contains(prefix)
            && err.contains("compilation failed: ERROR: <input>:1:14: undeclared reference to 'frobnicate' (in container '')"),
        "{err}"
    );
    let (ok, _, err) = s.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&crd_with_rule("field", "self.replicaz > 1")),
    );
    assert!(!ok);
    assert!(err.contains("undefined field 'replicaz'"), "{err}");
    let (ok, _, _) = s.kubectl(&["get", "crd", "syntaxs.cel.example.com"]);
    assert!(!ok, "a CRD with a bad rule was stored");
    // The same CRD with a good rule is accepted.
    s.k_in(
        &["apply", "-f", "-"],
        &crd_with_rule("good", "self.replicas > 1"),
    );
}

fn ratchet_crd(rule: Option<&str>) -> String {
    let rules = rule
        .map(|r| {
            format!("\n                x-kubernetes-validations:\n                - rule: \"{r}\"")
        })
        .unwrap_or_default();
    format!(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: dials.cel.example.com
spec:
  group: cel.example.com
  scope: Namespaced
  names: {{plural: dials, singular: dial, kind: Dial}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              note: {{type: string}}
              level:
                type: integer{rules}
"#
    )
}

#[test]
fn unchanged_values_are_ratcheted_to_warnings() {
    let s = TestServer::start();
    s.k_in(&["apply", "-f", "-"], &ratchet_crd(None));
    s.k(&[
        "wait",
        "--for",
        "condition=established",
        "crd/dials.cel.example.com",
        "--timeout=10s",
    ]);
    s.k_in(
        &["apply", "-f", "-"],
        "apiVersion: cel.example.com/v1\nkind: Dial\nmetadata: {name: d}\nspec: {level: 5, note: a}\n",
    );
    // A rule added later: the stored level breaks it.
    s.k_in(&["apply", "-f", "-"], &ratchet_crd(Some("self < 3")));
    // An update that leaves the level alone is accepted, with the error as a warning.
    let (ok, _, err) = s.kubectl(&[
        "patch",
        "dial",
        "d",
        "--type=merge",
        "-p",
        "{\"spec\":{\"note\":\"b\"}}",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        err.trim(),
        "Warning: spec.level: Invalid value: \"integer\": failed rule: self < 3"
    );
    // Changing the level to another bad value is refused.
    let (ok, _, err) = s.kubectl(&[
        "patch",
        "dial",
        "d",
        "--type=merge",
        "-p",
        "{\"spec\":{\"level\":6}}",
    ]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "The Dial \"d\" is invalid: spec.level: Invalid value: \"integer\": failed rule: self < 3"
    );
}
