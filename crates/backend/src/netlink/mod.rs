//! `NetlinkBackend`: the backend over a `NETLINK_NETFILTER` socket, the only code in the crate
//! that speaks netlink.
//!
//! Receives the layout and element changes; emits nf_tables batches (one transaction each) and
//! dump requests, and maps the kernel's answers to typed errors. It never runs `nft`, never
//! links a C library and never uses `unsafe`: the socket is nix's, the encoder and parser are
//! ours (`message`, `objects`, `rules`, `elements`, `firewall`).

mod batch;
mod elements;
mod firewall;
mod message;
mod monitor;
#[cfg(test)]
mod nft_compare;
mod objects;
mod rules;
mod socket;
mod transaction;
mod uapi;

use std::collections::BTreeSet;

use nix::errno::Errno;

pub use monitor::{Drift, TableMonitor};
pub use transaction::Limits;

use self::batch::Batch;
use self::message::Writer;
use self::socket::Socket;
use self::uapi::{NFTA_CHAIN_NAME, NFTA_CHAIN_TABLE, NFTA_SET_NAME, NFTA_SET_TABLE};
use super::{
    ApplyError, Backend, BackendError, Change, Element, FirewallLayout, FirewallReport, Hook,
    Layout, SetKind, parse_set_name, set_name,
};

/// The nftables backend over netlink. Blocking; owned by the banner's thread.
#[derive(Debug)]
pub struct NetlinkBackend {
    socket: Socket,
    table: String,
    limits: Limits,
}

impl NetlinkBackend {
    /// Opens a netlink socket for table `inet <table>` (created by `apply_layout`).
    pub fn open(table: &str) -> Result<NetlinkBackend, BackendError> {
        Ok(NetlinkBackend {
            socket: Socket::open()?,
            table: table.to_string(),
            limits: Limits::default(),
        })
    }

    /// Changes how element changes are cut into messages and transactions.
    pub fn with_limits(mut self, limits: Limits) -> NetlinkBackend {
        self.limits = limits;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The netlink port id of the backend's socket: its changes reach a [`TableMonitor`] with
    /// this id, which is how the monitor tells them from someone else's.
    pub fn portid(&self) -> u32 {
        self.socket.portid()
    }

    /// Sends a batch of layout messages; maps the first refusal to an error.
    fn commit(&mut self, mut batch: Batch<String>) -> Result<(), BackendError> {
        self.socket.consume_seq(batch.seqs_used());
        if batch.writer().overflowed() {
            return Err(BackendError::MessageTooLarge {
                bytes: batch.writer().len(),
            });
        }
        let (begin, inner) = (batch.begin_seq(), batch.inner_seqs());
        let bytes = batch.finish();
        let batch_bytes = bytes.len();
        let outcome = self.socket.transact(bytes, begin, &inner)?;
        let Some((seq, errno)) = outcome.errors.iter().min_by_key(|(seq, _)| *seq) else {
            return Ok(());
        };
        let operation = batch
            .label(*seq)
            .cloned()
            .unwrap_or_else(|| "batch".to_string());
        Err(match *errno {
            Errno::EPERM | Errno::EACCES => BackendError::Permission { operation },
            Errno::EMSGSIZE => BackendError::MessageTooLarge { bytes: batch_bytes },
            errno => BackendError::Kernel { operation, errno },
        })
    }

    /// Names of the chains (or sets) of the table; `None` when the table does not exist.
    fn names(&mut self, sets: bool) -> Result<Option<Vec<String>>, BackendError> {
        for _ in 0..3 {
            let mut w = Writer::new();
            let seq = self.socket.next_seq();
            self.socket.consume_seq(1);
            let (table_attr, name_attr) = if sets {
                objects::get_sets(&mut w, seq, &self.table);
                (NFTA_SET_TABLE, NFTA_SET_NAME)
            } else {
                objects::get_chains(&mut w, seq, &self.table);
                (NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME)
            };
            let table = self.table.clone();
            let mut names = Vec::new();
            let result = self.socket.dump(w.bytes(), seq, |message| {
                let anonymous = sets && objects::is_anonymous_set(message.nft_attrs()?)?;
                let name = objects::dumped_name(message, &table, table_attr, name_attr)?;
                names.extend(name.filter(|_| !anonymous));
                Ok(())
            })?;
            match result {
                Ok(true) => return Ok(Some(names)),
                Ok(false) => continue, // interrupted by a concurrent change
                Err(Errno::ENOENT) => return Ok(None),
                Err(errno) => return Err(dump_error("list the table", errno)),
            }
        }
        Err(BackendError::Protocol(
            "table dump interrupted three times".into(),
        ))
    }

    /// Every element of one set, intervals put back together.
    fn set_elements(
        &mut self,
        set: &str,
        kind: SetKind,
    ) -> Result<Vec<elements::Dumped>, BackendError> {
        for _ in 0..3 {
            let mut w = Writer::new();
            let seq = self.socket.next_seq();
            self.socket.consume_seq(1);
            elements::get_elements(&mut w, seq, &self.table, set);
            let mut dumped = Vec::new();
            let result = self.socket.dump(w.bytes(), seq, |message| {
                elements::parse_dump(message, &mut dumped)
            })?;
            match result {
                Ok(true) => return Ok(dumped),
                Ok(false) => continue,
                Err(Errno::ENOENT) => return Ok(Vec::new()), // deleted meanwhile
                Err(errno) => return Err(dump_error(&format!("list set {set} ({kind:?})"), errno)),
            }
        }
        Err(BackendError::Protocol(format!(
            "dump of set {set} interrupted three times"
        )))
    }
}

fn dump_error(operation: &str, errno: Errno) -> BackendError {
    match errno {
        Errno::EPERM | Errno::EACCES => BackendError::Permission {
            operation: operation.to_string(),
        },
        errno => BackendError::Kernel {
            operation: operation.to_string(),
            errno,
        },
    }
}

/// Whether table `inet <table>` exists.
fn table_exists(socket: &mut Socket, table: &str) -> Result<bool, BackendError> {
    let mut w = Writer::new();
    let seq = socket.next_seq();
    socket.consume_seq(1);
    objects::get_table(&mut w, seq, table);
    match socket.request(w.bytes(), seq)? {
        None => Ok(true),
        Some(Errno::ENOENT) => Ok(false),
        Some(errno) => Err(dump_error("look up the table", errno)),
    }
}

impl Backend for NetlinkBackend {
    fn apply_layout(&mut self, layout: &Layout) -> Result<(), BackendError> {
        self.table = layout.table.clone();
        let chains = self.names(false)?.unwrap_or_default();
        let sets = self.names(true)?.unwrap_or_default();
        let hooks: BTreeSet<Hook> = layout.hooks.iter().copied().collect();
        let table = self.table.clone();

        let mut batch: Batch<String> = Batch::new(self.socket.next_seq());
        let seq = batch.push(format!("add table inet {table}"));
        objects::new_table(batch.writer(), seq, &table);
        for hook in &hooks {
            let seq = batch.push(format!("add chain {}", hook.chain_name()));
            objects::new_chain(batch.writer(), seq, &table, *hook);
        }
        // The rules are rebuilt: every existing hook chain is flushed in this transaction, and
        // the chains of hooks no longer configured are deleted.
        for chain in chains.iter().filter(|c| Hook::from_chain_name(c).is_some()) {
            let seq = batch.push(format!("flush chain {chain}"));
            objects::flush_chain(batch.writer(), seq, &table, chain);
            if !hooks.iter().any(|h| h.chain_name() == chain) {
                let seq = batch.push(format!("delete chain {chain}"));
                objects::del_chain(batch.writer(), seq, &table, chain);
            }
        }
        // Creating a set that exists is a no-op: its elements stay.
        let mut ids = std::collections::HashMap::new();
        for jail in &layout.jails {
            for kind in SetKind::ALL {
                let name = set_name(&jail.name, kind);
                let id = batch.set_id();
                ids.insert((jail.name.clone(), kind), id);
                let seq = batch.push(format!("add set {name}"));
                objects::new_set(batch.writer(), seq, &table, &name, kind, id);
            }
        }
        for set in &sets {
            let removed_jail = parse_set_name(set)
                .is_some_and(|(jail, _)| !layout.jails.iter().any(|j| j.name == jail));
            if removed_jail {
                let seq = batch.push(format!("delete set {set}"));
                objects::del_set(batch.writer(), seq, &table, set);
            }
        }
        for hook in &hooks {
            for jail in &layout.jails {
                let set_ids = |kind| {
                    *ids.get(&(jail.name.clone(), kind))
                        .expect("invariant: every jail set got an id above")
                };
                rules::encode_jail(&mut batch, &table, *hook, layout.verdict, jail, &set_ids);
            }
        }
        tracing::debug!(
            table = %table,
            jails = layout.jails.len(),
            messages = batch.inner_seqs().len(),
            "applying layout"
        );
        self.commit(batch)
    }

    fn apply(&mut self, changes: &[Change]) -> Result<(), ApplyError> {
        transaction::apply(&mut self.socket, &self.table, self.limits, changes)
    }

    fn apply_firewall(
        &mut self,
        firewall: &FirewallLayout,
    ) -> Result<FirewallReport, BackendError> {
        self.firewall(firewall)
    }

    fn list(&mut self) -> Result<Vec<Element>, BackendError> {
        let Some(sets) = self.names(true)? else {
            return Err(BackendError::NoSuchTable {
                table: self.table.clone(),
            });
        };
        let mut listed = Vec::new();
        for set in sets {
            let Some((jail, kind)) = parse_set_name(&set) else {
                continue;
            };
            let dumped = self.set_elements(&set, kind)?;
            for (target, timeout, expires) in elements::assemble(kind, dumped) {
                if SetKind::of(&target) != kind {
                    continue; // e.g. an IPv6 key in an IPv4 set of someone else's making
                }
                listed.push(Element {
                    jail: jail.clone(),
                    target,
                    timeout,
                    expires,
                });
            }
        }
        tracing::debug!(elements = listed.len(), table = %self.table, "listed");
        Ok(listed)
    }

    fn remove_table(&mut self) -> Result<(), BackendError> {
        let mut batch: Batch<String> = Batch::new(self.socket.next_seq());
        let seq = batch.push(format!("delete table inet {}", self.table));
        objects::del_table(batch.writer(), seq, &self.table);
        match self.commit(batch) {
            Err(BackendError::Kernel {
                errno: Errno::ENOENT,
                ..
            }) => Err(BackendError::NoSuchTable {
                table: self.table.clone(),
            }),
            other => other,
        }
    }
}
