//! Minimal DER writer for the X.509 structures this module issues.
//!
//! Leaf certificates are encoded here rather than with rcgen because a
//! Kubernetes client certificate carries one Organization attribute per
//! group, and rcgen's distinguished-name type holds at most one value per
//! attribute type. Only definite-length, primitive-or-constructed TLVs are
//! needed, which keeps this small.

pub(crate) const TAG_BOOLEAN: u8 = 0x01;
pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_UTF8_STRING: u8 = 0x0c;
pub(crate) const TAG_UTC_TIME: u8 = 0x17;
pub(crate) const TAG_GENERALIZED_TIME: u8 = 0x18;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
pub(crate) const TAG_SET: u8 = 0x31;

/// Encoded object identifiers (content octets only).
pub(crate) mod oid {
    /// 2.5.4.3
    pub(crate) const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    /// 2.5.4.10
    pub(crate) const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];
    /// 1.2.840.10045.4.3.2
    pub(crate) const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    /// 2.5.29.15
    pub(crate) const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    /// 2.5.29.17
    pub(crate) const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
    /// 2.5.29.19
    pub(crate) const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    /// 2.5.29.35
    pub(crate) const AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];
    /// 2.5.29.37
    pub(crate) const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
    /// 1.3.6.1.5.5.7.3.1
    pub(crate) const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    /// 1.3.6.1.5.5.7.3.2
    pub(crate) const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
}

/// One TLV with the given tag and content.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A constructed TLV whose content is the concatenation of `parts`.
pub(crate) fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

pub(crate) fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    constructed(TAG_SEQUENCE, parts)
}

pub(crate) fn oid(encoded: &[u8]) -> Vec<u8> {
    tlv(TAG_OID, encoded)
}

/// A BIT STRING with no unused bits.
pub(crate) fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(0);
    content.extend_from_slice(bytes);
    tlv(TAG_BIT_STRING, &content)
}

/// A non-negative INTEGER from big-endian magnitude bytes.
pub(crate) fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match magnitude.iter().position(|b| *b != 0) {
        Some(first) => &magnitude[first..],
        None => &[0],
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    // A set high bit would make the value negative in two's complement.
    if trimmed[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(TAG_INTEGER, &content)
}

/// An X.509 Extension: SEQUENCE { extnID, critical DEFAULT FALSE, extnValue }.
pub(crate) fn extension(id: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let id = oid(id);
    let value = tlv(TAG_OCTET_STRING, value);
    if critical {
        sequence(&[&id, &tlv(TAG_BOOLEAN, &[0xff]), &value])
    } else {
        sequence(&[&id, &value])
    }
}

/// An X.509 Time for seconds since the Unix epoch: UTCTime through 2049,
/// GeneralizedTime after, as RFC 5280 §4.1.2.5 requires.
pub(crate) fn x509_time(unix_seconds: i64) -> Vec<u8> {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let clock = format!(
        "{month:02}{day:02}{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    if (1950..2050).contains(&year) {
        tlv(
            TAG_UTC_TIME,
            format!("{:02}{clock}", year.rem_euclid(100)).as_bytes(),
        )
    } else {
        tlv(TAG_GENERALIZED_TIME, format!("{year:04}{clock}").as_bytes())
    }
}

/// Proleptic Gregorian (year, month, day) for a day count since 1970-01-01,
/// using the era-based algorithm from Howard Hinnant's date library paper.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_long_form_above_127() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(unsigned_integer(&[0, 0, 5]), vec![0x02, 1, 5]);
        assert_eq!(unsigned_integer(&[0x80]), vec![0x02, 2, 0, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0]), vec![0x02, 1, 0]);
    }

    #[test]
    fn times_switch_to_generalized_after_2049() {
        assert_eq!(x509_time(0), tlv(TAG_UTC_TIME, b"700101000000Z"));
        // 2000-02-29T12:34:56Z, a leap day.
        assert_eq!(x509_time(951_827_696), tlv(TAG_UTC_TIME, b"000229123456Z"));
        // 2050-01-01T00:00:00Z
        assert_eq!(
            x509_time(2_524_608_000),
            tlv(TAG_GENERALIZED_TIME, b"20500101000000Z")
        );
    }
}
