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
