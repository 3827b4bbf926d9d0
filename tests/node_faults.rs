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
        n.jsonpath(
            pod,
            "{.status.containerStatuses[0].state.waiting.reason}",
        ),
        n.jsonpath(
            pod,
            "{.status.containerStatuses[0].state.waiting.message}",
        ),
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
        "10.213.0.0/16",
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
        msg.contains("no response headers from the registry within 2s (image pull progress deadline)")
            && msg.contains(&silent.addr),
        "{msg}"
    );
    n.wait("ImagePullBackOff", 60, |_| waiting(&n, "hung").0 == "ImagePullBackOff");
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
    n.wait("the partial blob to be removed", 10, |_| entries(&tmp).is_empty());
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
