//! The checks of a store after a (simulated or real) crash, shared by
//! tests/powerloss.rs (SQLite crash images) and tests/powerloss_pg.rs
//! (a PostgreSQL server killed): what the workload confirmed, and whether
//! the store still has it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use jobq::{JobFilter, JobState, Queue};

/// The queue the workloads use.
pub const QUEUE: &str = "work";

/// What a workload confirmed before the crash, from its confirmation lines:
/// `P id payload` (put returned OK), `B id,id,... prefix` (put_batch
/// returned OK; item j of n has payload `prefix:j:n`), `T id payload` (an
/// ack of the job is about to be sent: from then on the job may be gone).
#[derive(Default)]
pub struct Confirmed {
    /// id -> payload, of puts and batch items that returned OK.
    pub puts: BTreeMap<u64, String>,
    /// Jobs whose ack had begun (id -> payload).
    pub acking: BTreeMap<u64, String>,
}

impl Confirmed {
    pub fn line(&mut self, line: &str) {
        let parts: Vec<&str> = line.splitn(3, ' ').collect();
        match parts.as_slice() {
            ["P", id, payload] => {
                self.puts.insert(id.parse().unwrap(), (*payload).to_owned());
            }
            ["B", ids, prefix] => {
                let ids: Vec<u64> = ids.split(',').map(|s| s.parse().unwrap()).collect();
                let n = ids.len();
                for (j, id) in ids.into_iter().enumerate() {
                    self.puts.insert(id, format!("{prefix}:{j}:{n}"));
                }
            }
            ["T", id, payload] => {
                self.acking.insert(id.parse().unwrap(), (*payload).to_owned());
            }
            _ => {}
        }
    }
}

/// Counts over all images (or crashes) of one scenario.
#[derive(Default, Debug)]
pub struct Tally {
    pub images: u64,
    pub lost: u64,
    /// Images (or crashes) with at least one confirmed put lost.
    pub images_with_loss: u64,
    pub unopenable: u64,
    pub duplicates: u64,
    pub torn_batches: u64,
    pub wrong_payloads: u64,
    pub stats_mismatches: u64,
    /// Confirmed puts looked for, over all images.
    pub checked: u64,
    /// Jobs found although their ack had begun (the ack was undone or never stored).
    pub acks_undone: u64,
    pub notes: Vec<String>,
}

impl Tally {
    pub fn note(&mut self, s: String) {
        if self.notes.len() < 8 {
            self.notes.push(s);
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "images {}, confirmed puts lost {} (in {} images), unopenable {}, duplicates {} (torn batches {}, wrong payloads {}, stats mismatches {}, acks undone {}; {} confirmed puts checked)",
            self.images,
            self.lost,
            self.images_with_loss,
            self.unopenable,
            self.duplicates,
            self.torn_batches,
            self.wrong_payloads,
            self.stats_mismatches,
            self.acks_undone,
            self.checked
        )
    }

    /// Everything but losses is zero.
    pub fn assert_consistent(&self, name: &str) {
        assert_eq!(self.unopenable, 0, "{name}: stores that did not open or failed integrity_check: {:?}", self.notes);
        assert_eq!(self.duplicates, 0, "{name}: duplicates: {:?}", self.notes);
        assert_eq!(self.torn_batches, 0, "{name}: batches torn: {:?}", self.notes);
        assert_eq!(self.wrong_payloads, 0, "{name}: wrong payloads: {:?}", self.notes);
        assert_eq!(self.stats_mismatches, 0, "{name}: stats disagree with the listing: {:?}", self.notes);
    }
}

/// Checks the open store `q` against what was confirmed. Returns false if
/// it could not be read (counted as unopenable).
pub fn check_queue(q: &Queue, confirmed: &Confirmed, t: &mut Tally, what: &str) -> bool {
    let jobs = match q.list_jobs(&JobFilter::default()) {
        Ok(j) => j,
        Err(e) => {
            t.unopenable += 1;
            t.note(format!("{what}: list failed: {e}"));
            return false;
        }
    };
    let mut ids = BTreeSet::new();
    let mut payloads: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
    for j in &jobs {
        let payload = String::from_utf8_lossy(&j.payload).into_owned();
        if !ids.insert(j.id) {
            t.duplicates += 1;
            t.note(format!("{what}: job id {} twice", j.id));
        }
        if let Some(other) = payloads.insert(payload.clone(), j.id) {
            t.duplicates += 1;
            t.note(format!("{what}: payload {payload} in jobs {other} and {}", j.id));
        }
        *by_state.entry(j.state.as_str()).or_default() += 1;
    }
    let lost_before = t.lost;
    let by_id: BTreeMap<u64, &jobq::JobInfo> = jobs.iter().map(|j| (j.id, j)).collect();
    for (id, payload) in &confirmed.puts {
        t.checked += 1;
        match by_id.get(id) {
            Some(j) if j.payload != payload.as_bytes() => {
                t.wrong_payloads += 1;
                t.note(format!(
                    "{what}: job {id} has payload {:?}, confirmed {payload}",
                    String::from_utf8_lossy(&j.payload)
                ));
            }
            Some(_) if confirmed.acking.contains_key(id) => t.acks_undone += 1,
            Some(_) => {}
            None if confirmed.acking.contains_key(id) => {}
            None => {
                t.lost += 1;
                t.note(format!("{what}: confirmed job {id} ({payload}) lost"));
            }
        }
    }
    if t.lost > lost_before {
        t.images_with_loss += 1;
    }
    // Batches: all items, or none, are there (an item may be gone if its ack began).
    let acking: BTreeSet<&String> = confirmed.acking.values().collect();
    let mut batches: BTreeMap<String, (u64, BTreeSet<u64>)> = BTreeMap::new();
    for payload in payloads.keys().chain(confirmed.puts.values()).chain(confirmed.acking.values()) {
        let parts: Vec<&str> = payload.split(':').collect();
        if let [b, i, j, n] = parts.as_slice() {
            if b.starts_with('b') {
                let e = batches.entry(format!("{b}:{i}")).or_insert((n.parse().unwrap(), BTreeSet::new()));
                if payloads.contains_key(payload) {
                    e.1.insert(j.parse().unwrap());
                }
            }
        }
    }
    for (prefix, (n, present)) in &batches {
        if present.is_empty() || present.len() as u64 == *n {
            continue;
        }
        let explained = (0..*n).filter(|j| !present.contains(j)).all(|j| acking.contains(&format!("{prefix}:{j}:{n}")));
        if !explained {
            t.torn_batches += 1;
            t.note(format!("{what}: batch {prefix} has items {present:?} of {n}"));
        }
    }
    match q.stats() {
        Ok(s) => {
            let c = s.queues.get(QUEUE).copied().unwrap_or_default();
            let listed = |s: JobState| by_state.get(s.as_str()).copied().unwrap_or(0);
            let counted = [c.ready, c.scheduled, c.reserved, c.dead];
            let scanned = [
                listed(JobState::Ready),
                listed(JobState::Scheduled),
                listed(JobState::Reserved),
                listed(JobState::Dead),
            ];
            if counted != scanned || s.queues.keys().any(|k| k != QUEUE) {
                t.stats_mismatches += 1;
                t.note(format!("{what}: stats {counted:?}, listing {scanned:?}"));
            }
        }
        Err(e) => {
            t.stats_mismatches += 1;
            t.note(format!("{what}: stats failed: {e}"));
        }
    }
    true
}
