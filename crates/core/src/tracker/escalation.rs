//! Escalation: longer bans for repeat offenders (fail2ban's `bantime.increment`).
//!
//! Receives a jail's base bantime and how many times the address was banned before; returns the
//! length of this ban. Pure: the random part (`rndtime`) is a number in `[0, 1)` passed in.
//!
//! As in fail2ban, the first ban is exactly `bantime`; for the n-th repeat (n ≥ 1):
//! - with `multipliers`: `bantime × factor × multipliers[min(n, len − 1)]`;
//! - otherwise: `max(bantime, bantime × 2^min(n, 20) × factor)`;
//! - then capped at `maxtime`, then `rndtime × random` seconds added.

use serde::Serialize;

/// Escalation settings of one jail (already merged with the defaults).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Escalation {
    /// fail2ban's `bantime.increment`: escalate at all.
    pub increment: bool,
    pub factor: f64,
    pub multipliers: Vec<f64>,
    /// Upper bound of an escalated ban, seconds.
    pub maxtime: Option<u64>,
    /// Random seconds added to an escalated ban, so bots cannot predict the unban.
    pub rndtime: Option<u64>,
    /// Count the address's bans in every jail, not only this one.
    pub overalljails: bool,
}

impl Default for Escalation {
    fn default() -> Escalation {
        Escalation {
            increment: false,
            factor: 1.0,
            multipliers: Vec::new(),
            maxtime: None,
            rndtime: None,
            overalljails: false,
        }
    }
}

impl Escalation {
    /// Length in seconds of a ban whose base is `bantime`, for an address banned
    /// `previous` times before. `random` is in `[0, 1)`.
    pub fn ban_seconds(&self, bantime: u64, previous: u32, random: f64) -> u64 {
        if !self.increment || previous == 0 {
            return bantime;
        }
        let base = bantime as f64;
        let mut seconds = if self.multipliers.is_empty() {
            let exponent = previous.min(20);
            (base * f64::from(1u32 << exponent) * self.factor).max(base)
        } else {
            let i = (previous as usize).min(self.multipliers.len() - 1);
            base * self.factor * self.multipliers[i]
        };
        if let Some(max) = self.maxtime {
            seconds = seconds.min(max as f64);
        }
        if let Some(rnd) = self.rndtime {
            seconds += random.clamp(0.0, 1.0) * rnd as f64;
        }
        // A ban is at least one second long; `as` saturates on overflow.
        (seconds.round() as u64).max(1)
    }
}

/// A small deterministic generator for `rndtime` (xorshift64*): no dependency, seedable in tests.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// A number in `[0, 1)`.
    pub fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc() -> Escalation {
        Escalation {
            increment: true,
            ..Escalation::default()
        }
    }

    #[test]
    fn first_ban_is_the_bantime() {
        let e = Escalation {
            factor: 3.0,
            rndtime: Some(100),
            ..esc()
        };
        assert_eq!(e.ban_seconds(600, 0, 0.9), 600);
    }

    #[test]
    fn formula_doubles_per_previous_ban() {
        let e = esc();
        let got: Vec<u64> = (0..5).map(|n| e.ban_seconds(600, n, 0.0)).collect();
        assert_eq!(got, [600, 1_200, 2_400, 4_800, 9_600]);
        let e = Escalation {
            factor: 2.0,
            ..esc()
        };
        assert_eq!(e.ban_seconds(3_600, 1, 0.0), 14_400, "1h × 2^1 × 2");
    }

    #[test]
    fn exponent_stops_at_twenty() {
        let e = esc();
        assert_eq!(e.ban_seconds(1, 20, 0.0), 1 << 20);
        assert_eq!(e.ban_seconds(1, 50, 0.0), 1 << 20);
    }

    #[test]
    fn small_factor_never_shortens_below_bantime() {
        let e = Escalation {
            factor: 0.1,
            ..esc()
        };
        assert_eq!(e.ban_seconds(600, 1, 0.0), 600);
    }

    #[test]
    fn multipliers_replace_the_formula_and_repeat_the_last() {
        let e = Escalation {
            multipliers: vec![1.0, 5.0, 30.0],
            ..esc()
        };
        let got: Vec<u64> = (0..5).map(|n| e.ban_seconds(60, n, 0.0)).collect();
        assert_eq!(got, [60, 300, 1_800, 1_800, 1_800]);
    }

    #[test]
    fn maxtime_caps_then_rndtime_adds() {
        let e = Escalation {
            maxtime: Some(5_000),
            rndtime: Some(100),
            ..esc()
        };
        assert_eq!(e.ban_seconds(600, 10, 0.0), 5_000);
        assert_eq!(e.ban_seconds(600, 10, 0.5), 5_050);
    }

    #[test]
    fn disabled_escalation_keeps_bantime() {
        let e = Escalation::default();
        assert_eq!(e.ban_seconds(600, 7, 0.5), 600);
    }

    #[test]
    fn jitter_is_in_unit_interval_and_deterministic() {
        let (mut a, mut b) = (Jitter::new(42), Jitter::new(42));
        for _ in 0..10_000 {
            let x = a.next_unit();
            assert!((0.0..1.0).contains(&x));
            assert_eq!(x, b.next_unit());
        }
    }
}
