//! The manifests directory (`<data-dir>/server/manifests`) against a real `k1s server
//! --disable-agent`, checked with kubectl: files applied with server-side apply under the
//! `k1s-deploy` manager, edits applied, objects removed from a file deleted, `.skip` files,
//! List kinds and JSON, broken files beside good ones (the error in the Addon and a Warning
//! Event), a kind applied before its CRD exists, `kubectl get addons`, `--disable
//! local-storage`, and a restart with the same data dir.

mod common;

use common::TestServer;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn wait_for(what: &str, secs: u64, f: impl FnMut() -> bool) {
    common::wait_for_every(what, secs, Duration::from_millis(50), f)
}

fn manifests(s: &TestServer) -> PathBuf {
    s.data_dir().join("data/server/manifests")
}

/// Written whole through a rename, as an editor or `cp` to the directory would.
fn write(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.new"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn get(s: &TestServer, args: &[&str]) -> Option<String> {
    let (ok, out, _) = s.kubectl(args);
    ok.then_some(out)
}

fn jsonpath(s: &TestServer, what: &[&str], path: &str) -> Option<String> {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let p = format!("jsonpath={path}");
    args.extend_from_slice(&["-o", &p]);
    get(s, &args)
}

const APP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: default
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 0
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox
";

#[test]
fn files_are_applied_edited_and_pruned() {
    let s = TestServer::start_with(&["--disable-agent"]);
    let dir = manifests(&s);
    write(&dir, "app.yaml", APP);
    wait_for("the ConfigMap and Deployment of app.yaml", 10, || {
        get(
            &s,
            &[
                "get",
                "configmap/app-config",
                "deployment/web",
                "-n",
                "default",
            ],
        )
        .is_some()
    });
    let managers = s.k(&[
        "get",
        "configmap/app-config",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager} {.metadata.managedFields[*].operation}",
    ]);
    assert_eq!(managers, "k1s-deploy Apply");
    let managers = s.k(&[
        "get",
        "deployment/web",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[0].manager}",
    ]);
    assert_eq!(managers, "k1s-deploy");

    // edit: the new value is applied
    write(
        &dir,
        "app.yaml",
        &APP.replace("greeting: hello", "greeting: bonjour"),
    );
    wait_for("the edited ConfigMap", 10, || {
        jsonpath(&s, &["configmap/app-config"], "{.data.greeting}").as_deref() == Some("bonjour")
    });

    // the Deployment removed from the file: deleted; the ConfigMap stays
    let only_config = APP.split("---").next().unwrap().to_string();
    write(&dir, "app.yaml", &only_config);
    wait_for("the Deployment to be deleted", 10, || {
        let (ok, _, err) = s.kubectl(&["get", "deployment/web"]);
        !ok && err.contains("NotFound")
    });
    assert!(get(&s, &["get", "configmap/app-config"]).is_some());
    let objects = s.k(&[
        "get",
        "addon/app",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={range .status.objects[*]}{.kind}/{.namespace}/{.name} {end}|{.status.error}|{.spec.source}",
    ]);
    let want = format!(
        "ConfigMap/default/app-config ||{}",
        dir.join("app.yaml").display()
    );
    assert_eq!(objects, want);

    // kubectl get addons lists the file and the bundled manifest
    let addons = s.k(&["get", "addons", "-n", "kube-system"]);
    assert!(addons.starts_with("NAME"), "{addons}");
    assert!(
        addons.contains("SOURCE") && addons.contains("AGE"),
        "{addons}"
    );
    for name in ["app ", "local-storage "] {
        assert!(addons.lines().any(|l| l.starts_with(name)), "{addons}");
    }
    let wide = s.k(&["get", "addons", "-n", "kube-system", "-o", "wide"]);
    assert!(wide.contains("CHECKSUM"), "{wide}");

    // a CRD and its custom resource in one file (the resource after it in the file, or not)
    write(
        &dir,
        "gadgets.yaml",
        "apiVersion: example.com/v1
kind: Gadget
metadata: {name: g1, namespace: default}
spec: {color: blue}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {color: {type: string}}}
",
    );
    wait_for("the Gadget beside its CRD", 10, || {
        jsonpath(&s, &["gadget/g1", "-n", "default"], "{.spec.color}").as_deref() == Some("blue")
    });

    // deleting the file leaves its objects (as k3s does)
    std::fs::remove_file(dir.join("app.yaml")).unwrap();
    write(
        &dir,
        "marker.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: marker, namespace: default}\n",
    );
    wait_for("the marker", 10, || {
        get(&s, &["get", "configmap/marker"]).is_some()
    });
    assert!(get(&s, &["get", "configmap/app-config"]).is_some());
}

#[test]
fn lists_json_skip_and_broken_files() {
    let s = TestServer::start_with(&["--disable-agent"]);
    let dir = manifests(&s);
    // a .skip file: the manifest beside it is left alone
    write(&dir, "x.skip", "");
    write(
        &dir,
        "x.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: skipped, namespace: default}\n",
    );
    // a List kind in YAML, a typed list and a plain object in JSON
    write(
        &dir,
        "list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: from-list-1, namespace: default}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: from-list-2}}\n",
    );
    write(
        &dir,
        "objects.json",
        r#"{"apiVersion": "v1", "kind": "ConfigMapList", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-json", "namespace": "default"}, "data": {"k": "v"}}]}
{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "from-json-ns"}}"#,
    );
    // broken files beside them: bad YAML, an invalid object, a kind nobody serves yet
    write(
        &dir,
        "bad-yaml.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n",
    );
    write(
        &dir,
        "bad-object.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine-before-bad, namespace: default}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_A_Name, namespace: default}\n",
    );
    write(
        &dir,
        "widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 3}\n",
    );
    // hostile ones: too large to read, nested beyond any parser's patience
    write(&dir, "huge.yaml", &" ".repeat(17 * 1024 * 1024));
    write(&dir, "nested.yaml", &format!("a: {}", "[".repeat(5_000)));
    wait_for("the good files' objects", 10, || {
        get(
            &s,
            &[
                "get",
                "configmap/from-list-1",
                "configmap/from-list-2",
                "configmap/from-json",
                "configmap/fine-before-bad",
                "-n",
                "default",
            ],
        )
        .is_some()
            && get(&s, &["get", "namespace/from-json-ns"]).is_some()
    });
    assert_eq!(
        jsonpath(&s, &["configmap/from-json"], "{.data.k}").as_deref(),
        Some("v")
    );
    let addon_error = |name: &str| {
        jsonpath(&s, &["addon", name, "-n", "kube-system"], "{.status.error}").unwrap_or_default()
    };
    wait_for("the errors recorded", 10, || {
        !addon_error("bad-yaml").is_empty()
            && !addon_error("bad-object").is_empty()
            && !addon_error("widget").is_empty()
    });
    let e = addon_error("bad-yaml");
    assert!(e.contains("bad-yaml.yaml") && e.contains("YAML"), "{e}");
    let e = addon_error("bad-object");
    assert!(e.contains("Not_A_Name") && e.contains("422"), "{e}");
    let e = addon_error("widget");
    assert!(e.contains("Widget"), "{e}");
    wait_for("the hostile files' errors", 10, || {
        addon_error("huge").contains("more than") && !addon_error("nested").is_empty()
    });
    assert_eq!(addon_error("list"), "");
    let events = s.k(&[
        "get",
        "events",
        "-n",
        "kube-system",
        "--field-selector",
        "involvedObject.kind=Addon,type=Warning",
        "-o",
        "jsonpath={range .items[*]}{.involvedObject.name}:{.reason}{\"\\n\"}{end}",
    ]);
    for want in [
        "bad-yaml:ParseManifestFailed",
        "bad-object:ApplyManifestFailed",
        "widget:ApplyManifestFailed",
    ] {
        assert!(events.lines().any(|l| l == want), "{want} not in {events}");
    }
    let log = s.log();
    assert!(
        log.contains("bad-object.yaml") && log.contains("Not_A_Name"),
        "the log names the file and the object"
    );

    // the kind's CRD arrives in another file: the Widget is applied on a retry
    write(
        &dir,
        "widget-crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
",
    );
    wait_for("the Widget after its CRD", 20, || {
        jsonpath(&s, &["widget/w1", "-n", "default"], "{.spec.size}").as_deref() == Some("3")
    });
    wait_for("the widget addon's error cleared", 10, || {
        addon_error("widget").is_empty()
    });

    // fixing a broken file clears its error
    write(
        &dir,
        "bad-yaml.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fixed, namespace: default}\n",
    );
    wait_for("the fixed file", 10, || {
        get(&s, &["get", "configmap/fixed"]).is_some()
    });
    wait_for("the error cleared", 10, || {
        addon_error("bad-yaml").is_empty()
    });

    // all along, the skipped file was not applied, nor recorded
    let (ok, _, err) = s.kubectl(&["get", "configmap/skipped"]);
    assert!(!ok && err.contains("NotFound"), "{err}");
    assert!(get(&s, &["get", "addon/x", "-n", "kube-system"]).is_none());
    // until the .skip file goes
    std::fs::remove_file(dir.join("x.skip")).unwrap();
    wait_for("x.yaml applied once not skipped", 10, || {
        get(&s, &["get", "configmap/skipped"]).is_some()
    });
}

#[test]
fn disable_and_restart() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config.yaml");
    std::fs::write(&config, "").unwrap();
    let cfg = config.to_str().unwrap();
    let mut s = TestServer::start_with(&["--disable-agent", "--config", cfg]);
    let dir = manifests(&s);
    let file = dir.join("local-storage.yaml");
    // the bundled class exists as soon as the server is ready, as the default class
    assert_eq!(
        jsonpath(
            &s,
            &["storageclass/local-path"],
            "{.metadata.annotations.storageclass\\.kubernetes\\.io/is-default-class} {.provisioner} {.volumeBindingMode} {.reclaimPolicy}"
        )
        .as_deref(),
        Some("true rancher.io/local-path WaitForFirstConsumer Delete")
    );
    let staged = std::fs::read_to_string(&file).unwrap();
    assert!(!staged.contains("%{"), "placeholders filled in: {staged}");
    assert!(staged.contains(&s.data_dir().join("data/storage").display().to_string()));
    write(&dir, "app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: default}\ndata: {a: b}\n");
    wait_for("app.yaml applied", 10, || {
        get(&s, &["get", "configmap/app"]).is_some()
    });
    let addons_before = s.k(&["get", "addons", "-n", "kube-system", "-o", "name"]);
    let uid_before = jsonpath(&s, &["configmap/app"], "{.metadata.uid}").unwrap();

    // restart with the same data dir: nothing duplicated, no errors
    s.stop();
    s.spawn();
    assert_eq!(s.log().matches("manifests directory staged").count(), 2);
    // the first pass over the user's files runs just after readiness
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        s.k(&["get", "addons", "-n", "kube-system", "-o", "name"]),
        addons_before
    );
    assert_eq!(
        jsonpath(&s, &["configmap/app"], "{.metadata.uid}").unwrap(),
        uid_before
    );
    assert_eq!(
        s.k(&["get", "storageclass", "-o", "name"]).trim(),
        "storageclass.storage.k8s.io/local-path"
    );
    assert!(!s.log().contains("manifest not applied"), "{}", s.log());

    // --disable local-storage (from the config file, with another name that has no file):
    // the file, its class and its Addon go; other files stay
    s.stop();
    std::fs::write(
        &config,
        "disable: [local-storage, servicelb, no-such-thing]\n",
    )
    .unwrap();
    s.spawn();
    assert!(!file.exists(), "the disabled manifest is removed");
    let (ok, _, err) = s.kubectl(&["get", "storageclass/local-path"]);
    assert!(!ok && err.contains("NotFound"), "{err}");
    assert!(get(&s, &["get", "addon/local-storage", "-n", "kube-system"]).is_none());
    assert!(get(&s, &["get", "configmap/app"]).is_some());
    // and it is not staged again on the next start
    s.stop();
    s.spawn();
    assert!(!file.exists());
    assert!(get(&s, &["get", "storageclass/local-path"]).is_none());
}

#[test]
fn a_server_started_with_disable_has_no_class() {
    let s = TestServer::start_with(&["--disable-agent", "--disable", "local-storage,servicelb"]);
    assert!(!manifests(&s).join("local-storage.yaml").exists());
    assert_eq!(s.k(&["get", "storageclass", "-o", "name"]).trim(), "");
    assert!(manifests(&s).is_dir());
}
