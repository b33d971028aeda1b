//! The command line: `serve`, `check`, `dev-token`, `schema`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::auth::dev::{DevClaims, DevKey, default_key_path};

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
    },
    /// Check a catalog file; every error names the file, the tool and the field.
    Check {
        /// The catalog file.
        file: PathBuf,
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
