//! The host firewall over netlink: reads the firewall chains back, and changes only what differs,
//! in one transaction.
//!
//! Receives a [`FirewallLayout`]; dumps the table's chains and the rules of each firewall chain
//! (`dump`), compares them with the rules the layout needs in their canonical form, and builds
//! one batch: chains created or removed, policies changed, and per chain the fewest rule
//! deletions and insertions that give the wanted order (`crate::firewall::diff`), so untouched rules keep their
//! handles and counters. An unchanged firewall sends nothing at all. Emits a [`FirewallReport`]
//! of what changed, or the kernel's refusal (then nothing changed: it is one transaction). It
//! never touches the jail chains and sets.

mod dump;
mod encode;

use nix::errno::Errno;

use self::dump::{Canonical, DumpedChain, DumpedRule, canonical_of_written};
use self::encode::Place;
pub use self::encode::policy_code;
use super::NetlinkBackend;
use super::batch::Batch;
use super::message::{Message, Writer};
use super::objects;
use crate::BackendError;
use crate::firewall::diff::{Insert, diff};
use crate::firewall::{FirewallChain, FirewallLayout, FirewallReport, plan};

#[cfg(test)]
pub(super) use self::encode::{Place as RulePlace, new_chain, new_rule};

impl NetlinkBackend {
    /// See [`Backend::apply_firewall`](crate::Backend::apply_firewall).
    pub(super) fn firewall(
        &mut self,
        layout: &FirewallLayout,
    ) -> Result<FirewallReport, BackendError> {
        let wanted = plan(layout);
        let table = self.table.clone();
        let chains = self.dump_all(
            |w, seq| objects::get_chains(w, seq, &table),
            |m| dump::parse_chain(m, &table),
        )?;
        let mut batch: Batch<String> = Batch::new(self.socket.next_seq());
        let mut report = FirewallReport::default();
        // A dump of a missing table may answer ENOENT or nothing at all (kernels differ).
        let table_missing = match &chains {
            None => true,
            Some(c) if c.is_empty() => !super::table_exists(&mut self.socket, &table)?,
            Some(_) => false,
        };
        if table_missing && !wanted.is_empty() {
            let seq = batch.push(format!("add table inet {table}"));
            objects::new_table(batch.writer(), seq, &table);
        }
        let chains = chains.unwrap_or_default();
        for chain in &wanted {
            let name = chain.chain.name();
            let existing = chains.iter().find(|c| c.name == name);
            let fits = existing.is_some_and(|c| fits(c, chain.chain));
            let have: Vec<DumpedRule> = match fits {
                true => self.chain_rules(name)?,
                false => Vec::new(),
            };
            if existing.is_some() && !fits {
                // Someone made a chain of this name with another hook or type: replace it.
                remove_chain(&mut batch, &table, name);
                report.chains_removed += 1;
            }
            let policy = policy_code(chain.policy);
            if !fits {
                let seq = batch.push(format!("add chain {name}"));
                encode::new_chain(batch.writer(), seq, &table, chain.chain, chain.policy);
                report.chains_added += 1;
            } else if existing.and_then(|c| c.policy) != Some(policy) {
                let seq = batch.push(format!("set the policy of chain {name}"));
                encode::new_chain(batch.writer(), seq, &table, chain.chain, chain.policy);
                report.policies_changed += 1;
            }
            let want = chain
                .rules
                .iter()
                .map(|rule| {
                    let mut w = Writer::new();
                    encode::new_rule(&mut w, 0, &table, name, rule, Place::Append);
                    canonical_of_written(&w)
                })
                .collect::<Result<Vec<Canonical>, BackendError>>()?;
            let have_canonical: Vec<&Canonical> = have.iter().map(|r| &r.canonical).collect();
            let want_canonical: Vec<&Canonical> = want.iter().collect();
            let edit = diff(&have_canonical, &want_canonical);
            for &i in &edit.delete {
                let seq = batch.push(format!("delete rule {} of chain {name}", have[i].handle));
                encode::del_rule(batch.writer(), seq, &table, name, have[i].handle);
            }
            for &(j, place) in &edit.insert {
                let place = match place {
                    Insert::Before(i) => Place::Before(have[i].handle),
                    Insert::Append => Place::Append,
                };
                let rule = &chain.rules[j];
                let seq = batch.push(format!("add rule to chain {name} ({})", rule.comment));
                encode::new_rule(batch.writer(), seq, &table, name, rule, place);
            }
            report.rules_deleted += edit.delete.len();
            report.rules_added += edit.insert.len();
        }
        for chain in &chains {
            let ours = FirewallChain::from_name(&chain.name);
            if ours.is_some_and(|c| !wanted.iter().any(|w| w.chain == c)) {
                remove_chain(&mut batch, &table, &chain.name);
                report.chains_removed += 1;
            }
        }
        if batch.inner_seqs().is_empty() {
            return Ok(report);
        }
        tracing::debug!(table = %table, ?report, "applying the firewall");
        self.commit(batch)?;
        Ok(report)
    }

    /// The rules of `chain`, in order; none when the chain does not exist.
    fn chain_rules(&mut self, chain: &str) -> Result<Vec<DumpedRule>, BackendError> {
        let table = self.table.clone();
        Ok(self
            .dump_all(
                |w, seq| dump::get_rules(w, seq, &table, chain),
                |m| dump::parse_rule(m, &table, chain),
            )?
            .unwrap_or_default())
    }

    /// Every item a dump request yields, retried when a concurrent change interrupted it;
    /// `None` when what it lists does not exist (`ENOENT`).
    fn dump_all<T>(
        &mut self,
        request: impl Fn(&mut Writer, u32),
        mut parse: impl FnMut(&Message<'_>) -> Result<Option<T>, BackendError>,
    ) -> Result<Option<Vec<T>>, BackendError> {
        for _ in 0..3 {
            let mut w = Writer::new();
            let seq = self.socket.next_seq();
            self.socket.consume_seq(1);
            request(&mut w, seq);
            let mut items = Vec::new();
            let result = self.socket.dump(w.bytes(), seq, |m| {
                items.extend(parse(m)?);
                Ok(())
            })?;
            match result {
                Ok(true) => return Ok(Some(items)),
                Ok(false) => continue,
                Err(Errno::ENOENT) => return Ok(None),
                Err(errno) => return Err(super::dump_error("read the firewall", errno)),
            }
        }
        Err(BackendError::Protocol(
            "firewall dump interrupted three times".into(),
        ))
    }
}

/// Whether an existing chain has the hook, priority and type the firewall chain needs.
fn fits(existing: &DumpedChain, chain: FirewallChain) -> bool {
    let kind = if chain.is_nat() { "nat" } else { "filter" };
    existing.hook.map(|(_, priority)| priority) == Some(chain.priority())
        && existing.hook.map(|(number, _)| number) == Some(encode::hook_number(chain))
        && existing.kind.as_deref() == Some(kind)
}

/// Flushes and deletes a chain (in the caller's batch).
fn remove_chain(batch: &mut Batch<String>, table: &str, name: &str) {
    let seq = batch.push(format!("flush chain {name}"));
    objects::flush_chain(batch.writer(), seq, table, name);
    let seq = batch.push(format!("delete chain {name}"));
    objects::del_chain(batch.writer(), seq, table, name);
}
