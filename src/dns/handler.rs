//! One query in, one answer out: decoding and checking the request (FORMERR for what does not
//! parse or asks more or less than one question, NOTIMP for other opcodes, REFUSED for zone
//! transfers and other classes, BADVERS for unknown EDNS versions), routing it to the cluster
//! zone or upstream, and encoding the answer within the client's size limit (the TC bit and
//! as many answers as fit when it does not). Cluster names and cache hits are answered
//! without an await; only upstream work is asynchronous. It never panics on input and never
//! answers a response packet.

use super::cache::Answer;
use super::cluster::{self, Outcome, Zone};
use super::forward::Forwarder;
use super::snapshot::Snapshot;
use hickory_proto::op::{
    emit_message_parts, Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;
use std::sync::Arc;
use tokio::sync::watch;

/// The largest UDP answer sent, whatever the client offers.
const MAX_UDP_PAYLOAD: u16 = 4096;
/// The EDNS payload this server advertises.
const OUR_PAYLOAD: u16 = 1232;
/// The size of an OPT record without options.
const OPT_LEN: usize = 11;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A query that needs the upstream resolvers before it can be answered.
pub struct Pending {
    request: Message,
    limit: usize,
    name: Name,
    lower: String,
    qtype: RecordType,
    /// CNAMEs of an ExternalName chain in front of the upstream answer.
    cnames: Option<Vec<Record>>,
}

pub enum Step {
    Reply(Vec<u8>),
    Forward(Box<Pending>),
    /// Not worth an answer (a response, or too short to carry an ID).
    Drop,
}

pub struct Handler {
    snapshot: watch::Receiver<Arc<Snapshot>>,
    zone: Zone,
    forwarder: Forwarder,
}

impl Handler {
    pub fn new(snapshot: watch::Receiver<Arc<Snapshot>>, zone: Zone, forwarder: Forwarder) -> Self {
        Handler {
            snapshot,
            zone,
            forwarder,
        }
    }

    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    /// Answer a query packet if no upstream is needed.
    pub fn handle(&self, packet: &[u8], transport: Transport) -> Step {
        if packet.len() < 12 || packet[2] & 0x80 != 0 {
            return Step::Drop;
        }
        let request = match Message::from_vec(packet) {
            Ok(m) => m,
            Err(_) => return Step::Reply(header_error(packet, ResponseCode::FormErr)),
        };
        let limit = match transport {
            Transport::Tcp => usize::from(u16::MAX),
            Transport::Udp => usize::from(
                request
                    .edns
                    .as_ref()
                    .map_or(512, |e| e.max_payload().clamp(512, MAX_UDP_PAYLOAD)),
            ),
        };
        if request.metadata.op_code != OpCode::Query {
            return Step::Reply(error(&request, ResponseCode::NotImp, limit));
        }
        if request.queries.len() != 1 || request.metadata.message_type != MessageType::Query {
            return Step::Reply(error(&request, ResponseCode::FormErr, limit));
        }
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return Step::Reply(error(&request, ResponseCode::BADVERS, limit));
        }
        let query = &request.queries[0];
        let qtype = query.query_type();
        if query.query_class() != DNSClass::IN
            || matches!(qtype, RecordType::AXFR | RecordType::IXFR)
        {
            return Step::Reply(error(&request, ResponseCode::Refused, limit));
        }
        let name = query.name().clone();
        let lower = name.to_lowercase().to_ascii();
        let snap = self.snapshot.borrow().clone();
        let outcome = match self.zone.base(&lower) {
            Some(base) => cluster::resolve(&snap, &self.zone, &name, base, qtype),
            None => match (qtype == RecordType::PTR)
                .then(|| cluster::reverse(&snap, &self.zone, &name))
                .flatten()
            {
                Some(outcome) => outcome,
                None => {
                    if let Some(hit) = self.forwarder.cache.get(&lower, qtype) {
                        return Step::Reply(upstream_reply(&request, None, hit, limit));
                    }
                    return Step::Forward(Box::new(Pending {
                        request,
                        limit,
                        name,
                        lower,
                        qtype,
                        cnames: None,
                    }));
                }
            },
        };
        let mut reply = response(&request, ResponseCode::NoError);
        reply.metadata.authoritative = true;
        match outcome {
            Outcome::Answer {
                answers,
                additionals,
            } => {
                reply.answers = answers;
                reply.additionals = additionals;
            }
            Outcome::NoData => reply.authorities.push(self.zone.soa(snap.serial)),
            Outcome::NxDomain => {
                reply.metadata.response_code = ResponseCode::NXDomain;
                reply.authorities.push(self.zone.soa(snap.serial));
            }
            Outcome::ServFail => {
                reply.metadata.authoritative = false;
                reply.metadata.response_code = ResponseCode::ServFail;
            }
            Outcome::Chase { cnames, target } => {
                let lower = target.to_lowercase().to_ascii();
                return Step::Forward(Box::new(Pending {
                    request,
                    limit,
                    name: target,
                    lower,
                    qtype,
                    cnames: Some(cnames),
                }));
            }
        }
        Step::Reply(encode(&reply, limit))
    }

    /// Finish a query that needed the upstream resolvers.
    pub async fn forward(&self, pending: Pending) -> Vec<u8> {
        let result = self
            .forwarder
            .resolve(&pending.name, &pending.lower, pending.qtype)
            .await;
        match (result, pending.cnames) {
            (Ok(answer), cnames) => upstream_reply(&pending.request, cnames, answer, pending.limit),
            (Err(_), None) => error(&pending.request, ResponseCode::ServFail, pending.limit),
            (Err(_), Some(_)) => {
                // As CoreDNS: a chain that cannot be completed is a name without data.
                let mut reply = response(&pending.request, ResponseCode::NoError);
                reply.metadata.authoritative = true;
                reply
                    .authorities
                    .push(self.zone.soa(self.snapshot.borrow().serial));
                encode(&reply, pending.limit)
            }
        }
    }
}

fn response(request: &Message, rcode: ResponseCode) -> Message {
    let mut reply = Message::new(request.metadata.id, MessageType::Response, request.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.checking_disabled = request.metadata.checking_disabled;
    reply.metadata.recursion_available = true;
    reply.metadata.response_code = rcode;
    reply.queries = request.queries.clone();
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(OUR_PAYLOAD);
        reply.set_edns(edns);
    }
    reply
}

fn error(request: &Message, rcode: ResponseCode, limit: usize) -> Vec<u8> {
    let mut reply = response(request, rcode);
    if rcode == ResponseCode::BADVERS && reply.edns.is_none() {
        reply.set_edns(Edns::new());
    }
    encode(&reply, limit)
}

fn upstream_reply(
    request: &Message,
    cnames: Option<Vec<Record>>,
    answer: Answer,
    limit: usize,
) -> Vec<u8> {
    let mut reply = response(request, answer.rcode);
    match cnames {
        None => {
            reply.answers = answer.answers;
            reply.authorities = answer.authorities;
            reply.additionals = answer.additionals;
        }
        Some(mut cnames) => {
            // the chain exists whatever upstream says of its target
            reply.metadata.response_code = ResponseCode::NoError;
            cnames.extend(answer.answers);
            reply.answers = cnames;
        }
    }
    encode(&reply, limit)
}

/// An error answer for a packet that does not parse: the header's ID, opcode and RD bit,
/// nothing else can be trusted.
fn header_error(packet: &[u8], rcode: ResponseCode) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out[0] = packet[0];
    out[1] = packet[1];
    // QR, the opcode and RD from the request
    out[2] = 0x80 | (packet[2] & 0x79);
    out[3] = 0x80 | (u16::from(rcode) as u8 & 0x0f);
    out
}

/// Encode within `limit` bytes: when the whole answer does not fit, the header, question,
/// OPT and as many answers as fit, with TC set so the client retries over TCP.
pub fn encode(reply: &Message, limit: usize) -> Vec<u8> {
    if let Ok(bytes) = reply.to_vec() {
        if bytes.len() <= limit {
            return bytes;
        }
    }
    let mut metadata: Metadata = reply.metadata;
    metadata.truncation = true;
    let reserve = if reply.edns.is_some() { OPT_LEN } else { 0 };
    let room = u16::try_from(limit.saturating_sub(reserve)).unwrap_or(u16::MAX);
    let mut buf = Vec::with_capacity(limit);
    let fits = {
        let mut encoder = BinEncoder::new(&mut buf);
        encoder.set_max_size(room);
        emit_message_parts(
            &metadata,
            &mut reply.queries.iter(),
            &mut reply.answers.iter(),
            &mut std::iter::empty::<&Record>(),
            &mut std::iter::empty::<&Record>(),
            None,
            None,
            &mut encoder,
        )
        .map(|h| usize::from(h.counts.answers))
        .unwrap_or(0)
    };
    let mut cut = Message::new(metadata.id, MessageType::Response, metadata.op_code);
    cut.metadata = metadata;
    cut.queries = reply.queries.clone();
    cut.answers = reply.answers[..fits.min(reply.answers.len())].to_vec();
    cut.edns = reply.edns.clone();
    match cut.to_vec() {
        Ok(bytes) if bytes.len() <= limit => bytes,
        _ => {
            // not even the question fits: the header alone
            cut.queries.clear();
            cut.answers.clear();
            cut.edns = None;
            cut.to_vec().unwrap_or_default()
        }
    }
}

/// A query message, as tests and the benchmark build them.
pub fn query(id: u16, name: &Name, qtype: RecordType, edns_payload: Option<u16>) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name.clone(), qtype));
    if let Some(p) = edns_payload {
        let mut e = Edns::new();
        e.set_max_payload(p);
        m.set_edns(e);
    }
    m
}
