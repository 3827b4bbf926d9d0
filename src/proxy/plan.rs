//! What k1s's table should hold and how to get there: the rendered rules of every Service,
//! which Service owns each map element, and the chains left over from removed ones. From it,
//! `Plan` writes either a full transaction (delete and recreate the table, used at start and
//! after any failure) or an incremental one that touches only the chains, sets and elements
//! of the Services that changed. Pure: it never runs nft and never reads the kernel; the
//! caller applies the text and reports whether it worked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::model::{ServiceInput, ServiceKey};
use super::render::{self, ElementKey, RenderConfig, ServiceRules, FAMILY};

/// How long a chain no longer used stays (flushed) before it is deleted. Kernels before 6.2
/// notice a removed map element's reference to a chain only a little later, so deleting the
/// chain in the same transaction can fail there (upstream waits the same way).
pub const STALE_CHAIN_DELAY: Duration = Duration::from_secs(1);

/// The desired content of the table, and what is known of the kernel's.
#[derive(Default)]
pub struct Plan {
    inputs: HashMap<ServiceKey, ServiceInput>,
    rules: HashMap<ServiceKey, ServiceRules>,
    /// Every element claimed by some Service, with its claims; the first claim wins (two
    /// Services may name the same external IP and port).
    owners: BTreeMap<ElementKey, BTreeMap<ServiceKey, String>>,
    /// Flushed chains waiting to be deleted.
    stale: BTreeMap<String, Instant>,
    /// The kernel may not match: the next transaction rebuilds the table.
    needs_full: bool,
    tx: Tx,
}

/// The parts of one transaction, written in an order the kernel accepts: chains exist before
/// anything jumps to them, references are removed before what they reference.
#[derive(Default)]
struct Tx {
    add_chains: BTreeSet<String>,
    flush_chains: BTreeSet<String>,
    del_elements: BTreeMap<&'static str, Vec<String>>,
    del_sets: BTreeSet<String>,
    add_sets: BTreeMap<String, u32>,
    rules: Vec<(String, String)>,
    add_elements: BTreeMap<&'static str, Vec<String>>,
    del_chains: BTreeSet<String>,
}

impl Tx {
    fn is_empty(&self) -> bool {
        self.add_chains.is_empty()
            && self.flush_chains.is_empty()
            && self.del_elements.is_empty()
            && self.del_sets.is_empty()
            && self.add_sets.is_empty()
            && self.rules.is_empty()
            && self.add_elements.is_empty()
            && self.del_chains.is_empty()
    }

    fn write(&self, out: &mut String, table: &str) {
        let t = format!("{FAMILY} {table}");
        for c in &self.add_chains {
            let _ = writeln!(out, "add chain {t} {c}");
        }
        for c in &self.flush_chains {
            let _ = writeln!(out, "flush chain {t} {c}");
        }
        for (map, keys) in &self.del_elements {
            for chunk in keys.chunks(1000) {
                let _ = writeln!(out, "delete element {t} {map} {{ {} }}", chunk.join(", "));
            }
        }
        for s in &self.del_sets {
            let _ = writeln!(out, "delete set {t} {s}");
        }
        for (s, timeout) in &self.add_sets {
            let _ = writeln!(
                out,
                "add set {t} {s} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
            );
        }
        for (chain, rule) in &self.rules {
            let _ = writeln!(out, "add rule {t} {chain} {rule}");
        }
        for (map, elems) in &self.add_elements {
            for chunk in elems.chunks(1000) {
                let _ = writeln!(out, "add element {t} {map} {{ {} }}", chunk.join(", "));
            }
        }
        for c in &self.del_chains {
            let _ = writeln!(out, "delete chain {t} {c}");
        }
    }
}

fn element_text(key: &ElementKey, value: &str) -> String {
    if value.is_empty() {
        key.key.clone()
    } else {
        format!("{} : {}", key.key, value)
    }
}

/// What changed for one Service, for the caller's follow-up work (conntrack, relay).
#[derive(Debug)]
pub struct Change {
    pub key: ServiceKey,
    pub old: Option<ServiceInput>,
    pub new: Option<ServiceInput>,
}

impl Plan {
    pub fn new() -> Self {
        Plan {
            needs_full: true,
            ..Default::default()
        }
    }

    pub fn inputs(&self) -> impl Iterator<Item = &ServiceInput> {
        self.inputs.values()
    }

    pub fn keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.inputs.keys()
    }

    pub fn service_count(&self) -> usize {
        self.inputs.len()
    }

    /// The kernel's table can no longer be trusted (a transaction failed): rebuild it next.
    pub fn invalidate(&mut self) {
        self.needs_full = true;
    }

    /// Whether the next transaction rebuilds the whole table.
    pub fn rebuild_pending(&self) -> bool {
        self.needs_full
    }

    /// Records the Service's new state. Returns the change when it differs from the last.
    pub fn update(
        &mut self,
        key: &ServiceKey,
        input: Option<ServiceInput>,
        cfg: &RenderConfig,
    ) -> Option<Change> {
        if self.inputs.get(key) == input.as_ref() {
            return None;
        }
        let new_rules = input.as_ref().map(|i| render::service(i, cfg));
        let old_rules = self.rules.remove(key).unwrap_or_default();
        let empty = ServiceRules::default();
        let new_ref = new_rules.as_ref().unwrap_or(&empty);
        self.diff_service(key, &old_rules, new_ref);
        if let Some(r) = new_rules {
            self.rules.insert(key.clone(), r);
        }
        let old = match &input {
            Some(i) => self.inputs.insert(key.clone(), i.clone()),
            None => self.inputs.remove(key),
        };
        Some(Change {
            key: key.clone(),
            old,
            new: input,
        })
    }

    fn diff_service(&mut self, key: &ServiceKey, old: &ServiceRules, new: &ServiceRules) {
        let tx = &mut self.tx;
        // A set cannot be replaced while a rule references it, so any set change rewrites
        // every chain of the Service.
        let sets_changed = old.sets != new.sets;
        for (name, rules) in &new.chains {
            let existed = old.chains.get(name);
            // A chain waiting for deletion still exists (flushed): reuse it.
            let was_stale = self.stale.remove(name).is_some() | tx.del_chains.remove(name);
            if existed == Some(rules) && !sets_changed {
                continue;
            }
            if existed.is_none() && !was_stale {
                tx.add_chains.insert(name.clone());
            } else {
                tx.flush_chains.insert(name.clone());
            }
            tx.rules
                .extend(rules.iter().map(|r| (name.clone(), r.clone())));
        }
        for (name, rules) in &old.chains {
            if new.chains.contains_key(name) {
                continue;
            }
            if !rules.is_empty() {
                tx.flush_chains.insert(name.clone());
            }
            self.stale.insert(name.clone(), Instant::now());
        }
        for (name, timeout) in &old.sets {
            if new.sets.get(name) != Some(timeout) {
                tx.del_sets.insert(name.clone());
            }
        }
        for (name, timeout) in &new.sets {
            if old.sets.get(name) != Some(timeout) {
                tx.add_sets.insert(name.clone(), *timeout);
            }
        }

        let mut touched: BTreeSet<&ElementKey> = BTreeSet::new();
        for (k, v) in &old.elements {
            if new.elements.get(k) != Some(v) {
                touched.insert(k);
            }
        }
        for (k, v) in &new.elements {
            if old.elements.get(k) != Some(v) {
                touched.insert(k);
            }
        }
        for k in touched {
            let before = self.owners.get(k).and_then(winner);
            let claims = self.owners.entry(k.clone()).or_default();
            claims.remove(key);
            if let Some(v) = new.elements.get(k) {
                claims.insert(key.clone(), v.clone());
            }
            let after = winner(claims);
            if claims.is_empty() {
                self.owners.remove(k);
            }
            if before == after {
                continue;
            }
            if before.is_some() {
                tx.del_elements
                    .entry(k.map)
                    .or_default()
                    .push(k.key.clone());
            }
            if let Some(v) = after {
                tx.add_elements
                    .entry(k.map)
                    .or_default()
                    .push(element_text(k, &v));
            }
        }
    }

    /// Moves chains flushed at least `STALE_CHAIN_DELAY` ago into the next transaction's
    /// deletions. Returns when the next one will be due, if any remain.
    pub fn collect_stale(&mut self, now: Instant) -> Option<Instant> {
        let due: Vec<String> = self
            .stale
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= STALE_CHAIN_DELAY)
            .map(|(c, _)| c.clone())
            .collect();
        for c in due {
            self.stale.remove(&c);
            self.tx.del_chains.insert(c);
        }
        self.stale.values().min().map(|t| *t + STALE_CHAIN_DELAY)
    }

    /// The transaction that brings the kernel to the desired state, or None when nothing is
    /// pending. Consumes the pending changes.
    pub fn take_transaction(&mut self, cfg: &RenderConfig) -> Option<String> {
        if self.needs_full {
            self.needs_full = false;
            self.tx = Tx::default();
            self.stale.clear();
            return Some(self.full(cfg));
        }
        if self.tx.is_empty() {
            return None;
        }
        let tx = std::mem::take(&mut self.tx);
        let mut out = String::new();
        tx.write(&mut out, &cfg.table);
        Some(out)
    }

    /// Deletes and recreates the table with everything in it, in one transaction.
    fn full(&self, cfg: &RenderConfig) -> String {
        let t = format!("{FAMILY} {}", cfg.table);
        let mut out = format!("add table {t}\ndelete table {t}\n");
        out.push_str(&render::skeleton(cfg));
        let mut tx = Tx::default();
        for rules in self.rules.values() {
            for (name, chain_rules) in &rules.chains {
                tx.add_chains.insert(name.clone());
                tx.rules
                    .extend(chain_rules.iter().map(|r| (name.clone(), r.clone())));
            }
            tx.add_sets
                .extend(rules.sets.iter().map(|(s, t)| (s.clone(), *t)));
        }
        for (k, claims) in &self.owners {
            if let Some(v) = winner(claims) {
                tx.add_elements
                    .entry(k.map)
                    .or_default()
                    .push(element_text(k, &v));
            }
        }
        tx.write(&mut out, &cfg.table);
        out
    }
}

fn winner(claims: &BTreeMap<ServiceKey, String>) -> Option<String> {
    claims.values().next().cloned()
}

#[cfg(test)]
mod tests {
    use super::super::model::{Endpoint, Protocol, ServicePort};
    use super::*;
    use std::net::Ipv4Addr;

    fn cfg() -> RenderConfig {
        RenderConfig {
            table: "k1s".into(),
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            service_cidr: "10.43.0.0/16".parse().unwrap(),
        }
    }

    fn input(name: &str, ip: u8, eps: &[u8], external: Option<Ipv4Addr>) -> ServiceInput {
        ServiceInput {
            key: ServiceKey::new("default", name),
            ports: vec![ServicePort {
                name: String::new(),
                protocol: Protocol::Tcp,
                port: 80,
                cluster_ip: Ipv4Addr::new(10, 43, 0, ip),
                node_port: None,
                external_ips: external.into_iter().collect(),
                lb_ips: vec![],
                affinity: None,
                external_local: false,
                internal_local: false,
                endpoints: eps
                    .iter()
                    .map(|l| Endpoint {
                        ip: Ipv4Addr::new(10, 42, 0, *l),
                        port: 80,
                        ready: true,
                        serving: true,
                        terminating: false,
                        local: false,
                    })
                    .collect(),
            }],
        }
    }

    fn set(plan: &mut Plan, i: ServiceInput) -> Option<Change> {
        let key = i.key.clone();
        plan.update(&key, Some(i), &cfg())
    }

    #[test]
    fn the_first_transaction_recreates_the_table() {
        let mut p = Plan::new();
        set(&mut p, input("a", 1, &[1], None));
        let tx = p.take_transaction(&cfg()).unwrap();
        assert!(tx.starts_with("add table ip k1s\ndelete table ip k1s\n"));
        assert!(tx.contains("add chain ip k1s service-default/a/tcp/"));
        assert!(tx.contains(
            "add element ip k1s service-ips { 10.43.0.1 . tcp . 80 : goto service-default/a/tcp/ }"
        ));
        assert!(p.take_transaction(&cfg()).is_none(), "nothing pending");
    }

    #[test]
    fn an_endpoint_change_touches_only_that_service() {
        let mut p = Plan::new();
        set(&mut p, input("a", 1, &[1], None));
        set(&mut p, input("b", 2, &[2], None));
        p.take_transaction(&cfg()).unwrap();
        assert!(
            set(&mut p, input("a", 1, &[1], None)).is_none(),
            "unchanged"
        );
        set(&mut p, input("a", 1, &[1, 3], None)).unwrap();
        let tx = p.take_transaction(&cfg()).unwrap();
        assert!(!tx.contains("default/b/"), "{tx}");
        assert!(!tx.contains("delete table"));
        assert!(tx.contains("add chain ip k1s endpoint-default/a/tcp/__10.42.0.3/80\n"));
        assert!(tx.contains("flush chain ip k1s service-default/a/tcp/\n"));
        assert!(tx.contains("numgen random mod 2"));
        // Unchanged endpoint chain and map element are left alone.
        assert!(
            !tx.contains("endpoint-default/a/tcp/__10.42.0.1/80\n"),
            "{tx}"
        );
        assert!(!tx.contains("element"), "{tx}");
    }

    #[test]
    fn removed_endpoints_are_flushed_then_deleted_later() {
        let mut p = Plan::new();
        set(&mut p, input("a", 1, &[1, 2], None));
        p.take_transaction(&cfg()).unwrap();
        set(&mut p, input("a", 1, &[1], None));
        let tx = p.take_transaction(&cfg()).unwrap();
        assert!(tx.contains("flush chain ip k1s endpoint-default/a/tcp/__10.42.0.2/80\n"));
        assert!(!tx.contains("delete chain"));
        assert!(p.collect_stale(Instant::now()).is_some());
        assert!(p.take_transaction(&cfg()).is_none());
        assert!(p
            .collect_stale(Instant::now() + STALE_CHAIN_DELAY)
            .is_none());
        let tx = p.take_transaction(&cfg()).unwrap();
        assert_eq!(
            tx,
            "delete chain ip k1s endpoint-default/a/tcp/__10.42.0.2/80\n"
        );
    }

    #[test]
    fn a_service_losing_all_endpoints_moves_to_reject() {
        let mut p = Plan::new();
        set(&mut p, input("a", 1, &[1], None));
        p.take_transaction(&cfg()).unwrap();
        set(&mut p, input("a", 1, &[], None));
        let tx = p.take_transaction(&cfg()).unwrap();
        assert!(tx.contains("delete element ip k1s service-ips { 10.43.0.1 . tcp . 80 }"));
        assert!(tx.contains(
            "add element ip k1s no-endpoint-services { 10.43.0.1 . tcp . 80 : goto reject-chain }"
        ));
    }

    #[test]
    fn shared_elements_pass_to_the_next_claimant_when_the_first_goes() {
        let ext = Some(Ipv4Addr::new(192, 0, 2, 1));
        let mut p = Plan::new();
        set(&mut p, input("a", 1, &[1], ext));
        set(&mut p, input("b", 2, &[2], ext));
        p.take_transaction(&cfg()).unwrap();
        let key = ServiceKey::new("default", "a");
        p.update(&key, None, &cfg()).unwrap();
        let tx = p.take_transaction(&cfg()).unwrap();
        assert!(
            tx.contains(
                "delete element ip k1s service-ips { 10.43.0.1 . tcp . 80, 192.0.2.1 . tcp . 80 }"
            ),
            "{tx}"
        );
        assert!(tx.contains(
            "add element ip k1s service-ips { 192.0.2.1 . tcp . 80 : goto external-default/b/tcp/ }"
        ), "{tx}");
    }

    #[test]
    fn after_a_failure_the_whole_table_is_rebuilt() {
        let mut p = Plan::new();
        set(&mut p, input("a", 1, &[1], None));
        p.take_transaction(&cfg()).unwrap();
        set(&mut p, input("b", 2, &[2], None));
        p.invalidate();
        let tx = p.take_transaction(&cfg()).unwrap();
        assert!(tx.contains("delete table ip k1s"));
        assert!(tx.contains("default/a/") && tx.contains("default/b/"));
    }
}
