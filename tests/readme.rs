//! README's map from formulas to code, and the documents' links, are checked against the tree:
//! every file and function the map names, in the reference engine and in the fast one, exists,
//! and every local link leads to a file and, if it names one, to a heading in it.

use std::path::{Path, PathBuf};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The spans between backticks in `line`.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

#[test]
fn every_function_in_the_map_exists_in_its_file() {
    let readme = read(Path::new("README.md"));
    let map = readme.split("### From the math to the code").nth(1).expect("the map's heading");
    let rows: Vec<&str> = map.lines().filter(|l| l.starts_with("| ") && l.contains("src/")).collect();
    assert!(rows.len() >= 10, "the map has {} rows", rows.len());
    let mut checked = 0;
    // The columns between the formula and the derivation: the reference's code and the fast's.
    let columns = rows.iter().flat_map(|row| {
        let cells: Vec<&str> = row.split(" | ").collect();
        cells[1..cells.len() - 1].iter().map(move |cell| (*row, *cell)).collect::<Vec<_>>()
    });
    for (row, code) in columns {
        // "`src/a.rs`, `f`; `src/b.rs`, `T::g`, `h`": each file, then the functions after it.
        let mut file: Option<String> = None;
        for span in code_spans(code) {
            if span.starts_with("src/") {
                file = Some(read(Path::new(span)));
            } else {
                let source = file.as_ref().unwrap_or_else(|| panic!("a function before any file: {row}"));
                // `Type::method`: a method of an `impl Type` in the file.
                let (owner, function) = span.rsplit_once("::").map_or((None, span), |(t, f)| (Some(t), f));
                assert!(
                    source.contains(&format!("fn {function}("))
                        || source.contains(&format!("fn {function}<")),
                    "{span} in {row}"
                );
                if let Some(owner) = owner {
                    let implemented =
                        [" ", "<"].iter().any(|after| source.contains(&format!("impl {owner}{after}")));
                    assert!(implemented, "{span}: no impl {owner} in its file, in {row}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "{checked} functions checked");
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `text` without its fenced code blocks.
fn prose(text: &str) -> String {
    text.split("```").step_by(2).collect::<Vec<_>>().join("\n")
}

/// The local link targets in `text`: `](target)` not starting with a scheme.
fn links(text: &str) -> Vec<&str> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|t| !t.contains("://") && !t.is_empty())
        .collect()
}

#[test]
fn every_local_link_leads_somewhere() {
    let mut checked = 0;
    for doc in
        ["README.md", "docs/backprop.md", "docs/performance.md", "docs/results.md", "docs/exercises.md"]
    {
        let doc = PathBuf::from(doc);
        let text = prose(&read(&doc));
        for link in links(&text) {
            let (file, anchor) = link.split_once('#').unwrap_or((link, ""));
            let target = if file.is_empty() { doc.clone() } else { doc.parent().unwrap().join(file) };
            assert!(target.exists(), "{}: link to {link}: no {}", doc.display(), target.display());
            if !anchor.is_empty() {
                let headings: Vec<String> = read(&target)
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .map(|l| slug(l.trim_start_matches('#')))
                    .collect();
                assert!(
                    headings.iter().any(|h| h == anchor),
                    "{}: no heading #{anchor} in {}",
                    doc.display(),
                    target.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} links checked");
}

/// `cargo bench -- <criterion's flags>` works only while neither the library nor the binary
/// has a libtest bench harness of its own, which would take the flags first and refuse them.
#[test]
fn only_criterion_runs_under_cargo_bench() {
    let manifest = read(Path::new("Cargo.toml"));
    for target in ["[lib]", "[[bin]]"] {
        let section = manifest.split(target).nth(1).unwrap_or_else(|| panic!("no {target} in Cargo.toml"));
        let section = section.split("\n[").next().unwrap();
        assert!(section.contains("bench = false"), "{target} has no `bench = false`: {section}");
    }
}
