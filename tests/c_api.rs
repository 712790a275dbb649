//! Builds every C test program in c_tests/ (and C++ ones, *.cpp) against the
//! freshly built cdylib AND staticlib, and runs each. Set
//! JOBQ_C_TEST_WRAPPER (e.g. "valgrind --error-exitcode=1 --leak-check=full")
//! to run the binaries under a tool; JOBQ_C_TEST_FILTER=name to run a subset;
//! JOBQ_C_TEST_CFLAGS to add compiler flags (e.g. sanitizers);
//! JOBQ_C_TEST_PROFILE=release to test the libraries of `cargo build
//! --release` (target/release/, built first) instead of this test's own.
//!
//! Each program gets JOBQ_TEST_SLOW, the factor by which its environment is
//! slower than a plain native run (c_tests/testutil.h scales its time bounds,
//! and the short leases and delays that checks depend on, by it): 20 under a
//! wrapper (valgrind), 3 with sanitizer flags, else 1. A JOBQ_TEST_SLOW set in
//! the environment wins.
//!
//! With sanitizer flags in JOBQ_C_TEST_CFLAGS, ASAN_OPTIONS / UBSAN_OPTIONS
//! get defaults (see `sanitizer_env`) unless already set.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

#[path = "support/clib.rs"]
mod clib;
#[path = "support/pg.rs"]
mod pg;
use clib::{Libs, Linkage};

/// Which store the C programs' `check_path` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    /// Schemas in the database of `pg::base_url()`.
    Postgres,
}

fn c_test_sources() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("c_tests");
    let filter = std::env::var("JOBQ_C_TEST_FILTER").unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("c_tests/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("c") | Some("cpp")))
        .filter(|p| filter.is_empty() || p.file_stem().is_some_and(|s| s.to_string_lossy().contains(&filter)))
        .collect();
    files.sort();
    files
}

fn run_all(linkage: Linkage, backend: Backend) {
    let libs = Libs::find();
    let sources = c_test_sources();
    assert!(!sources.is_empty(), "no C tests found in c_tests/");
    let failures = Mutex::new(Vec::new());
    let next = Mutex::new(sources.iter());
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let Some(src) = next.lock().unwrap().next() else { break };
                if let Err(e) = build_and_run(libs, linkage, backend, src) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let slow = slow_factor(&std::env::var("JOBQ_C_TEST_WRAPPER").unwrap_or_default());
    let profile = std::env::var("JOBQ_C_TEST_PROFILE").ok().filter(|p| !p.is_empty());
    println!(
        "C tests ({linkage:?}, {backend:?}, {} library, JOBQ_TEST_SLOW={slow}): {} passed, {} failed",
        profile.as_deref().unwrap_or("test profile's"),
        sources.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "C test failures:\n{}", failures.join("\n\n"));
}

fn build_and_run(libs: &Libs, linkage: Linkage, backend: Backend, src: &Path) -> Result<(), String> {
    let name = src.file_stem().unwrap().to_string_lossy().to_string();
    let out_dir = libs.scratch(&format!("c-{linkage:?}-{backend:?}"));
    let bin = out_dir.join(&name);
    libs.compile(linkage, &[src], &bin)?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let wrapper = std::env::var("JOBQ_C_TEST_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut cmd = match words.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(words).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    cmd.arg(work.path()).env_remove("LD_LIBRARY_PATH");
    cmd.env("JOBQ_TEST_SLOW", slow_factor(&wrapper));
    // The PostgreSQL pass: each program's stores are schemas named after a
    // prefix of its own, all dropped when it ends (whatever it left).
    let _schemas = match backend {
        Backend::Sqlite => {
            cmd.env_remove("JOBQ_TEST_PG_BASE");
            None
        }
        Backend::Postgres => {
            let base = pg::base_url();
            let prefix = pg::schema_name("c");
            cmd.env("JOBQ_TEST_PG_BASE", &base).env("JOBQ_TEST_PG_PREFIX", &prefix);
            Some(pg::SchemaPrefix { base, prefix })
        }
    };
    for (k, v) in sanitizer_env() {
        cmd.env(k, v);
    }
    let started = std::time::Instant::now();
    let out = cmd.output().map_err(|e| format!("{name}: cannot run: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // The program's own summary ("<name>: N checks, M failed"), not whatever
    // a tool printed last (valgrind's reports of forked children come later).
    let summary = text
        .lines()
        .rev()
        .find(|l| l.starts_with(&format!("{name}: ")) && l.contains(" checks, "))
        .or_else(|| text.lines().last())
        .unwrap_or("");
    println!("  {name} ({linkage:?}, {backend:?}, {:.2}s): {summary}", started.elapsed().as_secs_f64());
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{name} ({linkage:?}, {backend:?}) failed with {}:\n{text}", out.status))
    }
}

/// JOBQ_TEST_SLOW for the C programs: the environment's own value if set,
/// else 20 under a wrapper (valgrind runs code 20-50x slower), 3 with
/// sanitizers (ASan/UBSan roughly double run times), else 1.
fn slow_factor(wrapper: &str) -> String {
    if let Ok(v) = std::env::var("JOBQ_TEST_SLOW") {
        if !v.trim().is_empty() {
            return v;
        }
    }
    let cflags = std::env::var("JOBQ_C_TEST_CFLAGS").unwrap_or_default();
    if !wrapper.trim().is_empty() {
        "20".into()
    } else if cflags.contains("-fsanitize") {
        "3".into()
    } else {
        "1".into()
    }
}

/// Sanitizer settings for programs built with -fsanitize=address and/or
/// undefined; a variable already set in the environment is left alone.
///
/// * ASAN_OPTIONS=detect_leaks=1: LeakSanitizer checks each program at exit
///   (the default on x86_64 Linux, said explicitly so a platform or an
///   inherited default cannot turn it off). No suppressions are needed: every
///   test closes what it opens, and what Rust's standard library keeps for the
///   life of the process stays reachable. Forked children end with _exit()
///   (or SIGKILL), which skips the exit-time leak check, so a child is not
///   blamed for the parent's threads' memory it inherited; the children's
///   checks report over a pipe as under valgrind.
/// * UBSAN_OPTIONS: print a stack trace and stop at the first report (with
///   -fno-sanitize-recover=undefined the program exits non-zero).
fn sanitizer_env() -> Vec<(&'static str, String)> {
    let cflags = std::env::var("JOBQ_C_TEST_CFLAGS").unwrap_or_default();
    let mut env = Vec::new();
    let mut set = |name: &'static str, value: &str| {
        if std::env::var_os(name).is_none() {
            env.push((name, value.to_string()));
        }
    };
    if cflags.contains("-fsanitize=") && cflags.contains("address") {
        set("ASAN_OPTIONS", "detect_leaks=1");
    }
    if cflags.contains("-fsanitize=") && cflags.contains("undefined") {
        set("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1");
    }
    env
}

#[test]
fn c_tests_against_cdylib() {
    run_all(Linkage::Shared, Backend::Sqlite);
}

#[test]
fn c_tests_against_staticlib() {
    run_all(Linkage::Static, Backend::Sqlite);
}

/// The whole suite again with every store in PostgreSQL (the cdylib only:
/// the backend is the same code in both libraries). File-only checks say
/// so and stay on files (`check_file_path`).
#[test]
fn c_tests_against_postgresql() {
    run_all(Linkage::Shared, Backend::Postgres);
}

/// A C++ program: fails and buries jobs with and without a reason, through
/// the C API (NULL) and the wrapper (no argument); prints their ids.
const CPP_REASONS: &str = r#"
#include <cstdio>
#include "jobq.hpp"
int main(int, char **argv) {
  try {
    jobqpp::Queue q(argv[1], R"({"backoff_base_ms": 60000})");
    for (int i = 0; i < 6; i++) q.put("m", "x");
    const char *what[] = {"c-fail-null", "cpp-fail", "cpp-fail-reason", "c-bury-null", "cpp-bury", "cpp-bury-reason"};
    for (int i = 0; i < 6; i++) {
      auto job = q.reserve("m", 1000);
      if (!job) return 1;
      std::printf("%s %llu\n", what[i], static_cast<unsigned long long>(job->id()));
      switch (i) {
        case 0: if (jobq_fail(job->capi(), nullptr) != JOBQ_OK) return 1; break;
        case 1: job->fail(); break;
        case 2: job->fail("smtp down"); break;
        case 3: if (jobq_bury(job->capi(), nullptr) != JOBQ_OK) return 1; break;
        case 4: job->bury(); break;
        default: job->bury("bad address"); break;
      }
    }
  } catch (const jobqpp::Error &e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
"#;

/// jobqpp::Job::fail() / bury() without a reason store what the C calls
/// store for a NULL reason ("failed" / "buried"), not an empty string; a
/// reason is stored as given. On a file and on PostgreSQL.
#[test]
fn cpp_fail_and_bury_without_a_reason_store_what_c_stores() {
    let libs = Libs::find();
    let dir = libs.scratch("cpp-reasons");
    let src = dir.join("reasons.cpp");
    std::fs::write(&src, CPP_REASONS).unwrap();
    let bin = dir.join("reasons");
    if let Err(e) = libs.compile(Linkage::Shared, &[src.as_path()], &bin) {
        panic!("{e}");
    }
    let tmp = tempfile::tempdir().unwrap();
    for postgres in [false, true] {
        let (store, _schema) = pg::store(tmp.path(), "reasons.db", postgres);
        let out = Command::new(&bin).arg(&store).env_remove("LD_LIBRARY_PATH").output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let q = jobq::Queue::open(&store, jobq::Config::default()).unwrap();
        let stored: std::collections::BTreeMap<String, Option<String>> = stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(what, id)| (what.to_owned(), q.job(id.parse().unwrap()).unwrap().last_error))
            .collect();
        q.close().unwrap();
        let want = |what: &str, s: &str| (what.to_owned(), Some(s.to_owned()));
        let expected: std::collections::BTreeMap<_, _> = [
            want("c-fail-null", "failed"),
            want("cpp-fail", "failed"),
            want("cpp-fail-reason", "smtp down"),
            want("c-bury-null", "buried"),
            want("cpp-bury", "buried"),
            want("cpp-bury-reason", "bad address"),
        ]
        .into_iter()
        .collect();
        assert_eq!(stored, expected, "postgres: {postgres}");
    }
}
