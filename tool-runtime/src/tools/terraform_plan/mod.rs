//! `terraform_plan`: plans a Terraform project of the caller's tenant, read-only, and answers
//! with a summary an agent (or its reviewer) can act on and the plan itself.
//!
//! The project is `projects/<project>` in the tenant's files: in a local sandbox, the
//! read-only mount of that tenant's folder and nothing else (another tenant's project is simply
//! not there); deployed on AWS, when the call has a `bucket` argument (the catalog pins its
//! values), every object under `<tenant>/projects/<project>/` of that bucket, read with this
//! call's credentials ([`crate::tenant_bucket`]; another tenant's prefix is "not found"). The
//! tool copies it into the unit's scratch folder and there runs, with a clean environment:
//!
//! 1. `terraform init`, with a CLI configuration whose only provider source is the mirror
//!    shipped with the tool (`<kit>/providers`, [`KIT`]): no registry, ever. A project that needs
//!    a provider outside the mirror fails here, at once, with that provider's name. A backend the
//!    project declares is replaced by the local backend (an override file), so the plan reads no
//!    remote state and takes no lock;
//! 2. `terraform plan -out`, with the variables of the call (a JSON variable file: names and
//!    string, number or bool values only) and the credentials minted for this call. A call
//!    without credentials (a catalog that grants the tool no `permissions`, such as the day-one
//!    catalog) makes an **offline plan**: an override file tells the `aws` provider to call
//!    nothing and terraform runs with `-refresh=false`, so resources in the project's state
//!    (a project may carry its own `terraform.tfstate`) are planned against that state as it is,
//!    and data sources that need AWS fail; the answer says `"offline": true`;
//! 3. `terraform show -json` of the saved plan, summarised: creates, updates, deletes and
//!    replacements by resource type, and flags for deletions, replacements, IAM changes,
//!    security-group changes and public exposure; and `terraform show` (text), cut at
//!    [`MAX_PLAN_TEXT_BYTES`] with a note when longer.
//!
//! **How terraform reaches AWS.** In a local sandbox the only way out is the gateway's endpoint
//! proxy, a Unix socket. The tool starts loopback [forwarders](crate::forward) in the sandbox and
//! gives terraform `HTTPS_PROXY`/`HTTP_PROXY` pointing at the relay, and
//! `AWS_ENDPOINT_URL_<SERVICE>` for each declared endpoint whose upstream is an emulator. Every
//! connection passes the proxy, which refuses (and counts) any destination the tool did not
//! declare. On Lambda or Fargate terraform uses the regional endpoints, which in the tool's VPC
//! are its VPC endpoints and nothing else.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;
use serde_json::{Map, Value, json};

use crate::contract::{AwsCredentials, ContentItem, Invocation, ToolOutput};
use crate::tenant_bucket::{BucketError, TenantBucket};

mod summary;

pub use summary::{Counts, Flag, Summary, summarize};

/// Where the tool finds terraform (`<KIT>/terraform`, else `terraform` on `PATH`) and its
/// provider mirror (`<KIT>/providers`, the unpacked layout `<host>/<namespace>/<type>/<version>/
/// <os>_<arch>/`). The Fargate image puts them there; the local catalog binds them there.
pub const KIT: &str = "/opt/switchboard/terraform";
/// The plan text returned is cut at this many bytes (the summary always covers the whole plan).
pub const MAX_PLAN_TEXT_BYTES: usize = 64 * 1024;
/// A project larger than this (files copied into scratch) is refused.
pub const MAX_PROJECT_BYTES: u64 = 8 << 20;
/// A project with more files than this is refused.
pub const MAX_PROJECT_FILES: usize = 1000;
/// Terraform's messages in an error are cut at this many bytes (the end is kept).
pub const MAX_DIAGNOSTIC_BYTES: usize = 8 * 1024;
/// The largest `terraform show -json` read.
const MAX_JSON_BYTES: usize = 64 << 20;
/// The most variables a call may set, and the longest string value.
pub const MAX_VARIABLES: usize = 64;
pub const MAX_VARIABLE_CHARS: usize = 4096;
/// Time left for the answer after terraform is stopped at the deadline.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// The name of the override file that puts the project on the local backend.
const BACKEND_OVERRIDE: &str = "switchboard_backend_override.tf";
/// The tool's settings of the default `aws` provider, merged into the project's own block (an
/// override file) or, when the project has none, a block of their own: retry once, so that a
/// refused destination fails in seconds rather than after the provider's 25 attempts.
const PROVIDER_SETTINGS: &str = "  max_retries = 1\n";
/// What an offline plan adds: the provider calls nothing (no credential check, no account
/// lookup, no metadata service).
const OFFLINE_SETTINGS: &str = r#"  region                      = "us-east-1"
  access_key                  = "offline"
  secret_key                  = "offline"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
"#;

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "this tool has no tenant folder and the call names no bucket: its catalog entry needs \
         `local.tenant_root` (the gateway then mounts the caller's tenant's folder and sets \
         SWITCHBOARD_TENANT_DIR), or a `bucket` argument in its input schema"
    )]
    NoTenantDir,
    #[error(transparent)]
    Bucket(#[from] BucketError),
    #[error("argument \"project\" must be a string")]
    NoProject,
    #[error("project {0:?}: {1}")]
    BadProject(String, &'static str),
    #[error("project {0:?} not found for this tenant")]
    NotFound(String),
    #[error("project {0:?}: {1}")]
    Copy(String, String),
    #[error("variables: {0}")]
    BadVariables(String),
    #[error("cannot call AWS: {0}")]
    Aws(#[from] crate::aws::UnitAwsError),
    #[error("cannot start the loopback forwarders to the endpoint proxy: {0}")]
    Forward(std::io::Error),
    #[error("terraform is not installed where the tool looks ({KIT}/terraform or PATH)")]
    NoTerraform,
    #[error("the provider mirror {0} is missing: the tool plans only with the providers it ships")]
    NoMirror(PathBuf),
    #[error(
        "the project needs providers that are not in the tool's mirror: {missing} (the mirror \
         has: {has}); terraform init said:\n{diagnostics}"
    )]
    NotInMirror {
        missing: String,
        has: String,
        diagnostics: String,
    },
    #[error("terraform {phase} failed:\n{diagnostics}")]
    Terraform {
        phase: &'static str,
        diagnostics: String,
    },
    #[error("terraform {0} did not finish before the call's deadline")]
    Deadline(&'static str),
    #[error("cannot run terraform {0}: {1}")]
    Run(&'static str, std::io::Error),
    #[error("terraform show -json gave an unreadable plan: {0}")]
    BadPlanJson(String),
}

/// Plans the project named by the `project` argument for this call's tenant.
pub fn terraform_plan(invocation: &Invocation) -> Result<ToolOutput, PlanError> {
    let project = invocation
        .arguments
        .get("project")
        .and_then(Value::as_str)
        .ok_or(PlanError::NoProject)?;
    check_project_name(project)?;
    let variables = variables(invocation.arguments.get("variables"))?;
    let (source, tenant) = locate_project(invocation, project)?;
    let aws = match invocation.credentials {
        Some(_) => Some(crate::aws::UnitAws::for_call(invocation)?),
        None => None,
    };
    let terraform = find_terraform().ok_or(PlanError::NoTerraform)?;
    let mirror = Path::new(KIT).join("providers");
    if !mirror.is_dir() {
        return Err(PlanError::NoMirror(mirror));
    }

    let scratch = Scratch::stage(project, &source, &mirror, variables)?;
    let mut env = environment(&scratch, aws.as_ref().zip(invocation.credentials.as_ref()));
    write_provider_settings(&scratch.work, aws.is_none())
        .map_err(|e| PlanError::Copy(project.into(), e.to_string()))?;
    if let Some(aws) = &aws {
        route_through_the_proxy(aws, &mut env)?;
    }

    let deadline = deadline_of(invocation.deadline_unix_ms);
    let planned = run_terraform(&terraform, &scratch, &env, deadline, &mirror, aws.is_none())?;
    let summary = summarize(&planned.document).map_err(PlanError::BadPlanJson)?;
    let _ = std::fs::remove_dir_all(&scratch.root);
    Ok(answer(
        project,
        tenant,
        &source,
        aws.is_none(),
        &summary,
        &planned,
    ))
}

/// Where this call's project is and whose it is: the call's tenant bucket when it names one,
/// else `projects/<project>` of the tenant folder the gateway mounted.
fn locate_project(
    invocation: &Invocation,
    project: &str,
) -> Result<(Source, Option<String>), PlanError> {
    Ok(match TenantBucket::for_call(invocation)? {
        Some(bucket) => {
            let tenant = Some(bucket.tenant().to_owned());
            (Source::Bucket(bucket), tenant)
        }
        None => {
            let tenant_dir =
                std::env::var_os("SWITCHBOARD_TENANT_DIR").ok_or(PlanError::NoTenantDir)?;
            let tenant = std::env::var("SWITCHBOARD_TENANT")
                .ok()
                .filter(|t| !t.is_empty());
            (
                Source::Folder(project_dir(Path::new(&tenant_dir), project)?),
                tenant,
            )
        }
    })
}

/// The unit's scratch folder for one plan: the project's copy and the files terraform is given.
struct Scratch {
    root: PathBuf,
    /// The copy of the project, with the backend override in it.
    work: PathBuf,
    /// The CLI configuration whose only provider source is the mirror.
    cli_config: PathBuf,
    /// The call's variables, as a JSON variable file.
    var_file: PathBuf,
}

impl Scratch {
    /// Copies the project into a fresh scratch folder (from its folder or its bucket prefix) and
    /// writes the backend override, the CLI configuration and the variable file.
    fn stage(
        project: &str,
        source: &Source,
        mirror: &Path,
        variables: Map<String, Value>,
    ) -> Result<Self, PlanError> {
        let root = std::env::temp_dir().join(format!("terraform-plan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let work = root.join("project");
        match source {
            Source::Folder(dir) => {
                copy_project(dir, &work).map_err(|e| PlanError::Copy(project.into(), e))?;
            }
            Source::Bucket(bucket) => {
                let under = format!("projects/{project}");
                bucket
                    .download_folder(
                        "project",
                        &under,
                        &work,
                        MAX_PROJECT_FILES,
                        MAX_PROJECT_BYTES,
                    )
                    .map_err(|e| match e {
                        BucketError::NotFound { .. } => PlanError::NotFound(project.into()),
                        other => PlanError::Bucket(other),
                    })?;
            }
        }
        std::fs::write(
            work.join(BACKEND_OVERRIDE),
            "terraform {\n  backend \"local\" {}\n}\n",
        )
        .map_err(|e| PlanError::Copy(project.into(), e.to_string()))?;
        let cli_config = root.join("terraformrc");
        std::fs::write(&cli_config, cli_configuration(mirror))
            .map_err(|e| PlanError::Copy(project.into(), e.to_string()))?;
        let var_file = root.join("variables.tfvars.json");
        std::fs::write(&var_file, Value::Object(variables).to_string())
            .map_err(|e| PlanError::Copy(project.into(), e.to_string()))?;
        Ok(Self {
            root,
            work,
            cli_config,
            var_file,
        })
    }
}

/// Terraform's whole environment: the scratch folder as home, no input, no checkpoint, no AWS
/// configuration files or metadata service, and the call's credentials when it has them.
fn environment(
    scratch: &Scratch,
    aws: Option<(&crate::aws::UnitAws, &AwsCredentials)>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME".into(), scratch.root.display().to_string()),
        ("TMPDIR".into(), scratch.root.display().to_string()),
        ("LANG".into(), "C.UTF-8".into()),
        (
            "TF_CLI_CONFIG_FILE".into(),
            scratch.cli_config.display().to_string(),
        ),
        (
            "TF_DATA_DIR".into(),
            scratch.root.join("data").display().to_string(),
        ),
        ("TF_IN_AUTOMATION".into(), "1".into()),
        ("TF_INPUT".into(), "0".into()),
        ("CHECKPOINT_DISABLE".into(), "1".into()),
        ("GOMAXPROCS".into(), "2".into()),
        ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    if let Some((aws, credentials)) = aws {
        env.extend([
            ("AWS_REGION".into(), aws.region().into()),
            ("AWS_DEFAULT_REGION".into(), aws.region().into()),
            (
                "AWS_ACCESS_KEY_ID".into(),
                credentials.access_key_id.clone(),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                credentials.secret_access_key.expose_secret().to_owned(),
            ),
            (
                "AWS_SESSION_TOKEN".into(),
                credentials.session_token.expose_secret().to_owned(),
            ),
        ]);
    }
    env
}

/// In a local sandbox (the call has the gateway's endpoint proxy): starts the loopback
/// forwarders and points terraform's proxy variables at the relay, and the endpoint variable of
/// each declared endpoint whose upstream is an emulator at it.
fn route_through_the_proxy(
    aws: &crate::aws::UnitAws,
    env: &mut Vec<(String, String)>,
) -> Result<(), PlanError> {
    if let Some((socket, upstreams)) = aws.proxy() {
        let all: Vec<String> = upstreams.values().cloned().collect();
        let forwarders =
            crate::forward::Forwarders::start(socket, &all).map_err(PlanError::Forward)?;
        let proxy = format!("http://{}", forwarders.relay);
        for key in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
            env.push((key.into(), proxy.clone()));
        }
        for (name, upstream) in upstreams {
            if let (Some(service), Some(url)) =
                (endpoint_variable(name), crate::aws::endpoint_url(upstream))
            {
                env.push((format!("AWS_ENDPOINT_URL_{service}"), url));
            }
        }
    }
    Ok(())
}

/// What terraform made of the project: the saved plan as JSON and as text.
struct Planned {
    document: Value,
    text: Vec<u8>,
}

/// Runs `init`, `plan -out` and `show` (JSON, then text) in the scratch folder, each stopped at
/// the deadline; an `init` that fails for want of a provider names what the mirror lacks.
fn run_terraform(
    terraform: &Path,
    scratch: &Scratch,
    env: &[(String, String)],
    deadline: Instant,
    mirror: &Path,
    offline: bool,
) -> Result<Planned, PlanError> {
    let run = |phase: &'static str, args: &[&str]| {
        let mut command = Command::new(terraform);
        command
            .arg(format!("-chdir={}", scratch.work.display()))
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&scratch.root);
        run_until(command, phase, deadline)
    };

    let init = run("init", &["init", "-input=false", "-no-color"])?;
    if !init.success {
        let said = init.said();
        let missing = missing_providers(&said);
        if !missing.is_empty() {
            return Err(PlanError::NotInMirror {
                missing: missing.join(", "),
                has: mirror_contents(mirror).join(", "),
                diagnostics: cut_tail(&said),
            });
        }
        return Err(failed("init", &init));
    }
    let plan_file = scratch.root.join("plan.bin");
    let out = format!("-out={}", plan_file.display());
    let vars = format!("-var-file={}", scratch.var_file.display());
    let mut plan_args = vec!["plan", "-input=false", "-no-color", "-lock=false"];
    // Offline, nothing in the project's state may be read back from AWS: the provider is told to
    // call nothing, and terraform not to refresh (which would call it anyway and fail).
    if offline {
        plan_args.push("-refresh=false");
    }
    plan_args.extend([out.as_str(), vars.as_str()]);
    let plan = run("plan", &plan_args)?;
    if !plan.success {
        return Err(failed("plan", &plan));
    }
    let plan_path = plan_file.display().to_string();
    let shown = run("show", &["show", "-json", "-no-color", &plan_path])?;
    if !shown.success {
        return Err(failed("show -json", &shown));
    }
    let document: Value =
        serde_json::from_slice(&shown.stdout).map_err(|e| PlanError::BadPlanJson(e.to_string()))?;
    let text = run("show", &["show", "-no-color", &plan_path])?;
    if !text.success {
        return Err(failed("show", &text));
    }
    Ok(Planned {
        document,
        text: text.stdout,
    })
}

/// The tool's answer: the summary (structured, and as a line with the flags) and the plan text,
/// cut at [`MAX_PLAN_TEXT_BYTES`] with a note when longer.
fn answer(
    project: &str,
    tenant: Option<String>,
    source: &Source,
    offline: bool,
    summary: &Summary,
    planned: &Planned,
) -> ToolOutput {
    let plan_text = String::from_utf8_lossy(&planned.text);
    let (cut, truncated) = cut_at(&plan_text, MAX_PLAN_TEXT_BYTES);
    let mut structured = summary.to_json();
    structured["project"] = json!(project);
    structured["tenant"] = json!(tenant);
    structured["terraformVersion"] = planned
        .document
        .get("terraform_version")
        .cloned()
        .unwrap_or(Value::Null);
    structured["offline"] = json!(offline);
    if let Source::Bucket(bucket) = source {
        structured["bucket"] = json!(bucket.bucket());
    }
    structured["planBytes"] = json!(plan_text.len());
    structured["planTruncated"] = json!(truncated);
    let mut shown_plan = cut.to_owned();
    if truncated {
        shown_plan.push_str(&format!(
            "\n[plan cut at {MAX_PLAN_TEXT_BYTES} of {} bytes; the summary covers all of it]\n",
            plan_text.len()
        ));
    }
    let mut output = ToolOutput::structured(structured);
    let mut line = summary.line(project);
    if offline {
        line.push_str(
            "\n(offline plan: this call has no AWS credentials, so no AWS API was called and \
             nothing in the state was refreshed (-refresh=false))",
        );
    }
    output.content = vec![ContentItem::text(line), ContentItem::text(shown_plan)];
    output
}

/// Where the project is read from.
enum Source {
    /// `projects/<name>` of the tenant's folder (local sandbox).
    Folder(PathBuf),
    /// `<tenant>/projects/<name>/` of a bucket (deployed on AWS).
    Bucket(TenantBucket),
}

/// A project name: one folder under `projects/`, 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting
/// with a dot.
fn check_project_name(name: &str) -> Result<(), PlanError> {
    let bad = |why| Err(PlanError::BadProject(name.into(), why));
    if name.is_empty() || name.len() > 64 {
        return bad("must be 1 to 64 characters");
    }
    if name.starts_with('.') {
        return bad("must not start with a dot");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return bad("may contain only letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

/// `<tenant>/projects/<name>`, a folder, still inside the tenant's folder once links are
/// followed.
fn project_dir(tenant_dir: &Path, name: &str) -> Result<PathBuf, PlanError> {
    let not_found = || PlanError::NotFound(name.into());
    let root = std::fs::canonicalize(tenant_dir).map_err(|_| not_found())?;
    let dir = std::fs::canonicalize(root.join("projects").join(name)).map_err(|_| not_found())?;
    if !dir.starts_with(&root) || !dir.is_dir() {
        return Err(not_found());
    }
    Ok(dir)
}

/// The call's variables: an object of names to strings, numbers or booleans.
fn variables(value: Option<&Value>) -> Result<Map<String, Value>, PlanError> {
    let bad = |m: String| Err(PlanError::BadVariables(m));
    let map = match value {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return bad("must be an object of names to values".into()),
    };
    if map.len() > MAX_VARIABLES {
        return bad(format!("at most {MAX_VARIABLES} may be set"));
    }
    for (name, value) in map {
        let valid_name = name.len() <= 64
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return bad(format!(
                "{name:?} is not a variable name (a letter or `_`, then letters, digits, `_` or \
                 `-`; at most 64)"
            ));
        }
        match value {
            Value::String(s) if s.chars().count() <= MAX_VARIABLE_CHARS => {}
            Value::String(_) => {
                return bad(format!(
                    "{name:?} is longer than {MAX_VARIABLE_CHARS} characters"
                ));
            }
            Value::Number(_) | Value::Bool(_) => {}
            _ => return bad(format!("{name:?} must be a string, a number or a bool")),
        }
    }
    Ok(map.clone())
}

/// Writes the tool's settings of the default `aws` provider ([`PROVIDER_SETTINGS`], and
/// [`OFFLINE_SETTINGS`] when `offline`): an override file when the project's top folder has a
/// `provider "aws"` block, else a file with a block of its own.
fn write_provider_settings(work: &Path, offline: bool) -> std::io::Result<()> {
    let mut body = String::from(PROVIDER_SETTINGS);
    if offline {
        body.push_str(OFFLINE_SETTINGS);
    }
    let text = format!("# Written by the terraform_plan tool.\nprovider \"aws\" {{\n{body}}}\n");
    let name = if declares_aws_provider(work) {
        "switchboard_provider_override.tf"
    } else {
        "switchboard_provider.tf"
    };
    std::fs::write(work.join(name), text)
}

/// Whether a `.tf` file of the folder has a `provider "aws"` block.
fn declares_aws_provider(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "tf"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .any(|text| {
            let words: Vec<&str> = text.split_whitespace().collect();
            words
                .windows(2)
                .any(|w| w[0] == "provider" && w[1].trim_end_matches('{') == "\"aws\"")
        })
}

fn find_terraform() -> Option<PathBuf> {
    let kit = Path::new(KIT).join("terraform");
    if kit.is_file() {
        return Some(kit);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join("terraform"))
        .find(|p| p.is_file())
}

/// Copies the project's regular files and folders (no links, devices or sockets; no
/// `.terraform` folder) into `to`, within [`MAX_PROJECT_BYTES`] and [`MAX_PROJECT_FILES`].
fn copy_project(from: &Path, to: &Path) -> Result<(), String> {
    let mut bytes = 0u64;
    let mut files = 0usize;
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        std::fs::create_dir_all(&dst)
            .map_err(|e| format!("cannot create {}: {e}", dst.display()))?;
        let entries =
            std::fs::read_dir(&src).map_err(|e| format!("cannot read a folder of it: {e}"))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read a folder of it: {e}"))?;
            let kind = entry
                .file_type()
                .map_err(|e| format!("cannot read a folder of it: {e}"))?;
            let name = entry.file_name();
            if kind.is_dir() {
                if name != ".terraform" {
                    stack.push((entry.path(), dst.join(&name)));
                }
            } else if kind.is_file() {
                files += 1;
                bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                if files > MAX_PROJECT_FILES || bytes > MAX_PROJECT_BYTES {
                    return Err(format!(
                        "is larger than the tool plans ({MAX_PROJECT_FILES} files, \
                         {MAX_PROJECT_BYTES} bytes)"
                    ));
                }
                std::fs::copy(entry.path(), dst.join(&name))
                    .map_err(|e| format!("cannot copy a file of it: {e}"))?;
            }
        }
    }
    Ok(())
}

/// The CLI configuration: the mirror is the only place providers come from.
fn cli_configuration(mirror: &Path) -> String {
    let path = mirror
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        "# Written by the terraform_plan tool: providers come from its mirror and nowhere else.\n\
         provider_installation {{\n  filesystem_mirror {{\n    path = \"{path}\"\n  }}\n}}\n\
         disable_checkpoint = true\n"
    )
}

/// The `AWS_ENDPOINT_URL_<SERVICE>` suffix of a catalog endpoint (the SDKs' service ids).
fn endpoint_variable(endpoint: &str) -> Option<&'static str> {
    Some(match endpoint {
        "sts" => "STS",
        "s3" => "S3",
        "secretsmanager" => "SECRETS_MANAGER",
        "lambda" => "LAMBDA",
        "ecs" => "ECS",
        "logs" => "CLOUDWATCH_LOGS",
        "ecr.api" => "ECR",
        "kms" => "KMS",
        "ssm" => "SSM",
        "dynamodb" => "DYNAMODB",
        _ => return None,
    })
}

fn deadline_of(deadline_unix_ms: u64) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let left = Duration::from_millis(deadline_unix_ms.saturating_sub(now_ms));
    Instant::now() + left.saturating_sub(DEADLINE_MARGIN)
}

/// What one terraform run printed, and whether it succeeded.
struct Ran {
    success: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Ran {
    /// Both streams, as text (terraform's diagnostics go to stderr, its progress to stdout).
    fn said(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&self.stderr));
        text
    }
}

fn failed(phase: &'static str, ran: &Ran) -> PlanError {
    PlanError::Terraform {
        phase,
        diagnostics: cut_tail(&ran.said()),
    }
}

/// Runs `command` to its end or to `deadline`, when it is killed.
fn run_until(
    mut command: Command,
    phase: &'static str,
    deadline: Instant,
) -> Result<Ran, PlanError> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| PlanError::Run(phase, e))?;
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(MAX_JSON_BYTES as u64).read_to_end(&mut out);
            }
            out
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let status = loop {
        match child.try_wait().map_err(|e| PlanError::Run(phase, e))? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(PlanError::Deadline(phase));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    Ok(Ran {
        success: status.success(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// The providers `terraform init` could not find: the `<address>` of each "provider <address>
/// was not found in any of the search locations" (terraform wraps its lines).
fn missing_providers(said: &str) -> Vec<String> {
    let words: Vec<&str> = said.split_whitespace().collect();
    let mut missing = Vec::new();
    for (i, pair) in words.windows(2).enumerate() {
        if pair == ["was", "not"]
            && words.get(i + 2) == Some(&"found")
            && i >= 2
            && words[i - 2] == "provider"
        {
            let address = words[i - 1].trim_end_matches(':').to_owned();
            if !missing.contains(&address) {
                missing.push(address);
            }
        }
    }
    missing
}

/// `<namespace>/<type> <version>` of each provider in an unpacked mirror.
fn mirror_contents(mirror: &Path) -> Vec<String> {
    let list = |p: &Path| -> Vec<(String, PathBuf)> {
        let mut v: Vec<_> = std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        v.sort();
        v
    };
    let mut found = Vec::new();
    for (_, host) in list(mirror) {
        for (namespace, ns) in list(&host) {
            for (kind, k) in list(&ns) {
                for (version, _) in list(&k) {
                    found.push(format!("{namespace}/{kind} {version}"));
                }
            }
        }
    }
    if found.is_empty() {
        found.push("nothing".into());
    }
    found
}

/// The last [`MAX_DIAGNOSTIC_BYTES`] of `text` (terraform's errors come last).
fn cut_tail(text: &str) -> String {
    let text = text.trim();
    if text.len() <= MAX_DIAGNOSTIC_BYTES {
        return text.to_owned();
    }
    let mut start = text.len() - MAX_DIAGNOSTIC_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[... {start} bytes cut ...]\n{}", &text[start..])
}

/// `text` cut at `max` bytes (on a character boundary), and whether it was cut.
fn cut_at(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

#[cfg(test)]
mod tests;
