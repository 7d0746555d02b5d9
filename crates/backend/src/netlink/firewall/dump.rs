//! Reading the firewall back from the kernel: its chains, and each chain's rules in a form that
//! can be compared with the rules nftjail would write.
//!
//! Receives dump replies (`GETCHAIN`, `GETRULE`); emits [`DumpedChain`]s and [`DumpedRule`]s
//! whose [`Canonical`] form is what decides "unchanged": the expressions (names and attributes,
//! nested values unfolded, attributes sorted) and the rule's userdata (its comment). The kernel
//! does not echo rules byte for byte, so a few differences that mean nothing are evened out on
//! both sides: counters' running values, the nested-attribute flag, the `op` a bitwise
//! expression carries when it is the plain mask-and-xor, the ICMP code a tcp-reset reject has
//! no use for, and the NAT maxima and flag the kernel derives from the minima. Anything else that differs is a difference. It never sends anything.

use super::super::message::{Attrs, Message, Writer, be_u32, be_u64, messages, string};
use super::super::uapi::*;
use crate::BackendError;

/// A nested or plain attribute, flags stripped, nests unfolded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    Leaf(u16, Vec<u8>),
    Nest(u16, Vec<Node>),
}

/// A rule reduced to what makes it the rule it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    expressions: Vec<(String, Vec<Node>)>,
    userdata: Vec<u8>,
}

/// A rule of one of our chains as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedRule {
    pub handle: u64,
    pub canonical: Canonical,
}

/// A chain of our table as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedChain {
    pub name: String,
    /// Hook number and priority, for a base chain.
    pub hook: Option<(u32, i32)>,
    pub policy: Option<u32>,
    /// `filter`, `nat`, `route`.
    pub kind: Option<String>,
}

/// The attributes of an expression's data that hold `nft_data` (`NFTA_DATA_VALUE` or
/// `NFTA_DATA_VERDICT`) rather than a plain value.
fn holds_data(expression: &str, attr: u16) -> bool {
    matches!(
        (expression, attr),
        ("cmp", NFTA_CMP_DATA)
            | ("immediate", NFTA_IMMEDIATE_DATA)
            | ("bitwise", NFTA_BITWISE_MASK | NFTA_BITWISE_XOR)
    )
}

fn data(payload: &[u8]) -> Result<Vec<Node>, BackendError> {
    let mut nodes = Vec::new();
    for attr in Attrs::new(payload) {
        let (kind, value) = attr?;
        nodes.push(match kind {
            NFTA_DATA_VERDICT => {
                let mut inner = Vec::new();
                for attr in Attrs::new(value) {
                    let (kind, value) = attr?;
                    inner.push(Node::Leaf(kind, value.to_vec()));
                }
                inner.sort();
                Node::Nest(kind, inner)
            }
            _ => Node::Leaf(kind, value.to_vec()),
        });
    }
    nodes.sort();
    Ok(nodes)
}

/// The canonical form of a rule's `NFTA_RULE_EXPRESSIONS` and `NFTA_RULE_USERDATA`.
pub fn canonical(expressions: &[u8], userdata: &[u8]) -> Result<Canonical, BackendError> {
    let mut out = Vec::new();
    for element in Attrs::new(expressions) {
        let (_, element) = element?;
        let (mut name, mut attrs) = (String::new(), Vec::new());
        for part in Attrs::new(element) {
            match part? {
                (NFTA_EXPR_NAME, text) => name = string(text)?.to_string(),
                (NFTA_EXPR_DATA, payload) => {
                    for attr in Attrs::new(payload) {
                        attrs.push(attr?);
                    }
                }
                _ => {}
            }
        }
        let mut nodes = Vec::new();
        for (kind, value) in attrs {
            nodes.push(match holds_data(&name, kind) {
                true => Node::Nest(kind, data(value)?),
                false => Node::Leaf(kind, value.to_vec()),
            });
        }
        even_out(&name, &mut nodes);
        nodes.sort();
        out.push((name, nodes));
    }
    Ok(Canonical {
        expressions: out,
        userdata: userdata.to_vec(),
    })
}

/// The differences between what is sent and what the kernel dumps that mean nothing.
fn even_out(name: &str, nodes: &mut Vec<Node>) {
    let is = |nodes: &[Node], attr: u16, value: &[u8]| {
        nodes
            .iter()
            .any(|n| matches!(n, Node::Leaf(k, v) if *k == attr && v == value))
    };
    match name {
        // Running values.
        "counter" => nodes.clear(),
        // The kernel reports the operation; plain mask-and-xor (0) is what nft leaves out.
        "bitwise"
            if !nodes
                .iter()
                .any(|n| matches!(n, Node::Leaf(NFTA_BITWISE_OP, _))) =>
        {
            nodes.push(Node::Leaf(NFTA_BITWISE_OP, 0u32.to_be_bytes().to_vec()));
        }
        // A tcp reset has no ICMP code; the kernel does not report the one sent.
        "reject" if is(nodes, NFTA_REJECT_TYPE, &NFT_REJECT_TCP_RST.to_be_bytes()) => {
            nodes.retain(|n| !matches!(n, Node::Leaf(NFTA_REJECT_ICMP_CODE, _)));
        }
        // The kernel fills in the maxima from the minima and sets MAP_IPS for an address.
        "nat" => {
            let value = |nodes: &[Node], attr: u16| {
                nodes.iter().find_map(|n| match n {
                    Node::Leaf(k, v) if *k == attr => Some(v.clone()),
                    _ => None,
                })
            };
            for (min, max) in [
                (NFTA_NAT_REG_ADDR_MIN, NFTA_NAT_REG_ADDR_MAX),
                (NFTA_NAT_REG_PROTO_MIN, NFTA_NAT_REG_PROTO_MAX),
            ] {
                if let (Some(v), None) = (value(nodes, min), value(nodes, max)) {
                    nodes.push(Node::Leaf(max, v));
                }
            }
            if value(nodes, NFTA_NAT_REG_ADDR_MIN).is_some() {
                let flags = value(nodes, NFTA_NAT_FLAGS)
                    .and_then(|v| be_u32(&v).ok())
                    .unwrap_or(0);
                nodes.retain(|n| !matches!(n, Node::Leaf(NFTA_NAT_FLAGS, _)));
                let flags = flags | NF_NAT_RANGE_MAP_IPS;
                nodes.push(Node::Leaf(NFTA_NAT_FLAGS, flags.to_be_bytes().to_vec()));
            }
        }
        _ => {}
    }
}

/// The canonical form of the first `NEWRULE` message in `w` (a rule nftjail would write).
pub fn canonical_of_written(w: &Writer) -> Result<Canonical, BackendError> {
    let message = messages(w.bytes())
        .next()
        .ok_or_else(|| BackendError::Protocol("no rule message written".into()))??;
    let (expressions, userdata) = rule_parts(&message)?;
    canonical(expressions, userdata)
}

fn rule_parts<'a>(message: &Message<'a>) -> Result<(&'a [u8], &'a [u8]), BackendError> {
    let (mut expressions, mut userdata): (&[u8], &[u8]) = (&[], &[]);
    for attr in message.nft_attrs()? {
        match attr? {
            (NFTA_RULE_EXPRESSIONS, value) => expressions = value,
            (NFTA_RULE_USERDATA, value) => userdata = value,
            _ => {}
        }
    }
    Ok((expressions, userdata))
}

/// Dump request for the rules of one chain.
pub fn get_rules(w: &mut Writer, seq: u32, table: &str, chain: &str) {
    let m = w.begin_message(
        nft_type(NFT_MSG_GETRULE),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        NFPROTO_INET,
        0,
    );
    w.attr_str(NFTA_RULE_TABLE, table);
    w.attr_str(NFTA_RULE_CHAIN, chain);
    w.end_message(m);
}

/// One rule of a dump reply, when it belongs to `table` and `chain`.
pub fn parse_rule(
    message: &Message<'_>,
    table: &str,
    chain: &str,
) -> Result<Option<DumpedRule>, BackendError> {
    if message.payload.first() != Some(&NFPROTO_INET) {
        return Ok(None);
    }
    let (mut ours, mut handle) = (0, None);
    for attr in message.nft_attrs()? {
        match attr? {
            (NFTA_RULE_TABLE, v) if string(v)? == table => ours += 1,
            (NFTA_RULE_CHAIN, v) if string(v)? == chain => ours += 1,
            (NFTA_RULE_HANDLE, v) => handle = Some(be_u64(v)?),
            _ => {}
        }
    }
    let (2, Some(handle)) = (ours, handle) else {
        return Ok(None);
    };
    let (expressions, userdata) = rule_parts(message)?;
    Ok(Some(DumpedRule {
        handle,
        canonical: canonical(expressions, userdata)?,
    }))
}

/// One chain of a `GETCHAIN` dump reply, when it belongs to `table`.
pub fn parse_chain(
    message: &Message<'_>,
    table: &str,
) -> Result<Option<DumpedChain>, BackendError> {
    if message.payload.first() != Some(&NFPROTO_INET) {
        return Ok(None);
    }
    let mut in_table = false;
    let mut chain = DumpedChain {
        name: String::new(),
        hook: None,
        policy: None,
        kind: None,
    };
    for attr in message.nft_attrs()? {
        match attr? {
            (NFTA_CHAIN_TABLE, v) => in_table = string(v)? == table,
            (NFTA_CHAIN_NAME, v) => chain.name = string(v)?.to_string(),
            (NFTA_CHAIN_POLICY, v) => chain.policy = Some(be_u32(v)?),
            (NFTA_CHAIN_TYPE, v) => chain.kind = Some(string(v)?.to_string()),
            (NFTA_CHAIN_HOOK, v) => {
                let (mut number, mut priority) = (None, None);
                for attr in Attrs::new(v) {
                    match attr? {
                        (NFTA_HOOK_HOOKNUM, v) => number = Some(be_u32(v)?),
                        (NFTA_HOOK_PRIORITY, v) => priority = Some(be_u32(v)? as i32),
                        _ => {}
                    }
                }
                chain.hook = number.zip(priority);
            }
            _ => {}
        }
    }
    Ok(in_table.then_some(chain))
}

#[cfg(test)]
mod tests {
    use super::super::encode::{Place, new_rule};
    use super::*;
    use crate::firewall::{KernelRule, KernelVerdict, Match};
    use nftjail_core::ports::{PortRange, Protocol};

    fn written(rule: &KernelRule) -> Canonical {
        let mut w = Writer::new();
        new_rule(&mut w, 1, "nftjail", "firewall_input", rule, Place::Append);
        canonical_of_written(&w).unwrap()
    }

    fn rule(verdict: KernelVerdict, comment: &str) -> KernelRule {
        KernelRule {
            matches: vec![
                Match::CtState(6),
                Match::L4(6),
                Match::Port(PortRange::single(22)),
            ],
            counter: true,
            verdict,
            comment: comment.to_string(),
        }
    }

    #[test]
    fn verdicts_comments_and_matches_make_rules_differ() {
        let accept = written(&rule(KernelVerdict::Accept, "rule 1: SSH"));
        assert_eq!(accept, written(&rule(KernelVerdict::Accept, "rule 1: SSH")));
        assert_ne!(accept, written(&rule(KernelVerdict::Drop, "rule 1: SSH")));
        assert_ne!(accept, written(&rule(KernelVerdict::Accept, "rule 2: SSH")));
        let mut other_port = rule(KernelVerdict::Accept, "rule 1: SSH");
        other_port.matches[2] = Match::Port(PortRange::single(23));
        assert_ne!(accept, written(&other_port));
    }

    /// Builds an expression list as the kernel dumps it: plain nests, the counter's values,
    /// the bitwise op, a tcp reset without its code.
    #[test]
    fn what_the_kernel_adds_in_a_dump_evens_out() {
        let ours = written(&KernelRule {
            matches: vec![Match::CtState(6)],
            counter: true,
            verdict: KernelVerdict::Reject(Protocol::Tcp),
            comment: "x".into(),
        });
        let mut w = Writer::new();
        let list = w.begin_nest(NFTA_RULE_EXPRESSIONS);
        let expression = |w: &mut Writer, name: &str, body: &dyn Fn(&mut Writer)| {
            let e = w.begin_nest(NFTA_LIST_ELEM);
            w.attr_str(NFTA_EXPR_NAME, name);
            let d = w.begin_nest(NFTA_EXPR_DATA);
            body(w);
            w.end_nest(d);
            w.end_nest(e);
        };
        let plain_nest = |w: &mut Writer, kind: u16, value: &[u8]| {
            // What nla_nest_start_noflag writes: no NLA_F_NESTED.
            let mut inner = Writer::new();
            inner.attr(NFTA_DATA_VALUE, value);
            w.attr(kind, inner.bytes());
        };
        expression(&mut w, "ct", &|w| {
            w.attr_u32_be(NFTA_CT_KEY, NFT_CT_STATE);
            w.attr_u32_be(NFTA_CT_DREG, NFT_REG_1);
        });
        expression(&mut w, "bitwise", &|w| {
            w.attr_u32_be(NFTA_BITWISE_SREG, NFT_REG_1);
            w.attr_u32_be(NFTA_BITWISE_DREG, NFT_REG_1);
            w.attr_u32_be(NFTA_BITWISE_LEN, 4);
            w.attr_u32_be(NFTA_BITWISE_OP, 0);
            plain_nest(w, NFTA_BITWISE_MASK, &6u32.to_ne_bytes());
            plain_nest(w, NFTA_BITWISE_XOR, &[0; 4]);
        });
        expression(&mut w, "cmp", &|w| {
            w.attr_u32_be(NFTA_CMP_SREG, NFT_REG_1);
            w.attr_u32_be(NFTA_CMP_OP, NFT_CMP_NEQ);
            plain_nest(w, NFTA_CMP_DATA, &[0; 4]);
        });
        expression(&mut w, "counter", &|w| {
            w.attr_u64_be(1, 1234);
            w.attr_u64_be(2, 17);
        });
        expression(&mut w, "reject", &|w| {
            w.attr_u32_be(NFTA_REJECT_TYPE, NFT_REJECT_TCP_RST)
        });
        w.end_nest(list);
        let expressions = Attrs::new(w.bytes()).next().unwrap().unwrap().1;
        let mut userdata = vec![0, 2];
        userdata.extend_from_slice(b"x\0");
        assert_eq!(canonical(expressions, &userdata).unwrap(), ours);
    }
}
