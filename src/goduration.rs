//! Go's duration syntax (`time.ParseDuration`), which Kubernetes uses wherever a duration is
//! text: `metav1.Duration` fields, CEL's `duration()`, and cron's `@every`. One parser, exact in
//! integer nanoseconds, so the three agree on what is valid.

/// Go's `time.ParseDuration` in nanoseconds: "1h30m", "1.5s", ".5h", "-300ms", "0";
/// `None` for anything else, and for what does not fit an `i64`.
pub fn parse(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        if whole.is_empty() && frac.is_empty() {
            return None;
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        total += whole.checked_mul(scale)?;
        let mut place = scale;
        for d in frac.chars() {
            place /= 10;
            total += i128::from(d.to_digit(10)?) * place;
        }
        if total > i128::from(i64::MAX) {
            return None;
        }
        rest = next;
    }
    i64::try_from(if neg { -total } else { total }).ok()
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn valid_and_invalid() {
        for (text, nanos) in [
            ("0", 0),
            ("1h30m", 5_400_000_000_000),
            ("1.5s", 1_500_000_000),
            (".5h", 1_800_000_000_000),
            ("5.h", 18_000_000_000_000),
            ("300ms", 300_000_000),
            ("1.5µs", 1_500),
            ("-1m30s", -90_000_000_000),
            ("+2ns", 2),
        ] {
            assert_eq!(parse(text), Some(nanos), "{text}");
        }
        for bad in [
            "", ".", ".h", "1.5.5h", "5", "h", "1x", "5x", "-", "3000000h",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
