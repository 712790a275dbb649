//! Builds every C test program in c_tests/ (and C++ ones, *.cpp) against the
//! freshly built cdylib AND staticlib, and runs each. Set
//! JOBQ_C_TEST_WRAPPER (e.g. "valgrind --error-exitcode=1 --leak-check=full")
//! to run the binaries under a tool; JOBQ_C_TEST_FILTER=name to run a subset;
//! JOBQ_C_TEST_CFLAGS to add compiler flags (e.g. sanitizers).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

#[path = "support/clib.rs"]
mod clib;
use clib::{Libs, Linkage};

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

fn run_all(linkage: Linkage) {
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
                if let Err(e) = build_and_run(libs, linkage, src) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    println!("C tests ({linkage:?}): {} passed, {} failed", sources.len() - failures.len(), failures.len());
    assert!(failures.is_empty(), "C test failures:\n{}", failures.join("\n\n"));
}

fn build_and_run(libs: &Libs, linkage: Linkage, src: &Path) -> Result<(), String> {
    let name = src.file_stem().unwrap().to_string_lossy().to_string();
    let out_dir = libs.scratch(&format!("c-{linkage:?}"));
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
    let started = std::time::Instant::now();
    let out = cmd.output().map_err(|e| format!("{name}: cannot run: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("  {name} ({linkage:?}, {:.2}s): {}", started.elapsed().as_secs_f64(), text.lines().last().unwrap_or(""));
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{name} ({linkage:?}) failed with {}:\n{text}", out.status))
    }
}

#[test]
fn c_tests_against_cdylib() {
    run_all(Linkage::Shared);
}

#[test]
fn c_tests_against_staticlib() {
    run_all(Linkage::Static);
}
