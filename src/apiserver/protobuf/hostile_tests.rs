//! Malformed, truncated, oversized and deeply nested bodies must yield a
//! `ProtoError`, never a panic or unbounded recursion.

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;

use super::{decode, table, ProtoError};

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: None,
        content_type: None,
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

#[test]
fn hostile_input_is_an_error() {
    let good = envelope(
        "v1",
        "ConfigMap",
        core::ConfigMap {
            metadata: Some(meta::ObjectMeta {
                name: Some("x".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    assert!(matches!(decode(b"k8s"), Err(ProtoError::BadMagic)));
    assert!(matches!(decode(b"{\"kind\":1}"), Err(ProtoError::BadMagic)));
    for cut in 4..good.len() {
        let _ = decode(&good[..cut]);
    }
    let mut huge = b"k8s\0".to_vec();
    huge.extend([0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert!(matches!(decode(&huge), Err(ProtoError::Truncated(_))));
    let mut bad_varint = b"k8s\0".to_vec();
    bad_varint.extend([0x12, 0xff]);
    assert_eq!(
        decode(&bad_varint).unwrap_err().to_string(),
        "truncated varint at offset 5"
    );
    let unknown = decode(&envelope("apps/v1", "Foo", Vec::new())).unwrap_err();
    assert_eq!(unknown.to_string(), "unknown kind \"apps/v1, Kind=Foo\"");
    // Field 1 (metadata) of a Pod sent as a varint.
    let wrong = decode(&envelope("v1", "Pod", vec![0x08, 0x01])).unwrap_err();
    assert_eq!(
        wrong.to_string(),
        "wrong wire type for field 1 of io.k8s.api.core.v1.Pod"
    );
    // JSONSchemaProps.not nested far deeper than the cap.
    let mut inner = Vec::new();
    for _ in 0..5000 {
        let mut outer = vec![0xe2, 0x01]; // field 28 (not), length-delimited
        let mut len = Vec::new();
        super::wire::put_varint(&mut len, inner.len() as u64);
        outer.extend(len);
        outer.extend(&inner);
        inner = outer;
    }
    let not_tag = table::MESSAGES
        .iter()
        .find(|m| m.name.ends_with("apiextensions.v1.JsonSchemaProps"))
        .and_then(|m| m.fields.iter().find(|f| f.json == "not"))
        .map(|f| f.tag);
    assert_eq!(not_tag, Some(28));
    // CustomResourceDefinition{spec(2){versions(7){schema(4){openAPIV3Schema(1){not...}}}}}
    let mut body = inner;
    for tag_byte in [0x0a, 0x22, 0x3a, 0x12] {
        let mut outer = vec![tag_byte];
        super::wire::put_varint(&mut outer, body.len() as u64);
        outer.extend(&body);
        body = outer;
    }
    let err = decode(&envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        body,
    ))
    .unwrap_err();
    assert!(matches!(err, ProtoError::TooDeep), "{err}");
    // Pseudo-random garbage never panics.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..2000 {
        let mut buf = b"k8s\0".to_vec();
        for _ in 0..(x % 64) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(x as u8);
        }
        let _ = decode(&buf);
        let mut mutated = good.clone();
        if let Some(b) = mutated.get_mut((x as usize) % good.len()) {
            *b ^= (x >> 8) as u8;
        }
        let _ = decode(&mutated);
    }
}

#[test]
fn durations() {
    use super::decode::go_duration;
    for (n, text) in [
        (0, "0s"),
        (3_600_000_000_000, "1h0m0s"),
        (1_500_000_000, "1.5s"),
        (300_000_000, "300ms"),
        (-90_000_000_000, "-1m30s"),
        (1_500, "1.5µs"),
    ] {
        assert_eq!(go_duration(n), text);
        assert_eq!(crate::goduration::parse(text), Some(n));
    }
}
