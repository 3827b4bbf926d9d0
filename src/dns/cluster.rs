//! Answers for names under the cluster domain and for reverse names of cluster addresses, as
//! CoreDNS's kubernetes plugin gives them (the Kubernetes DNS specification 1.1.0 with `pods
//! insecure`): services, their ports (SRV), endpoints by hostname or dashed IP, pods by dashed
//! IP, the zone's SOA and NS, `dns-version`, and the NXDOMAIN/NODATA distinction clients'
//! search paths rely on. Pure functions of a snapshot: no I/O, never the API, never upstream
//! (an ExternalName outside the zone is handed back as `Outcome::Chase`).

use super::snapshot::{Kind, Snapshot, Svc};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::net::IpAddr;

/// Longest chain of ExternalName CNAMEs followed inside the zone, as CoreDNS.
const MAX_CNAME_CHAIN: usize = 10;
/// The schema version of the specification served at `dns-version.<zone>`.
const SCHEMA_VERSION: &str = "1.1.0";

/// The cluster zone and how its records are stamped.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Lowercase, without the trailing dot (`cluster.local`).
    pub domain: String,
    pub name: Name,
    pub ttl: u32,
    /// Addresses of the zone's name server when no `kube-dns` Service exists yet.
    pub fallback_ns: Vec<IpAddr>,
}

impl Zone {
    pub fn new(domain: &str, ttl: u32, fallback_ns: Vec<IpAddr>) -> Result<Self, String> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let name = Name::from_ascii(format!("{domain}."))
            .map_err(|e| format!("cluster domain {domain:?}: {e}"))?;
        Ok(Zone {
            domain,
            name,
            ttl,
            fallback_ns,
        })
    }

    /// The part of a lowercase, dot-terminated query name left of the zone: `Some("")` at
    /// the apex, `None` outside the zone.
    pub fn base<'a>(&self, lower: &'a str) -> Option<&'a str> {
        let name = lower.strip_suffix('.').unwrap_or(lower);
        let rest = name.strip_suffix(self.domain.as_str())?;
        if rest.is_empty() {
            return Some("");
        }
        rest.strip_suffix('.')
    }

    fn fqdn(&self, relative: &str) -> Option<Name> {
        Name::from_ascii(format!("{relative}.{}.", self.domain)).ok()
    }

    /// The zone's SOA, also the authority of every negative answer.
    pub fn soa(&self, serial: u32) -> Record {
        let mname = self.fqdn("ns.dns").unwrap_or_else(|| self.name.clone());
        let rname = self.fqdn("hostmaster").unwrap_or_else(|| self.name.clone());
        Record::from_rdata(
            self.name.clone(),
            self.ttl,
            RData::SOA(SOA::new(mname, rname, serial, 7200, 1800, 86400, self.ttl)),
        )
    }
}

/// What the cluster knows about a name.
#[derive(Debug)]
pub enum Outcome {
    Answer {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    NoData,
    NxDomain,
    /// The name is (a chain ending in) an ExternalName outside the zone: answer with these
    /// CNAMEs followed by the target's records of the same type from upstream.
    Chase {
        cnames: Vec<Record>,
        target: Name,
    },
    /// Not synced with the API yet.
    ServFail,
}

fn addr_record(name: &Name, ttl: u32, ip: IpAddr) -> Record {
    let rdata = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name.clone(), ttl, rdata)
}

fn family_matches(qtype: RecordType, ip: &IpAddr) -> bool {
    matches!(
        (qtype, ip),
        (RecordType::A, IpAddr::V4(_)) | (RecordType::AAAA, IpAddr::V6(_))
    )
}

/// Address records of `ips` for an A or AAAA query, deduplicated; NODATA when none fit.
fn addresses(qname: &Name, qtype: RecordType, ttl: u32, ips: &[IpAddr]) -> Outcome {
    let mut answers: Vec<Record> = Vec::new();
    let mut seen: Vec<IpAddr> = Vec::new();
    for ip in ips.iter().filter(|ip| family_matches(qtype, ip)) {
        if !seen.contains(ip) {
            seen.push(*ip);
            answers.push(addr_record(qname, ttl, *ip));
        }
    }
    if answers.is_empty() {
        Outcome::NoData
    } else {
        Outcome::Answer {
            answers,
            additionals: Vec::new(),
        }
    }
}

/// One target of a name inside a service: an address and, for SRV, a port and the name
/// the SRV record points at.
struct Target<'a> {
    ip: IpAddr,
    port: Option<u16>,
    /// The endpoint label, or `None` for the service's own name (ClusterIP).
    label: Option<&'a str>,
}

/// Resolve a name in the zone. `lower` is the lowercase query name, `base` its part left of
/// the zone.
pub fn resolve(
    snap: &Snapshot,
    zone: &Zone,
    qname: &Name,
    base: &str,
    qtype: RecordType,
) -> Outcome {
    resolve_chain(snap, zone, qname, base, qtype, 0)
}

fn resolve_chain(
    snap: &Snapshot,
    zone: &Zone,
    qname: &Name,
    base: &str,
    qtype: RecordType,
    depth: usize,
) -> Outcome {
    if !snap.synced {
        return Outcome::ServFail;
    }
    let ttl = zone.ttl;
    match base {
        "" => return apex(snap, zone, qtype),
        "dns-version" => {
            return match qtype {
                RecordType::TXT => one(Record::from_rdata(
                    qname.clone(),
                    ttl,
                    RData::TXT(TXT::new(vec![SCHEMA_VERSION.into()])),
                )),
                _ => Outcome::NoData,
            };
        }
        "ns.dns" => {
            return match qtype {
                RecordType::A | RecordType::AAAA => {
                    addresses(qname, qtype, ttl, ns_ips(snap, zone))
                }
                _ => Outcome::NoData,
            };
        }
        "svc" | "pod" => return Outcome::NoData,
        _ => {}
    }
    let mut labels = base.rsplit('.');
    let kind = labels.next().unwrap_or_default();
    if kind != "svc" && kind != "pod" {
        return Outcome::NxDomain;
    }
    let ns = labels.next().unwrap_or_default();
    let exists = snap.namespaces.contains(ns);
    let Some(first) = labels.next() else {
        // `<ns>.svc.<zone>`: the namespace is a name without records
        return if exists {
            Outcome::NoData
        } else {
            Outcome::NxDomain
        };
    };
    let rest: Vec<&str> = labels.collect();
    if kind == "pod" {
        if !exists || !rest.is_empty() {
            return Outcome::NxDomain;
        }
        return pod(qname, qtype, ttl, first);
    }
    let key_len = first.len() + 1 + ns.len();
    let key = &base[base.len() - 4 - key_len..base.len() - 4];
    let Some(svc) = snap.services.get(key) else {
        return Outcome::NxDomain;
    };
    match rest.as_slice() {
        [] => service(snap, zone, qname, qtype, svc, key, depth),
        [endpoint] => {
            if matches!(svc.kind, Kind::ExternalName(_)) {
                return Outcome::NxDomain;
            }
            let targets: Vec<Target> = svc
                .endpoints
                .iter()
                .filter(|e| e.label == *endpoint)
                .flat_map(|e| {
                    e.ports.iter().map(move |p| Target {
                        ip: e.ip,
                        port: p.port,
                        label: Some(e.label.as_str()),
                    })
                })
                .collect();
            targets_answer(zone, qname, qtype, key, &targets)
        }
        [protocol, port] => {
            let (port, protocol) = (strip_underscore(port), strip_underscore(protocol));
            let targets: Vec<Target> = match &svc.kind {
                Kind::ExternalName(_) => return Outcome::NxDomain,
                Kind::ClusterIp(ips) => svc
                    .ports
                    .iter()
                    .filter(|p| p.matches(port, protocol))
                    .flat_map(|p| {
                        ips.iter().map(move |ip| Target {
                            ip: *ip,
                            port: p.port,
                            label: None,
                        })
                    })
                    .collect(),
                Kind::Headless => endpoint_targets(svc, port, protocol),
            };
            targets_answer(zone, qname, qtype, key, &targets)
        }
        _ => Outcome::NxDomain,
    }
}

fn strip_underscore(s: &str) -> &str {
    s.strip_prefix('_').unwrap_or(s)
}

fn endpoint_targets<'a>(svc: &'a Svc, port: &'a str, protocol: &'a str) -> Vec<Target<'a>> {
    svc.endpoints
        .iter()
        .flat_map(|e| {
            e.ports
                .iter()
                .filter(move |p| p.matches(port, protocol))
                .map(move |p| Target {
                    ip: e.ip,
                    port: p.port,
                    label: Some(e.label.as_str()),
                })
        })
        .collect()
}

fn one(record: Record) -> Outcome {
    Outcome::Answer {
        answers: vec![record],
        additionals: Vec::new(),
    }
}

fn ns_ips<'a>(snap: &'a Snapshot, zone: &'a Zone) -> &'a [IpAddr] {
    if snap.dns_ips.is_empty() {
        &zone.fallback_ns
    } else {
        &snap.dns_ips
    }
}

fn apex(snap: &Snapshot, zone: &Zone, qtype: RecordType) -> Outcome {
    match qtype {
        RecordType::SOA => one(zone.soa(snap.serial)),
        RecordType::NS => {
            let Some(ns) = zone.fqdn("ns.dns") else {
                return Outcome::NoData;
            };
            let additionals = ns_ips(snap, zone)
                .iter()
                .map(|ip| addr_record(&ns, zone.ttl, *ip))
                .collect();
            Outcome::Answer {
                answers: vec![Record::from_rdata(
                    zone.name.clone(),
                    zone.ttl,
                    RData::NS(NS(ns)),
                )],
                additionals,
            }
        }
        _ => Outcome::NoData,
    }
}

/// `pods insecure`: any well-formed dashed address in an existing namespace.
fn pod(qname: &Name, qtype: RecordType, ttl: u32, label: &str) -> Outcome {
    let text = if label.matches('-').count() == 3 && !label.contains("--") {
        label.replace('-', ".")
    } else {
        label.replace('-', ":")
    };
    let Ok(ip) = text.parse::<IpAddr>() else {
        return Outcome::NxDomain;
    };
    match qtype {
        RecordType::A | RecordType::AAAA => addresses(qname, qtype, ttl, &[ip]),
        _ => Outcome::NoData,
    }
}

/// The service's own name.
fn service(
    snap: &Snapshot,
    zone: &Zone,
    qname: &Name,
    qtype: RecordType,
    svc: &Svc,
    key: &str,
    depth: usize,
) -> Outcome {
    match &svc.kind {
        Kind::ExternalName(target) => external(snap, zone, qname, qtype, target, depth),
        Kind::ClusterIp(ips) => {
            let targets: Vec<Target> = svc
                .ports
                .iter()
                .flat_map(|p| {
                    ips.iter().map(move |ip| Target {
                        ip: *ip,
                        port: p.port,
                        label: None,
                    })
                })
                .collect();
            match qtype {
                RecordType::A | RecordType::AAAA => addresses(qname, qtype, zone.ttl, ips),
                _ => targets_answer(zone, qname, qtype, key, &targets),
            }
        }
        Kind::Headless => {
            let targets = endpoint_targets(svc, "", "");
            targets_answer(zone, qname, qtype, key, &targets)
        }
    }
}

/// A name with a set of targets: NXDOMAIN when the set is empty (a headless service with no
/// ready endpoint, an unknown port), else addresses or SRV records, NODATA for other types.
fn targets_answer(
    zone: &Zone,
    qname: &Name,
    qtype: RecordType,
    key: &str,
    targets: &[Target],
) -> Outcome {
    if targets.is_empty() {
        return Outcome::NxDomain;
    }
    match qtype {
        RecordType::A | RecordType::AAAA => {
            let ips: Vec<IpAddr> = targets.iter().map(|t| t.ip).collect();
            addresses(qname, qtype, zone.ttl, &ips)
        }
        RecordType::SRV => srv(zone, qname, key, targets),
        _ => Outcome::NoData,
    }
}

fn srv(zone: &Zone, qname: &Name, key: &str, targets: &[Target]) -> Outcome {
    let mut seen: Vec<(Option<&str>, u16, IpAddr)> = Vec::new();
    for t in targets {
        let Some(port) = t.port else { continue };
        if !seen.contains(&(t.label, port, t.ip)) {
            seen.push((t.label, port, t.ip));
        }
    }
    if seen.is_empty() {
        return Outcome::NoData;
    }
    // CoreDNS spreads a weight of 100 over the records of one priority.
    let weight = u16::try_from(100 / seen.len()).unwrap_or(0);
    let mut answers = Vec::new();
    let mut additionals: Vec<Record> = Vec::new();
    let mut srv_targets: Vec<(Name, IpAddr)> = Vec::new();
    for (label, port, ip) in seen {
        let relative = match label {
            Some(l) => format!("{l}.{key}.svc"),
            None => format!("{key}.svc"),
        };
        let Some(target) = zone.fqdn(&relative) else {
            continue;
        };
        let rdata = RData::SRV(SRV::new(0, weight, port, target.clone()));
        let record = Record::from_rdata(qname.clone(), zone.ttl, rdata);
        if answers.contains(&record) {
            continue;
        }
        answers.push(record);
        if !srv_targets.contains(&(target.clone(), ip)) {
            additionals.push(addr_record(&target, zone.ttl, ip));
            srv_targets.push((target, ip));
        }
    }
    Outcome::Answer {
        answers,
        additionals,
    }
}

/// An ExternalName: a CNAME, followed inside the zone here and outside it by the caller.
fn external(
    snap: &Snapshot,
    zone: &Zone,
    qname: &Name,
    qtype: RecordType,
    target: &str,
    depth: usize,
) -> Outcome {
    let Ok(target_name) = Name::from_ascii(format!("{target}.")) else {
        return Outcome::NxDomain;
    };
    let cname = Record::from_rdata(
        qname.clone(),
        zone.ttl,
        RData::CNAME(CNAME(target_name.clone())),
    );
    if qtype == RecordType::CNAME {
        return one(cname);
    }
    let target_lower = format!("{target}.");
    match zone.base(&target_lower) {
        None => Outcome::Chase {
            cnames: vec![cname],
            target: target_name,
        },
        Some(base) => {
            if depth >= MAX_CNAME_CHAIN {
                return Outcome::NoData;
            }
            match resolve_chain(snap, zone, &target_name, base, qtype, depth + 1) {
                Outcome::Answer {
                    mut answers,
                    additionals,
                } => {
                    answers.insert(0, cname);
                    Outcome::Answer {
                        answers,
                        additionals,
                    }
                }
                Outcome::Chase { mut cnames, target } => {
                    cnames.insert(0, cname);
                    Outcome::Chase { cnames, target }
                }
                // CoreDNS answers only a chain that ends in records.
                _ => Outcome::NoData,
            }
        }
    }
}

/// PTR for a cluster address (a ClusterIP or a ready endpoint); `None` for anything else,
/// which the caller forwards upstream (CoreDNS's `fallthrough in-addr.arpa ip6.arpa`).
pub fn reverse(snap: &Snapshot, zone: &Zone, qname: &Name) -> Option<Outcome> {
    let net = qname.parse_arpa_name().ok()?;
    if net.prefix_len() != net.max_prefix_len() {
        return None;
    }
    let names = snap.reverse.get(&net.addr())?;
    let answers = names
        .iter()
        .filter_map(|n| zone.fqdn(&format!("{n}.svc")))
        .map(|target| Record::from_rdata(qname.clone(), zone.ttl, RData::PTR(PTR(target))))
        .collect();
    Some(Outcome::Answer {
        answers,
        additionals: Vec::new(),
    })
}
