//! The Kubernetes URL library: `url()`, `isURL()`, and `getScheme`, `getHost`, `getHostname`,
//! `getPort`, `getEscapedPath`, `getQuery`. Accepts what Go's `url.ParseRequestURI` accepts: an
//! absolute URL with a scheme, or an absolute path.

use super::value::{EvalError, Key, MapVal, Value};
use std::rc::Rc;

#[derive(Clone, Debug, PartialEq)]
pub struct Url {
    scheme: String,
    host: String,
    path: String,
    query: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let err = || {
            format!("URL parse error during conversion from string: parse {s:?}: invalid URI for request")
        };
        if s.is_empty() || s.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err(err());
        }
        let (rest, query) = match s.split_once('?') {
            Some((a, q)) => (a, q.to_string()),
            None => (s, String::new()),
        };
        if rest.starts_with('/') {
            return Ok(Url {
                scheme: String::new(),
                host: String::new(),
                path: rest.to_string(),
                query,
            });
        }
        let (scheme, after) = rest.split_once(':').ok_or_else(err)?;
        let valid_scheme = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid_scheme {
            return Err(err());
        }
        let (host, path) = match after.strip_prefix("//") {
            Some(a) => match a.find('/') {
                Some(i) => (a[..i].to_string(), a[i..].to_string()),
                None => (a.to_string(), String::new()),
            },
            None => (String::new(), after.to_string()),
        };
        let host = host
            .rsplit_once('@')
            .map(|(_, h)| h.to_string())
            .unwrap_or(host);
        if host.starts_with('[') && !host.contains(']') {
            return Err(err());
        }
        Ok(Url {
            scheme: scheme.to_string(),
            host,
            path,
            query,
        })
    }

    fn hostname(&self) -> &str {
        if let Some(rest) = self.host.strip_prefix('[') {
            return rest.split(']').next().unwrap_or("");
        }
        self.host.split(':').next().unwrap_or("")
    }

    fn port(&self) -> &str {
        let after = match self.host.rfind(']') {
            Some(i) => &self.host[i + 1..],
            None => &self.host,
        };
        after.split_once(':').map(|(_, p)| p).unwrap_or("")
    }
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn call(target: Option<Value>, name: &str, args: &[Value]) -> Result<Value, EvalError> {
    use Value::*;
    Ok(match (target, name, args) {
        (None, "url", [String(s)]) => {
            Url(Rc::new(super::url::Url::parse(s).map_err(EvalError::new)?))
        }
        (None, "isURL", [String(s)]) => Bool(super::url::Url::parse(s).is_ok()),
        (Some(Url(u)), "getScheme", []) => Value::str(&u.scheme),
        (Some(Url(u)), "getHost", []) => Value::str(&u.host),
        (Some(Url(u)), "getHostname", []) => Value::str(u.hostname()),
        (Some(Url(u)), "getPort", []) => Value::str(u.port()),
        (Some(Url(u)), "getEscapedPath", []) => Value::str(&u.path),
        (Some(Url(u)), "getQuery", []) => {
            let mut m: std::collections::BTreeMap<std::string::String, Vec<Value>> =
                Default::default();
            for pair in u.query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                m.entry(unescape(k))
                    .or_default()
                    .push(Value::str(&unescape(v)));
            }
            let mut out = MapVal::new();
            for (k, v) in m {
                out.insert(Key::Str(Rc::from(k.as_str())), List(Rc::new(v)));
            }
            Map(Rc::new(out))
        }
        _ => return Err(EvalError::no_overload()),
    })
}
