//! The beanstalkd command line: framing (where a line ends, when it is too
//! long) and parsing into `Command`, with the exact acceptance rules of
//! beanstalkd 1.12 (prot.c): commands are recognised by prefix in its order,
//! numbers are read the way its `read_u32`/`read_u64`/`strtoul`/`strtol`
//! calls read them, and a tube name is checked as `is_valid_tube` does.
//! Pure functions: no I/O, nothing here can panic on any input.

/// The longest command line, "\r\n" included (beanstalkd's LINE_BUF_SIZE).
pub const LINE_MAX: usize = 224;
/// The longest tube name, in bytes.
pub const MAX_TUBE_NAME: usize = 200;
/// Ready jobs with a priority below this count as urgent in the stats.
pub const URGENT_THRESHOLD: u32 = 1024;

const NAME_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-+/;.$_()";

/// What the start of the input holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line of this many bytes, "\r\n" included.
    Line(usize),
    /// `LINE_MAX` bytes without a line end: beanstalkd drops them and skips
    /// to the next line end, answering BAD_FORMAT there.
    TooLong,
    /// Not enough input yet.
    Incomplete,
}

/// Where the first line of `input` ends. As beanstalkd, only the first
/// '\r' of the first `LINE_MAX` bytes counts: a line end is that '\r'
/// followed by '\n'; a lone '\r' means no line end until the buffer is full.
pub fn frame(input: &[u8]) -> Frame {
    let window = &input[..input.len().min(LINE_MAX)];
    if window.len() >= 2 {
        if let Some(cr) = window[..window.len() - 1].iter().position(|&b| b == b'\r') {
            if window.get(cr + 1) == Some(&b'\n') {
                return Frame::Line(cr + 2);
            }
        }
    }
    if window.len() >= LINE_MAX {
        Frame::TooLong
    } else {
        Frame::Incomplete
    }
}

/// One parsed command. Names borrow from the line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `trailing` is set when garbage follows the size: beanstalkd checks
    /// the size (JOB_TOO_BIG, body skipped) before it (BAD_FORMAT).
    Put {
        pri: u32,
        delay: u32,
        ttr: u32,
        bytes: u32,
        trailing: bool,
    },
    Use(&'a str),
    Reserve,
    /// Seconds; negative waits forever (beanstalkd 1.12 reads it with strtol).
    ReserveWithTimeout(i32),
    ReserveJob(u64),
    Delete(u64),
    Release {
        id: u64,
        pri: u32,
        delay: u32,
    },
    Bury {
        id: u64,
        pri: u32,
    },
    Touch(u64),
    Watch(&'a str),
    Ignore(&'a str),
    Peek(u64),
    PeekReady,
    PeekDelayed,
    PeekBuried,
    Kick(u32),
    KickJob(u64),
    StatsJob(u64),
    StatsTube(&'a str),
    Stats,
    ListTubes,
    ListTubeUsed,
    ListTubesWatched,
    PauseTube {
        tube: &'a str,
        delay: u32,
    },
    Quit,
}

/// Why a line is refused.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Refusal {
    BadFormat,
    UnknownCommand,
}

/// The operations beanstalkd counts in its stats (`cmd-*`), in the order
/// of its stats output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Peek,
    PeekReady,
    PeekDelayed,
    PeekBuried,
    Reserve,
    ReserveWithTimeout,
    Delete,
    Release,
    Use,
    Watch,
    Ignore,
    Bury,
    Kick,
    Touch,
    Stats,
    StatsJob,
    StatsTube,
    ListTubes,
    ListTubeUsed,
    ListTubesWatched,
    PauseTube,
    // Counted by beanstalkd but not shown in its stats.
    ReserveJob,
    KickJob,
    Quit,
}

impl Op {
    pub const COUNT: usize = 25;
    /// The ops shown by `stats`, with their keys.
    pub const SHOWN: [(Op, &'static str); 22] = [
        (Op::Put, "cmd-put"),
        (Op::Peek, "cmd-peek"),
        (Op::PeekReady, "cmd-peek-ready"),
        (Op::PeekDelayed, "cmd-peek-delayed"),
        (Op::PeekBuried, "cmd-peek-buried"),
        (Op::Reserve, "cmd-reserve"),
        (Op::ReserveWithTimeout, "cmd-reserve-with-timeout"),
        (Op::Delete, "cmd-delete"),
        (Op::Release, "cmd-release"),
        (Op::Use, "cmd-use"),
        (Op::Watch, "cmd-watch"),
        (Op::Ignore, "cmd-ignore"),
        (Op::Bury, "cmd-bury"),
        (Op::Kick, "cmd-kick"),
        (Op::Touch, "cmd-touch"),
        (Op::Stats, "cmd-stats"),
        (Op::StatsJob, "cmd-stats-job"),
        (Op::StatsTube, "cmd-stats-tube"),
        (Op::ListTubes, "cmd-list-tubes"),
        (Op::ListTubeUsed, "cmd-list-tube-used"),
        (Op::ListTubesWatched, "cmd-list-tubes-watched"),
        (Op::PauseTube, "cmd-pause-tube"),
    ];
}

impl Command<'_> {
    /// The stats counter this command counts in.
    pub fn op(&self) -> Op {
        match self {
            Command::Put { .. } => Op::Put,
            Command::Use(_) => Op::Use,
            Command::Reserve => Op::Reserve,
            Command::ReserveWithTimeout(_) => Op::ReserveWithTimeout,
            Command::ReserveJob(_) => Op::ReserveJob,
            Command::Delete(_) => Op::Delete,
            Command::Release { .. } => Op::Release,
            Command::Bury { .. } => Op::Bury,
            Command::Touch(_) => Op::Touch,
            Command::Watch(_) => Op::Watch,
            Command::Ignore(_) => Op::Ignore,
            Command::Peek(_) => Op::Peek,
            Command::PeekReady => Op::PeekReady,
            Command::PeekDelayed => Op::PeekDelayed,
            Command::PeekBuried => Op::PeekBuried,
            Command::Kick(_) => Op::Kick,
            Command::KickJob(_) => Op::KickJob,
            Command::StatsJob(_) => Op::StatsJob,
            Command::StatsTube(_) => Op::StatsTube,
            Command::Stats => Op::Stats,
            Command::ListTubes => Op::ListTubes,
            Command::ListTubeUsed => Op::ListTubeUsed,
            Command::ListTubesWatched => Op::ListTubesWatched,
            Command::PauseTube { .. } => Op::PauseTube,
            Command::Quit => Op::Quit,
        }
    }
}

/// Whether `name` is a tube name beanstalkd accepts.
pub fn valid_tube(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= MAX_TUBE_NAME && name[0] != b'-' && name.iter().all(|b| NAME_CHARS.contains(b))
}

/// Parses one command line (without its "\r\n").
pub fn parse(line: &[u8]) -> Result<Command<'_>, Refusal> {
    use Refusal::BadFormat;
    // beanstalkd reads the line as a C string: a NUL inside is refused.
    if line.contains(&0) {
        return Err(BadFormat);
    }
    let exact = |cmd: Command<'static>, name: &[u8]| if line == name { Ok(cmd) } else { Err(BadFormat) };
    // The order of beanstalkd's which_cmd: the first prefix that matches wins.
    if let Some(rest) = line.strip_prefix(b"put ") {
        let (pri, rest) = read_u32(rest).ok_or(BadFormat)?;
        let (delay, rest) = read_u32(rest).ok_or(BadFormat)?;
        let (ttr, rest) = read_u32(rest).ok_or(BadFormat)?;
        let (bytes, rest) = read_u32(rest).ok_or(BadFormat)?;
        return Ok(Command::Put { pri, delay, ttr, bytes, trailing: !rest.is_empty() });
    }
    if let Some(rest) = line.strip_prefix(b"peek ") {
        return Ok(Command::Peek(read_u64_all(rest)?));
    }
    if line.starts_with(b"peek-ready") {
        return exact(Command::PeekReady, b"peek-ready");
    }
    if line.starts_with(b"peek-delayed") {
        return exact(Command::PeekDelayed, b"peek-delayed");
    }
    if line.starts_with(b"peek-buried") {
        return exact(Command::PeekBuried, b"peek-buried");
    }
    if let Some(rest) = line.strip_prefix(b"reserve-with-timeout ") {
        return Ok(Command::ReserveWithTimeout(strtol_int(rest)?));
    }
    if let Some(rest) = line.strip_prefix(b"reserve-job ") {
        return Ok(Command::ReserveJob(read_u64_all(rest)?));
    }
    if line.starts_with(b"reserve") {
        return exact(Command::Reserve, b"reserve");
    }
    if let Some(rest) = line.strip_prefix(b"delete ") {
        return Ok(Command::Delete(read_u64_all(rest)?));
    }
    if let Some(rest) = line.strip_prefix(b"release ") {
        let (id, rest) = read_u64(rest).ok_or(BadFormat)?;
        let (pri, rest) = read_u32(rest).ok_or(BadFormat)?;
        let delay = read_u32_all(rest)?;
        return Ok(Command::Release { id, pri, delay });
    }
    if let Some(rest) = line.strip_prefix(b"bury ") {
        let (id, rest) = read_u64(rest).ok_or(BadFormat)?;
        let pri = read_u32_all(rest)?;
        return Ok(Command::Bury { id, pri });
    }
    if let Some(rest) = line.strip_prefix(b"kick ") {
        return Ok(Command::Kick(strtoul_uint(rest)?));
    }
    if let Some(rest) = line.strip_prefix(b"kick-job ") {
        return Ok(Command::KickJob(read_u64_all(rest)?));
    }
    if let Some(rest) = line.strip_prefix(b"touch ") {
        return Ok(Command::Touch(read_u64_all(rest)?));
    }
    if let Some(rest) = line.strip_prefix(b"stats-job ") {
        return Ok(Command::StatsJob(read_u64_all(rest)?));
    }
    if let Some(rest) = line.strip_prefix(b"stats-tube ") {
        return Ok(Command::StatsTube(name_arg(rest)?));
    }
    if line.starts_with(b"stats") {
        return exact(Command::Stats, b"stats");
    }
    if let Some(rest) = line.strip_prefix(b"use ") {
        return Ok(Command::Use(name_arg(rest)?));
    }
    if let Some(rest) = line.strip_prefix(b"watch ") {
        return Ok(Command::Watch(name_arg(rest)?));
    }
    if let Some(rest) = line.strip_prefix(b"ignore ") {
        return Ok(Command::Ignore(name_arg(rest)?));
    }
    if line.starts_with(b"list-tubes-watched") {
        return exact(Command::ListTubesWatched, b"list-tubes-watched");
    }
    if line.starts_with(b"list-tube-used") {
        return exact(Command::ListTubeUsed, b"list-tube-used");
    }
    if line.starts_with(b"list-tubes") {
        return exact(Command::ListTubes, b"list-tubes");
    }
    if line.starts_with(b"quit") {
        // beanstalkd closes on any line starting with "quit".
        return Ok(Command::Quit);
    }
    if let Some(rest) = line.strip_prefix(b"pause-tube") {
        let rest = skip_spaces(rest);
        let len = rest.iter().take_while(|b| NAME_CHARS.contains(b)).count();
        if len == 0 {
            return Err(BadFormat);
        }
        let (tube, rest) = rest.split_at(len);
        let delay = read_u32_all(rest)?;
        return Ok(Command::PauseTube { tube: name_arg(tube)?, delay });
    }
    Err(Refusal::UnknownCommand)
}

/// A tube name argument: the whole rest of the line.
fn name_arg(rest: &[u8]) -> Result<&str, Refusal> {
    if valid_tube(rest) {
        // Only ASCII name characters: always UTF-8.
        std::str::from_utf8(rest).map_err(|_| Refusal::BadFormat)
    } else {
        Err(Refusal::BadFormat)
    }
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

/// beanstalkd's read_u64: spaces, then at least one digit; the value must
/// fit in 64 bits. Returns the value and what follows the digits.
fn read_u64(s: &[u8]) -> Option<(u64, &[u8])> {
    let s = skip_spaces(s);
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in &s[..digits] {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some((value, &s[digits..]))
}

fn read_u32(s: &[u8]) -> Option<(u32, &[u8])> {
    let (value, rest) = read_u64(s)?;
    Some((u32::try_from(value).ok()?, rest))
}

/// A number that must end the line.
fn read_u64_all(s: &[u8]) -> Result<u64, Refusal> {
    match read_u64(s) {
        Some((value, [])) => Ok(value),
        _ => Err(Refusal::BadFormat),
    }
}

fn read_u32_all(s: &[u8]) -> Result<u32, Refusal> {
    match read_u32(s) {
        Some((value, [])) => Ok(value),
        _ => Err(Refusal::BadFormat),
    }
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// C's strtoul/strtol front: white space, a sign, digits. `None` when the
/// magnitude does not fit in 64 bits (ERANGE); `Some((negative, 0, false))`
/// when there are no digits.
fn c_number(s: &[u8]) -> Option<(bool, u64, bool)> {
    let n = s.iter().take_while(|&&b| is_c_space(b)).count();
    let mut s = &s[n..];
    let mut negative = false;
    if let Some((&sign, rest)) = s.split_first() {
        if sign == b'+' || sign == b'-' {
            negative = sign == b'-';
            s = rest;
        }
    }
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut value: u64 = 0;
    for &b in &s[..digits] {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some((negative, value, digits > 0))
}

/// `kick`'s bound as beanstalkd reads it: strtoul (a sign allowed, "-n"
/// wraps, garbage after the digits ignored; no digits or out of range:
/// BAD_FORMAT), then cut to an unsigned int.
fn strtoul_uint(s: &[u8]) -> Result<u32, Refusal> {
    match c_number(s) {
        Some((negative, value, true)) => {
            let value = if negative { value.wrapping_neg() } else { value };
            Ok(value as u32)
        }
        _ => Err(Refusal::BadFormat),
    }
}

/// `reserve-with-timeout`'s seconds as beanstalkd 1.12 reads them: strtol
/// (no digits is 0, garbage after the digits ignored, out of the range of
/// a long: BAD_FORMAT), then cut to an int.
fn strtol_int(s: &[u8]) -> Result<i32, Refusal> {
    let (negative, magnitude, _) = c_number(s).ok_or(Refusal::BadFormat)?;
    let value: i64 = if negative {
        if magnitude > 1u64 << 63 {
            return Err(Refusal::BadFormat);
        }
        0i64.wrapping_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).map_err(|_| Refusal::BadFormat)?
    };
    Ok(value as i32)
}

/// beanstalkd priority (u32) -> jobq priority (i32): order-preserving and lossless.
pub fn to_jobq_priority(pri: u32) -> i32 {
    (i64::from(pri) - (1i64 << 31)) as i32
}

/// jobq priority -> beanstalkd priority.
pub fn from_jobq_priority(priority: i32) -> u32 {
    (i64::from(priority) + (1i64 << 31)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_like_beanstalkd() {
        assert_eq!(frame(b""), Frame::Incomplete);
        assert_eq!(frame(b"stats\r"), Frame::Incomplete);
        assert_eq!(frame(b"stats\r\nput"), Frame::Line(7));
        assert_eq!(frame(b"\r\n"), Frame::Line(2));
        // Only the first '\r' counts.
        assert_eq!(frame(b"a\rb\r\n"), Frame::Incomplete);
        let mut long = vec![b'x'; LINE_MAX - 2];
        long.extend_from_slice(b"\r\n");
        assert_eq!(frame(&long), Frame::Line(LINE_MAX));
        let mut longer = vec![b'x'; LINE_MAX - 1];
        longer.extend_from_slice(b"\r\n");
        assert_eq!(frame(&longer), Frame::TooLong);
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse(b"put 1 2 3 4"), Ok(Command::Put { pri: 1, delay: 2, ttr: 3, bytes: 4, trailing: false }));
        assert_eq!(parse(b"put  1  2 3 4x"), Ok(Command::Put { pri: 1, delay: 2, ttr: 3, bytes: 4, trailing: true }));
        assert_eq!(parse(b"put 4294967296 0 1 1"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"put -1 0 1 1"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"put 1 0 1"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"put"), Err(Refusal::UnknownCommand));
        assert_eq!(parse(b""), Err(Refusal::UnknownCommand));
        assert_eq!(parse(b"reserve"), Ok(Command::Reserve));
        assert_eq!(parse(b"reserve "), Err(Refusal::BadFormat));
        assert_eq!(parse(b"reserve-with-timeout 5"), Ok(Command::ReserveWithTimeout(5)));
        assert_eq!(parse(b"reserve-with-timeout abc"), Ok(Command::ReserveWithTimeout(0)));
        assert_eq!(parse(b"reserve-with-timeout -1"), Ok(Command::ReserveWithTimeout(-1)));
        assert_eq!(parse(b"reserve-with-timeout 3x"), Ok(Command::ReserveWithTimeout(3)));
        assert_eq!(parse(b"reserve-with-timeout 99999999999999999999"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"reserve-job 7"), Ok(Command::ReserveJob(7)));
        assert_eq!(parse(b"delete 18446744073709551615"), Ok(Command::Delete(u64::MAX)));
        assert_eq!(parse(b"delete 18446744073709551616"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"delete 1 "), Err(Refusal::BadFormat));
        assert_eq!(parse(b"delete x"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"release 1 2 3"), Ok(Command::Release { id: 1, pri: 2, delay: 3 }));
        assert_eq!(parse(b"bury 1 2"), Ok(Command::Bury { id: 1, pri: 2 }));
        assert_eq!(parse(b"kick 10abc"), Ok(Command::Kick(10)));
        assert_eq!(parse(b"kick -1"), Ok(Command::Kick(u32::MAX)));
        assert_eq!(parse(b"kick x"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"kick"), Err(Refusal::UnknownCommand));
        assert_eq!(parse(b"use foo"), Ok(Command::Use("foo")));
        assert_eq!(parse(b"use -foo"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"use foo bar"), Err(Refusal::BadFormat));
        assert_eq!(parse(&[b"use ".as_slice(), &[b'a'; 200]].concat()), Ok(Command::Use(&"a".repeat(200))));
        assert_eq!(parse(&[b"use ".as_slice(), &[b'a'; 201]].concat()), Err(Refusal::BadFormat));
        assert_eq!(parse(b"stats"), Ok(Command::Stats));
        assert_eq!(parse(b"statsx"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"stats-tube default"), Ok(Command::StatsTube("default")));
        assert_eq!(parse(b"list-tubes-watched"), Ok(Command::ListTubesWatched));
        assert_eq!(parse(b"list-tubes"), Ok(Command::ListTubes));
        assert_eq!(parse(b"list-tube-used"), Ok(Command::ListTubeUsed));
        assert_eq!(parse(b"quitnow"), Ok(Command::Quit));
        assert_eq!(parse(b"pause-tube foo 10"), Ok(Command::PauseTube { tube: "foo", delay: 10 }));
        assert_eq!(parse(b"pause-tube foo"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"pause-tube -foo 1"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"stats\0"), Err(Refusal::BadFormat));
        assert_eq!(parse(b"hello"), Err(Refusal::UnknownCommand));
    }

    #[test]
    fn priorities_map_both_ways_in_order() {
        for p in [0u32, 1, 1023, 1024, 1 << 31, u32::MAX - 1, u32::MAX] {
            assert_eq!(from_jobq_priority(to_jobq_priority(p)), p);
        }
        assert_eq!(to_jobq_priority(0), i32::MIN);
        assert_eq!(to_jobq_priority(u32::MAX), i32::MAX);
        assert!(to_jobq_priority(5) < to_jobq_priority(6));
    }
}
