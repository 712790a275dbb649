//! Transcripts: what a client sends, step by step, and what a server
//! answered, byte for byte. See tests/beanstalkd/transcripts/README.md for
//! the file formats and the normalization.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub enum Piece {
    Bytes(Vec<u8>),
    /// The K-th (1-based) job id the server gave in this transcript.
    Id(usize),
}

#[derive(Debug, Clone)]
pub enum Kind {
    Send(Vec<Piece>),
    Sleep(u64),
    Close,
    Shutdown,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub conn: String,
    pub kind: Kind,
    /// The line as written (rendered back into the expected file).
    pub src: String,
}

/// What one connection received during one step (normalized), and whether
/// the server closed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Got {
    pub bytes: Vec<u8>,
    pub eof: bool,
}

pub type StepOut = BTreeMap<String, Got>;

fn unescape_into(s: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let c = *b.get(i + 1).ok_or("a lone \\ at the end")?;
            match c {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b'{' => out.push(b'{'),
                b'x' => {
                    let h = s.get(i + 2..i + 4).ok_or("\\x needs two hex digits")?;
                    out.push(u8::from_str_radix(h, 16).map_err(|_| format!("bad \\x{h}"))?);
                    i += 2;
                }
                other => return Err(format!("unknown escape \\{}", other as char)),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(())
}

/// `text` of a send line: escapes, `{N*S}` (S, itself escaped, N times) and `{idK}`.
fn parse_send(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut cur = Vec::new();
    let mut rest = text;
    while let Some(open) = find_unescaped_brace(rest) {
        unescape_into(&rest[..open], &mut cur)?;
        let close = rest[open..].find('}').ok_or("unclosed {")? + open;
        let inner = &rest[open + 1..close];
        if let Some(k) = inner.strip_prefix("id") {
            let k: usize = k.parse().map_err(|_| format!("bad {{{inner}}}"))?;
            if k == 0 {
                return Err("ids count from {id1}".into());
            }
            pieces.push(Piece::Bytes(std::mem::take(&mut cur)));
            pieces.push(Piece::Id(k));
        } else if let Some((n, s)) = inner.split_once('*') {
            let n: usize = n.parse().map_err(|_| format!("bad repeat count in {{{inner}}}"))?;
            let mut unit = Vec::new();
            unescape_into(s, &mut unit)?;
            for _ in 0..n {
                cur.extend_from_slice(&unit);
            }
        } else {
            return Err(format!("unknown {{{inner}}}"));
        }
        rest = &rest[close + 1..];
    }
    unescape_into(rest, &mut cur)?;
    pieces.push(Piece::Bytes(cur));
    Ok(pieces)
}

fn find_unescaped_brace(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'{' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Parses a transcript (NAME.txt).
pub fn parse(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(ms) = line.strip_prefix("!sleep ") {
            let ms = ms.trim().parse().map_err(|_| err("bad sleep".into()))?;
            steps.push(Step { conn: String::new(), kind: Kind::Sleep(ms), src: line.to_string() });
            continue;
        }
        let name_len = line.bytes().take_while(|b| b.is_ascii_alphanumeric()).count();
        let (conn, rest) = line.split_at(name_len);
        let conn = if conn.is_empty() { "a".to_string() } else { conn.to_string() };
        let kind = if let Some(t) = rest.strip_prefix("> ") {
            Kind::Send(parse_send(t).map_err(err)?)
        } else if rest == ">" {
            Kind::Send(vec![])
        } else if rest == "!close" {
            Kind::Close
        } else if rest == "!shutdown" {
            Kind::Shutdown
        } else {
            return Err(err("expected [conn]> TEXT, [conn]!close, [conn]!shutdown or !sleep MS".into()));
        };
        steps.push(Step { conn, kind, src: line.to_string() });
    }
    Ok(steps)
}

// ------------------------------------------------------------ normalization

/// Values that differ between any two servers or runs: replaced by `*`.
const VOLATILE_KEYS: &[&str] = &[
    // stats: the process, the host, the clock.
    "pid",
    "version",
    "rusage-utime",
    "rusage-stime",
    "uptime",
    "hostname",
    "os",
    "platform",
    // stats-job, stats-tube: the clock.
    "age",
    "time-left",
    "pause-time-left",
];

/// Job ids, in the order the server first gave them: id -> K of `{idK}`.
#[derive(Debug, Clone, Default)]
pub struct Ids {
    map: HashMap<u64, usize>,
    order: Vec<u64>,
}

impl Ids {
    fn name(&mut self, tok: &[u8]) -> Vec<u8> {
        let Some(id) = std::str::from_utf8(tok).ok().and_then(|t| t.parse::<u64>().ok()) else {
            return tok.to_vec();
        };
        if tok.len() > 1 && tok[0] == b'0' {
            return tok.to_vec();
        }
        let k = *self.map.entry(id).or_insert_with(|| {
            self.order.push(id);
            self.order.len()
        });
        format!("{{id{k}}}").into_bytes()
    }

    pub fn get(&self, k: usize) -> Option<u64> {
        self.order.get(k - 1).copied()
    }
}

fn normalize_yaml(body: &[u8], ids: &mut Ids) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let is_job = text.lines().any(|l| l.starts_with("tube: "));
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        let (content, nl) = match line.strip_suffix('\n') {
            Some(c) => (c, "\n"),
            None => (line, ""),
        };
        match content.split_once(": ") {
            Some((key, _)) if VOLATILE_KEYS.contains(&key) => {
                out.extend_from_slice(format!("{key}: *{nl}").as_bytes());
            }
            Some(("id", v)) if is_job => {
                out.extend_from_slice(b"id: ");
                out.extend_from_slice(&ids.name(v.as_bytes()));
                out.extend_from_slice(nl.as_bytes());
            }
            // The server's random id (stats).
            Some(("id", _)) => out.extend_from_slice(format!("id: *{nl}").as_bytes()),
            _ => out.extend_from_slice(line.as_bytes()),
        }
    }
    out
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Normalizes what one connection received (whole replies; a partial one is left as is).
pub fn normalize(raw: &[u8], ids: &mut Ids) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(end) = find_crlf(rest) {
        let line = &rest[..end];
        let toks: Vec<&[u8]> = line.split(|&c| c == b' ').collect();
        let verb = toks[0];
        let with_body = matches!(verb, b"OK" | b"RESERVED" | b"FOUND");
        let size = toks.last().and_then(|t| std::str::from_utf8(t).ok()).and_then(|t| t.parse::<usize>().ok());
        let body = match (with_body, size) {
            (true, Some(n)) if rest.len() >= end + 2 + n + 2 && &rest[end + 2 + n..end + 4 + n] == b"\r\n" => {
                Some(&rest[end + 2..end + 2 + n])
            }
            _ => None,
        };
        let mut head: Vec<Vec<u8>> = toks.iter().map(|t| t.to_vec()).collect();
        match verb {
            b"INSERTED" | b"BURIED" if toks.len() == 2 => head[1] = ids.name(toks[1]),
            b"RESERVED" | b"FOUND" if toks.len() == 3 => head[1] = ids.name(toks[1]),
            _ => {}
        }
        match body {
            Some(b) => {
                let b2 = if verb == b"OK" && b.starts_with(b"---\n") { normalize_yaml(b, ids) } else { b.to_vec() };
                if verb == b"OK" && toks.len() == 2 {
                    head[1] = b2.len().to_string().into_bytes();
                } else if toks.len() == 3 && b2.len() != b.len() {
                    head[2] = b2.len().to_string().into_bytes();
                }
                out.extend_from_slice(&head.join(&b' '));
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&b2);
                out.extend_from_slice(b"\r\n");
                rest = &rest[end + 2 + b.len() + 2..];
            }
            None => {
                out.extend_from_slice(&head.join(&b' '));
                out.extend_from_slice(b"\r\n");
                rest = &rest[end + 2..];
            }
        }
    }
    out.extend_from_slice(rest);
    out
}

// ------------------------------------------------------------ running

/// How a step's collection ends.
pub enum Until<'a> {
    /// Recording: when nothing arrived for this long.
    Idle(Duration),
    /// Replaying: when every connection got (at least) what the recording
    /// shows for this step, then a short grace for anything extra.
    Expected(&'a [StepOut]),
}

struct Conn {
    stream: Option<TcpStream>,
    eof: bool,
}

/// Runs `steps` against `addr`; returns what each step received.
pub fn run(addr: SocketAddr, steps: &[Step], until: Until) -> Result<Vec<StepOut>, String> {
    let mut conns: BTreeMap<String, Conn> = BTreeMap::new();
    let mut ids = Ids::default();
    let mut outs = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if !step.conn.is_empty() && !conns.contains_key(&step.conn) {
            let s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
            s.set_nodelay(true).unwrap();
            s.set_nonblocking(true).unwrap();
            conns.insert(step.conn.clone(), Conn { stream: Some(s), eof: false });
        }
        match &step.kind {
            Kind::Send(pieces) => {
                let mut bytes = Vec::new();
                for p in pieces {
                    match p {
                        Piece::Bytes(b) => bytes.extend_from_slice(b),
                        Piece::Id(k) => {
                            let id = ids.get(*k).ok_or_else(|| format!("step {}: no {{id{k}}} yet", i + 1))?;
                            bytes.extend_from_slice(id.to_string().as_bytes());
                        }
                    }
                }
                let c = conns.get_mut(&step.conn).unwrap();
                if let Some(s) = c.stream.as_mut() {
                    write_all_nonblocking(s, &bytes)
                        .map_err(|e| format!("step {} ({}): write: {e}", i + 1, step.src))?;
                }
            }
            Kind::Sleep(ms) => std::thread::sleep(Duration::from_millis(*ms)),
            Kind::Close => {
                conns.get_mut(&step.conn).unwrap().stream = None;
            }
            Kind::Shutdown => {
                if let Some(s) = &conns[&step.conn].stream {
                    let _ = s.shutdown(Shutdown::Write);
                }
            }
        }
        let want = match &until {
            Until::Expected(exp) => Some(exp.get(i).cloned().unwrap_or_default()),
            Until::Idle(_) => None,
        };
        let raw = collect(&mut conns, &until, want.as_ref(), &ids)?;
        let mut out = StepOut::new();
        for (name, (bytes, eof)) in raw {
            if bytes.is_empty() && !eof {
                continue;
            }
            out.insert(name, Got { bytes: normalize(&bytes, &mut ids), eof });
        }
        outs.push(out);
    }
    Ok(outs)
}

fn write_all_nonblocking(s: &mut TcpStream, mut b: &[u8]) -> std::io::Result<()> {
    let until = Instant::now() + Duration::from_secs(5);
    while !b.is_empty() {
        match s.write(b) {
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads from every open connection until the step's end (see `Until`).
fn collect(
    conns: &mut BTreeMap<String, Conn>,
    until: &Until,
    want: Option<&StepOut>,
    ids: &Ids,
) -> Result<BTreeMap<String, (Vec<u8>, bool)>, String> {
    let start = Instant::now();
    let mut got: BTreeMap<String, (Vec<u8>, bool)> = BTreeMap::new();
    let mut last_data = Instant::now();
    let mut satisfied_at: Option<Instant> = None;
    let mut buf = vec![0u8; 65536];
    loop {
        let mut any = false;
        for (name, c) in conns.iter_mut() {
            let Some(s) = c.stream.as_mut() else { continue };
            if c.eof {
                continue;
            }
            loop {
                match s.read(&mut buf) {
                    Ok(0) => {
                        c.eof = true;
                        got.entry(name.clone()).or_default().1 = true;
                        any = true;
                        break;
                    }
                    Ok(n) => {
                        got.entry(name.clone()).or_default().0.extend_from_slice(&buf[..n]);
                        any = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                        c.eof = true;
                        got.entry(name.clone()).or_default().1 = true;
                        any = true;
                        break;
                    }
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
        }
        if any {
            last_data = Instant::now();
        }
        match (until, want) {
            (Until::Idle(idle), _) => {
                if last_data.elapsed() >= *idle {
                    return Ok(got);
                }
            }
            (Until::Expected(_), Some(want)) => {
                let complete = want.iter().all(|(name, w)| {
                    let (b, eof) = got.get(name).cloned().unwrap_or_default();
                    let mut trial = ids.clone();
                    normalize(&b, &mut trial).len() >= w.bytes.len() && (eof || !w.eof)
                });
                if complete {
                    let at = *satisfied_at.get_or_insert_with(Instant::now);
                    // A grace for bytes the recording does not have.
                    if at.elapsed() >= Duration::from_millis(25) && last_data.elapsed() >= Duration::from_millis(10) {
                        return Ok(got);
                    }
                } else if start.elapsed() > Duration::from_secs(5) {
                    return Ok(got);
                }
            }
            (Until::Expected(_), None) => unreachable!(),
        }
        if !any {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

// ------------------------------------------------------------ rendering

/// Bytes as one line of text: printable ASCII as is, `\\`, `\r`, `\n`,
/// `\t`, `\xNN` for the rest.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

pub const EOF_MARK: &str = "<EOF>";

/// One step with what it received, as in NAME.expected.
pub fn render_step(step: &Step, out: &StepOut) -> String {
    let mut s = String::new();
    s.push_str(&step.src);
    s.push('\n');
    for (name, got) in out {
        for piece in got.bytes.split_inclusive(|&c| c == b'\n') {
            s.push_str(&format!("{name}< {}\n", escape(piece)));
        }
        if got.eof {
            s.push_str(&format!("{name}< {EOF_MARK}\n"));
        }
    }
    s
}

/// The steps with what each received: the format of NAME.expected.
pub fn render(steps: &[Step], outs: &[StepOut]) -> String {
    steps.iter().zip(outs).map(|(step, out)| render_step(step, out)).collect()
}

/// Every step whose replies differ: the step, then `-` lines (`a_name`) and `+` lines (`b_name`).
pub fn step_diff(steps: &[Step], a: &[StepOut], b: &[StepOut], a_name: &str, b_name: &str) -> String {
    let empty = StepOut::new();
    let mut s = String::new();
    for (i, step) in steps.iter().enumerate() {
        let (x, y) = (a.get(i).unwrap_or(&empty), b.get(i).unwrap_or(&empty));
        if x == y {
            continue;
        }
        let (rx, ry) = (render_step(step, x), render_step(step, y));
        let (lx, ly): (Vec<&str>, Vec<&str>) = (rx.lines().skip(1).collect(), ry.lines().skip(1).collect());
        // Lines both have at the start and at the end are shown once.
        let pre = lx.iter().zip(&ly).take_while(|(p, q)| p == q).count();
        let post = lx[pre..].iter().rev().zip(ly[pre..].iter().rev()).take_while(|(p, q)| p == q).count();
        s.push_str(&format!("  step {}: {}\n", i + 1, step.src));
        if pre > 0 {
            s.push_str(&format!("      ({pre} equal line(s))\n"));
        }
        for l in &lx[pre..lx.len() - post] {
            s.push_str(&format!("    - {l}   [{a_name}]\n"));
        }
        for l in &ly[pre..ly.len() - post] {
            s.push_str(&format!("    + {l}   [{b_name}]\n"));
        }
    }
    s
}

/// Parses NAME.expected (render's output after `#` header lines): the
/// steps' lines (to check they are those of NAME.txt) and what each received.
pub fn parse_expected(text: &str) -> Result<(Vec<String>, Vec<StepOut>), String> {
    let mut srcs = Vec::new();
    let mut outs: Vec<StepOut> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        let name_len = line.bytes().take_while(|b| b.is_ascii_alphanumeric()).count();
        if let Some(resp) = line[name_len..].strip_prefix("< ") {
            let out = outs.last_mut().ok_or(format!("line {}: a reply before any step", n + 1))?;
            let got = out.entry(line[..name_len].to_string()).or_default();
            if resp == EOF_MARK {
                got.eof = true;
            } else {
                unescape_into(resp, &mut got.bytes).map_err(|e| format!("line {}: {e}", n + 1))?;
            }
        } else {
            srcs.push(line.to_string());
            outs.push(StepOut::new());
        }
    }
    Ok((srcs, outs))
}
