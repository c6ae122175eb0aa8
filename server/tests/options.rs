//! The operator documentation's option table (`docs/server.md`,
//! "Configuration") and the server's own options (`Config::command()`, what
//! `--help` prints) agree: every flag and variable of the table exists with
//! that default, and every option of the command is in the table.

use std::collections::BTreeSet;

use clap::CommandFactory;
use khqr_server::Config;

/// The backticked pieces of a table cell, in order.
fn ticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// The rows of the table: (variables, flags, default cell).
fn rows(doc: &str) -> Vec<(Vec<String>, Vec<String>, String)> {
    let section = doc
        .split("## Configuration")
        .nth(1)
        .expect("docs/server.md has a Configuration section");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| variable | flag | default |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 3, "a row of three cells: {l}");
            let vars = ticked(cells[0]).into_iter().map(str::to_owned).collect();
            let flags = ticked(cells[1])
                .into_iter()
                .filter(|f| f.starts_with("--"))
                .map(str::to_owned)
                .collect();
            (vars, flags, cells[2].to_owned())
        })
        .collect()
}

#[test]
fn the_option_table_and_the_command_agree() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/server.md"))
        .expect("docs/server.md");
    let command = Config::command();
    let rows = rows(&doc);
    assert!(rows.len() >= 30, "the table has {} rows", rows.len());
    let mut documented = BTreeSet::new();
    for (vars, flags, default) in &rows {
        if flags.is_empty() {
            // Secrets: only in the environment, never options.
            assert_eq!(vars.len(), 1, "{vars:?}");
            assert!(default.starts_with("none"), "{vars:?}: {default}");
            assert!(
                command
                    .get_arguments()
                    .all(|a| a.get_env().and_then(|e| e.to_str()) != Some(vars[0].as_str())),
                "{} is documented as never argv but is an option",
                vars[0]
            );
            continue;
        }
        assert_eq!(
            vars.len(),
            flags.len(),
            "one variable per flag: {vars:?} {flags:?}"
        );
        let values = ticked(default);
        for (i, (var, flag)) in vars.iter().zip(flags).enumerate() {
            let long = flag.trim_start_matches("--");
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap_or_else(|| panic!("{flag} is in the table but not an option"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(var.as_str()),
                "{flag}'s variable"
            );
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            match defaults.as_slice() {
                [] => assert!(
                    !default.starts_with('`') || values.first().is_some_and(|v| v.contains('<')),
                    "{flag} has no default but the table gives {default}"
                ),
                [d] if d == "false" => assert_eq!(default, "off", "{flag}"),
                [d] => assert_eq!(values.get(i).copied(), Some(d.as_str()), "{flag}'s default"),
                more => panic!("{flag}: several defaults {more:?}"),
            }
            documented.insert(long.to_owned());
        }
    }
    let options: BTreeSet<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| *l != "help" && *l != "version")
        .map(str::to_owned)
        .collect();
    let missing: Vec<_> = options.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "options missing from docs/server.md: {missing:?}"
    );
    assert_eq!(options, documented);
}
