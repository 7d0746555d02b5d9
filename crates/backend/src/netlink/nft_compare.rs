//! Test-only: our encodings compared byte for byte with what `nft --debug=mnl` sends for the
//! same objects.
//!
//! Receives nft's hex dump of the messages of a script (run in a throwaway network namespace
//! with `unshare -n`, so the host's ruleset is never touched); emits the attribute bytes of each
//! message for comparison. Where nft adds attributes we do not send (its own set ids, userdata
//! for its listing, an interval end at 0), the comparison leaves them out and says so. The
//! tests need root and nft: they are `#[ignore = "needs root and nft"]` (CI runs them with
//! `--include-ignored`) and fail, never pass, when nft cannot be run.

use std::process::{Command, Stdio};

use super::elements::{self, ElementOp};
use super::message::{Attrs, Writer, messages};
use super::objects;
use super::rules::{self, PortMatch, RuleSpec};
use crate::{Hook, PortRange, Protocol, SetKind, Verdict};

/// An attribute as `(type with flags, payload)`.
type Attr = (u16, Vec<u8>);

/// The `(message type, body after nfgenmsg)` of every message nft sends for `script`; panics
/// (with the reason) when nft cannot be run here.
fn nft_messages(script: &str) -> Vec<(u16, Vec<u8>)> {
    use std::io::Write;
    let child = Command::new("unshare")
        .args(["-n", "nft", "--debug=mnl", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let output = child.and_then(|mut child| {
        child
            .stdin
            .take()
            .expect("invariant: stdin piped")
            .write_all(script.as_bytes())?;
        child.wait_with_output()
    });
    let reason = match &output {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Some(format!("cannot run unshare -n nft: {e}")),
    };
    if let Some(reason) = reason {
        panic!(
            "nft comparison impossible: {reason} (needs root and nft; this test is #[ignore]d by default)"
        );
    }
    let out = output.expect("invariant: checked above");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    parse_mnl_dump(&text)
}

/// Rebuilds message bodies from libmnl's debug dump (colour codes stripped).
fn parse_mnl_dump(text: &str) -> Vec<(u16, Vec<u8>)> {
    let mut out: Vec<(u16, Vec<u8>)> = Vec::new();
    for line in text.lines() {
        let line = strip_ansi(line);
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        if fields.len() < 3 {
            continue;
        }
        if line.contains("|  type | flags  |") {
            out.push((fields[1].parse().expect("message type"), Vec::new()));
        } else if line.contains("|len |flags| type|") {
            let len: u16 = fields[1].parse().expect("attribute length");
            let mut kind: u16 = fields[3].parse().expect("attribute type");
            if fields[2].contains('N') {
                kind |= 0x8000;
            }
            let body = &mut out.last_mut().expect("attribute before message").1;
            body.extend_from_slice(&len.to_ne_bytes());
            body.extend_from_slice(&kind.to_ne_bytes());
        } else if line.contains("|      data      |") || line.contains("|  extra header  |") {
            let body = &mut out.last_mut().expect("data before message").1;
            for byte in fields[1].split_whitespace() {
                body.push(u8::from_str_radix(byte, 16).expect("hex byte"));
            }
        }
    }
    out
}

fn strip_ansi(line: &str) -> String {
    let mut clean = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            clean.push(c);
        }
    }
    clean
}

/// The top-level attributes of a body (after its 4-byte nfgenmsg).
fn attrs(body: &[u8]) -> Vec<Attr> {
    let mut out = Vec::new();
    let mut rest = &body[4..];
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]);
        out.push((kind, rest[4..len].to_vec()));
        rest = &rest[(len + 3) & !3..];
    }
    out
}

fn ours(encode: impl FnOnce(&mut Writer)) -> (u16, Vec<u8>) {
    let mut w = Writer::new();
    encode(&mut w);
    let m = messages(w.bytes()).next().unwrap().unwrap();
    (m.kind & 0xff, m.payload.to_vec())
}

/// nft's messages of nf_tables type `msg` (NEWTABLE = 0, …).
fn theirs(all: &[(u16, Vec<u8>)], msg: u16) -> Vec<Vec<u8>> {
    all.iter()
        .filter(|(kind, _)| *kind == 0x0a00 | msg)
        .map(|(_, body)| body.clone())
        .collect()
}

fn sorted(mut attrs: Vec<Attr>) -> Vec<Attr> {
    attrs.sort();
    attrs
}

/// The payloads of the list elements of a body's NFTA_SET_ELEM_LIST_ELEMENTS, without
/// NFTA_SET_ELEM_USERDATA (6), which nft adds for its own listing.
fn element_payloads(body: &[u8]) -> Vec<Vec<u8>> {
    let list = attrs(body)
        .into_iter()
        .find(|(kind, _)| kind & 0x3fff == 3)
        .expect("NFTA_SET_ELEM_LIST_ELEMENTS")
        .1;
    Attrs::new(&list)
        .map(|elem| {
            let (_, elem) = elem.unwrap();
            let mut w = Writer::new();
            for attr in Attrs::new(elem) {
                let (kind, data) = attr.unwrap();
                if kind != 6 {
                    raw_attr(&mut w, elem, kind, data);
                }
            }
            w.bytes().to_vec()
        })
        .collect()
}

/// Re-emits an attribute with its original type flags (found by position in `parent`).
fn raw_attr(w: &mut Writer, parent: &[u8], kind: u16, data: &[u8]) {
    let offset = data.as_ptr() as usize - parent.as_ptr() as usize - 4;
    let full_kind = u16::from_ne_bytes([parent[offset + 2], parent[offset + 3]]);
    debug_assert_eq!(full_kind & 0x3fff, kind);
    if full_kind & 0x8000 != 0 {
        let nest = w.begin_nest(kind);
        for inner in Attrs::new(data) {
            let (k, d) = inner.unwrap();
            raw_attr(w, data, k, d);
        }
        w.end_nest(nest);
    } else {
        w.attr(full_kind, data);
    }
}

const SETS: &str = "table inet nftjail {
  set sshd_v4 { type ipv4_addr; flags timeout; }
  set sshd_v6 { type ipv6_addr; flags timeout; }
  set sshd_net4 { type ipv4_addr; flags interval,timeout; }
  set sshd_net6 { type ipv6_addr; flags interval,timeout; }
  chain input { type filter hook input priority -10; policy accept; }
  chain forward { type filter hook forward priority -10; policy accept; }
}
";

#[test]
#[ignore = "needs root and nft"]
fn table_chain_and_sets_match_nft() {
    let all = nft_messages(SETS);
    let (_, table) = ours(|w| objects::new_table(w, 1, "nftjail"));
    assert_eq!(theirs(&all, 0), vec![table]);

    let chains = theirs(&all, 3);
    for (hook, theirs) in [Hook::Input, Hook::Forward].into_iter().zip(&chains) {
        let (_, body) = ours(|w| objects::new_chain(w, 1, "nftjail", hook));
        assert_eq!(sorted(attrs(&body)), sorted(attrs(theirs)), "{hook:?}");
    }

    // nft adds its own NFTA_SET_ID (10) and NFTA_SET_USERDATA (13): compared without them.
    let sets = theirs(&all, 9);
    let names = ["sshd_v4", "sshd_v6", "sshd_net4", "sshd_net6"];
    for ((kind, name), theirs) in SetKind::ALL.into_iter().zip(names).zip(&sets) {
        let (_, body) = ours(|w| objects::new_set(w, 1, "nftjail", name, kind, 1));
        let strip = |a: Vec<Attr>| {
            a.into_iter()
                .filter(|(k, _)| *k != 10 && *k != 13)
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(attrs(&body)), strip(attrs(theirs)), "{name}");
    }
}

#[test]
#[ignore = "needs root and nft"]
fn elements_match_nft() {
    let script = format!(
        "{SETS}add element inet nftjail sshd_v4 {{ 192.0.2.1 timeout 1h }}
add element inet nftjail sshd_v6 {{ 2001:db8::1 }}
add element inet nftjail sshd_net4 {{ 10.0.0.0/8 timeout 90s }}
add element inet nftjail sshd_net6 {{ ffff:ffff:ffff:ffff::/64 timeout 10m }}
"
    );
    let all = nft_messages(&script);
    // For interval sets declared in the same script, nft 1.0.6 first sends an element that
    // closes an interval at 0 (flags INTERVAL_END, key 0) in a message of its own; the kernel
    // does not need it and nftjail does not send it. The last four messages are the adds.
    let theirs = theirs(&all, 12);
    assert_eq!(theirs.len(), 6);
    let theirs = &theirs[2..];
    let cases = [
        ("192.0.2.1", Some(3600)),
        ("2001:db8::1", None),
        ("10.0.0.0/8", Some(90)),
        ("ffff:ffff:ffff:ffff::/64", Some(600)),
    ];
    for ((target, secs), theirs) in cases.into_iter().zip(theirs) {
        let target = target.parse().unwrap();
        let timeout = secs.map(std::time::Duration::from_secs);
        let (_, body) = ours(|w| {
            let starts = elements::begin_message(w, 1, ElementOp::Add, "nftjail", "s");
            elements::encode(w, &target, ElementOp::Add, timeout);
            elements::end_message(w, starts);
        });
        assert_eq!(
            element_payloads(&body),
            element_payloads(theirs),
            "{target}"
        );
    }
}

#[test]
#[ignore = "needs root and nft"]
fn rules_match_nft() {
    let script = format!(
        "{SETS}add rule inet nftjail input ip saddr @sshd_v4 tcp dport {{ 22, 2222 }} counter drop comment \"nftjail:sshd\"
add rule inet nftjail input ip6 saddr @sshd_net6 udp dport 53 counter reject with icmpx admin-prohibited comment \"nftjail:sshd\"
add rule inet nftjail input ip saddr @sshd_net4 counter reject with icmpx admin-prohibited comment \"nftjail:sshd\"
add rule inet nftjail forward ip6 saddr @sshd_v6 meta l4proto tcp ct original proto-dst 2525 counter reject with tcp reset comment \"nftjail:sshd\"
"
    );
    let all = nft_messages(&script);
    let theirs = theirs(&all, 6);
    assert_eq!(theirs.len(), 4);
    let specs = [
        (
            Hook::Input,
            "sshd_v4",
            SetKind::Addr4,
            Some(Protocol::Tcp),
            PortMatch::Set { id: 0 },
            Verdict::Drop,
        ),
        (
            Hook::Input,
            "sshd_net6",
            SetKind::Net6,
            Some(Protocol::Udp),
            PortMatch::Single(53),
            Verdict::Reject,
        ),
        (
            Hook::Input,
            "sshd_net4",
            SetKind::Net4,
            None,
            PortMatch::None,
            Verdict::Reject,
        ),
        (
            Hook::Forward,
            "sshd_v6",
            SetKind::Addr6,
            Some(Protocol::Tcp),
            PortMatch::Single(2525),
            Verdict::Reject,
        ),
    ];
    for (spec, theirs) in specs.into_iter().zip(&theirs) {
        let (hook, set, kind, protocol, port_match, verdict) = spec;
        let rule = RuleSpec {
            table: "nftjail",
            hook,
            set,
            set_id: 0,
            kind,
            protocol,
            port_match,
            verdict,
            comment: "nftjail:sshd",
        };
        let (_, body) = ours(|w| rules::encode_rule(w, 1, &rule));
        // Set ids are per batch: nft's and ours differ, so NFTA_LOOKUP_SET_ID is zeroed.
        assert_eq!(
            without_set_ids(attrs(&body)),
            without_set_ids(attrs(theirs)),
            "{set}"
        );
    }

    // The anonymous port set: same flags, key type and length, size.
    let (_, ours_set) = ours(|w| {
        let ports = [PortRange::single(22), PortRange::single(2222)];
        rules::encode_port_set(w, 1, "nftjail", 0, &ports)
    });
    let anonymous = theirs_anonymous(&all);
    let keep = |a: Vec<Attr>| {
        a.into_iter()
            .filter(|(k, _)| [1, 2, 3, 4, 5, 0x8009].contains(k))
            .collect::<Vec<_>>()
    };
    assert_eq!(keep(attrs(&ours_set)), keep(attrs(&anonymous)));
}

fn theirs_anonymous(all: &[(u16, Vec<u8>)]) -> Vec<u8> {
    theirs(all, 9)
        .into_iter()
        .find(|body| {
            attrs(body)
                .iter()
                .any(|(k, v)| *k == 2 && v == b"__set%d\0")
        })
        .expect("nft's anonymous set")
}

/// The rule attributes with every `lookup` expression's NFTA_LOOKUP_SET_ID set to 0.
fn without_set_ids(attrs: Vec<Attr>) -> Vec<Attr> {
    attrs
        .into_iter()
        .map(|(kind, data)| {
            if kind != 0x8004 {
                return (kind, data);
            }
            let mut data = data;
            let mut i = 0;
            // Find `8, 0, 4, 0` (an 8-byte NFTA_LOOKUP_SET_ID) after a "lookup" name.
            let text = data.clone();
            let lookup = b"lookup\0";
            while let Some(pos) = find(&text[i..], lookup) {
                let start = i + pos;
                if let Some(id) = find(&text[start..], &[8, 0, 4, 0]) {
                    let at = start + id + 4;
                    data[at..at + 4].copy_from_slice(&[0, 0, 0, 0]);
                }
                i = start + lookup.len();
            }
            (kind, data)
        })
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

mod firewall;
