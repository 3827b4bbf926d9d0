//! Bad input at the node with real pods, driven with kubectl: a registry that hangs (the pull
//! fails on the progress deadline with a message naming it, the pod shows ErrImagePull then
//! ImagePullBackOff, and a pod deleted while its pull drags on goes promptly, leaving nothing
//! behind), and a subPath that is a symlink out of its volume (refused with
//! CreateContainerConfigError, nothing mounted).

mod common;
mod image_support;
mod node_support;

use image_support::hang::{Hang, Mode};
use image_support::registry::Registry;
use node_support::{serial, Node};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn waiting(n: &Node, pod: &str) -> (String, String) {
    (
        n.jsonpath(pod, "{.status.containerStatuses[0].state.waiting.reason}"),
        n.jsonpath(pod, "{.status.containerStatuses[0].state.waiting.message}"),
    )
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_hung_registry_fails_pulls_on_the_deadline_and_deletion_does_not_wait_for_it() {
    let _g = serial();
    let reg = Registry::start(None).expect("registry");
    reg.push("busybox", "library/busybox:latest").unwrap();
    let silent = Hang::start(reg.addr(), Mode::Silent).unwrap();
    let trickle = Hang::start(reg.addr(), Mode::TrickleBlobs).unwrap();
    let n = Node::start_with_mirrors(
        "faults-1",
        "10.223.0.0/16",
        &[("hung.test", &silent.addr), ("slow.test", &trickle.addr)],
        &["--image-pull-progress-deadline", "2s"],
    );
    let s = &n.server;
    s.k(&[
        "run",
        "hung",
        "--image=hung.test/library/busybox:latest",
        "--restart=Never",
        "--",
        "sleep",
        "100",
    ]);
    n.wait("ErrImagePull", 60, |_| {
        let (reason, _) = waiting(&n, "hung");
        reason == "ErrImagePull" || reason == "ImagePullBackOff"
    });
    let (_, msg) = waiting(&n, "hung");
    assert!(
        msg.contains(
            "no response headers from the registry within 2s (image pull progress deadline)"
        ) && msg.contains(&silent.addr),
        "{msg}"
    );
    n.wait("ImagePullBackOff", 60, |_| {
        waiting(&n, "hung").0 == "ImagePullBackOff"
    });
    assert_eq!(n.jsonpath("hung", "{.status.phase}"), "Pending");
    let events = s.k(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=hung",
    ]);
    assert!(
        events.contains("Failed to pull image \"hung.test/library/busybox:latest\"")
            && events.contains("image pull progress deadline"),
        "{events}"
    );

    // A pull that makes progress too slowly to ever end: the pod is deleted in the middle.
    s.k(&[
        "run",
        "dragging",
        "--image=slow.test/library/busybox:latest",
        "--restart=Never",
        "--",
        "sleep",
        "100",
    ]);
    let tmp = s.data_dir().join("data/agent/images-store/tmp");
    n.wait("the layer download to be under way", 60, |_| {
        !entries(&tmp).is_empty()
    });
    let uid = n.jsonpath("dragging", "{.metadata.uid}");
    let began = Instant::now();
    s.k(&["delete", "pod", "dragging", "--wait=false"]);
    n.wait("the dragging pod to be gone", 30, |s| {
        !s.kubectl(&["get", "pod", "dragging"]).0
    });
    let took = began.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "deleting a pod whose pull hangs took {took:?}"
    );
    // Nothing of it is left: no partial blob, no sandbox, no pod directory.
    n.wait("the partial blob to be removed", 10, |_| {
        entries(&tmp).is_empty()
    });
    for dir in [
        PathBuf::from("/run/k1s/netns").join(&uid),
        PathBuf::from("/run/k1s/pods").join(&uid),
        s.data_dir().join("data/agent/pods").join(&uid),
    ] {
        n.wait(&format!("{} to be removed", dir.display()), 10, |_| {
            !dir.exists()
        });
    }
    // No image was recorded: neither pull finished.
    let images = s.data_dir().join("data/agent/images-store/images");
    assert!(entries(&images).is_empty(), "{:?}", entries(&images));
}

#[test]
fn a_sub_path_symlink_out_of_its_volume_is_refused() {
    let _g = serial();
    let n = Node::start("faults-2", "10.224.0.0/16");
    let s = &n.server;
    s.k_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: sub
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: data
    emptyDir: {}
  initContainers:
  - name: plant
    image: busybox
    command: ["sh", "-c", "mkdir /data/ok && echo inside > /data/ok/file && ln -s ok /data/link && ln -s /etc /data/escape && ln -s ../../../../../../../../../../../../../../../../etc /data/up"]
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - name: good
    image: busybox
    command: ["sh", "-c", "cat /a/file /f; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    volumeMounts:
    - {name: data, mountPath: /a, subPath: link}
    - {name: data, mountPath: /f, subPath: ok/file}
  - name: evil
    image: busybox
    command: ["sh", "-c", "cat /host/hostname; sleep 100"]
    volumeMounts: [{name: data, mountPath: /host, subPath: escape}]
  - name: sneaky
    image: busybox
    command: ["sh", "-c", "cat /host/hostname; sleep 100"]
    volumeMounts: [{name: data, mountPath: /host, subPath: up/hostname}]
"#,
    );
    n.wait("the escaping containers to be refused", 60, |_| {
        let reasons = n.jsonpath("sub", "{.status.containerStatuses[*].state.waiting.reason}");
        reasons.matches("CreateContainerConfigError").count() == 2
    });
    for (i, link) in [(1, "escape"), (2, "up")] {
        let msg = n.jsonpath(
            "sub",
            &format!("{{.status.containerStatuses[{i}].state.waiting.message}}"),
        );
        assert!(
            msg.contains("failed to prepare subPath for volumeMount \"data\" of container")
                && msg.contains(&format!(
                    "resolves outside its volume (through the symlink \"{link}\")"
                )),
            "{msg}"
        );
    }
    // The container whose subPaths stay inside (a symlink within the volume, a file) runs.
    n.wait("the good container's output", 30, |s| {
        s.kubectl(&["logs", "sub", "-c", "good"]).1 == "inside\ninside\n"
    });
    let uid = n.jsonpath("sub", "{.metadata.uid}");
    let subpaths = s
        .data_dir()
        .join("data/agent/pods")
        .join(&uid)
        .join("volume-subpaths");
    // Only the good container's mounts were bound; none for the refused ones.
    assert_eq!(entries(&subpaths.join("data")), ["good"]);
    s.k(&["delete", "pod", "sub", "--wait=false"]);
    n.wait("the pod to be gone", 30, |s| {
        !s.kubectl(&["get", "pod", "sub"]).0
    });
    n.wait("the subPath mounts to be undone", 10, |_| {
        !subpaths.exists()
    });
    assert!(Path::new("/etc/hostname").exists() || Path::new("/etc/passwd").exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&uid),
        "a mount of the pod is left:\n{mounts}"
    );
}
