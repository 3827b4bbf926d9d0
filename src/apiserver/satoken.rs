//! Service-account tokens: the `serviceaccounts/token` subresource (TokenRequest, what
//! `kubectl create token` and the kubelet's projected volumes call), and bearer-token
//! authentication of the JSON Web Tokens it issues. Tokens are ES256 JWTs with upstream's
//! claims; each is bound to its service account's uid and, when asked, to a Pod, Secret or
//! Node, so it stops working when that object is deleted or replaced. Signing stays in
//! `pki`; this file never sees key material.

use super::auth::UserInfo;
use super::ApiServer;
use crate::pki::ServiceAccountKey;
use crate::registry::rules::{ErrorType, FieldError};
use crate::registry::{ApiError, Target};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

/// Token lifetime when the request names none, and the bounds upstream enforces.
const DEFAULT_EXPIRATION: i64 = 3600;
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;
/// Clock skew tolerated on `nbf` and `exp`.
const LEEWAY: i64 = 60;

/// Issues and checks the cluster's service-account tokens.
pub struct TokenIssuer {
    key: ServiceAccountKey,
    issuer: String,
    audiences: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

/// The `kubernetes.io` private claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Private {
    pub namespace: String,
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    /// Absent on tokens bound to a Secret: those live as long as the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub k8s: Private,
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl TokenIssuer {
    /// The issuer is `https://kubernetes.default.svc.<domain>`, which is also the default
    /// audience, as on upstream clusters (k3s adds `k3s`; so do we, for tools that ask for it).
    pub fn new(key: ServiceAccountKey, cluster_domain: &str) -> TokenIssuer {
        let issuer = format!("https://kubernetes.default.svc.{cluster_domain}");
        TokenIssuer {
            key,
            audiences: vec![issuer.clone(), "k3s".into()],
            issuer,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A token for a legacy `kubernetes.io/service-account-token` Secret: bound to the
    /// Secret, no expiry, valid until the Secret, its token or the account goes.
    pub fn secret_token(&self, ns: &str, sa: Ref, secret: Ref) -> Result<String, ApiError> {
        let at = now();
        self.sign(&Claims {
            iss: self.issuer.clone(),
            sub: format!("system:serviceaccount:{ns}:{}", sa.name),
            aud: self.audiences.clone(),
            exp: None,
            iat: at,
            nbf: at,
            jti: uuid::Uuid::new_v4().to_string(),
            k8s: Private {
                namespace: ns.to_string(),
                serviceaccount: sa,
                pod: None,
                secret: Some(secret),
                node: None,
            },
        })
    }

    pub fn jwks(&self) -> Value {
        json!({"keys": [self.key.jwk()]})
    }

    /// Sign `claims` as a compact JWS.
    pub fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        let header = json!({"alg": "ES256", "kid": self.key.key_id});
        let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
        out.push('.');
        let body = serde_json::to_vec(claims).map_err(|e| ApiError::internal(e.to_string()))?;
        out.push_str(&URL_SAFE_NO_PAD.encode(body));
        let sig = self
            .key
            .sign(out.as_bytes())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(out)
    }

    /// The claims of a token this issuer signed that is valid now for one of the API's
    /// audiences; None for anything else (including tokens of other issuers).
    pub fn verify(&self, token: &str, at: i64) -> Option<Claims> {
        let mut parts = token.splitn(3, '.');
        let (h, b, s) = (parts.next()?, parts.next()?, parts.next()?);
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        if header["alg"] != "ES256" {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
        if !self
            .key
            .verify(&token.as_bytes()[..h.len() + 1 + b.len()], &sig)
        {
            return None;
        }
        let c: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b).ok()?).ok()?;
        let timely = c.nbf <= at + LEEWAY && c.exp.is_none_or(|e| at < e + LEEWAY);
        let ours = c.iss == self.issuer && c.aud.iter().any(|a| self.audiences.contains(a));
        (timely && ours).then_some(c)
    }
}

fn invalid(name: &str, field: &str, value: String, detail: &str) -> ApiError {
    ApiError::invalid(
        Target {
            group: "authentication.k8s.io",
            resource: "tokenrequests",
            kind: "TokenRequest",
            name,
        },
        &[FieldError {
            kind: ErrorType::Invalid,
            field: field.into(),
            value: Some(value),
            detail: detail.into(),
        }],
    )
}

async fn get(
    srv: &ApiServer,
    plural: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    let res = srv
        .registry
        .catalog()
        .snapshot()
        .lookup("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))?;
    srv.registry.get(&res, ns, name).await
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `POST .../serviceaccounts/<name>/token`: a TokenRequest in, the same with its status out.
pub(super) async fn token_request(
    srv: &Arc<ApiServer>,
    ns: &str,
    sa_name: &str,
    mut req: Value,
) -> Result<Value, ApiError> {
    let issuer = srv
        .tokens
        .get()
        .ok_or_else(|| ApiError::unavailable("service-account tokens are not configured"))?;
    let sa = get(srv, "serviceaccounts", Some(ns), sa_name).await?;
    let spec = &req["spec"];
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION,
        v => v.as_i64().ok_or_else(|| {
            ApiError::bad_request("TokenRequest spec.expirationSeconds must be an integer")
        })?,
    };
    if expiration < MIN_EXPIRATION {
        return Err(invalid(
            sa_name,
            "spec.expirationSeconds",
            expiration.to_string(),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > MAX_EXPIRATION {
        return Err(invalid(
            sa_name,
            "spec.expirationSeconds",
            expiration.to_string(),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let audiences: Vec<String> = match spec["audiences"].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect(),
        _ => issuer.audiences.clone(),
    };
    let mut private = Private {
        namespace: ns.to_string(),
        serviceaccount: Ref {
            name: sa_name.to_string(),
            uid: uid(&sa),
        },
        pod: None,
        secret: None,
        node: None,
    };
    let bound = &spec["boundObjectRef"];
    if bound.is_object() {
        let kind = bound["kind"].as_str().unwrap_or_default();
        let name = bound["name"].as_str().unwrap_or_default();
        let (plural, scope) = match kind {
            "Pod" => ("pods", Some(ns)),
            "Secret" => ("secrets", Some(ns)),
            "Node" => ("nodes", None),
            other => {
                return Err(invalid(
                    sa_name,
                    "spec.boundObjectRef.kind",
                    format!("\"{other}\""),
                    "supported values: \"Pod\", \"Secret\", \"Node\"",
                ))
            }
        };
        let obj = get(srv, plural, scope, name).await?;
        let want = bound["uid"].as_str().unwrap_or_default();
        if !want.is_empty() && want != uid(&obj) {
            return Err(ApiError::conflict(
                Target {
                    group: "",
                    resource: plural,
                    kind,
                    name,
                },
                &format!("the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"),
            ));
        }
        if kind == "Pod" && obj["spec"]["serviceAccountName"].as_str() != Some(sa_name) {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount \"{sa_name}\" to pod running with different serviceaccount name."
            )));
        }
        let r = Some(Ref {
            name: name.to_string(),
            uid: uid(&obj),
        });
        match kind {
            "Pod" => {
                private.pod = r;
                // Upstream also names the pod's node, so the token dies with the node too.
                if let Some(node) = obj["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                    if let Ok(n) = get(srv, "nodes", None, node).await {
                        private.node = Some(Ref {
                            name: node.to_string(),
                            uid: uid(&n),
                        });
                    }
                }
            }
            "Secret" => private.secret = r,
            _ => private.node = r,
        }
    }
    let at = now();
    let claims = Claims {
        iss: issuer.issuer.clone(),
        sub: format!("system:serviceaccount:{ns}:{sa_name}"),
        aud: audiences.clone(),
        exp: Some(at + expiration),
        iat: at,
        nbf: at,
        jti: uuid::Uuid::new_v4().to_string(),
        k8s: private,
    };
    let token = issuer.sign(&claims)?;
    let expires = jiff::Timestamp::from_second(at + expiration)
        .map_err(|e| ApiError::internal(e.to_string()))?
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    req["apiVersion"] = json!("authentication.k8s.io/v1");
    req["kind"] = json!("TokenRequest");
    req["metadata"]["name"] = json!(sa_name);
    req["metadata"]["namespace"] = json!(ns);
    req["metadata"]["creationTimestamp"] = json!(crate::registry::strategy::now_rfc3339());
    req["spec"]["audiences"] = json!(audiences);
    req["spec"]["expirationSeconds"] = json!(expiration);
    req["status"] = json!({"token": token, "expirationTimestamp": expires});
    Ok(req)
}

/// Whether the object `r` names still exists with the same uid (and, for a Secret, still
/// holds this very token: a Secret whose token was replaced revokes the old one).
async fn alive(srv: &ApiServer, plural: &str, ns: Option<&str>, r: &Ref) -> Option<Value> {
    let obj = get(srv, plural, ns, &r.name).await.ok()?;
    (uid(&obj) == r.uid).then_some(obj)
}

/// The service account a bearer token speaks for, if it is one of ours and everything it is
/// bound to still exists.
pub(super) async fn authenticate(srv: &ApiServer, token: &str) -> Option<UserInfo> {
    let c = srv.tokens.get()?.verify(token, now())?;
    let ns = c.k8s.namespace.as_str();
    alive(srv, "serviceaccounts", Some(ns), &c.k8s.serviceaccount).await?;
    if let Some(p) = &c.k8s.pod {
        alive(srv, "pods", Some(ns), p).await?;
    }
    if let Some(s) = &c.k8s.secret {
        let secret = alive(srv, "secrets", Some(ns), s).await?;
        let stored = secret["data"]["token"].as_str().unwrap_or_default();
        let stored = base64::engine::general_purpose::STANDARD
            .decode(stored)
            .unwrap_or_default();
        if stored != token.as_bytes() {
            return None;
        }
    }
    if let Some(n) = &c.k8s.node {
        alive(srv, "nodes", None, n).await?;
    }
    Some(UserInfo {
        name: c.sub.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        let dir = tempfile::tempdir().unwrap();
        TokenIssuer::new(
            ServiceAccountKey::load_or_create(dir.path()).unwrap(),
            "cluster.local",
        )
    }

    fn claims(at: i64, exp: Option<i64>, aud: &str) -> Claims {
        Claims {
            iss: "https://kubernetes.default.svc.cluster.local".into(),
            sub: "system:serviceaccount:default:default".into(),
            aud: vec![aud.into()],
            exp,
            iat: at,
            nbf: at,
            jti: "j".into(),
            k8s: Private {
                namespace: "default".into(),
                serviceaccount: Ref {
                    name: "default".into(),
                    uid: "u".into(),
                },
                pod: None,
                secret: None,
                node: None,
            },
        }
    }

    #[test]
    fn signed_tokens_verify_until_they_expire() {
        let i = issuer();
        let c = claims(1000, Some(2000), "k3s");
        let t = i.sign(&c).unwrap();
        assert_eq!(i.verify(&t, 1500), Some(c));
        assert!(i.verify(&t, 2000 + LEEWAY).is_none(), "expired");
        assert!(i.verify(&t, 1000 - 2 * LEEWAY).is_none(), "not yet valid");
    }

    #[test]
    fn foreign_tampered_and_malformed_tokens_are_refused() {
        let i = issuer();
        let t = i.sign(&claims(1000, None, "k3s")).unwrap();
        assert!(issuer().verify(&t, 1000).is_none(), "another key's token");
        let mut parts: Vec<String> = t.split('.').map(String::from).collect();
        let mut c = claims(1000, None, "k3s");
        c.sub = "system:serviceaccount:kube-system:admin".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        assert!(
            i.verify(&parts.join("."), 1000).is_none(),
            "tampered claims"
        );
        let other_aud = i.sign(&claims(1000, None, "vault")).unwrap();
        assert!(i.verify(&other_aud, 1000).is_none(), "audience not ours");
        for junk in ["", "a.b", "a.b.c", "....", &"x".repeat(10_000)] {
            assert!(i.verify(junk, 1000).is_none(), "{junk:?}");
        }
        let none_alg = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            parts[1]
        );
        assert!(i.verify(&none_alg, 1000).is_none(), "alg none");
    }
}
