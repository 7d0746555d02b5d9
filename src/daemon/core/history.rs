//! What the core remembers beyond the bans in force: the ban log (`nftjail log`) and the jails'
//! lifetime counters, and how both reach the state log.
//!
//! Receives every ban, unban and expiry once it took effect (with the log lines that led to a
//! ban), the tracker's totals, checkpoints and ticks, and `log` requests; emits state records
//! (the events the log kept since the last send, the totals that changed) to the banner — at
//! the checkpoint of the lines they count, or within a second — and the replies of `log`. Every compaction writes the whole
//! ban log and every total again, so what survives a restart is bounded like the log itself
//! (`dbpurgeage`, at most `MAX_EVENTS` events). It never waits and never writes a file itself.

use std::collections::HashMap;

use super::Core;
use crate::banner::Msg;
use crate::control::protocol::{LogEvent, Reply};
use crate::state::Record;
use nftjail_core::jail::JailName;
use nftjail_core::state::events::Query;
use nftjail_core::state::{BanEvent, BanLog, EventAction};
use nftjail_core::tracker::Ban;

/// The ban log, and what of it and of the totals the state log does not have yet.
pub struct History {
    pub log: BanLog,
    /// The totals as last sent to the state log, by jail.
    sent_totals: HashMap<JailName, (u64, u64)>,
    /// The sequence number of the last event sent to the state log. Events are sent from the
    /// log itself, so a burst (100,000 bans from a blocklist) sends only what the log keeps.
    sent_seq: u64,
}

impl History {
    /// The history replayed from the state (the events and totals it recorded).
    pub fn new(log: BanLog, totals: impl IntoIterator<Item = (JailName, u64, u64)>) -> History {
        History {
            sent_seq: log.last_seq(),
            log,
            sent_totals: totals.into_iter().map(|(j, f, b)| (j, (f, b))).collect(),
        }
    }
}

impl Core {
    /// Records one event of the ban log (and queues it for the state log).
    pub(super) fn log_event(&mut self, action: EventAction, ban: &Ban, lines: Vec<String>) {
        let now = (self.clock)();
        self.history
            .log
            .record(BanEvent::of(action, ban, now, lines));
    }

    /// Sends the state log the events recorded and the totals changed since the last time.
    pub(super) fn send_history(&mut self) {
        let unsent = Query {
            after: Some(self.history.sent_seq),
            ..Query::default()
        };
        let mut records: Vec<Record> = self
            .history
            .log
            .query(&unsent)
            .cloned()
            .map(Record::Event)
            .collect();
        self.history.sent_seq = self.history.log.last_seq();
        for (jail, failed, banned) in self.tracker.totals() {
            if self.history.sent_totals.get(jail) != Some(&(failed, banned)) {
                records.push(Record::Totals {
                    jail: jail.clone(),
                    failed,
                    banned,
                });
            }
        }
        for record in &records {
            if let Record::Totals {
                jail,
                failed,
                banned,
            } = record
            {
                self.history
                    .sent_totals
                    .insert(jail.clone(), (*failed, *banned));
            }
        }
        if !records.is_empty() {
            // They make the log longer as orders do: count them for its compaction.
            self.orders_since_compaction += records.len();
            self.push(Msg::Records(records));
        }
    }

    /// The history's part of a compaction snapshot: every total and every event kept. Whatever
    /// was not sent yet is in it, so nothing is left to send.
    pub(super) fn history_snapshot(&mut self) -> Vec<Record> {
        self.history.sent_seq = self.history.log.last_seq();
        let mut records = Vec::new();
        for (jail, failed, banned) in self.tracker.totals() {
            self.history
                .sent_totals
                .insert(jail.clone(), (failed, banned));
            records.push(Record::Totals {
                jail: jail.clone(),
                failed,
                banned,
            });
        }
        records.extend(self.history.log.events().cloned().map(Record::Event));
        records
    }

    /// `log`: the events the request asks for, and the last sequence number (a follower asks
    /// for what comes after it next time).
    pub(super) fn log_reply(
        &self,
        jail: Option<String>,
        since: Option<i64>,
        after: Option<u64>,
    ) -> Reply {
        let jail = match jail {
            None => None,
            Some(name) => match name.parse::<JailName>() {
                Ok(j) => Some(j),
                Err(e) => return Reply::error(e.to_string()),
            },
        };
        let query = Query { after, since, jail };
        let events = self.history.log.query(&query).map(LogEvent::from).collect();
        Reply {
            events: Some(events),
            last: Some(self.history.log.last_seq()),
            ..Reply::ok()
        }
    }
}
