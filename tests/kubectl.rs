//! End-to-end: the real kubectl against a real `k1s server` over HTTPS, for the commands a
//! user runs on object-level resources.

mod common;
use common::TestServer;
use serde_json::Value;

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.local/web:1.0
        ports:
        - containerPort: 80
        env:
        - name: MODE
          value: fast
"#;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn namespaces_discovery_and_resources() {
    let s = TestServer::start();
    let out = s.k(&["get", "namespaces"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(ns), "{out}");
    }
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.contains("Active"), "{out}");
    let res = s.k(&["api-resources"]);
    for line in [
        "deployments",
        "deploy",
        "apps/v1",
        "customresourcedefinitions",
        "crd,crds",
        "horizontalpodautoscalers",
    ] {
        assert!(res.contains(line), "missing {line}: {res}");
    }
    let namespaced = s.k(&["api-resources", "--namespaced=false", "-o", "name"]);
    assert!(
        namespaced.contains("nodes") && !namespaced.lines().any(|l| l == "pods"),
        "{namespaced}"
    );
    let v = s.k(&["version", "-o", "json"]);
    assert_eq!(json(&v)["serverVersion"]["minor"], "33");
    let explain = s.k(&["explain", "pods.spec.containers.image"]);
    assert!(
        explain.contains("FIELD: image") || explain.contains("image"),
        "{explain}"
    );
    let who = s.k(&["auth", "whoami"]);
    assert!(
        who.contains("system:admin") && who.contains("system:masters"),
        "{who}"
    );
    assert_eq!(
        s.k(&["auth", "can-i", "create", "deployments"]).trim(),
        "yes"
    );
    assert!(s.k(&["auth", "can-i", "--list"]).contains("*.*"));
    let explain = s.k(&["explain", "deployment.spec.replicas"]);
    assert!(explain.to_lowercase().contains("replicas"), "{explain}");
}

#[test]
fn create_get_formats_and_selectors() {
    let s = TestServer::start();
    s.k(&[
        "create",
        "configmap",
        "c1",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    s.k(&["create", "configmap", "c2", "--from-literal=x=y"]);
    s.k(&["label", "configmap", "c1", "tier=front"]);
    s.k(&["annotate", "configmap", "c1", "note=hello"]);
    let t = s.k(&["get", "cm"]);
    assert!(
        t.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            == ["NAME", "DATA", "AGE"],
        "{t}"
    );
    assert!(t.contains("c1") && t.contains("c2"), "{t}");
    let y = s.k(&["get", "cm", "c1", "-o", "yaml"]);
    assert!(
        y.contains("tier: front") && y.contains("note: hello") && y.contains("resourceVersion:"),
        "{y}"
    );
    let j = json(&s.k(&["get", "cm", "c1", "-o", "json", "--show-managed-fields"]));
    assert_eq!(j["data"]["a"], "1");
    assert!(j["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert!(j["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(s.k(&["get", "cm", "c1", "-o", "jsonpath={.data.b}"]), "2");
    let l = s.k(&["get", "cm", "-l", "tier=front", "-o", "name"]);
    assert_eq!(l.trim(), "configmap/c1");
    let l = s.k(&["get", "cm", "-l", "tier notin (front)", "-o", "name"]);
    assert!(
        l.contains("configmap/c2") && !l.contains("configmap/c1"),
        "{l}"
    );
    let f = s.k(&[
        "get",
        "cm",
        "--field-selector",
        "metadata.name=c2",
        "-o",
        "name",
    ]);
    assert_eq!(f.trim(), "configmap/c2");
    let (ok, _, err) = s.kubectl(&["get", "cm", "--field-selector", "spec.bogus=1"]);
    assert!(!ok && err.contains("field label not supported"), "{err}");
    for i in 0..25 {
        s.k(&[
            "create",
            "configmap",
            &format!("many-{i:02}"),
            "-n",
            "kube-public",
        ]);
    }
    let chunked = s.k(&[
        "get",
        "cm",
        "-n",
        "kube-public",
        "--chunk-size=7",
        "-o",
        "name",
    ]);
    assert_eq!(
        chunked
            .lines()
            .filter(|l| l.starts_with("configmap/many-"))
            .count(),
        25,
        "{chunked}"
    );
    let all = s.k(&["get", "cm", "-A"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    let (ok, _, err) = s.kubectl(&["create", "configmap", "c1"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = s.kubectl(&["get", "cm", "nope"]);
    assert!(
        !ok && err.contains("configmaps \"nope\" not found"),
        "{err}"
    );
    let (ok, _, err) = s.kubectl(&["get", "widgets"]);
    assert!(
        !ok && err.contains("the server doesn't have a resource type \"widgets\""),
        "{err}"
    );
}

#[test]
fn apply_diff_patch_scale_and_rollout_commands() {
    let s = TestServer::start();
    assert!(s
        .k_in(&["apply", "-f", "-"], DEPLOY)
        .contains("deployment.apps/web created"));
    assert!(s
        .k_in(&["apply", "-f", "-"], DEPLOY)
        .contains("deployment.apps/web unchanged"));
    let (ok, out, err) = s.kubectl_stdin(&["diff", "-f", "-"], Some(DEPLOY));
    assert!(ok, "diff of an unchanged object must be empty: {out} {err}");
    let changed = DEPLOY.replace("replicas: 2", "replicas: 4");
    let (ok, out, _) = s.kubectl_stdin(&["diff", "-f", "-"], Some(&changed));
    assert!(!ok && out.contains("replicas: 4"), "{out}");
    assert!(s
        .k_in(&["apply", "-f", "-"], &changed)
        .contains("configured"));
    let d = json(&s.k(&["get", "deploy", "web", "-o", "json"]));
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    let t = s.k(&["get", "deploy", "-o", "wide"]);
    let header: Vec<&str> = t.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "{t}"
    );
    assert!(
        t.contains("registry.local/web:1.0") && t.contains("app=web"),
        "{t}"
    );

    s.k(&["scale", "deploy", "web", "--replicas=3"]);
    assert_eq!(
        s.k(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    s.k(&["set", "image", "deploy/web", "web=registry.local/web:2.0"]);
    assert_eq!(
        s.k(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "registry.local/web:2.0"
    );
    s.k(&["patch", "deploy", "web", "--type=strategic", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"EXTRA","value":"1"}]}]}}}}"#]);
    let env = s.k(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[*].name}",
    ]);
    assert_eq!(env, "MODE EXTRA", "strategic merge keeps both env entries");
    s.k(&[
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"merged":"yes"}}}"#,
    ]);
    s.k(&[
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":5}]"#,
    ]);
    let d = json(&s.k(&["get", "deploy", "web", "-o", "json"]));
    assert_eq!(d["metadata"]["labels"]["merged"], "yes");
    assert_eq!(d["spec"]["replicas"], 5);
    let (ok, _, err) = s.kubectl(&[
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
    ]);
    assert!(!ok, "failed json-patch test op must fail: {err}");

    // server-side apply, twice, then a conflict with kubectl scale's ownership
    let ssa = DEPLOY.replace("name: web\n  labels", "name: api\n  labels");
    assert!(s
        .k_in(&["apply", "--server-side", "-f", "-"], &ssa)
        .contains("serverside-applied"));
    assert!(s
        .k_in(&["apply", "--server-side", "-f", "-"], &ssa)
        .contains("serverside-applied"));
    s.k(&["scale", "deploy", "api", "--replicas=7"]);
    let (ok, _, err) = s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&ssa));
    assert!(!ok && err.contains("conflict"), "{err}");
    s.k_in(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &ssa,
    );
    assert_eq!(
        s.k(&["get", "deploy", "api", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );

    // dry run changes nothing
    let dry = DEPLOY.replace("name: web\n  labels", "name: dry\n  labels");
    assert!(s
        .k_in(&["apply", "--dry-run=server", "-f", "-"], &dry)
        .contains("(server dry run)"));
    let (ok, _, _) = s.kubectl(&["get", "deploy", "dry"]);
    assert!(!ok);
    s.k(&[
        "create",
        "deployment",
        "dry2",
        "--image=x",
        "--dry-run=server",
    ]);
    assert!(!s.kubectl(&["get", "deploy", "dry2"]).0);
}

#[test]
fn replace_conflict_edit_delete() {
    let s = TestServer::start();
    s.k(&["create", "configmap", "cfg", "--from-literal=k=v1"]);
    let stale = s.k(&["get", "cm", "cfg", "-o", "yaml"]);
    s.k(&["patch", "cm", "cfg", "-p", r#"{"data":{"k":"v2"}}"#]);
    let (ok, _, err) = s.kubectl_stdin(
        &["replace", "-f", "-"],
        Some(&stale.replace("k: v1", "k: v3")),
    );
    assert!(!ok && err.contains("the object has been modified"), "{err}");
    let fresh = s.k(&["get", "cm", "cfg", "-o", "yaml"]);
    s.k_in(&["replace", "-f", "-"], &fresh.replace("k: v2", "k: v3"));
    assert_eq!(s.k(&["get", "cm", "cfg", "-o", "jsonpath={.data.k}"]), "v3");
    // The file a user wrote, with no generation or resourceVersion: an unconditional
    // replace, and the generation is the server's to count.
    s.k_in(&["create", "-f", "-"], DEPLOY);
    let out = s.k_in(
        &["replace", "-f", "-"],
        &DEPLOY.replace("web:1.0", "web:2.0"),
    );
    assert!(out.contains("deployment.apps/web replaced"), "{out}");
    let generation = s.k(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.generation}",
    ]);
    assert_eq!(generation, "2");
    s.k(&["delete", "deploy", "web"]);

    let editor = s.data_dir().join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/k: v3/k: edited/' \"$1\"\n").unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (ok, out, err) = {
        let mut c = std::process::Command::new("kubectl");
        c.args(["edit", "cm", "cfg"])
            .env("KUBECONFIG", &s.kubeconfig)
            .env("KUBE_EDITOR", &editor)
            .env("HOME", s.data_dir());
        let o = c.output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert!(ok && out.contains("edited"), "{out} {err}");
    assert_eq!(
        s.k(&["get", "cm", "cfg", "-o", "jsonpath={.data.k}"]),
        "edited"
    );

    s.k(&["delete", "cm", "cfg"]);
    assert!(!s.kubectl(&["get", "cm", "cfg"]).0);
    s.k(&["create", "ns", "scratch"]);
    s.k(&["create", "cm", "a", "-n", "scratch"]);
    s.k(&["create", "cm", "b", "-n", "scratch"]);
    s.k(&["delete", "cm", "--all", "-n", "scratch"]);
    // Only the CA bundle the root CA publisher puts back, as on any cluster.
    let left = s.k(&["get", "cm", "-n", "scratch", "-o", "name"]);
    assert!(
        left.lines().all(|l| l == "configmap/kube-root-ca.crt"),
        "{left}"
    );
    // finalizers hold an object until they are removed
    s.k(&["create", "cm", "held"]);
    s.k(&[
        "patch",
        "cm",
        "held",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    s.k(&["delete", "cm", "held", "--wait=false"]);
    let ts = s.k(&[
        "get",
        "cm",
        "held",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ]);
    assert!(!ts.is_empty());
    s.k(&[
        "patch",
        "cm",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    assert!(
        !s.kubectl(&["get", "cm", "held"]).0,
        "object goes once its finalizers are gone"
    );
    // deleting a namespace deletes what is in it, then the namespace
    s.k(&["create", "cm", "c", "-n", "scratch"]);
    s.k(&["delete", "ns", "scratch", "--timeout=30s"]);
    assert!(!s.kubectl(&["get", "ns", "scratch"]).0);
    let (ok, _, err) = s.kubectl(&["create", "cm", "x", "-n", "scratch"]);
    assert!(!ok && err.contains("not found"), "{err}");
}

#[test]
fn watch_with_kubectl() {
    let s = TestServer::start();
    let mut child = std::process::Command::new("kubectl")
        .args(["get", "cm", "-w", "--output-watch-events"])
        .env("KUBECONFIG", &s.kubeconfig)
        .env("HOME", s.data_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    s.k(&["create", "cm", "watched"]);
    s.k(&["label", "cm", "watched", "x=y"]);
    s.k(&["delete", "cm", "watched"]);
    let mut seen = vec![];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline
        && !seen.iter().any(|l: &String| l.contains("DELETED"))
    {
        if let Ok(l) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(text.contains("ADDED") && text.contains("watched"), "{text}");
    assert!(
        text.contains("MODIFIED") && text.contains("DELETED"),
        "{text}"
    );
}

#[test]
fn custom_resources() {
    let s = TestServer::start();
    let crd = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
              replicas: {type: integer}
              color: {type: string, enum: [red, blue], default: red}
          status:
            type: object
            properties:
              replicas: {type: integer}
"#;
    s.k_in(&["apply", "-f", "-"], crd);
    s.k(&[
        "wait",
        "--for",
        "condition=established",
        "crd/widgets.example.com",
        "--timeout=10s",
    ]);
    let w = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3, replicas: 1, junk: 1}\n";
    let (ok, _, err) = s.kubectl_stdin(&["apply", "-f", "-"], Some(w));
    assert!(
        !ok && err.contains("unknown field \"spec.junk\""),
        "strict validation: {err}"
    );
    s.k_in(&["apply", "--validate=false", "-f", "-"], w);
    let obj = json(&s.k(&["get", "widget", "w1", "-o", "json"]));
    assert!(obj["spec"].get("junk").is_none(), "pruned: {obj}");
    assert_eq!(obj["spec"]["color"], "red", "defaulted: {obj}");
    let t = s.k(&["get", "wd"]);
    assert!(t.contains("SIZE") && t.contains("w1"), "{t}");
    let bad = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 11}\n";
    let (ok, _, err) = s.kubectl_stdin(&["apply", "-f", "-"], Some(bad));
    assert!(
        !ok && err.contains("spec.size") && err.contains("less than or equal to 10"),
        "{err}"
    );
    s.k(&["scale", "widget", "w1", "--replicas=4"]);
    assert_eq!(
        s.k(&["get", "widget", "w1", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );
    // Applied again with a change: kubectl picks the patch type from the OpenAPI document,
    // which must not offer strategic merge for a custom kind.
    let w = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 5}\n";
    let out = s.k_in(&["apply", "-f", "-"], w);
    assert!(out.contains("widget.example.com/w1 configured"), "{out}");
    assert_eq!(
        s.k(&["get", "wd", "w1", "-o", "jsonpath={.spec.size}"]),
        "5"
    );
    let out = s.k_in(&["apply", "-f", "-"], w);
    assert!(out.contains("widget.example.com/w1 unchanged"), "{out}");
    let (ok, _, err) = s.kubectl(&[
        "patch",
        "wd",
        "w1",
        "--type=strategic",
        "-p",
        r#"{"spec":{"size":6}}"#,
    ]);
    assert!(
        !ok && err.contains("accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"),
        "{err}"
    );
    let exported = s.k(&["get", "wd", "w1", "-o", "yaml"]);
    let out = s.k_in(
        &["replace", "-f", "-"],
        &exported.replace("size: 5", "size: 7"),
    );
    assert!(out.contains("widget.example.com/w1 replaced"), "{out}");
    let out = s.k_in(&["replace", "-f", "-"], &w.replace("size: 5", "size: 8"));
    assert!(out.contains("widget.example.com/w1 replaced"), "{out}");
    assert_eq!(
        s.k(&[
            "get",
            "wd",
            "w1",
            "-o",
            "jsonpath={.spec.size} {.metadata.generation}"
        ]),
        "8 5"
    );
    s.k(&["delete", "crd", "widgets.example.com"]);
    let (ok, _, _) = s.kubectl(&["get", "widgets"]);
    assert!(!ok);
}

/// A `kind: List` file is validated by kubectl itself against the protobuf `/openapi/v2`
/// document (the server cannot check a List's fields), as `get -o yaml > f; apply -f f` needs.
#[test]
fn list_files_validated_on_the_client() {
    let s = TestServer::start();
    let list = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: l1}
  data: {a: "1"}
- apiVersion: v1
  kind: Service
  metadata: {name: l2}
  spec:
    ports: [{port: 80}]
"#;
    let out = s.k_in(&["create", "-f", "-"], list);
    assert!(
        out.contains("configmap/l1 created") && out.contains("service/l2 created"),
        "{out}"
    );
    let exported = s.k(&["get", "cm/l1", "svc/l2", "-o", "yaml"]);
    assert!(exported.contains("kind: List"), "{exported}");
    let out = s.k_in(&["apply", "-f", "-"], &exported);
    assert!(
        out.contains("configmap/l1") && out.contains("service/l2"),
        "{out}"
    );

    let bad = list.replace(
        "ports: [{port: 80}]",
        "ports: [{port: \"http\"}]\n    bogus: 1",
    );
    let (ok, _, err) = s.kubectl_stdin(&["create", "-f", "-"], Some(&bad));
    assert!(!ok, "an invalid List item was accepted");
    assert!(
        err.contains(r#"ValidationError(Service.spec): unknown field "bogus" in io.k8s.api.core.v1.ServiceSpec"#)
            && err.contains(r#"invalid type for io.k8s.api.core.v1.ServicePort.port: got "string", expected "integer""#),
        "{err}"
    );
    let (ok, _, err) = s.kubectl_stdin(
        &["create", "-f", "-", "--validate=false", "--dry-run=server"],
        Some(&list.replace("l1", "l3").replace("l2", "l4")),
    );
    assert!(ok, "{err}");
}
