//! The repository's documents hold together: every link in `README.md`, in
//! `docs/*.md` and in the other Markdown files of the repository that points
//! into the repository resolves to a file or folder that exists, and every
//! `#anchor` to a heading of the page it names; and the layout in
//! `docs/development.md` names every source file of the library and the CLI.
//!
//! Links into the repository are relative paths, or absolute URLs of this
//! repository on GitHub (`…/blob/main/PATH`, `…/tree/main/PATH`, and
//! `raw.githubusercontent.com/…/main/PATH`, which the README uses so that
//! crates.io shows them). Other URLs are not fetched: the tests stay offline.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The GitHub URL prefixes that name a file of this repository.
const OWN_URLS: [&str; 3] = [
    "https://github.com/bakong-khqr/bakong-khqr/blob/main/",
    "https://github.com/bakong-khqr/bakong-khqr/tree/main/",
    "https://raw.githubusercontent.com/bakong-khqr/bakong-khqr/main/",
];

/// Folders whose Markdown is not ours to check (build output, installed
/// packages, the fuzzer's own files).
const SKIPPED_DIRS: [&str; 6] = [
    "target",
    "node_modules",
    ".git",
    "corpus",
    "artifacts",
    "coverage",
];

/// Every `.md` file of the repository, relative to its root, sorted.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !SKIPPED_DIRS.contains(&name) {
                    walk(&path, out);
                }
            } else if path.extension().and_then(|e| e.to_str()) == Some("md") {
                out.push(path.strip_prefix(REPO).expect("under the repo").into());
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new(REPO), &mut out);
    out.sort();
    out
}

/// A heading's anchor as GitHub makes it: lower case; letters, digits, `-`
/// and `_` kept, spaces turned into `-`, everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The links of a Markdown text (links and images, inline, reference and
/// autolinks; never text inside code) and the anchors of its headings.
fn links_and_anchors(text: &str) -> (Vec<String>, HashSet<String>) {
    let mut links = Vec::new();
    let mut anchors = HashSet::new();
    let mut heading: Option<String> = None;
    for event in Parser::new_ext(text, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                links.push(dest_url.into_string());
            }
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap_or_default());
                // A repeated heading gets -1, -2, … as on GitHub.
                let mut anchor = base.clone();
                let mut n = 0;
                while !anchors.insert(anchor.clone()) {
                    n += 1;
                    anchor = format!("{base}-{n}");
                }
            }
            _ => {}
        }
    }
    (links, anchors)
}

/// `path` with `.` and `..` resolved, without touching the file system; None
/// when it climbs out of the repository.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What is wrong with one link of `file`, if anything.
fn check_link(file: &Path, link: &str) -> Option<String> {
    let (target, anchor) = match link.split_once('#') {
        Some((t, a)) => (t, Some(a)),
        None => (link, None),
    };
    let local = if target.is_empty() {
        file.to_path_buf()
    } else if let Some(rest) = OWN_URLS.iter().find_map(|p| target.strip_prefix(p)) {
        PathBuf::from(rest.trim_end_matches('/'))
    } else if target.contains("://") || target.starts_with("mailto:") {
        return None; // elsewhere on the web: not checked offline
    } else {
        let joined = file.parent().unwrap_or(Path::new("")).join(target);
        match normalise(&joined) {
            Some(p) => p,
            None => return Some(format!("{link}: leaves the repository")),
        }
    };
    let on_disk = Path::new(REPO).join(&local);
    if !on_disk.exists() {
        return Some(format!("{link}: {} does not exist", local.display()));
    }
    let anchor = anchor?;
    if local.extension().and_then(|e| e.to_str()) != Some("md") {
        return None; // anchors into code: GitHub's line anchors, not checked
    }
    let text = std::fs::read_to_string(&on_disk).ok()?;
    let (_, anchors) = links_and_anchors(&text);
    if anchors.contains(anchor) {
        None
    } else {
        Some(format!(
            "{link}: {} has no heading #{anchor}",
            local.display()
        ))
    }
}

#[test]
fn every_link_into_the_repository_resolves() {
    let files = markdown_files();
    // The pages the README promises must be among them.
    for page in [
        "README.md",
        "docs/server.md",
        "docs/card.md",
        "docs/performance.md",
        "docs/sdk-differences.md",
    ] {
        assert!(files.contains(&PathBuf::from(page)), "{page} is missing");
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(Path::new(REPO).join(file))
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let (links, _) = links_and_anchors(&text);
        for link in links {
            checked += 1;
            if let Some(problem) = check_link(file, &link) {
                broken.push(format!("{}: {problem}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    // The README links to every page of docs/ (and more): the walk found them.
    assert!(
        checked > 40,
        "only {checked} links found: is the parser reading the files?"
    );
}

#[test]
fn the_checker_catches_what_it_should() {
    let readme = Path::new("README.md");
    assert_eq!(check_link(readme, "docs/server.md"), None);
    assert_eq!(check_link(readme, "docs/server.md#run-it-on-a-vps"), None);
    assert_eq!(check_link(readme, "https://docs.rs/bakong-khqr"), None);
    assert!(check_link(readme, "docs/nothing.md").is_some());
    assert!(check_link(readme, "docs/server.md#no-such-heading").is_some());
    assert!(check_link(readme, "../outside.md").is_some());
    assert!(check_link(
        readme,
        "https://github.com/bakong-khqr/bakong-khqr/blob/main/no/such/file"
    )
    .is_some());
    let docs = Path::new("docs/card.md");
    assert_eq!(check_link(docs, "../benches/scan_report.rs"), None);
    assert_eq!(check_link(docs, "#read-rates"), None);
    assert_eq!(
        slug("Why the card scans (issue 9)"),
        "why-the-card-scans-issue-9"
    );
    assert_eq!(
        slug("The card: speed and memory"),
        "the-card-speed-and-memory"
    );
    let (_, anchors) = links_and_anchors("# A\n\n## A\n\n```\n# not a heading\n```\n");
    assert_eq!(
        anchors,
        HashSet::from(["a".to_owned(), "a-1".to_owned()]),
        "repeats are numbered; code is not a heading"
    );
}

/// The text of the `## Layout` section of `docs/development.md`.
fn layout_section() -> String {
    let text = std::fs::read_to_string(Path::new(REPO).join("docs/development.md"))
        .expect("docs/development.md");
    let mut section = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("## ") {
            inside = line == "## Layout";
        }
        if inside {
            section.push_str(line);
            section.push('\n');
        }
    }
    assert!(!section.is_empty(), "docs/development.md has no ## Layout");
    section
}

#[test]
fn the_layout_names_every_source_file() {
    fn rust_files(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(Path::new(REPO).join(dir)).expect("a source folder") {
            let path = entry.expect("a directory entry").path();
            let relative = path
                .strip_prefix(REPO)
                .expect("under the repo")
                .to_path_buf();
            if path.is_dir() {
                rust_files(&relative, out);
            } else if relative.extension().and_then(|e| e.to_str()) == Some("rs") {
                out.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let section = layout_section();
    let mut files = Vec::new();
    for dir in ["src", "cli/src", "cli/tests"] {
        rust_files(Path::new(dir), &mut files);
    }
    assert!(files.len() > 30, "found only {files:?}");
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !section.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/development.md's ## Layout does not name {missing:?}"
    );
    // The server's modules are described in its crate docs, which it links to.
    assert!(section.contains("(../server/src/lib.rs)"));
}
