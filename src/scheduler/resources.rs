//! Resource arithmetic for the scheduler: parsing quantities into integers (cpu in
//! millicores, everything else in whole units rounded up, as upstream's `MilliValue` and
//! `Value`), and a pod's effective request. It owns no state and must never talk to the API.
//!
//! The registry has its own quantity parser, but it is private to validation and works on
//! exact decimals for comparison; the scheduler needs saturating integers it can sum.

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const EPHEMERAL: &str = "ephemeral-storage";
pub const PODS: &str = "pods";
/// Requests assumed for a container that asks for nothing, in scoring only (upstream's
/// `DefaultMilliCPURequest` and `DefaultMemoryRequest`), so empty pods still spread.
pub const DEFAULT_MILLI_CPU: i64 = 100;
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// Amounts by resource name: cpu in millicores, others in units.
pub type Resources = BTreeMap<String, i64>;

/// A quantity's value in thousandths, rounded up; `None` when it does not parse.
pub fn parse_milli(s: &str) -> Option<i128> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let mut mantissa: i128 = 0;
    for c in whole.chars().chain(frac.chars()) {
        let d = c.to_digit(10)? as i128;
        mantissa = mantissa.checked_mul(10)?.checked_add(d)?;
    }
    let (mul, exp10): (i128, i32) = match suffix {
        "" => (1, 0),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        other => {
            let e = other.strip_prefix(['e', 'E'])?;
            (1, e.parse::<i32>().ok().filter(|e| e.abs() <= 30)?)
        }
    };
    // value * 1000 = mantissa * mul * 10^(exp10 + 3 - frac digits)
    let shift = exp10 + 3 - frac.len() as i32;
    let mut num = mantissa.checked_mul(mul)?;
    let mut den: i128 = 1;
    if shift >= 0 {
        num = num.checked_mul(10i128.checked_pow(shift as u32)?)?;
    } else {
        den = 10i128.checked_pow((-shift) as u32)?;
    }
    let v = (num + den - 1) / den;
    Some(if negative { -v } else { v })
}

/// The integer amount of `name` that `q` stands for (cpu in millicores), or 0 if unparseable.
pub fn amount(name: &str, q: &Quantity) -> i64 {
    let milli = parse_milli(&q.0).unwrap_or(0).max(0);
    let v = if name == CPU {
        milli
    } else {
        (milli + 999) / 1000
    };
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn to_resources(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
    list.map(|m| m.iter().map(|(k, q)| (k.clone(), amount(k, q))).collect())
        .unwrap_or_default()
}

pub fn add(into: &mut Resources, other: &Resources) {
    for (k, v) in other {
        let e = into.entry(k.clone()).or_insert(0);
        *e = e.saturating_add(*v);
    }
}

pub fn sub(from: &mut Resources, other: &Resources) {
    for (k, v) in other {
        if let Some(e) = from.get_mut(k) {
            *e = e.saturating_sub(*v);
            if *e == 0 {
                from.remove(k);
            }
        }
    }
}

fn max_into(into: &mut Resources, other: &Resources) {
    for (k, v) in other {
        let e = into.entry(k.clone()).or_insert(0);
        *e = (*e).max(*v);
    }
}

/// A container's requests; a resource with a limit and no request requests its limit, as
/// the API's defaulting would have written it.
fn container_requests(c: &Container) -> Resources {
    let res = c.resources.as_ref();
    let mut out = to_resources(res.and_then(|r| r.limits.as_ref()));
    out.extend(to_resources(res.and_then(|r| r.requests.as_ref())));
    out
}

/// What the pod occupies on a node: the larger of its containers' sum and its init
/// containers' peak (restartable init containers, sidecars, run alongside everything after
/// them), plus the pod overhead. `pods` is not included.
pub fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::new();
    };
    let mut sum = Resources::new();
    for c in &spec.containers {
        add(&mut sum, &container_requests(c));
    }
    let mut sidecars = Resources::new();
    let mut init_peak = Resources::new();
    for c in spec.init_containers.iter().flatten() {
        let req = container_requests(c);
        if c.restart_policy.as_deref() == Some("Always") {
            add(&mut sidecars, &req);
            max_into(&mut init_peak, &sidecars);
        } else {
            let mut during = sidecars.clone();
            add(&mut during, &req);
            max_into(&mut init_peak, &during);
        }
    }
    add(&mut sum, &sidecars);
    max_into(&mut sum, &init_peak);
    add(&mut sum, &to_resources(spec.overhead.as_ref()));
    sum.retain(|_, v| *v > 0);
    sum
}

/// cpu and memory as scoring sees them: zero requests count as the upstream defaults.
pub fn non_zero(req: &Resources) -> (i64, i64) {
    let cpu = req.get(CPU).copied().filter(|v| *v > 0);
    let mem = req.get(MEMORY).copied().filter(|v| *v > 0);
    (
        cpu.unwrap_or(DEFAULT_MILLI_CPU),
        mem.unwrap_or(DEFAULT_MEMORY),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    #[test]
    fn parses_quantities() {
        assert_eq!(amount(CPU, &q("100m")), 100);
        assert_eq!(amount(CPU, &q("1.5")), 1500);
        assert_eq!(amount(CPU, &q("2")), 2000);
        assert_eq!(amount(CPU, &q("1u")), 1);
        assert_eq!(amount(MEMORY, &q("1Gi")), 1 << 30);
        assert_eq!(amount(MEMORY, &q("1.5Ki")), 1536);
        assert_eq!(amount(MEMORY, &q("1e3")), 1000);
        assert_eq!(amount(MEMORY, &q("128M")), 128_000_000);
        assert_eq!(amount(MEMORY, &q("1m")), 1);
        assert_eq!(amount("nvidia.com/gpu", &q("2")), 2);
        assert_eq!(parse_milli("bogus"), None);
        assert_eq!(parse_milli("12Qi"), None);
        assert_eq!(amount(CPU, &q("-1")), 0);
    }

    fn container(cpu: &str, restart: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            restart_policy: restart.map(String::from),
            resources: Some(ResourceRequirements {
                requests: Some([(CPU.to_string(), q(cpu))].into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn effective_request_is_max_of_init_and_sum_plus_overhead() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![container("200m", None), container("300m", None)],
                init_containers: Some(vec![container("800m", None)]),
                overhead: Some([(CPU.to_string(), q("50m"))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(pod_requests(&pod)[CPU], 850);
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![container("200m", None)],
                init_containers: Some(vec![
                    container("100m", Some("Always")),
                    container("250m", None),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        // the sidecar runs alongside the init container and the main container
        assert_eq!(pod_requests(&pod)[CPU], 350);
        assert_eq!(non_zero(&Resources::new()), (100, 200 << 20));
    }
}
