//! The README shows code and output that must stay true: its library
//! snippets are the compiled examples `examples/guard.rs` and
//! `examples/greeter/main.rs`, word for word.

/// The lines of `example` between its README markers, dedented as much as
/// the begin marker is indented.
fn snippet(example: &str) -> String {
    let begin = example.find("// README:begin\n").expect("begin marker");
    let indent = &example[example[..begin].rfind('\n').map_or(0, |n| n + 1)..begin];
    let end = example
        .find(&format!("{indent}// README:end"))
        .expect("end marker");
    example[begin + 16..end]
        .lines()
        .map(|line| line.strip_prefix(indent).unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_readme_library_snippets_are_the_compiled_examples() {
    let readme = include_str!("../../README.md");
    for (name, example, least) in [
        (
            "examples/guard.rs",
            include_str!("../../examples/guard.rs"),
            5,
        ),
        (
            "examples/greeter/main.rs",
            include_str!("../../examples/greeter/main.rs"),
            10,
        ),
    ] {
        let snippet = snippet(example);
        assert!(
            snippet.lines().count() >= least,
            "the markers of {name} enclose the snippet"
        );
        assert!(
            readme.contains(&snippet),
            "README.md must quote {name} between its markers:\n{snippet}"
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
