//! The catalog files in the repository: the checked-in JSON Schema matches the types, and every
//! example catalog passes `check`.

use std::path::{Path, PathBuf};

use switchboard_gateway::catalog;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fails when `catalog.schema.json` no longer matches the types. Regenerate it with
/// `cargo run -p switchboard-gateway -- schema > catalog.schema.json`.
#[test]
fn checked_in_schema_matches_the_types() {
    let path = repo_root().join("catalog.schema.json");
    let generated = serde_json::to_string_pretty(&catalog::json_schema()).expect("schema") + "\n";
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "catalog.schema.json is out of date: run `cargo run -p switchboard-gateway -- schema > catalog.schema.json`"
    );
}

#[test]
fn example_catalogs_pass_check() {
    let dir = repo_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml")
            && path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("catalog"))
        {
            catalog::load(&path).unwrap_or_else(|e| panic!("{e}"));
            checked += 1;
        }
    }
    assert!(checked >= 1, "no example catalog found");
}

#[test]
fn example_schema_validates_the_example_catalog_shape() {
    // The generated schema is itself a valid JSON Schema that accepts the example catalog.
    let schema = catalog::json_schema();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let text = std::fs::read_to_string(repo_root().join("examples/catalog.yaml")).expect("example");
    let doc: serde_json::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
}
