//! What Terraform deployed for each tool: the `switchboard_bindings` output of `infra/examples`
//! (`terraform output -json switchboard_bindings`), which the gateway's service also receives as
//! the environment variable `SWITCHBOARD_BINDINGS`. `infra/README.md` ("Bindings: what the
//! gateway reads") describes every field.
//!
//! [`Bindings::from_env_or_file`] finds and reads the document; [`check`] compares it with the
//! catalog and names every tool whose deployment does not match what the catalog declares.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::catalog::{BackendKind, Catalog, SessionTag};

/// The environment variable holding the bindings: the JSON document itself, or a file path.
pub const ENV_VAR: &str = "SWITCHBOARD_BINDINGS";

/// The shape version this gateway reads.
pub const VERSION: u32 = 1;

/// The whole `switchboard_bindings` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bindings {
    /// Shape version of the document; must be 1.
    pub version: u32,
    pub region: String,
    pub account_id: String,
    /// The role the gateway runs as; the only principal the tools' work roles trust.
    #[serde(default, deserialize_with = "non_empty")]
    pub gateway_role_arn: Option<String>,
    /// Where Fargate invocations and results go; null when no tool runs on Fargate.
    #[serde(default)]
    pub invocation_bucket: Option<InvocationBucket>,
    /// Where approvals are kept: the DynamoDB table every replica shares. Needed when a tool of
    /// the catalog asks for approval.
    #[serde(default)]
    pub approvals: Option<ApprovalsTable>,
    /// Catalog tools Terraform did not deploy (backend `local`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub local_tools: Vec<String>,
    /// What was deployed for each lambda and fargate tool, by catalog name.
    pub tools: BTreeMap<String, ToolBinding>,
}

/// The bucket Fargate invocations are written to and results read from, under `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvocationBucket {
    pub name: String,
    pub prefix: String,
}

/// The approvals' table (`infra/modules/gateway`: `aws_dynamodb_table.approvals`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsTable {
    #[serde(deserialize_with = "required_non_empty")]
    pub table_name: String,
}

/// What the gateway needs to dispatch one tool (one entry of `tools`).
///
/// Terraform writes `null` for what a tool does not have (`work_role_arn` of a tool without
/// permissions) and leaves out the other backend's fields; both read as `None` or empty. An empty
/// string is refused: absence is spelled `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolBinding {
    pub backend: BackendKind,
    /// Lambda: the function to invoke.
    #[serde(default, deserialize_with = "non_empty")]
    pub function_arn: Option<String>,
    /// Fargate: the task definition to run, with its revision.
    #[serde(default, deserialize_with = "non_empty")]
    pub task_definition_arn: Option<String>,
    /// Fargate: the cluster the task runs in.
    #[serde(default, deserialize_with = "non_empty")]
    pub cluster_arn: Option<String>,
    /// Fargate: the container whose command and environment the gateway overrides.
    #[serde(default, deserialize_with = "non_empty")]
    pub container_name: Option<String>,
    /// The role the gateway assumes per call; `None`: the tool gets no AWS credentials.
    #[serde(default, deserialize_with = "non_empty")]
    pub work_role_arn: Option<String>,
    /// Where the unit's own output goes.
    #[serde(default, deserialize_with = "non_empty")]
    pub log_group: Option<String>,
    /// Fargate: the task's subnets (Lambda: informational).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub subnets: Vec<String>,
    /// Fargate: the task's security groups (Lambda: informational).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub security_groups: Vec<String>,
    /// The tag keys the work role accepts, exactly.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub session_tags: Vec<SessionTag>,
}

/// `null` reads as the empty value (Terraform writes `null` where a list or map has nothing).
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// An optional string that, when present, is not empty.
fn non_empty<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    match Option::<String>::deserialize(deserializer)? {
        Some(s) if s.trim().is_empty() => Err(serde::de::Error::custom(
            "must not be empty (write null when there is none)",
        )),
        other => Ok(other),
    }
}

/// A string that is not empty.
fn required_non_empty<'de, D>(deserializer: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    let s = String::deserialize(deserializer)?;
    if s.trim().is_empty() {
        return Err(serde::de::Error::custom("must not be empty"));
    }
    Ok(s)
}

/// Why a bindings document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BindingsError {
    // `error`, not `source`: the message already says it, so a report of the chain does not
    // repeat it.
    #[error("{}: cannot read the bindings: {error}", file.display())]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{origin}: not a JSON document: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: field `{field}`: {message}")]
    Field {
        origin: String,
        field: String,
        message: String,
    },
    #[error(
        "{origin}: field `version`: unsupported version {found}, expected {VERSION} \
         (the Terraform modules and the gateway are from different releases)"
    )]
    Version { origin: String, found: u32 },
}

/// Where a bindings document comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--bindings FILE`.
    Flag(PathBuf),
    /// `SWITCHBOARD_BINDINGS` holds the document itself.
    EnvDocument(String),
    /// `SWITCHBOARD_BINDINGS` holds a file path.
    EnvPath(PathBuf),
}

impl Source {
    /// The flag wins; else `SWITCHBOARD_BINDINGS`: a value that starts with `{` (after leading
    /// white space) is the document, anything else a path. An unset or blank variable and no
    /// flag: `None`.
    pub fn locate(flag: Option<&Path>) -> Option<Self> {
        Self::choose(flag, std::env::var_os(ENV_VAR))
    }

    /// [`Source::locate`] with the variable's value given (tests pass it instead of setting it).
    pub fn choose(flag: Option<&Path>, env: Option<OsString>) -> Option<Self> {
        if let Some(path) = flag {
            return Some(Self::Flag(path.to_path_buf()));
        }
        let value = env?;
        match value.to_str() {
            Some(text) if text.trim().is_empty() => None,
            Some(text) if text.trim_start().starts_with('{') => {
                Some(Self::EnvDocument(text.to_owned()))
            }
            Some(text) => Some(Self::EnvPath(PathBuf::from(text.trim()))),
            None => Some(Self::EnvPath(PathBuf::from(value))),
        }
    }

    /// Reads and parses the document.
    pub fn load(&self) -> Result<Bindings, BindingsError> {
        match self {
            Self::Flag(path) | Self::EnvPath(path) => Bindings::from_file(path),
            Self::EnvDocument(text) => Bindings::from_json(text, &self.to_string()),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(path) => write!(f, "{}", path.display()),
            Self::EnvDocument(_) => write!(f, "{ENV_VAR}"),
            Self::EnvPath(path) => write!(f, "{} (from {ENV_VAR})", path.display()),
        }
    }
}

impl Bindings {
    /// Reads a bindings file.
    pub fn from_file(path: &Path) -> Result<Self, BindingsError> {
        let text = std::fs::read_to_string(path).map_err(|error| BindingsError::Read {
            file: path.to_path_buf(),
            error,
        })?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses a bindings document; `origin` names it in messages (a file, the variable).
    pub fn from_json(text: &str, origin: &str) -> Result<Self, BindingsError> {
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| BindingsError::Syntax {
                origin: origin.to_owned(),
                message: e.to_string(),
            })?;
        let bindings: Self = serde_path_to_error::deserialize(&raw).map_err(|e| {
            let path = e.path().to_string();
            BindingsError::Field {
                origin: origin.to_owned(),
                field: if path == "." {
                    "(document)".into()
                } else {
                    path
                },
                message: e.inner().to_string(),
            }
        })?;
        if bindings.version != VERSION {
            return Err(BindingsError::Version {
                origin: origin.to_owned(),
                found: bindings.version,
            });
        }
        Ok(bindings)
    }

    /// The `--bindings` file when given, else what `SWITCHBOARD_BINDINGS` holds (the document
    /// itself or a path); `None` when there is neither. See [`Source::locate`].
    pub fn from_env_or_file(flag: Option<&Path>) -> Result<Option<Self>, BindingsError> {
        Source::locate(flag).map(|s| s.load()).transpose()
    }

    /// The binding of a tool, by catalog name.
    pub fn tool(&self, name: &str) -> Option<&ToolBinding> {
        self.tools.get(name)
    }
}

/// One way a tool's deployment differs from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The tool's catalog (or binding) name.
    pub tool: String,
    /// What is missing or different.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.tool, self.message)
    }
}

/// Every way the bindings differ from the catalog; displayed one problem per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingsMismatch {
    pub problems: Vec<Problem>,
}

impl std::error::Error for BindingsMismatch {}

impl fmt::Display for BindingsMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Compares the deployment with the catalog and reports every difference at once.
///
/// - Every `lambda` and `fargate` tool needs a binding of the same backend whose `session_tags`
///   are the catalog's (as sets); Lambda needs `function_arn`; Fargate needs
///   `task_definition_arn`, `cluster_arn`, `container_name`, subnets, security groups, and the
///   document's `invocation_bucket`.
/// - A tool with `permissions` needs a `work_role_arn`; a tool without must not have one (the
///   gateway would mint credentials the catalog never granted).
/// - A `local` tool needs no binding: Terraform does not deploy local tools, so a local tool
///   with permissions and no binding runs without AWS credentials. A binding of backend `local`,
///   when present, is checked like the others (backend, session tags, work role).
/// - A binding, or a `local_tools` entry, naming a tool the catalog does not have (or, for
///   `local_tools`, naming a tool that is not local) means the deployment is stale.
/// - A tool with `approval` needs the document's `approvals` table: a deployed gateway runs as
///   replicas, and approvals kept in one replica's memory would be neither shared nor kept
///   across a restart (only a gateway without bindings, `serve --dev`, keeps them in memory).
pub fn check(catalog: &Catalog, bindings: &Bindings) -> Result<(), BindingsMismatch> {
    let mut problems = Vec::new();
    let mut problem = |tool: &str, message: String| {
        problems.push(Problem {
            tool: tool.to_owned(),
            message,
        })
    };
    for tool in &catalog.tools {
        let Some(binding) = bindings.tool(&tool.name) else {
            if tool.backend != BackendKind::Local {
                problem(
                    &tool.name,
                    format!(
                        "the catalog runs it on {} but the bindings have no entry for it \
                         (not deployed yet: terraform apply)",
                        tool.backend.as_str()
                    ),
                );
            }
            continue;
        };
        for message in binding_differences(tool, binding, bindings) {
            problem(&tool.name, message);
        }
    }
    if bindings.approvals.is_none() {
        for tool in catalog.tools.iter().filter(|t| t.approval.is_some()) {
            problem(
                &tool.name,
                "asks for approval but the bindings have no approvals table (approvals.table_name): \
                 the replicas would neither share decisions nor keep them across a restart \
                 (stale deployment: terraform apply)"
                    .into(),
            );
        }
    }
    for name in bindings.tools.keys() {
        if !catalog.tools.iter().any(|t| &t.name == name) {
            problem(
                name,
                "has a binding but is not in the catalog (stale deployment: terraform apply, \
                 or the gateway reads another catalog than Terraform did)"
                    .into(),
            );
        }
    }
    for name in &bindings.local_tools {
        match catalog.tools.iter().find(|t| &t.name == name) {
            None => problem(
                name,
                "is listed in local_tools but is not in the catalog (stale deployment)".into(),
            ),
            Some(tool) if tool.backend != BackendKind::Local => problem(
                name,
                format!(
                    "is listed in local_tools but the catalog runs it on {} (stale deployment)",
                    tool.backend.as_str()
                ),
            ),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BindingsMismatch { problems })
    }
}

/// How a tool's binding differs from its catalog entry: backend and its fields, session tags,
/// work role.
fn binding_differences(
    tool: &crate::catalog::Tool,
    binding: &ToolBinding,
    bindings: &Bindings,
) -> Vec<String> {
    let mut problems = Vec::new();
    if binding.backend != tool.backend {
        problems.push(format!(
            "the catalog runs it on {} but the binding says {}",
            tool.backend.as_str(),
            binding.backend.as_str()
        ));
    } else {
        let missing = |field: &str| format!("the {} binding has no {field}", tool.backend.as_str());
        match tool.backend {
            BackendKind::Local => {}
            BackendKind::Lambda => {
                if binding.function_arn.is_none() {
                    problems.push(missing("function_arn"));
                }
            }
            BackendKind::Fargate => {
                for (field, present) in [
                    ("task_definition_arn", binding.task_definition_arn.is_some()),
                    ("cluster_arn", binding.cluster_arn.is_some()),
                    ("container_name", binding.container_name.is_some()),
                    ("subnets", !binding.subnets.is_empty()),
                    ("security_groups", !binding.security_groups.is_empty()),
                ] {
                    if !present {
                        problems.push(missing(field));
                    }
                }
                if bindings.invocation_bucket.is_none() {
                    problems
                        .push("runs on fargate but the bindings have no invocation_bucket".into());
                }
            }
        }
    }
    let declared: BTreeSet<SessionTag> = tool.session_tags.iter().copied().collect();
    let accepted: BTreeSet<SessionTag> = binding.session_tags.iter().copied().collect();
    if declared != accepted {
        let list = |tags: Vec<&SessionTag>| {
            tags.iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        let absent: Vec<_> = declared.difference(&accepted).collect();
        if !absent.is_empty() {
            parts.push(format!("missing [{}]", list(absent)));
        }
        let extra: Vec<_> = accepted.difference(&declared).collect();
        if !extra.is_empty() {
            parts.push(format!("extra [{}]", list(extra)));
        }
        problems.push(format!(
            "the binding's session_tags differ from the catalog's: {}",
            parts.join(", ")
        ));
    }
    match (tool.permissions.is_empty(), &binding.work_role_arn) {
        (false, None) => problems.push(
            "the catalog grants it permissions but the binding has no work_role_arn \
             (it would run without the credentials it needs)"
                .into(),
        ),
        (true, Some(role)) => problems.push(format!(
            "the binding has work_role_arn {role:?} but the catalog grants it no permissions \
             (refusing to mint credentials the catalog never granted)"
        )),
        _ => {}
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of `infra/README.md`, "Bindings: what the gateway reads".
    const README_EXAMPLE: &str = r#"{
  "version": 1,
  "region": "eu-west-1",
  "account_id": "123456789012",
  "gateway_role_arn": "arn:aws:iam::123456789012:role/switchboard/switchboard/switchboard-gateway",
  "invocation_bucket": { "name": "switchboard-invocations-123456789012-eu-west-1", "prefix": "invocations/" },
  "approvals": { "table_name": "switchboard-approvals" },
  "local_tools": [],
  "tools": {
    "echo": {
      "backend": "lambda",
      "function_arn": "arn:aws:lambda:eu-west-1:123456789012:function:switchboard-echo",
      "work_role_arn": null,
      "log_group": "/switchboard/switchboard/tools/echo",
      "subnets": ["subnet-0a...", "subnet-0b..."],
      "security_groups": ["sg-0c..."],
      "session_tags": ["tool", "tenant", "principal", "invocation"]
    },
    "terraform-plan": {
      "backend": "fargate",
      "task_definition_arn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/switchboard-terraform-plan:3",
      "cluster_arn": "arn:aws:ecs:eu-west-1:123456789012:cluster/switchboard-tools",
      "container_name": "tool",
      "work_role_arn": "arn:aws:iam::123456789012:role/switchboard/switchboard/switchboard-terraform-plan-work",
      "log_group": "/switchboard/switchboard/tools/terraform-plan",
      "subnets": ["subnet-0a...", "subnet-0b..."],
      "security_groups": ["sg-0d..."],
      "session_tags": ["tool", "tenant", "invocation"]
    }
  }
}"#;

    /// The catalog the README example was deployed from.
    const CATALOG: &str = r#"
version: 1
tools:
  - name: echo
    description: Echo.
    input_schema: {type: object}
    backend: lambda
    lambda: {package: echo.zip}
    allow: {groups: [dev]}
  - name: terraform-plan
    description: Plans.
    input_schema: {type: object}
    backend: fargate
    ephemeral_storage_mb: 21504
    fargate: {image: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/plan@sha256:abababababababababababababababababababababababababababababababab"}
    allow: {groups: [dev]}
    session_tags: [tool, tenant, invocation]
    permissions: [{actions: ["s3:GetObject"], resources: ["arn:aws:s3:::state/*"]}]
"#;

    fn example() -> Bindings {
        Bindings::from_json(README_EXAMPLE, "b.json").expect("the README example parses")
    }

    fn catalog(text: &str) -> Catalog {
        crate::catalog::parse(Path::new("c.yaml"), text).expect("valid catalog")
    }

    /// The example with one edit applied to its JSON value.
    fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> Bindings {
        let mut value: serde_json::Value =
            serde_json::from_str(README_EXAMPLE).expect("the README example is JSON");
        edit(&mut value);
        Bindings::from_json(&value.to_string(), "b.json").expect("edited example parses")
    }

    fn problems(catalog_text: &str, bindings: &Bindings) -> Vec<String> {
        check(&catalog(catalog_text), bindings)
            .expect_err("must not match")
            .problems
            .iter()
            .map(Problem::to_string)
            .collect()
    }

    fn parse_err(text: &str) -> String {
        Bindings::from_json(text, "b.json")
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn the_readme_example_parses() {
        let b = example();
        assert_eq!(b.region, "eu-west-1");
        let echo = b.tool("echo").expect("echo is bound");
        assert_eq!(echo.backend, BackendKind::Lambda);
        assert_eq!(echo.work_role_arn, None);
        assert_eq!(echo.task_definition_arn, None);
        let plan = b.tool("terraform-plan").expect("terraform-plan is bound");
        assert_eq!(plan.container_name.as_deref(), Some("tool"));
        assert_eq!(
            plan.session_tags,
            [SessionTag::Tool, SessionTag::Tenant, SessionTag::Invocation]
        );
        assert_eq!(
            b.invocation_bucket.as_ref().map(|i| i.prefix.as_str()),
            Some("invocations/")
        );
        assert_eq!(
            b.approvals.as_ref().map(|a| a.table_name.as_str()),
            Some("switchboard-approvals")
        );
    }

    #[test]
    fn the_readme_example_matches_its_catalog() {
        check(&catalog(CATALOG), &example()).expect("matches");
    }

    #[test]
    fn null_and_absent_optional_fields_are_accepted() {
        let b = Bindings::from_json(
            r#"{"version": 1, "region": "r", "account_id": "a", "gateway_role_arn": null,
                "invocation_bucket": null, "local_tools": null,
                "tools": {"echo": {"backend": "lambda", "function_arn": "arn:f",
                                   "subnets": null, "session_tags": []}}}"#,
            "b.json",
        )
        .expect("parses");
        assert!(b.local_tools.is_empty());
        assert!(b.tool("echo").expect("bound").subnets.is_empty());
    }

    #[test]
    fn an_unknown_field_is_refused_naming_its_path() {
        let e = parse_err(&README_EXAMPLE.replace(
            r#""container_name": "tool","#,
            r#""container_name": "tool", "cpu": 256,"#,
        ));
        assert!(
            e.starts_with("b.json: field `tools.terraform-plan.cpu`: unknown field `cpu`"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_backend_is_refused_naming_its_path() {
        let e = parse_err(&README_EXAMPLE.replace(r#""lambda""#, r#""ec2""#));
        assert!(e.contains("field `tools.echo.backend`"), "{e}");
    }

    #[test]
    fn an_empty_arn_is_refused_naming_its_path() {
        let e = parse_err(
            &README_EXAMPLE.replace(r#""work_role_arn": null"#, r#""work_role_arn": """#),
        );
        assert!(e.contains("field `tools.echo.work_role_arn`"), "{e}");
    }

    #[test]
    fn version_2_is_refused() {
        let e = parse_err(&README_EXAMPLE.replace(r#""version": 1"#, r#""version": 2"#));
        assert!(
            e.starts_with("b.json: field `version`: unsupported version 2"),
            "{e}"
        );
    }

    #[test]
    fn a_syntax_error_names_the_origin() {
        let e = parse_err("{\"version\": 1,");
        assert!(e.starts_with("b.json: not a JSON document"), "{e}");
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let e = Bindings::from_file(Path::new("no/such/bindings.json"))
            .expect_err("missing file")
            .to_string();
        assert!(e.starts_with("no/such/bindings.json: cannot read"), "{e}");
    }

    #[test]
    fn a_missing_binding_is_named() {
        let b = edited(|v| {
            v["tools"]
                .as_object_mut()
                .expect("tools")
                .remove("terraform-plan");
        });
        let p = problems(CATALOG, &b);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "\"terraform-plan\": the catalog runs it on fargate but the bindings have no entry"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn a_backend_mismatch_is_named() {
        let b = edited(|v| v["tools"]["echo"]["backend"] = "fargate".into());
        let p = problems(CATALOG, &b);
        assert_eq!(
            p,
            ["\"echo\": the catalog runs it on lambda but the binding says fargate"]
        );
    }

    #[test]
    fn a_session_tag_difference_names_missing_and_extra_keys() {
        let b = edited(|v| {
            v["tools"]["terraform-plan"]["session_tags"] =
                serde_json::json!(["principal", "tool", "principal", "invocation"]);
        });
        let p = problems(CATALOG, &b);
        assert_eq!(
            p,
            [
                "\"terraform-plan\": the binding's session_tags differ from the catalog's: \
              missing [tenant], extra [principal]"
            ]
        );
    }

    #[test]
    fn session_tags_compare_as_sets() {
        let b = edited(|v| {
            v["tools"]["terraform-plan"]["session_tags"] =
                serde_json::json!(["invocation", "tool", "tenant", "tool"]);
        });
        check(&catalog(CATALOG), &b).expect("same set");
    }

    #[test]
    fn a_binding_for_a_tool_not_in_the_catalog_is_named() {
        let b = edited(|v| v["tools"]["gone"] = v["tools"]["echo"].clone());
        let p = problems(CATALOG, &b);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("\"gone\": has a binding but is not in the catalog"),
            "{p:?}"
        );
    }

    #[test]
    fn a_stale_local_tools_entry_is_named() {
        let b = edited(|v| v["local_tools"] = serde_json::json!(["gone", "echo"]));
        let p = problems(CATALOG, &b);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("\"gone\": is listed in local_tools but is not in the catalog"));
        assert!(
            p[1].starts_with(
                "\"echo\": is listed in local_tools but the catalog runs it on lambda"
            )
        );
    }

    #[test]
    fn permissions_without_a_work_role_are_refused() {
        let b = edited(|v| v["tools"]["terraform-plan"]["work_role_arn"] = serde_json::Value::Null);
        let p = problems(CATALOG, &b);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("\"terraform-plan\": the catalog grants it permissions but the binding has no work_role_arn"),
            "{p:?}"
        );
    }

    #[test]
    fn a_work_role_without_permissions_is_refused() {
        let b = edited(|v| v["tools"]["echo"]["work_role_arn"] = "arn:aws:iam::1:role/w".into());
        let p = problems(CATALOG, &b);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("\"echo\": the binding has work_role_arn \"arn:aws:iam::1:role/w\" but the catalog grants it no permissions"),
            "{p:?}"
        );
    }

    #[test]
    fn fargate_without_a_cluster_is_refused() {
        let b = edited(|v| {
            v["tools"]["terraform-plan"]
                .as_object_mut()
                .expect("binding")
                .remove("cluster_arn");
        });
        let p = problems(CATALOG, &b);
        assert_eq!(
            p,
            ["\"terraform-plan\": the fargate binding has no cluster_arn"]
        );
    }

    #[test]
    fn fargate_without_the_invocation_bucket_is_refused() {
        let b = edited(|v| v["invocation_bucket"] = serde_json::Value::Null);
        let p = problems(CATALOG, &b);
        assert_eq!(
            p,
            ["\"terraform-plan\": runs on fargate but the bindings have no invocation_bucket"]
        );
    }

    #[test]
    fn lambda_without_a_function_is_refused() {
        let b = edited(|v| v["tools"]["echo"]["function_arn"] = serde_json::Value::Null);
        let p = problems(CATALOG, &b);
        assert_eq!(p, ["\"echo\": the lambda binding has no function_arn"]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let b = edited(|v| {
            let plan = &mut v["tools"]["terraform-plan"];
            plan["work_role_arn"] = serde_json::Value::Null;
            plan["subnets"] = serde_json::json!([]);
            plan["security_groups"] = serde_json::json!([]);
            plan["container_name"] = serde_json::Value::Null;
            plan["session_tags"] = serde_json::json!(["tool"]);
            v["tools"]["echo"]["work_role_arn"] = "arn:aws:iam::1:role/w".into();
            v["tools"]["gone"] = v["tools"]["echo"].clone();
            v["invocation_bucket"] = serde_json::Value::Null;
        });
        let err = check(&catalog(CATALOG), &b).expect_err("must not match");
        let text = err.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), err.problems.len(), "{text}");
        for (tool, says) in [
            ("echo", "work_role_arn"),
            ("terraform-plan", "no container_name"),
            ("terraform-plan", "no subnets"),
            ("terraform-plan", "no security_groups"),
            ("terraform-plan", "no invocation_bucket"),
            ("terraform-plan", "missing [tenant, invocation]"),
            ("terraform-plan", "no work_role_arn"),
            ("gone", "not in the catalog"),
        ] {
            let prefix = format!("{tool:?}: ");
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&prefix) && l.contains(says)),
                "no line for {tool} saying {says}:\n{text}"
            );
        }
        assert_eq!(lines.len(), 8, "{text}");
    }

    const LOCAL_WITH_PERMISSIONS: &str = r#"
version: 1
tools:
  - name: report
    description: Reports.
    input_schema: {type: object}
    backend: local
    local: {command: [/bin/cat]}
    allow: {groups: [dev]}
    permissions: [{actions: ["s3:GetObject"], resources: ["arn:aws:s3:::r/*"]}]
"#;

    fn bindings_with(tools: serde_json::Value, local_tools: serde_json::Value) -> Bindings {
        let doc = serde_json::json!({"version": 1, "region": "r", "account_id": "a",
            "tools": tools, "local_tools": local_tools});
        Bindings::from_json(&doc.to_string(), "b.json").expect("parses")
    }

    #[test]
    fn a_tool_that_asks_for_approval_needs_the_approvals_table() {
        let approved = LOCAL_WITH_PERMISSIONS.replace(
            "    allow: {groups: [dev]}\n",
            "    allow: {groups: [dev]}\n    approval: {groups: [approvers]}\n",
        );
        let without = bindings_with(serde_json::json!({}), serde_json::json!(["report"]));
        let p = problems(&approved, &without);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "\"report\": asks for approval but the bindings have no approvals table"
            ),
            "{p:?}"
        );
        let mut with = without.clone();
        with.approvals = Some(ApprovalsTable {
            table_name: "switchboard-approvals".into(),
        });
        check(&catalog(&approved), &with).expect("the table is bound");
        // A table and no tool that asks for approval: fine (Terraform always makes the table).
        check(&catalog(LOCAL_WITH_PERMISSIONS), &with).expect("unused table");
    }

    #[test]
    fn an_empty_approvals_table_name_is_refused_naming_its_path() {
        let e = parse_err(&README_EXAMPLE.replace(
            r#""table_name": "switchboard-approvals""#,
            r#""table_name": " ""#,
        ));
        assert!(e.contains("field `approvals.table_name`"), "{e}");
    }

    #[test]
    fn a_local_tool_needs_no_binding() {
        let b = bindings_with(serde_json::json!({}), serde_json::json!(["report"]));
        check(&catalog(LOCAL_WITH_PERMISSIONS), &b).expect("no binding is fine");
    }

    #[test]
    fn a_local_binding_is_checked_like_the_others() {
        let ok = bindings_with(
            serde_json::json!({"report": {"backend": "local", "work_role_arn": "arn:w",
                "session_tags": ["tool", "tenant", "principal", "invocation"]}}),
            serde_json::json!([]),
        );
        check(&catalog(LOCAL_WITH_PERMISSIONS), &ok).expect("matches");
        let no_role = bindings_with(
            serde_json::json!({"report": {"backend": "local",
                "session_tags": ["tool", "tenant", "principal", "invocation"]}}),
            serde_json::json!([]),
        );
        let p = problems(LOCAL_WITH_PERMISSIONS, &no_role);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("no work_role_arn"), "{p:?}");
        let lambda = bindings_with(
            serde_json::json!({"report": {"backend": "lambda", "work_role_arn": "arn:w",
                "session_tags": ["tool", "tenant", "principal", "invocation"]}}),
            serde_json::json!([]),
        );
        let p = problems(LOCAL_WITH_PERMISSIONS, &lambda);
        assert_eq!(
            p,
            ["\"report\": the catalog runs it on local but the binding says lambda"]
        );
    }

    #[test]
    fn the_flag_wins_over_the_variable() {
        let s = Source::choose(
            Some(Path::new("flag.json")),
            Some(OsString::from("{\"version\": 1}")),
        );
        assert_eq!(s, Some(Source::Flag(PathBuf::from("flag.json"))));
    }

    #[test]
    fn a_variable_holding_json_is_the_document() {
        let text = "  \n{\"version\": 1}\n";
        let s = Source::choose(None, Some(OsString::from(text)));
        assert_eq!(s, Some(Source::EnvDocument(text.to_owned())));
        assert_eq!(
            s.map(|s| s.to_string()).as_deref(),
            Some("SWITCHBOARD_BINDINGS")
        );
    }

    #[test]
    fn a_variable_holding_anything_else_is_a_path() {
        let s = Source::choose(None, Some(OsString::from("deploy/bindings.json\n")));
        assert_eq!(
            s,
            Some(Source::EnvPath(PathBuf::from("deploy/bindings.json")))
        );
    }

    #[test]
    fn neither_flag_nor_variable_is_none() {
        assert_eq!(Source::choose(None, None), None);
        assert_eq!(Source::choose(None, Some(OsString::from("  "))), None);
    }

    #[test]
    fn the_document_and_the_path_load_the_same_bindings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bindings.json");
        std::fs::write(&file, README_EXAMPLE).expect("write");
        let from_path = Source::choose(None, Some(file.clone().into_os_string()))
            .expect("a path")
            .load()
            .expect("loads");
        let from_doc = Source::choose(None, Some(OsString::from(README_EXAMPLE)))
            .expect("a document")
            .load()
            .expect("loads");
        assert_eq!(from_path, from_doc);
        assert_eq!(from_path, example());
    }

    #[test]
    fn an_error_in_the_variable_names_the_variable() {
        let e = Source::EnvDocument(README_EXAMPLE.replace(r#""version": 1"#, r#""version": 2"#))
            .load()
            .expect_err("version 2")
            .to_string();
        assert!(
            e.starts_with("SWITCHBOARD_BINDINGS: field `version`"),
            "{e}"
        );
    }
}
