//! The Kubernetes IP and CIDR libraries: `ip()`, `isIP()`, `ip.isCanonical()`, `cidr()`,
//! `isCIDR()`, and on addresses `family`, `isUnspecified`, `isLoopback`, `isLinkLocalMulticast`,
//! `isLinkLocalUnicast`, `isGlobalUnicast`; on prefixes `containsIP`, `containsCIDR`, `ip`,
//! `masked`, `prefixLength`. As upstream, IPv4-mapped IPv6 addresses and zones are refused.

use super::value::{EvalError, Value};
use std::net::IpAddr;

pub fn owns(name: &str) -> bool {
    matches!(
        name,
        "ip" | "isIP"
            | "ip.isCanonical"
            | "isCanonical"
            | "cidr"
            | "isCIDR"
            | "family"
            | "isUnspecified"
            | "isLoopback"
            | "isLinkLocalMulticast"
            | "isLinkLocalUnicast"
            | "isGlobalUnicast"
            | "containsIP"
            | "containsCIDR"
            | "masked"
            | "prefixLength"
    )
}

pub fn parse_ip(s: &str) -> Result<IpAddr, EvalError> {
    let err = || {
        EvalError::new(format!(
            "IP Address {s:?} parse error during conversion from string: ParseAddr({s:?}): unable to parse IP"
        ))
    };
    let ip: IpAddr = s.parse().map_err(|_| err())?;
    if let IpAddr::V6(v6) = ip {
        if v6.to_ipv4_mapped().is_some() {
            return Err(EvalError::new(format!(
                "IPv4-mapped IPv6 address {s:?} is not allowed"
            )));
        }
    }
    Ok(ip)
}

pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), EvalError> {
    let err = || {
        EvalError::new(format!(
            "network address {s:?} parse error during conversion from string: netip.ParsePrefix({s:?}): bad prefix"
        ))
    };
    let (a, p) = s.split_once('/').ok_or_else(err)?;
    let ip = parse_ip(a).map_err(|_| err())?;
    if p.is_empty() || (p.len() > 1 && p.starts_with('0')) {
        return Err(err());
    }
    let bits: u8 = p.parse().map_err(|_| err())?;
    if bits > width(&ip) {
        return Err(err());
    }
    Ok((ip, bits))
}

fn width(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn bits(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u128::from(u32::from(*v)),
        IpAddr::V6(v) => u128::from(*v),
    }
}

fn mask(ip: &IpAddr, len: u8) -> IpAddr {
    let w = width(ip);
    let keep = if len == 0 { 0 } else { (!0u128) << (w - len) };
    let full = if w == 32 {
        u128::from(u32::MAX)
    } else {
        !0u128
    };
    let v = bits(ip) & keep & full;
    match ip {
        IpAddr::V4(_) => IpAddr::V4((v as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(v.into()),
    }
}

fn contains(net: &(IpAddr, u8), ip: &IpAddr) -> bool {
    net.0.is_ipv4() == ip.is_ipv4() && mask(ip, net.1) == mask(&net.0, net.1)
}

fn is_link_local_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => v.is_link_local(),
        IpAddr::V6(v) => (v.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn is_link_local_multicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => v.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v) => (v.segments()[0] & 0xff0f) == 0xff02,
    }
}

fn is_global_unicast(ip: &IpAddr) -> bool {
    let broadcast = matches!(ip, IpAddr::V4(v) if v.is_broadcast());
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || broadcast
        || is_link_local_unicast(ip))
}

pub fn call(target: Option<Value>, name: &str, args: &[Value]) -> Result<Value, EvalError> {
    use Value::*;
    Ok(match (target, name, args) {
        (None, "ip", [String(s)]) => Ip(parse_ip(s)?),
        (None, "isIP", [String(s)]) => Bool(parse_ip(s).is_ok()),
        (None, "ip.isCanonical", [String(s)]) => Bool(parse_ip(s)?.to_string() == **s),
        (None, "cidr", [String(s)]) => {
            let (ip, len) = parse_cidr(s)?;
            Cidr(ip, len)
        }
        (None, "isCIDR", [String(s)]) => Bool(parse_cidr(s).is_ok()),
        (Some(Ip(ip)), "family", []) => Int(if ip.is_ipv4() { 4 } else { 6 }),
        (Some(Ip(ip)), "isUnspecified", []) => Bool(ip.is_unspecified()),
        (Some(Ip(ip)), "isLoopback", []) => Bool(ip.is_loopback()),
        (Some(Ip(ip)), "isLinkLocalMulticast", []) => Bool(is_link_local_multicast(&ip)),
        (Some(Ip(ip)), "isLinkLocalUnicast", []) => Bool(is_link_local_unicast(&ip)),
        (Some(Ip(ip)), "isGlobalUnicast", []) => Bool(is_global_unicast(&ip)),
        (Some(Cidr(a, l)), "containsIP", [Ip(ip)]) => Bool(contains(&(a, l), ip)),
        (Some(Cidr(a, l)), "containsIP", [String(s)]) => Bool(contains(&(a, l), &parse_ip(s)?)),
        (Some(Cidr(a, l)), "containsCIDR", [Cidr(b, m)]) => Bool(*m >= l && contains(&(a, l), b)),
        (Some(Cidr(a, l)), "containsCIDR", [String(s)]) => {
            let (b, m) = parse_cidr(s)?;
            Bool(m >= l && contains(&(a, l), &b))
        }
        (Some(Cidr(a, _)), "ip", []) => Ip(a),
        (Some(Cidr(a, l)), "masked", []) => Cidr(mask(&a, l), l),
        (Some(Cidr(_, l)), "prefixLength", []) => Int(i64::from(l)),
        _ => return Err(EvalError::no_overload()),
    })
}
