//! Pod volume validation.

use std::collections::HashSet;

use serde_json::Value;

use super::core_container::validate_local_descending_path;
use super::json::{self, child, index, Errs};
use super::names;

/// Every volume source field of `core.VolumeSource`.
pub const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

const MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// Validate `spec.volumes`; returns the set of declared volume names.
pub fn validate_volumes(spec: &Value, base: &str, errs: &mut Errs) -> HashSet<String> {
    let vp = child(base, "volumes");
    let mut all = HashSet::new();
    for (i, v) in json::obj_items(spec, "volumes", base, errs) {
        let ip = index(&vp, i);
        validate_source(v, &ip, errs);
        let np = child(&ip, "name");
        let n = json::str_or(v, "name", &ip, errs);
        if n.is_empty() {
            errs.push(json::required(&np, ""));
        } else {
            for m in names::is_dns1123_label(n) {
                errs.push(json::invalid_str(&np, n, &m));
            }
        }
        if !all.insert(n.to_string()) {
            errs.push(json::duplicate_str(&np, n));
        }
    }
    all
}

fn validate_source(v: &Value, path: &str, errs: &mut Errs) {
    let mut count = 0;
    for src in VOLUME_SOURCES {
        let Some(s) = json::get(v, src) else {
            continue;
        };
        let sp = child(path, src);
        if !s.is_object() {
            errs.push(json::type_error(&sp, s, "must be an object"));
            continue;
        }
        count += 1;
        if count > 1 {
            errs.push(json::forbidden(
                &sp,
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        match *src {
            "hostPath" => {
                if json::str_or(s, "path", &sp, errs).is_empty() {
                    errs.push(json::required(&child(&sp, "path"), ""));
                }
                if let Some(t) = json::opt_str(s, "type", &sp, errs) {
                    let ok = [
                        "",
                        "DirectoryOrCreate",
                        "Directory",
                        "FileOrCreate",
                        "File",
                        "Socket",
                        "CharDevice",
                        "BlockDevice",
                    ];
                    if !ok.contains(&t) {
                        errs.push(json::not_supported(&child(&sp, "type"), t, &ok[1..]));
                    }
                }
            }
            "emptyDir" => {
                if let Some(m) = json::opt_str(s, "medium", &sp, errs) {
                    if !["", "Memory", "HugePages"].contains(&m) && !m.starts_with("HugePages-") {
                        errs.push(json::not_supported(
                            &child(&sp, "medium"),
                            m,
                            &["", "Memory", "HugePages"],
                        ));
                    }
                }
            }
            "secret" => {
                if json::str_or(s, "secretName", &sp, errs).is_empty() {
                    errs.push(json::required(&child(&sp, "secretName"), ""));
                }
                validate_mode(s, "defaultMode", &sp, errs);
                validate_key_items(s, &sp, errs);
            }
            "configMap" => {
                if json::str_or(s, "name", &sp, errs).is_empty() {
                    errs.push(json::required(&child(&sp, "name"), ""));
                }
                validate_mode(s, "defaultMode", &sp, errs);
                validate_key_items(s, &sp, errs);
            }
            "persistentVolumeClaim" if json::str_or(s, "claimName", &sp, errs).is_empty() => {
                errs.push(json::required(&child(&sp, "claimName"), ""));
            }
            "nfs" => {
                if json::str_or(s, "server", &sp, errs).is_empty() {
                    errs.push(json::required(&child(&sp, "server"), ""));
                }
                let p = json::str_or(s, "path", &sp, errs);
                if p.is_empty() {
                    errs.push(json::required(&child(&sp, "path"), ""));
                } else if !p.starts_with('/') {
                    errs.push(json::invalid_str(
                        &child(&sp, "path"),
                        p,
                        "must be an absolute path",
                    ));
                }
            }
            "downwardAPI" => {
                validate_mode(s, "defaultMode", &sp, errs);
                let ip = child(&sp, "items");
                for (i, item) in json::obj_items(s, "items", &sp, errs) {
                    let itp = index(&ip, i);
                    let p = json::str_or(item, "path", &itp, errs);
                    if p.is_empty() {
                        errs.push(json::required(&child(&itp, "path"), ""));
                    } else {
                        validate_local_descending_path(p, &child(&itp, "path"), errs);
                    }
                    validate_mode(item, "mode", &itp, errs);
                }
            }
            "projected" => {
                validate_mode(s, "defaultMode", &sp, errs);
                let pp = child(&sp, "sources");
                for (i, src) in json::obj_items(s, "sources", &sp, errs) {
                    let ipp = index(&pp, i);
                    for k in ["secret", "configMap"] {
                        if let Some(x) = json::opt_objv(src, k, &ipp, errs) {
                            validate_key_items(x, &child(&ipp, k), errs);
                        }
                    }
                    if let Some(t) = json::opt_objv(src, "serviceAccountToken", &ipp, errs) {
                        let tp = child(&ipp, "serviceAccountToken");
                        if let Some(e) = json::opt_i64(t, "expirationSeconds", &tp, errs) {
                            if e < 600 {
                                errs.push(json::invalid_int(
                                    &child(&tp, "expirationSeconds"),
                                    e,
                                    "may not specify a duration less than 10 minutes",
                                ));
                            } else if e > (1 << 32) {
                                errs.push(json::invalid_int(
                                    &child(&tp, "expirationSeconds"),
                                    e,
                                    "may not specify a duration larger than 2^32 seconds",
                                ));
                            }
                        }
                        if json::str_or(t, "path", &tp, errs).is_empty() {
                            errs.push(json::required(&child(&tp, "path"), ""));
                        }
                    }
                }
            }
            "csi" if json::str_or(s, "driver", &sp, errs).is_empty() => {
                errs.push(json::required(&child(&sp, "driver"), ""));
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(json::required(path, "must specify a volume type"));
    }
}

fn validate_mode(v: &Value, k: &str, base: &str, errs: &mut Errs) {
    if let Some(m) = json::opt_i64(v, k, base, errs) {
        if !(0..=0o777).contains(&m) {
            errs.push(json::invalid_int(&child(base, k), m, MODE_MSG));
        }
    }
}

fn validate_key_items(s: &Value, base: &str, errs: &mut Errs) {
    let ip = child(base, "items");
    for (i, item) in json::obj_items(s, "items", base, errs) {
        let itp = index(&ip, i);
        if json::str_or(item, "key", &itp, errs).is_empty() {
            errs.push(json::required(&child(&itp, "key"), ""));
        }
        let p = json::str_or(item, "path", &itp, errs);
        if p.is_empty() {
            errs.push(json::required(&child(&itp, "path"), ""));
        } else {
            validate_local_descending_path(p, &child(&itp, "path"), errs);
        }
        validate_mode(item, "mode", &itp, errs);
    }
}
