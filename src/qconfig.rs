//! Per-queue delivery limits (`Queue::configure`, C: `jobq_queue_config`):
//! the types every layer shares, the JSON the caller gives, and the one
//! definition of the fixed rate window that both backends apply inside
//! their claim transaction.
//!
//! Rate window semantics (fixed window): a window opens at the first
//! delivery after the previous window ended and lasts `per_ms`; at most
//! `jobs` deliveries happen in it. The store keeps, per limited queue, the
//! window's start and its deliveries so far, updated in the transaction
//! that leases, so the limit holds across every process and host.

use crate::error::{Error, Result};
use crate::limits::{MAX_DELAY_MS, MAX_LIMIT};

/// A rate limit: at most `jobs` deliveries per window of `per_ms` ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rate {
    pub jobs: u64,
    pub per_ms: u64,
}

/// The limits of one queue, as stats show them (`"limits"`); a key whose
/// limit is not set is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueLimits {
    /// At most this many jobs of the queue reserved (with a live lease) at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_reserved: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
}

impl QueueLimits {
    pub fn is_empty(&self) -> bool {
        self.max_reserved.is_none() && self.rate.is_none()
    }
}

/// A change of a queue's limits: per key, `None` keeps the stored value,
/// `Some(None)` removes the limit, `Some(Some(v))` sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsPatch {
    pub max_reserved: Option<Option<u64>>,
    pub rate: Option<Option<Rate>>,
}

impl LimitsPatch {
    /// `old` with this change applied.
    pub fn apply(&self, old: QueueLimits) -> QueueLimits {
        QueueLimits { max_reserved: self.max_reserved.unwrap_or(old.max_reserved), rate: self.rate.unwrap_or(old.rate) }
    }

    /// Parses the JSON of `jobq_queue_config`: an object with the keys
    /// `max_reserved` (an integer >= 1, or null) and `rate` (`{"jobs": N,
    /// "per_ms": M}`, integers >= 1, or null). Anything else is `InvalidArg`
    /// with a message naming what is wrong.
    pub fn parse(json: &str) -> Result<LimitsPatch> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| Error::invalid(format!("queue config: invalid JSON: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(Error::invalid("queue config: must be a JSON object, such as {\"max_reserved\": 4}"));
        };
        let mut patch = LimitsPatch::default();
        for (key, v) in &map {
            match key.as_str() {
                "max_reserved" => {
                    patch.max_reserved =
                        Some(if v.is_null() { None } else { Some(positive(v, "max_reserved", MAX_LIMIT)?) });
                }
                "rate" => patch.rate = Some(if v.is_null() { None } else { Some(rate(v)?) }),
                other => {
                    return Err(Error::invalid(format!(
                        "queue config: unknown key {other:?} (known: max_reserved, rate)"
                    )))
                }
            }
        }
        Ok(patch)
    }
}

fn rate(v: &serde_json::Value) -> Result<Rate> {
    let bad = || Error::invalid("queue config: rate must be {\"jobs\": N, \"per_ms\": M} (integers >= 1) or null");
    let serde_json::Value::Object(map) = v else { return Err(bad()) };
    for key in map.keys() {
        if key != "jobs" && key != "per_ms" {
            return Err(Error::invalid(format!("queue config: unknown key {key:?} in rate (known: jobs, per_ms)")));
        }
    }
    let jobs = map.get("jobs").ok_or_else(bad)?;
    let per_ms = map.get("per_ms").ok_or_else(bad)?;
    Ok(Rate { jobs: positive(jobs, "rate.jobs", MAX_LIMIT)?, per_ms: positive(per_ms, "rate.per_ms", MAX_DELAY_MS)? })
}

/// An integer 1..=max.
fn positive(v: &serde_json::Value, what: &str, max: u64) -> Result<u64> {
    match v.as_u64() {
        Some(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(Error::invalid(format!("queue config: {what} must be an integer from 1 to {max}, not {v}"))),
    }
}

/// A limited queue's stored state: its limits and its rate window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    pub limits: QueueLimits,
    /// When the current (or last) rate window opened.
    pub window_start: i64,
    /// Deliveries counted in that window.
    pub window_count: u64,
}

impl Stored {
    /// Whether the window has ended at `now` (the next delivery opens a new one).
    pub fn window_over(&self, now: i64) -> bool {
        match self.limits.rate {
            Some(r) => now >= self.window_start.saturating_add(r.per_ms.min(i64::MAX as u64) as i64),
            None => true,
        }
    }

    /// Deliveries counted in the window that is open at `now` (0 if none is).
    pub fn rate_used(&self, now: i64) -> u64 {
        if self.window_over(now) {
            0
        } else {
            self.window_count
        }
    }

    /// How many of `want` jobs may be leased at `now`, with `reserved` jobs
    /// of the queue reserved with a live lease.
    pub fn allowance(&self, now: i64, reserved: u64, want: usize) -> usize {
        let mut n = want as u64;
        if let Some(max) = self.limits.max_reserved {
            n = n.min(max.saturating_sub(reserved));
        }
        if let Some(r) = self.limits.rate {
            n = n.min(r.jobs.saturating_sub(self.rate_used(now)));
        }
        n as usize
    }

    /// When the rate window ends, if the rate allows no more deliveries in it
    /// (a waiting reserve must look again then).
    pub fn blocked_until(&self, now: i64) -> Option<i64> {
        let r = self.limits.rate?;
        (!self.window_over(now) && self.window_count >= r.jobs)
            .then(|| self.window_start.saturating_add(r.per_ms.min(i64::MAX as u64) as i64))
    }

    /// The window after `taken` more deliveries at `now`: (start, count).
    pub fn after_taking(&self, now: i64, taken: u64) -> (i64, u64) {
        if self.window_over(now) {
            (now, taken)
        } else {
            (self.window_start, self.window_count.saturating_add(taken))
        }
    }
}

/// The earlier of two optional times.
pub(crate) fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let p = LimitsPatch::parse(r#"{"max_reserved": 4, "rate": {"jobs": 10, "per_ms": 1000}}"#).unwrap();
        assert_eq!(p.max_reserved, Some(Some(4)));
        assert_eq!(p.rate, Some(Some(Rate { jobs: 10, per_ms: 1000 })));
        let p = LimitsPatch::parse(r#"{"rate": null}"#).unwrap();
        assert_eq!(p, LimitsPatch { max_reserved: None, rate: Some(None) });
        assert_eq!(LimitsPatch::parse("{}").unwrap(), LimitsPatch::default());
        for bad in [
            "",
            "[]",
            "{",
            r#"{"max_reserved": 0}"#,
            r#"{"max_reserved": -1}"#,
            r#"{"max_reserved": 1.5}"#,
            r#"{"max_reserved": "2"}"#,
            r#"{"max_reserved": 1e30}"#,
            r#"{"rate": 3}"#,
            r#"{"rate": {"jobs": 1}}"#,
            r#"{"rate": {"jobs": 1, "per_ms": 0}}"#,
            r#"{"rate": {"jobs": 1, "per_ms": 10, "burst": 2}}"#,
            r#"{"concurrency": 2}"#,
        ] {
            assert!(matches!(LimitsPatch::parse(bad), Err(Error::InvalidArg(_))), "{bad}");
        }
    }

    #[test]
    fn fixed_window() {
        let s = Stored {
            limits: QueueLimits { max_reserved: Some(3), rate: Some(Rate { jobs: 2, per_ms: 100 }) },
            window_start: 1000,
            window_count: 1,
        };
        assert_eq!(s.allowance(1050, 0, 10), 1);
        assert_eq!(s.allowance(1050, 3, 10), 0);
        assert_eq!(s.allowance(1100, 1, 10), 2);
        assert_eq!(s.after_taking(1050, 1), (1000, 2));
        assert_eq!(s.after_taking(1100, 2), (1100, 2));
        let full = Stored { window_count: 2, ..s };
        assert_eq!(full.blocked_until(1099), Some(1100));
        assert_eq!(full.blocked_until(1100), None);
        assert_eq!(s.blocked_until(1050), None);
    }
}
