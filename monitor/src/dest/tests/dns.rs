use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use simple_dns::rdata::{A, AAAA, CNAME, RData};
use simple_dns::{CLASS, Name, Packet, Question, RCODE, ResourceRecord, TYPE};

use crate::dest::dns::{MAX_BINDINGS_PER_MESSAGE, parse_response, parse_tcp, parse_tcp_read};

fn a(name: &'static str, addr: [u8; 4], ttl: u32) -> ResourceRecord<'static> {
    let address = u32::from(Ipv4Addr::from(addr));
    ResourceRecord::new(
        Name::new_unchecked(name),
        CLASS::IN,
        ttl,
        RData::A(A { address }),
    )
}

fn aaaa(name: &'static str, addr: Ipv6Addr, ttl: u32) -> ResourceRecord<'static> {
    let address = u128::from(addr);
    ResourceRecord::new(
        Name::new_unchecked(name),
        CLASS::IN,
        ttl,
        RData::AAAA(AAAA { address }),
    )
}

fn cname(name: &'static str, target: &'static str, ttl: u32) -> ResourceRecord<'static> {
    let rdata = RData::CNAME(CNAME(Name::new_unchecked(target)));
    ResourceRecord::new(Name::new_unchecked(name), CLASS::IN, ttl, rdata)
}

fn packet(qname: &'static str, answers: Vec<ResourceRecord<'static>>) -> Packet<'static> {
    let mut p = Packet::new_reply(0x1234);
    let question = Question::new(
        Name::new_unchecked(qname),
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    );
    p.questions.push(question);
    p.answers = answers;
    p
}

fn reply(qname: &'static str, answers: Vec<ResourceRecord<'static>>) -> Vec<u8> {
    packet(qname, answers).build_bytes_vec_compressed().unwrap()
}

fn found(msg: &[u8]) -> Vec<(String, IpAddr, u32)> {
    parse_response(msg)
        .into_iter()
        .map(|b| (b.name.as_str().to_owned(), b.addr, b.ttl))
        .collect()
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[test]
fn simple_a_and_aaaa() {
    let msg = reply(
        "API.Model.Test.",
        vec![a("api.model.test", [203, 0, 113, 10], 300)],
    );
    assert_eq!(
        found(&msg),
        [("api.model.test".into(), v4(203, 0, 113, 10), 300)]
    );

    let six: Ipv6Addr = "2001:db8::10".parse().unwrap();
    let msg = reply("api.model.test", vec![aaaa("api.model.test", six, 60)]);
    assert_eq!(
        found(&msg),
        [("api.model.test".into(), IpAddr::V6(six), 60)]
    );
}

#[test]
fn cname_chain_binds_the_question_name() {
    let msg = reply(
        "api.model.test",
        vec![
            cname("api.model.test", "edge.cdn.test", 30),
            a("edge.cdn.test", [203, 0, 113, 20], 300),
            a("edge.cdn.test", [203, 0, 113, 21], 10),
        ],
    );
    assert_eq!(
        found(&msg),
        [
            ("api.model.test".into(), v4(203, 0, 113, 20), 30),
            ("api.model.test".into(), v4(203, 0, 113, 21), 10),
        ]
    );
}

#[test]
fn records_off_the_chain_bind_nothing() {
    let msg = reply(
        "api.model.test",
        vec![
            a("api.model.test", [203, 0, 113, 10], 300),
            a("bank.example", [203, 0, 113, 66], 300),
            cname("other.test", "api.model.test", 300),
        ],
    );
    assert_eq!(
        found(&msg),
        [("api.model.test".into(), v4(203, 0, 113, 10), 300)]
    );
}

#[test]
fn cname_loops_and_long_chains_end() {
    let msg = reply(
        "a.test",
        vec![
            cname("a.test", "b.test", 60),
            cname("b.test", "a.test", 60),
            a("b.test", [203, 0, 113, 1], 60),
        ],
    );
    assert_eq!(found(&msg), [("a.test".into(), v4(203, 0, 113, 1), 60)]);

    const NAMES: [&str; 12] = [
        "n0.test", "n1.test", "n2.test", "n3.test", "n4.test", "n5.test", "n6.test", "n7.test",
        "n8.test", "n9.test", "n10.test", "n11.test",
    ];
    let mut answers: Vec<_> = NAMES.windows(2).map(|w| cname(w[0], w[1], 60)).collect();
    answers.push(a("n8.test", [203, 0, 113, 8], 60));
    answers.push(a("n11.test", [203, 0, 113, 11], 60));
    // Depth 8: n0 -> ... -> n8 is followed, n11 is too far.
    assert_eq!(
        found(&reply("n0.test", answers)),
        [("n0.test".into(), v4(203, 0, 113, 8), 60)]
    );
}

#[test]
fn failed_responses_and_queries_give_nothing() {
    let mut p = packet(
        "api.model.test",
        vec![a("api.model.test", [203, 0, 113, 10], 300)],
    );
    *p.rcode_mut() = RCODE::NameError;
    assert!(found(&p.build_bytes_vec().unwrap()).is_empty());

    let mut q = Packet::new_query(1);
    q.questions = packet("api.model.test", vec![]).questions;
    q.answers.push(a("api.model.test", [203, 0, 113, 10], 300));
    assert!(found(&q.build_bytes_vec().unwrap()).is_empty());
}

#[test]
fn hostile_names_bind_nothing_but_spare_the_rest() {
    // Label injection in the question: nothing at all.
    let msg = reply(
        "evil\"} 1\n#.test",
        vec![a("evil\"} 1\n#.test", [203, 0, 113, 9], 60)],
    );
    assert!(found(&msg).is_empty());
    let msg = reply("a\0b.test", vec![a("a\0b.test", [203, 0, 113, 9], 60)]);
    assert!(found(&msg).is_empty());

    // A CNAME to a hostile target is a dead end; other records still count.
    let msg = reply(
        "api.model.test",
        vec![
            cname("api.model.test", "x{y}.test", 60),
            a("x{y}.test", [203, 0, 113, 9], 60),
            a("api.model.test", [203, 0, 113, 10], 60),
            a("bad label.test", [203, 0, 113, 11], 60),
        ],
    );
    assert_eq!(
        found(&msg),
        [("api.model.test".into(), v4(203, 0, 113, 10), 60)]
    );
}

#[test]
fn dotted_wire_label_is_not_a_name() {
    // One wire label "api.model" must not pass as the two labels api, model.
    let mut msg = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    msg.extend_from_slice(b"\x09api.model\x04test\x00\x00\x01\x00\x01");
    msg.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xcb\x00\x71\x0a");
    assert!(found(&msg).is_empty());
    // The same message with a real label boundary binds.
    msg[12..22].copy_from_slice(b"\x03api\x05model");
    assert_eq!(
        found(&msg),
        [("api.model.test".into(), v4(203, 0, 113, 10), 60)]
    );
}

#[test]
fn overlong_names_are_rejected() {
    let long: &'static str = format!("{0}.{0}.{0}.{0}.test", "a".repeat(63)).leak();
    assert!(found(&reply(long, vec![a(long, [203, 0, 113, 1], 60)])).is_empty());
}

#[test]
fn compression_pointer_loops_do_not_hang() {
    let head = [0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    // Question name points at itself; then two pointers pointing at each other.
    for name in [
        &[0xc0, 0x0c][..],
        &[0xc0, 0x0e, 0xc0, 0x0c][..],
        &[0x01, b'a', 0xc0, 0x0c][..],
    ] {
        let mut msg = head.to_vec();
        msg.extend_from_slice(name);
        msg.extend_from_slice(&[
            0, 1, 0, 1, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4,
        ]);
        assert!(found(&msg).is_empty());
    }
}

#[test]
fn counts_larger_than_the_message_are_refused_cheaply() {
    let msg = [
        0x12, 0x34, 0x81, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    assert!(found(&msg).is_empty());
    assert!(found(&[]).is_empty());
    assert!(found(&[0x81; 11]).is_empty());
}

#[test]
fn bindings_per_message_are_bounded() {
    let answers = (0..100u8)
        .map(|i| a("api.model.test", [203, 0, 113, i], 60))
        .collect();
    assert_eq!(
        found(&reply("api.model.test", answers)).len(),
        MAX_BINDINGS_PER_MESSAGE
    );
}

#[test]
fn tcp_framing_parses_complete_messages() {
    let first = reply(
        "api.model.test",
        vec![a("api.model.test", [203, 0, 113, 10], 60)],
    );
    let second = reply(
        "telemetry.vendor.test",
        vec![a("telemetry.vendor.test", [203, 0, 113, 30], 60)],
    );
    let mut stream = Vec::new();
    for msg in [&first, &second, &first] {
        stream.extend_from_slice(&u16::try_from(msg.len()).unwrap().to_be_bytes());
        stream.extend_from_slice(msg);
    }
    let complete = 4 + first.len() + second.len();
    // The third message is cut short: left for the next chunk.
    let answers = parse_tcp(&stream[..stream.len() - 3]);
    let names: Vec<_> = answers.bindings.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["api.model.test", "telemetry.vendor.test"]);
    assert_eq!(answers.consumed, complete);

    let answers = parse_tcp(&stream);
    assert_eq!(answers.bindings.len(), 3);
    assert_eq!(answers.consumed, stream.len());
    assert_eq!(parse_tcp(&stream[..1]).consumed, 0);
    assert_eq!(parse_tcp(&[0, 0]).consumed, 2);
}

#[test]
fn tcp_reads_with_or_without_the_length_prefix() {
    let msg = reply(
        "api.model.test",
        vec![a("api.model.test", [203, 0, 113, 10], 60)],
    );
    let mut framed = u16::try_from(msg.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&msg);
    for read in [&framed[..], &msg[..]] {
        let names: Vec<_> = parse_tcp_read(read).into_iter().map(|b| b.name).collect();
        assert_eq!(
            names,
            [crate::dest::Hostname::parse_str("api.model.test").unwrap()]
        );
    }
    assert!(parse_tcp_read(&framed[..2]).is_empty());
}

#[test]
fn every_prefix_and_byte_flip_is_survived() {
    let msg = reply(
        "api.model.test",
        vec![
            cname("api.model.test", "edge.cdn.test", 30),
            a("edge.cdn.test", [203, 0, 113, 20], 300),
        ],
    );
    for len in 0..msg.len() {
        let _ = parse_response(&msg[..len]);
        let _ = parse_tcp(&msg[..len]);
        let _ = parse_tcp_read(&msg[..len]);
    }
    let mut mutated = msg.clone();
    for i in 0..msg.len() {
        for byte in [0x00, 0x3f, 0x40, 0xc0, 0xc1, 0xff, msg[i] ^ 0x20] {
            mutated[i] = byte;
            let _ = parse_response(&mutated);
        }
        mutated[i] = msg[i];
    }
}
