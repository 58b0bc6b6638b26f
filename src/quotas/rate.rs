//! The rate arithmetic shared by the in-memory and the Redis quota backends .
//!
//! A per-minute limit is a generic cell rate algorithm (GCRA): each subject keeps one instant,
//! its theoretical arrival time (TAT). A unit of work (a request, or a token) costs
//! `60 s / limit`; work is admitted while `TAT - now` stays within a minute, so `limit` units fit
//! in any minute and the allowance refills continuously (no window edges that let twice the
//! limit through). Requests are charged before the call; tokens are charged when the response
//! ends (its usage is only known then), so a call is refused while the subject is in debt.
//!
//! The Redis script (`crate::store`) does the same steps atomically, timed by Redis's clock.

use std::time::Duration;

/// The window every limit is per.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The cost of one unit under a per-minute `limit`, in microseconds.
pub fn unit_cost_us(limit: u64) -> u64 {
    (WINDOW.as_micros() as u64) / limit.max(1)
}

/// One GCRA step at `now_us` for a subject whose stored TAT is `tat_us` (0 when none):
/// charges `units` if they fit (or unconditionally with `force`, for usage reported after the
/// fact); negative `units` give back an earlier charge. Returns the new TAT when admitted, or
/// how long until `units` would fit.
pub fn step(
    tat_us: u64,
    now_us: u64,
    units: i64,
    limit: u64,
    force: bool,
) -> Result<u64, Duration> {
    let window = WINDOW.as_micros() as u64;
    let cost = unit_cost_us(limit);
    if units < 0 {
        let refund = units.unsigned_abs().saturating_mul(cost);
        return Ok(tat_us.saturating_sub(refund).max(now_us));
    }
    let tat = tat_us.max(now_us);
    let new_tat = tat.saturating_add((units as u64).saturating_mul(cost));
    if force || new_tat.saturating_sub(now_us) <= window {
        return Ok(new_tat);
    }
    Err(Duration::from_micros(
        new_tat.saturating_sub(now_us).saturating_sub(window),
    ))
}

/// How many units of a per-minute `limit` are in use at `now_us` (for the usage gauges).
pub fn in_use(tat_us: u64, now_us: u64, limit: u64) -> u64 {
    tat_us
        .saturating_sub(now_us)
        .div_ceil(unit_cost_us(limit).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    #[test]
    fn a_minute_holds_the_limit_then_refills_continuously() {
        let mut tat = 0;
        let now = 1_000 * SECOND;
        for _ in 0..10 {
            tat = step(tat, now, 1, 10, false).unwrap();
        }
        let wait = step(tat, now, 1, 10, false).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6), "one request frees every 6 s");
        assert_eq!(in_use(tat, now, 10), 10);
        // Six seconds later one more fits, not eleven.
        let later = now + 6 * SECOND;
        tat = step(tat, later, 1, 10, false).unwrap();
        assert!(step(tat, later, 1, 10, false).is_err());
        assert_eq!(in_use(tat, later, 10), 10);
    }

    #[test]
    fn tokens_charged_after_the_fact_put_the_subject_in_debt() {
        let now = 5 * SECOND;
        // 100 tokens per minute; a response used 150.
        let tat = step(0, now, 150, 100, true).unwrap();
        // Any new call is refused until the debt is paid off: 30 s.
        assert_eq!(step(tat, now, 0, 100, false), Err(Duration::from_secs(30)));
        assert!(step(tat, now + 30 * SECOND, 0, 100, false).is_ok());
    }

    #[test]
    fn a_refund_gives_a_charge_back() {
        let now = 9 * SECOND;
        let tat = step(0, now, 1, 10, false).unwrap();
        assert_eq!(step(tat, now, -1, 10, false), Ok(now));
    }
}
