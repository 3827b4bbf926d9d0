//! The node's one masquerade rule for pod traffic: packets from the pod CIDR to anywhere outside
//! the cluster CIDR (and not multicast) leave with the node's address; pod-to-pod traffic, also
//! to other nodes, keeps its source. This replaces the bridge plugin's `ipMasq`, which writes a
//! chain per pod that exempts only the node's own pod CIDR.
//!
//! Written with the `iptables` binary the plugins themselves use, so the rule lands in the same
//! backend (iptables-nft on Debian 12) and its order relative to portmap's is well defined:
//! portmap prepends its masquerade jump to POSTROUTING, this rule is appended. The module owns
//! the chain `K1S-MASQ-<bridge>` and its jump; it must never touch any other chain or rule.

use std::process::Stdio;
use std::time::Duration;

use ipnetwork::IpNetwork;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::cni::error::CniError;

const COMMENT: &str = "k1s: masquerade pod traffic leaving the cluster";
const TIMEOUT: Duration = Duration::from_secs(30);

/// The masquerade rule of one bridge.
#[derive(Debug, Clone)]
pub struct Masquerade {
    v6: bool,
    chain: String,
    pod_cidr: IpNetwork,
    cluster_cidr: IpNetwork,
}

impl Masquerade {
    /// `bridge` is at most 15 bytes, so the chain name stays within iptables' 28.
    pub fn new(bridge: &str, pod_cidr: IpNetwork, cluster_cidr: IpNetwork) -> Self {
        Masquerade {
            v6: pod_cidr.is_ipv6(),
            chain: format!("K1S-MASQ-{bridge}"),
            pod_cidr,
            cluster_cidr,
        }
    }

    pub fn chain(&self) -> &str {
        &self.chain
    }

    fn program(&self) -> &'static str {
        if self.v6 {
            "ip6tables"
        } else {
            "iptables"
        }
    }

    fn jump_rule(&self) -> Vec<String> {
        [
            "POSTROUTING",
            "-s",
            &self.pod_cidr.to_string(),
            "-m",
            "comment",
            "--comment",
            COMMENT,
            "-j",
            &self.chain,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Installs or refreshes the chain and its jump. Idempotent.
    pub async fn ensure(&self) -> Result<(), CniError> {
        let multicast = if self.v6 { "ff00::/8" } else { "224.0.0.0/4" };
        // Declaring the chain in a --noflush restore flushes and refills it in one transaction,
        // so there is no moment without the rule.
        let restore = format!(
            "*nat\n:{c} - [0:0]\n-A {c} -d {cluster} -j RETURN\n-A {c} -d {multicast} -j RETURN\n\
             -A {c} -j MASQUERADE\nCOMMIT\n",
            c = self.chain,
            cluster = self.cluster_cidr,
        );
        let restore_prog = if self.v6 {
            "ip6tables-restore"
        } else {
            "iptables-restore"
        };
        run(restore_prog, &["-w", "--noflush"], Some(restore.as_bytes())).await?;

        let rule = self.jump_rule();
        let mut check: Vec<&str> = vec!["-w", "-t", "nat", "-C"];
        check.extend(rule.iter().map(String::as_str));
        if run(self.program(), &check, None).await.is_err() {
            let mut append: Vec<&str> = vec!["-w", "-t", "nat", "-A"];
            append.extend(rule.iter().map(String::as_str));
            run(self.program(), &append, None).await?;
        }
        Ok(())
    }

    /// Removes every jump to the chain (whatever pod CIDR it was written for) and the chain.
    /// Already gone is fine.
    pub async fn remove(&self) -> Result<(), CniError> {
        let listing = run(
            self.program(),
            &["-w", "-t", "nat", "-S", "POSTROUTING"],
            None,
        )
        .await?;
        let target = format!("-j {}", self.chain);
        for line in listing.lines() {
            let Some(spec) = line.strip_prefix("-A POSTROUTING ") else {
                continue;
            };
            if !spec.ends_with(&target) {
                continue;
            }
            // `-S` prints the rule as arguments, quoting the comment.
            let mut args: Vec<String> = vec!["-w".into(), "-t".into(), "nat".into(), "-D".into()];
            args.push("POSTROUTING".into());
            args.extend(split_rule(spec));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(self.program(), &args, None).await?;
        }
        for op in ["-F", "-X"] {
            let r = run(self.program(), &["-w", "-t", "nat", op, &self.chain], None).await;
            if let Err(CniError::Iptables { stderr, .. }) = &r {
                if stderr.contains("No chain") || stderr.contains("does not exist") {
                    return Ok(());
                }
            }
            r?;
        }
        Ok(())
    }
}

/// Splits one `iptables -S` rule into arguments, honouring the double quotes it puts around
/// comments.
fn split_rule(spec: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

async fn run(
    program: &'static str,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<String, CniError> {
    let fail = |stderr: String| CniError::Iptables {
        program,
        args: args.join(" "),
        stderr,
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| fail(format!("cannot run: {e}")))?;
    if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(data)
            .await
            .map_err(|e| fail(format!("cannot write stdin: {e}")))?;
    }
    let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| fail(format!("timed out after {TIMEOUT:?}")))?
        .map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_iptables_save_quoting() {
        let spec = r#"-s 10.42.0.0/24 -m comment --comment "k1s: masquerade \"pod\" traffic" -j K1S-MASQ-k1s0"#;
        assert_eq!(
            split_rule(spec),
            vec![
                "-s",
                "10.42.0.0/24",
                "-m",
                "comment",
                "--comment",
                "k1s: masquerade \"pod\" traffic",
                "-j",
                "K1S-MASQ-k1s0"
            ]
        );
    }

    #[test]
    fn chain_name_fits_iptables_limit() {
        let m = Masquerade::new(
            "k1s0-123456789a",
            "10.42.0.0/24".parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
        );
        assert!(m.chain().len() <= 28);
    }
}
