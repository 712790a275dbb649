//! A job's record as the JSON of `jobq_job_info` (docs/results.md): one
//! object, every field always present (null when it does not apply), so a
//! C caller can look fields up without guessing.

use serde_json::{json, Value};

use crate::store::{JobInfo, JobState};

/// The JSON object of `job` (see `jobq_job_info` for the fields).
pub(crate) fn job_json(job: &JobInfo) -> Value {
    let done = job.state == JobState::Done;
    let result = job.result.as_deref();
    json!({
        "id": job.id,
        "queue": job.queue,
        "state": job.state.as_str(),
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "last_error": job.last_error,
        // The result as text when it is UTF-8 (most are: JSON, a path, a
        // message); result_b64 always carries the exact bytes.
        "result": result.and_then(|r| std::str::from_utf8(r).ok()),
        "result_b64": result.map(base64),
        "result_len": result.map(<[u8]>::len),
        "unique_key": job.unique_key,
        "payload_len": job.payload_len,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "run_at": job.run_at,
        "lease_until": job.lease_until,
        "finished_at": done.then_some(job.updated_at),
        "expires_at": done.then_some(job.run_at),
    })
}

/// Standard base64 (RFC 4648, with `=` padding).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0x00, 0xfe]), "/wD+");
    }
}
