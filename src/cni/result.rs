//! What CNI plugins print: the ADD result (spec 1.0.0, read leniently enough for 0.4.0 and
//! 0.3.x plugins), the error object, and the VERSION answer. This module only parses and checks
//! shapes; it must never run a plugin or touch the host.
//!
//! Results are kept twice: the raw JSON, which is passed on verbatim as the next plugin's
//! `prevResult` and cached (a plugin may add fields we do not know), and the typed view, from
//! which the pod's addresses are read.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cni::error::CniError;

/// A CNI result, as printed by ADD (spec 1.0.0 §"Success").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub mac: String,
    /// The netns path for interfaces inside the sandbox, empty for host-side ones.
    #[serde(default)]
    pub sandbox: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix, e.g. `10.42.0.5/24`.
    pub address: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

/// The error object a failing plugin prints on stdout.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PluginError {
    pub code: u32,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub details: String,
}

#[derive(Debug, Deserialize)]
struct VersionInfo {
    #[serde(rename = "supportedVersions", default)]
    supported_versions: Vec<String>,
}

impl CniResult {
    /// Parses and checks an ADD result. Returns the raw JSON (to chain and cache) and the typed
    /// view.
    pub fn parse(
        plugin: &str,
        command: &'static str,
        out: &[u8],
    ) -> Result<(Value, Self), CniError> {
        let bad = |reason: String| CniError::BadOutput {
            plugin: plugin.to_string(),
            command,
            reason,
            output: crate::cni::error::truncate(&String::from_utf8_lossy(out), 512),
        };
        let raw: Value = serde_json::from_slice(out).map_err(|e| bad(format!("not json: {e}")))?;
        let typed = Self::from_value(&raw).map_err(bad)?;
        Ok((raw, typed))
    }

    /// Reads a result already parsed as JSON (a cache entry or a chained prevResult).
    pub fn from_value(raw: &Value) -> Result<Self, String> {
        if !raw.is_object() {
            return Err("result is not a json object".into());
        }
        let typed: CniResult =
            serde_json::from_value(raw.clone()).map_err(|e| format!("not a cni result: {e}"))?;
        if typed.cni_version.is_empty() {
            return Err("cniVersion is empty".into());
        }
        for ip in &typed.ips {
            if let Some(i) = ip.interface {
                if i >= typed.interfaces.len() {
                    return Err(format!(
                        "ip {} names interface index {i}, but there are {} interfaces",
                        ip.address,
                        typed.interfaces.len()
                    ));
                }
            }
        }
        Ok(typed)
    }

    /// The addresses configured on the sandbox interface `ifname` (or, for plugins that do not
    /// say which interface an address belongs to, all of them).
    pub fn sandbox_ips(&self, ifname: &str) -> Vec<&IpConfig> {
        self.ips
            .iter()
            .filter(
                |ip| match ip.interface.and_then(|i| self.interfaces.get(i)) {
                    Some(iface) => iface.name == ifname && !iface.sandbox.is_empty(),
                    None => true,
                },
            )
            .collect()
    }
}

impl PluginError {
    /// Reads the error object from a failing plugin's stdout, if it printed one.
    pub fn parse(out: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(out).ok()?;
        v.get("code")?;
        serde_json::from_value(v).ok()
    }
}

/// Reads the versions a plugin's VERSION command claims to support.
pub fn parse_versions(plugin: &str, out: &[u8]) -> Result<Vec<String>, CniError> {
    serde_json::from_slice::<VersionInfo>(out)
        .map(|v| v.supported_versions)
        .map_err(|e| CniError::BadOutput {
            plugin: plugin.to_string(),
            command: "VERSION",
            reason: format!("not a version answer: {e}"),
            output: crate::cni::error::truncate(&String::from_utf8_lossy(out), 512),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Debian's bridge v1.1.1 prints (taken from a real run, addresses changed).
    const BRIDGE_1_0: &str = r#"{
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "k1s0", "mac": "aa:bb:cc:dd:ee:01"},
            {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
            {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/k1s/netns/p1"}
        ],
        "ips": [{"interface": 2, "address": "10.42.0.5/24", "gateway": "10.42.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {}
    }"#;

    #[test]
    fn parses_a_1_0_0_result() {
        let (raw, r) = CniResult::parse("bridge", "ADD", BRIDGE_1_0.as_bytes()).unwrap();
        assert_eq!(raw["cniVersion"], "1.0.0");
        assert_eq!(r.interfaces.len(), 3);
        let ips = r.sandbox_ips("eth0");
        assert_eq!(ips.len(), 1);
        assert_eq!(ips[0].address.ip().to_string(), "10.42.0.5");
        assert_eq!(ips[0].address.prefix(), 24);
        assert_eq!(ips[0].gateway.unwrap().to_string(), "10.42.0.1");
        assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
        assert!(r.routes[0].gw.is_none());
        assert!(r.sandbox_ips("eth1").is_empty());
    }

    #[test]
    fn parses_a_0_4_0_result_with_version_fields_and_dns() {
        let out = r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.2.3/16"}],
            "dns":{"nameservers":["10.43.0.10"],"search":["svc.cluster.local"]}}"#;
        let (_, r) = CniResult::parse("x", "ADD", out.as_bytes()).unwrap();
        assert_eq!(r.sandbox_ips("eth0").len(), 1);
        assert_eq!(r.dns.nameservers, vec!["10.43.0.10"]);
        assert_eq!(r.dns.search, vec!["svc.cluster.local"]);
    }

    #[test]
    fn rejects_garbage_and_wrong_shapes() {
        for (out, needle) in [
            ("hello world", "not json"),
            ("[1,2]", "not a json object"),
            (r#"{"ips":[]}"#, "cniVersion"),
            (r#"{"cniVersion":""}"#, "cniVersion is empty"),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]}"#,
                "not a cni result",
            ),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.3/24","interface":4}]}"#,
                "interface index 4",
            ),
        ] {
            let err = CniResult::parse("garbler", "ADD", out.as_bytes()).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("garbler"), "{msg}");
            assert!(msg.contains(needle), "{msg} should mention {needle}");
        }
    }

    #[test]
    fn parses_error_objects() {
        let e = PluginError::parse(
            br#"{"cniVersion":"1.0.0","code":7,"msg":"bad ip","details":"range full"}"#,
        )
        .unwrap();
        assert_eq!(
            e,
            PluginError {
                code: 7,
                msg: "bad ip".into(),
                details: "range full".into()
            }
        );
        assert!(PluginError::parse(b"not json").is_none());
        assert!(PluginError::parse(br#"{"msg":"no code"}"#).is_none());
    }

    #[test]
    fn parses_version_answers() {
        let v = parse_versions(
            "bridge",
            br#"{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}"#,
        )
        .unwrap();
        assert_eq!(v, vec!["0.4.0", "1.0.0"]);
        assert!(parse_versions("bridge", b"CNI bridge plugin version unknown").is_err());
    }
}
