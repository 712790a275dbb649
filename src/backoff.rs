//! Retry delays: `base * 2^(attempt-1)`, capped, with a random spread so
//! that many jobs failing together do not all come back at the same moment.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// The delay before retrying after failed delivery number `attempt` (1-based).
pub fn retry_delay_ms(attempt: u32, base_ms: u64, max_ms: u64, jitter: f64) -> u64 {
    let exp = attempt.saturating_sub(1).min(63);
    let raw = base_ms.saturating_mul(1u64.checked_shl(exp).unwrap_or(u64::MAX)).min(max_ms);
    if jitter <= 0.0 || raw == 0 {
        return raw;
    }
    // Uniform in [raw * (1 - jitter), raw * (1 + jitter)], still capped.
    let spread = (2.0 * unit_random() - 1.0) * jitter;
    ((raw as f64) * (1.0 + spread)).round().clamp(0.0, max_ms as f64) as u64
}

/// A uniform number in [0, 1) from a per-thread xorshift generator.
fn unit_random() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = RandomState::new().build_hasher();
            h.write_u64(0x9e37_79b9_7f4a_7c15);
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        assert_eq!(retry_delay_ms(1, 1000, 3_600_000, 0.0), 1000);
        assert_eq!(retry_delay_ms(2, 1000, 3_600_000, 0.0), 2000);
        assert_eq!(retry_delay_ms(5, 1000, 3_600_000, 0.0), 16000);
        assert_eq!(retry_delay_ms(40, 1000, 3_600_000, 0.0), 3_600_000);
        assert_eq!(retry_delay_ms(u32::MAX, u64::MAX, u64::MAX, 0.0), u64::MAX);
        assert_eq!(retry_delay_ms(0, 1000, 5000, 0.0), 1000);
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..1000 {
            let d = retry_delay_ms(3, 1000, 3_600_000, 0.1);
            assert!((3600..=4400).contains(&d), "{d}");
        }
        assert!(retry_delay_ms(30, 1000, 5000, 0.5) <= 5000);
    }
}
