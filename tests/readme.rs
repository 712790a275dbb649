//! The README's first hour, as written: its C example built with its "build
//! against the tree" lines (shared and static) after `cargo build --release`
//! alone, no `make` (build.rs makes the soname link libjobq.so.0 that the
//! shared program looks for at run time), then run. Also checks that the
//! README stays a front page: short, and every docs/ page it links exists.
//!
//! It runs `cargo build --release --lib` itself, as the README says to
//! (nothing to do when target/release is fresh; a first run builds the
//! release library).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/clib.rs"]
mod clib;
#[path = "support/markdown.rs"]
mod markdown;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md")
}

/// The fenced blocks of `lang` in `text` after the heading `heading`, in order.
fn blocks_after(text: &str, heading: &str, lang: &str) -> Vec<String> {
    let start = text.find(heading).unwrap_or_else(|| panic!("README has no {heading:?}"));
    let after = text[start..].split_once('\n').map_or("", |(_, rest)| rest);
    markdown::fenced_blocks(after, lang, true)
}

/// Runs `line` with sh in the checkout's top directory; panics with its output on failure.
fn sh_in_root(line: &str) {
    let out =
        Command::new("sh").arg("-c").arg(line).current_dir(root()).env_remove("LD_LIBRARY_PATH").output().unwrap();
    assert!(
        out.status.success(),
        "{line}\nfailed with {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_readme_example_builds_against_the_tree_after_cargo_build_release_alone() {
    clib::ensure_tools();
    let text = readme();
    let c = blocks_after(&text, "## A short example", "c");
    assert_eq!(c.len(), 1, "one C example");
    let example = &c[0];
    assert!(example.lines().count() <= 20, "the front page's example stays within 20 lines:\n{example}");
    let sh = blocks_after(&text, "## A short example", "sh");
    let lines: Vec<String> = sh
        .iter()
        .flat_map(|b| b.lines())
        .map(|l| l.split(" # ").next().unwrap_or("").trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let builds: Vec<&String> = lines.iter().filter(|l| l.starts_with("cc app.c -o app ")).collect();
    assert_eq!(builds.len(), 2, "a shared and a static build line: {lines:?}");
    assert!(lines.iter().any(|l| l == "./app"), "{lines:?}");
    assert!(text.contains("after `cargo build --release`"), "the README says what to run first");

    // The README's first step, for the library only (the CLI binary is not
    // needed here, and CI then builds one release tree for this test and
    // the release C tests). The link build.rs makes is what the shared
    // program needs: without it, "error while loading shared libraries:
    // libjobq.so.0".
    let release = clib::cargo_build_release(&["--lib"]);
    let link = release.join("libjobq.so.0");
    assert_eq!(
        std::fs::read_link(&link).ok().as_deref(),
        Some(Path::new("libjobq.so")),
        "{} -> libjobq.so after cargo build --release",
        link.display()
    );

    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("app.c"), example).unwrap();
    // As written, but on files in `t` (the example writes jobs.db into its
    // working directory), and with target/ wherever this test's target is
    // (CARGO_TARGET_DIR) if that is not the checkout's target/.
    let moved_target = release != root().join("target/release");
    for (i, build) in builds.iter().enumerate() {
        let dir = t.join(format!("run{i}"));
        std::fs::create_dir(&dir).unwrap();
        let mut line = build.replace(
            "cc app.c -o app ",
            &format!("cc {} -o {} ", t.join("app.c").display(), dir.join("app").display()),
        );
        if moved_target {
            line = line.replace("$PWD/target/release", "@T@").replace("target/release", "@T@");
            line = line.replace("@T@", &release.display().to_string());
        }
        sh_in_root(&line);
        let out = Command::new(dir.join("app")).current_dir(&dir).env_remove("LD_LIBRARY_PATH").output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout == "job 1: hello\n",
            "{line}: ./app gave {}:\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The front page stays short, and what it links is there.
#[test]
fn the_readme_is_a_front_page_whose_links_exist() {
    let text = readme();
    assert!(text.len() < 8 * 1024, "README.md is {} bytes: move details to docs/", text.len());
    let targets = local_links(&text);
    for target in &targets {
        let path = target.split('#').next().unwrap_or("");
        assert!(root().join(path).exists(), "README links {target}, which does not exist");
    }
    assert!(targets.iter().filter(|t| t.starts_with("docs/")).count() >= 10, "{targets:?}");
    // Every docs/ page's relative links resolve too.
    for entry in std::fs::read_dir(root().join("docs")).unwrap().flatten() {
        let page = entry.path();
        if page.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let body = std::fs::read_to_string(&page).unwrap();
        for target in local_links(&body) {
            let path = target.split('#').next().unwrap_or("");
            if path.is_empty() {
                continue;
            }
            assert!(
                page.parent().unwrap().join(path).exists(),
                "{} links {target}, which does not exist",
                page.display()
            );
        }
    }
}

/// The targets of the Markdown links `[...](target)` outside fenced code
/// blocks, except http(s) ones.
fn local_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = &rest[..end];
            if !target.is_empty() && !target.starts_with("http") {
                out.push(target.to_owned());
            }
        }
    }
    out
}
