//! Table-driven tests of the tracker's decisions. Time is always given, never read.

use std::time::Duration;

use super::*;

const T0: i64 = 1_800_000_000;

fn name(s: &str) -> JailName {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn target(s: &str) -> BanTarget {
    s.parse().unwrap()
}

fn policy(jail: &str) -> JailPolicy {
    JailPolicy {
        name: name(jail),
        maxretry: 3,
        findtime: 600,
        bantime: BanTime::For(Duration::from_secs(3_600)),
        escalation: Escalation::default(),
        ignore: Arc::new(IgnoreList::new([target("127.0.0.0/8"), target("::1")])),
        fold_v6: None,
        maxtracked: 1_000,
        recidive: None,
        ignoreself: true,
    }
}

fn recidive(maxbans: u32) -> JailPolicy {
    JailPolicy {
        findtime: 86_400,
        bantime: BanTime::For(Duration::from_secs(604_800)),
        recidive: Some(maxbans),
        ..policy("recidive")
    }
}

fn tracker(policies: Vec<JailPolicy>) -> Tracker {
    Tracker::new(policies, 86_400, 7)
}

/// Settles `orders` as the banner would report them, and those they call for, until none
/// is left; returns every order, in order.
fn settle_all(t: &mut Tracker, orders: Vec<Order>, outcome: Settlement, now: i64) -> Vec<Order> {
    let mut all = Vec::new();
    let mut queue: std::collections::VecDeque<Order> = orders.into();
    while let Some(order) = queue.pop_front() {
        queue.extend(t.settle(&order, outcome, now));
        all.push(order);
    }
    all
}

/// Applies `orders` (and what they call for) and returns every order.
fn apply(t: &mut Tracker, orders: Vec<Order>, now: i64) -> Vec<Order> {
    settle_all(t, orders, Settlement::Applied, now)
}

/// Feeds failures until a ban (or `limit` failures), applies its orders and returns them.
fn fail_until_ban(t: &mut Tracker, jail: &str, addr: &str, at: i64) -> Vec<Order> {
    for n in 0..100 {
        if let Counted::Banned(orders) = t.failure(&name(jail), ip(addr), at + n, at + n) {
            return apply(t, orders, at + n);
        }
    }
    panic!("{addr} never banned in {jail}");
}

/// A manual ban, applied.
fn ban(t: &mut Tracker, jail: &str, what: &str, length: Option<BanTime>, now: i64) -> Vec<Order> {
    let orders = t.ban(&name(jail), target(what), length, now).unwrap();
    apply(t, orders, now)
}

#[test]
fn maxretry_failures_within_findtime_ban() {
    let mut t = tracker(vec![policy("sshd")]);
    let j = name("sshd");
    assert_eq!(t.failure(&j, ip("192.0.2.1"), T0, T0), Counted::Counted(1));
    assert_eq!(
        t.failure(&j, ip("192.0.2.1"), T0 + 10, T0 + 10),
        Counted::Counted(2)
    );
    let Counted::Banned(orders) = t.failure(&j, ip("192.0.2.1"), T0 + 20, T0 + 20) else {
        panic!()
    };
    assert_eq!(orders.len(), 1);
    assert!(orders[0].is(Action::Ban), "{orders:?}");
    let orders = apply(&mut t, orders, T0 + 20);
    let ban = &orders[0].ban;
    assert_eq!(ban.target, target("192.0.2.1"));
    assert_eq!(ban.since, T0 + 20);
    assert_eq!(ban.expires, Some(T0 + 20 + 3_600));
    assert_eq!(ban.count, 1);
    assert_eq!(ban.origin, Origin::Failures);
    assert_eq!(
        t.failure(&j, ip("192.0.2.1"), T0 + 30, T0 + 30),
        Counted::AlreadyBanned
    );
    let s = t.stats(&j).unwrap();
    assert_eq!(
        (
            s.currently_failed,
            s.total_failed,
            s.currently_banned,
            s.total_banned
        ),
        (0, 3, 1, 1)
    );
}

#[test]
fn failures_spread_wider_than_findtime_never_ban() {
    let mut t = tracker(vec![policy("sshd")]);
    for n in 0..20 {
        let at = T0 + n * 301;
        let c = t.failure(&name("sshd"), ip("192.0.2.1"), at, at);
        assert!(matches!(c, Counted::Counted(1 | 2)), "failure {n}: {c:?}");
    }
}

#[test]
fn old_and_ignored_failures_do_not_count() {
    let mut t = tracker(vec![policy("sshd")]);
    let j = name("sshd");
    assert_eq!(
        t.failure(&j, ip("192.0.2.1"), T0 - 600, T0),
        Counted::TooOld
    );
    assert_eq!(t.failure(&j, ip("127.0.0.1"), T0, T0), Counted::Ignored);
    assert_eq!(
        t.failure(&j, ip("::ffff:127.0.0.1"), T0, T0),
        Counted::Ignored
    );
    assert_eq!(
        t.failure(&name("nope"), ip("192.0.2.1"), T0, T0),
        Counted::UnknownJail
    );
    assert_eq!(t.stats(&j).unwrap().ignored, 2);
    assert_eq!(t.stats(&j).unwrap().total_failed, 0);
}

#[test]
fn a_ban_that_would_already_be_over_is_not_made() {
    let mut p = policy("sshd");
    p.bantime = BanTime::For(Duration::from_secs(60));
    let mut t = tracker(vec![p]);
    let j = name("sshd");
    // Three failures 500 s ago (within findtime) whose 60 s ban ended long ago.
    t.failure(&j, ip("192.0.2.1"), T0 - 500, T0);
    t.failure(&j, ip("192.0.2.1"), T0 - 499, T0);
    assert_eq!(
        t.failure(&j, ip("192.0.2.1"), T0 - 498, T0),
        Counted::TooOld
    );
}

#[test]
fn future_log_times_are_clamped_to_now() {
    let mut t = tracker(vec![policy("sshd")]);
    let orders = fail_until_ban(&mut t, "sshd", "192.0.2.1", T0 + 10_000);
    // fail_until_ban passes now == at, so exercise the clamp directly:
    assert_eq!(orders[0].ban().since, T0 + 10_002);
    let mut t = tracker(vec![policy("sshd")]);
    let j = name("sshd");
    t.failure(&j, ip("192.0.2.9"), T0 + 9_999, T0);
    t.failure(&j, ip("192.0.2.9"), T0 + 9_999, T0);
    let Counted::Banned(orders) = t.failure(&j, ip("192.0.2.9"), T0 + 9_999, T0) else {
        panic!()
    };
    assert_eq!(
        orders[0].ban().since,
        T0,
        "a clock-skewed log cannot push a ban into the future"
    );
}

#[test]
fn escalation_counts_previous_bans_per_jail_or_overall() {
    for (overall, want) in [
        (false, [3_600, 7_200, 3_600]),
        (true, [3_600, 7_200, 14_400]),
    ] {
        let esc = Escalation {
            increment: true,
            overalljails: overall,
            ..Escalation::default()
        };
        let mut sshd = policy("sshd");
        sshd.escalation = esc.clone();
        let mut mail = policy("postfix");
        mail.escalation = esc;
        let mut t = tracker(vec![sshd, mail]);
        let mut got = Vec::new();
        for (i, jail) in ["sshd", "sshd", "postfix"].into_iter().enumerate() {
            let at = T0 + i as i64 * 10_000;
            t.expire(at);
            let orders = fail_until_ban(&mut t, jail, "192.0.2.1", at);
            let ban = orders[0].ban();
            got.push(ban.expires.unwrap() - ban.since);
        }
        assert_eq!(got, want, "overalljails = {overall}");
    }
}

#[test]
fn negative_bantime_is_permanent() {
    let mut p = policy("sshd");
    p.bantime = BanTime::Permanent;
    let mut t = tracker(vec![p]);
    let orders = fail_until_ban(&mut t, "sshd", "192.0.2.1", T0);
    assert_eq!(orders[0].ban().expires, None);
    assert!(t.expire(i64::MAX / 2).is_empty());
}

#[test]
fn ipv6_folds_into_a_prefix_and_counts_across_it() {
    let mut p = policy("sshd");
    p.fold_v6 = Some(64);
    let mut t = tracker(vec![p]);
    let j = name("sshd");
    // Three different addresses of one /64: one attacker rotating its interface id.
    t.failure(&j, ip("2001:db8:1:2::a"), T0, T0);
    t.failure(&j, ip("2001:db8:1:2::b"), T0 + 1, T0 + 1);
    let Counted::Banned(orders) = t.failure(&j, ip("2001:db8:1:2::c"), T0 + 2, T0 + 2) else {
        panic!()
    };
    assert_eq!(orders[0].ban().target, target("2001:db8:1:2::/64"));
    assert_eq!(
        t.failure(&j, ip("2001:db8:1:2::dead"), T0 + 3, T0 + 3),
        Counted::AlreadyBanned
    );
    assert_eq!(
        t.failure(&j, ip("192.0.2.1"), T0 + 3, T0 + 3),
        Counted::Counted(1),
        "IPv4 is never folded"
    );
}

#[test]
fn native_recidive_bans_after_maxbans_bans_across_jails() {
    let mut t = tracker(vec![policy("sshd"), policy("postfix"), recidive(3)]);
    let mut orders = Vec::new();
    for (i, jail) in ["sshd", "postfix", "sshd"].into_iter().enumerate() {
        let at = T0 + i as i64 * 4_000; // each earlier ban (1 h) has ended
        t.expire(at);
        orders = fail_until_ban(&mut t, jail, "192.0.2.1", at);
        if i < 2 {
            assert_eq!(orders.len(), 1, "ban {i} alone: {orders:?}");
        }
    }
    assert_eq!(orders.len(), 2, "{orders:?}");
    assert!(orders[1].is(Action::Ban), "{orders:?}");
    let r = &orders[1].ban;
    assert_eq!(r.jail, name("recidive"));
    assert_eq!(r.origin, Origin::Recidive);
    assert_eq!(r.expires.unwrap() - r.since, 604_800);
    assert_eq!(
        t.failure(&name("recidive"), ip("192.0.2.1"), T0, T0),
        Counted::UnknownJail,
        "recidive reads no log"
    );
}

#[test]
fn recidive_ignores_bans_older_than_its_findtime() {
    let mut t = tracker(vec![policy("sshd"), recidive(2)]);
    fail_until_ban(&mut t, "sshd", "192.0.2.1", T0);
    let later = T0 + 2 * 86_400;
    t.expire(later);
    let orders = fail_until_ban(&mut t, "sshd", "192.0.2.1", later);
    assert_eq!(orders.len(), 1, "the first ban is two days old: {orders:?}");
}

#[test]
fn manual_bans_refuse_ignored_targets_and_unknown_jails() {
    let mut t = tracker(vec![policy("sshd")]);
    let j = name("sshd");
    let err = t.ban(&j, target("127.0.0.5"), None, T0).unwrap_err();
    assert!(err.to_string().contains("ignore list"), "{err}");
    assert!(
        matches!(
            t.ban(&j, target("127.0.0.0/4"), None, T0),
            Err(Refusal::Ignored { .. })
        ),
        "a prefix holding ignored space"
    );
    assert!(matches!(
        t.ban(&name("nope"), target("192.0.2.1"), None, T0),
        Err(Refusal::UnknownJail(_))
    ));
    let orders = t
        .ban(
            &j,
            target("192.0.2.1"),
            Some(BanTime::For(Duration::from_secs(60))),
            T0,
        )
        .unwrap();
    assert_eq!(orders.len(), 1);
    assert!(orders[0].is(Action::Ban) && orders[0].fresh);
    assert_eq!(
        orders[0].ban,
        Ban {
            jail: j.clone(),
            target: target("192.0.2.1"),
            since: T0,
            expires: Some(T0 + 60),
            count: 1,
            origin: Origin::Manual
        }
    );
    apply(&mut t, orders, T0);
    // A re-ban refreshes the element with the new length, and can be undone to the old one.
    let orders = t
        .ban(&j, target("192.0.2.1"), Some(BanTime::Permanent), T0 + 5)
        .unwrap();
    assert!(
        matches!(&orders[..], [o] if o.is(Action::Refresh) && o.ban.expires.is_none()
            && o.previous.as_ref().is_some_and(|p| p.expires == Some(T0 + 60))),
        "{orders:?}"
    );
}

/// Nested prefixes in one jail: interval sets refuse overlaps, and no ban may silently change
/// length. (Regression: `ban 30.0.0.0/8 --for 1m` over a 180-day /16 became a 180-day /8.)
#[test]
fn nested_prefixes_are_replaced_only_by_a_wider_ban_that_outlasts_them() {
    let mut t = tracker(vec![policy("m")]);
    let j = name("m");
    let minute = Some(BanTime::For(Duration::from_secs(60)));
    let hour = Some(BanTime::For(Duration::from_secs(3_600)));
    let day = Some(BanTime::For(Duration::from_secs(86_400)));
    ban(&mut t, "m", "30.1.0.0/16", day, T0);
    // A shorter /8 over a longer /16: refused, saying why; nothing changes.
    let refused = t.ban(&j, target("30.0.0.0/8"), minute, T0).unwrap_err();
    assert!(
        matches!(refused, Refusal::Outlasted { .. }) && refused.to_string().contains("30.1.0.0/16"),
        "{refused}"
    );
    assert_eq!(
        t.bans().get(&j, &target("30.1.0.0/16")).unwrap().expires,
        Some(T0 + 86_400)
    );
    // A longer /8 replaces the /16 and keeps its own length.
    ban(&mut t, "m", "10.2.0.0/16", hour, T0);
    let orders = t.ban(&j, target("10.0.0.0/8"), day, T0).unwrap();
    let unbans: Vec<String> = orders
        .iter()
        .filter(|o| o.is(Action::Unban))
        .map(|o| o.ban.target.to_string())
        .collect();
    assert_eq!(unbans, ["10.2.0.0/16"], "{orders:?}");
    let wide = orders.last().unwrap();
    assert!(
        wide.is(Action::Ban) && wide.superseded.len() == 1,
        "{orders:?}"
    );
    assert_eq!(wide.ban.expires, Some(T0 + 86_400));
    apply(&mut t, orders, T0);
    // A prefix inside the /8 that ends sooner is covered already; one that ends later is refused.
    assert!(matches!(
        t.ban(&j, target("10.3.3.0/24"), hour, T0 + 1),
        Err(Refusal::Covered { .. })
    ));
    assert!(matches!(
        t.ban(&j, target("10.3.3.0/24"), Some(BanTime::Permanent), T0 + 1),
        Err(Refusal::Outlasted { .. })
    ));
    assert_eq!(t.bans().count_in(&j), 2);
}

/// Regression: a refused wider prefix lost the narrower bans it was to replace.
#[test]
fn a_refused_wider_prefix_puts_the_narrower_ones_back() {
    let mut t = tracker(vec![policy("m")]);
    let j = name("m");
    let hour = Some(BanTime::For(Duration::from_secs(3_600)));
    let day = Some(BanTime::For(Duration::from_secs(86_400)));
    ban(&mut t, "m", "10.2.0.0/16", hour, T0);
    let orders = t.ban(&j, target("10.0.0.0/8"), day, T0).unwrap();
    let (unban, wide) = (orders[0].clone(), orders[1].clone());
    assert!(t.settle(&unban, Settlement::Applied, T0).is_empty());
    let back = t.settle(&wide, Settlement::Refused, T0);
    assert!(
        matches!(&back[..], [o] if o.is(Action::Ban) && o.ban.target == target("10.2.0.0/16") && !o.fresh),
        "{back:?}"
    );
    assert!(t.bans().get(&j, &target("10.0.0.0/8")).is_none());
    apply(&mut t, back, T0);
    let settled: Vec<String> = t.settled().map(|b| b.target.to_string()).collect();
    assert_eq!(settled, ["10.2.0.0/16"]);
}

/// Outcomes come back as inputs: a ban counts in the history, the totals and recidive only once
/// it is applied, and a refused or unsaved one leaves no trace (regression: a refused ban
/// escalated the next one).
#[test]
fn a_ban_counts_only_once_applied_and_a_failed_one_leaves_no_trace() {
    for outcome in [Settlement::Refused, Settlement::NotDurable] {
        let esc = Escalation {
            increment: true,
            ..Escalation::default()
        };
        let mut p = policy("sshd");
        p.escalation = esc;
        let mut t = tracker(vec![p, recidive(1)]);
        let j = name("sshd");
        let orders = t.ban(&j, target("192.0.2.1"), None, T0).unwrap();
        assert_eq!(
            t.stats(&j).unwrap().currently_banned,
            0,
            "pending is not banned yet"
        );
        assert_eq!(t.settled().count(), 0);
        assert_eq!(
            t.failure(&j, ip("192.0.2.1"), T0, T0),
            Counted::AlreadyBanned,
            "decisions see it at once"
        );
        let follow = settle_all(&mut t, orders, outcome, T0);
        assert_eq!(
            follow.len(),
            1,
            "no recidive after a failed ban: {follow:?}"
        );
        let s = t.stats(&j).unwrap();
        assert_eq!((s.currently_banned, s.total_banned), (0, 0), "{outcome:?}");
        assert!(t.history().is_empty());
        assert!(t.bans().is_empty() && !t.has_pending());
        // The next ban is a first one, not an escalated second.
        let orders = fail_until_ban(&mut t, "sshd", "192.0.2.1", T0 + 10);
        let first = &orders[0].ban;
        assert_eq!(
            (first.count, first.expires.unwrap() - first.since),
            (1, 3_600)
        );
        assert_eq!(
            orders.len(),
            2,
            "applied, it counts for recidive: {orders:?}"
        );
    }
}

/// A peer's ban is entered like a manual one, with the origin of its node and the time it was
/// given, and counts for recidive on the node that decided it, not here (there it would be
/// counted twice: the deciding node's recidive ban reaches us too).
#[test]
fn a_peers_ban_keeps_its_origin_and_triggers_no_local_recidive() {
    let mut t = tracker(vec![policy("fleet"), recidive(1)]);
    let j = name("fleet");
    let node: crate::fleet::NodeName = "mail1".parse().unwrap();
    let length = Some(BanTime::For(Duration::from_secs(600)));
    let orders = t
        .decide(
            &j,
            target("192.0.2.1"),
            length,
            Origin::Fleet(node.clone()),
            T0,
        )
        .unwrap();
    let all = settle_all(&mut t, orders, Settlement::Applied, T0);
    assert_eq!(all.len(), 1, "no recidive: {all:?}");
    let ban = t.settled().next().unwrap();
    assert_eq!(
        (ban.origin.clone(), ban.expires),
        (Origin::Fleet(node.clone()), Some(T0 + 600))
    );
    // The local ignore list applies to peers' bans too.
    let refused = t.decide(&j, target("127.0.0.1"), length, Origin::Fleet(node), T0);
    assert!(
        matches!(refused, Err(Refusal::Ignored { .. })),
        "{refused:?}"
    );
}

/// Regression: an unban the kernel refused was forgotten although the element stayed.
#[test]
fn a_refused_unban_or_refresh_puts_the_previous_ban_back() {
    let mut t = tracker(vec![policy("sshd")]);
    let j = name("sshd");
    ban(&mut t, "sshd", "192.0.2.1", None, T0);
    let unban = t.unban(&target("192.0.2.1"), Some(&j));
    settle_all(&mut t, unban, Settlement::Refused, T0);
    assert_eq!(t.settled().count(), 1);
    assert!(t.bans().get(&j, &target("192.0.2.1")).is_some());
    let refresh = t
        .ban(&j, target("192.0.2.1"), Some(BanTime::Permanent), T0 + 1)
        .unwrap();
    settle_all(&mut t, refresh, Settlement::NotDurable, T0 + 1);
    let kept = t.bans().get(&j, &target("192.0.2.1")).unwrap();
    assert_eq!(kept.expires, Some(T0 + 3_600), "the old length is back");
}

/// Two orders of one ban in flight: the settled view follows the applied ones, and a failure
/// puts back the last settled value only once nothing else is in flight.
#[test]
fn settlement_follows_orders_in_flight_in_order() {
    let mut t = tracker(vec![policy("sshd")]);
    let j = name("sshd");
    let ban1 = t.ban(&j, target("192.0.2.1"), None, T0).unwrap();
    let unban = t.unban(&target("192.0.2.1"), Some(&j));
    assert!(t.bans().is_empty());
    apply(&mut t, ban1, T0);
    assert_eq!(t.settled().count(), 1, "applied ban, unban still in flight");
    settle_all(&mut t, unban, Settlement::Refused, T0);
    assert_eq!(
        t.bans().len(),
        1,
        "the refused unban leaves the applied ban"
    );
    assert!(!t.has_pending());
}

#[test]
fn unban_removes_from_one_or_all_jails_and_resets_failures() {
    let mut t = tracker(vec![policy("sshd"), policy("postfix")]);
    ban(&mut t, "sshd", "192.0.2.1", None, T0);
    ban(&mut t, "postfix", "192.0.2.1", None, T0);
    assert_eq!(t.unban(&target("192.0.2.1"), Some(&name("sshd"))).len(), 1);
    assert_eq!(
        t.unban(&target("192.0.2.1"), Some(&name("sshd"))).len(),
        0,
        "not banned any more"
    );
    assert_eq!(t.unban(&target("192.0.2.1"), None).len(), 1);
    t.failure(&name("sshd"), ip("192.0.2.7"), T0, T0);
    t.failure(&name("sshd"), ip("192.0.2.7"), T0, T0);
    t.unban(&target("192.0.2.7"), None);
    assert_eq!(
        t.failure(&name("sshd"), ip("192.0.2.7"), T0, T0),
        Counted::Counted(1),
        "unban forgets failures"
    );
    ban(&mut t, "sshd", "192.0.2.8", None, T0);
    ban(&mut t, "sshd", "192.0.2.9", None, T0);
    assert_eq!(t.unban_jail(&name("sshd")).len(), 2);
    assert_eq!(t.bans().len(), 0);
}

#[test]
fn expire_reports_ended_bans_and_frees_the_address() {
    let mut t = tracker(vec![policy("sshd")]);
    fail_until_ban(&mut t, "sshd", "192.0.2.1", T0);
    assert!(t.expire(T0 + 3_000).is_empty());
    let ended = t.expire(T0 + 3_700);
    assert_eq!(ended.len(), 1);
    assert_eq!(
        t.failure(&name("sshd"), ip("192.0.2.1"), T0 + 3_701, T0 + 3_701),
        Counted::Counted(1)
    );
}

#[test]
fn a_refused_ban_is_undone_and_its_address_counts_again() {
    let mut t = tracker(vec![policy("sshd")]);
    let orders = (0..3)
        .find_map(
            |n| match t.failure(&name("sshd"), ip("192.0.2.1"), T0 + n, T0 + n) {
                Counted::Banned(o) => Some(o),
                _ => None,
            },
        )
        .unwrap();
    settle_all(&mut t, orders, Settlement::Refused, T0);
    assert_eq!(t.bans().len(), 0);
    assert!(matches!(
        t.failure(&name("sshd"), ip("192.0.2.1"), T0 + 5, T0 + 5),
        Counted::Counted(1)
    ));
}

#[test]
fn reconfigure_keeps_bans_and_windows_of_unchanged_jails() {
    let mut t = tracker(vec![policy("sshd"), policy("postfix")]);
    t.failure(&name("sshd"), ip("192.0.2.1"), T0, T0);
    ban(&mut t, "postfix", "192.0.2.2", None, T0);
    ban(&mut t, "sshd", "192.0.2.3", None, T0);
    let done = t.reconfigure(vec![policy("sshd")], 86_400, T0);
    assert_eq!(done.parked, [(name("postfix"), 1)]);
    assert_eq!(t.bans().len(), 1);
    assert_eq!(
        t.failure(&name("sshd"), ip("192.0.2.1"), T0 + 1, T0 + 1),
        Counted::Counted(2),
        "window kept"
    );
    let mut stricter = policy("sshd");
    stricter.maxretry = 2;
    t.reconfigure(vec![stricter], 86_400, T0 + 2);
    assert_eq!(
        t.failure(&name("sshd"), ip("192.0.2.1"), T0 + 2, T0 + 2),
        Counted::Counted(1),
        "window rebuilt"
    );
}

/// Regression: disabling or removing a jail destroyed its bans, permanent ones included.
#[test]
fn a_jail_that_goes_has_its_bans_parked_and_restored_when_it_comes_back() {
    let mut t = tracker(vec![policy("sshd"), policy("manual")]);
    ban(&mut t, "manual", "192.0.2.1", Some(BanTime::Permanent), T0);
    ban(&mut t, "manual", "192.0.2.2", None, T0);
    let done = t.reconfigure(vec![policy("sshd")], 86_400, T0 + 10);
    assert_eq!(done.parked, [(name("manual"), 2)]);
    assert!(done.restored.is_empty());
    assert_eq!(t.parked().count(), 2, "kept, out of the kernel");
    assert_eq!(t.settled().count(), 0);
    // Past the hour: the 1 h ban ran out while parked, the permanent one comes back.
    t.expire(T0 + 4_000);
    let done = t.reconfigure(vec![policy("sshd"), policy("manual")], 86_400, T0 + 4_000);
    assert!(
        matches!(&done.restored[..], [o] if o.is(Action::Ban) && !o.fresh
            && o.ban.target == target("192.0.2.1") && o.ban.expires.is_none()),
        "{:?}",
        done.restored
    );
    let restored = apply(&mut t, done.restored, T0 + 4_000);
    assert_eq!(restored.len(), 1);
    assert_eq!(
        t.stats(&name("manual")).unwrap().total_banned,
        2,
        "the two bans made before it went; a restoration is no new ban"
    );
    assert_eq!(t.parked().count(), 0);
}

/// Regression: counters reset on restart and reload (`BANNED 1  TOTAL BANNED 0`).
#[test]
fn lifetime_totals_survive_reloads_and_jails_that_come_back() {
    let mut t = tracker(vec![policy("sshd"), policy("manual")]);
    t.set_totals(&name("sshd"), 40, 4);
    t.set_totals(&name("gone"), 7, 1);
    fail_until_ban(&mut t, "sshd", "192.0.2.1", T0);
    let totals = |t: &Tracker, jail: &str| {
        let s = t.stats(&name(jail)).unwrap();
        (s.total_failed, s.total_banned)
    };
    assert_eq!(totals(&t, "sshd"), (43, 5));
    let mut stricter = policy("sshd");
    stricter.maxretry = 2;
    t.reconfigure(vec![stricter.clone()], 86_400, T0 + 10);
    assert_eq!(
        totals(&t, "sshd"),
        (43, 5),
        "a changed window keeps the counters"
    );
    t.reconfigure(vec![], 86_400, T0 + 20);
    let mut all: Vec<(String, u64, u64)> =
        t.totals().map(|(j, f, b)| (j.to_string(), f, b)).collect();
    all.sort();
    assert_eq!(
        all,
        [
            ("gone".to_string(), 7, 1),
            ("manual".to_string(), 0, 0),
            ("sshd".to_string(), 43, 5)
        ],
        "retired jails keep theirs for the state log"
    );
    t.reconfigure(vec![stricter, policy("gone")], 86_400, T0 + 30);
    assert_eq!(totals(&t, "sshd"), (43, 5));
    assert_eq!(
        totals(&t, "gone"),
        (7, 1),
        "a jail that comes back has its counters"
    );
}

/// `nftjail unban --jail J --all` on a parked jail drops its bans from the state.
#[test]
fn a_parked_jail_can_be_emptied() {
    let mut t = tracker(vec![policy("manual")]);
    ban(&mut t, "manual", "192.0.2.1", None, T0);
    t.reconfigure(vec![], 86_400, T0);
    let orders = t.unban_jail(&name("manual"));
    assert!(
        matches!(&orders[..], [o] if o.is(Action::Forget)),
        "{orders:?}"
    );
    assert_eq!(t.parked().count(), 1, "until the forget is settled");
    apply(&mut t, orders, T0);
    assert_eq!(t.parked().count(), 0);
}

#[test]
fn restore_brings_back_live_bans_and_history() {
    let esc = Escalation {
        increment: true,
        ..Escalation::default()
    };
    let mut p = policy("sshd");
    p.escalation = esc;
    let mut t = tracker(vec![p]);
    let live = Ban {
        jail: name("sshd"),
        target: target("192.0.2.1"),
        since: T0,
        expires: Some(T0 + 3_600),
        count: 1,
        origin: Origin::Failures,
    };
    let over = Ban {
        expires: Some(T0 + 10),
        target: target("192.0.2.2"),
        ..live.clone()
    };
    let gone = Ban {
        jail: name("removed"),
        ..live.clone()
    };
    let history = vec![HistoryEntry {
        target: target("192.0.2.2"),
        jail: name("sshd"),
        at: T0,
    }];
    let ended = t.restore(vec![live, over, gone], history, T0 + 100);
    assert_eq!(ended, 1, "only the ban that is over is dropped");
    assert_eq!(
        t.parked().count(),
        1,
        "the ban of a jail not configured is parked"
    );
    assert_eq!(
        t.failure(&name("sshd"), ip("192.0.2.1"), T0 + 100, T0 + 100),
        Counted::AlreadyBanned
    );
    // 192.0.2.2 was banned once before: its next ban is escalated.
    let orders = fail_until_ban(&mut t, "sshd", "192.0.2.2", T0 + 200);
    let b = orders[0].ban();
    assert_eq!((b.count, b.expires.unwrap() - b.since), (2, 7_200));
}

#[test]
fn ignoreself_follows_the_hosts_addresses_as_they_change() {
    let mut t = tracker(vec![
        policy("sshd"),
        JailPolicy {
            ignoreself: false,
            ..policy("open")
        },
    ]);
    let j = name("sshd");
    assert!(matches!(
        t.failure(&j, ip("198.51.100.9"), T0, T0),
        Counted::Counted(1)
    ));
    // DHCP gives the host 198.51.100.9: from now on it is ignored where ignoreself is on.
    t.set_self_addresses([ip("198.51.100.9"), ip("::ffff:203.0.113.1")]);
    assert_eq!(t.failure(&j, ip("198.51.100.9"), T0, T0), Counted::Ignored);
    assert_eq!(
        t.failure(&j, ip("203.0.113.1"), T0, T0),
        Counted::Ignored,
        "mapped form of an own address"
    );
    assert!(
        matches!(
            t.ban(&j, target("198.51.100.0/24"), None, T0),
            Err(Refusal::Ignored { .. })
        ),
        "a prefix holding the host"
    );
    assert!(
        matches!(
            t.failure(&name("open"), ip("198.51.100.9"), T0, T0),
            Counted::Counted(1)
        ),
        "ignoreself = false"
    );
    t.set_self_addresses([]);
    assert!(
        matches!(
            t.failure(&j, ip("198.51.100.9"), T0 + 1, T0 + 1),
            Counted::Counted(2)
        ),
        "the address left the host"
    );
}

fn carried(addr: &str, since: i64, expires: Option<i64>, count: u32) -> CarriedBan {
    CarriedBan {
        target: target(addr),
        since,
        expires,
        count,
    }
}

#[test]
fn carried_bans_keep_their_times_and_count() {
    let mut t = tracker(vec![JailPolicy {
        escalation: Escalation {
            increment: true,
            factor: 1.0,
            ..Escalation::default()
        },
        ..policy("sshd")
    }]);
    let sshd = name("sshd");
    let orders = t
        .carry_over(&sshd, carried("192.0.2.1", T0 - 100, Some(T0 + 500), 3), T0)
        .unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].action, Action::Ban);
    assert_eq!(orders[0].ban.since, T0 - 100);
    assert_eq!(orders[0].ban.expires, Some(T0 + 500));
    assert_eq!(orders[0].ban.count, 3);
    assert_eq!(orders[0].ban.origin, Origin::Imported);
    apply(&mut t, orders, T0);
    // The next ban after it is the fourth: 2^3 × bantime.
    t.expire(T0 + 501);
    let mut banned = None;
    for _ in 0..3 {
        if let Counted::Banned(orders) = t.failure(&sshd, ip("192.0.2.1"), T0 + 600, T0 + 600) {
            banned = Some(orders);
        }
    }
    let ban = &banned.expect("third failure bans")[0].ban;
    assert_eq!(ban.count, 4);
    assert_eq!(ban.expires, Some(T0 + 600 + 8 * 3_600));
}

#[test]
fn carried_bans_never_shorten_expire_or_ban_the_ignored() {
    let mut t = tracker(vec![policy("sshd")]);
    let sshd = name("sshd");
    // Permanent, then a shorter one of the same address: the permanent one stays.
    let orders = t
        .carry_over(&sshd, carried("192.0.2.2", T0, None, 1), T0)
        .unwrap();
    apply(&mut t, orders, T0);
    let shorter = t.carry_over(&sshd, carried("192.0.2.2", T0, Some(T0 + 60), 1), T0);
    assert_eq!(shorter, Ok(Vec::new()));
    // Already over.
    let expired = t.carry_over(&sshd, carried("192.0.2.3", T0 - 90, Some(T0 - 1), 1), T0);
    assert_eq!(expired, Ok(Vec::new()));
    // 127.0.0.0/8 is in the ignore list; an unknown jail is named.
    assert!(matches!(
        t.carry_over(&sshd, carried("127.0.0.9", T0, None, 1), T0),
        Err(Refusal::Ignored { .. })
    ));
    assert!(matches!(
        t.carry_over(&name("nope"), carried("192.0.2.4", T0, None, 1), T0),
        Err(Refusal::UnknownJail(_))
    ));
}
