//! Pod sandboxes on the node, with no knowledge of the Kubernetes API (the kubelet
//! translates): `image` pulls and unpacks images and mounts root filesystems, `spec` turns a
//! container description into an OCI runtime spec, and `shim` is the per-pod process that
//! starts containers through libcontainer, plus the agent's client for it.

pub mod image;
pub mod shim;
pub mod spec;
