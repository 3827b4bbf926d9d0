//! The bounded answer cache in front of the upstream resolvers: positive answers live for
//! their smallest TTL, negative ones (NXDOMAIN, NODATA) for their SOA's minimum (RFC 2308),
//! both capped as CoreDNS's `cache 30` caps them; served records carry the TTL they have
//! left. When full, the oldest entry goes first. It never caches failures or answers without
//! a TTL to honour, and never holds its lock across an await.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, Record, RecordType};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An upstream answer as cached and served.
#[derive(Debug, Clone)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Answer {
    /// How long it may be cached: `None` when it must not be.
    fn ttl(&self) -> Option<u32> {
        let negative = self.rcode == ResponseCode::NXDomain
            || (self.rcode == ResponseCode::NoError && self.answers.is_empty());
        if negative {
            // RFC 2308: the SOA's TTL, bounded by its minimum field; no SOA, no caching
            self.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
        } else if self.rcode == ResponseCode::NoError {
            self.answers.iter().map(|r| r.ttl).min()
        } else {
            None
        }
    }
}

struct Entry {
    answer: Answer,
    stored: Instant,
    ttl: u32,
    generation: u64,
}

type Key = (String, RecordType);

struct Inner {
    map: HashMap<Key, Entry>,
    /// Insertion order for eviction; entries whose generation no longer matches are stale.
    order: VecDeque<(Key, u64)>,
    generation: u64,
}

pub struct Cache {
    inner: Mutex<Inner>,
    capacity: usize,
    max_ttl: u32,
}

impl Cache {
    pub fn new(capacity: usize, max_ttl: Duration) -> Self {
        Cache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                generation: 0,
            }),
            capacity: capacity.max(1),
            max_ttl: u32::try_from(max_ttl.as_secs()).unwrap_or(u32::MAX),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A cached answer for a lowercase name and type, its TTLs reduced by its age.
    pub fn get(&self, name: &str, qtype: RecordType) -> Option<Answer> {
        let now = Instant::now();
        let mut inner = self.lock();
        let key = (name.to_string(), qtype);
        let entry = inner.map.get(&key)?;
        let age = u32::try_from(now.duration_since(entry.stored).as_secs()).unwrap_or(u32::MAX);
        if age >= entry.ttl {
            inner.map.remove(&key);
            return None;
        }
        let mut answer = entry.answer.clone();
        drop(inner);
        for r in answer
            .answers
            .iter_mut()
            .chain(answer.authorities.iter_mut())
            .chain(answer.additionals.iter_mut())
        {
            r.ttl = r.ttl.saturating_sub(age);
        }
        Some(answer)
    }

    /// Store an upstream answer if it may be cached.
    pub fn insert(&self, name: &str, qtype: RecordType, answer: &Answer) {
        let Some(ttl) = answer.ttl().map(|t| t.min(self.max_ttl)) else {
            return;
        };
        if ttl == 0 {
            return;
        }
        let mut answer = answer.clone();
        for r in answer
            .answers
            .iter_mut()
            .chain(answer.authorities.iter_mut())
            .chain(answer.additionals.iter_mut())
        {
            r.ttl = r.ttl.min(ttl);
        }
        let mut inner = self.lock();
        inner.generation += 1;
        let generation = inner.generation;
        let key = (name.to_string(), qtype);
        inner.map.insert(
            key.clone(),
            Entry {
                answer,
                stored: Instant::now(),
                ttl,
                generation,
            },
        );
        inner.order.push_back((key, generation));
        while inner.map.len() > self.capacity {
            let Some((old, g)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&old).is_some_and(|e| e.generation == g) {
                inner.map.remove(&old);
            }
        }
        // Replaced and expired keys leave stale order entries; keep the queue bounded.
        if inner.order.len() > self.capacity * 2 {
            let Inner { map, order, .. } = &mut *inner;
            order.retain(|(k, g)| map.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::Name;

    fn a(ttl: u32) -> Answer {
        Answer {
            rcode: ResponseCode::NoError,
            answers: vec![Record::from_rdata(
                Name::from_ascii("example.com.").unwrap(),
                ttl,
                RData::A(A::new(192, 0, 2, 1)),
            )],
            authorities: vec![],
            additionals: vec![],
        }
    }

    #[test]
    fn caps_ttl_and_evicts_oldest() {
        let c = Cache::new(2, Duration::from_secs(30));
        c.insert("a.", RecordType::A, &a(300));
        assert_eq!(c.get("a.", RecordType::A).unwrap().answers[0].ttl, 30);
        assert!(c.get("a.", RecordType::AAAA).is_none());
        c.insert("b.", RecordType::A, &a(10));
        c.insert("c.", RecordType::A, &a(10));
        assert_eq!(c.len(), 2);
        assert!(c.get("a.", RecordType::A).is_none());
        assert!(c.get("c.", RecordType::A).is_some());
    }

    #[test]
    fn negative_answers_use_the_soa_minimum_and_failures_are_not_cached() {
        let c = Cache::new(10, Duration::from_secs(30));
        let zone = Name::from_ascii("example.com.").unwrap();
        let soa = SOA::new(zone.clone(), zone.clone(), 1, 1, 1, 1, 7);
        let neg = Answer {
            rcode: ResponseCode::NXDomain,
            answers: vec![],
            authorities: vec![Record::from_rdata(zone, 600, RData::SOA(soa))],
            additionals: vec![],
        };
        c.insert("x.example.com.", RecordType::A, &neg);
        let got = c.get("x.example.com.", RecordType::A).unwrap();
        assert_eq!(got.rcode, ResponseCode::NXDomain);
        assert_eq!(got.authorities[0].ttl, 7);
        let mut fail = a(60);
        fail.rcode = ResponseCode::ServFail;
        c.insert("y.", RecordType::A, &fail);
        let mut bare = neg.clone();
        bare.authorities.clear();
        c.insert("z.", RecordType::A, &bare);
        assert!(c.get("y.", RecordType::A).is_none());
        assert!(c.get("z.", RecordType::A).is_none());
        c.insert("zero.", RecordType::A, &a(0));
        assert!(c.get("zero.", RecordType::A).is_none());
    }
}
