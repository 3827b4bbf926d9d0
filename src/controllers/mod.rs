//! Control loops: one file per controller, each a kube-runtime reconciler over the
//! in-process `kube::Client`. They reach cluster state only through the Kubernetes API.
//! `common` and `podutil` hold what the workload controllers share; `endpointutil` and
//! `sliceplan` what the Service controllers share.

pub mod clock;
pub mod clusterroleaggregation;
pub mod common;
pub mod cronjob;
pub mod daemonset;
pub mod defaultservices;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslicemirroring;
pub mod endpointutil;
pub mod garbagecollector;
pub mod history;
pub mod informers;
pub mod job;
pub mod localpath;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod podutil;
pub mod pvbinder;
pub mod pvmatch;
pub mod replicaset;
pub mod replicationcontroller;
pub mod rollout;
pub mod rootca;
pub mod satokens;
pub mod serviceaccount;
pub mod servicelb;
pub mod sliceplan;
pub mod statefulset;
pub mod tainteviction;
pub mod ttlafterfinished;
