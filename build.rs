//! Generates include/jobq.h from src/ffi with cbindgen (pinned in
//! Cargo.toml) and sets the shared library's soname. The header is
//! committed; CI regenerates it and fails if it differs.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.toml");
    // The ABI major version is in the soname: it changes only on an ABI break.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libjobq.so.0");
    soname_link();

    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let mut config = match cbindgen::Config::from_file(dir.join("cbindgen.toml")) {
        Ok(c) => c,
        Err(e) => panic!("cbindgen.toml: {e}"),
    };
    let v = |k: &str| std::env::var(k).unwrap_or_default();
    let (major, minor, patch) =
        (v("CARGO_PKG_VERSION_MAJOR"), v("CARGO_PKG_VERSION_MINOR"), v("CARGO_PKG_VERSION_PATCH"));
    let num = |s: &str| s.parse::<u32>().unwrap_or(0);
    config.after_includes = Some(format!(
        "\n/* The version of this header. jobq_version() and jobq_version_number()\n \
         * give the library's, to compare at run time. */\n\
         #define JOBQ_VERSION_MAJOR {major}\n#define JOBQ_VERSION_MINOR {minor}\n\
         #define JOBQ_VERSION_PATCH {patch}\n#define JOBQ_VERSION_NUMBER {}\n\
         #define JOBQ_VERSION_STRING \"{}\"\n",
        num(&major) * 10000 + num(&minor) * 100 + num(&patch),
        v("CARGO_PKG_VERSION"),
    ));
    let bindings = match cbindgen::Builder::new().with_config(config).with_src(dir.join("src/ffi/mod.rs")).generate() {
        Ok(b) => b,
        Err(e) => panic!("cbindgen failed: {e}"),
    };
    // Write only on change, so an unchanged header keeps its timestamp.
    bindings.write_to_file(dir.join("include/jobq.h"));
}

/// A program linked against target/<profile>/libjobq.so records the soname
/// libjobq.so.0 and looks for that name at run time (rpath). So that the
/// README's "build against the tree" line works after a plain `cargo build`,
/// put the link `libjobq.so.0 -> libjobq.so` next to where cargo writes the
/// library (OUT_DIR is <profile>/build/jobq-<hash>/out). It is made before
/// the library is linked, dangling for a moment on a first build. A build
/// script should write only in OUT_DIR: this one link is the exception (it
/// is what `make` also makes), and a failure only warns.
fn soname_link() {
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else { return };
    let Some(profile) = out.ancestors().nth(3) else { return };
    if out.ancestors().nth(2).and_then(|b| b.file_name()) != Some(std::ffi::OsStr::new("build")) {
        return;
    }
    let link = profile.join("libjobq.so.0");
    if std::fs::read_link(&link).is_ok_and(|t| t == std::path::Path::new("libjobq.so")) {
        return;
    }
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink("libjobq.so", &link) {
        println!("cargo:warning=cannot create {} -> libjobq.so: {e}", link.display());
    }
}
