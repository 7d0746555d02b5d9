//! The control socket's requests, as the core answers them.
//!
//! Receives [`Call`]s (status, banned, ban, unban, reload; the firewall's go to `firewall`);
//! emits replies and orders. Read-only
//! requests are answered at once from the tracker's *settled* view (what the kernel and the state
//! hold). A ban or an unban becomes orders plus a [`Tickets`] entry, and its reply goes out when
//! the last of its orders is settled — after the core took the outcome in, so a `banned` sent
//! after the reply always sees the ban. It never waits inside the core's loop.

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::Core;
use crate::banner::OrderError;
use crate::config::BanTime;
use crate::control::protocol::{ErrorCode, Rejected, Reply};
use crate::control::{Call, Command};
use crate::daemon::status;
use nftjail_core::addr::BanTarget;
use nftjail_core::tracker::{Action, Order, OrderId};

/// A client waiting for the outcome of its orders.
struct Ticket {
    reply: oneshot::Sender<Reply>,
    /// Orders not settled yet.
    left: usize,
    banned: usize,
    refreshed: usize,
    unbanned: Vec<(String, String)>,
    errors: Vec<String>,
    rejected: Vec<Rejected>,
    /// An unban (its reply lists what was removed) rather than a ban.
    unban: bool,
    /// An import: bans left as they were (`Some` only for imports).
    kept: Option<usize>,
}

/// Clients waiting for orders, by order.
#[derive(Default)]
pub struct Tickets {
    next: u64,
    by_order: HashMap<OrderId, u64>,
    open: HashMap<u64, Ticket>,
}

impl Tickets {
    pub(super) fn open(
        &mut self,
        orders: &[Order],
        reply: oneshot::Sender<Reply>,
        rejected: Vec<Rejected>,
        unban: bool,
    ) {
        self.open_with(orders, reply, rejected, unban, None);
    }

    /// Opens a ticket; `kept` (imports) goes into its reply.
    pub(super) fn open_with(
        &mut self,
        orders: &[Order],
        reply: oneshot::Sender<Reply>,
        rejected: Vec<Rejected>,
        unban: bool,
        kept: Option<usize>,
    ) {
        self.next += 1;
        let id = self.next;
        for order in orders {
            self.by_order.insert(order.id, id);
        }
        self.open.insert(
            id,
            Ticket {
                reply,
                left: orders.len(),
                banned: 0,
                refreshed: 0,
                unbanned: Vec::new(),
                errors: Vec::new(),
                rejected,
                unban,
                kept,
            },
        );
    }

    /// Takes the outcome of `order`; answers its client when it was the last one.
    pub fn settle(&mut self, order: &Order, result: &Result<(), OrderError>) {
        let Some(id) = self.by_order.remove(&order.id) else {
            return;
        };
        let Some(ticket) = self.open.get_mut(&id) else {
            return;
        };
        ticket.left -= 1;
        match result {
            Ok(()) => match order.action {
                Action::Ban if order.fresh => ticket.banned += 1,
                Action::Refresh => ticket.refreshed += 1,
                Action::Unban | Action::Forget if ticket.unban => ticket
                    .unbanned
                    .push((order.ban.jail.to_string(), order.ban.target.to_string())),
                _ => {}
            },
            Err(e) => ticket
                .errors
                .push(format!("{} in {}: {e}", order.ban.target, order.ban.jail)),
        }
        if ticket.left == 0 {
            let (reply, answer) = self
                .open
                .remove(&id)
                .expect("invariant: just seen")
                .answer();
            let _ = reply.send(answer);
        }
    }

    /// The daemon is stopping: every waiting client is told so.
    pub fn abandon(&mut self) {
        self.by_order.clear();
        for (_, t) in self.open.drain() {
            let _ = t
                .reply
                .send(Reply::refuse(ErrorCode::Stopping, "the daemon is stopping"));
        }
    }
}

impl Ticket {
    /// The reply to send, and where.
    fn answer(self) -> (oneshot::Sender<Reply>, Reply) {
        let failed = self.errors.len();
        let mut reply = match self.errors.first() {
            Some(e) if self.unban => Reply::refuse(ErrorCode::Failed, format!("unban failed: {e}")),
            Some(e) => Reply::refuse(ErrorCode::Failed, format!("{failed} ban(s) failed: {e}")),
            None => Reply::ok(),
        };
        if self.unban {
            reply.unbanned = Some(self.unbanned);
        } else {
            reply.banned = Some(self.banned);
            reply.refreshed = Some(self.refreshed);
            reply.rejected = self.rejected;
            reply.kept = self.kept;
        }
        (self.reply, reply)
    }
}

impl Core {
    pub(super) fn call(&mut self, call: Call) {
        let Call { command, reply } = call;
        let answer = match command {
            Command::Status { jail: None } => {
                let mut reply = status::summary(&self.config, &self.tracker);
                reply.cluster = self.cluster_status();
                reply
            }
            Command::Status { jail: Some(name) } => {
                status::detail(&self.config, &self.tracker, &self.sources, &name)
            }
            Command::Banned { jail } => {
                let generation = self.tracker.generation();
                self.banned_cache
                    .reply(generation, &self.tracker, jail.as_deref())
            }
            Command::Log { jail, since, after } => self.log_reply(jail, since, after),
            Command::Reload => return self.reload_requested(reply),
            Command::Ban {
                jail,
                targets,
                length,
                rejected,
            } => return self.ban(jail, targets, length, rejected, reply),
            Command::Unban { target, jail, all } => {
                return self.unban(target, jail, all, reply);
            }
            Command::Firewall(command) => return self.firewall_call(command, reply),
            Command::Import { bans, rejected } => return self.import(bans, rejected, reply),
        };
        let _ = reply.send(answer);
    }

    fn ban(
        &mut self,
        jail: String,
        targets: Vec<BanTarget>,
        length: Option<BanTime>,
        mut rejected: Vec<Rejected>,
        reply: oneshot::Sender<Reply>,
    ) {
        let jail = match status::enabled_jail(&self.config, &jail) {
            Ok(j) => j,
            Err(e) => {
                let _ = reply.send(Reply::refuse(ErrorCode::UnknownJail, e));
                return;
            }
        };
        self.follow_host_addresses();
        let now = (self.clock)();
        let unparsed = rejected.len();
        let mut orders = Vec::with_capacity(targets.len());
        for target in targets {
            match self.tracker.ban(&jail, target, length, now) {
                Ok(o) => orders.extend(o),
                Err(refusal) => rejected.push(Rejected {
                    line: 0,
                    text: target.to_string(),
                    error: refusal.to_string(),
                }),
            }
        }
        if orders.is_empty() {
            let error = rejected
                .first()
                .map_or_else(|| "nothing to ban".to_string(), |r| r.error.clone());
            // Refused by the tracker (ignored, covered), or only lines that did not parse.
            let code = match rejected.len() {
                n if n > unparsed => ErrorCode::Refused,
                0 => ErrorCode::BadRequest,
                _ => ErrorCode::InvalidAddress,
            };
            let _ = reply.send(Reply {
                rejected,
                ..Reply::refuse(code, error)
            });
            return;
        }
        self.tickets.open(&orders, reply, rejected, false);
        self.send(orders);
    }

    fn unban(
        &mut self,
        target: Option<BanTarget>,
        jail: Option<String>,
        all: bool,
        reply: oneshot::Sender<Reply>,
    ) {
        // A parked jail (disabled or removed, its bans kept) can be emptied with `--all`.
        let jail = match jail {
            None => None,
            Some(name) => match status::enabled_jail(&self.config, &name) {
                Ok(j) => Some(j),
                Err(e) => match name.parse() {
                    Ok(j) if all && self.tracker.parked_in(&j) > 0 => Some(j),
                    _ => {
                        let _ = reply.send(Reply::refuse(ErrorCode::UnknownJail, e));
                        return;
                    }
                },
            },
        };
        let orders = match (&target, &jail) {
            (_, Some(j)) if all => self.tracker.unban_jail(j),
            (Some(t), j) => self.tracker.unban(t, j.as_ref()),
            (None, _) => Vec::new(),
        };
        if orders.is_empty() {
            let what = target.map_or_else(|| "nothing".to_string(), |t| t.to_string());
            let place = jail.map_or_else(|| "any jail".to_string(), |j| format!("jail {j}"));
            let _ = reply.send(Reply::refuse(
                ErrorCode::NotBanned,
                format!("{what} is not banned in {place}"),
            ));
            return;
        }
        if !all {
            self.mark_unbans(&orders);
        }
        self.tickets.open(&orders, reply, Vec::new(), true);
        self.send(orders);
    }
}
