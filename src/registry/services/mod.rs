//! ClusterIP and node port allocation for Services, as upstream's service REST storage does
//! it: on create, on update (type changes take or give back values) and on delete. The
//! allocators live in memory, guarded by one lock, and are rebuilt from the stored Services
//! before the first Service write after the registry opens, so a restart never hands out
//! a value a stored Service holds. Every allocation is a transaction (`Txn`): values taken
//! for a write that then fails (conflict, dry run, validation) are given back when it is
//! dropped; values an update gives up are released only once the write is stored. This
//! module never writes to the store itself; `write.rs` calls it around its writes.

pub mod fields;
pub mod range;

use super::{codec, ApiError, ApiResult, ListOptions, Registry, ResourceInfo};
use fields::AllocError;
use ipnetwork::IpNetwork;
use range::{IpRange, PortRange, RangeError};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Where Service IPs and node ports come from (`--service-cidr`, the node port range).
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub cidr: IpNetwork,
    pub node_ports: (u16, u16),
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            cidr: "10.43.0.0/16".parse().expect("a valid default CIDR"),
            node_ports: (30000, 32767),
        }
    }
}

struct State {
    ips: IpRange,
    ports: PortRange,
}

/// The allocators of one registry.
pub struct Allocator {
    cfg: ServiceConfig,
    state: tokio::sync::OnceCell<Mutex<State>>,
}

pub(crate) fn is_service(res: &ResourceInfo) -> bool {
    res.group.is_empty() && res.kind == "Service"
}

impl Allocator {
    pub fn new(cfg: ServiceConfig) -> Arc<Allocator> {
        Arc::new(Allocator {
            cfg,
            state: tokio::sync::OnceCell::new(),
        })
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .get()
            .expect("allocator initialised before use")
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes values for one write and records what to give back.
pub struct Ops<'a> {
    st: MutexGuard<'a, State>,
    taken_ips: Vec<u128>,
    taken_ports: Vec<u128>,
    release_ips: Vec<u128>,
    release_ports: Vec<u128>,
}

impl Ops<'_> {
    pub fn family(&self) -> &'static str {
        self.st.ips.family()
    }

    pub fn take_ip(&mut self, ip: IpAddr) -> Result<(), String> {
        let Some(i) = self.st.ips.offset_of(ip) else {
            return Err(format!(
                "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                self.st.ips.cidr
            ));
        };
        if !self.st.ips.offsets.take(i) {
            return Err(RangeError::Allocated("IP").to_string());
        }
        self.taken_ips.push(i);
        Ok(())
    }

    pub fn take_next_ip(&mut self) -> Result<IpAddr, RangeError> {
        let i = self.st.ips.offsets.take_next()?;
        self.taken_ips.push(i);
        Ok(self.st.ips.ip_at(i))
    }

    pub fn take_port(&mut self, port: i64) -> Result<(), String> {
        let Some(i) = self.st.ports.offset_of(port) else {
            return Err(format!(
                "provided port is not in the valid range. The range of valid ports is {}-{}",
                self.st.ports.first, self.st.ports.last
            ));
        };
        if !self.st.ports.offsets.take(i) {
            return Err(RangeError::Allocated("port").to_string());
        }
        self.taken_ports.push(i);
        Ok(())
    }

    pub fn take_next_port(&mut self) -> Result<i64, RangeError> {
        let i = self.st.ports.offsets.take_next()?;
        self.taken_ports.push(i);
        Ok(self.st.ports.port_at(i))
    }

    pub fn release_ip_later(&mut self, ip: IpAddr) {
        if let Some(i) = self.st.ips.offset_of(ip) {
            self.release_ips.push(i);
        }
    }

    pub fn release_port_later(&mut self, port: i64) {
        if let Some(i) = self.st.ports.offset_of(port) {
            self.release_ports.push(i);
        }
    }
}

/// The values one write took and will give up. Dropped without `commit`, it gives back
/// what it took.
pub struct Txn {
    alloc: Arc<Allocator>,
    taken_ips: Vec<u128>,
    taken_ports: Vec<u128>,
    release_ips: Vec<u128>,
    release_ports: Vec<u128>,
    done: bool,
}

impl Txn {
    /// The write is stored: release what it gave up.
    pub fn commit(mut self) {
        let mut st = self.alloc.lock();
        for i in self.release_ips.drain(..) {
            st.ips.offsets.release(i);
        }
        for i in self.release_ports.drain(..) {
            st.ports.offsets.release(i);
        }
        drop(st);
        self.done = true;
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.alloc.lock();
        for i in self.taken_ips.drain(..) {
            st.ips.offsets.release(i);
        }
        for i in self.taken_ports.drain(..) {
            st.ports.offsets.release(i);
        }
    }
}

fn to_api(e: AllocError, res: &ResourceInfo, name: &str) -> ApiError {
    match e {
        AllocError::Invalid(errs) => ApiError::invalid(super::target(res, name), &errs),
        AllocError::Internal(m) => ApiError::internal(m),
    }
}

impl Registry {
    /// The allocators, rebuilt from the stored Services on first use.
    pub(super) async fn service_allocator(&self) -> ApiResult<&Arc<Allocator>> {
        let alloc = &self.services;
        alloc
            .state
            .get_or_try_init(|| async {
                let mut st = State {
                    ips: IpRange::new(alloc.cfg.cidr),
                    ports: PortRange::new(alloc.cfg.node_ports.0, alloc.cfg.node_ports.1),
                };
                let data = self.catalog.snapshot();
                if let Some(res) = data.by_kind("", "Service") {
                    let page = self.list(&res, None, &ListOptions::default()).await?;
                    for kv in &page.items {
                        let svc = codec::decode(kv)?;
                        let (ips, ports) = fields::held(&svc["spec"]);
                        for ip in ips {
                            if let Some(i) = st.ips.offset_of(ip) {
                                st.ips.offsets.take(i);
                            }
                        }
                        for p in ports {
                            if let Some(i) = st.ports.offset_of(p) {
                                st.ports.offsets.take(i);
                            }
                        }
                    }
                }
                Ok::<_, ApiError>(Mutex::new(st))
            })
            .await?;
        Ok(alloc)
    }

    /// Allocate for a Service about to be created (`old` None) or updated. None for other
    /// kinds.
    pub(super) async fn allocate_service(
        &self,
        res: &ResourceInfo,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<Option<Txn>> {
        if !is_service(res) {
            return Ok(None);
        }
        let alloc = self.service_allocator().await?.clone();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut ops = Ops {
            st: alloc.lock(),
            taken_ips: vec![],
            taken_ports: vec![],
            release_ips: vec![],
            release_ports: vec![],
        };
        if !obj["spec"].is_object() {
            obj["spec"] = serde_json::json!({});
        }
        let result = match old {
            None => fields::allocate_create(&mut obj["spec"], &mut ops),
            Some(o) => fields::allocate_update(&mut obj["spec"], &o["spec"], &mut ops),
        };
        let Ops {
            st,
            taken_ips,
            taken_ports,
            release_ips,
            release_ports,
        } = ops;
        drop(st);
        let txn = Txn {
            alloc: alloc.clone(),
            taken_ips,
            taken_ports,
            release_ips,
            release_ports,
            done: false,
        };
        // On error the dropped transaction gives back what was taken.
        result.map_err(|e| to_api(e, res, &name))?;
        Ok(Some(txn))
    }

    /// A Service left the store: give back everything it held.
    pub(super) async fn release_service(&self, res: &ResourceInfo, obj: &Value) {
        if !is_service(res) {
            return;
        }
        let Ok(alloc) = self.service_allocator().await else {
            return;
        };
        let mut st = alloc.lock();
        let (ips, ports) = fields::held(&obj["spec"]);
        for ip in ips {
            if let Some(i) = st.ips.offset_of(ip) {
                st.ips.offsets.release(i);
            }
        }
        for p in ports {
            if let Some(i) = st.ports.offset_of(p) {
                st.ports.offsets.release(i);
            }
        }
    }

    /// How many ClusterIPs and node ports are taken (for tests and diagnostics).
    pub async fn service_allocations(&self) -> ApiResult<(usize, usize)> {
        let alloc = self.service_allocator().await?;
        let st = alloc.lock();
        Ok((st.ips.offsets.used(), st.ports.offsets.used()))
    }
}
