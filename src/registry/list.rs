//! Lists: selectors, limit and continue tokens at a consistent revision, as upstream pages.
//!
//! A continue token is base64 of `{"v":"meta.k8s.io/v1","rv":<revision>,"start":<key>}`:
//! the next page starts after `start` and reads the store as of `rv`, so a paginated list is
//! one snapshot. Once that revision is compacted the token is refused with 410.

use super::codec;
use super::error::{ApiError, ApiResult};
use super::resources::ResourceInfo;
use super::selectors::{FieldSelector, LabelSelector};
use super::Registry;
use crate::store::{KeyValue, StoreError};
use base64::Engine;
use serde_json::{json, Value};

#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub limit: usize,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// One page of a list: the matching objects as stored (encode with `codec`), the revision it
/// was read at, and the continue token if more remain.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<KeyValue>,
    pub revision: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

impl ListPage {
    /// ListMeta as JSON.
    pub fn list_meta(&self) -> Value {
        let mut m = json!({ "resourceVersion": self.revision.to_string() });
        if let Some(c) = &self.continue_token {
            m["continue"] = json!(c);
        }
        if let Some(r) = self.remaining {
            m["remainingItemCount"] = json!(r);
        }
        m
    }
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

fn encode_continue(rv: u64, start: &str) -> String {
    let j = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(j.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, String)> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let j: Value = serde_json::from_slice(&b).map_err(|_| bad())?;
    match (j["rv"].as_u64(), j["start"].as_str()) {
        (Some(rv), Some(start)) if j["v"] == "meta.k8s.io/v1" && rv > 0 => {
            Ok((rv, start.to_string()))
        }
        _ => Err(bad()),
    }
}

impl Registry {
    pub async fn list(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<ListPage> {
        let prefix = res.list_prefix(ns);
        let (mut revision, mut start) = match &opts.continue_token {
            Some(t) if !t.is_empty() => {
                if opts
                    .resource_version
                    .as_deref()
                    .is_some_and(|v| !v.is_empty() && v != "0")
                {
                    return Err(ApiError::bad_request(
                        "specifying resource version is not allowed when using continue",
                    ));
                }
                let (rv, start) = decode_continue(t)?;
                (Some(rv), Some(format!("{prefix}{start}")))
            }
            _ => (self.requested_revision(opts)?, None),
        };
        let filtering = !opts.label_selector.is_empty() || !opts.field_selector.is_empty();
        let fetch = match (opts.limit, filtering) {
            (0, _) => 0,
            (l, false) => l,
            (l, true) => l.max(256),
        };
        let mut items = Vec::new();
        loop {
            let page = self
                .store
                .list(&prefix, start.as_deref(), fetch, revision)
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } if opts.continue_token.is_some() => {
                        ApiError::gone(CONTINUE_EXPIRED)
                    }
                    e => ApiError::from_store(
                        e,
                        super::Target {
                            group: &res.group,
                            resource: &res.plural,
                            kind: &res.kind,
                            name: "",
                        },
                    ),
                })?;
            revision = Some(page.revision);
            let n = page.kvs.len();
            for (i, kv) in page.kvs.into_iter().enumerate() {
                start = Some(kv.key.clone());
                if filtering && !self.matches(res, &kv, opts)? {
                    continue;
                }
                items.push(kv);
                if opts.limit > 0 && items.len() == opts.limit {
                    let more = i + 1 < n || page.more;
                    let key = start.as_deref().unwrap_or_default();
                    let token = more.then(|| {
                        encode_continue(page.revision, key.strip_prefix(&prefix).unwrap_or(key))
                    });
                    let remaining = (more && !filtering).then_some(page.remaining);
                    return Ok(ListPage {
                        items,
                        revision: page.revision,
                        continue_token: token,
                        remaining,
                    });
                }
            }
            if !page.more || n == 0 {
                return Ok(ListPage {
                    items,
                    revision: page.revision,
                    continue_token: None,
                    remaining: None,
                });
            }
        }
    }

    fn requested_revision(&self, opts: &ListOptions) -> ApiResult<Option<u64>> {
        let rv = opts.resource_version.as_deref().unwrap_or("");
        if rv.is_empty() || rv == "0" {
            return Ok(None);
        }
        let n: u64 = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version \"{rv}\"")))?;
        match opts.resource_version_match.as_deref() {
            Some("Exact") => Ok(Some(n)),
            Some("NotOlderThan") | None | Some("") => {
                let cur = self.store.current_revision();
                if n > cur {
                    return Err(ApiError::timeout(format!("Too large resource version: {n}, current: {cur}")));
                }
                Ok(None)
            }
            Some(other) => Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""
            ))),
        }
    }

    pub(crate) fn matches(
        &self,
        _res: &ResourceInfo,
        kv: &KeyValue,
        opts: &ListOptions,
    ) -> ApiResult<bool> {
        let obj = codec::decode(kv)?;
        Ok(opts.label_selector.matches(&obj["metadata"]["labels"])
            && opts.field_selector.matches(&obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_round_trip() {
        let t = encode_continue(42, "default/pod-9");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "default/pod-9".to_string())
        );
        assert!(decode_continue("garbage!").is_err());
    }
}
