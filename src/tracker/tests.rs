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

/// Feeds failures until a ban (or `limit` failures) and returns the orders.
fn fail_until_ban(t: &mut Tracker, jail: &str, addr: &str, at: i64) -> Vec<Order> {
    for n in 0..100 {
        if let Counted::Banned(orders) = t.failure(&name(jail), ip(addr), at + n, at + n) {
            return orders;
        }
    }
    panic!("{addr} never banned in {jail}");
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
    let Order::Ban(ban) = &orders[0] else {
        panic!("{orders:?}")
    };
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
    let Order::Ban(r) = &orders[1] else {
        panic!("{orders:?}")
    };
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
    assert_eq!(
        orders,
        vec![Order::Ban(Ban {
            jail: j.clone(),
            target: target("192.0.2.1"),
            since: T0,
            expires: Some(T0 + 60),
            count: 1,
            origin: Origin::Manual
        })]
    );
    // A re-ban refreshes the element with the new length.
    let orders = t
        .ban(&j, target("192.0.2.1"), Some(BanTime::Permanent), T0 + 5)
        .unwrap();
    assert!(
        matches!(&orders[..], [Order::Refresh(b)] if b.expires.is_none()),
        "{orders:?}"
    );
}

#[test]
fn nested_prefixes_merge_into_the_widest_with_the_latest_expiry() {
    let mut t = tracker(vec![policy("m")]);
    let j = name("m");
    let hour = Some(BanTime::For(Duration::from_secs(3_600)));
    let day = Some(BanTime::For(Duration::from_secs(86_400)));
    t.ban(&j, target("10.1.0.0/16"), day, T0).unwrap();
    t.ban(&j, target("10.2.0.0/16"), hour, T0).unwrap();
    // A /8 over both: they are removed and the /8 keeps the day.
    let orders = t.ban(&j, target("10.0.0.0/8"), hour, T0).unwrap();
    let unbans: Vec<String> = orders
        .iter()
        .filter(|o| matches!(o, Order::Unban(_)))
        .map(|o| o.ban().target.to_string())
        .collect();
    assert_eq!(unbans.len(), 2, "{orders:?}");
    let Some(Order::Ban(wide)) = orders.last() else {
        panic!("{orders:?}")
    };
    assert_eq!(wide.target, target("10.0.0.0/8"));
    assert_eq!(wide.expires, Some(T0 + 86_400));
    // A prefix inside the /8 only refreshes the /8 (never an overlapping element).
    let orders = t.ban(&j, target("10.3.3.0/24"), None, T0 + 1).unwrap();
    assert!(
        matches!(&orders[..], [Order::Refresh(b)] if b.target == target("10.0.0.0/8")),
        "{orders:?}"
    );
    assert_eq!(t.bans().count_in(&j), 1);
}

#[test]
fn unban_removes_from_one_or_all_jails_and_resets_failures() {
    let mut t = tracker(vec![policy("sshd"), policy("postfix")]);
    t.ban(&name("sshd"), target("192.0.2.1"), None, T0).unwrap();
    t.ban(&name("postfix"), target("192.0.2.1"), None, T0)
        .unwrap();
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
    t.ban(&name("sshd"), target("192.0.2.8"), None, T0).unwrap();
    t.ban(&name("sshd"), target("192.0.2.9"), None, T0).unwrap();
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
fn rollback_undoes_a_ban_the_kernel_refused() {
    let mut t = tracker(vec![policy("sshd")]);
    let orders = fail_until_ban(&mut t, "sshd", "192.0.2.1", T0);
    t.rollback(&orders[0]);
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
    t.ban(&name("postfix"), target("192.0.2.2"), None, T0)
        .unwrap();
    t.ban(&name("sshd"), target("192.0.2.3"), None, T0).unwrap();
    let dropped = t.reconfigure(vec![policy("sshd")], 86_400);
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].jail, name("postfix"));
    assert_eq!(t.bans().len(), 1);
    assert_eq!(
        t.failure(&name("sshd"), ip("192.0.2.1"), T0 + 1, T0 + 1),
        Counted::Counted(2),
        "window kept"
    );
    let mut stricter = policy("sshd");
    stricter.maxretry = 2;
    t.reconfigure(vec![stricter], 86_400);
    assert_eq!(
        t.failure(&name("sshd"), ip("192.0.2.1"), T0 + 2, T0 + 2),
        Counted::Counted(1),
        "window rebuilt"
    );
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
    let dropped = t.restore(vec![live, over, gone], history, T0 + 100);
    assert_eq!(dropped.len(), 2);
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
