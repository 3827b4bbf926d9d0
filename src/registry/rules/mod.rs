//! Upstream Kubernetes defaulting and validation for the built-in kinds.
//!
//! This module owns the `SetDefaults_*` behaviour (applied in place to a
//! `serde_json::Value`) and the `ValidateX` / `ValidateXUpdate` /
//! `ValidateXStatusUpdate` rules of the built-in API groups, reported as
//! [`FieldError`]s whose paths and messages match what the upstream API server
//! returns.
//!
//! It must never perform I/O, consult storage, allocate cluster resources
//! (cluster IPs, node ports, generated names, UIDs), run admission (service
//! account injection, priority resolution) or panic on malformed input: every
//! function here is pure and total over arbitrary JSON.

mod apps;
mod batch;
pub use batch::generate_job_selector;
mod core_container;
mod core_other;
mod core_pod;
mod core_resources;
mod core_service;
mod core_storage;
mod core_volume;
mod crd;
mod defaults_apps;
mod defaults_core;
mod defaults_misc;
mod defaults_service;
mod discovery;
pub(crate) mod json;
mod meta;
mod misc;
pub mod names;
mod networking;
pub mod quantity;
mod rbac;
pub(crate) mod render;

#[cfg(test)]
mod tests_core;
#[cfg(test)]
mod tests_defaults;
#[cfg(test)]
mod tests_misc;
#[cfg(test)]
mod tests_names;
#[cfg(test)]
mod tests_workloads;

use serde_json::Value;

pub use names::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name,
    is_valid_label_value,
};
pub use quantity::Quantity;

/// The kind of a validation failure, mirroring upstream `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    Required,
    Invalid,
    NotSupported,
    Duplicate,
    Forbidden,
    TooLong,
    TooMany,
    NotFound,
}

impl ErrorType {
    /// The human string upstream prints for this error type.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::NotFound => "Not found",
        }
    }
}

/// One validation failure on one field.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub kind: ErrorType,
    /// Dotted field path, e.g. `spec.containers[0].image` or `metadata.labels`.
    pub field: String,
    /// The bad value rendered the way upstream prints it (strings quoted).
    pub value: Option<String>,
    pub detail: String,
}

impl FieldError {
    /// The `reason` of the corresponding `StatusCause`.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::NotFound => "FieldValueNotFound",
        }
    }

    /// Upstream `field.Error.ErrorBody()`: the message without the field path,
    /// which is what a `StatusCause.message` carries.
    pub fn body(&self) -> String {
        let mut s = String::from(self.kind.as_str());
        match self.kind {
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong => {}
            _ => {
                if let Some(v) = &self.value {
                    s.push_str(": ");
                    s.push_str(v);
                }
            }
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// Upstream `field.Error.Error()`: `<field>: <body>`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// Apply upstream defaults in place for (group, version, kind); group `""` is
/// the core group. Idempotent. Unknown kinds are left untouched.
pub fn default_object(group: &str, version: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (group, kind) {
        ("", _) => defaults_core::default_core(version, kind, obj),
        ("apps", _) | ("batch", _) => defaults_apps::default_workload(group, version, kind, obj),
        _ => defaults_misc::default_misc(group, version, kind, obj),
    }
}

/// Strategy-level changes upstream makes on create only (`PrepareForCreate`),
/// beyond defaulting: a new pod's status (`Pending` and its QoS class), a new
/// namespace's `kubernetes` finalizer and `Active` phase, and the initial
/// `metadata.generation` of kinds that track it. Call after [`default_object`]
/// and before [`validate`] when creating.
pub fn prepare_for_create(group: &str, version: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    let _ = version;
    defaults_misc::prepare_for_create(group, kind, obj);
}

/// Validate a create (`old` is `None`) or an update (`old` is `Some`).
pub fn validate(
    group: &str,
    version: &str,
    kind: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !obj.is_object() {
        errs.push(json::type_error("", obj, "must be an object"));
        return errs;
    }
    let _ = version;
    let known = match group {
        "" => core_other::validate_core(kind, obj, old, &mut errs),
        "apps" => apps::validate_apps(kind, obj, old, &mut errs),
        "batch" => batch::validate_batch(kind, obj, old, &mut errs),
        "networking.k8s.io" | "discovery.k8s.io" => {
            networking::validate_networking(group, kind, obj, old, &mut errs)
        }
        "rbac.authorization.k8s.io" => rbac::validate_rbac(kind, obj, old, &mut errs),
        _ => misc::validate_misc(group, kind, obj, old, &mut errs),
    };
    if !known {
        meta::validate_meta_for(obj, old, names::NameRule::Subdomain, &mut errs);
    }
    errs
}

/// Validate a status-subresource update (upstream `ValidateXStatusUpdate`).
pub fn validate_status(
    group: &str,
    version: &str,
    kind: &str,
    obj: &Value,
    old: &Value,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !obj.is_object() {
        errs.push(json::type_error("", obj, "must be an object"));
        return errs;
    }
    let _ = version;
    meta::validate_meta_update(obj, old, &mut errs);
    misc::validate_status_rules(group, kind, obj, old, &mut errs);
    errs
}
