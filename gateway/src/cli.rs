//! The command line: `serve`, `check`, `dev-token`, `schema`, `session-policies`,
//! `session-request`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::auth::Caller;
use crate::auth::dev::{DevClaims, DevKey, default_key_path};
use crate::bindings::{Bindings, BindingsError, Source};
use crate::catalog::Catalog;
use crate::catalog::{self, CatalogError};
use crate::credentials::{AssumeRoleRequest, CredentialError, MintRequest};
use crate::deadline::Deadline;
use crate::preflight::{self, AuthFrom, Refusal};

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
        /// Serve the catalog's tool NAME turned off: listed, its unit never started or checked,
        /// each call answered with a tool error saying WHY (repeat for more). `scripts/dev` turns
        /// off the tools a machine cannot run, such as terraform_plan without Terraform.
        #[arg(long = "tool-off", value_name = "NAME=WHY", value_parser = parse_tool_off)]
        tools_off: Vec<(String, String)>,
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
    /// Print the STS `AssumeRole` request the credential broker would send for one call of a
    /// tool starting now (a JSON object of the API's parameters: RoleArn, RoleSessionName,
    /// SourceIdentity, Tags, DurationSeconds, Policy), or why it would send none.
    SessionRequest {
        /// The catalog file.
        #[arg(long)]
        catalog: PathBuf,
        /// The JSON of `terraform output -json switchboard_bindings` (the work role); default:
        /// SWITCHBOARD_BINDINGS (the document itself, or a path).
        #[arg(long, value_name = "FILE")]
        bindings: Option<PathBuf>,
        /// The tool called.
        #[arg(long)]
        tool: String,
        /// The caller's subject (the token's `sub`).
        #[arg(long)]
        principal: String,
        /// The caller's tenant (the token's tenant claim).
        #[arg(long)]
        tenant: Option<String>,
        /// The call's invocation id; default: a new one, as the gateway makes.
        #[arg(long)]
        invocation: Option<String>,
        /// Who approved the call (its `approver` tag), for a tool with `approval`.
        #[arg(long)]
        approver: Option<String>,
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
    /// What [`preflight::check`] refused: every problem of the catalog and of its bindings.
    #[error("{}: {}", .file.display(), .refusal.report(.origin.as_deref()))]
    Refused {
        file: PathBuf,
        /// Where the bindings came from, when there were any.
        origin: Option<String>,
        refusal: Refusal,
    },
}

/// The body of `check`: loads the catalog and, when the flag or `SWITCHBOARD_BINDINGS` names
/// bindings, checks them against it. Returns the line to print.
pub fn check(file: &Path, bindings: Option<&Path>) -> Result<String, CheckError> {
    check_from(file, Source::locate(bindings))
}

/// [`check`] with the bindings' source already located: the rules `serve` applies at start
/// ([`preflight::check`]), all problems reported at once.
pub fn check_from(file: &Path, source: Option<Source>) -> Result<String, CheckError> {
    let (catalog, deployed) = load_checked(file, source)?;
    let mut line = format!("{}: ok, {} tool(s)", file.display(), catalog.tools.len());
    if let Some(deployed) = deployed {
        line.push_str(&format!(
            ", bindings match ({} deployed)",
            deployed.tools.len()
        ));
    }
    Ok(line)
}

/// The catalog and the bindings (when `source` names them), loaded and passed through
/// [`preflight::check`].
fn load_checked(
    file: &Path,
    source: Option<Source>,
) -> Result<(Catalog, Option<Bindings>), CheckError> {
    let catalog = catalog::load(file)?;
    let deployed = source.as_ref().map(Source::load).transpose()?;
    preflight::check(&catalog, deployed.as_ref(), AuthFrom::Catalog).map_err(|refusal| {
        CheckError::Refused {
            file: file.to_path_buf(),
            origin: source.as_ref().map(ToString::to_string),
            refusal,
        }
    })?;
    Ok((catalog, deployed))
}

/// Why `switchboard session-request` prints no request.
#[derive(Debug, thiserror::Error)]
pub enum SessionRequestError {
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(
        "the work role is in the deployment's bindings: pass --bindings FILE (the JSON of \
         `terraform output -json switchboard_bindings`) or set SWITCHBOARD_BINDINGS"
    )]
    NoBindings,
    #[error("{}: no tool {tool:?}", .file.display())]
    UnknownTool { file: PathBuf, tool: String },
    #[error(
        "tool {0:?} has no work_role_arn in the bindings: the broker mints no credentials for it"
    )]
    NoWorkRole(String),
    /// What the broker refuses before asking STS.
    #[error("{0}")]
    Refused(CredentialError),
}

/// One call, as `session-request` describes it.
#[derive(Debug, Clone, Copy)]
pub struct SessionCall<'a> {
    pub tool: &'a str,
    pub caller: &'a Caller,
    pub invocation_id: &'a str,
    /// When the call must be over; `None`: the tool's timeout from now, as for a call starting
    /// now.
    pub deadline: Option<&'a Deadline>,
    /// Who approved the call, for a tool with `approval`.
    pub approver: Option<&'a str>,
}

/// The body of `session-request`: the catalog and bindings checked as `serve` checks them at
/// start, then the request the broker builds for `call` ([`crate::credentials::assume_role_request`]),
/// as the JSON parameters of STS `AssumeRole`. The broker sends no `TransitiveTagKeys`, so
/// there are none.
pub fn session_request(
    file: &Path,
    source: Option<Source>,
    call: SessionCall<'_>,
) -> Result<serde_json::Value, SessionRequestError> {
    if source.is_none() {
        return Err(SessionRequestError::NoBindings);
    }
    let (catalog, deployed) = load_checked(file, source)?;
    let tool = catalog
        .tools
        .iter()
        .find(|t| t.name == call.tool)
        .ok_or_else(|| SessionRequestError::UnknownTool {
            file: file.to_path_buf(),
            tool: call.tool.to_owned(),
        })?;
    let role_arn = deployed
        .as_ref()
        .and_then(|b| b.tool(&tool.name)?.work_role_arn.as_deref())
        .ok_or_else(|| SessionRequestError::NoWorkRole(tool.name.clone()))?;
    let from_now = Deadline::after(std::time::Duration::from_secs(u64::from(
        tool.timeout_seconds,
    )));
    let request = crate::credentials::assume_role_request(&MintRequest {
        tool,
        role_arn,
        session_tags: &tool.session_tags,
        invocation_id: call.invocation_id,
        caller: call.caller,
        deadline: call.deadline.unwrap_or(&from_now),
        approver: call.approver,
    })
    .map_err(SessionRequestError::Refused)?;
    Ok(assume_role_json(&request))
}

/// `request` as STS's `AssumeRole` parameters (the names of the API, and of boto3's
/// `assume_role`).
fn assume_role_json(request: &AssumeRoleRequest) -> serde_json::Value {
    let tags: Vec<serde_json::Value> = request
        .tags
        .iter()
        .map(|(key, value)| serde_json::json!({"Key": key, "Value": value}))
        .collect();
    serde_json::json!({
        "RoleArn": request.role_arn,
        "RoleSessionName": request.role_session_name,
        "SourceIdentity": request.source_identity,
        "Tags": tags,
        "DurationSeconds": request.duration_seconds,
        "Policy": request.policy,
    })
}

/// `NAME=WHY` of `serve --tool-off`.
fn parse_tool_off(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, why)) if !name.is_empty() && !why.trim().is_empty() => {
            Ok((name.to_owned(), why.trim().to_owned()))
        }
        _ => Err(format!("{text:?} is not NAME=WHY")),
    }
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
    fn serve_takes_tools_turned_off_with_a_reason() {
        let cli = Cli::try_parse_from([
            "switchboard",
            "serve",
            "--catalog",
            "c.yaml",
            "--tool-off",
            "terraform_plan=no Terraform here",
        ])
        .expect("parses");
        let Command::Serve { tools_off, .. } = cli.command else {
            panic!("not serve: {cli:?}");
        };
        assert_eq!(
            tools_off,
            vec![("terraform_plan".to_owned(), "no Terraform here".to_owned())]
        );
        for bad in ["terraform_plan", "=why", "terraform_plan= "] {
            let e =
                Cli::try_parse_from(["switchboard", "serve", "--catalog", "c", "--tool-off", bad])
                    .expect_err("refused");
            assert!(e.to_string().contains("NAME=WHY"), "{e}");
        }
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

    /// A catalog file holding `text`, in a folder removed with the guard.
    fn catalog_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, text).expect("write");
        (dir, file)
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

    /// A lambda tool whose session policy is over STS's limit whatever the deadline: 30
    /// statements of one 100-character resource each.
    fn oversized(name: &str) -> String {
        let statements: String = (0..30)
            .map(|i| {
                format!(
                    "\n      - {{sid: S{i}, actions: [\"s3:GetObject\"], resources: [\"arn:aws:s3:::{}\"]}}",
                    "b".repeat(100)
                )
            })
            .collect();
        format!(
            "  - name: {name}\n    description: Big.\n    input_schema: {{type: object}}\n    \
             backend: lambda\n    lambda: {{package: big.zip}}\n    allow: {{groups: [dev]}}\n    \
             permissions:{statements}\n"
        )
    }

    #[test]
    fn check_refuses_a_session_policy_that_serve_would_refuse() {
        let (_dir, file) = catalog_file(&format!("version: 1\ntools:\n{}", oversized("big")));
        let e = check_from(&file, None)
            .expect_err("the policy can never fit")
            .to_string();
        assert!(
            e.contains("the catalog would be refused at start (1 problem(s)):\n  tool big: its session policy is"),
            "{e}"
        );
    }

    #[test]
    fn check_reports_every_problem_at_once() {
        let catalog = format!(
            "version: 1\ngateway:\n  auth: {{issuer: \"https://issuer.example\", jwks: {{url: \"http://issuer.example/jwks\"}}}}\n{}{}{}",
            &CATALOG["\nversion: 1\n".len()..],
            oversized("big"),
            oversized("huge"),
        );
        let (_dir, file) = catalog_file(&catalog);
        let doc = echo_bindings(Some("arn:w"));
        let e = check_from(&file, Some(Source::EnvDocument(doc)))
            .expect_err("four problems")
            .to_string();
        for part in [
            "the catalog would be refused at start (3 problem(s)):",
            "\n  tool big: its session policy is",
            "\n  tool huge: its session policy is",
            "\n  gateway.auth: jwks url \"http://issuer.example/jwks\" must be https",
            "\nthe bindings from SWITCHBOARD_BINDINGS do not match the catalog (3 problem(s)):",
            "\n  \"echo\": the binding has work_role_arn",
            "\n  \"big\": the catalog runs it on lambda but the bindings have no entry",
            "\n  \"huge\": the catalog runs it on lambda but the bindings have no entry",
        ] {
            assert!(e.contains(part), "{part:?} not in {e}");
        }
    }

    /// Records what the broker asks STS, and answers with made-up credentials.
    #[derive(Debug, Default)]
    struct Recorder {
        asked: std::sync::Mutex<Vec<AssumeRoleRequest>>,
    }

    #[async_trait::async_trait]
    impl crate::credentials::Sts for Recorder {
        async fn assume_role(
            &self,
            request: &AssumeRoleRequest,
        ) -> Result<crate::credentials::AssumedRole, crate::credentials::StsFailure> {
            self.asked
                .lock()
                .expect("not poisoned")
                .push(request.clone());
            Ok(crate::credentials::AssumedRole {
                credentials: switchboard_tool_runtime::AwsCredentials {
                    access_key_id: "ASIAFAKE".into(),
                    secret_access_key: "secret".into(),
                    session_token: "token".into(),
                    expiration: "2026-12-01T10:15:00Z".into(),
                },
                assumed_role_arn: format!(
                    "arn:aws:sts::1:assumed-role/w/{}",
                    request.role_session_name
                ),
            })
        }
    }

    /// [`CATALOG`] with `echo` granted a permission, so that it gets credentials.
    fn with_permissions() -> String {
        format!(
            "{CATALOG}    permissions:\n      - actions: [\"s3:GetObject\"]\n        \
             resources: [\"arn:aws:s3:::b/${{aws:PrincipalTag/tenant}}/*\"]\n"
        )
    }

    #[tokio::test]
    async fn session_request_prints_what_the_broker_sends_to_sts() {
        let (_dir, file) = catalog_file(&with_permissions());
        let role = "arn:aws:iam::1:role/w";
        let doc = echo_bindings(Some(role));
        let caller = Caller {
            subject: "auth0:alice/run 7@example.com/a tail past forty characters".into(),
            tenant: Some("acme".into()),
            groups: vec![],
            scopes: vec![],
        };
        let invocation_id = "0b9e2c4e-4a57-4bb2-9a4c-6f0f1c1d2e3f";
        let deadline = Deadline::after(std::time::Duration::from_secs(60));
        let call = SessionCall {
            tool: "echo",
            caller: &caller,
            invocation_id,
            deadline: Some(&deadline),
            approver: None,
        };
        let printed =
            session_request(&file, Some(Source::EnvDocument(doc)), call).expect("printed");

        let recorder = std::sync::Arc::new(Recorder::default());
        let broker = crate::credentials::Broker::with_sts(recorder.clone());
        let catalog = catalog::load(&file).expect("catalog");
        let tool = &catalog.tools[0];
        broker
            .mint(MintRequest {
                tool,
                role_arn: role,
                session_tags: &tool.session_tags,
                invocation_id,
                caller: &caller,
                deadline: &deadline,
                approver: None,
            })
            .await
            .expect("minted");
        let sent = recorder.asked.lock().expect("not poisoned")[0].clone();

        assert_eq!(printed["RoleArn"], sent.role_arn);
        assert_eq!(printed["RoleSessionName"], sent.role_session_name);
        assert_eq!(printed["SourceIdentity"], sent.source_identity);
        assert_eq!(printed["DurationSeconds"], sent.duration_seconds);
        assert_eq!(printed["Policy"], sent.policy);
        let tags: std::collections::BTreeMap<String, String> = printed["Tags"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|t| {
                let text = |k: &str| t[k].as_str().expect("a string").to_owned();
                (text("Key"), text("Value"))
            })
            .collect();
        assert_eq!(tags, sent.tags);
        assert_eq!(tags.len(), 4);
        assert_eq!(
            printed.as_object().map(|o| o.len()),
            Some(6),
            "nothing else goes to STS: {printed}"
        );
    }

    #[test]
    fn session_request_refuses_what_the_broker_refuses() {
        let (_dir, file) = catalog_file(&with_permissions());
        let doc = echo_bindings(Some("arn:w"));
        let caller = Caller {
            subject: "s".into(),
            tenant: None,
            groups: vec![],
            scopes: vec![],
        };
        let call = SessionCall {
            tool: "echo",
            caller: &caller,
            invocation_id: "0b9e2c4e-4a57-4bb2-9a4c-6f0f1c1d2e3f",
            deadline: None,
            approver: None,
        };
        let e =
            session_request(&file, Some(Source::EnvDocument(doc)), call).expect_err("no tenant");
        assert!(
            matches!(
                e,
                SessionRequestError::Refused(CredentialError::MissingTenant { .. })
            ),
            "{e}"
        );
        let e = session_request(&file, None, call).expect_err("no bindings");
        assert!(matches!(e, SessionRequestError::NoBindings), "{e}");
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
