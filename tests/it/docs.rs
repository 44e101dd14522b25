//! The docs show code and links that must stay true: the library snippets
//! are the compiled examples, word for word (`examples/guard.rs` in the
//! README, `examples/greeter/main.rs` in the library guide, the rustdoc of
//! `src/lib.rs`), and every link between the docs names a file, and a
//! heading, that exists.

use std::{
    collections::HashSet,
    path::{Component, Path, PathBuf},
};

/// Where an example's quoted lines begin and end.
const BEGIN: &str = "// doc:begin\n";
const END: &str = "// doc:end";

/// The repository, as links to files that do not ship in the package name
/// it: `{REPOSITORY}blob/main/benches/README.md`.
const REPOSITORY: &str = "https://github.com/authgate/authgate/";

/// The lines of `example` between its doc markers, dedented as much as the
/// begin marker is indented.
fn snippet(example: &str) -> String {
    let begin = example.find(BEGIN).expect("begin marker");
    let indent = &example[example[..begin].rfind('\n').map_or(0, |n| n + 1)..begin];
    let end = example.find(&format!("{indent}{END}")).expect("end marker");
    example[begin + BEGIN.len()..end]
        .lines()
        .map(|line| line.strip_prefix(indent).unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The markdown of a file's `//!` comment, as rustdoc reads it.
fn rustdoc(source: &str) -> String {
    source
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_readme_library_snippets_are_the_compiled_examples() {
    let guide = rustdoc(include_str!("../../src/lib.rs"));
    for (name, example, least, doc, text) in [
        (
            "examples/guard.rs",
            include_str!("../../examples/guard.rs"),
            5,
            "README.md",
            include_str!("../../README.md"),
        ),
        (
            "examples/greeter/main.rs",
            include_str!("../../examples/greeter/main.rs"),
            10,
            "the library guide (src/lib.rs)",
            guide.as_str(),
        ),
    ] {
        let snippet = snippet(example);
        assert!(
            snippet.lines().count() >= least,
            "the markers of {name} enclose the snippet"
        );
        assert!(
            text.contains(&snippet),
            "{doc} must quote {name} between its markers:\n{snippet}"
        );
    }
}

/// What a user writes to guard their own service stays short: at most 15
/// lines of authgate-related code for the Greeter, `use` lines included;
/// what any tonic `main` has (the service's module, `main` itself) is not
/// counted.
#[test]
fn guarding_your_own_service_takes_at_most_fifteen_lines() {
    let code = snippet(include_str!("../../examples/greeter/main.rs"));
    let tonic_anyway = [
        "mod greeter;",
        "use greeter::",
        "#[tokio::main]",
        "async fn main",
        "Ok(())",
        "}",
    ];
    let lines: Vec<&str> = code
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .filter(|l| !tonic_anyway.iter().any(|t| l.starts_with(t)))
        .collect();
    assert!(
        lines.len() <= 15,
        "{} lines:\n{}",
        lines.len(),
        lines.join("\n")
    );
    assert!(
        lines[0].starts_with("use authgate::"),
        "the snippet shows its use lines"
    );
}

/// The markdown files whose links are checked: the README, the guides in
/// `docs/`, and the pages beside them.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = [
        "README.md",
        "CHANGELOG.md",
        "CONTRIBUTING.md",
        "SECURITY.md",
        "benches/README.md",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    let mut guides: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| path.strip_prefix(root).unwrap().to_owned())
        .collect();
    guides.sort();
    assert!(guides.len() >= 5, "the guides in docs/: {guides:?}");
    files.extend(guides);
    files
}

/// The text of `markdown` outside fenced code blocks and code spans, each
/// code character replaced by a space, so that links are found only where
/// a reader sees them.
fn prose(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if fenced {
            out.push('\n');
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    // Code spans: a run of N backticks up to the next run of exactly N.
    let chars: Vec<char> = out.chars().collect();
    let mut text = String::with_capacity(out.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            text.push(chars[i]);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&c| c == '`').count();
        let mut j = i + run;
        let close = loop {
            if j >= chars.len() {
                break None;
            }
            if chars[j] == '`' {
                let n = chars[j..].iter().take_while(|&&c| c == '`').count();
                if n == run {
                    break Some(j + n);
                }
                j += n;
            } else {
                j += 1;
            }
        };
        let end = close.unwrap_or(i + run);
        for &c in &chars[i..end] {
            text.push(if c == '\n' { '\n' } else { ' ' });
        }
        i = end;
    }
    text
}

/// Every link target in `markdown`: inline links `[text](target)` and
/// reference definitions `[name]: target`.
fn links(markdown: &str) -> Vec<String> {
    let text = prose(markdown);
    let mut targets = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let end = rest.find([')', ' ', '\n']).unwrap_or(rest.len());
        targets.push(rest[..end].to_owned());
    }
    for line in text.lines() {
        // `[name]: target` alone on its line (a line of a paragraph that
        // only starts so is not one).
        if let Some(definition) = line.strip_prefix('[')
            && let Some((_, target)) = definition.split_once("]: ")
            && !target.trim().contains(' ')
        {
            targets.push(target.trim().to_owned());
        }
    }
    targets
}

/// The anchors GitHub gives the headings of `markdown`: lower case, spaces
/// as `-`, punctuation dropped, `-1`, `-2` after a repeated one.
fn anchors(markdown: &str) -> HashSet<String> {
    let mut anchors = HashSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let heading = line.trim_start_matches('#');
        if fenced || heading.len() == line.len() || !heading.starts_with(' ') {
            continue;
        }
        let slug: String = heading
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let mut unique = slug.clone();
        let mut n = 0;
        while anchors.contains(&unique) {
            n += 1;
            unique = format!("{slug}-{n}");
        }
        anchors.insert(unique);
    }
    anchors
}

/// `path` with `.` and `..` resolved, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The paths Cargo.toml's `include` ships to crates.io, as written there
/// (`/src`, `/README.md`), without the leading `/`.
fn shipped(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let list = manifest
        .split_once("\ninclude = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .expect("Cargo.toml has an include list")
        .0;
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(|path| path.trim_start_matches('/').to_owned())
        .collect()
}

fn is_shipped(shipped: &[String], path: &Path) -> bool {
    shipped.iter().any(|s| path.starts_with(s))
}

/// What is wrong with each link of `file` (a path from `root`), if anything.
fn broken_links(root: &Path, file: &Path, text: &str, shipped: &[String]) -> Vec<String> {
    let from_shipped = is_shipped(shipped, file);
    let mut broken = Vec::new();
    for link in links(text) {
        let (path, anchor) = match link.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (link.as_str(), None),
        };
        let target = if path.is_empty() {
            file.to_owned()
        } else if let Some(in_repo) = path.strip_prefix(REPOSITORY).and_then(|p| {
            p.strip_prefix("blob/main/")
                .or(p.strip_prefix("tree/main/"))
        }) {
            let target = PathBuf::from(in_repo);
            if is_shipped(shipped, &target) {
                broken.push(format!(
                    "{link}: {in_repo} ships in the package; link to it relatively"
                ));
            }
            target
        } else if path.contains("://") || path.starts_with("mailto:") {
            continue;
        } else {
            let target = normalize(&file.parent().unwrap_or(Path::new("")).join(path));
            if from_shipped && !is_shipped(shipped, &target) {
                broken.push(format!(
                    "{link}: {} does not ship in the package; link to {REPOSITORY}blob/main/{}",
                    target.display(),
                    target.display()
                ));
            }
            target
        };
        let full = root.join(&target);
        if !full.exists() {
            broken.push(format!("{link}: no file {}", target.display()));
            continue;
        }
        let Some(anchor) = anchor else { continue };
        if target.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let heads = anchors(&std::fs::read_to_string(&full).unwrap());
        if !heads.contains(anchor) {
            broken.push(format!(
                "{link}: no heading #{anchor} in {}",
                target.display()
            ));
        }
    }
    broken
}

#[test]
fn relative_links_point_at_files_and_headings_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = shipped(root);
    assert!(
        shipped.iter().any(|s| s == "docs") && shipped.iter().any(|s| s == "README.md"),
        "{shipped:?}"
    );
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files(root) {
        let text = std::fs::read_to_string(root.join(&file)).unwrap();
        checked += links(&text).len();
        for why in broken_links(root, &file, &text, &shipped) {
            broken.push(format!("{}: {why}", file.display()));
        }
    }
    // The rustdoc cannot link relatively (docs.rs has no files beside it):
    // its links to the repository must name files that exist.
    let guide = rustdoc(include_str!("../../src/lib.rs"));
    for link in links(&guide) {
        if let Some(path) = link.strip_prefix(REPOSITORY) {
            let path = path.split('#').next().unwrap_or_default();
            let path = path
                .strip_prefix("blob/main/")
                .or(path.strip_prefix("tree/main/"))
                .unwrap_or(path);
            checked += 1;
            if !root.join(path).exists() {
                broken.push(format!("src/lib.rs: {link}: no file {path}"));
            }
        }
    }
    assert!(checked > 100, "only {checked} links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn links_and_anchors_are_read_as_github_reads_them() {
    let page = "# authgate\n## gRPC-Web, CORS and `GET /`: one port\n## Several issuers\n\
                ```sh\n# not a heading\n```\n### Several issuers\n\
                See [a](docs/x.md#y) and `[not](a link)`, ``[nor](this)``.\n\
                [tonic]: https://github.com/hyperium/tonic\n";
    let heads = anchors(page);
    for anchor in [
        "authgate",
        "grpc-web-cors-and-get--one-port",
        "several-issuers",
        "several-issuers-1",
    ] {
        assert!(heads.contains(anchor), "{anchor}: {heads:?}");
    }
    assert!(!heads.contains("not-a-heading"));
    assert_eq!(
        links(page),
        ["docs/x.md#y", "https://github.com/hyperium/tonic"]
    );
}
