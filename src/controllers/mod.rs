//! Control loops: one file per controller, each a kube-runtime reconciler over the
//! in-process `kube::Client`. They reach cluster state only through the Kubernetes API.
//! `common` and `podutil` hold what the workload controllers share; `endpointutil` and
//! `sliceplan` what the Service controllers share.

pub mod common;
pub mod defaultservices;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslicemirroring;
pub mod endpointutil;
pub mod garbagecollector;
pub mod namespace;
pub mod nodeipam;
pub mod podutil;
pub mod replicaset;
pub mod replicationcontroller;
pub mod rollout;
pub mod serviceaccount;
pub mod servicelb;
pub mod sliceplan;
