//! The config file: YAML whose keys are the long flag names (`data-dir: /srv/k1s`,
//! `tls-san: [a, b]`), read before the flags so that flags win, as k3s does. Unknown keys and
//! values of the wrong shape are errors that name the file and the key.

use crate::cli::{Cli, Command};
use clap::{CommandFactory, FromArgMatches};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {why}")]
    Invalid { path: PathBuf, why: String },
    #[error("{0}")]
    Flags(#[from] clap::Error),
}

/// Parse argv, merging the config file named by `--config` (or `K1S_CONFIG_FILE`, or the
/// default path if it exists) in front of the flags.
pub fn parse(args: Vec<OsString>) -> Result<Cli, ConfigError> {
    let first = Cli::command().try_get_matches_from(&args)?;
    let cli = Cli::from_arg_matches(&first)?;
    let Command::Server(ref server) = cli.command else {
        return Ok(cli);
    };
    let explicit = first
        .subcommand_matches("server")
        .and_then(|m| m.value_source("config"))
        .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue);
    let path = server.config.clone();
    if !explicit && !path.exists() {
        return Ok(cli);
    }
    let extra = file_args(&path)?;
    if extra.is_empty() {
        return Ok(cli);
    }
    // insert the file's flags right after the subcommand so the command line overrides them
    let pos = args
        .iter()
        .position(|a| a == "server")
        .map(|p| p + 1)
        .unwrap_or(args.len());
    let mut merged = args[..pos].to_vec();
    merged.extend(extra);
    merged.extend_from_slice(&args[pos..]);
    let m = Cli::command().try_get_matches_from(&merged)?;
    Ok(Cli::from_arg_matches(&m)?)
}

/// The config file as `--key=value` arguments.
fn file_args(path: &Path) -> Result<Vec<OsString>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let invalid = |why: String| ConfigError::Invalid {
        path: path.into(),
        why,
    };
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| invalid(format!("not valid YAML: {e}")))?;
    let map = match doc {
        serde_yaml::Value::Null => return Ok(vec![]),
        serde_yaml::Value::Mapping(m) => m,
        _ => {
            return Err(invalid(
                "the top level must be a mapping of flag names to values".into(),
            ))
        }
    };
    let cmd = Cli::command();
    let server = cmd.find_subcommand("server").expect("server subcommand");
    let known: Vec<String> = server
        .get_arguments()
        .filter_map(|a| a.get_long().map(String::from))
        .collect();
    let mut out = vec![];
    for (k, v) in map {
        let key = k
            .as_str()
            .ok_or_else(|| invalid(format!("key {k:?} is not a string")))?
            .to_string();
        if key == "config" || !known.contains(&key) {
            return Err(invalid(format!("unknown key {key:?}")));
        }
        let values = match v {
            serde_yaml::Value::Sequence(items) => items
                .into_iter()
                .map(|i| scalar(&key, i))
                .collect::<Result<Vec<_>, _>>(),
            other => scalar(&key, other).map(|s| vec![s]),
        }
        .map_err(invalid)?;
        for s in values {
            out.push(OsString::from(format!("--{key}={s}")));
        }
    }
    Ok(out)
}

fn scalar(key: &str, v: serde_yaml::Value) -> Result<String, String> {
    match v {
        serde_yaml::Value::String(s) => Ok(s),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        serde_yaml::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!(
            "key {key:?} must be a string, number, boolean or a list of them"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(
            &f,
            "data-dir: /from/file\nhttps-listen-port: 7443\ntls-san: [a.example, 10.0.0.9]\n",
        )
        .unwrap();
        let c = parse(args(&[
            "k1s",
            "server",
            "--config",
            f.to_str().unwrap(),
            "--https-listen-port",
            "8443",
        ]))
        .unwrap();
        let Command::Server(s) = c.command else {
            panic!("not a server command")
        };
        assert_eq!(s.data_dir, PathBuf::from("/from/file"));
        assert_eq!(s.https_listen_port, 8443);
        assert_eq!(s.tls_san, vec!["a.example", "10.0.0.9"]);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(&f, "data-dri: /x\n").unwrap();
        let e = parse(args(&["k1s", "server", "--config", f.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown key \"data-dri\"") && e.contains("c.yaml"),
            "{e}"
        );
        std::fs::write(&f, "https-listen-port: [\n").unwrap();
        let e = parse(args(&["k1s", "server", "--config", f.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid YAML"), "{e}");
        std::fs::write(&f, "https-listen-port: lots\n").unwrap();
        let e = parse(args(&["k1s", "server", "--config", f.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("https-listen-port"), "{e}");
        let e = parse(args(&[
            "k1s",
            "server",
            "--config",
            "/nonexistent/k1s.yaml",
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/k1s.yaml"), "{e}");
        let e = parse(args(&["k1s", "server", "--service-cidr", "10.43.0.0/33"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--service-cidr"), "{e}");
        for bad in ["30000", "32767-30000", "0-10", "a-b", "30000-70000"] {
            let e = parse(args(&["k1s", "server", "--service-node-port-range", bad]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("--service-node-port-range"), "{e}");
        }
    }
}
