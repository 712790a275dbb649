//! The generated header is usable as users compile it, and the shared
//! library exports nothing but the jobq_* API.

use std::path::Path;
use std::process::Command;

#[path = "support/clib.rs"]
mod clib;

fn compile_header(compiler: &str, args: &[&str]) {
    clib::ensure_tools();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join(if compiler == "cc" { "h.c" } else { "h.cpp" });
    std::fs::write(
        &src,
        "#include \"jobq.h\"\n#include \"jobq.h\"\n\
         int use_it(void);\nint use_it(void) { jobq_put_opts o; jobq_put_opts_init(&o); return (int)o.struct_size; }\n",
    )
    .unwrap();
    let out = Command::new(compiler)
        .args(args)
        .arg("-I")
        .arg(root.join("include"))
        .arg("-fsyntax-only")
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(out.status.success(), "{compiler} {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn header_compiles_as_strict_c99() {
    compile_header("cc", &["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]);
}

#[test]
fn header_compiles_as_cpp() {
    compile_header("c++", &["-std=c++11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]);
    compile_header("c++", &["-std=c++17", "-Wall", "-Wextra", "-Werror"]);
}

#[test]
fn header_version_matches_the_crate() {
    let header = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/jobq.h")).unwrap();
    let want = format!("#define JOBQ_VERSION_STRING \"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(header.contains(&want), "header lacks {want}");
}

#[test]
fn shared_library_exports_only_jobq_symbols() {
    let libs = clib::Libs::find();
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(libs.shared_dir.join("libjobq.so"))
        .output()
        .expect("nm (binutils) is installed with gcc");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    assert!(names.contains(&"jobq_put"), "jobq_put not exported: {names:?}");
    let foreign: Vec<&&str> = names.iter().filter(|n| !n.starts_with("jobq_")).collect();
    assert!(foreign.is_empty(), "non-jobq symbols exported: {foreign:?}");
}
