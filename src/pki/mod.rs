//! Cluster PKI: the cluster CA, the API server's serving certificate, the
//! admin client certificate, client certificates for nodes and users, the
//! admin kubeconfig, and the rustls configurations built from them.
//!
//! This module owns everything under `<data-dir>/server/tls` and is the only
//! code that reads or writes private keys. It must never log or return key
//! material except through the explicit outputs below (key PEMs from
//! [`Pki::issue_client_cert`], the admin kubeconfig), never replace an
//! existing CA (that would invalidate every credential in the cluster), and
//! never depend on a process-wide rustls crypto provider.

mod ca;
mod der;
mod error;
mod files;
mod inspect;
mod issue;
mod kubeconfig;
mod sakey;
mod tls;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ca::CertAuthority;
use issue::{IssuedPair, LeafSpec, SanEntry, Usage};

pub use error::PkiError;
pub use files::write_file_atomic;
pub use inspect::{user_from_cert, UserInfo};
pub use sakey::ServiceAccountKey;

/// Leaf certificates start this far in the past, so a node whose clock is
/// slightly behind the server's still accepts them.
pub(crate) const BACKDATE: Duration = Duration::from_secs(3600);
/// Validity of the serving and admin certificates when (re)issued.
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// Leaves expiring sooner than this are re-issued on start.
const RENEW_BEFORE: Duration = Duration::from_secs(90 * 86_400);

const ADMIN_USER: &str = "system:admin";
const ADMIN_GROUP: &str = "system:masters";
/// Common name of the serving certificate; clients match on SANs only.
const SERVING_CN: &str = "k1s";

/// Where the PKI lives and which names the serving certificate must carry.
#[derive(Clone, Debug)]
pub struct PkiConfig {
    /// `<data-dir>/server/tls`
    pub dir: PathBuf,
    /// Extra hostnames and IP addresses (node addresses, `--tls-san`).
    pub sans: Vec<String>,
    /// First IP of the service CIDR (the `kubernetes` service), e.g. 10.43.0.1.
    pub service_ip: IpAddr,
    /// Cluster DNS domain, e.g. `cluster.local`.
    pub cluster_domain: String,
}

/// The loaded cluster PKI. Cheap to clone; key material stays private.
#[derive(Clone)]
pub struct Pki {
    /// The cluster CA certificate (PEM), for clients to trust.
    pub ca_cert_pem: String,
    /// The API server's serving certificate (PEM).
    pub serving_cert_pem: String,
    /// The admin client certificate (PEM), CN system:admin, O system:masters.
    pub admin_cert_pem: String,
    serving_key_pem: String,
    admin_key_pem: String,
    ca: Arc<CertAuthority>,
}

impl std::fmt::Debug for Pki {
    // Hand-written so private keys can never end up in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

impl Pki {
    /// Load the PKI from `cfg.dir`, creating whatever is missing. The CA is
    /// created only when neither `ca.crt` nor `ca.key` exists. The serving
    /// and admin certificates are re-issued with the existing CA when they
    /// are missing, expire within 90 days, were not issued by this CA, or
    /// (serving) lack one of the requested names.
    pub fn load_or_create(cfg: &PkiConfig) -> Result<Pki, PkiError> {
        files::ensure_private_dir(&cfg.dir)?;
        let now = now_unix();
        let (ca, ca_created) = load_or_create_ca(&cfg.dir, now)?;

        let sans = required_sans(cfg)?;
        let serving = ensure_leaf(
            &ca,
            &cfg.dir,
            "serving",
            &LeafSpec {
                common_name: SERVING_CN,
                organizations: &[],
                usage: Usage::Server(&sans),
                validity: LEAF_VALIDITY,
            },
            ca_created,
            now,
        )?;
        let admin = ensure_leaf(
            &ca,
            &cfg.dir,
            "admin",
            &LeafSpec {
                common_name: ADMIN_USER,
                organizations: &[ADMIN_GROUP],
                usage: Usage::Client,
                validity: LEAF_VALIDITY,
            },
            ca_created,
            now,
        )?;
        Ok(Pki {
            ca_cert_pem: ca.cert_pem.clone(),
            serving_cert_pem: serving.cert_pem,
            admin_cert_pem: admin.cert_pem,
            serving_key_pem: serving.key_pem,
            admin_key_pem: admin.key_pem,
            ca: Arc::new(ca),
        })
    }

    /// Issue a client certificate signed by the cluster CA for user
    /// `common_name` in `groups` (one O attribute each), valid for
    /// `validity_days`. Returns `(cert_pem, key_pem)`; nothing is written.
    pub fn issue_client_cert(
        &self,
        common_name: &str,
        groups: &[&str],
        validity_days: u32,
    ) -> Result<(String, String), PkiError> {
        let pair = issue::issue_leaf(
            &self.ca,
            &LeafSpec {
                common_name,
                organizations: groups,
                usage: Usage::Client,
                validity: Duration::from_secs(u64::from(validity_days) * 86_400),
            },
            now_unix(),
        )?;
        Ok((pair.cert_pem, pair.key_pem))
    }
}

impl Pki {
    /// Issue a serving certificate for a node agent's HTTPS server, named by `names`
    /// (hostnames and IPs). Returns `(cert_pem, key_pem)`; nothing is written.
    pub fn issue_serving_cert(
        &self,
        common_name: &str,
        names: &[String],
        validity_days: u32,
    ) -> Result<(String, String), PkiError> {
        let mut sans: Vec<SanEntry> = Vec::new();
        for n in names {
            let e = SanEntry::parse(n)?;
            if !sans.contains(&e) {
                sans.push(e);
            }
        }
        let pair = issue::issue_leaf(
            &self.ca,
            &LeafSpec {
                common_name,
                organizations: &[],
                usage: Usage::Server(&sans),
                validity: Duration::from_secs(u64::from(validity_days) * 86_400),
            },
            now_unix(),
        )?;
        Ok((pair.cert_pem, pair.key_pem))
    }
}

fn now_unix() -> u64 {
    // A clock before 1970 is a broken clock; treat it as the epoch rather
    // than failing to start.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Load `ca.crt`/`ca.key`, or create both if neither exists. Returns the CA
/// and whether it was just created.
fn load_or_create_ca(dir: &Path, now: u64) -> Result<(CertAuthority, bool), PkiError> {
    let cert_path = dir.join("ca.crt");
    let key_path = dir.join("ca.key");
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let cert_pem = files::read_private_pem(&cert_path)?;
            let key_pem = files::read_private_pem(&key_path)?;
            let ca = CertAuthority::from_pem(&cert_pem, &key_pem, &cert_path, &key_path)?;
            Ok((ca, false))
        }
        (false, false) => {
            let (ca, key_pem) = CertAuthority::create(now)?;
            // Key first: a crash in between leaves a lone key, which is
            // reported instead of silently replaced.
            files::write_private_pem(&key_path, &key_pem)?;
            files::write_private_pem(&cert_path, &ca.cert_pem)?;
            tracing::info!(path = %cert_path.display(), "created cluster ca");
            Ok((ca, true))
        }
        (true, false) => Err(PkiError::IncompleteCa {
            present: cert_path,
            missing: key_path,
        }),
        (false, true) => Err(PkiError::IncompleteCa {
            present: key_path,
            missing: cert_path,
        }),
    }
}

/// The names every serving certificate carries, then the caller's extras,
/// without duplicates.
fn required_sans(cfg: &PkiConfig) -> Result<Vec<SanEntry>, PkiError> {
    let domain = cfg.cluster_domain.trim_matches('.');
    let mut names: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "::1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !domain.is_empty() {
        names.push(format!("kubernetes.default.svc.{domain}"));
    }
    names.push(cfg.service_ip.to_string());
    names.extend(cfg.sans.iter().filter(|s| !s.trim().is_empty()).cloned());

    let mut out: Vec<SanEntry> = Vec::with_capacity(names.len());
    for name in &names {
        let entry = SanEntry::parse(name)?;
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Reuse `<stem>.crt`/`<stem>.key` if they are still good, otherwise issue
/// and store a new pair. `force` re-issues unconditionally (new CA).
fn ensure_leaf(
    ca: &CertAuthority,
    dir: &Path,
    stem: &str,
    spec: &LeafSpec<'_>,
    force: bool,
    now: u64,
) -> Result<IssuedPair, PkiError> {
    let cert_path = dir.join(format!("{stem}.crt"));
    let key_path = dir.join(format!("{stem}.key"));
    let reason = if force {
        Some("the cluster ca is new".to_string())
    } else if !cert_path.exists() || !key_path.exists() {
        Some("certificate or key file is missing".to_string())
    } else {
        let cert_pem = files::read_private_pem(&cert_path)?;
        let key_pem = files::read_private_pem(&key_path)?;
        match stale_reason(ca, &cert_pem, &key_pem, &cert_path, &key_path, spec, now)? {
            None => return Ok(IssuedPair { cert_pem, key_pem }),
            Some(reason) => Some(reason),
        }
    };
    let pair = issue::issue_leaf(ca, spec, now)?;
    files::write_private_pem(&key_path, &pair.key_pem)?;
    files::write_private_pem(&cert_path, &pair.cert_pem)?;
    let reason = reason.unwrap_or_default();
    tracing::info!(path = %cert_path.display(), %reason, "issued {stem} certificate");
    Ok(pair)
}

/// Why a stored leaf must be re-issued, or `None` if it can be reused.
/// Unparseable files are errors, not reasons: they need a human.
fn stale_reason(
    ca: &CertAuthority,
    cert_pem: &str,
    key_pem: &str,
    cert_path: &Path,
    key_path: &Path,
    spec: &LeafSpec<'_>,
    now: u64,
) -> Result<Option<String>, PkiError> {
    let cert_der = inspect::parse_cert_pem(cert_pem, cert_path)?;
    let facts = inspect::facts(&cert_der).map_err(|reason| PkiError::InvalidCertificate {
        path: cert_path.to_path_buf(),
        reason,
    })?;
    let spki = inspect::key_spki(key_pem, key_path)?;

    if spki != facts.spki_der {
        return Ok(Some(format!(
            "{} does not match the certificate",
            key_path.display()
        )));
    }
    if facts.issuer_der != ca.subject_der {
        return Ok(Some("issued by a different ca".into()));
    }
    let renew_at = i64::try_from(now.saturating_add(RENEW_BEFORE.as_secs())).unwrap_or(i64::MAX);
    if facts.not_after_unix < renew_at {
        return Ok(Some("expires within 90 days".into()));
    }
    let check = match spec.usage {
        Usage::Server(sans) => {
            let missing: Vec<String> = sans
                .iter()
                .filter(|san| match san {
                    SanEntry::Dns(name) => !facts.dns_names.contains(name),
                    SanEntry::Ip(ip) => !facts.ip_addresses.contains(ip),
                })
                .map(ToString::to_string)
                .collect();
            if !missing.is_empty() {
                return Ok(Some(format!(
                    "missing subject alternative names: {}",
                    missing.join(", ")
                )));
            }
            tls::check_serving_leaf(&ca.cert_der, &cert_der)
        }
        Usage::Client => {
            let expected = UserInfo {
                name: spec.common_name.to_string(),
                groups: spec.organizations.iter().map(|g| g.to_string()).collect(),
            };
            if user_from_cert(&cert_der).as_ref() != Some(&expected) {
                return Ok(Some("subject is not the expected user and groups".into()));
            }
            tls::check_client_leaf(&ca.cert_der, &cert_der)
        }
    };
    Ok(check
        .err()
        .map(|e| format!("does not verify against the ca: {e}")))
}
