//! Helpers shared by the test modules (and by `benches/sandbox.rs` and the census tests, which
//! include this folder by path).
#![allow(dead_code)] // each includer uses a part

pub mod mcp;
pub mod process;
pub mod sandbox;
