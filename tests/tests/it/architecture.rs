//! Rules of the code base that a reviewer would otherwise have to remember,
//! checked by reading the sources:
//!
//! - every table has one owning crate (ARCHITECTURE.md, "Table ownership"),
//!   and only that crate's SQL names it;
//! - every table the migrations create has an owner;
//! - no crate exposes its `store` module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `| `table` | `crate` |` rows of ARCHITECTURE.md's "Table ownership".
fn ownership() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Table ownership"))
        .expect("ARCHITECTURE.md has a \"## Table ownership\" section");
    let mut owners = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [_, table, owner, ..] = cells.as_slice()
            && let (Some(table), Some(owner)) = (ticked(table), ticked(owner))
        {
            assert!(
                owners.insert(table.to_owned(), owner.to_owned()).is_none(),
                "{table} is listed twice"
            );
        }
    }
    assert!(!owners.is_empty(), "the ownership table has no rows");
    owners
}

fn ticked(cell: &str) -> Option<&str> {
    cell.strip_prefix('`')?.strip_suffix('`')
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The production crates: `crates/<name>/src`.
fn crates() -> Vec<(String, Vec<PathBuf>)> {
    let mut crates = Vec::new();
    for entry in std::fs::read_dir(workspace().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let src = dir.join("src");
        if src.is_dir() {
            let mut files = Vec::new();
            rust_files(&src, &mut files);
            files.sort();
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            crates.push((name, files));
        }
    }
    crates.sort();
    crates
}

/// The contents of every string literal in Rust source (plain, byte and
/// raw), skipping comments and character literals. Line continuations
/// (`\` at the end of a line) are kept as written; SQL keywords and table
/// names never straddle one.
fn string_literals(source: &str) -> Vec<String> {
    let bytes = source.as_bytes();
    let mut literals = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'\'' => {
                // A character literal ('x', '\'', '"') or a lifetime ('a).
                if bytes.get(i + 1) == Some(&b'\\') {
                    i += 2;
                    while i < bytes.len() && bytes[i] != b'\'' {
                        i += 1;
                    }
                    i += 1;
                } else if bytes.get(i + 2) == Some(&b'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            b'r' if matches!(bytes.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')) =>
            {
                let mut hashes = 0;
                let mut j = i + 1;
                while bytes.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if bytes.get(j) != Some(&b'"') {
                    i = j;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let start = j + 1;
                let end = source[start..]
                    .find(&close)
                    .map_or(source.len(), |n| start + n);
                literals.push(source[start..end].to_owned());
                i = end + close.len();
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' {
                    if bytes[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                literals.push(source[start..j.min(source.len())].to_owned());
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    literals
}

/// The tables a piece of SQL names: each identifier after `FROM`, `JOIN`,
/// `INTO`, `UPDATE`, `TABLE` or `ANALYZE` (this code base writes SQL
/// keywords in upper case).
fn tables_named(sql: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &["FROM", "JOIN", "INTO", "UPDATE", "TABLE", "ANALYZE"];
    let words: Vec<&str> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .filter(|pair| KEYWORDS.contains(&pair[0]))
        .map(|pair| pair[1].to_owned())
        .collect()
}

#[test]
fn the_scanner_finds_tables_in_sql_strings_only() {
    let source = r####"
        // FROM comment_table
        let c = '"'; let q = '\''; fn f<'a>(x: &'a str) {}
        sqlx::query("SELECT 1 FROM apps a \
                     LEFT JOIN linked_accounts l ON true");
        sqlx::query(r#"DELETE FROM "quoted" WHERE x = 'it''s'"#);
        let not_sql = "from apps";
    "####;
    let tables: BTreeSet<String> = string_literals(source)
        .iter()
        .flat_map(|s| tables_named(s))
        .collect();
    let expected: BTreeSet<String> = ["apps", "linked_accounts", "quoted"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(tables, expected);
}

#[test]
fn every_table_has_an_owner_and_only_its_owner_writes_sql_for_it() {
    let owners = ownership();

    // Every table the migrations create is owned, and nothing else is listed.
    let mut created = BTreeSet::new();
    for entry in std::fs::read_dir(workspace().join("migrations")).unwrap() {
        let sql = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // CREATE [UNLOGGED] TABLE [IF NOT EXISTS] name
        let words: Vec<&str> = sql.split_whitespace().collect();
        for (i, word) in words.iter().enumerate() {
            if *word != "CREATE" {
                continue;
            }
            let rest: Vec<&str> = words[i + 1..]
                .iter()
                .copied()
                .skip_while(|w| *w == "UNLOGGED")
                .collect();
            if rest.first() != Some(&"TABLE") {
                continue;
            }
            let name = match rest.get(1..4) {
                Some(["IF", "NOT", "EXISTS"]) => rest.get(4),
                _ => rest.get(1),
            };
            created.insert(name.unwrap().trim_end_matches('(').to_owned());
        }
    }
    let listed: BTreeSet<String> = owners.keys().cloned().collect();
    assert_eq!(
        created, listed,
        "the tables the migrations create and ARCHITECTURE.md's ownership table differ"
    );

    let crates = crates();
    let names: BTreeSet<&str> = crates.iter().map(|(n, _)| n.as_str()).collect();
    for owner in owners.values() {
        assert!(names.contains(owner.as_str()), "no crate named {owner}");
    }

    let mut violations = Vec::new();
    for (crate_name, files) in &crates {
        for file in files {
            let source = std::fs::read_to_string(file).unwrap();
            for literal in string_literals(&source) {
                for table in tables_named(&literal) {
                    if let Some(owner) = owners.get(&table)
                        && owner != crate_name
                    {
                        violations.push(format!(
                            "{}: names `{table}` (owned by {owner})",
                            file.strip_prefix(workspace()).unwrap_or(file).display()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "SQL naming another crate's table; call a function the owner exports instead:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_crate_exposes_its_store() {
    let mut exposed = Vec::new();
    for (_, files) in crates() {
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            if source
                .lines()
                .any(|l| l.trim_start().starts_with("pub mod store"))
            {
                exposed.push(file.display().to_string());
            }
        }
    }
    assert!(exposed.is_empty(), "`pub mod store` in {exposed:?}");
}

/// Every `.rs` file under `crates/*/src` and `tests/src`.
fn source_modules() -> BTreeSet<String> {
    let mut files = Vec::new();
    for (_, crate_files) in crates() {
        files.extend(crate_files);
    }
    rust_files(&workspace().join("tests/src"), &mut files);
    files
        .iter()
        .map(|f| {
            f.strip_prefix(workspace())
                .unwrap_or(f)
                .to_string_lossy()
                .replace("/../", "/")
                .trim_start_matches("../")
                .to_owned()
        })
        .map(|f| f.trim_start_matches("./").to_owned())
        .collect()
}

#[test]
fn the_code_map_lists_every_module_and_nothing_else() {
    let text = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Code map"))
        .expect("ARCHITECTURE.md has a \"## Code map\" section");
    let mut listed = BTreeSet::new();
    for line in section.lines() {
        let Some(rest) = line.trim_start().strip_prefix("- `") else {
            continue;
        };
        let Some((path, _)) = rest.split_once('`') else {
            continue;
        };
        if path.ends_with(".rs") {
            assert!(listed.insert(path.to_owned()), "{path} is listed twice");
        }
    }
    let modules = source_modules();
    let missing: Vec<_> = modules.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&modules).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "ARCHITECTURE.md's code map is out of date:\n  not listed: {missing:?}\n  listed but absent: {extra:?}"
    );
}
