//! Per-file settings: parsed from the JSON given to `jobq_open`, with the
//! defaults of API.md. Unknown keys are rejected so a typo is not silently ignored.

use serde::Deserialize;

use crate::error::{Error, Result};

/// What a successful write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The write is on disk (fsync) before the call returns: survives power loss.
    Full,
    /// Survives a crash of the process; the last writes may be lost on power loss.
    Normal,
}

/// How a PostgreSQL store hears of other clients' commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Wakeups {
    /// LISTEN/NOTIFY on a connection of its own (the default).
    Listen,
    /// Poll only: for poolers that cannot keep a LISTEN session (PgBouncer
    /// in transaction mode). Waiting reserves look again every few ms.
    Poll,
}

/// Settings of an open queue file. `Config::default()` has the documented defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub durability: Durability,
    /// How long a delivered job stays reserved before it is delivered again.
    pub lease_ms: u64,
    /// Deliveries before a failing job goes dead.
    pub max_attempts: u32,
    /// Retry delay after attempt n is `backoff_base_ms * 2^(n-1)`, capped by `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Random spread of the retry delay, as a fraction in [0, 1].
    pub backoff_jitter: f64,
    /// How long to wait for another process's write lock.
    pub busy_timeout_ms: u64,
    pub max_payload_bytes: u64,
    /// Permission bits of a newly created queue file (existing files keep
    /// theirs). SQLite only.
    pub file_mode: u32,
    /// Connections per handle. PostgreSQL only.
    pub pool_size: u32,
    /// How waiting reserves hear of other clients' jobs. PostgreSQL only.
    pub wakeups: Wakeups,
    /// How long a job acked through this handle stays in the store in
    /// state "done", with its result (docs/results.md); 0 = deleted at ack.
    pub keep_done_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            durability: Durability::Full,
            lease_ms: 30_000,
            max_attempts: 25,
            backoff_base_ms: 1_000,
            backoff_max_ms: 3_600_000,
            backoff_jitter: 0.1,
            busy_timeout_ms: 5_000,
            max_payload_bytes: 16 * 1024 * 1024,
            file_mode: 0o600,
            pool_size: 4,
            wakeups: Wakeups::Listen,
            keep_done_ms: 0,
        }
    }
}

/// Upper bound for millisecond settings: ~3 years; keeps `now + ms` far from overflow.
const MAX_MS: u64 = 100_000_000_000;

impl Config {
    /// Parses a JSON object; `None` gives the defaults.
    pub fn from_json(json: Option<&str>) -> Result<Config> {
        let config = match json {
            None => Config::default(),
            Some(text) => {
                // Only an object: serde would also read a struct from an
                // array, by field position, which silently changes meaning.
                // (Checked on the text, so that a repeated key stays an error.)
                if !text.trim_start().starts_with('{') {
                    return Err(Error::invalid("config JSON must be an object, e.g. {\"durability\": \"normal\"}"));
                }
                serde_json::from_str::<Config>(text).map_err(|e| Error::invalid(format!("config JSON: {e}")))?
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges; called by `from_json` and by `Queue::open`.
    pub fn validate(&self) -> Result<()> {
        let ms = |name: &str, v: u64, min: u64| {
            if v < min || v > MAX_MS {
                Err(Error::invalid(format!("config: {name} must be in {min}..={MAX_MS}, got {v}")))
            } else {
                Ok(())
            }
        };
        ms("lease_ms", self.lease_ms, 1)?;
        ms("backoff_base_ms", self.backoff_base_ms, 0)?;
        ms("backoff_max_ms", self.backoff_max_ms, 0)?;
        ms("busy_timeout_ms", self.busy_timeout_ms, 0)?;
        ms("keep_done_ms", self.keep_done_ms, 0)?;
        if self.busy_timeout_ms > i32::MAX as u64 {
            return Err(Error::invalid("config: busy_timeout_ms must fit in 32 bits"));
        }
        if self.max_attempts == 0 {
            return Err(Error::invalid("config: max_attempts must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.backoff_jitter) {
            return Err(Error::invalid(format!(
                "config: backoff_jitter must be in 0..=1, got {}",
                self.backoff_jitter
            )));
        }
        if self.max_payload_bytes > 1_000_000_000 {
            return Err(Error::invalid("config: max_payload_bytes must be at most 1000000000"));
        }
        if self.file_mode > 0o777 {
            return Err(Error::invalid(format!(
                "config: file_mode must be at most 0o777 (511), got {}",
                self.file_mode
            )));
        }
        if self.pool_size == 0 || self.pool_size > 64 {
            return Err(Error::invalid(format!("config: pool_size must be in 1..=64, got {}", self.pool_size)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::from_json(None).unwrap();
        assert_eq!(c.durability, Durability::Full);
        assert_eq!(c.lease_ms, 30_000);
        assert_eq!(c.max_attempts, 25);
        assert_eq!(c.max_payload_bytes, 16_777_216);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_json(Some(r#"{"lease":5}"#)).unwrap_err();
        assert!(e.to_string().contains("lease"), "{e}");
    }

    #[test]
    fn bad_values_are_rejected() {
        for bad in [
            r#"{"durability":"sometimes"}"#,
            r#"{"lease_ms":0}"#,
            r#"{"max_attempts":0}"#,
            r#"{"backoff_jitter":2}"#,
            r#"{"lease_ms":-1}"#,
            r#"[1]"#,
            r#"[]"#,
            r#"["normal", 5]"#,
            "null",
            "7",
            r#"{"lease_ms": 5, "lease_ms": 6}"#,
            "{",
            "",
        ] {
            assert!(matches!(Config::from_json(Some(bad)), Err(Error::InvalidArg(_))), "{bad}");
        }
        assert!(matches!(Config::from_json(Some(r#"{"keep_done_ms":-1}"#)), Err(Error::InvalidArg(_))));
        assert!(matches!(Config::from_json(Some(r#"{"keep_done_ms":1e20}"#)), Err(Error::InvalidArg(_))));
        assert_eq!(Config::from_json(Some(r#"{"keep_done_ms":50}"#)).unwrap().keep_done_ms, 50);
        assert_eq!(Config::default().keep_done_ms, 0);
        let c = Config::from_json(Some(r#"{"durability":"normal","lease_ms":5}"#)).unwrap();
        assert_eq!((c.durability, c.lease_ms), (Durability::Normal, 5));
    }
}
