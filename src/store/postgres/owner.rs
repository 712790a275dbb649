//! Dead clients. Each handle holds a session advisory lock on a random
//! 63-bit owner id (wake.rs) and stamps the jobs it leases with that id.
//! When a client's connection or process dies, the server frees its lock;
//! a reserve that finds nothing (at most every `SCAN_MS` per handle) then
//! reclaims the reserved jobs whose owner's lock nobody holds, with the
//! transitions of an expired lease (the attempt counts; dead on the last).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::pool::{Conn, Fail};
use super::sql;

/// How often a handle's reserves that find nothing look for dead owners.
pub(crate) const SCAN_MS: u64 = 200;

/// A random owner id in 1..=i64::MAX.
pub(crate) fn new_owner_id() -> i64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(d) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    let v = (h.finish() & i64::MAX as u64) as i64;
    v.max(1)
}

/// When this handle last looked, and what it saw.
#[derive(Default)]
pub(crate) struct Scan {
    state: Mutex<(Option<Instant>, bool)>,
}

impl Scan {
    /// Whether a scan is due now (and if so, it is taken as started).
    pub(crate) fn due(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if s.0.is_some_and(|t| now.duration_since(t) < Duration::from_millis(SCAN_MS)) {
            return false;
        }
        s.0 = Some(now);
        true
    }

    /// Whether the last scan saw live owners other than this handle holding leases.
    pub(crate) fn others_alive(&self) -> bool {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1
    }

    fn set_others_alive(&self, alive: bool) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1 = alive;
    }
}

/// Reclaims the jobs of `queue` held by dead owners; returns how many.
pub(crate) async fn reclaim(conn: &mut Conn, scan: &Scan, queue: &str, now: i64, me: i64) -> Result<u64, Fail> {
    let st = conn.prep(sql::RECLAIM_DEAD_OWNERS).await?;
    let row = conn.client.query_one(&st, &[&queue, &now, &me]).await?;
    let reclaimed: i64 = row.try_get(0)?;
    let alive: i64 = row.try_get(1)?;
    scan.set_others_alive(alive > 0);
    Ok(reclaimed.max(0) as u64)
}
