//! The tool catalog: the one file that declares every tool, read by the gateway and by Terraform.
//!
//! Types here are the format. `switchboard check FILE` runs [`load`], and the JSON Schema in
//! `catalog.schema.json` at the repository root is generated from these types ([`json_schema`]).

mod load;
mod types;

pub use load::{CatalogError, load, parse};
pub use types::*;

/// The JSON Schema of the catalog file, generated from the types.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Catalog);
    serde_json::to_value(schema).unwrap_or_default()
}
