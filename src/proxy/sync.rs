//! The proxy's loop: reflectors over Services and EndpointSlices feed a set of changed
//! Services; after a short coalescing pause the changed ones are re-rendered and one
//! transaction is applied. Nothing is written before both initial lists are in, so a restart
//! never programs a partial view. A failed transaction makes the next one a full rebuild,
//! retried with back-off. Conntrack flushing and the loopback relay follow each successful
//! transaction. It reads the cluster only through its reflectors.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use tokio_util::sync::CancellationToken;

use super::conntrack::{stale_flows, ConntrackFilter};
use super::kernel::Kernel;
use super::model::{self, ServiceKey, SERVICE_NAME_LABEL};
use super::plan::{Change, Plan};
use super::relay::{self, Relay};
use super::render;
use super::ProxyConfig;

/// How long changes are gathered before a transaction: long enough to batch an update that
/// touches several slices, short against the 100 ms budget.
const COALESCE: Duration = Duration::from_millis(5);
const RETRY_MIN: Duration = Duration::from_millis(500);
/// How often the table is checked for removal by another program (`nft flush ruleset`, as a
/// firewall reload does): one listing of a small chain.
const CANARY_EVERY: Duration = Duration::from_secs(10);
/// How often the whole table is rebuilt regardless, which repairs any edit made to it.
const FULL_RESYNC_EVERY: Duration = Duration::from_secs(3600);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What a watch event means to the proxy (the objects themselves are in the stores).
enum Ev {
    /// This Service, or one of its slices, changed.
    Touched(ServiceKey),
    ServicesListed,
    SlicesListed,
    Nothing,
}

fn from_service(ev: watcher::Event<Service>) -> Ev {
    match ev {
        watcher::Event::Apply(s) | watcher::Event::Delete(s) => {
            svc_key(&s).map_or(Ev::Nothing, Ev::Touched)
        }
        watcher::Event::InitDone => Ev::ServicesListed,
        _ => Ev::Nothing,
    }
}

fn from_slice(ev: watcher::Event<EndpointSlice>) -> Ev {
    match ev {
        watcher::Event::Apply(s) | watcher::Event::Delete(s) => {
            slice_service(&s).map_or(Ev::Nothing, Ev::Touched)
        }
        watcher::Event::InitDone => Ev::SlicesListed,
        _ => Ev::Nothing,
    }
}

struct State {
    dirty: HashSet<ServiceKey>,
    all_dirty: bool,
    services_listed: bool,
    slices_listed: bool,
}

fn slice_service(s: &EndpointSlice) -> Option<ServiceKey> {
    let ns = s.metadata.namespace.as_deref()?;
    let name = s.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some(ServiceKey::new(ns, name))
}

fn svc_key(s: &Service) -> Option<ServiceKey> {
    Some(ServiceKey::new(
        s.metadata.namespace.as_deref()?,
        s.metadata.name.as_deref()?,
    ))
}

impl State {
    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Touched(key) => {
                self.dirty.insert(key);
            }
            // A (re)list: everything is compared once it is complete.
            Ev::ServicesListed => {
                self.services_listed = true;
                self.all_dirty = true;
            }
            Ev::SlicesListed => {
                self.slices_listed = true;
                self.all_dirty = true;
            }
            Ev::Nothing => {}
        }
    }

    fn ready(&self) -> bool {
        self.services_listed && self.slices_listed
    }

    fn pending(&self) -> bool {
        self.all_dirty || !self.dirty.is_empty()
    }
}

/// Re-renders the changed Services into `plan`.
fn collect(
    state: &mut State,
    plan: &mut Plan,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
    cfg: &ProxyConfig,
) -> Vec<Change> {
    let keys: HashSet<ServiceKey> = if std::mem::take(&mut state.all_dirty) {
        state.dirty.clear();
        services
            .state()
            .iter()
            .filter_map(|s| svc_key(s))
            .chain(plan.keys().cloned())
            .collect()
    } else {
        std::mem::take(&mut state.dirty)
    };
    let all_slices = slices.state();
    let mut by_service: HashMap<&ServiceKey, Vec<&EndpointSlice>> = HashMap::new();
    for s in &all_slices {
        if let Some(k) = slice_service(s) {
            if let Some(key) = keys.get(&k) {
                by_service.entry(key).or_default().push(s);
            }
        }
    }
    let render = cfg.render();
    let mut changes = Vec::new();
    for key in &keys {
        let svc = services.get(&ObjectRef::new(&key.name).within(&key.namespace));
        let refs = by_service.get(key).map(Vec::as_slice).unwrap_or(&[]);
        let input = svc.and_then(|s| model::service_input(&s, refs, &cfg.node_name));
        changes.extend(plan.update(key, input, &render));
    }
    changes
}

/// Programs Service rules through `kernel` until `cancel`. `run` is this with the real one.
pub async fn run_with_kernel(
    client: Client,
    config: ProxyConfig,
    kernel: Arc<dyn Kernel>,
    cancel: CancellationToken,
) {
    ensure_bridge_netfilter();
    let (services, svc_writer) = reflector::store::<Service>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let svc_events = reflector::reflector(
        svc_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .map(|r| r.map(from_service))
    .boxed();
    let slice_events = reflector::reflector(
        slice_writer,
        watcher(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default().labels(SERVICE_NAME_LABEL),
        ),
    )
    .default_backoff()
    .map(|r| r.map(from_slice))
    .boxed();
    let mut events = futures::stream::select(svc_events, slice_events);

    let mut state = State {
        dirty: HashSet::new(),
        all_dirty: false,
        services_listed: false,
        slices_listed: false,
    };
    let mut plan = Plan::new();
    let mut relay = Relay::new(cancel.child_token());
    let mut flushes: BTreeSet<ConntrackFilter> = BTreeSet::new();
    let mut retry: Option<(Instant, Duration)> = None;
    let mut stale_due: Option<Instant> = None;
    let mut relay_dirty = true;
    let render = config.render();
    let mut canary_due = Instant::now() + CANARY_EVERY;
    let mut full_due = Instant::now() + FULL_RESYNC_EVERY;

    loop {
        let wake = [
            retry.map(|r| r.0),
            stale_due,
            Some(canary_due),
            Some(full_due),
        ]
        .into_iter()
        .flatten()
        .min();
        let timer = async {
            match wake {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            ev = events.next() => match ev {
                Some(Ok(ev)) => {
                    state.handle(ev);
                    // Gather what arrives with it.
                    let until = tokio::time::Instant::now() + COALESCE;
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep_until(until) => break,
                            more = events.next() => match more {
                                Some(Ok(ev)) => state.handle(ev),
                                Some(Err(e)) => tracing::debug!(error = %e, "watching services"),
                                None => break,
                            },
                        }
                    }
                    while let Some(Some(Ok(ev))) = events.next().now_or_never() {
                        state.handle(ev);
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "watching services and endpoint slices");
                    continue;
                }
                None => break,
            },
            _ = timer => {}
        }
        if !state.ready() {
            continue;
        }
        let now = Instant::now();
        if now >= full_due {
            full_due = now + FULL_RESYNC_EVERY;
            tracing::debug!("periodic rebuild of the service rules");
            plan.invalidate();
        }
        if now >= canary_due {
            canary_due = now + CANARY_EVERY;
            if !plan.rebuild_pending() {
                match kernel.list_chain(&render.table, render::CANARY_CHAIN).await {
                    Ok(listing) if render::canary_intact(listing.as_deref()) => {}
                    Ok(_) => {
                        tracing::warn!(table = %render.table, "the service rules were removed or flushed by another program; rebuilding them");
                        plan.invalidate();
                        relay_dirty = true;
                    }
                    Err(e) => tracing::debug!(error = %e, "checking the service rules"),
                }
            }
        }
        if let Some((at, _)) = retry {
            if Instant::now() < at {
                continue;
            }
        }
        let started = Instant::now();
        let changes = if state.pending() {
            collect(&mut state, &mut plan, &services, &slices, &config)
        } else {
            Vec::new()
        };
        for c in &changes {
            flushes.extend(stale_flows(c.old.as_ref(), c.new.as_ref()));
        }
        stale_due = plan.collect_stale(Instant::now());
        let Some(script) = plan.take_transaction(&render) else {
            continue;
        };
        match kernel.apply(&script).await {
            Ok(()) => {
                retry = None;
                tracing::debug!(
                    services = plan.service_count(),
                    changed = changes.len(),
                    bytes = script.len(),
                    elapsed = ?started.elapsed(),
                    "service rules synced"
                );
            }
            Err(e) => {
                let backoff = retry.map_or(RETRY_MIN, |(_, b)| (b * 2).min(RETRY_MAX));
                tracing::warn!(error = %e, retry_in = ?backoff, "programming service rules failed; rebuilding the table");
                plan.invalidate();
                retry = Some((Instant::now() + backoff, backoff));
                continue;
            }
        }
        for f in std::mem::take(&mut flushes) {
            if let Err(e) = kernel.flush_conntrack(&f).await {
                tracing::warn!(error = %e, filter = ?f.args(), "deleting stale conntrack entries");
            }
        }
        relay_dirty |= changes
            .iter()
            .any(|c| has_node_port(c.old.as_ref()) || has_node_port(c.new.as_ref()));
        if relay_dirty {
            let range = config.node_port_range.clone();
            let mut targets = relay::targets(plan.inputs());
            targets.retain(|(_, port), _| range.contains(port));
            // A port that could not be bound is tried again at the next sync.
            relay_dirty = !relay.update(targets);
        }
    }
}

fn has_node_port(input: Option<&model::ServiceInput>) -> bool {
    input.is_some_and(|i| i.ports.iter().any(|p| p.node_port.is_some()))
}

/// Pod-to-Service traffic whose endpoint sits on the same bridge is answered at layer 2, past
/// the un-DNAT, unless bridged IPv4 traffic goes through netfilter; k3s sets the same switch.
fn ensure_bridge_netfilter() {
    let path = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    match std::fs::read_to_string(path) {
        Ok(v) if v.trim() == "1" => {}
        Ok(_) => {
            if let Err(e) = std::fs::write(path, "1") {
                tracing::warn!(error = %e, "cannot enable {path}; pods may not reach Services served on their own node");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "br_netfilter is not loaded; pods may not reach Services served on their own node")
        }
    }
}
