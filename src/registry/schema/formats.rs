//! String formats upstream enforces for custom resources. Formats outside this list (`int32`,
//! `int64`, `float`, `double`, anything unknown) are dropped from the schema upstream and so are
//! not enforced here either. Checks are deliberately lenient where upstream's are.

use super::pattern::Regex;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The canonical name of a supported format, or `None` when the format is not enforced.
pub(crate) fn supported(format: &str) -> Option<&str> {
    Some(match format {
        "date-time" | "datetime" => format,
        "bsonobjectid" | "uri" | "email" | "hostname" | "ipv4" | "ipv6" | "cidr" | "mac"
        | "uuid" | "uuid3" | "uuid4" | "uuid5" | "isbn" | "isbn10" | "isbn13" | "creditcard"
        | "ssn" | "hexcolor" | "rgbcolor" | "byte" | "password" | "date" | "duration" => format,
        _ => return None,
    })
}

fn re(pattern: &str, s: &str) -> bool {
    Regex::new(pattern).is_none_or(|r| r.is_match(s))
}

/// Whether `s` is a valid instance of the (supported) `format`.
pub(crate) fn check(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => date_time(s),
        "date" => date(s),
        "byte" => base64(s),
        "password" => true,
        "bsonobjectid" => re("^[0-9a-fA-F]{24}$", s),
        "uri" => uri(s),
        "email" => email(s),
        "hostname" => hostname(s),
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.contains(':') && s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => cidr(s),
        "mac" => mac(s),
        "uuid" => uuid(s, None),
        "uuid3" => uuid(s, Some('3')),
        "uuid4" => uuid(s, Some('4')),
        "uuid5" => uuid(s, Some('5')),
        "isbn" => isbn10(s) || isbn13(s),
        "isbn10" => isbn10(s),
        "isbn13" => isbn13(s),
        "creditcard" => {
            let n = s.chars().filter(char::is_ascii_digit).count();
            (13..=19).contains(&n)
        }
        "ssn" => re(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$", s),
        "hexcolor" => re("^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$", s),
        "rgbcolor" => re(r"^rgb\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*\)$", s),
        "duration" => duration(s),
        _ => true,
    }
}

fn date(s: &str) -> bool {
    re(r"^\d{4}-\d{2}-\d{2}$", s) && s.parse::<jiff::civil::Date>().is_ok()
}

fn date_time(s: &str) -> bool {
    let shape = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$";
    if !re(shape, s) {
        return false;
    }
    // The shape check above guarantees 19 ASCII characters of date and time.
    let local: String = s
        .chars()
        .take(19)
        .map(|c| if c == ' ' || c == 't' { 'T' } else { c })
        .collect();
    local.parse::<jiff::civil::DateTime>().is_ok()
}

fn base64(s: &str) -> bool {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let pad = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if pad > 2 {
        return false;
    }
    bytes[..bytes.len() - pad]
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn uri(s: &str) -> bool {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if s.starts_with('/') {
        return true;
    }
    match s.split_once(':') {
        Some((scheme, _)) => {
            let mut cs = scheme.chars();
            cs.next().is_some_and(|c| c.is_ascii_alphabetic())
                && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

fn email(s: &str) -> bool {
    let addr = match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s.trim(),
    };
    match addr.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !addr.chars().any(char::is_whitespace)
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

fn hostname(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    let s = s.strip_suffix('.').unwrap_or(s);
    s.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    })
}

fn cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if ip.parse::<Ipv4Addr>().is_ok() {
        bits <= 32
    } else {
        ip.parse::<Ipv6Addr>().is_ok() && bits <= 128
    }
}

fn mac(s: &str) -> bool {
    let hex = |g: &str, n: usize| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit());
    for sep in [':', '-'] {
        if s.contains(sep) {
            let groups: Vec<&str> = s.split(sep).collect();
            return matches!(groups.len(), 6 | 8 | 20) && groups.iter().all(|g| hex(g, 2));
        }
    }
    let groups: Vec<&str> = s.split('.').collect();
    matches!(groups.len(), 3 | 4 | 10) && groups.iter().all(|g| hex(g, 4))
}

fn uuid(s: &str, version: Option<char>) -> bool {
    let hex: String = if s.len() == 36 {
        let dashes = [8, 13, 18, 23];
        if !dashes.iter().all(|&i| s.as_bytes().get(i) == Some(&b'-')) {
            return false;
        }
        s.chars().filter(|&c| c != '-').collect()
    } else {
        s.to_string()
    };
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return false;
    }
    match version {
        None => true,
        Some(v) => {
            let b = hex.as_bytes();
            let variant_ok =
                v == '3' || matches!(b.get(16), Some(b'8' | b'9' | b'a' | b'b' | b'A' | b'B'));
            b.get(12) == Some(&(v as u8)) && variant_ok
        }
    }
}

fn isbn_digits(s: &str) -> String {
    s.chars().filter(|&c| c != '-' && c != ' ').collect()
}

fn isbn10(s: &str) -> bool {
    let d = isbn_digits(s);
    let b = d.as_bytes();
    b.len() == 10
        && b[..9].iter().all(u8::is_ascii_digit)
        && (b[9].is_ascii_digit() || b[9] == b'X' || b[9] == b'x')
}

fn isbn13(s: &str) -> bool {
    let d = isbn_digits(s);
    d.len() == 13 && d.chars().all(|c| c.is_ascii_digit())
}

/// Go durations ("1h30m", "-1.5s") and the spelled-out forms upstream also accepts ("3 days").
fn duration(s: &str) -> bool {
    let s = s.trim();
    let s = s
        .strip_prefix('-')
        .or_else(|| s.strip_prefix('+'))
        .unwrap_or(s);
    if s == "0" {
        return true;
    }
    const UNITS: &[&str] = &[
        "ns",
        "us",
        "µs",
        "μs",
        "ms",
        "s",
        "m",
        "h",
        "d",
        "w",
        "nanosecond",
        "nanoseconds",
        "microsecond",
        "microseconds",
        "millisecond",
        "milliseconds",
        "second",
        "seconds",
        "sec",
        "secs",
        "minute",
        "minutes",
        "min",
        "mins",
        "hour",
        "hours",
        "hr",
        "hrs",
        "day",
        "days",
        "week",
        "weeks",
    ];
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut parts = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
            i += 1;
        }
        if i == start {
            return false;
        }
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        let ustart = i;
        while i < chars.len() && chars[i].is_alphabetic() {
            i += 1;
        }
        let unit: String = chars[ustart..i].iter().collect();
        if !UNITS.contains(&unit.as_str()) {
            return false;
        }
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        parts += 1;
    }
    parts > 0
}
