//! Encodings of the firewall's chains and rules as nf_tables messages.
//!
//! Receives a [`FirewallChain`] with its policy, or a [`KernelRule`] with where it goes in its
//! chain; emits `NEWCHAIN`, `NEWRULE` and `DELRULE` messages into a [`Writer`], with the
//! expressions nft itself would send for the same rule (compared byte for byte in
//! `nft_compare`), so that `nft list ruleset` prints them as a person would have written them:
//! `ip saddr 192.0.2.0/24 tcp dport 22 counter accept comment "rule 3: SSH"`. It never sends
//! anything.

use std::net::IpAddr;

use super::super::message::Writer;
use super::super::rules::{expr, meta, payload, reject};
use super::super::uapi::*;
use crate::firewall::{FirewallChain, KernelRule, KernelVerdict, Match, Policy};
use nftjail_core::addr::{BanTarget, Family};
use nftjail_core::ports::Protocol;

/// Where a new rule goes in its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// After the last rule.
    Append,
    /// Just before the rule with this handle.
    Before(u64),
}

pub fn hook_number(chain: FirewallChain) -> u32 {
    match chain {
        FirewallChain::Input => NF_INET_LOCAL_IN,
        FirewallChain::Output => NF_INET_LOCAL_OUT,
        FirewallChain::Forward => NF_INET_FORWARD,
        FirewallChain::Prerouting => NF_INET_PRE_ROUTING,
        FirewallChain::Postrouting => NF_INET_POST_ROUTING,
    }
}

/// The kernel's verdict code of a policy.
pub fn policy_code(policy: Policy) -> u32 {
    match policy {
        Policy::Accept => NF_ACCEPT,
        Policy::Drop => NF_DROP,
    }
}

/// `chain NAME { type filter|nat hook HOOK priority P; policy POLICY; }`: creates the chain, or
/// changes the policy of the one that exists.
pub fn new_chain(w: &mut Writer, seq: u32, table: &str, chain: FirewallChain, policy: Policy) {
    let m = w.begin_message(
        nft_type(NFT_MSG_NEWCHAIN),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
        seq,
        NFPROTO_INET,
        0,
    );
    w.attr_str(NFTA_CHAIN_TABLE, table);
    w.attr_str(NFTA_CHAIN_NAME, chain.name());
    let nest = w.begin_nest(NFTA_CHAIN_HOOK);
    w.attr_u32_be(NFTA_HOOK_HOOKNUM, hook_number(chain));
    w.attr(NFTA_HOOK_PRIORITY, &chain.priority().to_be_bytes());
    w.end_nest(nest);
    w.attr_u32_be(NFTA_CHAIN_POLICY, policy_code(policy));
    w.attr_str(
        NFTA_CHAIN_TYPE,
        if chain.is_nat() { "nat" } else { "filter" },
    );
    w.end_message(m);
}

/// Deletes the rule with `handle` from `chain`.
pub fn del_rule(w: &mut Writer, seq: u32, table: &str, chain: &str, handle: u64) {
    let m = w.begin_message(
        nft_type(NFT_MSG_DELRULE),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        NFPROTO_INET,
        0,
    );
    w.attr_str(NFTA_RULE_TABLE, table);
    w.attr_str(NFTA_RULE_CHAIN, chain);
    w.attr_u64_be(NFTA_RULE_HANDLE, handle);
    w.end_message(m);
}

/// `NEWRULE` of `rule` in `chain`, at `place`.
pub fn new_rule(
    w: &mut Writer,
    seq: u32,
    table: &str,
    chain: &str,
    rule: &KernelRule,
    place: Place,
) {
    let mut flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    if place == Place::Append {
        flags |= NLM_F_APPEND;
    }
    let m = w.begin_message(nft_type(NFT_MSG_NEWRULE), flags, seq, NFPROTO_INET, 0);
    w.attr_str(NFTA_RULE_TABLE, table);
    w.attr_str(NFTA_RULE_CHAIN, chain);
    if let Place::Before(handle) = place {
        w.attr_u64_be(NFTA_RULE_POSITION, handle);
    }
    let list = w.begin_nest(NFTA_RULE_EXPRESSIONS);
    for m in &rule.matches {
        encode_match(w, m);
    }
    if rule.counter {
        expr(w, "counter", |_| {});
    }
    encode_verdict(w, rule.verdict);
    w.end_nest(list);
    w.attr(NFTA_RULE_USERDATA, &comment_userdata(&rule.comment));
    w.end_message(m);
}

/// A comment as libnftnl writes it in rule userdata: type, length (with NUL), text, NUL.
pub fn comment_userdata(comment: &str) -> Vec<u8> {
    let text = &comment.as_bytes()[..comment.len().min(250)];
    let mut userdata = vec![NFTNL_UDATA_RULE_COMMENT, (text.len() + 1) as u8];
    userdata.extend_from_slice(text);
    userdata.push(0);
    userdata
}

fn encode_match(w: &mut Writer, m: &Match) {
    match *m {
        Match::CtState(mask) => ct_bits(w, NFT_CT_STATE, mask),
        Match::CtStatusDnat => ct_bits(w, NFT_CT_STATUS, IPS_DST_NAT),
        Match::InputInterface(index) => {
            meta(w, NFT_META_IIF);
            cmp(w, NFT_CMP_EQ, &index.to_ne_bytes());
        }
        Match::OutputInterface(index) => {
            meta(w, NFT_META_OIF);
            cmp(w, NFT_CMP_EQ, &index.to_ne_bytes());
        }
        Match::Family(family) => {
            meta(w, NFT_META_NFPROTO);
            cmp(w, NFT_CMP_EQ, &[nfproto(family)]);
        }
        Match::L4(protocol) => {
            meta(w, NFT_META_L4PROTO);
            cmp(w, NFT_CMP_EQ, &[protocol]);
        }
        Match::Source(target) => address(w, target, true),
        Match::Destination(target) => address(w, target, false),
        Match::Port(range) => {
            payload(w, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
            in_range(w, &range.first.to_be_bytes(), &range.last.to_be_bytes());
        }
        Match::IcmpType(first, last) => {
            payload(w, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
            in_range(w, &[first], &[last]);
        }
    }
}

fn nfproto(family: Family) -> u8 {
    match family {
        Family::V4 => NFPROTO_IPV4,
        Family::V6 => NFPROTO_IPV6,
    }
}

/// A value or, when `first != last`, `>= first` and `<= last` (nft's two compares).
fn in_range(w: &mut Writer, first: &[u8], last: &[u8]) {
    if first == last {
        cmp(w, NFT_CMP_EQ, first);
    } else {
        cmp(w, NFT_CMP_GTE, first);
        cmp(w, NFT_CMP_LTE, last);
    }
}

/// `ct state|status & BITS != 0`.
fn ct_bits(w: &mut Writer, key: u32, bits: u32) {
    expr(w, "ct", |w| {
        w.attr_u32_be(NFTA_CT_KEY, key);
        w.attr_u32_be(NFTA_CT_DREG, NFT_REG_1);
    });
    bitwise(w, &bits.to_ne_bytes());
    cmp(w, NFT_CMP_NEQ, &0u32.to_ne_bytes());
}

/// `reg 1 = reg 1 & mask` (xor 0).
fn bitwise(w: &mut Writer, mask: &[u8]) {
    expr(w, "bitwise", |w| {
        w.attr_u32_be(NFTA_BITWISE_SREG, NFT_REG_1);
        w.attr_u32_be(NFTA_BITWISE_DREG, NFT_REG_1);
        w.attr_u32_be(NFTA_BITWISE_LEN, mask.len() as u32);
        let nest = w.begin_nest(NFTA_BITWISE_MASK);
        w.attr(NFTA_DATA_VALUE, mask);
        w.end_nest(nest);
        let nest = w.begin_nest(NFTA_BITWISE_XOR);
        w.attr(NFTA_DATA_VALUE, &vec![0; mask.len()]);
        w.end_nest(nest);
    });
}

fn cmp(w: &mut Writer, op: u32, value: &[u8]) {
    expr(w, "cmp", |w| {
        w.attr_u32_be(NFTA_CMP_SREG, NFT_REG_1);
        w.attr_u32_be(NFTA_CMP_OP, op);
        let data = w.begin_nest(NFTA_CMP_DATA);
        w.attr(NFTA_DATA_VALUE, value);
        w.end_nest(data);
    });
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `ip saddr|daddr` (or `ip6`) equal to an address or inside a prefix, as nft encodes it: a
/// prefix on a byte boundary compares its leading bytes; any other is masked first.
fn address(w: &mut Writer, target: BanTarget, source: bool) {
    let (offset, len) = match (target.family(), source) {
        (Family::V4, true) => (12, 4),
        (Family::V4, false) => (16, 4),
        (Family::V6, true) => (8, 16),
        (Family::V6, false) => (24, 16),
    };
    let (bytes, bits) = match target {
        BanTarget::Addr(a) => (octets(a), len * 8),
        BanTarget::Net(p) => (octets(p.addr()), u32::from(p.prefix_len())),
    };
    if bits % 8 == 0 {
        let used = (bits / 8) as usize;
        payload(w, NFT_PAYLOAD_NETWORK_HEADER, offset, used as u32);
        cmp(w, NFT_CMP_EQ, &bytes[..used]);
    } else {
        payload(w, NFT_PAYLOAD_NETWORK_HEADER, offset, len);
        let mask: Vec<u8> = (0..len)
            .map(|i| {
                let left = bits.saturating_sub(i * 8).min(8);
                (0xffu16 << (8 - left)) as u8
            })
            .collect();
        bitwise(w, &mask);
        cmp(w, NFT_CMP_EQ, &bytes);
    }
}

fn encode_verdict(w: &mut Writer, verdict: KernelVerdict) {
    let code = |w: &mut Writer, code: u32| {
        expr(w, "immediate", |w| {
            w.attr_u32_be(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
            let data = w.begin_nest(NFTA_IMMEDIATE_DATA);
            let verdict = w.begin_nest(NFTA_DATA_VERDICT);
            w.attr_u32_be(NFTA_VERDICT_CODE, code);
            w.end_nest(verdict);
            w.end_nest(data);
        })
    };
    match verdict {
        KernelVerdict::Accept => code(w, NF_ACCEPT),
        KernelVerdict::Drop => code(w, NF_DROP),
        KernelVerdict::Reject(Protocol::Tcp) => reject(w, NFT_REJECT_TCP_RST, 0),
        KernelVerdict::Reject(Protocol::Udp) => {
            reject(w, NFT_REJECT_ICMPX_UNREACH, NFT_REJECT_ICMPX_PORT_UNREACH)
        }
        KernelVerdict::Dnat(to) => {
            immediate_value(w, NFT_REG_1, &octets(to.ip()));
            immediate_value(w, NFT_REG_2, &to.port().to_be_bytes());
            let family = match to {
                std::net::SocketAddr::V4(_) => NFPROTO_IPV4,
                std::net::SocketAddr::V6(_) => NFPROTO_IPV6,
            };
            expr(w, "nat", |w| {
                w.attr_u32_be(NFTA_NAT_TYPE, NFT_NAT_DNAT);
                w.attr_u32_be(NFTA_NAT_FAMILY, u32::from(family));
                // As nft sends it: no maxima (the kernel takes the minima) and no MAP_IPS flag
                // (the kernel sets it for an address register).
                w.attr_u32_be(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1);
                w.attr_u32_be(NFTA_NAT_REG_PROTO_MIN, NFT_REG_2);
                w.attr_u32_be(NFTA_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
            });
        }
        KernelVerdict::Masquerade => expr(w, "masq", |_| {}),
    }
}

/// `immediate reg REG VALUE`.
fn immediate_value(w: &mut Writer, register: u32, value: &[u8]) {
    expr(w, "immediate", |w| {
        w.attr_u32_be(NFTA_IMMEDIATE_DREG, register);
        let data = w.begin_nest(NFTA_IMMEDIATE_DATA);
        w.attr(NFTA_DATA_VALUE, value);
        w.end_nest(data);
    });
}
