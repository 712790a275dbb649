//! Finds the libjobq.so / libjobq.a that this `cargo test` built and compiles
//! C programs against them. From a clean tree cargo leaves the fresh
//! libraries only in target/<profile>/deps/ (next to the test binary), and an
//! older target/<profile>/libjobq.so may be stale, so we link by full path
//! from deps/ and never rely on LD_LIBRARY_PATH.
//!
//! Several `cargo test` runs may share one target/ (engineers, CI jobs): one
//! may rebuild deps/libjobq.a or compile a C test binary while another links
//! or runs it. So each test process copies both libraries once, at start,
//! into a directory of its own (target/<profile>/c-test-lib/p<pid>/), builds
//! C programs under target/<profile>/c-test-bin/p<pid>/, and removes the
//! directories of processes that no longer exist.
//!
//! JOBQ_C_TEST_PROFILE=release takes the libraries of `cargo build --release`
//! instead (target/release/, built first), e.g. to run the C tests against
//! the release library under valgrind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linkage {
    Shared,
    Static,
}

pub struct Libs {
    pub root: PathBuf,
    pub deps: PathBuf,
    /// A private directory holding libjobq.so and the soname link libjobq.so.0.
    pub shared_dir: PathBuf,
    pub static_lib: PathBuf,
}

fn newest(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    assert!(p.exists(), "{} not found: did the library build?", p.display());
    p
}

/// The C tests need cc, c++, pkg-config, cmake, binutils and libsqlite3-dev
/// (and tests/examples.rs libevent-dev).
/// On a fresh Debian machine with only the Rust toolchain and gcc, the first
/// test that needs them runs scripts/install-deps.sh (apt-get; as root or
/// with sudo), so that `cargo test` works as the README says.
pub fn ensure_tools() {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let have = |tool: &str| {
            Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
        };
        let missing = ["cc", "c++", "pkg-config", "cmake", "objcopy"].iter().any(|t| !have(t))
            || !Path::new("/usr/include/sqlite3.h").exists()
            || !Path::new("/usr/include/event2/event.h").exists();
        if missing {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-deps.sh");
            let status = Command::new("bash").arg(&script).status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "tools for the C tests are missing and {} failed",
                script.display()
            );
        }
    });
}

impl Libs {
    /// Locates the libraries once per test process.
    pub fn find() -> &'static Libs {
        static LIBS: std::sync::OnceLock<Libs> = std::sync::OnceLock::new();
        LIBS.get_or_init(Libs::locate)
    }

    fn locate() -> Libs {
        ensure_tools();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let exe = std::env::current_exe().expect("test executable path");
        let deps = exe.parent().expect("deps dir").to_path_buf();
        let profile = deps.parent().expect("profile dir");
        // JOBQ_C_TEST_PROFILE=release: the libraries of `cargo build
        // --release` (built here first; cargo does nothing when they are
        // fresh), which is what users link and what valgrind checks in CI.
        let (so, a) = match std::env::var("JOBQ_C_TEST_PROFILE").as_deref() {
            Ok("release") => {
                let release = cargo_build_release(&["--lib"]);
                (newest(&release, "libjobq.so"), newest(&release, "libjobq.a"))
            }
            Ok("") | Err(_) => (newest(&deps, "libjobq.so"), newest(&deps, "libjobq.a")),
            Ok(other) => panic!("JOBQ_C_TEST_PROFILE={other}: only \"release\" (or unset: this test's own profile)"),
        };
        let shared_dir = private_dir(&profile.join("c-test-lib"));
        // Copy under private names, with the soname link.
        std::fs::copy(&so, shared_dir.join("libjobq.so")).expect("copy libjobq.so");
        let static_lib = shared_dir.join("libjobq.a");
        std::fs::copy(&a, &static_lib).expect("copy libjobq.a");
        let link = shared_dir.join("libjobq.so.0");
        let _ = std::fs::remove_file(&link);
        let _ = std::os::unix::fs::symlink("libjobq.so", &link);
        Libs { root, deps, shared_dir, static_lib }
    }

    pub fn include_dir(&self) -> PathBuf {
        self.root.join("include")
    }

    /// A directory under target/ for build outputs of one kind.
    /// (Private to this test process, like the libraries.)
    pub fn scratch(&self, kind: &str) -> PathBuf {
        static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        let base = BIN.get_or_init(|| private_dir(&self.deps.parent().unwrap().join("c-test-bin")));
        let d = base.join(kind);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Compiles C (.c, as C99) or C++ (.cpp, as C++17) sources into `bin`.
    pub fn compile(&self, linkage: Linkage, sources: &[&Path], bin: &Path) -> Result<(), String> {
        self.compile_with(linkage, sources, bin, &[])
    }

    /// `compile`, with more libraries to link (e.g. `-levent`), after jobq's.
    pub fn compile_with(&self, linkage: Linkage, sources: &[&Path], bin: &Path, libs: &[&str]) -> Result<(), String> {
        let cpp = sources.iter().any(|s| s.extension().is_some_and(|e| e == "cpp"));
        let mut cmd = Command::new(if cpp { "c++" } else { "cc" });
        if cpp {
            cmd.args(["-std=c++17"]);
        } else {
            cmd.args(["-std=c99"]);
        }
        cmd.args(["-D_GNU_SOURCE", "-g", "-O1", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]);
        cmd.arg("-I").arg(self.include_dir()).arg("-I").arg(self.root.join("c_tests"));
        if let Ok(extra) = std::env::var("JOBQ_C_TEST_CFLAGS") {
            cmd.args(extra.split_whitespace());
        }
        cmd.args(sources).arg("-o").arg(bin);
        match linkage {
            Linkage::Shared => {
                cmd.arg(self.shared_dir.join("libjobq.so"));
                cmd.arg(format!("-Wl,-rpath,{}", self.shared_dir.display()));
            }
            Linkage::Static => {
                cmd.arg(&self.static_lib);
            }
        }
        cmd.args(libs).args(["-lpthread", "-ldl", "-lm"]);
        let out = cmd.output().map_err(|e| format!("cannot run the C compiler: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("compiling {:?} ({linkage:?}) failed:\n{}", sources, String::from_utf8_lossy(&out.stderr)))
        }
    }
}

/// Runs `cargo build --release <args>` on this checkout, into the target
/// directory this test binary was built in; returns its release directory
/// (<target>/release). Cargo holds its build lock only while it builds, so
/// a nested cargo waits for nothing but another build of the same tree.
pub fn cargo_build_release(args: &[&str]) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let exe = std::env::current_exe().expect("test executable path");
    // <target>/<profile>/deps/<test binary>
    let target = exe.ancestors().nth(3).expect("target dir").to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--release", "--quiet"])
        .args(args)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .output()
        .expect("run cargo");
    assert!(out.status.success(), "cargo build --release {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    target.join("release")
}

/// `parent`/p<this pid>, created empty; first removes the p<pid> siblings
/// whose process is gone (left by earlier runs).
fn private_dir(parent: &Path) -> PathBuf {
    std::fs::create_dir_all(parent).expect("create the C test directory");
    let me = std::process::id();
    if let Ok(entries) = std::fs::read_dir(parent) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(pid) = name.strip_prefix('p').and_then(|p| p.parse::<u32>().ok()) else { continue };
            if pid != me && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = parent.join(format!("p{me}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a private C test directory");
    dir
}
