//! Decoding a manifest file into the objects it declares: multi-document YAML (or JSON, which
//! a `.json` file is read as, several concatenated values allowed), `kind: List` and any
//! `*List` kind with `items` expanded into its items, empty documents ignored. Each object must
//! name its apiVersion, kind and metadata.name; the first that does not makes the whole file an
//! error naming the document. Pure: no I/O, no API.

use serde::Deserialize;
use serde_json::Value;

/// Files larger than this are refused rather than read into memory.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("the parser failed: {0}")]
    Panicked(String),
    #[error("file is more than the {MAX_FILE_BYTES} bytes a manifest may have")]
    TooLarge,
    #[error("document {doc}: {why}")]
    Syntax { doc: usize, why: String },
    #[error("document {doc}{item}: {why}", item = item.map(|i| format!(", item {i}")).unwrap_or_default())]
    Object {
        doc: usize,
        item: Option<usize>,
        why: String,
    },
}

/// Group, version and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn from_api_version(api_version: &str, kind: &str) -> Gvk {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        Gvk {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// One object of a file, as written there.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub gvk: Gvk,
    pub namespace: Option<String>,
    pub name: String,
    pub body: Value,
}

/// The objects of a file, in file order. `json` reads it as JSON rather than YAML.
pub fn decode(content: &[u8], json: bool) -> Result<Vec<Object>, DecodeError> {
    if content.len() > MAX_FILE_BYTES {
        return Err(DecodeError::TooLarge);
    }
    let docs = if json {
        json_documents(content)?
    } else {
        yaml_documents(content)?
    };
    let mut out = vec![];
    for (i, doc) in docs.into_iter().enumerate() {
        let doc_no = i + 1;
        if doc.is_null() {
            continue;
        }
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind.ends_with("List") && doc.get("items").is_some() {
            let items = doc["items"].as_array().ok_or_else(|| DecodeError::Object {
                doc: doc_no,
                item: None,
                why: format!("{kind}: items is not a list"),
            })?;
            for (j, item) in items.iter().enumerate() {
                out.push(object(item.clone(), doc_no, Some(j))?);
            }
        } else {
            out.push(object(doc, doc_no, None)?);
        }
    }
    Ok(out)
}

fn yaml_documents(content: &[u8]) -> Result<Vec<Value>, DecodeError> {
    let text = std::str::from_utf8(content).map_err(|e| DecodeError::Syntax {
        doc: 1,
        why: format!("not UTF-8: {e}"),
    })?;
    let mut docs = vec![];
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(de).map_err(|e| DecodeError::Syntax {
            doc: i + 1,
            why: format!("not valid YAML: {e}"),
        })?;
        docs.push(v);
    }
    Ok(docs)
}

fn json_documents(content: &[u8]) -> Result<Vec<Value>, DecodeError> {
    let mut docs = vec![];
    for (i, v) in serde_json::Deserializer::from_slice(content)
        .into_iter::<Value>()
        .enumerate()
    {
        docs.push(v.map_err(|e| DecodeError::Syntax {
            doc: i + 1,
            why: format!("not valid JSON: {e}"),
        })?);
    }
    Ok(docs)
}

fn object(body: Value, doc: usize, item: Option<usize>) -> Result<Object, DecodeError> {
    let bad = |why: String| DecodeError::Object { doc, item, why };
    if !body.is_object() {
        return Err(bad("not a mapping of fields to values".into()));
    }
    let field = |name: &str| -> Result<String, DecodeError> {
        match body.get(name).and_then(Value::as_str) {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            _ => Err(bad(format!("{name} is missing or not a string"))),
        }
    };
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    let name = match body.pointer("/metadata/name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            return Err(bad(format!(
                "{kind}: metadata.name is missing (generateName cannot be applied)"
            )))
        }
    };
    let namespace = body
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from);
    Ok(Object {
        gvk: Gvk::from_api_version(&api_version, &kind),
        namespace,
        name,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml() {
        let text = "# leading comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ns}\ndata: {k: 'yes'}\n---\n---\n# only a comment\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n";
        let objs = decode(text.as_bytes(), false).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].gvk, Gvk::from_api_version("v1", "ConfigMap"));
        assert_eq!(objs[0].namespace.as_deref(), Some("ns"));
        assert_eq!(objs[0].body["data"]["k"], "yes");
        assert_eq!(objs[1].gvk.group, "apps");
        assert_eq!(objs[1].gvk.api_version(), "apps/v1");
        assert_eq!(objs[1].namespace, None);
        assert!(decode(b"", false).unwrap().is_empty());
    }

    #[test]
    fn lists_and_json() {
        let list = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n";
        let objs = decode(list.as_bytes(), false).unwrap();
        assert_eq!(
            objs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let typed = r#"{"apiVersion":"v1","kind":"ConfigMapList","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}]}
{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n"}}"#;
        let objs = decode(typed.as_bytes(), true).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].gvk.kind, "Namespace");
    }

    #[test]
    fn bad_input_names_the_document() {
        let e = decode(
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [\n",
            false,
        )
        .unwrap_err();
        assert!(matches!(e, DecodeError::Syntax { doc: 2, .. }), "{e}");
        let e = decode(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", false).unwrap_err();
        assert!(e.to_string().contains("metadata.name"), "{e}");
        let e = decode(b"- a\n- b\n", false).unwrap_err();
        assert!(e.to_string().contains("document 1"), "{e}");
        let e = decode(b"kind: List\nitems:\n- {kind: X}\n", false).unwrap_err();
        assert!(
            e.to_string().contains("item 0") && e.to_string().contains("apiVersion"),
            "{e}"
        );
        let e = decode(b"{\"apiVersion\": ", true).unwrap_err();
        assert!(e.to_string().contains("JSON"), "{e}");
        let e = decode(&[0xff, 0xfe], false).unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
        let nested = format!("a: {}", "[".repeat(5_000));
        let e = decode(nested.as_bytes(), false).unwrap_err();
        assert!(e.to_string().contains("YAML"), "{e}");
        let nested = format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000));
        assert!(decode(nested.as_bytes(), true).is_err());
        let big = vec![b' '; MAX_FILE_BYTES + 1];
        assert!(matches!(decode(&big, false), Err(DecodeError::TooLarge)));
    }
}
