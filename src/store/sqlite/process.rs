//! Who holds a lease: this process, named so that the name survives PID
//! reuse (PID + the process's start time + the boot id). Stored with each
//! delivery so that a reserve on the same machine can tell that the holder
//! died without waiting for the lease to run out.

use std::fs;

/// The owner name of the calling process ("pid:starttime:bootid").
pub(crate) fn current_owner() -> String {
    owner_of(std::process::id()).unwrap_or_else(|| format!("{}:?:?", std::process::id()))
}

fn boot_id() -> Option<String> {
    Some(fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?.trim().to_string())
}

/// Field 22 of /proc/PID/stat: start time in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn owner_of(pid: u32) -> Option<String> {
    Some(format!("{pid}:{}:{}", start_time(pid)?, boot_id()?))
}

/// Whether the process named by `owner` is known to be gone. `false` when
/// unsure (another machine's boot id, unreadable /proc): then the lease runs out.
pub(crate) fn owner_is_dead(owner: &str) -> bool {
    let mut parts = owner.splitn(3, ':');
    let (Some(pid), Some(start), Some(boot)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    if boot_id().as_deref() != Some(boot) {
        return false;
    }
    match start_time(pid) {
        None => fs::metadata("/proc/self/stat").is_ok(),
        Some(now_start) => now_start != start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_is_alive_and_garbage_is_not_dead() {
        let me = current_owner();
        assert!(!owner_is_dead(&me), "{me}");
        assert!(!owner_is_dead("garbage"));
        assert!(!owner_is_dead("1:2:another-boot"));
    }
}
