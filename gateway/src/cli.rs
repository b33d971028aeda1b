//! The command line: `serve`, `check`, `dev-token`, `schema`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::auth::dev::{DevClaims, DevKey, default_key_path};
use crate::bindings::{self, BindingsError, BindingsMismatch, Source};
use crate::catalog::{self, CatalogError};

/// Switchboard: a remote MCP gateway that runs every tool call in its own isolated unit.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the tools of a catalog over MCP (Streamable HTTP at /mcp).
    Serve {
        /// The catalog file.
        #[arg(long)]
        catalog: PathBuf,
        /// Address to listen on. Only loopback unless you say otherwise.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Development mode: trust only the local dev key (created if missing); loopback only.
        #[arg(long)]
        dev: bool,
        /// Where the dev key lives.
        #[arg(long, default_value_os_t = default_key_path())]
        dev_key: PathBuf,
        /// Append audit lines to this file instead of standard output.
        #[arg(long)]
        audit_log: Option<PathBuf>,
        /// Write logs (standard error) as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        /// The JSON of `terraform output -json switchboard_bindings`; default:
        /// SWITCHBOARD_BINDINGS (the document itself, or a path).
        #[arg(long, value_name = "FILE")]
        bindings: Option<PathBuf>,
    },
    /// Check a catalog file, and that the deployment's bindings match it when there are any;
    /// every error names the file, the tool and the field.
    Check {
        /// The catalog file.
        file: PathBuf,
        /// The JSON of `terraform output -json switchboard_bindings`; default:
        /// SWITCHBOARD_BINDINGS (the document itself, or a path).
        #[arg(long, value_name = "FILE")]
        bindings: Option<PathBuf>,
    },
    /// Print a bearer token signed with the dev key, for `serve --dev`.
    DevToken {
        /// The subject (who the caller is).
        #[arg(long)]
        sub: String,
        /// A group the caller is in (repeat for more).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// The caller's tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Space-separated OAuth scopes.
        #[arg(long)]
        scope: Option<String>,
        /// Lifetime, e.g. 90s, 30m, 1h, 1d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: u64,
        /// The audience: the gateway's canonical URI (`http://<listen>/mcp` for `serve --dev`).
        #[arg(long, default_value = "http://127.0.0.1:8080/mcp")]
        audience: String,
        /// Where the dev key lives.
        #[arg(long, default_value_os_t = default_key_path())]
        dev_key: PathBuf,
    },
    /// Print the JSON Schema of the catalog format.
    Schema,
    /// Print the session policy each tool with permissions would get for a call starting now
    /// (a JSON object: tool name to policy document), e.g. to lint it with parliament.
    SessionPolicies {
        /// The catalog file.
        file: PathBuf,
    },
}

/// Parses `90s`, `30m`, `1h`, `1d` or plain seconds; at most 7 days.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30m or 1h"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{text:?}: unit must be s, m, h or d")),
    };
    if seconds == 0 || seconds > 7 * 86_400 {
        return Err(format!("{text:?}: must be more than 0 and at most 7 days"));
    }
    Ok(seconds)
}

/// Why `switchboard check` failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Bindings(#[from] BindingsError),
    #[error(
        "{}: the bindings from {origin} do not match the catalog ({} problem(s)):\n{}",
        .file.display(),
        .mismatch.problems.len(),
        indent(&.mismatch.to_string())
    )]
    Mismatch {
        file: PathBuf,
        origin: String,
        mismatch: BindingsMismatch,
    },
}

fn indent(lines: &str) -> String {
    lines
        .lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The body of `check`: loads the catalog and, when the flag or `SWITCHBOARD_BINDINGS` names
/// bindings, checks them against it. Returns the line to print.
pub fn check(file: &Path, bindings: Option<&Path>) -> Result<String, CheckError> {
    check_from(file, Source::locate(bindings))
}

/// [`check`] with the bindings' source already located.
pub fn check_from(file: &Path, source: Option<Source>) -> Result<String, CheckError> {
    let catalog = catalog::load(file)?;
    let mut line = format!("{}: ok, {} tool(s)", file.display(), catalog.tools.len());
    if let Some(source) = source {
        let deployed = source.load()?;
        bindings::check(&catalog, &deployed).map_err(|mismatch| CheckError::Mismatch {
            file: file.to_path_buf(),
            origin: source.to_string(),
            mismatch,
        })?;
        line.push_str(&format!(
            ", bindings match ({} deployed)",
            deployed.tools.len()
        ));
    }
    Ok(line)
}

/// Mints a dev token (the body of `dev-token`).
pub fn dev_token(
    key_path: &std::path::Path,
    audience: &str,
    sub: &str,
    groups: Vec<String>,
    tenant: Option<String>,
    scope: Option<String>,
    ttl: u64,
) -> Result<String, crate::auth::dev::DevKeyError> {
    let (key, _) = DevKey::load_or_create(key_path)?;
    let mut claims = DevClaims::new(audience, sub, groups, ttl);
    claims.tenant = tenant;
    claims.scope = scope;
    key.mint(&claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90s"), Ok(90));
        assert_eq!(parse_ttl("30m"), Ok(1800));
        assert_eq!(parse_ttl("1h"), Ok(3600));
        assert_eq!(parse_ttl("120"), Ok(120));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("8d").is_err());
        assert!(parse_ttl("1y").is_err());
        assert!(parse_ttl("h").is_err());
    }

    #[test]
    fn serve_takes_a_bindings_file() {
        let cli = Cli::try_parse_from([
            "switchboard",
            "serve",
            "--catalog",
            "c.yaml",
            "--bindings",
            "b.json",
        ])
        .expect("parses");
        let Command::Serve { bindings, .. } = cli.command else {
            panic!("not serve: {cli:?}");
        };
        assert_eq!(bindings, Some(PathBuf::from("b.json")));
    }

    #[test]
    fn check_takes_an_optional_bindings_file() {
        let cli = Cli::try_parse_from(["switchboard", "check", "c.yaml", "--bindings", "b.json"])
            .expect("parses");
        let Command::Check { file, bindings } = cli.command else {
            panic!("not check: {cli:?}");
        };
        assert_eq!(file, PathBuf::from("c.yaml"));
        assert_eq!(bindings, Some(PathBuf::from("b.json")));
        let cli = Cli::try_parse_from(["switchboard", "check", "c.yaml"]).expect("parses");
        assert!(matches!(cli.command, Command::Check { bindings: None, .. }));
    }

    const CATALOG: &str = r#"
version: 1
tools:
  - name: echo
    description: Echo.
    input_schema: {type: object}
    backend: lambda
    lambda: {package: echo.zip}
    allow: {groups: [dev]}
"#;

    fn echo_bindings(work_role: Option<&str>) -> String {
        serde_json::json!({"version": 1, "region": "r", "account_id": "1", "tools": {
            "echo": {"backend": "lambda", "function_arn": "arn:f", "work_role_arn": work_role,
                     "session_tags": ["tool", "tenant", "principal", "invocation"]}}})
        .to_string()
    }

    #[test]
    fn check_without_bindings_checks_the_catalog_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, CATALOG).expect("write");
        let line = check_from(&file, None).expect("ok");
        assert_eq!(line, format!("{}: ok, 1 tool(s)", file.display()));
    }

    #[test]
    fn check_with_matching_bindings_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, CATALOG).expect("write");
        let doc = echo_bindings(None);
        let line = check_from(&file, Some(Source::EnvDocument(doc))).expect("ok");
        assert!(
            line.ends_with("ok, 1 tool(s), bindings match (1 deployed)"),
            "{line}"
        );
    }

    #[test]
    fn check_with_mismatched_bindings_names_every_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, CATALOG).expect("write");
        let bindings = dir.path().join("b.json");
        std::fs::write(&bindings, echo_bindings(Some("arn:w"))).expect("write");
        let e = check_from(&file, Some(Source::Flag(bindings)))
            .expect_err("work role without permissions")
            .to_string();
        assert!(
            e.contains("do not match the catalog (1 problem(s)):\n  \"echo\": "),
            "{e}"
        );
    }

    #[test]
    fn cli_parses() {
        Cli::command_for_tests();
    }

    impl Cli {
        fn command_for_tests() {
            use clap::CommandFactory;
            Self::command().debug_assert();
        }
    }
}
