//! The CNI runtime side of the spec for network configuration lists: ADD runs the plugins in
//! order, each given the previous plugin's result as `prevResult`; DEL runs them in reverse with
//! the cached ADD result; CHECK runs them in order with it; `runtimeConfig` carries the
//! capabilities (such as `portMappings`) that a plugin declares. It must never know what network
//! k1s builds (that is `config`) nor where results are cached (that is `cache`).

use std::time::Duration;

use serde_json::{Map, Value};

use crate::cni::error::CniError;
use crate::cni::exec::{check_plugin_name, CniCommand, PluginArgs, PluginExec};
use crate::cni::result::{parse_versions, CniResult};

/// A validated network configuration list (`.conflist`).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    raw: Map<String, Value>,
}

impl NetworkConfigList {
    /// Checks the fields the runtime relies on: `cniVersion`, `name`, and `plugins`, each an
    /// object with a `type` naming a binary.
    pub fn from_value(v: Value) -> Result<Self, CniError> {
        let bad = |m: String| CniError::InvalidConfig(m);
        let Value::Object(raw) = v else {
            return Err(bad(
                "a network configuration list must be a json object".into()
            ));
        };
        for key in ["cniVersion", "name"] {
            match raw.get(key) {
                Some(Value::String(s)) if !s.is_empty() => {}
                _ => return Err(bad(format!("{key} must be a non-empty string"))),
            }
        }
        let Some(Value::Array(plugins)) = raw.get("plugins") else {
            return Err(bad("plugins must be an array".into()));
        };
        if plugins.is_empty() {
            return Err(bad("plugins must not be empty".into()));
        }
        for (i, p) in plugins.iter().enumerate() {
            match p.get("type") {
                Some(Value::String(t)) => check_plugin_name(t)?,
                _ => return Err(bad(format!("plugins[{i}] has no string type"))),
            }
        }
        Ok(NetworkConfigList { raw })
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, CniError> {
        let v = serde_json::from_slice(bytes)
            .map_err(|e| CniError::InvalidConfig(format!("not json: {e}")))?;
        Self::from_value(v)
    }

    pub fn name(&self) -> &str {
        self.raw["name"].as_str().unwrap_or_default()
    }

    pub fn cni_version(&self) -> &str {
        self.raw["cniVersion"].as_str().unwrap_or_default()
    }

    fn plugins(&self) -> &[Value] {
        self.raw["plugins"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The plugin types, in order.
    pub fn plugin_types(&self) -> Vec<&str> {
        self.plugins()
            .iter()
            .filter_map(|p| p["type"].as_str())
            .collect()
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.raw.clone())
    }
}

/// What one attachment (a container's interface on a network) passes to every plugin.
#[derive(Debug, Clone, Default)]
pub struct Attachment {
    pub container_id: String,
    /// Empty on DEL when the namespace is already gone.
    pub netns: String,
    pub ifname: String,
    pub cni_args: String,
    /// Capability arguments (e.g. `portMappings`), handed to the plugins that declare them.
    pub capability_args: Map<String, Value>,
}

/// Executes configuration lists with the plugins of one `PluginExec`.
#[derive(Debug, Clone)]
pub struct Runtime {
    exec: PluginExec,
}

impl Runtime {
    pub fn new(exec: PluginExec) -> Self {
        Runtime { exec }
    }

    pub fn exec(&self) -> &PluginExec {
        &self.exec
    }

    /// ADD: every plugin in order; returns the last result (raw and typed).
    pub async fn add(
        &self,
        list: &NetworkConfigList,
        att: &Attachment,
    ) -> Result<(Value, CniResult), CniError> {
        let mut prev: Option<Value> = None;
        let mut last = None;
        for plugin in list.plugins() {
            let ty = plugin["type"].as_str().unwrap_or_default();
            let conf = build_plugin_conf(list, plugin, prev.as_ref(), att);
            let out = self.run(ty, CniCommand::Add, att, &conf).await?;
            let (raw, typed) = CniResult::parse(ty, "ADD", &out)?;
            prev = Some(raw);
            last = Some(typed);
        }
        match (prev, last) {
            (Some(raw), Some(typed)) => Ok((raw, typed)),
            _ => Err(CniError::InvalidConfig("plugins must not be empty".into())),
        }
    }

    /// DEL: every plugin in reverse, with `prev` (the ADD result, if known) as prevResult. All
    /// plugins run even if one fails, so one broken plugin does not leak the others' state; the
    /// first error is returned and a retry repeats the whole list (DEL is idempotent).
    pub async fn del(
        &self,
        list: &NetworkConfigList,
        att: &Attachment,
        prev: Option<&Value>,
    ) -> Result<(), CniError> {
        let mut first_err = None;
        for plugin in list.plugins().iter().rev() {
            let ty = plugin["type"].as_str().unwrap_or_default();
            let conf = build_plugin_conf(list, plugin, prev, att);
            if let Err(e) = self.run(ty, CniCommand::Del, att, &conf).await {
                tracing::debug!(plugin = ty, error = %e, "cni DEL failed, continuing with the rest");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// CHECK: every plugin in order, each given the cached ADD result.
    pub async fn check(
        &self,
        list: &NetworkConfigList,
        att: &Attachment,
        prev: &Value,
    ) -> Result<(), CniError> {
        for plugin in list.plugins() {
            let ty = plugin["type"].as_str().unwrap_or_default();
            let conf = build_plugin_conf(list, plugin, Some(prev), att);
            self.run(ty, CniCommand::Check, att, &conf).await?;
        }
        Ok(())
    }

    /// VERSION: the spec versions `plugin` supports.
    pub async fn versions(&self, plugin: &str, cni_version: &str) -> Result<Vec<String>, CniError> {
        let stdin = serde_json::json!({ "cniVersion": cni_version }).to_string();
        let out = self
            .exec
            .run(
                plugin,
                CniCommand::Version,
                &PluginArgs::default(),
                stdin.as_bytes(),
            )
            .await?;
        parse_versions(plugin, &out)
    }

    async fn run(
        &self,
        ty: &str,
        cmd: CniCommand,
        att: &Attachment,
        conf: &Value,
    ) -> Result<Vec<u8>, CniError> {
        let args = PluginArgs {
            container_id: att.container_id.clone(),
            netns: att.netns.clone(),
            ifname: att.ifname.clone(),
            args: att.cni_args.clone(),
        };
        let started = std::time::Instant::now();
        let res = self
            .exec
            .run(ty, cmd, &args, conf.to_string().as_bytes())
            .await;
        tracing::trace!(plugin = ty, command = cmd.as_str(), took = ?started.elapsed(), ok = res.is_ok(), "cni plugin ran");
        res
    }
}

/// The per-plugin configuration (spec 1.0.0 §"Deriving execution configuration"): the plugin's
/// object plus the list's `name` and `cniVersion`, `prevResult`, and `runtimeConfig` holding
/// only the capabilities the plugin asked for and the runtime has.
pub fn build_plugin_conf(
    list: &NetworkConfigList,
    plugin: &Value,
    prev: Option<&Value>,
    att: &Attachment,
) -> Value {
    let mut conf = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("name".into(), Value::String(list.name().to_string()));
    conf.insert(
        "cniVersion".into(),
        Value::String(list.cni_version().to_string()),
    );
    match prev {
        Some(p) => {
            conf.insert("prevResult".into(), p.clone());
        }
        None => {
            conf.remove("prevResult");
        }
    }
    let mut runtime = Map::new();
    if let Some(Value::Object(caps)) = plugin.get("capabilities") {
        for (cap, enabled) in caps {
            if enabled.as_bool() == Some(true) {
                if let Some(arg) = att.capability_args.get(cap) {
                    runtime.insert(cap.clone(), arg.clone());
                }
            }
        }
    }
    if runtime.is_empty() {
        conf.remove("runtimeConfig");
    } else {
        conf.insert("runtimeConfig".into(), Value::Object(runtime));
    }
    Value::Object(conf)
}

/// A default bound for one plugin call. Bridge and portmap take tens of milliseconds; iptables
/// waiting on the xtables lock behind a large ruleset can take seconds.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> NetworkConfigList {
        NetworkConfigList::from_value(json!({
            "cniVersion": "1.0.0", "name": "net",
            "plugins": [
                {"type": "bridge", "bridge": "br0"},
                {"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false}}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn injects_name_version_prev_result_and_only_declared_capabilities() {
        let l = list();
        let mut caps = Map::new();
        caps.insert(
            "portMappings".into(),
            json!([{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}]),
        );
        caps.insert("bandwidth".into(), json!({"ingressRate": 1}));
        let att = Attachment {
            capability_args: caps,
            ..Default::default()
        };
        let prev = json!({"cniVersion": "1.0.0", "ips": []});

        let bridge = build_plugin_conf(&l, &l.plugins()[0], None, &att);
        assert_eq!(
            bridge,
            json!({"type": "bridge", "bridge": "br0", "name": "net", "cniVersion": "1.0.0"})
        );

        let portmap = build_plugin_conf(&l, &l.plugins()[1], Some(&prev), &att);
        assert_eq!(portmap["prevResult"], prev);
        assert_eq!(
            portmap["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}]})
        );
        assert_eq!(portmap["name"], "net");
    }

    #[test]
    fn rejects_malformed_lists() {
        for (v, needle) in [
            (json!([]), "json object"),
            (
                json!({"name": "n", "plugins": [{"type": "x"}]}),
                "cniVersion",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "", "plugins": [{"type": "x"}]}),
                "name",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n"}),
                "plugins must be an array",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "plugins": []}),
                "must not be empty",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"bridge": "x"}]}),
                "plugins[0]",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../../bin/sh"}]}),
                "file name",
            ),
        ] {
            let msg = NetworkConfigList::from_value(v).unwrap_err().to_string();
            assert!(msg.contains(needle), "{msg} should mention {needle}");
        }
        assert!(NetworkConfigList::from_slice(b"{oops")
            .unwrap_err()
            .to_string()
            .contains("not json"));
    }
}
