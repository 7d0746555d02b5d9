//! The core's side of the fleet: peers' bans in, settled local bans out.
//!
//! Receives [`PeerBatch`]es (decisions already checked by the fleet task) and the settlements
//! of local orders; emits orders for the `apply_to` jail (through the tracker, with
//! `Origin::Fleet(node)`, the local ignore lists applying), the stream position behind them
//! (so it is durable with the bans it caused), and the messages of bans and administrators'
//! unbans settled here, to the fleet task. It never waits: a full channel to the fleet task
//! drops the message and counts it. It never publishes a ban that came from the fleet, nor
//! an adopted one, nor one of a jail `publish` leaves out.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Core;
use crate::banner::Msg;
use crate::fleet::{PeerBatch, position_key};
use crate::state::Position;
use nftjail_core::duration::BanTime;
use nftjail_core::fleet::{BanMessage, PeerDecision, Rejection};
use nftjail_core::tracker::{Ban, Order, OrderId, Origin};

/// Refusals of peers' bans logged one by one per batch; the rest are summed up.
const LOG_EACH_UP_TO: usize = 10;

impl Core {
    /// Enters peers' decisions into the `apply_to` jail, then moves the stream position.
    pub(super) fn peer_batch(&mut self, batch: PeerBatch) {
        let Some(fleet) = &self.fleet else { return };
        let apply_to = fleet.config.apply_to.clone();
        let stats = fleet.stats.clone();
        let key = position_key(&fleet.config);
        self.follow_host_addresses();
        let now = (self.clock)();
        let mut orders = Vec::new();
        let mut refused = 0;
        for decision in batch.decisions {
            match decision {
                PeerDecision::Ban {
                    node,
                    target,
                    expires,
                    message,
                } => {
                    let incoming = Ban {
                        jail: apply_to.clone(),
                        target,
                        since: now,
                        expires,
                        count: 0,
                        origin: Origin::Fleet(node.clone()),
                    };
                    // Already here for as long (a message read again after a restart, or the
                    // same attacker banned by two peers): nothing to do.
                    if let Some(present) = self.tracker.bans().get(&apply_to, &target)
                        && present.outlasts(&incoming)
                    {
                        continue;
                    }
                    let length = match expires {
                        None => BanTime::Permanent,
                        Some(e) => BanTime::For(Duration::from_secs(
                            u64::try_from(e - now).unwrap_or(1).max(1),
                        )),
                    };
                    match self.tracker.decide(
                        &apply_to,
                        target,
                        Some(length),
                        Origin::Fleet(node.clone()),
                        now,
                    ) {
                        Ok(o) => {
                            stats.applied.fetch_add(1, Ordering::Relaxed);
                            orders.extend(o);
                            // The peer's evidence (`share_lines` there) for this jail's on_ban.
                            self.hook_lines
                                .insert((apply_to.clone(), target), message.lines);
                        }
                        Err(refusal) => {
                            let rejection = Rejection::Refused(refusal.to_string());
                            stats.reject(&rejection);
                            refused += 1;
                            if refused <= LOG_EACH_UP_TO {
                                tracing::warn!(node = %node, ip = %target, reason = rejection.reason(), error = %rejection, "fleet: a peer's ban refused");
                            }
                        }
                    }
                }
                PeerDecision::Unban { node, target } => {
                    let unbans = self.tracker.unban(&target, Some(&apply_to));
                    if !unbans.is_empty() {
                        stats.applied.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(node = %node, ip = %target, jail = %apply_to, "fleet: unbanned by a peer");
                    }
                    orders.extend(unbans);
                }
                PeerDecision::Own => {}
            }
        }
        if refused > LOG_EACH_UP_TO {
            tracing::warn!(
                refused,
                "fleet: peers' bans refused (the first ones are logged above)"
            );
        }
        self.send(orders);
        // Behind the orders: durable with (or after) the bans it covers.
        self.push(Msg::Positions(vec![(
            key,
            Position::Stream { seq: batch.seq },
        )]));
    }

    /// Shares a ban settled here, if its jail is published and it was decided here.
    pub(super) fn publish_ban(&mut self, ban: &Ban, lines: &[String]) {
        let Some(fleet) = &self.fleet else { return };
        if matches!(ban.origin, Origin::Fleet(_) | Origin::Adopted)
            || !fleet.config.publishes(&ban.jail)
        {
            return;
        }
        let policy = self.tracker.policy(&ban.jail);
        let failures = match ban.origin {
            Origin::Failures => policy.map_or(0, |p| p.maxretry),
            Origin::Recidive => policy.and_then(|p| p.recidive).unwrap_or(0),
            _ => 0,
        };
        let lines = if fleet.config.share_lines { lines } else { &[] };
        let message = BanMessage::ban(&fleet.config.node, ban, failures, lines);
        self.fleet_send(message);
    }

    /// Remembers the orders of an administrator's unban that are to be shared once settled:
    /// those lifting a ban this node shares, or a peer's ban (lifted by hand here, it is
    /// lifted everywhere). An unban in a jail that is not shared (`manual`) stays local.
    pub(super) fn mark_unbans(&mut self, orders: &[Order]) {
        let Some(fleet) = &self.fleet else { return };
        let shared = orders.iter().filter(|o| {
            o.ban.origin.is_fleet()
                || (o.ban.origin != Origin::Adopted && fleet.config.publishes(&o.ban.jail))
        });
        let ids: Vec<OrderId> = shared.map(|o| o.id).collect();
        self.fleet_unbans.extend(ids);
    }

    /// An order settled: a marked unban that took effect is shared.
    pub(super) fn fleet_settled(&mut self, order: &Order, applied: bool) {
        let marked = self.fleet_unbans.remove(&order.id);
        if !(marked && applied) {
            return;
        }
        let Some(fleet) = &self.fleet else { return };
        let message = BanMessage::unban(&fleet.config.node, &order.ban, (self.clock)());
        self.fleet_send(message);
    }

    /// The fleet as `status` shows it.
    pub(super) fn cluster_status(&self) -> Option<crate::fleet::ClusterStatus> {
        self.fleet
            .as_ref()
            .map(|f| f.stats.status(f.config.node.as_str(), &f.config.stream))
    }

    fn fleet_send(&mut self, message: BanMessage) {
        let Some(fleet) = &self.fleet else { return };
        if fleet.outgoing.try_send(message).is_err() {
            let dropped = fleet.stats.outbox_dropped.fetch_add(1, Ordering::Relaxed);
            if dropped % 1000 == 0 {
                tracing::warn!(
                    dropped = dropped + 1,
                    "fleet: the outbox does not keep up; bans are not shared"
                );
            }
        }
    }
}
