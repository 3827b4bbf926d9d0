//! The admin kubeconfig, in the same layout k3s writes.

use base64::Engine as _;

use super::Pki;

impl Pki {
    /// Admin kubeconfig YAML: cluster, user and context all named
    /// "default", with the CA and the admin credentials embedded as base64
    /// data fields.
    pub fn admin_kubeconfig(&self, server_url: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        // Emitted by hand rather than through serde_yaml so this stays
        // infallible: every value is base64 (plain-scalar safe) or a fixed
        // word, except the URL, which is double-quoted and escaped.
        format!(
            "apiVersion: v1\n\
             clusters:\n\
             - cluster:\n    \
                 certificate-authority-data: {ca}\n    \
                 server: {server}\n  \
               name: default\n\
             contexts:\n\
             - context:\n    \
                 cluster: default\n    \
                 user: default\n  \
               name: default\n\
             current-context: default\n\
             kind: Config\n\
             preferences: {{}}\n\
             users:\n\
             - name: default\n  \
               user:\n    \
                 client-certificate-data: {cert}\n    \
                 client-key-data: {key}\n",
            ca = b64(&self.ca_cert_pem),
            server = yaml_quote(server_url),
            cert = b64(&self.admin_cert_pem),
            key = b64(&self.admin_key_pem),
        )
    }
}

/// A YAML double-quoted scalar for arbitrary text.
fn yaml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
