//! Service-account tokens for a pod's projected volumes: requested from the API with
//! TokenRequest, bound to the pod (so they die with it), cached per audience and lifetime, and
//! renewed once 80% of their lifetime or 24 hours have passed, as upstream's token manager
//! does. The volume refresh then swaps the new token in under the containers' feet.

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A projected token source: its audience ("" for the API's own) and lifetime in seconds.
pub type TokenKey = (String, i64);

/// Upstream's default lifetime of a projected token when the volume names none.
const DEFAULT_SECONDS: i64 = 3600;

#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<BTreeMap<TokenKey, (String, Instant, Duration)>>,
}

/// The token sources of a pod's projected volumes.
pub fn wanted(pod: &Pod) -> Vec<TokenKey> {
    let mut out: Vec<TokenKey> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .filter_map(|s| s.service_account_token.as_ref())
        .map(|t| {
            (
                t.audience.clone().unwrap_or_default(),
                t.expiration_seconds.unwrap_or(DEFAULT_SECONDS),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn fresh(issued: Instant, ttl: Duration) -> bool {
    let age = issued.elapsed();
    age < ttl.mul_f64(0.8) && age < Duration::from_secs(24 * 3600)
}

impl TokenCache {
    /// A current token for each of the pod's token sources, requesting those missing or due.
    pub async fn for_pod(
        &self,
        client: &kube::Client,
        pod: &Pod,
    ) -> Result<BTreeMap<TokenKey, String>, String> {
        let mut out = BTreeMap::new();
        for key in wanted(pod) {
            let cached = self
                .tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .filter(|(_, issued, ttl)| fresh(*issued, *ttl))
                .map(|(t, _, _)| t.clone());
            let token = match cached {
                Some(t) => t,
                None => {
                    let t = request(client, pod, &key).await?;
                    self.tokens
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key.clone(), (t.clone(), Instant::now(), ttl(key.1)));
                    t
                }
            };
            out.insert(key, token);
        }
        Ok(out)
    }
}

fn ttl(seconds: i64) -> Duration {
    Duration::from_secs(seconds.max(0) as u64)
}

async fn request(
    client: &kube::Client,
    pod: &Pod,
    (aud, seconds): &TokenKey,
) -> Result<String, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let spec = pod.spec.clone().unwrap_or_default();
    let sa = spec
        .service_account_name
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: if aud.is_empty() {
                vec![]
            } else {
                vec![aud.clone()]
            },
            expiration_seconds: Some(*seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let resp = api
        .create_token_request(&sa, &PostParams::default(), &req)
        .await
        .map_err(|e| format!("requesting a token for service account {ns}/{sa}: {e}"))?;
    resp.status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("the token request for {ns}/{sa} returned no token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_at_80_percent_of_their_life() {
        let ttl = Duration::from_secs(100);
        assert!(fresh(Instant::now(), ttl));
        let old = Instant::now() - Duration::from_secs(81);
        assert!(!fresh(old, ttl));
        let day = Instant::now() - Duration::from_secs(24 * 3600 + 1);
        assert!(!fresh(day, Duration::from_secs(1 << 32)));
    }

    #[test]
    fn sources_are_keyed_by_audience_and_lifetime() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "volumes": [
                {"name": "a", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "t", "expirationSeconds": 3607}},
                    {"serviceAccountToken": {"path": "v", "audience": "vault"}}]}},
                {"name": "b", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "t", "expirationSeconds": 3607}}]}}]}
        }))
        .unwrap();
        assert_eq!(
            wanted(&pod),
            vec![("".to_string(), 3607), ("vault".to_string(), 3600)]
        );
    }
}
