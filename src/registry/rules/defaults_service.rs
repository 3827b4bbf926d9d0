//! Service and Secret defaults.

use serde_json::{json, Map, Value};

use super::json::{each_obj_mut, obj_mut, s, set_default, set_default_str};

pub fn default_service(obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    set_default_str(spec, "sessionAffinity", "None");
    if s(spec, "sessionAffinity") == "None" {
        if let Some(m) = spec.as_object_mut() {
            m.remove("sessionAffinityConfig");
        }
    } else if s(spec, "sessionAffinity") == "ClientIP" {
        let has_timeout = spec
            .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
            .is_some_and(|v| !v.is_null());
        if !has_timeout {
            if let Some(m) = spec.as_object_mut() {
                m.insert(
                    "sessionAffinityConfig".to_string(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
    }
    set_default_str(spec, "type", "ClusterIP");
    each_obj_mut(spec, "ports", |p| {
        set_default_str(p, "protocol", "TCP");
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset {
            if let Some(port) = p.get("port").cloned() {
                if let Some(m) = p.as_object_mut() {
                    m.insert("targetPort".to_string(), port);
                }
            }
        }
    });
    let ty = s(spec, "type").to_string();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let external =
        ty == "NodePort" || ty == "LoadBalancer" || (ty == "ClusterIP" && has_external_ips);
    if external {
        set_default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if ["NodePort", "LoadBalancer", "ClusterIP"].contains(&ty.as_str()) {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if ty != "ExternalName" {
        let headless = s(spec, "clusterIP") == "None"
            || spec.pointer("/clusterIPs/0").and_then(Value::as_str) == Some("None");
        let no_selector = spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        let policy = if headless && no_selector {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        set_default(spec, "ipFamilyPolicy", json!(policy));
        let empty_fams = spec
            .get("ipFamilies")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        // Without an IP the family is the cluster's, which the allocator knows.
        let fam = match s(spec, "clusterIP").parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(_)) => Some("IPv6"),
            Ok(std::net::IpAddr::V4(_)) => Some("IPv4"),
            Err(_) => None,
        };
        if let (true, Some(fam)) = (empty_fams, fam) {
            if let Some(m) = spec.as_object_mut() {
                m.insert("ipFamilies".to_string(), json!([fam]));
            }
        }
        let ip = s(spec, "clusterIP").to_string();
        let empty_ips = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if !ip.is_empty() && empty_ips {
            if let Some(m) = spec.as_object_mut() {
                m.insert("clusterIPs".to_string(), json!([ip]));
            }
        }
    }
}

/// Encode bytes as standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn default_secret(obj: &mut Value) {
    set_default_str(obj, "type", "Opaque");
    // The v1 -> internal conversion folds stringData into data.
    let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    if let Some(Value::Object(data)) = obj_mut(obj, "data") {
        for (k, v) in sd {
            if let Value::String(text) = v {
                data.insert(k, Value::String(base64_encode(text.as_bytes())));
            }
        }
    }
}
