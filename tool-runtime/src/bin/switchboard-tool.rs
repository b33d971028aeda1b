//! `switchboard-tool TOOL`: runs one reference tool in one-shot mode (one invocation on stdin,
//! one result on stdout). Deliberately free of argument-parsing crates: it starts once per call.

use std::io::Write;
use std::process::ExitCode;

use switchboard_tool_runtime::{run, tools};

const USAGE: &str = "usage: switchboard-tool TOOL < invocation.json\ntools: echo";

fn main() -> ExitCode {
    let tool = std::env::args().nth(1).unwrap_or_default();
    match tool.as_str() {
        "echo" => run(tools::echo::echo),
        _ => {
            let _ = writeln!(std::io::stderr(), "{USAGE}");
            ExitCode::from(64)
        }
    }
}
