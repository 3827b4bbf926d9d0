//! CEL's lexical grammar: identifiers, reserved words, numeric, string and bytes literals (with
//! escapes, raw and triple-quoted forms), operators and punctuation. Positions are byte offsets
//! into the source, turned into line:column only when an error is shown.

use super::CompileError;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Ident(String),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
    /// An integer literal one past `i64::MAX` (only valid after unary minus).
    IntMinMagnitude,
    Punct(&'static str),
    Eof,
}

const PUNCTS: [&str; 27] = [
    "&&", "||", "==", "!=", "<=", ">=", "?.", "<", ">", "!", "+", "-", "*", "/", "%", "?", ":",
    ".", ",", "(", ")", "[", "]", "{", "}", "=", "@",
];

/// Words CEL reserves: some are literals or operators, the rest may not be identifiers.
const RESERVED: [&str; 19] = [
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
    "in",
    "null",
];

pub fn is_reserved(w: &str) -> bool {
    RESERVED.contains(&w) || w == "true" || w == "false"
}

pub fn lex(src: &str) -> Result<Vec<(Tok, usize)>, CompileError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        // String and bytes literals, with optional r/R and b/B prefixes in either order.
        let mut j = i;
        let mut raw = false;
        let mut bytes = false;
        while j < b.len() && j - i < 2 {
            match b[j] {
                b'r' | b'R' if !raw => raw = true,
                b'b' | b'B' if !bytes => bytes = true,
                _ => break,
            }
            j += 1;
        }
        if j < b.len() && (b[j] == b'"' || b[j] == b'\'') && (j == i || raw || bytes) {
            let (text, next) = string_lit(src, j, raw, bytes)?;
            i = next;
            out.push((
                if bytes {
                    Tok::Bytes(text)
                } else {
                    Tok::Str(String::from_utf8(text).map_err(|_| {
                        CompileError::syntax(start, "invalid UTF-8 in string literal")
                    })?)
                },
                start,
            ));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Ident(src[start..i].to_string()), start));
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let (t, next) = number(src, i)?;
            out.push((t, start));
            i = next;
            continue;
        }
        let Some(p) = PUNCTS.iter().find(|p| src[i..].starts_with(**p)) else {
            return Err(CompileError::syntax(
                i,
                &format!(
                    "token recognition error at: '{}'",
                    &src[i..].chars().next().unwrap_or(' ')
                ),
            ));
        };
        out.push((Tok::Punct(p), start));
        i += p.len();
    }
    out.push((Tok::Eof, src.len()));
    Ok(out)
}

fn number(src: &str, start: usize) -> Result<(Tok, usize), CompileError> {
    let b = src.as_bytes();
    let mut i = start;
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        let ds = i;
        while i < b.len() && b[i].is_ascii_hexdigit() {
            i += 1;
        }
        let digits = &src[ds..i];
        if matches!(b.get(i), Some(b'u' | b'U')) {
            let v = u64::from_str_radix(digits, 16)
                .map_err(|_| CompileError::syntax(start, "invalid uint literal"))?;
            return Ok((Tok::Uint(v), i + 1));
        }
        return int_tok(u64::from_str_radix(digits, 16).ok(), start, i);
    }
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut float = false;
    if i < b.len() && b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        float = true;
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut k = i + 1;
        if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        if k < b.len() && b[k].is_ascii_digit() {
            float = true;
            i = k;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    let text = &src[start..i];
    if float {
        let v: f64 = text
            .parse()
            .map_err(|_| CompileError::syntax(start, "invalid double literal"))?;
        return Ok((Tok::Double(v), i));
    }
    if matches!(b.get(i), Some(b'u' | b'U')) {
        let v: u64 = text
            .parse()
            .map_err(|_| CompileError::syntax(start, "invalid uint literal"))?;
        return Ok((Tok::Uint(v), i + 1));
    }
    int_tok(text.parse::<u64>().ok(), start, i)
}

fn int_tok(v: Option<u64>, start: usize, next: usize) -> Result<(Tok, usize), CompileError> {
    match v {
        Some(v) if v <= i64::MAX as u64 => Ok((Tok::Int(v as i64), next)),
        Some(v) if v == i64::MAX as u64 + 1 => Ok((Tok::IntMinMagnitude, next)),
        _ => Err(CompileError::syntax(start, "invalid int literal")),
    }
}

/// Reads a quoted literal whose opening quote is at `q`; returns its bytes and the next offset.
fn string_lit(
    src: &str,
    q: usize,
    raw: bool,
    bytes: bool,
) -> Result<(Vec<u8>, usize), CompileError> {
    let b = src.as_bytes();
    let quote = b[q];
    let triple = b.len() >= q + 3 && b[q + 1] == quote && b[q + 2] == quote;
    let mut i = if triple { q + 3 } else { q + 1 };
    let mut out = Vec::new();
    loop {
        if i >= b.len() {
            return Err(CompileError::syntax(q, "unterminated string literal"));
        }
        if triple {
            if b[i] == quote && b.get(i + 1) == Some(&quote) && b.get(i + 2) == Some(&quote) {
                return Ok((out, i + 3));
            }
        } else if b[i] == quote {
            return Ok((out, i + 1));
        } else if b[i] == b'\n' || b[i] == b'\r' {
            return Err(CompileError::syntax(q, "unterminated string literal"));
        }
        if b[i] == b'\\' && !raw {
            i = escape(src, i, bytes, &mut out)?;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
}

/// Decodes the escape at `i` (a backslash) into `out`; returns the offset after it.
fn escape(src: &str, i: usize, bytes: bool, out: &mut Vec<u8>) -> Result<usize, CompileError> {
    let b = src.as_bytes();
    let bad = || CompileError::syntax(i, "invalid escape sequence");
    let c = *b.get(i + 1).ok_or_else(bad)?;
    let simple = match c {
        b'a' => Some(7u8),
        b'b' => Some(8),
        b'f' => Some(12),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(11),
        b'\\' | b'\'' | b'"' | b'`' | b'?' => Some(c),
        _ => None,
    };
    if let Some(v) = simple {
        out.push(v);
        return Ok(i + 2);
    }
    let hex = |from: usize, n: usize| -> Result<u32, CompileError> {
        let s = src.get(from..from + n).ok_or_else(bad)?;
        u32::from_str_radix(s, 16).map_err(|_| bad())
    };
    let (code, next, is_byte) = match c {
        b'x' | b'X' => (hex(i + 2, 2)?, i + 4, true),
        b'u' => (hex(i + 2, 4)?, i + 6, false),
        b'U' => (hex(i + 2, 8)?, i + 10, false),
        b'0'..=b'3' => {
            let s = src.get(i + 1..i + 4).ok_or_else(bad)?;
            (u32::from_str_radix(s, 8).map_err(|_| bad())?, i + 4, true)
        }
        _ => return Err(bad()),
    };
    if bytes && is_byte {
        out.push(code as u8);
    } else {
        let ch = char::from_u32(code).ok_or_else(bad)?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    Ok(next)
}
