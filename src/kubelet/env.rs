//! Container environment as upstream's kubelet builds it: the Services' variables
//! (`<NAME>_SERVICE_HOST`, the Docker-link `<NAME>_PORT_*` set), `envFrom` sources, then
//! `env` in order, `valueFrom` resolved against the pod (downward API), its ConfigMaps and
//! Secrets, and `$(VAR)` references expanded; the pod's own variables win. The ConfigMaps,
//! Secrets and Services are fetched by the caller and handed in: this file does no I/O.

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use std::collections::BTreeMap;

/// The ConfigMaps and Secrets of the pod's namespace that its containers refer to, and the
/// Services whose variables it gets (see [`service_env`]).
#[derive(Default, Debug)]
pub struct Sources {
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
    /// Service-account tokens of projected volumes, by audience and lifetime.
    pub tokens: BTreeMap<super::tokens::TokenKey, String>,
    pub services: Vec<Service>,
    /// The host directory behind each bound PersistentVolumeClaim the pod names.
    pub claims: BTreeMap<String, std::path::PathBuf>,
}

/// Upstream's `makeEnvVariableName`.
fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// The variables of one Service with a ClusterIP (upstream's `envvars.FromServices`).
fn one_service_env(svc: &Service, out: &mut Vec<(String, String)>) {
    let Some(spec) = svc.spec.as_ref() else {
        return;
    };
    let ip = spec.cluster_ip.as_deref().unwrap_or_default();
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ip.is_empty() || ip == "None" || ports.is_empty() {
        return;
    }
    let prefix = env_name(svc.metadata.name.as_deref().unwrap_or_default());
    out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
    let port_var = format!("{prefix}_SERVICE_PORT");
    out.push((port_var.clone(), ports[0].port.to_string()));
    for p in ports {
        if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((format!("{port_var}_{}", env_name(n)), p.port.to_string()));
        }
    }
    let host = match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(_)) => format!("[{ip}]"),
        _ => ip.to_string(),
    };
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        let lower = proto.to_lowercase();
        let url = format!("{lower}://{host}:{}", p.port);
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
        out.push((pp.clone(), url));
        out.push((format!("{pp}_PROTO"), lower));
        out.push((format!("{pp}_PORT"), p.port.to_string()));
        out.push((format!("{pp}_ADDR"), ip.to_string()));
    }
}

/// The Service variables a pod in `ns` gets (upstream's `getServiceEnvVarMap`): always the
/// `kubernetes` Service of `default` (in-cluster clients need it), and with service links
/// every Service of the pod's namespace, which wins over a namesake from `default`.
pub fn service_env(ns: &str, links: bool, services: &[Service]) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<String, &Service> = BTreeMap::new();
    for s in services {
        let name = s.metadata.name.clone().unwrap_or_default();
        let sns = s.metadata.namespace.as_deref().unwrap_or_default();
        if sns == "default" && name == "kubernetes" {
            chosen.entry(name).or_insert(s);
        } else if sns == ns && links {
            chosen.insert(name, s);
        }
    }
    let mut out = vec![];
    for s in chosen.values() {
        one_service_env(s, &mut out);
    }
    out
}

/// Names of the ConfigMaps and Secrets a container's environment needs.
pub fn referenced(c: &Container) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    for e in c.env_from.iter().flatten() {
        if let Some(r) = &e.config_map_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &e.secret_ref {
            secrets.push(r.name.clone());
        }
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        if let Some(r) = &from.config_map_key_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &from.secret_key_ref {
            secrets.push(r.name.clone());
        }
    }
    (cms, secrets)
}

/// Why a container's environment cannot be built; shown as CreateContainerConfigError.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnvError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapMissing(String),
    #[error("secret \"{0}\" not found")]
    SecretMissing(String),
    #[error("couldn't find key {key} in ConfigMap {ns}/{name}")]
    ConfigMapKey {
        ns: String,
        name: String,
        key: String,
    },
    #[error("couldn't find key {key} in Secret {ns}/{name}")]
    SecretKey {
        ns: String,
        name: String,
        key: String,
    },
    #[error("unsupported fieldRef {0}")]
    FieldPath(String),
}

fn cm_data(cm: &ConfigMap) -> BTreeMap<String, String> {
    let mut out = cm.data.clone().unwrap_or_default();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    out
}

fn secret_data(s: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// A downward-API field of the pod.
pub fn field_value(pod: &Pod, path: &str) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let in_map = |m: &Option<BTreeMap<String, String>>, prefix: &str| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(m.as_ref()?.get(key).cloned().unwrap_or_default())
    };
    let v = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.hostIPs" => status
            .and_then(|s| s.host_ips.as_ref())
            .map(|v| v.iter().map(|i| i.ip.clone()).collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
        "status.podIPs" => status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|v| v.iter().map(|i| i.ip.clone()).collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
        "metadata.labels" | "metadata.annotations" => {
            let m = if path == "metadata.labels" {
                &meta.labels
            } else {
                &meta.annotations
            };
            m.iter()
                .flatten()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect::<Vec<_>>()
                .join("\n")
        }
        _ => in_map(&meta.labels, "metadata.labels['")
            .or_else(|| in_map(&meta.annotations, "metadata.annotations['"))
            .ok_or_else(|| EnvError::FieldPath(path.to_string()))?,
    };
    Ok(v)
}

/// A container's resource as the downward API gives it (`limits.cpu` in whole cores rounded
/// up by the divisor, memory in bytes).
fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    node_cpus: usize,
    node_mem: u64,
) -> String {
    use crate::registry::rules::quantity::Quantity;
    let res = c.resources.as_ref();
    let (field, name) = resource.split_once('.').unwrap_or(("limits", resource));
    let map = match field {
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => res.and_then(|r| r.limits.as_ref()),
    };
    let raw = map
        .and_then(|m| m.get(name))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .map(|q| q.to_f64());
    let value = raw.unwrap_or(match (field, name) {
        ("limits", "cpu") => node_cpus as f64,
        ("limits", "memory") => node_mem as f64,
        _ => 0.0,
    });
    let div = divisor
        .and_then(|d| Quantity::parse(d).ok())
        .map(|q| q.to_f64())
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);
    format!("{}", (value / div).ceil() as i64)
}

/// Expand `$(NAME)` from `vars`; `$$` is a literal `$`; unknown references stay as written.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment, in order, with the image's environment underneath.
pub fn build(
    pod: &Pod,
    c: &Container,
    image_env: &[String],
    sources: &Sources,
    node_cpus: usize,
    node_mem: u64,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut set = |vars: &mut BTreeMap<String, String>, k: String, v: String| {
        if !vars.contains_key(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    for kv in image_env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(&mut vars, k.to_string(), v.to_string());
    }
    // Service variables: over the image's, under the pod's own, visible to `$(VAR)`.
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    for (k, v) in service_env(&ns, links, &sources.services) {
        set(&mut vars, k, v);
    }
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(r) = &from.config_map_ref {
            match sources.config_maps.get(&r.name) {
                Some(cm) => cm_data(cm),
                None if r.optional == Some(true) => continue,
                None => return Err(EnvError::ConfigMapMissing(r.name.clone())),
            }
        } else if let Some(r) = &from.secret_ref {
            match sources.secrets.get(&r.name) {
                Some(s) => secret_data(s),
                None if r.optional == Some(true) => continue,
                None => return Err(EnvError::SecretMissing(r.name.clone())),
            }
        } else {
            continue;
        };
        for (k, v) in data {
            set(&mut vars, format!("{prefix}{k}"), v);
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field_value(pod, &f.field_path)?
            } else if let Some(r) = &from.resource_field_ref {
                resource_value(
                    c,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                    node_cpus,
                    node_mem,
                )
            } else if let Some(r) = &from.config_map_key_ref {
                match sources.config_maps.get(&r.name).map(cm_data) {
                    Some(d) => match d.get(&r.key) {
                        Some(v) => v.clone(),
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(EnvError::ConfigMapKey {
                                ns: ns.clone(),
                                name: r.name.clone(),
                                key: r.key.clone(),
                            })
                        }
                    },
                    None if r.optional == Some(true) => continue,
                    None => return Err(EnvError::ConfigMapMissing(r.name.clone())),
                }
            } else if let Some(r) = &from.secret_key_ref {
                match sources.secrets.get(&r.name).map(secret_data) {
                    Some(d) => match d.get(&r.key) {
                        Some(v) => v.clone(),
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(EnvError::SecretKey {
                                ns: ns.clone(),
                                name: r.name.clone(),
                                key: r.key.clone(),
                            })
                        }
                    },
                    None if r.optional == Some(true) => continue,
                    None => return Err(EnvError::SecretMissing(r.name.clone())),
                }
            } else {
                String::new()
            }
        } else {
            // References see only what is defined before them, as upstream.
            expand(e.value.as_deref().unwrap_or(""), &vars)
        };
        set(&mut vars, e.name.clone(), value);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars.get(&k).cloned().unwrap_or_default();
            (k, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn expansion_follows_upstream() {
        let vars = BTreeMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(expand("$(A)-$(B)", &vars), "x-$(B)");
        assert_eq!(expand("$$(A) $$ $", &vars), "$(A) $ $");
        assert_eq!(expand("$(A", &vars), "$(A");
    }

    #[test]
    fn env_from_then_env_with_downward_api_and_refs() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{
                "name": "c",
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                "env": [
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "GREETING", "value": "hi $(POD) on $(NODE)"},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "PATH", "value": "/opt:$(PATH)"}
                ],
                "resources": {"limits": {"memory": "64Mi"}}
            }]},
            "status": {"podIP": "10.42.0.5"}
        }));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let mut src = Sources::default();
        let cm = ConfigMap {
            data: Some(BTreeMap::from([("mode".into(), "fast".into())])),
            ..Default::default()
        };
        src.config_maps.insert("cfg".into(), cm);
        let s = Secret {
            data: Some(BTreeMap::from([(
                "pw".into(),
                k8s_openapi::ByteString(b"hunter2".to_vec()),
            )])),
            ..Default::default()
        };
        src.secrets.insert("s".into(), s);
        let env = build(&p, c, &["PATH=/bin".into()], &src, 2, 1 << 30).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CFG_mode"), Some("fast"));
        assert_eq!(get("POD"), Some("p"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("GREETING"), Some("hi p on $(NODE)"));
        assert_eq!(get("PW"), Some("hunter2"));
        assert_eq!(get("MEM"), Some("64"));
        assert_eq!(get("PATH"), Some("/opt:/bin"));
        assert_eq!(env[0].0, "PATH");
    }

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
        .unwrap()
    }

    #[test]
    fn service_variables_as_upstream_renders_them() {
        let services = vec![
            svc(
                "default",
                "kubernetes",
                "10.43.0.1",
                serde_json::json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
            ),
            svc(
                "app",
                "web-front",
                "10.43.7.9",
                serde_json::json!([
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"}]),
            ),
            svc("app", "headless", "None", serde_json::json!([{"port": 80}])),
            svc(
                "other",
                "elsewhere",
                "10.43.7.10",
                serde_json::json!([{"port": 80}]),
            ),
        ];
        let env: BTreeMap<String, String> =
            service_env("app", true, &services).into_iter().collect();
        let want = [
            ("KUBERNETES_SERVICE_HOST", "10.43.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.43.0.1:443"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.43.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.43.0.1"),
            ("WEB_FRONT_SERVICE_HOST", "10.43.7.9"),
            ("WEB_FRONT_SERVICE_PORT", "80"),
            ("WEB_FRONT_SERVICE_PORT_HTTP", "80"),
            ("WEB_FRONT_SERVICE_PORT_DNS", "53"),
            ("WEB_FRONT_PORT", "tcp://10.43.7.9:80"),
            ("WEB_FRONT_PORT_80_TCP", "tcp://10.43.7.9:80"),
            ("WEB_FRONT_PORT_53_UDP", "udp://10.43.7.9:53"),
            ("WEB_FRONT_PORT_53_UDP_PROTO", "udp"),
            ("WEB_FRONT_PORT_53_UDP_PORT", "53"),
            ("WEB_FRONT_PORT_53_UDP_ADDR", "10.43.7.9"),
        ];
        for (k, v) in want {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(env.len(), 8 + 13, "{env:?}");
        assert!(!env
            .keys()
            .any(|k| k.starts_with("HEADLESS") || k.starts_with("ELSEWHERE")));
        // Without service links only the API's variables remain.
        let off = service_env("app", false, &services);
        assert!(
            off.iter().all(|(k, _)| k.starts_with("KUBERNETES_")),
            "{off:?}"
        );
        assert_eq!(off.len(), 8);
        // A `kubernetes` Service of the pod's own namespace wins with links on.
        let mut mine = services.clone();
        mine.push(svc(
            "app",
            "kubernetes",
            "10.43.9.9",
            serde_json::json!([{"port": 8443}]),
        ));
        let env: BTreeMap<String, String> = service_env("app", true, &mine).into_iter().collect();
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.43.9.9");
        let env: BTreeMap<String, String> = service_env("app", false, &mine).into_iter().collect();
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.43.0.1");
    }

    #[test]
    fn the_pods_own_variables_win_and_may_reference_service_ones() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "env": [
                {"name": "KUBERNETES_SERVICE_HOST", "value": "api.example"},
                {"name": "API", "value": "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"}
            ]}]}
        }));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let src = Sources {
            services: vec![svc(
                "default",
                "kubernetes",
                "10.43.0.1",
                serde_json::json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
            )],
            ..Default::default()
        };
        let env = build(&p, c, &["KUBERNETES_PORT=image".into()], &src, 1, 1).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("api.example"));
        assert_eq!(get("API"), Some("https://api.example:443"));
        assert_eq!(get("KUBERNETES_PORT"), Some("tcp://10.43.0.1:443"));
        assert_eq!(
            env.iter()
                .filter(|(k, _)| k == "KUBERNETES_SERVICE_HOST")
                .count(),
            1
        );
    }

    #[test]
    fn missing_sources_are_errors_unless_optional() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c",
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]}]}
        }));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let err = build(&p, c, &[], &Sources::default(), 1, 1).unwrap_err();
        assert_eq!(err.to_string(), "configmap \"gone\" not found");
        let p2 = pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c",
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}}]}]}
        }));
        let c2 = &p2.spec.as_ref().unwrap().containers[0];
        assert!(build(&p2, c2, &[], &Sources::default(), 1, 1)
            .unwrap()
            .is_empty());
    }
}
