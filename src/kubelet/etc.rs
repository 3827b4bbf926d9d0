//! The files a pod's containers see at /etc/hosts, /etc/resolv.conf and /etc/hostname,
//! written once per pod under its directory and bind-mounted into every container, as
//! upstream's kubelet does. Pure text building plus one atomic write each.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// What the pod's DNS looks like.
#[derive(Debug, Clone)]
pub struct Dns {
    /// The cluster DNS service address (`--cluster-dns`).
    pub cluster_dns: IpAddr,
    pub cluster_domain: String,
    /// The host's resolv.conf, for `Default` and host-network pods.
    pub host_resolv_conf: PathBuf,
}

/// The resolv.conf that `Default` pods copy and cluster DNS forwards to: `explicit`
/// (`--resolv-conf`) when given; else the first of `candidates` (/etc/resolv.conf, then
/// systemd-resolved's list of real upstreams) naming a nameserver a pod can reach, which a
/// loopback stub such as systemd-resolved's 127.0.0.53 is not; else the first candidate.
pub fn host_resolv_conf(explicit: Option<&Path>, candidates: &[&Path]) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    let usable = |path: &&&Path| {
        std::fs::read_to_string(path).is_ok_and(|text| {
            parse_resolv(&text).0.iter().any(|ns| {
                ns.split('%')
                    .next()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .is_some_and(|ip| {
                        !ip.is_loopback() && !ip.is_unspecified() && !ip.is_multicast()
                    })
            })
        })
    };
    match candidates.iter().find(usable) {
        Some(p) => p.to_path_buf(),
        None => {
            let first = candidates
                .first()
                .map(|p| p.to_path_buf())
                .unwrap_or_default();
            tracing::warn!(path = %first.display(), "no resolv.conf with a nameserver pods can reach; set --resolv-conf");
            first
        }
    }
}

/// The default places `host_resolv_conf` looks.
pub const RESOLV_CONF_CANDIDATES: [&str; 2] =
    ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"];

/// `/etc/hosts`: localhost entries, then the pod's own name (with its subdomain's FQDN
/// when it has one), then `hostAliases`.
pub fn hosts(
    pod_ip: Option<IpAddr>,
    hostname: &str,
    fqdn: Option<&str>,
    aliases: &[(String, Vec<String>)],
) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    if let Some(ip) = pod_ip {
        match fqdn {
            Some(f) => s.push_str(&format!("{ip}\t{f}\t{hostname}\n")),
            None => s.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    if !aliases.is_empty() {
        s.push_str("\n# Entries added by HostAliases.\n");
        for (ip, names) in aliases {
            s.push_str(&format!("{ip}\t{}\n", names.join("\t")));
        }
    }
    s
}

/// The nameservers, search domains and options of a resolv.conf.
fn parse_resolv(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut ns, mut search, mut opts) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => ns.extend(f.next().map(str::to_string)),
            Some("search") | Some("domain") => search = f.map(str::to_string).collect(),
            Some("options") => opts.extend(f.map(str::to_string)),
            _ => {}
        }
    }
    (ns, search, opts)
}

/// `/etc/resolv.conf` for `dnsPolicy` (ClusterFirst, ClusterFirstWithHostNet, Default, None)
/// and `dnsConfig`, as upstream composes it.
pub fn resolv_conf(
    dns: &Dns,
    policy: &str,
    host_network: bool,
    namespace: &str,
    config: Option<&k8s_openapi::api::core::v1::PodDNSConfig>,
) -> String {
    let host = std::fs::read_to_string(&dns.host_resolv_conf).unwrap_or_default();
    let (host_ns, host_search, host_opts) = parse_resolv(&host);
    let cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" | "" => !host_network,
        _ => false,
    };
    let (mut ns, mut search, mut opts) = if policy == "None" {
        (Vec::new(), Vec::new(), Vec::new())
    } else if cluster {
        let d = &dns.cluster_domain;
        let mut search = vec![
            format!("{namespace}.svc.{d}"),
            format!("svc.{d}"),
            d.clone(),
        ];
        search.extend(host_search);
        (
            vec![dns.cluster_dns.to_string()],
            search,
            vec!["ndots:5".to_string()],
        )
    } else {
        (host_ns, host_search, host_opts)
    };
    if let Some(c) = config {
        for n in c.nameservers.iter().flatten() {
            if !ns.contains(n) {
                ns.push(n.clone());
            }
        }
        for s in c.searches.iter().flatten() {
            if !search.contains(s) {
                search.push(s.clone());
            }
        }
        for o in c.options.iter().flatten() {
            let rendered = match &o.value {
                Some(v) => format!("{}:{v}", o.name.clone().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let key = o.name.clone().unwrap_or_default();
            opts.retain(|x| x.split(':').next() != Some(key.as_str()));
            opts.push(rendered);
        }
    }
    ns.truncate(3);
    search.truncate(32);
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for n in &ns {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !opts.is_empty() {
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

/// Write `content` to `dir/name` atomically; returns the path.
pub fn write(dir: &Path, name: &str, content: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_stub_resolver_is_passed_over_for_the_real_upstreams() {
        let d = tempfile::tempdir().unwrap();
        let stub = d.path().join("stub.conf");
        let real = d.path().join("real.conf");
        let missing = d.path().join("missing.conf");
        std::fs::write(&stub, "nameserver 127.0.0.53\noptions edns0\n").unwrap();
        std::fs::write(&real, "nameserver 192.0.2.1\nsearch lan\n").unwrap();
        assert_eq!(host_resolv_conf(None, &[&stub, &real]), real);
        assert_eq!(host_resolv_conf(None, &[&real, &stub]), real);
        assert_eq!(host_resolv_conf(None, &[&missing, &stub]), missing);
        assert_eq!(host_resolv_conf(Some(&stub), &[&real]), stub);
    }

    fn dns(host: &str) -> (Dns, tempfile::TempDir) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("resolv.conf");
        std::fs::write(&p, host).unwrap();
        (
            Dns {
                cluster_dns: "10.43.0.10".parse().unwrap(),
                cluster_domain: "cluster.local".into(),
                host_resolv_conf: p,
            },
            d,
        )
    }

    #[test]
    fn cluster_first_points_at_cluster_dns_with_search_path() {
        let (d, _t) = dns("nameserver 192.0.2.53\nsearch lan\noptions edns0\n");
        let r = resolv_conf(&d, "ClusterFirst", false, "web", None);
        assert_eq!(
            r,
            "search web.svc.cluster.local svc.cluster.local cluster.local lan\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
        // Host-network pods with ClusterFirst get the host's.
        let r = resolv_conf(&d, "ClusterFirst", true, "web", None);
        assert_eq!(r, "search lan\nnameserver 192.0.2.53\noptions edns0\n");
        let r = resolv_conf(&d, "ClusterFirstWithHostNet", true, "web", None);
        assert!(r.contains("nameserver 10.43.0.10"));
        let r = resolv_conf(&d, "Default", false, "web", None);
        assert!(r.contains("nameserver 192.0.2.53"));
    }

    #[test]
    fn dns_config_and_policy_none() {
        let (d, _t) = dns("nameserver 192.0.2.53\n");
        let cfg: k8s_openapi::api::core::v1::PodDNSConfig = serde_json::from_value(serde_json::json!({
            "nameservers": ["1.1.1.1"], "searches": ["a.example"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
        }))
        .unwrap();
        let r = resolv_conf(&d, "None", false, "ns", Some(&cfg));
        assert_eq!(
            r,
            "search a.example\nnameserver 1.1.1.1\noptions ndots:2 edns0\n"
        );
        let r = resolv_conf(&d, "ClusterFirst", false, "ns", Some(&cfg));
        assert!(r.contains("options ndots:2 edns0"), "{r}");
    }

    #[test]
    fn hosts_file_has_the_pod_and_aliases() {
        let h = hosts(
            Some("10.42.0.7".parse().unwrap()),
            "web-0",
            Some("web-0.web.default.svc.cluster.local"),
            &[("192.0.2.1".into(), vec!["gw".into(), "gw.lan".into()])],
        );
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.42.0.7\tweb-0.web.default.svc.cluster.local\tweb-0\n"));
        assert!(h.contains("192.0.2.1\tgw\tgw.lan\n"));
    }
}
