//! The two ranges Services draw from: ClusterIPs out of the service CIDR and node ports out of
//! the node port range. Both are a set of taken offsets in `[0, size)` with upstream's split:
//! dynamic allocation prefers the upper band and keeps the lower band (the first `offset`
//! values) for users who ask for a specific value, so explicit choices rarely collide with
//! dynamic ones. This file only does arithmetic on offsets; it never reads the store or
//! decides which Service owns what.

use ipnetwork::IpNetwork;
use rand::Rng;
use std::collections::HashSet;
use std::net::IpAddr;

/// Why a value could not be taken. The texts are upstream's allocator errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("range is full")]
    Full,
    #[error("provided {0} is already allocated")]
    Allocated(&'static str),
}

/// Taken offsets in `[0, size)`, split into a lower band `[0, offset)` and an upper band.
#[derive(Debug, Clone)]
pub struct Offsets {
    size: u128,
    offset: u128,
    taken: HashSet<u128>,
    taken_upper: u128,
}

impl Offsets {
    pub fn new(size: u128, offset: u128) -> Offsets {
        Offsets {
            size,
            offset: offset.min(size),
            taken: HashSet::new(),
            taken_upper: 0,
        }
    }

    pub fn size(&self) -> u128 {
        self.size
    }

    pub fn used(&self) -> usize {
        self.taken.len()
    }

    pub fn has(&self, i: u128) -> bool {
        self.taken.contains(&i)
    }

    /// Take `i`; false if it already was.
    pub fn take(&mut self, i: u128) -> bool {
        if i >= self.size || !self.taken.insert(i) {
            return false;
        }
        if i >= self.offset {
            self.taken_upper += 1;
        }
        true
    }

    pub fn release(&mut self, i: u128) {
        if self.taken.remove(&i) && i >= self.offset {
            self.taken_upper -= 1;
        }
    }

    /// Take a free offset: a random one of the upper band, else of the lower band.
    pub fn take_next(&mut self) -> Result<u128, RangeError> {
        let lower_taken = self.taken.len() as u128 - self.taken_upper;
        let found = self
            .scan(self.offset, self.size, self.taken_upper)
            .or_else(|| self.scan(0, self.offset, lower_taken))
            .ok_or(RangeError::Full)?;
        self.take(found);
        Ok(found)
    }

    /// A free offset in `[from, to)`, which holds `taken` taken ones: starting at a random
    /// place, `taken + 1` consecutive candidates always include a free one, so the scan is
    /// bounded by what is allocated, not by the size of the range.
    fn scan(&self, from: u128, to: u128, taken: u128) -> Option<u128> {
        let n = to.saturating_sub(from);
        if n == 0 || taken >= n {
            return None;
        }
        let start = rand::thread_rng().gen_range(0..n);
        (0..=taken)
            .map(|k| from + (start + k) % n)
            .find(|i| !self.taken.contains(i))
    }
}

/// Upstream's lower band: `min(max(min_band, size / divisor), max_band)`.
fn band(size: u128, min_band: u128, divisor: u128, max_band: u128) -> u128 {
    (size / divisor).max(min_band).min(max_band)
}

/// The service CIDR as an allocation range: the network address (and for IPv4 the
/// broadcast address) are never handed out.
#[derive(Debug, Clone)]
pub struct IpRange {
    pub cidr: IpNetwork,
    base: u128,
    pub offsets: Offsets,
}

impl IpRange {
    pub fn new(cidr: IpNetwork) -> IpRange {
        let bits = if cidr.is_ipv4() { 32 } else { 128 };
        let host_bits = u32::from(bits - cidr.prefix());
        let total: u128 = if host_bits >= 128 {
            u128::MAX
        } else {
            1u128 << host_bits
        };
        let network = to_u128(cidr.network());
        let (base, size) = match (cidr.is_ipv4(), total) {
            (_, 0..=2) => (network, total),
            (true, t) => (network + 1, t - 2),
            (false, t) => (network + 1, t - 1),
        };
        IpRange {
            cidr,
            base,
            offsets: Offsets::new(size, band(size, 16, 16, 256)),
        }
    }

    pub fn offset_of(&self, ip: IpAddr) -> Option<u128> {
        if ip.is_ipv4() != self.cidr.is_ipv4() || !self.cidr.contains(ip) {
            return None;
        }
        let i = to_u128(ip).checked_sub(self.base)?;
        (i < self.offsets.size()).then_some(i)
    }

    pub fn ip_at(&self, i: u128) -> IpAddr {
        let v = self.base + i;
        if self.cidr.is_ipv4() {
            IpAddr::V4(std::net::Ipv4Addr::from(v as u32))
        } else {
            IpAddr::V6(std::net::Ipv6Addr::from(v))
        }
    }

    /// `"IPv4"` or `"IPv6"`, the family of the range.
    pub fn family(&self) -> &'static str {
        if self.cidr.is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        }
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

/// The node port range, `first..=last`.
#[derive(Debug, Clone)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
    pub offsets: Offsets,
}

impl PortRange {
    pub fn new(first: u16, last: u16) -> PortRange {
        let size = u128::from(last.saturating_sub(first)) + 1;
        PortRange {
            first,
            last,
            offsets: Offsets::new(size, band(size, 16, 32, 128)),
        }
    }

    pub fn offset_of(&self, port: i64) -> Option<u128> {
        (i64::from(self.first)..=i64::from(self.last))
            .contains(&port)
            .then(|| (port - i64::from(self.first)) as u128)
    }

    pub fn port_at(&self, i: u128) -> i64 {
        i64::from(self.first) + i as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_range_skips_network_and_broadcast() {
        let r = IpRange::new("10.43.0.0/16".parse().unwrap());
        assert_eq!(r.offsets.size(), 65534);
        assert_eq!(r.ip_at(0).to_string(), "10.43.0.1");
        assert_eq!(r.offset_of("10.43.0.10".parse().unwrap()), Some(9));
        assert_eq!(r.offset_of("10.43.0.0".parse().unwrap()), None);
        assert_eq!(r.offset_of("10.43.255.255".parse().unwrap()), None);
        assert_eq!(r.offset_of("10.44.0.1".parse().unwrap()), None);
        assert_eq!(r.offset_of("fd00::1".parse().unwrap()), None);
        let v6 = IpRange::new("fd00:43::/112".parse().unwrap());
        assert_eq!(v6.ip_at(0).to_string(), "fd00:43::1");
        assert_eq!(v6.family(), "IPv6");
    }

    #[test]
    fn dynamic_allocation_prefers_the_upper_band_then_fills_everything() {
        let mut o = Offsets::new(300, band(300, 16, 16, 256));
        assert_eq!(o.offset, 18);
        let mut seen = HashSet::new();
        for k in 0..300 {
            let i = o.take_next().unwrap();
            if k < 282 {
                assert!(i >= 18, "allocation {k} took {i} from the lower band");
            }
            assert!(seen.insert(i));
        }
        assert_eq!(o.take_next(), Err(RangeError::Full));
        o.release(5);
        assert_eq!(o.take_next(), Ok(5));
        assert!(!o.take(5));
    }

    #[test]
    fn port_range_bounds() {
        let p = PortRange::new(30000, 32767);
        assert_eq!(p.offsets.size(), 2768);
        assert_eq!(p.offsets.offset, 86);
        assert_eq!(p.offset_of(30000), Some(0));
        assert_eq!(p.offset_of(32768), None);
        assert_eq!(p.port_at(2767), 32767);
    }
}
