//! The `import` request in the core: bans decided elsewhere (fail2ban's active bans) taken into
//! the tracker with their own times and count, in bulk.
//!
//! Receives the bans with the jail each names; emits orders for the banner (one ticket: the reply
//! goes out when the last of them is settled, as for a ban). A jail that does not exist or is not
//! enabled is reported for each of its bans, never guessed; a ban already in place at least as
//! long, or already over, is left as it is (`kept`). Nothing is ever unbanned or shortened.

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::Core;
use crate::control::protocol::{Rejected, Reply};
use crate::daemon::status;
use nftjail_core::jail::JailName;
use nftjail_core::tracker::CarriedBan;

impl Core {
    pub(super) fn import(
        &mut self,
        bans: Vec<(String, CarriedBan)>,
        mut rejected: Vec<Rejected>,
        reply: oneshot::Sender<Reply>,
    ) {
        self.follow_host_addresses();
        let now = (self.clock)();
        let mut jails: HashMap<String, Result<JailName, String>> = HashMap::new();
        let mut orders = Vec::with_capacity(bans.len());
        let mut kept = 0;
        for (index, (jail, ban)) in bans.into_iter().enumerate() {
            let target = ban.target;
            let resolved = jails
                .entry(jail.clone())
                .or_insert_with(|| status::enabled_jail(&self.config, &jail));
            let refusal = match resolved {
                Ok(name) => match self.tracker.carry_over(name, ban, now) {
                    Ok(o) if o.is_empty() => {
                        kept += 1;
                        continue;
                    }
                    Ok(o) => {
                        orders.extend(o);
                        continue;
                    }
                    Err(refusal) => refusal.to_string(),
                },
                Err(e) => e.clone(),
            };
            rejected.push(Rejected {
                line: index + 1,
                text: format!("{jail} {target}"),
                error: refusal,
            });
        }
        if orders.is_empty() {
            let _ = reply.send(Reply {
                banned: Some(0),
                refreshed: Some(0),
                kept: Some(kept),
                rejected,
                ..Reply::ok()
            });
            return;
        }
        self.tickets
            .open_with(&orders, reply, rejected, false, Some(kept));
        self.send(orders);
    }
}
