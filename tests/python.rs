//! The Python bindings (python/): `pip install` of the package into a fresh
//! venv, then its pytest suite (python/tests/) on a file store and on
//! PostgreSQL, and interop with examples/producer.c and examples/worker.c.
//!
//! To stay fast, the package is built against the libjobq.a this `cargo
//! test` just built (support/clib.rs; JOBQ_LIB_DIR / JOBQ_INCLUDE_DIR), so
//! pip compiles only the cffi extension: no release build of the crate runs
//! inside pip's isolated build. The install itself is the real one (`pip
//! install <copy of python/>`, build isolation, setuptools and cffi from the
//! package index), as on a fresh machine; the copy keeps build outputs out
//! of the source tree and apart from concurrent runs.
//!
//! Needs python3 with venv and pip (Debian: python3-venv, python3-pip;
//! scripts/install-deps.sh installs them, and this test runs it when they
//! are missing). Never skips: a missing tool or a failing pytest fails it.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/clib.rs"]
mod clib;
#[path = "support/pg.rs"]
mod pg;
use clib::{Libs, Linkage};

fn python3() -> String {
    std::env::var("JOBQ_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn has_venv_and_pip(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import venv, ensurepip, sys; assert sys.version_info >= (3, 9)"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// python3 with venv + ensurepip, installing them with scripts/install-deps.sh if missing.
fn ensure_python() -> String {
    let python = python3();
    if !has_venv_and_pip(&python) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-deps.sh");
        let _ = Command::new("bash").arg(&script).status();
        assert!(
            has_venv_and_pip(&python),
            "{python} with the venv and ensurepip modules (3.9 or newer) is needed for the Python bindings' \
             tests: run scripts/install-deps.sh (Debian: python3, python3-venv, python3-pip)"
        );
    }
    python
}

/// Runs `cmd`, returning its output; panics with everything it printed on failure.
fn run(what: &str, cmd: &mut Command) -> String {
    let started = std::time::Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{what}: {:.1}s", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "{what} failed with {}:\n{text}", out.status);
    text
}

/// Copies python/ (without build outputs) into `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if matches!(name.as_str(), "build" | "dist" | "__pycache__" | ".pytest_cache")
            || name.ends_with(".egg-info")
            || name.starts_with("_jobq_cffi")
        {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if src.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

#[test]
fn python_package_installs_and_its_pytest_suite_passes() {
    let python = ensure_python();
    let libs = Libs::find();
    let scratch = libs.scratch("python");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let src = scratch.join("src");
    copy_tree(&libs.root.join("python"), &src);

    // A fresh venv, and the package installed the way a user does.
    let venv = scratch.join("venv");
    run("python3 -m venv", Command::new(&python).args(["-m", "venv"]).arg(&venv));
    let vpy: PathBuf = venv.join("bin/python");
    run(
        "pip install ./python pytest",
        Command::new(&vpy)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"])
            .arg(&src)
            .arg("pytest")
            .env("JOBQ_LIB_DIR", &libs.shared_dir)
            .env("JOBQ_INCLUDE_DIR", libs.include_dir())
            .env_remove("PYTHONPATH"),
    );

    // The C side of the interop tests, against the shared library.
    let producer = scratch.join("producer");
    let worker = scratch.join("worker");
    for (name, bin) in [("producer", &producer), ("worker", &worker)] {
        let c = libs.root.join("examples").join(format!("{name}.c"));
        libs.compile(Linkage::Shared, &[&c], bin).unwrap_or_else(|e| panic!("{e}"));
    }

    // PostgreSQL as for the C tests: schemas of one prefix, dropped at the end.
    let base = pg::base_url();
    let prefix = pg::schema_name("py");
    let _schemas = pg::SchemaPrefix { base: base.clone(), prefix: prefix.clone() };

    let out = run(
        "pytest",
        Command::new(&vpy)
            .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests"])
            .current_dir(&src)
            .env("JOBQ_TEST_PG_BASE", &base)
            .env("JOBQ_TEST_PG_PREFIX", &prefix)
            .env("JOBQ_TEST_C_PRODUCER", &producer)
            .env("JOBQ_TEST_C_WORKER", &worker)
            .env("JOBQ_INCLUDE_DIR", libs.include_dir())
            .env_remove("LD_LIBRARY_PATH")
            .env_remove("PYTHONPATH"),
    );
    println!("{out}");
    let summary = out.lines().rev().find(|l| l.contains(" passed")).unwrap_or("");
    assert!(!summary.is_empty(), "no pytest summary line:\n{out}");
    assert!(!summary.contains("skipped") && !summary.contains("xfail"), "pytest skipped tests: {summary}\n{out}");
}
