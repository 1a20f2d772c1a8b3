//! Name -> address bindings from the DNS responses a traced process receives.
//!
//! The message parser is `simple-dns`, chosen over `hickory-proto`: it parses
//! borrowed, zero-copy messages with no required dependencies beyond
//! `bitflags`, while hickory-proto brings rand, url, tracing, ipnet and a
//! resolver-sized API we do not need. Its name decoder bounds names at 255
//! bytes and only follows compression pointers that point backwards, so a
//! pointer loop ends in an error instead of a hang (tested below).
//!
//! Only what the client asked is named: an A or AAAA record counts when its
//! owner is the question name or is reached from it through CNAMEs in the
//! same answer section. Records for other names (a hostile server can add any)
//! bind nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, RCODE};

use super::hostname::Hostname;

/// Longest CNAME chain followed from a question name.
pub const MAX_CNAME_DEPTH: usize = 8;
/// Bindings taken from one message; a real answer has a few dozen at most.
pub const MAX_BINDINGS_PER_MESSAGE: usize = 64;
/// Questions looked at in one message (resolvers send one).
const MAX_QUESTIONS: usize = 4;
/// Messages taken from one TCP stream chunk.
pub const MAX_TCP_MESSAGES: usize = 16;

const HEADER_LEN: usize = 12;
/// A question is at least a root name (1 byte), type and class.
const MIN_QUESTION_LEN: usize = 5;
/// A record is at least a root name, type, class, ttl and rdata length.
const MIN_RECORD_LEN: usize = 11;

/// The client asked for `name` and was told it is at `addr` for `ttl` seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The question name, not the CNAME target the address belongs to.
    pub name: Hostname,
    pub addr: IpAddr,
    /// The smallest TTL along the CNAME chain and the address record.
    pub ttl: u32,
}

/// Bindings in one DNS response message (a UDP payload, or one TCP message
/// without its length prefix). Queries, failed responses (rcode other than
/// NOERROR) and messages that do not parse give none.
pub fn parse_response(msg: &[u8]) -> Vec<Binding> {
    if !plausible_response(msg) {
        return Vec::new();
    }
    let Ok(packet) = Packet::parse(msg) else {
        return Vec::new();
    };
    if packet.rcode() != RCODE::NoError {
        return Vec::new();
    }

    // Each answer's owner name is checked once; records with names that are
    // not host names are skipped, not fatal.
    let answers: Vec<(Hostname, &RData<'_>, u32)> = packet
        .answers
        .iter()
        .filter_map(|rr| Some((hostname(&rr.name)?, &rr.rdata, rr.ttl)))
        .collect();

    let mut out = Vec::new();
    for question in packet.questions.iter().take(MAX_QUESTIONS) {
        let Some(qname) = hostname(&question.qname) else {
            continue;
        };
        let chain = cname_chain(&qname, &answers);
        for (owner, rdata, ttl) in &answers {
            let Some(&(_, chain_ttl)) = chain.iter().find(|(name, _)| name == owner) else {
                continue;
            };
            let addr = match rdata {
                RData::A(a) => IpAddr::V4(Ipv4Addr::from(a.address)),
                RData::AAAA(a) => IpAddr::V6(Ipv6Addr::from(a.address)),
                _ => continue,
            };
            if out.len() >= MAX_BINDINGS_PER_MESSAGE {
                return out;
            }
            if !out
                .iter()
                .any(|b: &Binding| b.name == qname && b.addr == addr)
            {
                out.push(Binding {
                    name: qname.clone(),
                    addr,
                    ttl: (*ttl).min(chain_ttl),
                });
            }
        }
    }
    out
}

/// What [`parse_tcp`] found in a chunk of a DNS-over-TCP stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TcpAnswers {
    pub bindings: Vec<Binding>,
    /// Bytes of the input taken by complete messages; a caller that keeps
    /// reading the stream starts its next chunk here.
    pub consumed: usize,
}

/// Bindings in DNS-over-TCP stream bytes: messages with a two-byte
/// big-endian length prefix, possibly several, the last possibly cut short.
/// Complete messages are parsed (at most [`MAX_TCP_MESSAGES`]); a truncated
/// one is left for the caller.
pub fn parse_tcp(stream: &[u8]) -> TcpAnswers {
    let mut answers = TcpAnswers::default();
    let mut rest = stream;
    for _ in 0..MAX_TCP_MESSAGES {
        let Some((len, body)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(*len));
        let Some((msg, after)) = body.split_at_checked(len) else {
            break;
        };
        answers.bindings.extend(parse_response(msg));
        answers.consumed += 2 + len;
        rest = after;
    }
    answers
}

/// Bindings in the bytes of one read from a DNS-over-TCP socket. Resolvers
/// differ: some read the length prefix and the message in one go (then the
/// bytes are framed), others read the two-byte length first and the message
/// with a second read (then the bytes are a bare message). Both are tried.
pub fn parse_tcp_read(read: &[u8]) -> Vec<Binding> {
    let framed = parse_tcp(read);
    if framed.bindings.is_empty() {
        parse_response(read)
    } else {
        framed.bindings
    }
}

/// A cheap check before handing the message to the parser: a response
/// (QR set), and section counts the message could actually hold. The parser
/// reserves room for every counted record up front, so without the second
/// check a 12-byte header claiming 4 x 65535 records would cost megabytes.
fn plausible_response(msg: &[u8]) -> bool {
    let Some(header) = msg.first_chunk::<HEADER_LEN>() else {
        return false;
    };
    let count = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
    let is_response = header[2] & 0x80 != 0;
    let needed = count(4) * MIN_QUESTION_LEN + (count(6) + count(8) + count(10)) * MIN_RECORD_LEN;
    is_response && needed <= msg.len() - HEADER_LEN
}

/// The question name and the names its CNAMEs lead to, each with the smallest
/// CNAME TTL on the way there. Stops at [`MAX_CNAME_DEPTH`] and at loops.
fn cname_chain(qname: &Hostname, answers: &[(Hostname, &RData<'_>, u32)]) -> Vec<(Hostname, u32)> {
    let mut chain = vec![(qname.clone(), u32::MAX)];
    for _ in 0..MAX_CNAME_DEPTH {
        let Some((current, ttl)) = chain.last() else {
            break;
        };
        let next = answers
            .iter()
            .find_map(|(owner, rdata, cname_ttl)| match rdata {
                RData::CNAME(target) if owner == current => {
                    Some((hostname(&target.0)?, (*ttl).min(*cname_ttl)))
                }
                _ => None,
            });
        match next {
            Some(next) if !chain.iter().any(|(name, _)| *name == next.0) => chain.push(next),
            _ => break,
        }
    }
    chain
}

/// A wire name as a [`Hostname`]. A label holding a '.' would change the
/// label boundaries once joined, so it disqualifies the name.
fn hostname(name: &Name<'_>) -> Option<Hostname> {
    let mut text = Vec::with_capacity(super::hostname::MAX_NAME_LEN + 2);
    for (i, label) in name.as_bytes().enumerate() {
        if label.contains(&b'.') || text.len() + label.len() > super::hostname::MAX_NAME_LEN {
            return None;
        }
        if i > 0 {
            text.push(b'.');
        }
        text.extend_from_slice(label);
    }
    Hostname::parse(&text)
}
