//! Encodings of the nf_tables objects of the layout: table, base chains, jail sets, and the
//! requests that list and delete them.
//!
//! Receives names, hooks and set kinds; emits nf_tables messages into a [`Writer`] (each with
//! `NLM_F_ACK`, so the kernel answers every one) and parses the names out of dump replies. It
//! never sends anything and never uses `NLM_F_EXCL`: creating what exists is a no-op, which is
//! what makes `apply_layout` idempotent.

use super::message::{Attrs, Message, Writer, string};
use super::uapi::*;
use crate::{BackendError, CHAIN_PRIORITY, Hook, SetKind};

const NEW: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
const DEL: u16 = NLM_F_REQUEST | NLM_F_ACK;
const DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP;

fn begin(w: &mut Writer, msg: u16, flags: u16, seq: u32) -> usize {
    w.begin_message(nft_type(msg), flags, seq, NFPROTO_INET, 0)
}

/// `add table inet TABLE` (no flags: the table outlives the process that made it).
pub fn new_table(w: &mut Writer, seq: u32, table: &str) {
    let m = begin(w, NFT_MSG_NEWTABLE, NEW, seq);
    w.attr_str(NFTA_TABLE_NAME, table);
    w.attr_u32_be(NFTA_TABLE_FLAGS, 0);
    w.end_message(m);
}

/// `delete table inet TABLE`: the table with all its chains, rules, sets and elements.
pub fn del_table(w: &mut Writer, seq: u32, table: &str) {
    let m = begin(w, NFT_MSG_DELTABLE, DEL, seq);
    w.attr_str(NFTA_TABLE_NAME, table);
    w.end_message(m);
}

/// Asks whether the table exists (answered by the table or `ENOENT`).
pub fn get_table(w: &mut Writer, seq: u32, table: &str) {
    let m = begin(w, NFT_MSG_GETTABLE, NLM_F_REQUEST | NLM_F_ACK, seq);
    w.attr_str(NFTA_TABLE_NAME, table);
    w.end_message(m);
}

fn hook_number(hook: Hook) -> u32 {
    match hook {
        Hook::Input => NF_INET_LOCAL_IN,
        Hook::Forward => NF_INET_FORWARD,
    }
}

/// The base chain of `hook`: `type filter hook HOOK priority -10; policy accept;`.
pub fn new_chain(w: &mut Writer, seq: u32, table: &str, hook: Hook) {
    let m = begin(w, NFT_MSG_NEWCHAIN, NEW, seq);
    w.attr_str(NFTA_CHAIN_TABLE, table);
    w.attr_str(NFTA_CHAIN_NAME, hook.chain_name());
    let nest = w.begin_nest(NFTA_CHAIN_HOOK);
    w.attr_u32_be(NFTA_HOOK_HOOKNUM, hook_number(hook));
    w.attr(NFTA_HOOK_PRIORITY, &CHAIN_PRIORITY.to_be_bytes());
    w.end_nest(nest);
    w.attr_u32_be(NFTA_CHAIN_POLICY, NF_ACCEPT);
    w.attr_str(NFTA_CHAIN_TYPE, "filter");
    w.end_message(m);
}

/// Deletes every rule of a chain (a `DELRULE` without handle).
pub fn flush_chain(w: &mut Writer, seq: u32, table: &str, chain: &str) {
    let m = begin(w, NFT_MSG_DELRULE, DEL, seq);
    w.attr_str(NFTA_RULE_TABLE, table);
    w.attr_str(NFTA_RULE_CHAIN, chain);
    w.end_message(m);
}

/// Deletes an (empty) chain.
pub fn del_chain(w: &mut Writer, seq: u32, table: &str, chain: &str) {
    let m = begin(w, NFT_MSG_DELCHAIN, DEL, seq);
    w.attr_str(NFTA_CHAIN_TABLE, table);
    w.attr_str(NFTA_CHAIN_NAME, chain);
    w.end_message(m);
}

/// The key type and length of a jail set.
fn key_of(kind: SetKind) -> (u32, u32) {
    match kind {
        SetKind::Addr4 | SetKind::Net4 => (TYPE_IPADDR, 4),
        SetKind::Addr6 | SetKind::Net6 => (TYPE_IP6ADDR, 16),
    }
}

/// The flags of a jail set: `timeout`, plus `interval` for prefix sets.
pub fn set_flags(kind: SetKind) -> u32 {
    if kind.is_interval() {
        NFT_SET_INTERVAL | NFT_SET_TIMEOUT
    } else {
        NFT_SET_TIMEOUT
    }
}

/// A jail set (`NAME` is `JAIL_v4` and so on). Without a default timeout: each element
/// carries its own, and an element without one is permanent.
pub fn new_set(w: &mut Writer, seq: u32, table: &str, name: &str, kind: SetKind, id: u32) {
    let (key_type, key_len) = key_of(kind);
    let m = begin(w, NFT_MSG_NEWSET, NEW, seq);
    w.attr_str(NFTA_SET_TABLE, table);
    w.attr_str(NFTA_SET_NAME, name);
    w.attr_u32_be(NFTA_SET_FLAGS, set_flags(kind));
    w.attr_u32_be(NFTA_SET_KEY_TYPE, key_type);
    w.attr_u32_be(NFTA_SET_KEY_LEN, key_len);
    w.attr_u32_be(NFTA_SET_ID, id);
    w.end_message(m);
}

pub fn del_set(w: &mut Writer, seq: u32, table: &str, name: &str) {
    let m = begin(w, NFT_MSG_DELSET, DEL, seq);
    w.attr_str(NFTA_SET_TABLE, table);
    w.attr_str(NFTA_SET_NAME, name);
    w.end_message(m);
}

/// Dump request for the chains of the table.
pub fn get_chains(w: &mut Writer, seq: u32, table: &str) {
    let m = begin(w, NFT_MSG_GETCHAIN, DUMP, seq);
    w.attr_str(NFTA_CHAIN_TABLE, table);
    w.end_message(m);
}

/// Dump request for the sets of the table.
pub fn get_sets(w: &mut Writer, seq: u32, table: &str) {
    let m = begin(w, NFT_MSG_GETSET, DUMP, seq);
    w.attr_str(NFTA_SET_TABLE, table);
    w.end_message(m);
}

/// The name of the chain or set in a dump reply, when it belongs to `table` (dumps of older
/// kernels may ignore the table filter). `table_attr` and `name_attr` are the attribute ids of
/// the object kind.
pub fn dumped_name(
    message: &Message<'_>,
    table: &str,
    table_attr: u16,
    name_attr: u16,
) -> Result<Option<String>, BackendError> {
    if message.payload.first() != Some(&NFPROTO_INET) {
        return Ok(None);
    }
    let (mut in_table, mut name) = (false, None);
    for attr in message.nft_attrs()? {
        let (kind, data) = attr?;
        if kind == table_attr {
            in_table = string(data)? == table;
        } else if kind == name_attr {
            name = Some(string(data)?.to_string());
        }
    }
    Ok(name.filter(|_| in_table))
}

/// Whether `attrs` of a dumped set carry `NFT_SET_ANONYMOUS` (rules' port sets).
pub fn is_anonymous_set(attrs: Attrs<'_>) -> Result<bool, BackendError> {
    for attr in attrs {
        let (kind, data) = attr?;
        if kind == NFTA_SET_FLAGS {
            return Ok(super::message::be_u32(data)? & NFT_SET_ANONYMOUS != 0);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::super::message::messages;
    use super::*;

    /// `(type, payload bytes)` of every attribute of the first message.
    fn attrs_of(w: &Writer) -> (u16, u16, Vec<(u16, Vec<u8>)>) {
        let m = messages(w.bytes()).next().unwrap().unwrap();
        assert_eq!(m.payload[..4], [1, 0, 0, 0], "nfgenmsg: NFPROTO_INET, v0");
        let attrs = m
            .nft_attrs()
            .unwrap()
            .map(|a| a.map(|(k, d)| (k, d.to_vec())).unwrap())
            .collect();
        (m.kind, m.flags, attrs)
    }

    #[test]
    fn table_encoding() {
        let mut w = Writer::new();
        new_table(&mut w, 1, "nftjail");
        let (kind, flags, attrs) = attrs_of(&w);
        // (NFNL_SUBSYS_NFTABLES 10 << 8) | NFT_MSG_NEWTABLE 0; REQUEST|ACK|CREATE.
        assert_eq!((kind, flags), (0x0a00, 0x1 | 0x4 | 0x400));
        assert_eq!(
            attrs,
            vec![(1, b"nftjail\0".to_vec()), (2, vec![0, 0, 0, 0])]
        );
    }

    #[test]
    fn chain_encoding() {
        let mut w = Writer::new();
        new_chain(&mut w, 1, "nftjail", Hook::Forward);
        let (kind, flags, attrs) = attrs_of(&w);
        assert_eq!((kind, flags), (0x0a03, 0x405));
        assert_eq!(attrs[0], (1, b"nftjail\0".to_vec()));
        assert_eq!(attrs[1], (3, b"forward\0".to_vec()));
        // NFTA_CHAIN_HOOK: HOOKNUM NF_INET_FORWARD (2), PRIORITY -10, both big-endian.
        assert_eq!(attrs[2].0, 4);
        let hook: Vec<_> = Attrs::new(&attrs[2].1).map(Result::unwrap).collect();
        assert_eq!(hook[0], (1, &[0, 0, 0, 2][..]));
        assert_eq!(hook[1], (2, &[0xff, 0xff, 0xff, 0xf6][..]));
        // NFTA_CHAIN_POLICY NF_ACCEPT (1), NFTA_CHAIN_TYPE "filter".
        assert_eq!(attrs[3], (5, vec![0, 0, 0, 1]));
        assert_eq!(attrs[4], (7, b"filter\0".to_vec()));

        let mut w = Writer::new();
        new_chain(&mut w, 1, "nftjail", Hook::Input);
        let (_, _, attrs) = attrs_of(&w);
        let hook: Vec<_> = Attrs::new(&attrs[2].1).map(Result::unwrap).collect();
        assert_eq!(hook[0], (1, &[0, 0, 0, 1][..]), "NF_INET_LOCAL_IN");
    }

    #[test]
    fn set_encoding() {
        let cases = [
            // kind, flags, key type (nft datatype), key length
            (SetKind::Addr4, 0x10, 7, 4),
            (SetKind::Addr6, 0x10, 8, 16),
            (SetKind::Net4, 0x14, 7, 4),
            (SetKind::Net6, 0x14, 8, 16),
        ];
        for (kind, set_flags, key_type, key_len) in cases {
            let mut w = Writer::new();
            new_set(&mut w, 1, "nftjail", "postfix-sasl_x", kind, 9);
            let (msg, flags, attrs) = attrs_of(&w);
            assert_eq!((msg, flags), (0x0a09, 0x405));
            let be = |v: u32| v.to_be_bytes().to_vec();
            assert_eq!(
                attrs,
                vec![
                    (1, b"nftjail\0".to_vec()),
                    (2, b"postfix-sasl_x\0".to_vec()),
                    (3, be(set_flags)),
                    (4, be(key_type)),
                    (5, be(key_len)),
                    (10, be(9)),
                ],
                "{kind:?}"
            );
        }
    }

    #[test]
    fn deletions_and_dumps() {
        type Encode = fn(&mut Writer);
        let cases: [(Encode, u16, u16); 6] = [
            (|w| del_table(w, 1, "t"), 0x0a02, 0x5),
            (|w| flush_chain(w, 1, "t", "input"), 0x0a08, 0x5),
            (|w| del_chain(w, 1, "t", "input"), 0x0a05, 0x5),
            (|w| del_set(w, 1, "t", "s"), 0x0a0b, 0x5),
            (|w| get_chains(w, 1, "t"), 0x0a04, 0x301),
            (|w| get_sets(w, 1, "t"), 0x0a0a, 0x301),
        ];
        for (encode, want_kind, want_flags) in cases {
            let mut w = Writer::new();
            encode(&mut w);
            let (kind, flags, attrs) = attrs_of(&w);
            assert_eq!((kind, flags), (want_kind, want_flags));
            assert_eq!(attrs[0], (1, b"t\0".to_vec()), "table attribute first");
        }
    }
}
