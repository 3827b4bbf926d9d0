//! Control loops: one file per controller, each a kube-runtime reconciler over the
//! in-process `kube::Client`. They reach cluster state only through the Kubernetes API.

pub mod namespace;
pub mod nodeipam;
