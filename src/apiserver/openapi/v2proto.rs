//! The swagger 2.0 document in its protobuf form: gnostic's `openapi.v2.Document`, which
//! client-go asks for (`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`)
//! when kubectl validates objects on the client, e.g. every `kind: List` file given to
//! `kubectl create -f` or `apply -f`.
//!
//! The encoder walks the JSON document beside a table of gnostic's messages: each JSON key
//! maps to a field number and a wire shape; `x-` keys become vendor extensions; JSON objects of
//! named things (definitions, properties, paths, responses) become repeated `Named*` pairs; and
//! the few places where the proto has a `oneof` pick their branch from the JSON value, as
//! gnostic's own compiler does. Free-form values (defaults, enums, examples, extensions) are
//! carried as gnostic's `Any` with the value written in its `yaml` field (JSON is YAML).
//!
//! It only reads the document it is given: keys the table does not name are left out rather
//! than guessed at, and nothing here fails.

use crate::apiserver::protobuf::wire::{put_bytes, put_key, put_varint, FIXED64, VARINT};
use serde_json::{Map, Value};

/// The wire shape of one field's value.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Double,
    Int64,
    /// A JSON array of strings as a repeated string field.
    StrList,
    /// Any JSON value as gnostic's `Any { yaml = 2 }`.
    Any,
    /// A JSON array, each element an `Any`.
    AnyList,
    Msg(&'static Msg),
    /// A JSON array, each element the message.
    MsgList(&'static Msg),
}

/// How a message is laid out against its JSON.
enum Msg {
    /// Named fields; `ext` is the vendor_extension field number (0: the message has none).
    Fields {
        fields: &'static [(&'static str, u32, Kind)],
        ext: u32,
    },
    /// A JSON object whose entries become repeated `{name = 1, value = 2}` pairs in `field`,
    /// with `x-` keys sent to `ext` instead when it is not 0.
    Named { field: u32, value: Kind, ext: u32 },
    /// A string or an array of strings as repeated string field 1 (TypeItem, StringArray).
    Strings,
    /// A schema or an array of schemas as repeated Schema field 1 (ItemsItem).
    Schemas,
    /// A `oneof`: the branch (field number and shape) the JSON value takes.
    OneOf(fn(&Value) -> Option<(u32, Kind)>),
}

use Kind::*;

static DOCUMENT: Msg = Msg::Fields {
    fields: &[
        ("swagger", 1, Str),
        ("info", 2, Msg(&INFO)),
        ("host", 3, Str),
        ("basePath", 4, Str),
        ("schemes", 5, StrList),
        ("consumes", 6, StrList),
        ("produces", 7, StrList),
        ("paths", 8, Msg(&PATHS)),
        ("definitions", 9, Msg(&DEFINITIONS)),
        ("parameters", 10, Msg(&PARAMETER_DEFINITIONS)),
        ("responses", 11, Msg(&RESPONSE_DEFINITIONS)),
        ("security", 12, MsgList(&SECURITY_REQUIREMENT)),
        ("securityDefinitions", 13, Msg(&SECURITY_DEFINITIONS)),
        ("tags", 14, MsgList(&TAG)),
        ("externalDocs", 15, Msg(&EXTERNAL_DOCS)),
    ],
    ext: 16,
};

static INFO: Msg = Msg::Fields {
    fields: &[
        ("title", 1, Str),
        ("version", 2, Str),
        ("description", 3, Str),
        ("termsOfService", 4, Str),
        ("contact", 5, Msg(&CONTACT)),
        ("license", 6, Msg(&LICENSE)),
    ],
    ext: 7,
};

static CONTACT: Msg = Msg::Fields {
    fields: &[("name", 1, Str), ("url", 2, Str), ("email", 3, Str)],
    ext: 4,
};

static LICENSE: Msg = Msg::Fields {
    fields: &[("name", 1, Str), ("url", 2, Str)],
    ext: 3,
};

static EXTERNAL_DOCS: Msg = Msg::Fields {
    fields: &[("description", 1, Str), ("url", 2, Str)],
    ext: 3,
};

static TAG: Msg = Msg::Fields {
    fields: &[
        ("name", 1, Str),
        ("description", 2, Str),
        ("externalDocs", 3, Msg(&EXTERNAL_DOCS)),
    ],
    ext: 4,
};

static PATHS: Msg = Msg::Named {
    field: 2,
    value: Msg(&PATH_ITEM),
    ext: 1,
};

static PATH_ITEM: Msg = Msg::Fields {
    fields: &[
        ("$ref", 1, Str),
        ("get", 2, Msg(&OPERATION)),
        ("put", 3, Msg(&OPERATION)),
        ("post", 4, Msg(&OPERATION)),
        ("delete", 5, Msg(&OPERATION)),
        ("options", 6, Msg(&OPERATION)),
        ("head", 7, Msg(&OPERATION)),
        ("patch", 8, Msg(&OPERATION)),
        ("parameters", 9, MsgList(&PARAMETERS_ITEM)),
    ],
    ext: 10,
};

static OPERATION: Msg = Msg::Fields {
    fields: &[
        ("tags", 1, StrList),
        ("summary", 2, Str),
        ("description", 3, Str),
        ("externalDocs", 4, Msg(&EXTERNAL_DOCS)),
        ("operationId", 5, Str),
        ("produces", 6, StrList),
        ("consumes", 7, StrList),
        ("parameters", 8, MsgList(&PARAMETERS_ITEM)),
        ("responses", 9, Msg(&RESPONSES)),
        ("schemes", 10, StrList),
        ("deprecated", 11, Bool),
        ("security", 12, MsgList(&SECURITY_REQUIREMENT)),
    ],
    ext: 13,
};

static PARAMETERS_ITEM: Msg = Msg::OneOf(|v| {
    if v.get("$ref").is_some() {
        Some((2, Msg(&JSON_REFERENCE)))
    } else {
        Some((1, Msg(&PARAMETER)))
    }
});

static JSON_REFERENCE: Msg = Msg::Fields {
    fields: &[("$ref", 1, Str), ("description", 2, Str)],
    ext: 0,
};

static PARAMETER: Msg = Msg::OneOf(|v| match v.get("in").and_then(Value::as_str) {
    Some("body") => Some((1, Msg(&BODY_PARAMETER))),
    _ => Some((2, Msg(&NON_BODY_PARAMETER))),
});

static BODY_PARAMETER: Msg = Msg::Fields {
    fields: &[
        ("description", 1, Str),
        ("name", 2, Str),
        ("in", 3, Str),
        ("required", 4, Bool),
        ("schema", 5, Msg(&SCHEMA)),
    ],
    ext: 6,
};

static NON_BODY_PARAMETER: Msg = Msg::OneOf(|v| match v.get("in").and_then(Value::as_str)? {
    "header" => Some((1, Msg(&HEADER_OR_PATH_PARAMETER))),
    "formData" => Some((2, Msg(&QUERY_OR_FORM_PARAMETER))),
    "query" => Some((3, Msg(&QUERY_OR_FORM_PARAMETER))),
    "path" => Some((4, Msg(&HEADER_OR_PATH_PARAMETER))),
    _ => None,
});

/// The validation keywords a non-body parameter, header or primitive item has, from `type`
/// on, numbered from `first` in gnostic's order.
macro_rules! primitive_fields {
    ($($head:expr,)* ; $first:expr, $ext:expr) => {
        Msg::Fields {
            fields: &[
                $($head,)*
                ("type", $first, Str),
                ("format", $first + 1, Str),
                ("items", $first + 2, Msg(&PRIMITIVES_ITEMS)),
                ("collectionFormat", $first + 3, Str),
                ("default", $first + 4, Any),
                ("maximum", $first + 5, Double),
                ("exclusiveMaximum", $first + 6, Bool),
                ("minimum", $first + 7, Double),
                ("exclusiveMinimum", $first + 8, Bool),
                ("maxLength", $first + 9, Int64),
                ("minLength", $first + 10, Int64),
                ("pattern", $first + 11, Str),
                ("maxItems", $first + 12, Int64),
                ("minItems", $first + 13, Int64),
                ("uniqueItems", $first + 14, Bool),
                ("enum", $first + 15, AnyList),
                ("multipleOf", $first + 16, Double),
            ],
            ext: $ext,
        }
    };
}

/// Header and path parameters have the same fields and numbers.
static HEADER_OR_PATH_PARAMETER: Msg = primitive_fields!(
    ("required", 1, Bool), ("in", 2, Str), ("description", 3, Str), ("name", 4, Str),
    ; 5, 22
);

/// Query and form-data parameters have the same fields and numbers.
static QUERY_OR_FORM_PARAMETER: Msg = primitive_fields!(
    ("required", 1, Bool), ("in", 2, Str), ("description", 3, Str), ("name", 4, Str),
    ("allowEmptyValue", 5, Bool),
    ; 6, 23
);

static PRIMITIVES_ITEMS: Msg = primitive_fields!(; 1, 18);

static HEADER: Msg = primitive_fields!(; 1, 19);

static RESPONSES: Msg = Msg::Named {
    field: 1,
    value: Msg(&RESPONSE_VALUE),
    ext: 2,
};

static RESPONSE_VALUE: Msg = Msg::OneOf(|v| {
    if v.get("$ref").is_some() {
        Some((2, Msg(&JSON_REFERENCE)))
    } else {
        Some((1, Msg(&RESPONSE)))
    }
});

static RESPONSE: Msg = Msg::Fields {
    fields: &[
        ("description", 1, Str),
        ("schema", 2, Msg(&SCHEMA_ITEM)),
        ("headers", 3, Msg(&HEADERS)),
        ("examples", 4, Msg(&EXAMPLES)),
    ],
    ext: 5,
};

static SCHEMA_ITEM: Msg = Msg::OneOf(|v| {
    if v.get("type").and_then(Value::as_str) == Some("file") {
        Some((2, Msg(&FILE_SCHEMA)))
    } else {
        Some((1, Msg(&SCHEMA)))
    }
});

static FILE_SCHEMA: Msg = Msg::Fields {
    fields: &[
        ("format", 1, Str),
        ("title", 2, Str),
        ("description", 3, Str),
        ("default", 4, Any),
        ("required", 5, StrList),
        ("type", 6, Str),
        ("readOnly", 7, Bool),
        ("externalDocs", 8, Msg(&EXTERNAL_DOCS)),
        ("example", 9, Any),
    ],
    ext: 10,
};

static HEADERS: Msg = Msg::Named {
    field: 1,
    value: Msg(&HEADER),
    ext: 0,
};

static EXAMPLES: Msg = Msg::Named {
    field: 1,
    value: Any,
    ext: 0,
};

static DEFINITIONS: Msg = Msg::Named {
    field: 1,
    value: Msg(&SCHEMA),
    ext: 0,
};

static PARAMETER_DEFINITIONS: Msg = Msg::Named {
    field: 1,
    value: Msg(&PARAMETER),
    ext: 0,
};

static RESPONSE_DEFINITIONS: Msg = Msg::Named {
    field: 1,
    value: Msg(&RESPONSE),
    ext: 0,
};

static SCHEMA: Msg = Msg::Fields {
    fields: &[
        ("$ref", 1, Str),
        ("format", 2, Str),
        ("title", 3, Str),
        ("description", 4, Str),
        ("default", 5, Any),
        ("multipleOf", 6, Double),
        ("maximum", 7, Double),
        ("exclusiveMaximum", 8, Bool),
        ("minimum", 9, Double),
        ("exclusiveMinimum", 10, Bool),
        ("maxLength", 11, Int64),
        ("minLength", 12, Int64),
        ("pattern", 13, Str),
        ("maxItems", 14, Int64),
        ("minItems", 15, Int64),
        ("uniqueItems", 16, Bool),
        ("maxProperties", 17, Int64),
        ("minProperties", 18, Int64),
        ("required", 19, StrList),
        ("enum", 20, AnyList),
        ("additionalProperties", 21, Msg(&ADDITIONAL_PROPERTIES)),
        ("type", 22, Msg(&Msg::Strings)),
        ("items", 23, Msg(&Msg::Schemas)),
        ("allOf", 24, MsgList(&SCHEMA)),
        ("properties", 25, Msg(&PROPERTIES)),
        ("discriminator", 26, Str),
        ("readOnly", 27, Bool),
        ("xml", 28, Msg(&XML)),
        ("externalDocs", 29, Msg(&EXTERNAL_DOCS)),
        ("example", 30, Any),
    ],
    ext: 31,
};

static ADDITIONAL_PROPERTIES: Msg = Msg::OneOf(|v| match v {
    Value::Bool(_) => Some((2, Bool)),
    Value::Object(_) => Some((1, Msg(&SCHEMA))),
    _ => None,
});

static PROPERTIES: Msg = Msg::Named {
    field: 1,
    value: Msg(&SCHEMA),
    ext: 0,
};

static XML: Msg = Msg::Fields {
    fields: &[
        ("name", 1, Str),
        ("namespace", 2, Str),
        ("prefix", 3, Str),
        ("attribute", 4, Bool),
        ("wrapped", 5, Bool),
    ],
    ext: 6,
};

static SECURITY_REQUIREMENT: Msg = Msg::Named {
    field: 1,
    value: Msg(&Msg::Strings),
    ext: 0,
};

static SECURITY_DEFINITIONS: Msg = Msg::Named {
    field: 1,
    value: Msg(&SECURITY_DEFINITIONS_ITEM),
    ext: 0,
};

static SECURITY_DEFINITIONS_ITEM: Msg = Msg::OneOf(|v| {
    let flow = v.get("flow").and_then(Value::as_str);
    match (v.get("type").and_then(Value::as_str)?, flow) {
        ("basic", _) => Some((1, Msg(&BASIC_SECURITY))),
        ("apiKey", _) => Some((2, Msg(&API_KEY_SECURITY))),
        ("oauth2", Some("implicit")) => Some((3, Msg(&OAUTH2_IMPLICIT))),
        ("oauth2", Some("password")) => Some((4, Msg(&OAUTH2_TOKEN_FLOW))),
        ("oauth2", Some("application")) => Some((5, Msg(&OAUTH2_TOKEN_FLOW))),
        ("oauth2", Some("accessCode")) => Some((6, Msg(&OAUTH2_ACCESS_CODE))),
        _ => None,
    }
});

static BASIC_SECURITY: Msg = Msg::Fields {
    fields: &[("type", 1, Str), ("description", 2, Str)],
    ext: 3,
};

static API_KEY_SECURITY: Msg = Msg::Fields {
    fields: &[
        ("type", 1, Str),
        ("name", 2, Str),
        ("in", 3, Str),
        ("description", 4, Str),
    ],
    ext: 5,
};

static OAUTH2_SCOPES: Msg = Msg::Named {
    field: 1,
    value: Str,
    ext: 0,
};

static OAUTH2_IMPLICIT: Msg = Msg::Fields {
    fields: &[
        ("type", 1, Str),
        ("flow", 2, Str),
        ("scopes", 3, Msg(&OAUTH2_SCOPES)),
        ("authorizationUrl", 4, Str),
        ("description", 5, Str),
    ],
    ext: 6,
};

/// The password and application flows have the same fields and numbers.
static OAUTH2_TOKEN_FLOW: Msg = Msg::Fields {
    fields: &[
        ("type", 1, Str),
        ("flow", 2, Str),
        ("scopes", 3, Msg(&OAUTH2_SCOPES)),
        ("tokenUrl", 4, Str),
        ("description", 5, Str),
    ],
    ext: 6,
};

static OAUTH2_ACCESS_CODE: Msg = Msg::Fields {
    fields: &[
        ("type", 1, Str),
        ("flow", 2, Str),
        ("scopes", 3, Msg(&OAUTH2_SCOPES)),
        ("authorizationUrl", 4, Str),
        ("tokenUrl", 5, Str),
        ("description", 6, Str),
    ],
    ext: 7,
};

/// The whole document as a serialized `openapi.v2.Document`.
pub(super) fn encode(doc: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 20);
    message(&mut out, &DOCUMENT, doc);
    out
}

/// Writes the body of message `msg` for `v` (no key or length of its own).
fn message(out: &mut Vec<u8>, msg: &Msg, v: &Value) {
    match msg {
        Msg::Fields { fields, ext } => {
            let Some(obj) = v.as_object() else { return };
            for (key, number, kind) in fields.iter() {
                if let Some(x) = obj.get(*key) {
                    field(out, *number, *kind, x);
                }
            }
            extensions(out, *ext, obj);
        }
        Msg::Named {
            field: f,
            value,
            ext,
        } => {
            let Some(obj) = v.as_object() else { return };
            for (name, x) in obj {
                if *ext != 0 && name.starts_with("x-") {
                    continue;
                }
                named(out, *f, name, |body| field(body, 2, *value, x));
            }
            extensions(out, *ext, obj);
        }
        Msg::Strings => match v {
            Value::String(s) => put_bytes(out, 1, s.as_bytes()),
            Value::Array(items) => {
                for s in items.iter().filter_map(Value::as_str) {
                    put_bytes(out, 1, s.as_bytes());
                }
            }
            _ => {}
        },
        Msg::Schemas => match v {
            Value::Array(items) => {
                for item in items {
                    field(out, 1, Msg(&SCHEMA), item);
                }
            }
            _ => field(out, 1, Msg(&SCHEMA), v),
        },
        Msg::OneOf(pick) => {
            if let Some((number, kind)) = pick(v) {
                field(out, number, kind, v);
            }
        }
    }
}

/// The `x-` keys of `obj` as repeated `NamedAny` in field `ext` (0: none kept).
fn extensions(out: &mut Vec<u8>, ext: u32, obj: &Map<String, Value>) {
    if ext == 0 {
        return;
    }
    for (name, x) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
        named(out, ext, name, |body| field(body, 2, Any, x));
    }
}

/// A `{name = 1, value = 2}` pair as field `number`; `value` writes field 2.
fn named(out: &mut Vec<u8>, number: u32, name: &str, value: impl FnOnce(&mut Vec<u8>)) {
    let mut body = Vec::new();
    put_bytes(&mut body, 1, name.as_bytes());
    value(&mut body);
    put_bytes(out, number, &body);
}

/// Writes field `number` of shape `kind` for `v`; values of the wrong JSON type are left out.
fn field(out: &mut Vec<u8>, number: u32, kind: Kind, v: &Value) {
    match kind {
        Str => {
            if let Some(s) = v.as_str() {
                put_bytes(out, number, s.as_bytes());
            }
        }
        Bool => {
            if let Some(b) = v.as_bool() {
                put_key(out, number, VARINT);
                put_varint(out, u64::from(b));
            }
        }
        Double => {
            if let Some(d) = v.as_f64() {
                put_key(out, number, FIXED64);
                out.extend_from_slice(&d.to_le_bytes());
            }
        }
        Int64 => {
            if let Some(n) = v.as_i64().or_else(|| v.as_f64().map(|d| d as i64)) {
                put_key(out, number, VARINT);
                put_varint(out, n as u64);
            }
        }
        StrList => {
            for s in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
                put_bytes(out, number, s.as_bytes());
            }
        }
        Any => {
            // gnostic's Any { google.protobuf.Any value = 1; string yaml = 2; }
            let mut body = Vec::new();
            put_bytes(&mut body, 2, yaml_text(v).as_bytes());
            put_bytes(out, number, &body);
        }
        AnyList => {
            for x in v.as_array().into_iter().flatten() {
                field(out, number, Any, x);
            }
        }
        Msg(msg) => {
            let mut body = Vec::new();
            message(&mut body, msg, v);
            put_bytes(out, number, &body);
        }
        MsgList(msg) => {
            for x in v.as_array().into_iter().flatten() {
                field(out, number, Msg(msg), x);
            }
        }
    }
}

/// A value as the YAML text gnostic keeps in `Any.yaml`: JSON is YAML, with a trailing newline
/// as a YAML encoder writes.
fn yaml_text(v: &Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A length-delimited field: its key bytes, the varint length, the body.
    fn wrap(key: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = key.to_vec();
        put_varint(&mut out, body.len() as u64);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn scalars_named_maps_and_extensions() {
        let doc = json!({
            "swagger": "2.0",
            "definitions": {
                "a.B": {
                    "type": "object",
                    "required": ["x"],
                    "properties": {"x": {"type": "integer", "format": "int32"}},
                    "x-kubernetes-group-version-kind": [{"group": "", "kind": "B", "version": "v1"}]
                }
            }
        });
        // x: Schema { format = 2: "int32", type = 22: TypeItem { value = 1: "integer" } }
        let x = [
            wrap(&[0x12], b"int32"),
            wrap(&[0xb2, 0x01], &wrap(&[0x0a], b"integer")),
        ]
        .concat();
        // properties = 25: Properties { additional_properties = 1: NamedSchema { "x", x } }
        let props = wrap(&[0x0a], &[wrap(&[0x0a], b"x"), wrap(&[0x12], &x)].concat());
        let ext_yaml = "[{\"group\":\"\",\"kind\":\"B\",\"version\":\"v1\"}]\n";
        let ext = [
            wrap(&[0x0a], b"x-kubernetes-group-version-kind"),
            wrap(&[0x12], &wrap(&[0x12], ext_yaml.as_bytes())),
        ]
        .concat();
        // Schema B in field order: required = 19, type = 22, properties = 25, extension = 31.
        let b = [
            wrap(&[0x9a, 0x01], b"x"),
            wrap(&[0xb2, 0x01], &wrap(&[0x0a], b"object")),
            wrap(&[0xca, 0x01], &props),
            wrap(&[0xfa, 0x01], &ext),
        ]
        .concat();
        let named_b = [wrap(&[0x0a], b"a.B"), wrap(&[0x12], &b)].concat();
        let want = [
            wrap(&[0x0a], b"2.0"),
            wrap(&[0x4a], &wrap(&[0x0a], &named_b)),
        ]
        .concat();
        assert_eq!(encode(&doc), want);
    }

    #[test]
    fn oneofs_pick_their_branch() {
        let mut out = Vec::new();
        message(&mut out, &ADDITIONAL_PROPERTIES, &json!(false));
        assert_eq!(out, vec![0x10, 0]);
        out.clear();
        message(&mut out, &PARAMETERS_ITEM, &json!({"$ref": "#/p"}));
        assert_eq!(out, [&[0x12, 5, 0x0a, 3][..], b"#/p"].concat());
        out.clear();
        // query parameter: Parameter { non_body = 2 { query = 3 { in = 2, type = 6 } } }
        let q = json!({"in": "query", "type": "string"});
        message(&mut out, &PARAMETERS_ITEM, &q);
        let inner = [&[0x12, 5][..], b"query", &[0x32, 6], b"string"].concat();
        let query = [&[0x1a, inner.len() as u8][..], &inner].concat();
        let non_body = [&[0x12, query.len() as u8][..], &query].concat();
        let param = [&[0x0a, non_body.len() as u8][..], &non_body].concat();
        assert_eq!(out, param);
    }

    #[test]
    fn doubles_and_negative_integers() {
        let mut out = Vec::new();
        message(&mut out, &SCHEMA, &json!({"maximum": 1.5, "minLength": -1}));
        let mut want = vec![0x39];
        want.extend_from_slice(&1.5f64.to_le_bytes());
        want.push(0x60);
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(out, want);
    }
}
