//! The subset of JSONPath used by CRD printer columns: field access
//! (`.a.b`, `['a.b']`), indexes (`[0]`, `[-1]`), wildcards (`[*]`, `.*`),
//! recursive descent (`..name`) and filters (`[?(@.type=="Ready")]`, with
//! `==`, `!=`, `<`, `<=`, `>`, `>=` or plain existence).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    Field(String),
    Recursive(String),
    Index(i64),
    Wildcard,
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Filter {
    lhs: Vec<Step>,
    op: Option<(Op, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Parses a printer column path such as `.status.conditions[?(@.type=="Ready")].status`.
/// An optional `{...}` wrapper and leading `$` are accepted.
pub(super) fn parse(path: &str) -> Option<Vec<Step>> {
    let mut p = path.trim();
    if let Some(inner) = p.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        p = inner.trim();
    }
    p = p.strip_prefix('$').unwrap_or(p);
    let chars: Vec<char> = p.chars().collect();
    let mut pos = 0;
    let steps = parse_steps(&chars, &mut pos, false)?;
    (pos == chars.len()).then_some(steps)
}

/// Parses steps until the end of input (or, inside a filter, an operator or
/// closing parenthesis).
fn parse_steps(c: &[char], pos: &mut usize, in_filter: bool) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    while let Some(&ch) = c.get(*pos) {
        match ch {
            '.' if c.get(*pos + 1) == Some(&'.') => {
                *pos += 2;
                steps.push(Step::Recursive(parse_ident(c, pos)?));
            }
            '.' => {
                *pos += 1;
                if c.get(*pos) == Some(&'*') {
                    *pos += 1;
                    steps.push(Step::Wildcard);
                } else if c.get(*pos).is_some_and(|&ch| is_ident(ch)) {
                    steps.push(Step::Field(parse_ident(c, pos)?));
                } else if c.get(*pos) != Some(&'[') && !c.is_empty() && *pos != c.len() {
                    return None;
                }
            }
            '[' => {
                *pos += 1;
                steps.push(parse_bracket(c, pos)?);
            }
            _ if in_filter => break,
            _ => return None,
        }
    }
    Some(steps)
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || matches!(ch, '_' | '-' | '/' | '\\' | '$')
}

fn parse_ident(c: &[char], pos: &mut usize) -> Option<String> {
    let mut s = String::new();
    while let Some(&ch) = c.get(*pos) {
        if ch == '\\' {
            // An escaped character (such as `\.`) is part of the name.
            s.push(*c.get(*pos + 1)?);
            *pos += 2;
        } else if is_ident(ch) {
            s.push(ch);
            *pos += 1;
        } else {
            break;
        }
    }
    (!s.is_empty()).then_some(s)
}

fn skip_ws(c: &[char], pos: &mut usize) {
    while c.get(*pos).is_some_and(|ch| ch.is_whitespace()) {
        *pos += 1;
    }
}

fn expect(c: &[char], pos: &mut usize, ch: char) -> Option<()> {
    skip_ws(c, pos);
    (c.get(*pos) == Some(&ch)).then(|| *pos += 1)
}

fn parse_quoted(c: &[char], pos: &mut usize) -> Option<String> {
    let quote = *c.get(*pos)?;
    *pos += 1;
    let mut s = String::new();
    loop {
        let ch = *c.get(*pos)?;
        *pos += 1;
        match ch {
            '\\' => {
                s.push(*c.get(*pos)?);
                *pos += 1;
            }
            ch if ch == quote => return Some(s),
            ch => s.push(ch),
        }
    }
}

/// Parses the inside of `[...]`; `pos` is just past the `[`.
fn parse_bracket(c: &[char], pos: &mut usize) -> Option<Step> {
    skip_ws(c, pos);
    let step = match *c.get(*pos)? {
        '\'' | '"' => Step::Field(parse_quoted(c, pos)?),
        '*' => {
            *pos += 1;
            Step::Wildcard
        }
        '?' => {
            *pos += 1;
            expect(c, pos, '(')?;
            let filter = parse_filter(c, pos)?;
            expect(c, pos, ')')?;
            Step::Filter(filter)
        }
        _ => {
            let start = *pos;
            while c
                .get(*pos)
                .is_some_and(|ch| ch.is_ascii_digit() || *ch == '-')
            {
                *pos += 1;
            }
            let text: String = c.get(start..*pos)?.iter().collect();
            Step::Index(text.parse().ok()?)
        }
    };
    expect(c, pos, ']')?;
    Some(step)
}

fn parse_filter(c: &[char], pos: &mut usize) -> Option<Filter> {
    expect(c, pos, '@')?;
    let lhs = parse_steps(c, pos, true)?;
    skip_ws(c, pos);
    let two: String = c.get(*pos..(*pos + 2).min(c.len()))?.iter().collect();
    let (op, len) = match two.as_str() {
        "==" => (Op::Eq, 2),
        "!=" => (Op::Ne, 2),
        "<=" => (Op::Le, 2),
        ">=" => (Op::Ge, 2),
        _ => match c.get(*pos) {
            Some('<') => (Op::Lt, 1),
            Some('>') => (Op::Gt, 1),
            _ => return Some(Filter { lhs, op: None }),
        },
    };
    *pos += len;
    skip_ws(c, pos);
    let rhs = match *c.get(*pos)? {
        '\'' | '"' => Value::String(parse_quoted(c, pos)?),
        _ => {
            let start = *pos;
            while c
                .get(*pos)
                .is_some_and(|ch| ch.is_alphanumeric() || matches!(ch, '.' | '-' | '+'))
            {
                *pos += 1;
            }
            let text: String = c.get(start..*pos)?.iter().collect();
            serde_json::from_str(&text).ok()?
        }
    };
    Some(Filter {
        lhs,
        op: Some((op, rhs)),
    })
}

/// All values `steps` select in `root`, in document order. Missing keys and
/// out-of-range indexes select nothing.
pub(super) fn evaluate<'a>(steps: &[Step], root: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![root];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            apply(step, v, &mut next);
        }
        current = next;
    }
    current
}

fn apply<'a>(step: &Step, v: &'a Value, out: &mut Vec<&'a Value>) {
    match step {
        Step::Field(name) => out.extend(v.get(name.as_str())),
        Step::Recursive(name) => descend(name, v, out),
        Step::Index(i) => {
            if let Value::Array(a) = v {
                let len = a.len() as i64;
                let idx = if *i < 0 { len + i } else { *i };
                if (0..len).contains(&idx) {
                    out.extend(a.get(idx as usize));
                }
            }
        }
        Step::Wildcard => match v {
            Value::Array(a) => out.extend(a.iter()),
            Value::Object(m) => out.extend(m.values()),
            _ => {}
        },
        Step::Filter(f) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                Value::Object(m) => m.values().collect(),
                _ => Vec::new(),
            };
            out.extend(items.into_iter().filter(|item| matches(f, item)));
        }
    }
}

fn descend<'a>(name: &str, v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            out.extend(m.get(name));
            m.values().for_each(|c| descend(name, c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| descend(name, c, out)),
        _ => {}
    }
}

fn matches(f: &Filter, item: &Value) -> bool {
    let found = evaluate(&f.lhs, item);
    let Some((op, rhs)) = &f.op else {
        return !found.is_empty();
    };
    found.into_iter().any(|lhs| compare(lhs, *op, rhs))
}

fn compare(lhs: &Value, op: Op, rhs: &Value) -> bool {
    if let (Some(a), Some(b)) = (lhs.as_f64(), rhs.as_f64()) {
        return match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        };
    }
    match op {
        Op::Eq => lhs == rhs,
        Op::Ne => lhs != rhs,
        _ => match (lhs.as_str(), rhs.as_str()) {
            (Some(a), Some(b)) => match op {
                Op::Lt => a < b,
                Op::Le => a <= b,
                Op::Gt => a > b,
                _ => a >= b,
            },
            _ => false,
        },
    }
}
