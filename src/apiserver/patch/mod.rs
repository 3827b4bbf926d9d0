//! PATCH semantics and server-side apply for JSON objects.
//!
//! This module owns the four patch types the API server accepts (RFC 6902
//! JSON patch, RFC 7386 merge patch, Kubernetes strategic merge patch and
//! server-side apply) and the bookkeeping of `metadata.managedFields` that
//! apply depends on, including the ownership recorded for ordinary writes.
//!
//! Everything here is a pure function of its arguments. This module must
//! never do I/O, talk HTTP, read or write storage, look at the clock (callers
//! pass `now`) or panic on client input: every malformed patch becomes a
//! [`PatchError`].

mod apply;
mod diff;
mod fieldset;
mod managed;
mod schema;
mod strategic;

#[cfg(test)]
mod tests_apply;
#[cfg(test)]
mod tests_json;
#[cfg(test)]
mod tests_managed;
#[cfg(test)]
mod tests_smp;

use serde_json::Value;

pub use apply::apply;
pub use managed::track_update;
pub use strategic::strategic_merge_patch;

/// Deepest nesting accepted in a document or a patch. The merge functions
/// recurse, so an attacker-controlled depth must be bounded; real objects
/// stay far below this (serde_json's own parser stops at 128).
pub const MAX_DEPTH: usize = 100;

/// Most operations accepted in one JSON patch, as the Kubernetes API server
/// limits them.
pub const MAX_JSON_PATCH_OPS: usize = 10_000;

/// The PATCH flavours, chosen by the request's Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
    Apply,
}

impl PatchType {
    /// The media types PATCH takes, in the order upstream names them when it refuses one:
    /// custom resources have no patch strategies, so no strategic merge.
    pub fn accepted(custom: bool) -> &'static [&'static str] {
        if custom {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]
        } else {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ]
        }
    }

    /// Map a Content-Type header (parameters such as `charset` ignored) to
    /// a patch type.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }

    /// The canonical Content-Type for this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// One field whose ownership blocked an apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// Name of the field manager that owns the field.
    pub manager: String,
    /// The field, printed as upstream does: `.spec.replicas`,
    /// `.spec.containers[name="nginx"].image`.
    pub field: String,
    /// `Apply` or `Update`: the owning entry's operation.
    pub operation: String,
    /// API version of the owning entry.
    pub api_version: String,
    /// Subresource of the owning entry, `""` for the main resource.
    pub subresource: String,
}

impl Conflict {
    /// The manager as upstream names it in conflict messages, e.g.
    /// `"kubectl-scale" using apps/v1`; appliers are named alone.
    pub fn manager_display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == "Update" {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }
}

/// Upstream's text for a failed apply, used as the Status message.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.manager_display(),
            c.field
        );
    }
    let mut by_manager: Vec<(String, Vec<&str>)> = Vec::new();
    for c in conflicts {
        let m = c.manager_display();
        match by_manager.iter_mut().find(|(name, _)| *name == m) {
            Some((_, fields)) => fields.push(&c.field),
            None => by_manager.push((m, vec![&c.field])),
        }
    }
    by_manager.sort_by(|a, b| a.0.cmp(&b.0));
    let mut lines = Vec::new();
    for (m, fields) in by_manager {
        lines.push(format!("conflicts with {m}:"));
        lines.extend(fields.into_iter().map(|f| format!("- {f}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

#[derive(thiserror::Error, Debug)]
pub enum PatchError {
    /// The patch document is not what its type requires.
    #[error("invalid patch: {0}")]
    InvalidPatch(String),
    /// The object being patched or applied is malformed.
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// A JSON patch `test` operation did not match.
    #[error("json patch operation {index} (test) failed: value at {path:?} does not match")]
    TestFailed { index: usize, path: String },
    /// A JSON patch operation referred to a location that does not exist.
    #[error("json patch operation {index} ({op}) failed: path {path:?} not found")]
    PathNotFound {
        index: usize,
        op: String,
        path: String,
    },
    /// A strategic-merge-patch directive was misused.
    #[error("invalid strategic merge patch directive at {path}: {message}")]
    Directive { path: String, message: String },
    /// Strategic merge patch was asked for a kind it has no schema for.
    #[error("strategic merge patch is not supported for {kind}")]
    UnsupportedKind { kind: String },
    /// The input nests deeper than [`MAX_DEPTH`].
    #[error("{what} is nested deeper than the limit of {limit} levels")]
    TooDeep { what: &'static str, limit: usize },
    /// Server-side apply found fields owned by other managers.
    #[error("{}", conflict_message(.0))]
    Conflict(Vec<Conflict>),
}

/// Reject values nested deeper than [`MAX_DEPTH`]. Iterative, so it is safe
/// on any input.
pub fn check_depth(value: &Value, what: &'static str) -> Result<(), PatchError> {
    let mut stack: Vec<(&Value, usize)> = vec![(value, 1)];
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(PatchError::TooDeep {
                what,
                limit: MAX_DEPTH,
            });
        }
        match v {
            Value::Object(m) => stack.extend(m.values().map(|c| (c, depth + 1))),
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// Apply an RFC 6902 JSON patch. The document is not modified; on any
/// failure nothing of the patch takes effect.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    check_depth(doc, "object")?;
    check_depth(patch, "patch")?;
    let ops = patch.as_array().ok_or_else(|| {
        PatchError::InvalidPatch("a json patch must be a JSON array of operations".into())
    })?;
    if ops.len() > MAX_JSON_PATCH_OPS {
        return Err(PatchError::InvalidPatch(format!(
            "the json patch has {} operations, more than the allowed {MAX_JSON_PATCH_OPS}",
            ops.len()
        )));
    }
    let mut parsed = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let p: json_patch::PatchOperation = serde_json::from_value(op.clone())
            .map_err(|e| PatchError::InvalidPatch(format!("operation {i}: {e}")))?;
        parsed.push(p);
    }
    let mut out = doc.clone();
    json_patch::patch(&mut out, &parsed).map_err(|e| {
        let index = e.operation;
        let path = e.path.to_string();
        let op = parsed
            .get(index)
            .map(op_name)
            .unwrap_or("unknown")
            .to_owned();
        match e.kind {
            json_patch::PatchErrorKind::TestFailed => PatchError::TestFailed { index, path },
            json_patch::PatchErrorKind::InvalidFromPointer => {
                let from = parsed.get(index).and_then(op_from).unwrap_or(path);
                PatchError::PathNotFound {
                    index,
                    op,
                    path: from,
                }
            }
            json_patch::PatchErrorKind::CannotMoveInsideItself => PatchError::InvalidPatch(
                format!("operation {index} (move): cannot move {path:?} inside itself"),
            ),
            _ => PatchError::PathNotFound { index, op, path },
        }
    })?;
    Ok(out)
}

fn op_name(op: &json_patch::PatchOperation) -> &'static str {
    use json_patch::PatchOperation as P;
    match op {
        P::Add(_) => "add",
        P::Remove(_) => "remove",
        P::Replace(_) => "replace",
        P::Move(_) => "move",
        P::Copy(_) => "copy",
        P::Test(_) => "test",
    }
}

fn op_from(op: &json_patch::PatchOperation) -> Option<String> {
    use json_patch::PatchOperation as P;
    match op {
        P::Move(m) => Some(m.from.to_string()),
        P::Copy(c) => Some(c.from.to_string()),
        _ => None,
    }
}

/// Apply an RFC 7386 JSON merge patch. Recurses once per level of the
/// patch; use [`try_merge_patch`] for untrusted input of unknown depth.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out = match doc {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

/// [`merge_patch`] with the depth limit enforced and a check that the patch
/// is a JSON object, as the API server requires.
pub fn try_merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    check_depth(doc, "object")?;
    check_depth(patch, "patch")?;
    if !patch.is_object() {
        return Err(PatchError::InvalidPatch(
            "a merge patch must be a JSON object".into(),
        ));
    }
    Ok(merge_patch(doc, patch))
}
