//! `FakeNetwork`, the in-memory twin of `Cni` for the node agent's unit tests: it hands out
//! addresses from a CIDR, remembers attachments, records every call, and can be told to fail.
//! It follows the same contract as `Cni` (the conformance suite in `tests/` runs against both);
//! it must never touch the host.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use ipnetwork::IpNetwork;

use crate::cni::config::gateway_of;
use crate::cni::error::CniError;
use crate::cni::{NetFuture, NetStatus, PodNet, PodNetwork};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    Setup(String),
    Teardown(String),
    Status(String),
}

#[derive(Debug, Default)]
struct State {
    attached: HashMap<(String, String), NetStatus>,
    used: BTreeSet<IpAddr>,
    calls: Vec<FakeCall>,
    fail_setup: Option<String>,
}

/// An in-memory pod network.
#[derive(Debug)]
pub struct FakeNetwork {
    cidr: IpNetwork,
    gateway: Option<IpAddr>,
    state: Mutex<State>,
}

impl FakeNetwork {
    /// A network handing out addresses from `pod_cidr`, its first address as gateway.
    pub fn new(pod_cidr: IpNetwork) -> Self {
        let cidr = IpNetwork::new(pod_cidr.network(), pod_cidr.prefix()).unwrap_or(pod_cidr);
        FakeNetwork {
            gateway: gateway_of(cidr),
            cidr,
            state: Mutex::new(State::default()),
        }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.lock().calls.clone()
    }

    /// The pods currently attached (by id).
    pub fn attached(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .lock()
            .attached
            .keys()
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Makes every later setup fail with a plugin error carrying `msg`, until cleared (None).
    pub fn fail_setups(&self, msg: Option<&str>) {
        self.lock().fail_setup = msg.map(str::to_string);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide the state from the others.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_free(&self, used: &BTreeSet<IpAddr>) -> Option<IpAddr> {
        // Skip the network address and the gateway; for v4 also the broadcast address.
        let candidates: Box<dyn Iterator<Item = IpAddr>> = match self.cidr {
            IpNetwork::V4(n) => {
                let size = n.size();
                Box::new((2..size.saturating_sub(1)).filter_map(move |i| n.nth(i).map(IpAddr::V4)))
            }
            IpNetwork::V6(n) => {
                let base = u128::from(n.network());
                let host_bits = 128 - u32::from(n.prefix());
                let last = if host_bits >= 128 {
                    u128::MAX
                } else {
                    (1u128 << host_bits) - 1
                };
                Box::new((2..=last.min(1 << 16)).map(move |i| IpAddr::V6((base + i).into())))
            }
        };
        candidates.into_iter().find(|ip| !used.contains(ip))
    }
}

impl PodNetwork for FakeNetwork {
    fn setup<'a>(&'a self, pod: &'a PodNet) -> NetFuture<'a, NetStatus> {
        Box::pin(async move {
            let mut st = self.lock();
            st.calls.push(FakeCall::Setup(pod.id.clone()));
            pod.validate()?;
            if let Some(msg) = &st.fail_setup {
                return Err(CniError::Plugin {
                    plugin: "fake".into(),
                    command: "ADD",
                    code: 999,
                    msg: msg.clone(),
                    details: String::new(),
                    stderr: String::new(),
                });
            }
            let key = (pod.id.clone(), pod.ifname.clone());
            if let Some(s) = st.attached.get(&key) {
                return Ok(s.clone());
            }
            let ip = self
                .next_free(&st.used)
                .ok_or_else(|| CniError::AddressesExhausted {
                    cidr: self.cidr.to_string(),
                })?;
            st.used.insert(ip);
            let status = NetStatus {
                ips: vec![ip],
                gateway: self.gateway,
                interface: pod.ifname.clone(),
            };
            st.attached.insert(key, status.clone());
            Ok(status)
        })
    }

    fn teardown<'a>(&'a self, pod: &'a PodNet) -> NetFuture<'a, ()> {
        Box::pin(async move {
            let mut st = self.lock();
            st.calls.push(FakeCall::Teardown(pod.id.clone()));
            pod.validate()?;
            if let Some(s) = st.attached.remove(&(pod.id.clone(), pod.ifname.clone())) {
                for ip in s.ips {
                    st.used.remove(&ip);
                }
            }
            Ok(())
        })
    }

    fn status<'a>(&'a self, pod: &'a PodNet) -> NetFuture<'a, Option<NetStatus>> {
        Box::pin(async move {
            let mut st = self.lock();
            st.calls.push(FakeCall::Status(pod.id.clone()));
            pod.validate()?;
            Ok(st
                .attached
                .get(&(pod.id.clone(), pod.ifname.clone()))
                .cloned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exhausts_a_small_cidr_and_reuses_freed_addresses() {
        let net = FakeNetwork::new("10.9.0.0/30".parse().unwrap());
        let a = PodNet::new("a", "/run/k1s/netns/a");
        let b = PodNet::new("b", "/run/k1s/netns/b");
        // /30: .0 network, .1 gateway, .3 broadcast: one pod address.
        assert_eq!(
            net.setup(&a).await.unwrap().ips,
            vec!["10.9.0.2".parse::<IpAddr>().unwrap()]
        );
        assert!(matches!(
            net.setup(&b).await,
            Err(CniError::AddressesExhausted { .. })
        ));
        net.teardown(&a).await.unwrap();
        assert_eq!(
            net.setup(&b).await.unwrap().ips,
            vec!["10.9.0.2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(net.attached(), vec!["b"]);
    }

    #[tokio::test]
    async fn fails_on_request_and_records_calls() {
        let net = FakeNetwork::new("10.9.0.0/24".parse().unwrap());
        let a = PodNet::new("a", "/run/k1s/netns/a");
        net.fail_setups(Some("no bridge"));
        let msg = net.setup(&a).await.unwrap_err().to_string();
        assert!(msg.contains("fake") && msg.contains("no bridge"), "{msg}");
        net.fail_setups(None);
        net.setup(&a).await.unwrap();
        net.status(&a).await.unwrap();
        assert_eq!(
            net.calls(),
            vec![
                FakeCall::Setup("a".into()),
                FakeCall::Setup("a".into()),
                FakeCall::Status("a".into())
            ]
        );
    }
}
