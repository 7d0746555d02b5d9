//! Drift: what other sockets changed in our table, read out of nf_tables notifications.
//!
//! Receives the datagrams a [`TableMonitor`](super::TableMonitor) reads (the notifications of
//! every table of the network namespace, ours included); emits [`Drift`]s for the changes that
//! sockets other than the backend's made to our table, coalesced: one entry per set for element
//! changes, and a deleted table or chain stands for the deletions of what it held. It never
//! reports a change of our own socket, of another table or family, an anonymous set (the port
//! sets bound to rules: their rule says it), or an element the kernel removed by itself
//! (`nlmsg_pid` 0); and it never drops what it cannot read: that is a [`Drift::Overrun`].

use std::fmt;

use super::super::message::{Attrs, Message, be_u32, be_u64, messages, string};
use super::super::uapi::*;
use crate::BackendError;

/// One change that someone else made to our table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The table was deleted, with its chains, rules, sets and elements.
    TableDeleted,
    /// The table was created or its flags were changed; `dormant`: every chain of it is off.
    TableChanged {
        dormant: bool,
    },
    ChainDeleted {
        chain: String,
    },
    ChainAdded {
        chain: String,
    },
    RuleDeleted {
        chain: String,
        handle: u64,
    },
    RuleAdded {
        chain: String,
        handle: u64,
    },
    SetDeleted {
        set: String,
    },
    SetAdded {
        set: String,
    },
    /// `count` elements were deleted from `set`, one by one or by a flush (a prefix in an
    /// interval set is two kernel elements: its start and its end).
    ElementsDeleted {
        set: String,
        count: usize,
    },
    ElementsAdded {
        set: String,
        count: usize,
    },
    /// Notifications were lost (the receive queue overflowed) or could not be read: anything
    /// may have changed; compare the whole table.
    Overrun,
}

impl Drift {
    /// Whether the kernel may now lack part of the layout or of the bans, or hold a rule that
    /// lets banned packets through, so that the layout must be re-applied and the state's
    /// elements re-added (`reconcile`). Foreign chains, sets and elements do not need it: a
    /// drop in our chain is final whatever another chain accepts, and reconcile reports
    /// foreign elements as unknown. A foreign rule in one of our chains does (an `accept`
    /// before our rules skips them; re-applying the layout rebuilds our chains).
    pub fn needs_repair(&self) -> bool {
        match self {
            Drift::TableDeleted
            | Drift::ChainDeleted { .. }
            | Drift::RuleDeleted { .. }
            | Drift::RuleAdded { .. }
            | Drift::SetDeleted { .. }
            | Drift::ElementsDeleted { .. }
            | Drift::Overrun => true,
            Drift::TableChanged { dormant } => *dormant,
            // A firewall chain "added" is one that already existed with its policy changed (or
            // one put back with another hook): a `drop` policy turned into `accept` opens every
            // port, so it is repaired like a deleted rule.
            Drift::ChainAdded { chain } => crate::FirewallChain::from_name(chain).is_some(),
            Drift::SetAdded { .. } | Drift::ElementsAdded { .. } => false,
        }
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::TableDeleted => write!(f, "table deleted"),
            Drift::TableChanged { dormant: true } => write!(f, "table made dormant"),
            Drift::TableChanged { dormant: false } => write!(f, "table created or changed"),
            Drift::ChainDeleted { chain } => write!(f, "chain {chain} deleted"),
            Drift::ChainAdded { chain } => write!(f, "chain {chain} added"),
            Drift::RuleDeleted { chain, handle } => {
                write!(f, "rule {handle} deleted from chain {chain}")
            }
            Drift::RuleAdded { chain, handle } => write!(f, "rule {handle} added to chain {chain}"),
            Drift::SetDeleted { set } => write!(f, "set {set} deleted"),
            Drift::SetAdded { set } => write!(f, "set {set} added"),
            Drift::ElementsDeleted { set, count } => {
                write!(f, "{count} elements deleted from set {set}")
            }
            Drift::ElementsAdded { set, count } => write!(f, "{count} elements added to set {set}"),
            Drift::Overrun => write!(f, "notifications lost"),
        }
    }
}

/// Whose changes count: those to `table` (family inet) by any socket but `own_portid`.
#[derive(Debug, Clone)]
pub struct Scope {
    pub table: String,
    pub own_portid: u32,
}

/// The drift read since the last [`Collector::take`].
#[derive(Debug, Default)]
pub struct Collector {
    drifts: Vec<Drift>,
    /// The foreign transaction being read (its port id and the changes to our table it made so
    /// far): the kernel ends each transaction's notifications with a `NEWGEN`.
    open: Option<(u32, usize)>,
}

/// What one notification says.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// Ours, another table's, or nothing we watch.
    Ignored,
    Drift {
        portid: u32,
        drift: Drift,
    },
    /// The end of the transaction of socket `portid`, made by process `pid` named `process`.
    Generation {
        portid: u32,
        pid: Option<u32>,
        process: Option<String>,
    },
}

impl Collector {
    /// Reads the notifications of one datagram.
    pub fn absorb(&mut self, datagram: &[u8], scope: &Scope) {
        for message in messages(datagram) {
            match message.and_then(|m| event(&m, scope)) {
                Ok(Event::Ignored) => {}
                Ok(Event::Drift { portid, drift }) => {
                    if portid != 0 {
                        let changes = match self.open {
                            Some((open, changes)) if open == portid => changes,
                            _ => 0,
                        };
                        self.open = Some((portid, changes + 1));
                    }
                    self.push(drift);
                }
                Ok(Event::Generation {
                    portid,
                    pid,
                    process,
                }) => {
                    if let Some((open, changes)) = self.open
                        && open == portid
                    {
                        self.open = None;
                        tracing::info!(
                            table = %scope.table,
                            process = process.as_deref().unwrap_or("?"),
                            pid = pid.unwrap_or(0),
                            portid,
                            changes,
                            "another process changed the table"
                        );
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "unreadable nf_tables notification");
                    self.overrun();
                }
            }
        }
    }

    /// Notifications were lost.
    pub fn overrun(&mut self) {
        self.push(Drift::Overrun);
    }

    pub fn is_empty(&self) -> bool {
        self.drifts.is_empty()
    }

    /// Whether a foreign transaction that changed our table has not been read to its end.
    pub fn transaction_open(&self) -> bool {
        self.open.is_some()
    }

    /// The drift read so far; the collector starts over.
    pub fn take(&mut self) -> Vec<Drift> {
        self.open = None;
        std::mem::take(&mut self.drifts)
    }

    /// Adds `drift`, merging element counts per set and letting a deleted table, chain or set
    /// stand for the changes of what it held.
    fn push(&mut self, drift: Drift) {
        match &drift {
            Drift::TableDeleted => self.drifts.retain(|d| *d == Drift::Overrun),
            Drift::ChainDeleted { chain } => self.drifts.retain(|d| match d {
                Drift::RuleDeleted { chain: c, .. } | Drift::RuleAdded { chain: c, .. } => {
                    c != chain
                }
                _ => true,
            }),
            Drift::SetDeleted { set } => self.drifts.retain(|d| match d {
                Drift::ElementsDeleted { set: s, .. } | Drift::ElementsAdded { set: s, .. } => {
                    s != set
                }
                _ => true,
            }),
            Drift::ElementsDeleted { set, count } | Drift::ElementsAdded { set, count } => {
                let deleted = matches!(drift, Drift::ElementsDeleted { .. });
                let same = self.drifts.iter_mut().find_map(|d| match d {
                    Drift::ElementsDeleted { set: s, count: c } if deleted && s == set => Some(c),
                    Drift::ElementsAdded { set: s, count: c } if !deleted && s == set => Some(c),
                    _ => None,
                });
                if let Some(total) = same {
                    *total += count;
                    return;
                }
            }
            _ => {}
        }
        if !self.drifts.contains(&drift) {
            self.drifts.push(drift);
        }
    }
}

/// Classifies one notification.
fn event(message: &Message<'_>, scope: &Scope) -> Result<Event, BackendError> {
    if message.pid == scope.own_portid || message.kind >> 8 != NFNL_SUBSYS_NFTABLES {
        return Ok(Event::Ignored);
    }
    let msg = message.kind & 0xff;
    if msg == NFT_MSG_NEWGEN {
        return generation(message);
    }
    if message.payload.first() != Some(&NFPROTO_INET) {
        return Ok(Event::Ignored);
    }
    // Attributes 1 to 3 are all we read: the table (1 in every object), then the name, chain,
    // handle, flags or element list, depending on the message.
    let mut attrs: [Option<&[u8]>; 4] = [None; 4];
    for attr in message.nft_attrs()? {
        let (kind, data) = attr?;
        if let Some(slot) = attrs.get_mut(usize::from(kind)) {
            *slot = Some(data);
        }
    }
    let text = |id: u16| -> Result<String, BackendError> {
        let data = attrs[usize::from(id)].ok_or_else(|| missing(msg, id))?;
        Ok(string(data)?.to_string())
    };
    if attrs[1].map(string).transpose()? != Some(scope.table.as_str()) {
        return Ok(Event::Ignored);
    }
    let drift = match msg {
        NFT_MSG_NEWTABLE => {
            let flags = attrs[usize::from(NFTA_TABLE_FLAGS)]
                .map(be_u32)
                .transpose()?;
            Drift::TableChanged {
                dormant: flags.unwrap_or(0) & NFT_TABLE_F_DORMANT != 0,
            }
        }
        NFT_MSG_DELTABLE | NFT_MSG_DESTROYTABLE => Drift::TableDeleted,
        NFT_MSG_NEWCHAIN => Drift::ChainAdded {
            chain: text(NFTA_CHAIN_NAME)?,
        },
        NFT_MSG_DELCHAIN | NFT_MSG_DESTROYCHAIN => Drift::ChainDeleted {
            chain: text(NFTA_CHAIN_NAME)?,
        },
        NFT_MSG_NEWRULE | NFT_MSG_DELRULE | NFT_MSG_DESTROYRULE => {
            let chain = text(NFTA_RULE_CHAIN)?;
            let handle = attrs[usize::from(NFTA_RULE_HANDLE)]
                .ok_or_else(|| missing(msg, NFTA_RULE_HANDLE))
                .and_then(be_u64)?;
            if msg == NFT_MSG_NEWRULE {
                Drift::RuleAdded { chain, handle }
            } else {
                Drift::RuleDeleted { chain, handle }
            }
        }
        NFT_MSG_NEWSET | NFT_MSG_DELSET | NFT_MSG_DESTROYSET => {
            let set = text(NFTA_SET_NAME)?;
            let flags = attrs[usize::from(NFTA_SET_FLAGS)].map(be_u32).transpose()?;
            if anonymous(&set) || flags.unwrap_or(0) & NFT_SET_ANONYMOUS != 0 {
                return Ok(Event::Ignored);
            }
            if msg == NFT_MSG_NEWSET {
                Drift::SetAdded { set }
            } else {
                Drift::SetDeleted { set }
            }
        }
        NFT_MSG_NEWSETELEM | NFT_MSG_DELSETELEM | NFT_MSG_DESTROYSETELEM => {
            let set = text(NFTA_SET_ELEM_LIST_SET)?;
            let deleted = msg != NFT_MSG_NEWSETELEM;
            // The kernel's own removals (expired elements, if a kernel ever notifies them).
            if anonymous(&set) || (deleted && message.pid == 0) {
                return Ok(Event::Ignored);
            }
            let list = attrs[usize::from(NFTA_SET_ELEM_LIST_ELEMENTS)].unwrap_or_default();
            let mut count = 0;
            for element in Attrs::new(list) {
                element?;
                count += 1;
            }
            if deleted {
                Drift::ElementsDeleted { set, count }
            } else {
                Drift::ElementsAdded { set, count }
            }
        }
        _ => return Ok(Event::Ignored), // objects, flowtables: not part of our layout
    };
    Ok(Event::Drift {
        portid: message.pid,
        drift,
    })
}

/// A `NEWGEN`: the end of a transaction, with the process that made it.
fn generation(message: &Message<'_>) -> Result<Event, BackendError> {
    let (mut pid, mut process) = (None, None);
    for attr in message.nft_attrs()? {
        match attr? {
            (NFTA_GEN_PROC_PID, data) => pid = Some(be_u32(data)?),
            (NFTA_GEN_PROC_NAME, data) => process = Some(string(data)?.to_string()),
            _ => {}
        }
    }
    Ok(Event::Generation {
        portid: message.pid,
        pid,
        process,
    })
}

/// The sets the kernel names from a `__set%d` template: the anonymous sets bound to rules.
fn anonymous(set: &str) -> bool {
    set.starts_with("__set")
}

fn missing(msg: u16, attr: u16) -> BackendError {
    BackendError::Protocol(format!(
        "nf_tables notification {msg} without attribute {attr}"
    ))
}

#[cfg(test)]
mod tests;
