//! Encodings of a jail's rules and their expressions (and the anonymous port sets they use).
//!
//! Receives a jail's rules, a hook and the verdict; emits, per jail set and protocol, one
//! `NEWRULE` (appended, commented `nftjail:JAIL`) such as
//! `ip saddr @sshd_v4 tcp dport { 22, 2222 } counter drop`, preceded by the `NEWSET` +
//! `NEWSETELEM` of its anonymous port set when it matches several ports. It never sends
//! anything and never touches the jail sets' elements.

use super::message::Writer;
use super::uapi::*;
use crate::{
    Hook, JailRules, PortRange, Ports, Protocol, SetKind, Verdict, normalize_ports, rule_comment,
    set_name,
};

/// Hands out sequence numbers and batch-local set ids while rules are written.
pub trait Sink {
    /// The writer of the batch.
    fn writer(&mut self) -> &mut Writer;
    /// A sequence number for the next message, recorded with `what` it does.
    fn seq(&mut self, what: String) -> u32;
    /// A new set id, unique in the batch.
    fn set_id(&mut self) -> u32;
}

/// The id given, within one batch, to the `NEWSET` of a jail set, so rules can refer to it.
pub type SetIds<'a> = dyn Fn(SetKind) -> u32 + 'a;

/// Writes every rule of `jail` for `hook`, appended to the hook's chain.
pub fn encode_jail(
    sink: &mut dyn Sink,
    table: &str,
    hook: Hook,
    verdict: Verdict,
    jail: &JailRules,
    set_ids: &SetIds<'_>,
) {
    let protocols: Vec<Option<Protocol>> = match &jail.ports {
        Ports::All => vec![None],
        Ports::List(_) => {
            let mut protocols = jail.protocols.clone();
            protocols.sort();
            protocols.dedup();
            protocols.into_iter().map(Some).collect()
        }
    };
    let ports = match &jail.ports {
        Ports::All => Vec::new(),
        Ports::List(ranges) => normalize_ports(ranges),
    };
    for kind in SetKind::ALL {
        for protocol in &protocols {
            let name = set_name(&jail.name, kind);
            let port_match = match protocol {
                None => PortMatch::None,
                Some(_) => port_match(sink, table, &ports),
            };
            let seq = sink.seq(format!(
                "add rule to chain {} for set {name}",
                hook.chain_name()
            ));
            let rule = RuleSpec {
                table,
                hook,
                set: &name,
                set_id: set_ids(kind),
                kind,
                protocol: *protocol,
                port_match,
                verdict,
                comment: &rule_comment(&jail.name),
            };
            encode_rule(sink.writer(), seq, &rule);
        }
    }
}

/// How a rule matches the destination port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMatch {
    /// Every port.
    None,
    /// One port: a plain compare.
    Single(u16),
    /// Several ports: a lookup in an anonymous set (already written) with this batch id.
    Set { id: u32 },
}

/// Writes the anonymous set for `ports` if it needs one.
fn port_match(sink: &mut dyn Sink, table: &str, ports: &[PortRange]) -> PortMatch {
    if let [only] = ports
        && only.first == only.last
    {
        return PortMatch::Single(only.first);
    }
    let id = sink.set_id();
    let seq = sink.seq("add anonymous port set".to_string());
    encode_port_set(sink.writer(), seq, table, id, ports);
    let seq = sink.seq("add ports to anonymous set".to_string());
    encode_port_elements(sink.writer(), seq, table, id, ports);
    PortMatch::Set { id }
}

/// The name nft gives anonymous sets; the kernel replaces `%d`.
const ANONYMOUS: &str = "__set%d";

fn is_interval(ports: &[PortRange]) -> bool {
    ports.iter().any(|r| r.first != r.last)
}

/// `NEWSET` of a constant anonymous set of ports (an interval set when a range is present).
pub fn encode_port_set(w: &mut Writer, seq: u32, table: &str, id: u32, ports: &[PortRange]) {
    let mut flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT;
    if is_interval(ports) {
        flags |= NFT_SET_INTERVAL;
    }
    let m = w.begin_message(
        nft_type(NFT_MSG_NEWSET),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
        seq,
        NFPROTO_INET,
        0,
    );
    w.attr_str(NFTA_SET_TABLE, table);
    w.attr_str(NFTA_SET_NAME, ANONYMOUS);
    w.attr_u32_be(NFTA_SET_FLAGS, flags);
    w.attr_u32_be(NFTA_SET_KEY_TYPE, TYPE_INET_SERVICE);
    w.attr_u32_be(NFTA_SET_KEY_LEN, 2);
    w.attr_u32_be(NFTA_SET_ID, id);
    let desc = w.begin_nest(NFTA_SET_DESC);
    w.attr_u32_be(NFTA_SET_DESC_SIZE, ports.len() as u32);
    w.end_nest(desc);
    w.end_message(m);
}

/// `NEWSETELEM` filling the anonymous port set `id`: ports, or `[first, last + 1)` intervals.
pub fn encode_port_elements(w: &mut Writer, seq: u32, table: &str, id: u32, ports: &[PortRange]) {
    let m = w.begin_message(
        nft_type(NFT_MSG_NEWSETELEM),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
        seq,
        NFPROTO_INET,
        0,
    );
    w.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
    w.attr_str(NFTA_SET_ELEM_LIST_SET, ANONYMOUS);
    w.attr_u32_be(NFTA_SET_ELEM_LIST_SET_ID, id);
    let list = w.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
    let port_element = |w: &mut Writer, port: u16, flags: u32| {
        let elem = w.begin_nest(NFTA_LIST_ELEM);
        if flags != 0 {
            w.attr_u32_be(NFTA_SET_ELEM_FLAGS, flags);
        }
        let key = w.begin_nest(NFTA_SET_ELEM_KEY);
        w.attr(NFTA_DATA_VALUE, &port.to_be_bytes());
        w.end_nest(key);
        w.end_nest(elem);
    };
    let interval = is_interval(ports);
    for range in ports {
        port_element(w, range.first, 0);
        match range.last.checked_add(1) {
            Some(end) if interval => port_element(w, end, NFT_SET_ELEM_INTERVAL_END),
            _ => {}
        }
    }
    w.end_nest(list);
    w.end_message(m);
}

/// One rule of one jail set.
#[derive(Debug, Clone)]
pub struct RuleSpec<'a> {
    pub table: &'a str,
    pub hook: Hook,
    pub set: &'a str,
    pub set_id: u32,
    pub kind: SetKind,
    pub protocol: Option<Protocol>,
    pub port_match: PortMatch,
    pub verdict: Verdict,
    pub comment: &'a str,
}

/// `NEWRULE`, appended to the hook's chain.
pub fn encode_rule(w: &mut Writer, seq: u32, rule: &RuleSpec<'_>) {
    let m = w.begin_message(
        nft_type(NFT_MSG_NEWRULE),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
        seq,
        NFPROTO_INET,
        0,
    );
    w.attr_str(NFTA_RULE_TABLE, rule.table);
    w.attr_str(NFTA_RULE_CHAIN, rule.hook.chain_name());
    let list = w.begin_nest(NFTA_RULE_EXPRESSIONS);
    // `meta nfproto ipv4|ipv6`: the inet table sees both families.
    let (nfproto, offset, len) = match rule.kind.family() {
        nftjail_core::addr::Family::V4 => (NFPROTO_IPV4, 12, 4),
        nftjail_core::addr::Family::V6 => (NFPROTO_IPV6, 8, 16),
    };
    meta(w, NFT_META_NFPROTO);
    cmp(w, &[nfproto]);
    // `ip saddr` / `ip6 saddr` into register 1, looked up in the jail set.
    payload(w, NFT_PAYLOAD_NETWORK_HEADER, offset, len);
    lookup(w, rule.set, rule.set_id);
    if let Some(protocol) = rule.protocol {
        meta(w, NFT_META_L4PROTO);
        cmp(w, &[protocol.number()]);
        match rule.hook {
            Hook::Input => payload(w, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
            // In the forward chain the port is matched as the client sent it:
            // `ct original proto-dst`. A published container port is DNATed before the forward
            // hook (Docker maps host port 2525 to container port 25), so `th dport` would be 25
            // there while the jail is configured with the port clients connect to (2525); the
            // conntrack entry keeps the original destination port.
            Hook::Forward => ct_original_proto_dst(w),
        }
        match &rule.port_match {
            PortMatch::None => {}
            PortMatch::Single(port) => cmp(w, &port.to_be_bytes()),
            PortMatch::Set { id } => lookup(w, ANONYMOUS, *id),
        }
    }
    expr(w, "counter", |_| {});
    match (rule.verdict, rule.protocol) {
        (Verdict::Drop, _) => expr(w, "immediate", |w| {
            w.attr_u32_be(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
            let data = w.begin_nest(NFTA_IMMEDIATE_DATA);
            let verdict = w.begin_nest(NFTA_DATA_VERDICT);
            w.attr_u32_be(NFTA_VERDICT_CODE, NF_DROP);
            w.end_nest(verdict);
            w.end_nest(data);
        }),
        (Verdict::Reject, Some(Protocol::Tcp)) => reject(w, NFT_REJECT_TCP_RST, 0),
        (Verdict::Reject, _) => reject(
            w,
            NFT_REJECT_ICMPX_UNREACH,
            NFT_REJECT_ICMPX_ADMIN_PROHIBITED,
        ),
    }
    w.end_nest(list);
    // Rule userdata as libnftnl writes a comment: type, length (with NUL), text, NUL.
    let mut userdata = vec![NFTNL_UDATA_RULE_COMMENT, (rule.comment.len() + 1) as u8];
    userdata.extend_from_slice(rule.comment.as_bytes());
    userdata.push(0);
    w.attr(NFTA_RULE_USERDATA, &userdata);
    w.end_message(m);
}

/// One expression: `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { … } }`.
pub(super) fn expr(w: &mut Writer, name: &str, data: impl FnOnce(&mut Writer)) {
    let elem = w.begin_nest(NFTA_LIST_ELEM);
    w.attr_str(NFTA_EXPR_NAME, name);
    let nest = w.begin_nest(NFTA_EXPR_DATA);
    data(w);
    w.end_nest(nest);
    w.end_nest(elem);
}

pub(super) fn meta(w: &mut Writer, key: u32) {
    expr(w, "meta", |w| {
        w.attr_u32_be(NFTA_META_KEY, key);
        w.attr_u32_be(NFTA_META_DREG, NFT_REG_1);
    });
}

fn cmp(w: &mut Writer, value: &[u8]) {
    expr(w, "cmp", |w| {
        w.attr_u32_be(NFTA_CMP_SREG, NFT_REG_1);
        w.attr_u32_be(NFTA_CMP_OP, NFT_CMP_EQ);
        let data = w.begin_nest(NFTA_CMP_DATA);
        w.attr(NFTA_DATA_VALUE, value);
        w.end_nest(data);
    });
}

pub(super) fn payload(w: &mut Writer, base: u32, offset: u32, len: u32) {
    expr(w, "payload", |w| {
        w.attr_u32_be(NFTA_PAYLOAD_DREG, NFT_REG_1);
        w.attr_u32_be(NFTA_PAYLOAD_BASE, base);
        w.attr_u32_be(NFTA_PAYLOAD_OFFSET, offset);
        w.attr_u32_be(NFTA_PAYLOAD_LEN, len);
    });
}

fn ct_original_proto_dst(w: &mut Writer) {
    expr(w, "ct", |w| {
        w.attr_u32_be(NFTA_CT_KEY, NFT_CT_PROTO_DST);
        w.attr_u32_be(NFTA_CT_DREG, NFT_REG_1);
        w.attr_u8(NFTA_CT_DIRECTION, IP_CT_DIR_ORIGINAL);
    });
}

fn lookup(w: &mut Writer, set: &str, id: u32) {
    expr(w, "lookup", |w| {
        w.attr_u32_be(NFTA_LOOKUP_SREG, NFT_REG_1);
        w.attr_str(NFTA_LOOKUP_SET, set);
        w.attr_u32_be(NFTA_LOOKUP_SET_ID, id);
    });
}

pub(super) fn reject(w: &mut Writer, kind: u32, code: u8) {
    expr(w, "reject", |w| {
        w.attr_u32_be(NFTA_REJECT_TYPE, kind);
        w.attr_u8(NFTA_REJECT_ICMP_CODE, code);
    });
}

#[cfg(test)]
mod tests {
    use super::super::message::{Attrs, messages};
    use super::*;

    type Attr = (u16, Vec<u8>);
    type Expr = (String, Vec<Attr>);

    /// `(expression name, its data attributes)` of every expression of the rule message.
    fn expressions(w: &Writer) -> (u16, u16, Vec<Expr>, Vec<u8>) {
        let m = messages(w.bytes()).next().unwrap().unwrap();
        let attrs: Vec<_> = m.nft_attrs().unwrap().map(Result::unwrap).collect();
        assert_eq!(attrs[0], (1, &b"nftjail\0"[..]), "NFTA_RULE_TABLE");
        assert_eq!(attrs[2].0, 4, "NFTA_RULE_EXPRESSIONS");
        assert_eq!(attrs[3].0, 7, "NFTA_RULE_USERDATA");
        let exprs = Attrs::new(attrs[2].1)
            .map(|e| {
                let (kind, e) = e.unwrap();
                assert_eq!(kind, 1, "NFTA_LIST_ELEM");
                let parts: Vec<_> = Attrs::new(e).map(Result::unwrap).collect();
                assert_eq!(
                    (parts[0].0, parts[1].0),
                    (1, 2),
                    "NFTA_EXPR_NAME, NFTA_EXPR_DATA"
                );
                let name = String::from_utf8(parts[0].1.to_vec()).unwrap();
                let data = Attrs::new(parts[1].1)
                    .map(|a| a.map(|(k, d)| (k, d.to_vec())).unwrap())
                    .collect();
                (name.trim_end_matches('\0').to_string(), data)
            })
            .collect();
        let chain = attrs[1].1.to_vec();
        (m.kind, m.flags, exprs, chain)
    }

    fn be(v: u32) -> Vec<u8> {
        v.to_be_bytes().to_vec()
    }

    /// A nested attribute's payload holding one attribute.
    fn nest(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = ((4 + data.len()) as u16).to_ne_bytes().to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out
    }

    fn spec(
        hook: Hook,
        kind: SetKind,
        protocol: Option<Protocol>,
        ports: PortMatch,
        verdict: Verdict,
    ) -> Writer {
        let mut w = Writer::new();
        let rule = RuleSpec {
            table: "nftjail",
            hook,
            set: "postfix-sasl_v4",
            set_id: 3,
            kind,
            protocol,
            port_match: ports,
            verdict,
            comment: "nftjail:postfix-sasl",
        };
        encode_rule(&mut w, 1, &rule);
        w
    }

    #[test]
    fn forward_rule_matches_the_original_port_in_a_set_and_drops() {
        let w = spec(
            Hook::Forward,
            SetKind::Addr4,
            Some(Protocol::Tcp),
            PortMatch::Set { id: 7 },
            Verdict::Drop,
        );
        let (kind, flags, exprs, chain) = expressions(&w);
        // NEWRULE (6) with REQUEST|ACK|CREATE|APPEND.
        assert_eq!((kind, flags), (0x0a06, 0xc05));
        assert_eq!(chain, b"forward\0");
        let want: Vec<(&str, Vec<Attr>)> = vec![
            // meta nfproto (15) into register 1; cmp eq NFPROTO_IPV4 (2).
            ("meta", vec![(2, be(15)), (1, be(1))]),
            ("cmp", vec![(1, be(1)), (2, be(0)), (3, nest(1, &[2]))]),
            // payload network header (1) offset 12 length 4: ip saddr.
            (
                "payload",
                vec![(1, be(1)), (2, be(1)), (3, be(12)), (4, be(4))],
            ),
            (
                "lookup",
                vec![(2, be(1)), (1, b"postfix-sasl_v4\0".to_vec()), (4, be(3))],
            ),
            // meta l4proto (16) == tcp (6).
            ("meta", vec![(2, be(16)), (1, be(1))]),
            ("cmp", vec![(1, be(1)), (2, be(0)), (3, nest(1, &[6]))]),
            // ct proto-dst (12), direction original (0).
            ("ct", vec![(2, be(12)), (1, be(1)), (3, vec![0])]),
            (
                "lookup",
                vec![(2, be(1)), (1, b"__set%d\0".to_vec()), (4, be(7))],
            ),
            ("counter", vec![]),
            // immediate verdict register (0): NF_DROP (0).
            (
                "immediate",
                vec![(1, be(0)), (2, nest(0x8002, &nest(1, &be(0))))],
            ),
        ];
        let want: Vec<Expr> = want.into_iter().map(|(n, a)| (n.to_string(), a)).collect();
        assert_eq!(exprs, want);
        let m = messages(w.bytes()).next().unwrap().unwrap();
        let userdata = m.nft_attrs().unwrap().nth(3).unwrap().unwrap().1;
        assert_eq!(userdata, b"\x00\x15nftjail:postfix-sasl\x00");
    }

    #[test]
    fn input_rule_matches_th_dport_and_rejects_with_tcp_reset() {
        let w = spec(
            Hook::Input,
            SetKind::Net6,
            Some(Protocol::Tcp),
            PortMatch::Single(2222),
            Verdict::Reject,
        );
        let (_, _, exprs, chain) = expressions(&w);
        assert_eq!(chain, b"input\0");
        assert_eq!(exprs[1].1[2], (3, nest(1, &[10])), "NFPROTO_IPV6");
        // ip6 saddr: network header offset 8 length 16.
        assert_eq!(
            exprs[2].1,
            vec![(1, be(1)), (2, be(1)), (3, be(8)), (4, be(16))]
        );
        // payload transport header (2) offset 2 length 2: th dport; 2222 big-endian.
        assert_eq!(
            exprs[6].1,
            vec![(1, be(1)), (2, be(2)), (3, be(2)), (4, be(2))]
        );
        assert_eq!(exprs[7].1[2], (3, nest(1, &[0x08, 0xae])));
        // reject type NFT_REJECT_TCP_RST (1), code 0.
        assert_eq!(
            exprs[9],
            ("reject".to_string(), vec![(1, be(1)), (2, vec![0])])
        );
    }

    #[test]
    fn all_ports_rule_has_no_port_match_and_rejects_with_icmpx() {
        let w = spec(
            Hook::Input,
            SetKind::Addr4,
            None,
            PortMatch::None,
            Verdict::Reject,
        );
        let (_, _, exprs, _) = expressions(&w);
        let names: Vec<_> = exprs.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["meta", "cmp", "payload", "lookup", "counter", "reject"]
        );
        // NFT_REJECT_ICMPX_UNREACH (2) with NFT_REJECT_ICMPX_ADMIN_PROHIBITED (3).
        assert_eq!(exprs[5].1, vec![(1, be(2)), (2, vec![3])]);
        let w = spec(
            Hook::Input,
            SetKind::Addr4,
            Some(Protocol::Udp),
            PortMatch::Single(53),
            Verdict::Reject,
        );
        let (_, _, exprs, _) = expressions(&w);
        assert_eq!(exprs[5].1[2], (3, nest(1, &[17])), "udp");
        assert_eq!(exprs[9].1, vec![(1, be(2)), (2, vec![3])]);
    }

    #[test]
    fn port_sets_are_constant_anonymous_and_intervals_when_ranged() {
        let ranges = [
            PortRange::single(21),
            PortRange {
                first: 49152,
                last: 65535,
            },
        ];
        let mut w = Writer::new();
        encode_port_set(&mut w, 1, "nftjail", 4, &ranges);
        let m = messages(w.bytes()).next().unwrap().unwrap();
        let attrs: Vec<_> = m.nft_attrs().unwrap().map(Result::unwrap).collect();
        assert_eq!(m.kind, 0x0a09);
        assert_eq!(attrs[1], (2, &b"__set%d\0"[..]));
        // ANONYMOUS | CONSTANT | INTERVAL; key type inet_service (13), 2 bytes; id; desc size.
        assert_eq!(attrs[2], (3, &[0, 0, 0, 7][..]));
        assert_eq!(attrs[3], (4, &[0, 0, 0, 13][..]));
        assert_eq!(attrs[4], (5, &[0, 0, 0, 2][..]));
        assert_eq!(attrs[5], (10, &[0, 0, 0, 4][..]));
        assert_eq!(attrs[6], (9, &nest(1, &be(2))[..]));

        let mut w = Writer::new();
        encode_port_elements(&mut w, 1, "nftjail", 4, &ranges);
        let m = messages(w.bytes()).next().unwrap().unwrap();
        let attrs: Vec<_> = m.nft_attrs().unwrap().map(Result::unwrap).collect();
        assert_eq!(
            attrs[2],
            (4, &[0, 0, 0, 4][..]),
            "NFTA_SET_ELEM_LIST_SET_ID"
        );
        let elems: Vec<Vec<u8>> = Attrs::new(attrs[3].1)
            .map(|e| e.unwrap().1.to_vec())
            .collect();
        // 21 opens, 22 closes (INTERVAL_END); 49152 opens and stays open to the top.
        let key = |port: u16| nest(0x8001, &nest(1, &port.to_be_bytes()));
        let mut end = nest(3, &be(1));
        end.extend(key(22));
        assert_eq!(elems, vec![key(21), end, key(49152)]);

        let mut w = Writer::new();
        encode_port_set(
            &mut w,
            1,
            "nftjail",
            5,
            &[PortRange::single(22), PortRange::single(2222)],
        );
        let m = messages(w.bytes()).next().unwrap().unwrap();
        let flags = m.nft_attrs().unwrap().nth(2).unwrap().unwrap();
        assert_eq!(
            flags,
            (3, &[0, 0, 0, 3][..]),
            "no interval flag for single ports"
        );
    }
}
