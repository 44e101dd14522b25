//! The README shows code and output that must stay true: its library snippet
//! is the compiled example `examples/guard.rs`, word for word.

/// The lines of `examples/guard.rs` between its README markers, dedented.
fn guard_snippet() -> String {
    let example = include_str!("../../examples/guard.rs");
    let start = example.find("// README:begin\n").expect("begin marker") + 16;
    let end = example.find("    // README:end").expect("end marker");
    example[start..end]
        .lines()
        .map(|line| line.strip_prefix("    ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_readme_library_snippet_is_the_compiled_example() {
    let readme = include_str!("../../README.md");
    let snippet = guard_snippet();
    assert!(
        snippet.lines().count() > 10,
        "the markers enclose the snippet"
    );
    assert!(
        readme.contains(&snippet),
        "README.md must quote examples/guard.rs between its markers:\n{snippet}"
    );
}
