//! Sets of field paths, as recorded in `managedFields` (format FieldsV1).
//!
//! A set is a tree: each node is reached by a path element and is either a
//! member of the set (the field itself is owned) or only a prefix of
//! members below it. FieldsV1 writes a member that has children as `".": {}`
//! and a member without children as an empty object.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One step of a field path. The derived order (fields, then keys, then
/// values, then indexes) is the order FieldsV1 lists them in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PathElem {
    /// `f:name`: a struct field or map key.
    Field(String),
    /// `k:{...}`: an associative-list item, by its key fields as JSON.
    Key(String),
    /// `v:...`: a set item, by its value as JSON.
    Value(String),
    /// `i:n`: a list item by position (only ever read, never produced).
    Index(usize),
}

impl PathElem {
    fn encode(&self) -> String {
        match self {
            PathElem::Field(f) => format!("f:{f}"),
            PathElem::Key(k) => format!("k:{k}"),
            PathElem::Value(v) => format!("v:{v}"),
            PathElem::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<PathElem> {
        let (tag, rest) = s.split_at_checked(2)?;
        match tag {
            "f:" => Some(PathElem::Field(rest.to_owned())),
            "k:" => Some(PathElem::Key(rest.to_owned())),
            "v:" => Some(PathElem::Value(rest.to_owned())),
            "i:" => rest.parse().ok().map(PathElem::Index),
            _ => None,
        }
    }

    /// Upstream's printed form: `.name`, `[name="x",port=80]`, `[="v"]`, `[3]`.
    fn display(&self) -> String {
        match self {
            PathElem::Field(f) => format!(".{f}"),
            PathElem::Key(k) => match serde_json::from_str::<Map<String, Value>>(k) {
                Ok(m) => {
                    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("[{}]", parts.join(","))
                }
                Err(_) => format!("[{k}]"),
            },
            PathElem::Value(v) => format!("[={v}]"),
            PathElem::Index(i) => format!("[{i}]"),
        }
    }
}

/// Print a path the way upstream conflict messages do.
pub(crate) fn display_path(path: &[PathElem]) -> String {
    path.iter().map(PathElem::display).collect()
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    pub member: bool,
    pub children: BTreeMap<PathElem, FieldSet>,
}

impl FieldSet {
    pub(crate) fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    pub(crate) fn insert(&mut self, path: &[PathElem]) {
        let mut node = self;
        for pe in path {
            node = node.children.entry(pe.clone()).or_default();
        }
        node.member = true;
    }

    /// Attach `sub` under `pe` unless it is empty.
    pub(crate) fn attach(&mut self, pe: PathElem, sub: FieldSet) {
        if !sub.is_empty() {
            self.children.entry(pe).or_default().union(&sub);
        }
    }

    pub(crate) fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (pe, c) in &other.children {
            self.children.entry(pe.clone()).or_default().union(c);
        }
    }

    /// Members of `self` that are not members of `other`.
    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (pe, c) in &self.children {
            let d = match other.children.get(pe) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(pe.clone(), d);
            }
        }
        out
    }

    /// Members of `self` that are also members of `other`.
    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (pe, c) in &self.children {
            if let Some(o) = other.children.get(pe) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    out.children.insert(pe.clone(), i);
                }
            }
        }
        out
    }

    /// `self` without every member of `other` and everything below those
    /// members.
    pub(crate) fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (pe, c) in &self.children {
            let d = match other.children.get(pe) {
                Some(o) if o.member => continue,
                Some(o) => c.recursive_difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(pe.clone(), d);
            }
        }
        out
    }

    /// Every member path, in set order.
    pub(crate) fn members(&self) -> Vec<Vec<PathElem>> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect_members(&mut prefix, &mut out);
        out
    }

    fn collect_members(&self, prefix: &mut Vec<PathElem>, out: &mut Vec<Vec<PathElem>>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect_members(prefix, out);
            prefix.pop();
        }
    }

    /// FieldsV1 JSON.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (pe, c) in &self.children {
            m.insert(pe.encode(), c.to_fields_v1());
        }
        Value::Object(m)
    }

    /// Parse FieldsV1 JSON; `None` if it is not well formed.
    pub(crate) fn from_fields_v1(v: &Value) -> Option<FieldSet> {
        let m = v.as_object()?;
        let mut out = FieldSet {
            member: m.is_empty(),
            children: BTreeMap::new(),
        };
        for (k, c) in m {
            if k == "." {
                out.member = true;
                continue;
            }
            let child = FieldSet::from_fields_v1(c)?;
            out.children.insert(PathElem::decode(k)?, child);
        }
        Some(out)
    }
}

/// Build a set from member paths written as FieldsV1 strings, for tables
/// of fixed paths.
pub(crate) fn set_of(paths: &[&[&str]]) -> FieldSet {
    let mut s = FieldSet::default();
    for p in paths {
        let path: Vec<PathElem> = p.iter().map(|f| PathElem::Field((*f).to_owned())).collect();
        s.insert(&path);
    }
    s
}
