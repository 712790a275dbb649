//! "Ships like a C library": `make install` into a temporary prefix, then the
//! installed tree used the ways C and C++ projects use a library — pkg-config
//! (shared and forced static), CMake's find_package(jobq) with jobq::jobq,
//! libjobq.a next to the system -lsqlite3 — and its layout checked: soname,
//! symlinks, only jobq_* exported, version macros vs. the library. Also runs
//! examples/plugin_host.c, which dlopens/dlcloses the library three times.
//!
//! To stay fast it installs the libraries this `cargo test` just built
//! (target/<profile>/deps, see support/clib.rs) through `make install`'s
//! JOBQ_SO/JOBQ_A, so no release build (and no nested cargo) runs here.
//! Needs make, cc, c++, pkg-config, cmake, binutils and libsqlite3-dev
//! (scripts/install-deps.sh installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/clib.rs"]
mod clib;
use clib::Libs;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command; its stdout, or a panic with everything it printed.
fn run(cmd: &mut Command) -> String {
    // The test harness's LD_LIBRARY_PATH (target/.../deps) must not decide
    // which libjobq a program loads: the rpath / the installed tree does.
    cmd.env_remove("LD_LIBRARY_PATH");
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run {cmd:?}: {e} (scripts/install-deps.sh installs the tools)"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

/// `make install` of the test profile's libraries into `prefix` (under `destdir` if given).
fn make_install(libs: &Libs, scratch: &Path, prefix: &str, destdir: Option<&Path>) {
    let mut make = Command::new("make");
    make.arg("-s").arg("-C").arg(root()).arg("install");
    make.arg(format!("PREFIX={prefix}"));
    make.arg(format!("JOBQ_SO={}", libs.shared_dir.join("libjobq.so").display()));
    make.arg(format!("JOBQ_A={}", libs.static_lib.display()));
    make.arg(format!("STAGE={}", scratch.join("stage").display()));
    if let Some(d) = destdir {
        make.arg(format!("DESTDIR={}", d.display()));
    }
    // A make above `cargo test` must not lend us its jobserver or flags.
    make.env_remove("MAKEFLAGS").env_remove("MFLAGS").env_remove("MAKELEVEL");
    run(&mut make);
}

/// The dynamic section's NEEDED / SONAME entries of an ELF file.
fn dynamic_entries(file: &Path, kind: &str) -> Vec<String> {
    let out = run(Command::new("readelf").arg("-d").arg(file));
    out.lines()
        .filter(|l| l.contains(&format!("({kind})")))
        .filter_map(|l| l.split('[').nth(1).and_then(|r| r.split(']').next()).map(str::to_owned))
        .collect()
}

/// Defined global symbols, by `nm -g --defined-only` (add -D for a shared library's).
fn defined_globals(file: &Path, dynamic: bool) -> Vec<String> {
    let mut nm = Command::new("nm");
    nm.args(["-g", "--defined-only"]);
    if dynamic {
        nm.arg("-D");
    }
    let out = run(nm.arg(file));
    out.lines().map(words).filter(|w| w.len() == 3).map(|w| w[2].clone()).collect()
}

fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("pkg-config");
    cmd.args(args).arg("jobq").env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"));
    words(&run(&mut cmd))
}

fn cc(args: &[String], out: &Path) {
    let mut cmd = Command::new("cc");
    cmd.args(["-std=c99", "-D_GNU_SOURCE", "-O1", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]);
    run(cmd.args(args).arg("-o").arg(out));
}

const SQLITE_NEXT_TO_JOBQ: &str = r#"
#include <stdio.h>
#include <string.h>
#include <sqlite3.h>
#include "jobq.h"

/* Uses the system SQLite and jobq (with its own SQLite inside) in one program. */
int main(int argc, char **argv) {
  char path[4096], *version_sql = NULL;
  sqlite3 *db;
  sqlite3_stmt *stmt;
  jobq *q;
  jobq_job *job;
  uint64_t id = 0;
  int ok = 1;
  (void)argc;
  printf("sqlite3_libversion=%s SQLITE_VERSION=%s\n", sqlite3_libversion(), SQLITE_VERSION);
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 1;
  if (sqlite3_prepare_v2(db, "select sqlite_version()", -1, &stmt, NULL) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    version_sql = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  printf("select sqlite_version()=%s\n", version_sql ? version_sql : "?");
  snprintf(path, sizeof path, "%s/both.db", argv[1]);
  ok = ok && jobq_open(path, NULL, &q) == JOBQ_OK;
  ok = ok && jobq_put(q, "q", "both", 4, NULL, &id) == JOBQ_OK;
  ok = ok && jobq_reserve(q, "q", 1000, &job) == JOBQ_OK && jobq_job_id(job) == id;
  if (ok) {
    ok = jobq_ack(job) == JOBQ_OK;
    jobq_job_free(job);
  }
  ok = ok && jobq_close(q) == JOBQ_OK;
  printf("jobq put/reserve/ack: %s (%s)\n", ok ? "ok" : "FAILED", jobq_last_error());
  sqlite3_free(version_sql);
  sqlite3_close(db);
  return ok ? 0 : 1;
}
"#;

const VERSION_PROGRAM: &str = r#"
#include <stdio.h>
#include <string.h>
#include "jobq.h"
int main(void) {
  printf("%d %d %d %d %s %u %s\n", JOBQ_VERSION_MAJOR, JOBQ_VERSION_MINOR, JOBQ_VERSION_PATCH, JOBQ_VERSION_NUMBER,
         JOBQ_VERSION_STRING, (unsigned)jobq_version_number(), jobq_version());
  return jobq_version_number() == JOBQ_VERSION_NUMBER && strcmp(jobq_version(), JOBQ_VERSION_STRING) == 0 ? 0 : 1;
}
"#;

const CMAKE_LISTS: &str = r#"
cmake_minimum_required(VERSION 3.13)
project(jobq_consumer C CXX)

find_package(jobq @MAJOR_MINOR@ REQUIRED)
if(NOT jobq_VERSION STREQUAL "@VERSION@")
  message(FATAL_ERROR "jobq_VERSION is '${jobq_VERSION}', want @VERSION@")
endif()
message(STATUS "found jobq ${jobq_VERSION} in ${jobq_DIR}")

add_executable(app_c main.c)
target_link_libraries(app_c PRIVATE jobq::jobq)

add_executable(app_cpp main.cpp)
set_target_properties(app_cpp PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
target_link_libraries(app_cpp PRIVATE jobq::jobq)

add_executable(app_static main.c)
target_link_libraries(app_static PRIVATE jobq::jobq_static)

# A newer major version than installed must not be found.
function(expect_too_new)
  find_package(jobq @NEXT_MAJOR@ QUIET)
  if(jobq_FOUND)
    message(FATAL_ERROR "find_package(jobq @NEXT_MAJOR@) accepted jobq ${jobq_VERSION}")
  endif()
endfunction()
expect_too_new()
"#;

const CMAKE_MAIN_C: &str = r#"
#include <stdio.h>
#include "jobq.h"
int main(int argc, char **argv) {
  char path[4096];
  jobq *q;
  jobq_job *job;
  size_t len;
  (void)argc;
  snprintf(path, sizeof path, "%s/cmake-c.db", argv[1]);
  if (jobq_open(path, NULL, &q) != JOBQ_OK || jobq_put(q, "q", "from cmake", 10, NULL, NULL) != JOBQ_OK) return 1;
  if (jobq_reserve(q, "q", 1000, &job) != JOBQ_OK) return 1;
  printf("app_c: %.*s\n", 10, (const char *)jobq_job_payload(job, &len));
  jobq_ack(job);
  jobq_job_free(job);
  return jobq_close(q) == JOBQ_OK ? 0 : 1;
}
"#;

const CMAKE_MAIN_CPP: &str = r#"
#include <iostream>
#include <string>
#include "jobq.hpp"
int main(int, char **argv) {
  try {
    jobqpp::Queue q(std::string(argv[1]) + "/cmake-cpp.db");
    q.put("q", "from c++");
    auto job = q.reserve("q", 1000);
    if (!job) return 1;
    std::cout << "app_cpp: " << job->payload() << " (jobq " << jobqpp::version() << ")\n";
    job->ack();
  } catch (const jobqpp::Error &e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
"#;

#[test]
fn make_install_and_use_from_c_cpp_cmake_pkg_config() {
    let libs = Libs::find();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let prefix = t.join("prefix");
    let (lib, include) = (prefix.join("lib"), prefix.join("include"));
    let bin = t.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    make_install(libs, t, prefix.to_str().unwrap(), None);

    let (major, minor, patch) =
        (env!("CARGO_PKG_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MINOR"), env!("CARGO_PKG_VERSION_PATCH"));
    let real = format!("libjobq.so.0.{minor}.{patch}");

    // Layout: the real file, the soname link, the dev link; headers, .pc, CMake files.
    assert!(std::fs::symlink_metadata(lib.join(&real)).unwrap().file_type().is_file(), "{real} is a file");
    assert_eq!(std::fs::read_link(lib.join("libjobq.so.0")).unwrap(), Path::new(&real));
    assert_eq!(std::fs::read_link(lib.join("libjobq.so")).unwrap(), Path::new("libjobq.so.0"));
    for f in ["include/jobq.h", "include/jobq.hpp", "lib/libjobq.a", "lib/pkgconfig/jobq.pc", "share/jobq/jobq.supp"] {
        assert!(prefix.join(f).is_file(), "{f} installed");
    }
    for f in ["jobqConfig.cmake", "jobqConfigVersion.cmake"] {
        assert!(lib.join("cmake/jobq").join(f).is_file(), "{f} installed");
    }
    assert_eq!(dynamic_entries(&lib.join(&real), "SONAME"), ["libjobq.so.0"]);

    // Only the C API is visible, in the .so and in the pre-linked .a alike.
    let so_syms = defined_globals(&lib.join("libjobq.so"), true);
    let mut a_syms = defined_globals(&lib.join("libjobq.a"), false);
    let not_api: Vec<_> = so_syms.iter().chain(&a_syms).filter(|s| !s.starts_with("jobq_")).collect();
    assert!(not_api.is_empty(), "exported beyond jobq_*: {not_api:?}");
    assert!(a_syms.iter().any(|s| s == "jobq_open") && a_syms.iter().any(|s| s == "jobq_worker_start"));
    let mut so_sorted = so_syms.clone();
    so_sorted.sort();
    a_syms.sort();
    assert_eq!(a_syms, so_sorted, "libjobq.a and libjobq.so export the same functions");

    // pkg-config metadata.
    assert_eq!(pkg_config(&prefix, &["--modversion"]), [VERSION]);
    let libs_private = pkg_config(&prefix, &["--static", "--libs"]);
    for l in ["-ljobq", "-lpthread", "-ldl", "-lm"] {
        assert!(libs_private.iter().any(|w| w == l), "pkg-config --static --libs has {l}: {libs_private:?}");
    }

    let producer = root().join("examples/producer.c").display().to_string();
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    std::thread::scope(|s| {
        // CMake: configure (the slow part) while the other checks run.
        let cmake = s.spawn(|| cmake_project(&prefix, t, major, minor));

        // pkg-config, shared: the program needs libjobq.so.0 and finds the installed one.
        let shared = bin.join("producer-shared");
        let mut args = vec![producer.clone()];
        args.extend(pkg_config(&prefix, &["--cflags", "--libs"]));
        args.push(rpath.clone());
        cc(&args, &shared);
        assert!(dynamic_entries(&shared, "NEEDED").contains(&"libjobq.so.0".to_string()));
        let out = run(Command::new(&shared).arg(t.join("pc-shared.db")).args(["mail", "hello", "world"]));
        assert_eq!(out, "put job 1: hello\nput job 2: world\n");

        // pkg-config --static, forced static: no libjobq.so.0 needed at run time.
        let fixed = bin.join("producer-static");
        let mut args = vec![producer.clone()];
        for w in pkg_config(&prefix, &["--static", "--cflags", "--libs"]) {
            if w == "-ljobq" {
                args.extend(["-Wl,-Bstatic".into(), w, "-Wl,-Bdynamic".into()]);
            } else {
                args.push(w);
            }
        }
        cc(&args, &fixed);
        assert!(!dynamic_entries(&fixed, "NEEDED").iter().any(|n| n.contains("jobq")), "linked statically");
        let out = run(Command::new(&fixed).arg(t.join("pc-static.db")).args(["mail", "static"]));
        assert_eq!(out, "put job 1: static\n");

        // libjobq.a next to the system SQLite: the program's sqlite3_* calls
        // get the system library, jobq keeps its own inside.
        let src = t.join("both.c");
        std::fs::write(&src, SQLITE_NEXT_TO_JOBQ).unwrap();
        let both = bin.join("sqlite-both");
        let link = |archive: &Path, out: &Path| {
            let mut args = vec![src.display().to_string(), format!("-I{}", include.display())];
            args.push(archive.display().to_string());
            args.extend(words("-lsqlite3 -lpthread -ldl -lm"));
            cc(&args, out);
        };
        link(&lib.join("libjobq.a"), &both);
        let out = run(Command::new(&both).arg(t));
        let first = out.lines().next().unwrap_or("");
        let fields: Vec<&str> = first.split([' ', '=']).collect();
        assert!(fields.len() == 4 && fields[1] == fields[3], "system SQLite, not the bundled one:\n{out}");
        assert!(out.contains(&format!("select sqlite_version()={}", fields[3])), "{out}");
        assert!(out.contains("jobq put/reserve/ack: ok"), "{out}");
        // The control: rustc's own archive hands the program the bundled SQLite.
        let bundled = rusqlite::version();
        if bundled != fields[3] {
            let raw = bin.join("sqlite-both-raw");
            link(&libs.static_lib, &raw);
            let out = run(Command::new(&raw).arg(t));
            assert!(out.starts_with(&format!("sqlite3_libversion={bundled} ")), "control:\n{out}");
        }

        // The header's version macros vs. the library's functions.
        let vsrc = t.join("version.c");
        std::fs::write(&vsrc, VERSION_PROGRAM).unwrap();
        let vbin = bin.join("version");
        cc(
            &[
                vsrc.display().to_string(),
                format!("-I{}", include.display()),
                lib.join("libjobq.so").display().to_string(),
                rpath.clone(),
            ],
            &vbin,
        );
        let number =
            major.parse::<u32>().unwrap() * 10000 + minor.parse::<u32>().unwrap() * 100 + patch.parse::<u32>().unwrap();
        assert_eq!(
            run(&mut Command::new(&vbin)),
            format!("{major} {minor} {patch} {number} {VERSION} {number} {VERSION}\n")
        );

        cmake.join().unwrap();
    });

    // DESTDIR: staged under it, but the files name the final prefix.
    let dest = t.join("dest");
    make_install(libs, t, "/opt/jobq", Some(&dest));
    let staged = dest.join("opt/jobq");
    assert!(staged.join("lib").join(&real).is_file() && staged.join("include/jobq.hpp").is_file());
    assert_eq!(
        std::fs::read(staged.join("share/jobq/jobq.supp")).unwrap(),
        std::fs::read(root().join("pkg/jobq.supp")).unwrap(),
        "the valgrind suppressions are installed as they are in pkg/"
    );
    let pc = std::fs::read_to_string(staged.join("lib/pkgconfig/jobq.pc")).unwrap();
    assert!(pc.contains("prefix=/opt/jobq\n") && !pc.contains(dest.to_str().unwrap()), "{pc}");
}

/// A CMake project using find_package(jobq) and jobq::jobq / jobq::jobq_static.
fn cmake_project(prefix: &Path, t: &Path, major: &str, minor: &str) {
    let src = t.join("cmake-src");
    let build = t.join("cmake-build");
    std::fs::create_dir_all(&src).unwrap();
    let next_major = major.parse::<u32>().unwrap() + 1;
    let lists = CMAKE_LISTS
        .replace("@MAJOR_MINOR@", &format!("{major}.{minor}"))
        .replace("@VERSION@", VERSION)
        .replace("@NEXT_MAJOR@", &next_major.to_string());
    std::fs::write(src.join("CMakeLists.txt"), lists).unwrap();
    std::fs::write(src.join("main.c"), CMAKE_MAIN_C).unwrap();
    std::fs::write(src.join("main.cpp"), CMAKE_MAIN_CPP).unwrap();
    let configure = run(Command::new("cmake")
        .arg("-S")
        .arg(&src)
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .arg("-DCMAKE_BUILD_TYPE=Release"));
    assert!(
        configure.contains(&format!("found jobq {VERSION} in {}", prefix.join("lib/cmake/jobq").display())),
        "{configure}"
    );
    run(Command::new("cmake").arg("--build").arg(&build).args(["-j", "2"]).env_remove("MAKEFLAGS"));

    let out = run(Command::new(build.join("app_c")).arg(t));
    assert_eq!(out, "app_c: from cmake\n");
    assert!(dynamic_entries(&build.join("app_c"), "NEEDED").contains(&"libjobq.so.0".to_string()));
    let out = run(Command::new(build.join("app_cpp")).arg(t));
    assert_eq!(out, format!("app_cpp: from c++ (jobq {VERSION})\n"));
    let out = run(Command::new(build.join("app_static")).arg(t));
    assert_eq!(out, "app_c: from cmake\n");
    assert!(!dynamic_entries(&build.join("app_static"), "NEEDED").iter().any(|n| n.contains("jobq")));
}

/// examples/plugin_host.c: no link-time dependency on jobq; three dlopen /
/// use / dlclose rounds in one process leave no thread behind.
#[test]
fn plugin_host_loads_and_unloads_without_leaving_threads() {
    let libs = Libs::find();
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("plugin_host");
    let src = root().join("examples/plugin_host.c");
    cc(
        &[src.display().to_string(), format!("-I{}", libs.include_dir().display()), "-ldl".into(), "-lpthread".into()],
        &host,
    );
    assert!(!dynamic_entries(&host, "NEEDED").iter().any(|n| n.contains("jobq")), "plugin_host must not link jobq");
    let undefined = run(Command::new("nm").arg("-u").arg(&host));
    assert!(!undefined.contains("jobq_"), "plugin_host refers to jobq symbols at link time:\n{undefined}");

    let out = run(Command::new(&host).arg(libs.shared_dir.join("libjobq.so")).arg(tmp.path()));
    assert_eq!(out.matches(", 40 jobs handled,").count(), 3, "{out}");
    assert!(out.ends_with("ok\n"), "{out}");
}
