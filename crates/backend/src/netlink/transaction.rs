//! Element changes as nf_tables transactions: packing, sending, and mapping errors back.
//!
//! Receives a slice of [`Change`]s; emits batches of at most `changes_per_transaction` changes,
//! where consecutive changes of one kind to one set share a message (up to
//! `elements_per_message` and 60 KiB), and reports which leading changes are committed. A
//! `Refresh` is a delete and an add of the same elements in one transaction, so it resets the
//! timeout even on kernels without element-timeout update.
//!
//! When the kernel refuses a transaction it aborts all of it and answers an errno per refused
//! message. A refused message of several elements is pinned down by a probe: the same
//! transaction again with one change per message. A `Refresh` whose delete failed with
//! `ENOENT` (the element expired or was deleted) is retried as a plain add; any other refusal
//! stops `apply`: the changes before it are committed, the others are not. It never sends a
//! change twice into the kernel in a committed transaction.

use std::ops::Range;

use nix::errno::Errno;

use super::batch::Batch;
use super::elements::{self, ELEMENTS_BUDGET, ElementOp};
use super::socket::Socket;
use crate::{ApplyError, BackendError, Change, SetKind, set_name};
use nftjail_core::addr::BanTarget;

/// How element changes are cut into messages and transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub elements_per_message: usize,
    pub changes_per_transaction: usize,
}

impl Default for Limits {
    /// Measured on kernel 6.18 (see benches/README.md).
    fn default() -> Limits {
        Limits {
            elements_per_message: 2_000,
            changes_per_transaction: 5_000,
        }
    }
}

/// What one element message of a batch carries.
#[derive(Debug, Clone)]
struct Part {
    op: ElementOp,
    /// Indexes into the transaction's changes.
    changes: Range<usize>,
}

/// The first refused change of a transaction and why.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    index: usize,
    op: ElementOp,
    errno: Errno,
    /// Size of the batch it came in.
    batch_bytes: usize,
}

/// Applies `changes` to `table`; see the module doc.
pub fn apply(
    socket: &mut Socket,
    table: &str,
    limits: Limits,
    changes: &[Change],
) -> Result<(), ApplyError> {
    let per_tx = limits.changes_per_transaction.max(1);
    let mut committed = 0;
    while committed < changes.len() {
        let end = (committed + per_tx).min(changes.len());
        let mut tx: Vec<Change> = changes[committed..end].to_vec();
        match commit(socket, table, limits, &mut tx) {
            Ok(()) => committed = end,
            Err((done, error)) => {
                return Err(ApplyError {
                    committed: committed + done,
                    error,
                });
            }
        }
    }
    Ok(())
}

/// Commits one transaction, retrying what is retryable; on failure returns how many of its
/// leading changes are committed and the error of the first refused one.
fn commit(
    socket: &mut Socket,
    table: &str,
    limits: Limits,
    tx: &mut Vec<Change>,
) -> Result<(), (usize, BackendError)> {
    const ATTEMPTS: usize = 6;
    // The error of the first refused change; `tx` is then cut just before it.
    let mut stop: Option<BackendError> = None;
    for _ in 0..ATTEMPTS {
        if tx.is_empty() {
            break;
        }
        let mut sent = send(socket, table, limits, tx, false).map_err(|e| (0, e))?;
        if let Sent::Ambiguous = sent {
            // A refused message carried several changes: find which with a probe. The probe
            // is a real attempt: if the kernel's state moved meanwhile, it commits.
            sent = send(socket, table, limits, tx, true).map_err(|e| (0, e))?;
        }
        let mut refusals = match sent {
            Sent::Committed => {
                return match stop {
                    None => Ok(()),
                    Some(error) => Err((tx.len(), error)),
                };
            }
            Sent::Refused(refusals) => refusals,
            Sent::Ambiguous => {
                let error = BackendError::Protocol("a probe batch stayed ambiguous".into());
                return Err((0, error));
            }
        };
        refusals.sort_by_key(|r| r.index);
        let first = refusals[0];
        if retryable(&tx[first.index], first) {
            for refusal in &refusals {
                if !retryable(&tx[refusal.index], *refusal) {
                    continue;
                }
                let Change::Refresh {
                    jail,
                    target,
                    timeout,
                } = &tx[refusal.index]
                else {
                    continue;
                };
                tracing::debug!(jail = %jail, target = %target, "refresh of a missing element: adding it");
                tx[refusal.index] = Change::Add {
                    jail: jail.clone(),
                    target: *target,
                    timeout: *timeout,
                };
            }
            continue;
        }
        let change = &tx[first.index];
        tracing::debug!(
            jail = %change.jail(),
            target = %change.target(),
            errno = %first.errno,
            "change refused"
        );
        stop = Some(refusal_error(socket, table, change, first));
        // Commit the changes before the refused one, then report it.
        tx.truncate(first.index);
    }
    // Nothing of this transaction is in the kernel.
    let error = stop.unwrap_or_else(|| {
        BackendError::Protocol(format!(
            "transaction still refused after {ATTEMPTS} attempts"
        ))
    });
    Err((0, error))
}

/// A `Refresh` whose delete found nothing: it is retried as an add.
fn retryable(change: &Change, refusal: Refusal) -> bool {
    matches!(
        (change, refusal.op, refusal.errno),
        (Change::Refresh { .. }, ElementOp::Delete, Errno::ENOENT)
    )
}

/// What became of one batch.
enum Sent {
    Committed,
    /// Refused; every refused message carried one change (at least one refusal).
    Refused(Vec<Refusal>),
    /// Refused in a message of several changes.
    Ambiguous,
}

/// Sends `tx` as one batch (`probe`: one change per message).
fn send(
    socket: &mut Socket,
    table: &str,
    limits: Limits,
    tx: &[Change],
    probe: bool,
) -> Result<Sent, BackendError> {
    let per_message = if probe {
        1
    } else {
        limits.elements_per_message.max(1)
    };
    let mut batch = build(socket.next_seq(), table, tx, per_message);
    socket.consume_seq(batch.seqs_used());
    if batch.writer().overflowed() {
        return Err(BackendError::MessageTooLarge {
            bytes: batch.writer().len(),
        });
    }
    let (begin, inner) = (batch.begin_seq(), batch.inner_seqs());
    let bytes = batch.finish();
    let batch_bytes = bytes.len();
    let outcome = socket.transact(bytes, begin, &inner)?;
    if outcome.committed() {
        tracing::debug!(elements = tx.len(), probe, "transaction committed");
        return Ok(Sent::Committed);
    }
    let mut refusals = Vec::new();
    let mut ambiguous = false;
    for (seq, errno) in &outcome.errors {
        let Some(part) = batch.label(*seq) else {
            // The batch as a whole was refused.
            let operation = "send an element batch".to_string();
            return Err(match errno {
                Errno::EPERM | Errno::EACCES => BackendError::Permission { operation },
                errno => BackendError::Kernel {
                    operation,
                    errno: *errno,
                },
            });
        };
        if part.changes.len() == 1 {
            refusals.push(Refusal {
                index: part.changes.start,
                op: part.op,
                errno: *errno,
                batch_bytes,
            });
        } else {
            ambiguous = true;
        }
    }
    Ok(if ambiguous || refusals.is_empty() {
        Sent::Ambiguous
    } else {
        Sent::Refused(refusals)
    })
}

/// Upper bound of the bytes one change adds to an element list.
fn element_bytes(target: &BanTarget) -> usize {
    let key = match target.family() {
        nftjail_core::addr::Family::V4 => 4,
        nftjail_core::addr::Family::V6 => 16,
    };
    let one = 4 + 12 + 4 + 4 + key; // list elem, timeout, key nest, data value
    match target {
        BanTarget::Addr(_) => one,
        BanTarget::Net(_) => 2 * one,
    }
}

fn kind_class(change: &Change) -> u8 {
    match change {
        Change::Add { .. } => 0,
        Change::Refresh { .. } => 1,
        Change::Remove { .. } => 2,
    }
}

/// Builds the batch of `tx`: runs of same-kind changes to one set, cut into messages.
fn build(first_seq: u32, table: &str, tx: &[Change], per_message: usize) -> Batch<Part> {
    let mut batch = Batch::new(first_seq);
    let mut start = 0;
    while start < tx.len() {
        let set = set_name(tx[start].jail(), SetKind::of(tx[start].target()));
        let class = kind_class(&tx[start]);
        let mut end = start;
        let mut bytes = 0;
        while end < tx.len()
            && end - start < per_message
            && kind_class(&tx[end]) == class
            && tx[end].jail() == tx[start].jail()
            && SetKind::of(tx[end].target()) == SetKind::of(tx[start].target())
        {
            let size = element_bytes(tx[end].target());
            if bytes + size > ELEMENTS_BUDGET {
                break;
            }
            bytes += size;
            end += 1;
        }
        let ops: &[ElementOp] = match tx[start] {
            Change::Add { .. } => &[ElementOp::Add],
            Change::Remove { .. } => &[ElementOp::Delete],
            Change::Refresh { .. } => &[ElementOp::Delete, ElementOp::Add],
        };
        for op in ops {
            let seq = batch.push(Part {
                op: *op,
                changes: start..end,
            });
            let starts = elements::begin_message(batch.writer(), seq, *op, table, &set);
            for change in &tx[start..end] {
                let timeout = match change {
                    Change::Add { timeout, .. } | Change::Refresh { timeout, .. } => *timeout,
                    Change::Remove { .. } => None,
                };
                elements::encode(batch.writer(), change.target(), *op, timeout);
            }
            elements::end_message(batch.writer(), starts);
        }
        start = end;
    }
    batch
}

/// The typed error of a refused change.
fn refusal_error(
    socket: &mut Socket,
    table: &str,
    change: &Change,
    refusal: Refusal,
) -> BackendError {
    let (jail, target) = (change.jail().clone(), *change.target());
    let set = set_name(&jail, SetKind::of(&target));
    match (refusal.errno, refusal.op, target) {
        (Errno::EPERM | Errno::EACCES, _, _) => BackendError::Permission {
            operation: format!("change elements of set {set}"),
        },
        (Errno::EMSGSIZE, _, _) => BackendError::MessageTooLarge {
            bytes: refusal.batch_bytes,
        },
        (Errno::ENOENT, _, _) if !super::table_exists(socket, table).unwrap_or(true) => {
            BackendError::NoSuchTable {
                table: table.to_string(),
            }
        }
        (Errno::ENOENT, ElementOp::Add, _) => BackendError::Kernel {
            operation: format!("add an element to set {set} (no such set)"),
            errno: Errno::ENOENT,
        },
        // Interval sets answer an overlap with EEXIST (ENOTEMPTY inside the kernel).
        (Errno::EEXIST | Errno::ENOTEMPTY, ElementOp::Add, BanTarget::Net(_)) => {
            BackendError::Overlap { jail, target }
        }
        (errno, _, _) => BackendError::ElementRefused {
            jail,
            target,
            errno,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::message::{Attrs, messages};
    use super::*;

    fn add(jail: &str, target: &str) -> Change {
        Change::Add {
            jail: jail.parse().unwrap(),
            target: target.parse().unwrap(),
            timeout: Some(Duration::from_secs(60)),
        }
    }

    /// `(message type, set name, element count, seq)` of every inner message.
    fn shape(batch: &mut Batch<Part>) -> Vec<(u16, String, usize)> {
        let bytes = batch.finish().to_vec();
        messages(&bytes)
            .map(Result::unwrap)
            .filter(|m| m.kind >> 8 == 10)
            .map(|m| {
                let attrs: Vec<_> = m.nft_attrs().unwrap().map(Result::unwrap).collect();
                let set = String::from_utf8(attrs[1].1.to_vec()).unwrap();
                let count = Attrs::new(attrs[2].1).count();
                (m.kind & 0xff, set.trim_end_matches('\0').to_string(), count)
            })
            .collect()
    }

    #[test]
    fn runs_share_messages_and_refresh_is_delete_then_add() {
        let refresh = Change::Refresh {
            jail: "sshd".parse().unwrap(),
            target: "10.0.0.0/8".parse().unwrap(),
            timeout: None,
        };
        let remove = Change::Remove {
            jail: "sshd".parse().unwrap(),
            target: "192.0.2.9".parse().unwrap(),
        };
        let tx = vec![
            add("sshd", "192.0.2.1"),
            add("sshd", "192.0.2.2"),
            add("sshd", "2001:db8::1"),
            add("web", "192.0.2.3"),
            refresh,
            remove,
        ];
        let mut batch = build(1, "nftjail", &tx, 2000);
        // NEWSETELEM = 12, DELSETELEM = 14; a prefix counts two list elements.
        assert_eq!(
            shape(&mut batch),
            vec![
                (12, "sshd_v4".into(), 2),
                (12, "sshd_v6".into(), 1),
                (12, "web_v4".into(), 1),
                (14, "sshd_net4".into(), 2),
                (12, "sshd_net4".into(), 2),
                (14, "sshd_v4".into(), 1),
            ]
        );
        assert_eq!(batch.label(5).unwrap().changes, 4..5);
        assert_eq!(batch.label(5).unwrap().op, ElementOp::Delete);
    }

    #[test]
    fn messages_are_cut_by_count_and_by_bytes() {
        let tx: Vec<Change> = (0..5000u32)
            .map(|i| {
                add(
                    "sshd",
                    &std::net::Ipv4Addr::from(0xc000_0000 + i).to_string(),
                )
            })
            .collect();
        let mut batch = build(1, "nftjail", &tx, 2000);
        let counts: Vec<usize> = shape(&mut batch).iter().map(|s| s.2).collect();
        assert_eq!(counts, vec![2000, 2000, 1000]);

        let tx: Vec<Change> = (0..3000u32)
            .map(|i| add("sshd", &format!("2001:db8::{i:x}")))
            .collect();
        let mut batch = build(1, "nftjail", &tx, 2000);
        assert!(!batch.writer().overflowed());
        let counts: Vec<usize> = shape(&mut batch).iter().map(|s| s.2).collect();
        assert_eq!(counts, vec![1536, 1464], "v6 elements are cut at 60 KiB");

        let mut probe = build(1, "nftjail", &tx[..3], 1);
        assert_eq!(
            shape(&mut probe).len(),
            3,
            "a probe has one change per message"
        );
    }
}
