//! The host firewall in the core task: its ruleset, its changes, and the confirm-within timer.
//!
//! Receives the firewall's control requests, the outcome of each change (`Report::Firewall`, in
//! order with the banner's other reports), reloads and the core's tick; emits one
//! [`FirewallUpdate`] per change — the firewall the kernel must hold and the state records that
//! make it durable, one transaction — and the replies. The ruleset here is the settled one: a
//! change is swapped in only once the kernel and the disk both took it, so `rule list` never
//! shows what a crash would lose. One change is in flight at a time; requests that arrive
//! meanwhile (or during a reload) wait in order. It never waits inside the core's loop.
//!
//! Lock-out safety: protected rules cannot be deleted (the ruleset refuses); enabling with a
//! default-drop input policy is refused unless a protected accept rule keeps the requester's
//! SSH session (or the admin ports) open; a forward of that port is refused; `enable --confirm-within D` is applied at once but
//! written to the state only by `firewall confirm` — without it, the tick puts the previous
//! state back after D (and a crash meanwhile restarts without it, which is the same rollback).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Core;
use crate::banner::{FirewallUpdate, Msg, OrderError};
use crate::config::{Config, FirewallConfig};
use crate::control::firewall::FirewallCommand;
use crate::control::protocol::firewall::{IpForward, PendingConfirm};
use crate::control::protocol::{ErrorCode, FirewallStatus, ForwardEntry, Reply, RuleEntry};
use crate::state::Record;
use nftjail_backend::{FirewallLayout, FirewallReport};
use nftjail_core::firewall::{Change, FirewallError, Policy, Ruleset, Session, lockout};

/// The firewall's part of the core.
#[derive(Debug, Default)]
pub struct Firewall {
    /// What the kernel and the state hold (a pending enable aside).
    ruleset: Ruleset,
    in_flight: Option<InFlight>,
    /// Requests waiting for the change in flight (or for a reload) to end.
    waiting: VecDeque<(FirewallCommand, oneshot::Sender<Reply>)>,
    /// An enable that is rolled back unless confirmed.
    pending: Option<Pending>,
    /// A reload's configuration that waits for the change in flight.
    deferred_load: Option<Box<Config>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    deadline: Instant,
    /// A `confirm` is on its way: no rollback meanwhile.
    confirming: bool,
}

/// A change sent to the banner.
#[derive(Debug)]
struct InFlight {
    /// The ruleset to swap in once it is applied (`None`: the ruleset stays, only the kernel
    /// changes — a pending enable or its rollback).
    change: Option<Change>,
    what: What,
    reply: Option<oneshot::Sender<Reply>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Enable {
        confirm_within: Option<Duration>,
    },
    /// `pending`: the enable it dropped, put back if the disable does not go through.
    Disable {
        pending: Option<Pending>,
    },
    Confirm,
    Rollback,
    Added,
    Deleted,
    Reload,
}

impl Firewall {
    pub fn new(ruleset: Ruleset) -> Firewall {
        Firewall {
            ruleset,
            ..Firewall::default()
        }
    }

    /// The records that rebuild the settled ruleset (a compaction's snapshot).
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.ruleset.records().into_iter().map(Record::Firewall)
    }
}

/// The reason code of a refused change, so that a client can tell them apart: an id that names
/// nothing (or the other kind) is `unknown_id`; a protected rule, a `firewall.d` entry, a
/// duplicate rule and an overlapping forward have codes of their own.
fn error_code(error: &FirewallError) -> ErrorCode {
    match error {
        FirewallError::NoSuch(_) | FirewallError::NotARule(_) | FirewallError::NotAForward(_) => {
            ErrorCode::UnknownId
        }
        FirewallError::Protected { .. } => ErrorCode::Protected,
        FirewallError::FromFile { .. } => ErrorCode::FromFile,
        FirewallError::Duplicate { .. } => ErrorCode::Duplicate,
        FirewallError::Overlap { .. } => ErrorCode::Overlap,
        FirewallError::ProtectedFromApi => ErrorCode::Refused,
    }
}

/// Whether the filter chains are in force: the API's switch, else `[firewall] enabled`.
pub fn enabled(config: &FirewallConfig, ruleset: &Ruleset) -> bool {
    ruleset.enabled().unwrap_or(config.settings.enabled)
}

/// The firewall the kernel must hold.
pub fn layout(config: &FirewallConfig, ruleset: &Ruleset, enabled: bool) -> FirewallLayout {
    FirewallLayout {
        enabled,
        input: config.settings.default_input,
        output: config.settings.default_output,
        forward: config.settings.default_forward,
        rules: ruleset
            .rules()
            .iter()
            .map(|e| (e.id, e.item.clone()))
            .collect(),
        forwards: ruleset
            .forwards()
            .iter()
            .map(|e| (e.id, e.item.clone()))
            .collect(),
    }
}

/// Refuses an on firewall with a default-drop input policy that would lock the administrator
/// out (`session`: the SSH session a request came over).
pub fn check_lockout(
    config: &FirewallConfig,
    ruleset: &Ruleset,
    enabled: bool,
    session: Option<Session>,
) -> Result<(), lockout::Lockout> {
    if !enabled || config.settings.default_input != Policy::Drop {
        return Ok(());
    }
    lockout::check(ruleset.rules(), session, &config.settings.admin_ports)
}

/// Whether the kernel forwards IPv4 and IPv6 packets (forwards need it).
pub fn ip_forward() -> IpForward {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|text| text.trim() != "0")
    };
    IpForward {
        ipv4: read("/proc/sys/net/ipv4/ip_forward"),
        ipv6: read("/proc/sys/net/ipv6/conf/all/forwarding"),
    }
}

/// The warnings forwards deserve when the kernel does not forward their family.
pub fn forwarding_warnings(ruleset: &Ruleset, forward: IpForward) -> Vec<String> {
    let mut warnings = Vec::new();
    let has = |v4: bool| ruleset.forwards().iter().any(|f| f.item.to.is_ipv4() == v4);
    if has(true) && forward.ipv4 == Some(false) {
        warnings.push(
            "net.ipv4.ip_forward is 0: IPv4 forwards do not pass until it is 1 (nftjail does not change it; `sysctl -w net.ipv4.ip_forward=1` and a file in /etc/sysctl.d)".to_string(),
        );
    }
    if has(false) && forward.ipv6 == Some(false) {
        warnings.push(
            "net.ipv6.conf.all.forwarding is 0: IPv6 forwards do not pass until it is 1 (nftjail does not change it)".to_string(),
        );
    }
    warnings
}

impl Core {
    /// A firewall request from the control socket.
    pub(super) fn firewall_call(
        &mut self,
        command: FirewallCommand,
        reply: oneshot::Sender<Reply>,
    ) {
        if command.reads() {
            let _ = reply.send(self.firewall_read(&command));
            return;
        }
        if self.firewall.in_flight.is_some() || self.reload.running() {
            self.firewall.waiting.push_back((command, reply));
            return;
        }
        self.firewall_change(command, reply);
    }

    fn firewall_read(&self, command: &FirewallCommand) -> Reply {
        let ruleset = &self.firewall.ruleset;
        match command {
            FirewallCommand::Rules => Reply {
                rules: Some(ruleset.rules().iter().map(RuleEntry::from).collect()),
                ..Reply::ok()
            },
            FirewallCommand::Forwards => Reply {
                forwards: Some(ruleset.forwards().iter().map(ForwardEntry::from).collect()),
                warnings: forwarding_warnings(ruleset, ip_forward()),
                ..Reply::ok()
            },
            _ => self.firewall_status_reply(),
        }
    }

    fn firewall_status_reply(&self) -> Reply {
        let config = &self.config.firewall;
        let ruleset = &self.firewall.ruleset;
        let forward = ip_forward();
        let now = Instant::now();
        let status = FirewallStatus {
            enabled: self.firewall_enabled(),
            enabled_by: match ruleset.enabled() {
                Some(_) => "api",
                None => "config",
            }
            .to_string(),
            default_input: config.settings.default_input.name().to_string(),
            default_output: config.settings.default_output.name().to_string(),
            default_forward: config.settings.default_forward.name().to_string(),
            admin_ports: config.settings.admin_ports.clone(),
            rules: ruleset.rules().len(),
            forwards: ruleset.forwards().len(),
            pending: self.firewall.pending.as_ref().map(|p| PendingConfirm {
                rollback_in: p.deadline.saturating_duration_since(now).as_secs(),
            }),
            ip_forward: forward,
        };
        Reply {
            firewall: Some(status),
            warnings: forwarding_warnings(ruleset, forward),
            ..Reply::ok()
        }
    }

    /// Whether the filter chains are in force now (a pending enable included).
    fn firewall_enabled(&self) -> bool {
        self.firewall.pending.is_some() || enabled(&self.config.firewall, &self.firewall.ruleset)
    }

    /// Starts a change: checks it, sends it to the banner, answers when its outcome comes back.
    fn firewall_change(&mut self, command: FirewallCommand, reply: oneshot::Sender<Reply>) {
        let config = self.config.firewall.clone();
        let ruleset = &self.firewall.ruleset.clone();
        let persisted = enabled(&config, ruleset);
        let refuse = |reply: oneshot::Sender<Reply>, code: ErrorCode, message: String| {
            let _ = reply.send(Reply::refuse(code, message));
        };
        let refused = |reply: oneshot::Sender<Reply>, error: FirewallError| {
            let _ = reply.send(Reply::refuse(error_code(&error), error.to_string()));
        };
        let (change, what, kernel_enabled) = match command {
            FirewallCommand::Enable {
                confirm_within,
                session,
            } => {
                if self.firewall.pending.is_some() {
                    return refuse(
                        reply,
                        ErrorCode::Pending,
                        "an enable waits for `nftjail firewall confirm`; confirm it or let it roll back first".into(),
                    );
                }
                if let Err(lockout) = check_lockout(&config, ruleset, true, session) {
                    return refuse(reply, ErrorCode::Lockout, format!("refused: {lockout}"));
                }
                match confirm_within {
                    Some(_) if persisted => {
                        return refuse(
                            reply,
                            ErrorCode::AlreadyEnabled,
                            "the firewall is already on: nothing to confirm".into(),
                        );
                    }
                    Some(within) => {
                        self.firewall.pending = Some(Pending {
                            deadline: Instant::now() + within,
                            confirming: false,
                        });
                        (
                            None,
                            What::Enable {
                                confirm_within: Some(within),
                            },
                            true,
                        )
                    }
                    None => (
                        Some(ruleset.set_enabled(true)),
                        What::Enable {
                            confirm_within: None,
                        },
                        true,
                    ),
                }
            }
            FirewallCommand::Disable => {
                // A pending enable is dropped with it.
                let pending = self.firewall.pending.take();
                (
                    Some(ruleset.set_enabled(false)),
                    What::Disable { pending },
                    false,
                )
            }
            FirewallCommand::Confirm => match &mut self.firewall.pending {
                Some(pending) => {
                    pending.confirming = true;
                    (Some(ruleset.set_enabled(true)), What::Confirm, true)
                }
                None => {
                    return refuse(
                        reply,
                        ErrorCode::NotPending,
                        "nothing to confirm: no enable is waiting".into(),
                    );
                }
            },
            FirewallCommand::AddRule(rule) => match ruleset.add_rule(rule) {
                Ok(change) => (Some(change), What::Added, self.firewall_enabled()),
                Err(e) => return refused(reply, e),
            },
            FirewallCommand::DeleteRule(id) => match ruleset.delete_rule(id) {
                Ok(change) => (Some(change), What::Deleted, self.firewall_enabled()),
                Err(e) => return refused(reply, e),
            },
            FirewallCommand::AddForward { forward, session } => {
                let admin = &config.settings.admin_ports;
                if let Err(lockout) = lockout::check_forward(&forward, session, admin) {
                    return refuse(reply, ErrorCode::Lockout, format!("refused: {lockout}"));
                }
                match ruleset.add_forward(forward) {
                    Ok(change) => (Some(change), What::Added, self.firewall_enabled()),
                    Err(e) => return refused(reply, e),
                }
            }
            FirewallCommand::DeleteForward(id) => match ruleset.delete_forward(id) {
                Ok(change) => (Some(change), What::Deleted, self.firewall_enabled()),
                Err(e) => return refused(reply, e),
            },
            FirewallCommand::Status | FirewallCommand::Rules | FirewallCommand::Forwards => {
                let _ = reply.send(self.firewall_read(&command));
                return;
            }
        };
        self.firewall_send(change, what, kernel_enabled, Some(reply));
    }

    /// Sends the kernel the firewall of `change` (or of the current ruleset), on or off.
    fn firewall_send(
        &mut self,
        change: Option<Change>,
        what: What,
        kernel_enabled: bool,
        reply: Option<oneshot::Sender<Reply>>,
    ) {
        let ruleset = change
            .as_ref()
            .map_or(&self.firewall.ruleset, |c| &c.ruleset);
        let update = FirewallUpdate {
            layout: layout(&self.config.firewall, ruleset, kernel_enabled),
            records: change
                .iter()
                .flat_map(|c| c.records.iter().cloned().map(Record::Firewall))
                .collect(),
        };
        self.firewall.in_flight = Some(InFlight {
            change,
            what,
            reply,
        });
        self.push(Msg::Firewall(Box::new(update)));
    }

    /// A reload's firewall part: the `firewall.d` entries of `new` merged into the ruleset,
    /// checked against a lock-out. The change travels with the reload's layout.
    pub(super) fn firewall_for_reload(&mut self, new: &Config) -> Result<FirewallUpdate, String> {
        let change = self
            .firewall
            .ruleset
            .with_files(&new.firewall.rules, &new.firewall.forwards);
        let on = self.firewall.pending.is_some() || enabled(&new.firewall, &change.ruleset);
        if let Err(lockout) = check_lockout(&new.firewall, &change.ruleset, on, None) {
            return Err(format!("reload refused: {lockout}"));
        }
        let update = FirewallUpdate {
            layout: layout(&new.firewall, &change.ruleset, on),
            records: change
                .records
                .iter()
                .cloned()
                .map(Record::Firewall)
                .collect(),
        };
        self.firewall.in_flight = Some(InFlight {
            change: Some(change),
            what: What::Reload,
            reply: None,
        });
        Ok(update)
    }

    /// Whether a loaded configuration must wait for the firewall change in flight; it is kept
    /// and taken up again when that change ends.
    pub(super) fn firewall_defers_load(&mut self, new: Box<Config>) -> Option<Box<Config>> {
        if self.firewall.in_flight.is_none() {
            return Some(new);
        }
        self.firewall.deferred_load = Some(new);
        None
    }

    /// The outcome of the change in flight.
    pub(super) fn firewall_settled(&mut self, result: Result<FirewallReport, OrderError>) {
        let Some(flight) = self.firewall.in_flight.take() else {
            tracing::warn!("a firewall outcome without a change in flight");
            return;
        };
        let applied = result.is_ok();
        if let Err(e) = &result {
            tracing::error!(error = %e, change = ?flight.what, "firewall change not applied");
        }
        match flight.what {
            What::Confirm => match &mut self.firewall.pending {
                Some(p) if !applied => p.confirming = false,
                _ if applied => self.firewall.pending = None,
                _ => {}
            },
            What::Enable {
                confirm_within: Some(_),
            } if !applied => self.firewall.pending = None,
            What::Disable { pending } if !applied => self.firewall.pending = pending,
            What::Rollback if applied => {
                tracing::warn!("the firewall enable was not confirmed in time: rolled back");
            }
            // Tried again at the next tick.
            What::Rollback => {
                self.firewall.pending = Some(Pending {
                    deadline: Instant::now(),
                    confirming: false,
                })
            }
            _ => {}
        }
        let id = flight.change.as_ref().and_then(|c| c.id);
        if applied && let Some(change) = flight.change {
            self.firewall.ruleset = change.ruleset;
        }
        if let Some(reply) = flight.reply {
            let answer = match result {
                Ok(_) => self.firewall_answer(flight.what, id),
                Err(e) => Reply::refuse(ErrorCode::Failed, format!("not applied: {e}")),
            };
            let _ = reply.send(answer);
        }
        self.firewall_next();
    }

    fn firewall_answer(&self, what: What, id: Option<u64>) -> Reply {
        match what {
            What::Added | What::Deleted => Reply {
                id,
                warnings: forwarding_warnings(&self.firewall.ruleset, ip_forward()),
                ..Reply::ok()
            },
            What::Enable { .. }
            | What::Disable { .. }
            | What::Confirm
            | What::Rollback
            | What::Reload => self.firewall_status_reply(),
        }
    }

    /// Takes up what waited: a rollback that fell due, a deferred reload, the next request.
    pub(super) fn firewall_next(&mut self) {
        if self.firewall.in_flight.is_some() {
            return;
        }
        if let Some(new) = self.firewall.deferred_load.take() {
            return self.loaded(Ok(new));
        }
        if self.reload.running() {
            return;
        }
        if self.firewall_rollback_due() {
            return self.firewall_rollback();
        }
        if let Some((command, reply)) = self.firewall.waiting.pop_front() {
            self.firewall_change(command, reply);
        }
    }

    fn firewall_rollback_due(&self) -> bool {
        self.firewall
            .pending
            .as_ref()
            .is_some_and(|p| !p.confirming && Instant::now() >= p.deadline)
    }

    /// Each second: an unconfirmed enable whose time ran out is rolled back.
    pub(super) fn firewall_tick(&mut self) {
        if self.firewall_rollback_due()
            && self.firewall.in_flight.is_none()
            && !self.reload.running()
        {
            self.firewall_rollback();
        }
    }

    fn firewall_rollback(&mut self) {
        self.firewall.pending = None;
        let persisted = enabled(&self.config.firewall, &self.firewall.ruleset);
        self.firewall_send(None, What::Rollback, persisted, None);
    }
}
