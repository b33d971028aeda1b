//! `state_validate`: checks a Terraform state of the caller's tenant against rules that a
//! reviewer would otherwise apply by hand, and answers with one finding per violation.
//!
//! The argument `state` is a relative path in the caller's tenant's files (no `..`, not
//! absolute). Where those are:
//!
//! - **a tenant folder** (local backend): the gateway mounts the caller's tenant's folder
//!   read-only at `SWITCHBOARD_TENANT_DIR` in the call's sandbox (the catalog's
//!   `local.tenant_root`); only that folder is there, so another tenant's state is simply not
//!   found;
//! - **a bucket** (deployed on AWS): when the call has a `bucket` argument (the catalog pins its
//!   values), the state is the object `<tenant>/<state>` of that bucket, read with this call's
//!   credentials, the tenant being the call's `tenant` session tag
//!   ([`crate::tenant_bucket`]). Another tenant's object is "not found", whether IAM refuses it
//!   or it does not exist.
//!
//! Checks, each finding with a rule id, a severity, the resource address and a one-line reason
//! (the rule ids are documented in `docs/tools.md`, "state_validate"):
//!
//! - the state itself: format version 4 (anything else is an error, not a finding), a serial
//!   (`state-serial`) and a lineage (`state-lineage`);
//! - security groups open to `0.0.0.0/0` or `::/0` on every port (`sg-open-all-ports`) or on an
//!   administration port (`sg-open-admin-port`: 22, 23, 3389, 5985, 5986);
//! - IAM policies that allow `*` or `<service>:*` actions (`iam-wildcard-action`) or `*` resources
//!   (`iam-wildcard-resource`);
//! - S3 buckets readable by anyone: a public ACL or a public access block that blocks nothing
//!   (`s3-public-access`), a policy allowing the principal `*` without a condition
//!   (`s3-public-policy`); buckets without encryption (`s3-unencrypted`); volumes, instances'
//!   block devices, databases and file systems not encrypted (`volume-unencrypted`);
//! - outputs: a secret-looking output not marked sensitive (`output-secret-not-sensitive`), and
//!   a sensitive output, whose value the state stores in plain text all the same
//!   (`output-sensitive-in-state`);
//! - taggable resources without the tenant's tag (`tenant-tag-missing`: no `tenant` tag, or one
//!   naming another tenant than the caller's).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use crate::contract::{Invocation, ToolOutput};
use crate::tenant_bucket::TenantBucket;

/// The largest state read, in bytes.
pub const MAX_STATE_BYTES: u64 = 32 << 20;
/// The most findings an answer lists; the counts still cover every finding.
pub const MAX_FINDINGS: usize = 500;
/// Ports whose exposure to the world is a finding of its own.
pub const ADMIN_PORTS: &[(u16, &str)] = &[
    (22, "SSH"),
    (23, "telnet"),
    (3389, "RDP"),
    (5985, "WinRM"),
    (5986, "WinRM over TLS"),
];
/// Every rule id, as `docs/tools.md` documents them.
pub const RULES: &[&str] = &[
    "state-serial",
    "state-lineage",
    "sg-open-all-ports",
    "sg-open-admin-port",
    "iam-wildcard-action",
    "iam-wildcard-resource",
    "s3-public-access",
    "s3-public-policy",
    "s3-unencrypted",
    "volume-unencrypted",
    "output-secret-not-sensitive",
    "output-sensitive-in-state",
    "tenant-tag-missing",
];
/// The tag that names a resource's tenant.
pub const TENANT_TAG: &str = "tenant";

/// Where the tenant's files are and who the tenant is, as the gateway told the unit.
#[derive(Debug, Clone)]
pub struct TenantView {
    /// The tenant's folder (in a sandbox: the read-only mount of its folder and nothing else).
    pub dir: PathBuf,
    /// The caller's tenant, when known.
    pub tenant: Option<String>,
}

impl TenantView {
    /// The view the gateway's local backend gives the sandbox: `SWITCHBOARD_TENANT_DIR` and
    /// `SWITCHBOARD_TENANT`.
    pub fn from_env() -> Result<Self, StateError> {
        let dir = std::env::var_os("SWITCHBOARD_TENANT_DIR").ok_or(StateError::NoTenantDir)?;
        Ok(Self {
            dir: dir.into(),
            tenant: std::env::var("SWITCHBOARD_TENANT")
                .ok()
                .filter(|t| !t.is_empty()),
        })
    }
}

/// Why a state could not be validated.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "this tool has no tenant folder and the call names no bucket: its catalog entry needs \
         `local.tenant_root` (the gateway then mounts the caller's tenant's folder and sets \
         SWITCHBOARD_TENANT_DIR), or a `bucket` argument in its input schema"
    )]
    NoTenantDir,
    #[error("argument \"state\" must be a string")]
    NoState,
    #[error("state {0:?}: {1}")]
    BadPath(String, &'static str),
    #[error("state {0:?} not found for this tenant")]
    NotFound(String),
    #[error("state {0:?} is larger than {MAX_STATE_BYTES} bytes")]
    TooLarge(String),
    #[error("state {0:?} cannot be read: {1}")]
    Read(String, std::io::Error),
    #[error("state {0:?} is not a Terraform state: {1}")]
    Malformed(String, String),
    #[error(
        "state {0:?} has format version {1}; this tool reads version 4 (Terraform 0.12 and later)"
    )]
    Version(String, String),
    #[error(transparent)]
    Bucket(#[from] crate::tenant_bucket::BucketError),
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    fn name(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }
}

/// One rule broken by one resource (or by the state itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    /// The resource address (`module.x.aws_s3_bucket.logs["a"]`), `output.<name>`, or `state`.
    pub address: String,
    pub reason: String,
}

/// Validates the state the call names: under the caller's tenant's prefix of the bucket its
/// `bucket` argument names ([`TenantBucket`]), or else in the tenant's folder of the local
/// sandbox ([`TenantView::from_env`]).
pub fn run(invocation: &Invocation) -> Result<ToolOutput, StateError> {
    let Some(bucket) = TenantBucket::for_call(invocation)? else {
        return state_validate(invocation, &TenantView::from_env()?);
    };
    let name = state_argument(invocation)?;
    let bytes = bucket.read("state", name, MAX_STATE_BYTES)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| StateError::Malformed(name.into(), "it is not UTF-8 text".into()))?;
    let mut output = check(name, &text, Some(bucket.tenant()))?;
    if let Some(structured) = output.structured_content.as_mut() {
        structured["bucket"] = json!(bucket.bucket());
    }
    Ok(output)
}

/// Validates the state named by the `state` argument in the tenant's folder.
pub fn state_validate(
    invocation: &Invocation,
    view: &TenantView,
) -> Result<ToolOutput, StateError> {
    let name = state_argument(invocation)?;
    let path = resolve(&view.dir, name)?;
    let text = read_capped(&path, name)?;
    check(name, &text, view.tenant.as_deref())
}

fn state_argument(invocation: &Invocation) -> Result<&str, StateError> {
    invocation
        .arguments
        .get("state")
        .and_then(Value::as_str)
        .ok_or(StateError::NoState)
}

/// Parses and validates the state `name`, whose text is `text`, for `tenant`.
fn check(name: &str, text: &str, tenant: Option<&str>) -> Result<ToolOutput, StateError> {
    let state: Value = serde_json::from_str(text)
        .map_err(|e| StateError::Malformed(name.into(), e.to_string()))?;
    let report = validate(&state, tenant).map_err(|e| match e {
        Invalid::Malformed(m) => StateError::Malformed(name.into(), m),
        Invalid::Version(v) => StateError::Version(name.into(), v),
    })?;
    Ok(report.output(name, tenant))
}

/// The file `name` names in `dir`: relative, no `..`, and still inside `dir` once symbolic links
/// are followed.
fn resolve(dir: &Path, name: &str) -> Result<PathBuf, StateError> {
    let bad = |why| StateError::BadPath(name.into(), why);
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if name.len() > 1024 {
        return Err(bad("is longer than 1024 bytes"));
    }
    let relative = Path::new(name);
    for part in relative.components() {
        match part {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(bad("must not contain `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad("must be relative to the tenant's folder"));
            }
        }
    }
    let not_found = || StateError::NotFound(name.into());
    let root = std::fs::canonicalize(dir).map_err(|_| not_found())?;
    let path = std::fs::canonicalize(root.join(relative)).map_err(|_| not_found())?;
    if !path.starts_with(&root) || !path.is_file() {
        return Err(not_found());
    }
    Ok(path)
}

fn read_capped(path: &Path, name: &str) -> Result<String, StateError> {
    let file = std::fs::File::open(path).map_err(|e| StateError::Read(name.into(), e))?;
    let mut text = String::new();
    file.take(MAX_STATE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| StateError::Read(name.into(), e))?;
    if text.len() as u64 > MAX_STATE_BYTES {
        return Err(StateError::TooLarge(name.into()));
    }
    Ok(text)
}

/// Why a document is not a state this tool reads.
#[derive(Debug, PartialEq)]
pub enum Invalid {
    Malformed(String),
    Version(String),
}

/// What [`validate`] found.
#[derive(Debug, Default)]
pub struct Report {
    pub serial: Option<u64>,
    pub lineage: Option<String>,
    pub terraform_version: Option<String>,
    /// Managed resource instances checked.
    pub instances: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    fn output(mut self, name: &str, tenant: Option<&str>) -> ToolOutput {
        self.findings.sort_by(|a, b| {
            (a.severity, &a.address, a.rule).cmp(&(b.severity, &b.address, b.rule))
        });
        let mut counts: BTreeMap<&str, usize> = ["critical", "high", "medium", "low"]
            .into_iter()
            .map(|s| (s, 0))
            .collect();
        for f in &self.findings {
            *counts.entry(f.severity.name()).or_default() += 1;
        }
        let total = self.findings.len();
        let truncated = total > MAX_FINDINGS;
        let listed = &self.findings[..total.min(MAX_FINDINGS)];
        let mut text = if total == 0 {
            format!(
                "{name}: no findings in {} resource instances",
                self.instances
            )
        } else {
            format!(
                "{name}: {total} finding{} in {} resource instances ({})",
                if total == 1 { "" } else { "s" },
                self.instances,
                ["critical", "high", "medium", "low"]
                    .iter()
                    .map(|s| (s, counts[s]))
                    .filter(|(_, n)| *n > 0)
                    .map(|(s, n)| format!("{n} {s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        for f in listed {
            let _ = write!(
                text,
                "\n- [{}] {} {}: {}",
                f.severity.name(),
                f.rule,
                f.address,
                f.reason
            );
        }
        if truncated {
            let _ = write!(
                text,
                "\n(the first {MAX_FINDINGS} of {total} findings are listed)"
            );
        }
        let structured = json!({
            "state": name,
            "tenant": tenant,
            "formatVersion": 4,
            "terraformVersion": self.terraform_version,
            "serial": self.serial,
            "lineage": self.lineage,
            "resourceInstances": self.instances,
            "passed": total == 0,
            "counts": counts,
            "findings": listed,
            "truncated": truncated,
        });
        let mut output = ToolOutput::structured(structured);
        output.content = vec![crate::ContentItem::text(text)];
        output
    }
}

/// Checks a parsed state. `tenant` is the caller's tenant, for the tag rule.
pub fn validate(state: &Value, tenant: Option<&str>) -> Result<Report, Invalid> {
    let object = state
        .as_object()
        .ok_or_else(|| Invalid::Malformed("the document is not a JSON object".into()))?;
    match object.get("version") {
        Some(v) if v.as_u64() == Some(4) => {}
        Some(v) => return Err(Invalid::Version(v.to_string())),
        None => return Err(Invalid::Malformed("it has no `version`".into())),
    }
    let mut report = Report {
        terraform_version: object
            .get("terraform_version")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..Report::default()
    };
    let mut add = |rule, severity, address: &str, reason: String| {
        report_push(&mut report.findings, rule, severity, address, reason);
    };
    match object.get("serial") {
        Some(Value::Number(n)) if n.as_u64().is_some() => report.serial = n.as_u64(),
        other => add(
            "state-serial",
            Severity::Medium,
            "state",
            match other {
                None => {
                    "the state has no serial: Terraform cannot tell it from an older copy".into()
                }
                Some(v) => format!("the serial {v} is not a non-negative integer"),
            },
        ),
    }
    match object.get("lineage").and_then(Value::as_str) {
        Some(l) if is_uuid(l) => report.lineage = Some(l.to_owned()),
        Some(l) => add(
            "state-lineage",
            Severity::Medium,
            "state",
            format!(
                "the lineage {l:?} is not a UUID: states of unrelated histories could be mixed"
            ),
        ),
        None => add(
            "state-lineage",
            Severity::Medium,
            "state",
            "the state has no lineage: states of unrelated histories could be mixed".into(),
        ),
    }
    let resources = match object.get("resources") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(r)) => r.as_slice(),
        Some(_) => return Err(Invalid::Malformed("`resources` is not a list".into())),
    };
    let instances = collect_instances(resources)?;
    report.instances = instances.len();
    let encrypted_buckets: BTreeSet<&str> = instances
        .iter()
        .filter(|i| i.kind == "aws_s3_bucket_server_side_encryption_configuration")
        .filter_map(|i| i.attributes.get("bucket").and_then(Value::as_str))
        .collect();
    let mut findings = Vec::new();
    for instance in &instances {
        check_instance(instance, tenant, &encrypted_buckets, &mut findings);
    }
    report.findings.extend(findings);
    if let Some(outputs) = object.get("outputs").and_then(Value::as_object) {
        for (name, output) in outputs {
            check_output(name, output, &mut report.findings);
        }
    }
    Ok(report)
}

fn report_push(
    findings: &mut Vec<Finding>,
    rule: &'static str,
    severity: Severity,
    address: &str,
    reason: String,
) {
    findings.push(Finding {
        rule,
        severity,
        address: address.to_owned(),
        reason,
    });
}

/// One managed resource instance.
struct Instance<'a> {
    address: String,
    kind: &'a str,
    attributes: &'a serde_json::Map<String, Value>,
}

fn collect_instances(resources: &[Value]) -> Result<Vec<Instance<'_>>, Invalid> {
    let mut out = Vec::new();
    for resource in resources {
        let r = resource
            .as_object()
            .ok_or_else(|| Invalid::Malformed("a resource is not an object".into()))?;
        if r.get("mode").and_then(Value::as_str) == Some("data") {
            continue;
        }
        let field = |key: &str| {
            r.get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| Invalid::Malformed(format!("a resource has no `{key}`")))
        };
        let kind = field("type")?;
        let name = field("name")?;
        let base = match r.get("module").and_then(Value::as_str) {
            Some(module) => format!("{module}.{kind}.{name}"),
            None => format!("{kind}.{name}"),
        };
        let Some(list) = r.get("instances").and_then(Value::as_array) else {
            continue;
        };
        for instance in list {
            let address = match instance.get("index_key") {
                Some(Value::Number(n)) => format!("{base}[{n}]"),
                Some(Value::String(s)) => format!("{base}[{}]", Value::String(s.clone())),
                _ => base.clone(),
            };
            let Some(attributes) = instance.get("attributes").and_then(Value::as_object) else {
                continue;
            };
            out.push(Instance {
                address,
                kind,
                attributes,
            });
        }
    }
    Ok(out)
}

fn check_instance(
    instance: &Instance<'_>,
    tenant: Option<&str>,
    encrypted_buckets: &BTreeSet<&str>,
    findings: &mut Vec<Finding>,
) {
    let a = instance.attributes;
    let at = instance.address.as_str();
    let mut add =
        |rule, severity, reason: String| report_push(findings, rule, severity, at, reason);
    match instance.kind {
        "aws_security_group" => {
            for rule in list(a.get("ingress")).iter().filter_map(Value::as_object) {
                Ingress::of(rule, ["cidr_blocks", "ipv6_cidr_blocks"], "protocol").check(&mut add);
            }
        }
        "aws_security_group_rule" if a.get("type").and_then(Value::as_str) == Some("ingress") => {
            Ingress::of(a, ["cidr_blocks", "ipv6_cidr_blocks"], "protocol").check(&mut add);
        }
        "aws_vpc_security_group_ingress_rule" => {
            Ingress::of(a, ["cidr_ipv4", "cidr_ipv6"], "ip_protocol").check(&mut add);
        }
        "aws_iam_policy"
        | "aws_iam_role_policy"
        | "aws_iam_user_policy"
        | "aws_iam_group_policy" => {
            if let Some(doc) = a.get("policy").and_then(Value::as_str) {
                check_iam_policy(doc, &mut add);
            }
        }
        "aws_iam_role" => {
            for inline in list(a.get("inline_policy")) {
                if let Some(doc) = inline.get("policy").and_then(Value::as_str) {
                    check_iam_policy(doc, &mut add);
                }
            }
        }
        "aws_s3_bucket_public_access_block" => {
            let open: Vec<&str> = [
                "block_public_acls",
                "block_public_policy",
                "ignore_public_acls",
                "restrict_public_buckets",
            ]
            .into_iter()
            .filter(|k| a.get(*k).and_then(Value::as_bool) != Some(true))
            .collect();
            if !open.is_empty() {
                add(
                    "s3-public-access",
                    Severity::High,
                    format!("the public access block leaves {} off", open.join(", ")),
                );
            }
        }
        "aws_s3_bucket_acl" | "aws_s3_bucket" => {
            if let Some(acl) = a.get("acl").and_then(Value::as_str)
                && matches!(
                    acl,
                    "public-read" | "public-read-write" | "authenticated-read"
                )
            {
                add(
                    "s3-public-access",
                    Severity::High,
                    format!("the bucket's ACL is {acl}: anyone may read it"),
                );
            }
            if instance.kind == "aws_s3_bucket" {
                if let Some(doc) = a.get("policy").and_then(Value::as_str) {
                    check_bucket_policy(doc, &mut add);
                }
                let configured = !list(a.get("server_side_encryption_configuration")).is_empty();
                let bucket = a.get("bucket").and_then(Value::as_str).unwrap_or("");
                let id = a.get("id").and_then(Value::as_str).unwrap_or("");
                if !configured
                    && !encrypted_buckets.contains(bucket)
                    && !encrypted_buckets.contains(id)
                {
                    add(
                        "s3-unencrypted",
                        Severity::Medium,
                        format!("bucket {bucket:?} has no server-side encryption configuration"),
                    );
                }
            }
        }
        "aws_s3_bucket_policy" => {
            if let Some(doc) = a.get("policy").and_then(Value::as_str) {
                check_bucket_policy(doc, &mut add);
            }
        }
        "aws_ebs_volume" | "aws_efs_file_system"
            if a.get("encrypted").and_then(Value::as_bool) == Some(false) =>
        {
            add(
                "volume-unencrypted",
                Severity::Medium,
                "the volume is not encrypted at rest".into(),
            );
        }
        "aws_db_instance" | "aws_rds_cluster"
            if a.get("storage_encrypted").and_then(Value::as_bool) == Some(false) =>
        {
            add(
                "volume-unencrypted",
                Severity::Medium,
                "the database's storage is not encrypted at rest".into(),
            );
        }
        "aws_instance" => {
            for (block, what) in [
                ("root_block_device", "root volume"),
                ("ebs_block_device", "EBS volume"),
            ] {
                for device in list(a.get(block)) {
                    if device.get("encrypted").and_then(Value::as_bool) == Some(false) {
                        add(
                            "volume-unencrypted",
                            Severity::Medium,
                            format!("the instance's {what} is not encrypted at rest"),
                        );
                    }
                }
            }
        }
        _ => {}
    }
    check_tenant_tag(a, tenant, &mut add);
}

/// `tags_all` (what AWS holds, provider default tags included) or else `tags`, for resources that
/// have tags at all.
fn check_tenant_tag(
    a: &serde_json::Map<String, Value>,
    tenant: Option<&str>,
    add: &mut impl FnMut(&'static str, Severity, String),
) {
    let tags = match (a.get("tags_all"), a.get("tags")) {
        (Some(Value::Object(t)), _) => Some(t),
        (_, Some(Value::Object(t))) => Some(t),
        (Some(_), _) | (_, Some(_)) => None, // taggable, but no tags at all
        (None, None) => return,
    };
    let value = tags.and_then(|t| t.get(TENANT_TAG)).and_then(Value::as_str);
    match (value, tenant) {
        (None, _) => add(
            "tenant-tag-missing",
            Severity::Low,
            format!("the resource has no {TENANT_TAG:?} tag: nothing says whose it is"),
        ),
        (Some(v), Some(t)) if v != t => add(
            "tenant-tag-missing",
            Severity::Low,
            format!("the resource's {TENANT_TAG:?} tag is {v:?}, not the caller's tenant {t:?}"),
        ),
        _ => {}
    }
}

/// One ingress rule of a security group, whatever resource type declared it.
struct Ingress<'a> {
    cidrs: Vec<&'a str>,
    from: Option<i64>,
    to: Option<i64>,
    protocol: &'a str,
}

impl<'a> Ingress<'a> {
    /// The rule whose attributes are `rule`: `cidr_keys` name its IPv4 and IPv6 sources (a
    /// CIDR or a list of them, depending on the resource type), `protocol_key` its protocol.
    fn of(
        rule: &'a serde_json::Map<String, Value>,
        cidr_keys: [&str; 2],
        protocol_key: &str,
    ) -> Self {
        Self {
            cidrs: cidr_keys
                .iter()
                .flat_map(|key| one_or_many(rule.get(*key)))
                .collect(),
            from: rule.get("from_port").and_then(Value::as_i64),
            to: rule.get("to_port").and_then(Value::as_i64),
            protocol: rule.get(protocol_key).and_then(Value::as_str).unwrap_or(""),
        }
    }

    fn check(&self, add: &mut impl FnMut(&'static str, Severity, String)) {
        let Some(world) = self
            .cidrs
            .iter()
            .find(|c| matches!(**c, "0.0.0.0/0" | "::/0"))
        else {
            return;
        };
        let all_protocols = matches!(self.protocol, "-1" | "all");
        let (from, to) = (self.from.unwrap_or(0), self.to.unwrap_or(0));
        if all_protocols || (from <= 0 && to >= 65535) {
            add(
                "sg-open-all-ports",
                Severity::Critical,
                format!("ingress from {world} on every port"),
            );
            return;
        }
        if !matches!(self.protocol, "tcp" | "6") {
            return;
        }
        let exposed: Vec<String> = ADMIN_PORTS
            .iter()
            .filter(|(port, _)| from <= i64::from(*port) && i64::from(*port) <= to)
            .map(|(port, what)| format!("{port} ({what})"))
            .collect();
        if !exposed.is_empty() {
            add(
                "sg-open-admin-port",
                Severity::High,
                format!("ingress from {world} to port {}", exposed.join(", ")),
            );
        }
    }
}

/// The statements of a policy document (a string of JSON, as the AWS provider stores it).
fn statements(doc: &str) -> Vec<serde_json::Map<String, Value>> {
    let Ok(doc) = serde_json::from_str::<Value>(doc) else {
        return Vec::new();
    };
    match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().filter_map(|s| s.as_object().cloned()).collect(),
        Some(Value::Object(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

fn allows(statement: &serde_json::Map<String, Value>) -> bool {
    statement.get("Effect").and_then(Value::as_str) == Some("Allow")
}

fn check_iam_policy(doc: &str, add: &mut impl FnMut(&'static str, Severity, String)) {
    for s in statements(doc).iter().filter(|s| allows(s)) {
        let sid = s
            .get("Sid")
            .and_then(Value::as_str)
            .map(|sid| format!("statement {sid:?}"))
            .unwrap_or_else(|| "a statement".into());
        let wild: Vec<&str> = one_or_many(s.get("Action"))
            .filter(|a| *a == "*" || a.ends_with(":*"))
            .collect();
        if !wild.is_empty() {
            add(
                "iam-wildcard-action",
                Severity::High,
                format!("{sid} allows every action of {}", wild.join(", ")),
            );
        }
        if one_or_many(s.get("Resource")).any(|r| r == "*") {
            add(
                "iam-wildcard-resource",
                Severity::Medium,
                format!("{sid} allows its actions on every resource (\"*\")"),
            );
        }
    }
}

fn check_bucket_policy(doc: &str, add: &mut impl FnMut(&'static str, Severity, String)) {
    for s in statements(doc).iter().filter(|s| allows(s)) {
        let anyone = match s.get("Principal") {
            Some(Value::String(p)) => p == "*",
            Some(Value::Object(p)) => one_or_many(p.get("AWS")).any(|a| a == "*"),
            _ => false,
        };
        if anyone && s.get("Condition").is_none() {
            add(
                "s3-public-policy",
                Severity::Critical,
                format!(
                    "the bucket policy allows {} to anyone (Principal \"*\", no condition)",
                    one_or_many(s.get("Action")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
}

fn check_output(name: &str, output: &Value, findings: &mut Vec<Finding>) {
    let address = format!("output.{name}");
    let sensitive = output.get("sensitive").and_then(Value::as_bool) == Some(true);
    let has_value = !matches!(output.get("value"), None | Some(Value::Null));
    if !has_value {
        return;
    }
    let lower = name.to_ascii_lowercase();
    let secret_like = [
        "password",
        "secret",
        "token",
        "private_key",
        "access_key",
        "credential",
    ]
    .iter()
    .any(|w| lower.contains(w));
    if sensitive {
        report_push(
            findings,
            "output-sensitive-in-state",
            Severity::Low,
            &address,
            "the output is sensitive, yet the state holds its value in plain text: keep it in a \
             secret store and output a reference"
                .into(),
        );
    } else if secret_like {
        report_push(
            findings,
            "output-secret-not-sensitive",
            Severity::High,
            &address,
            "the output's name says it is a secret, but it is not marked sensitive: plans and logs \
             print it"
                .into(),
        );
    }
}

fn list(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn one_or_many(value: Option<&Value>) -> impl Iterator<Item = &str> {
    let (one, many) = match value {
        Some(Value::String(s)) => (Some(s.as_str()), &[][..]),
        Some(Value::Array(a)) => (None, a.as_slice()),
        _ => (None, &[][..]),
    };
    one.into_iter().chain(many.iter().filter_map(Value::as_str))
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINEAGE: &str = "6f1c1f1e-3a43-4c59-9d47-5a3c2a4a0b11";

    fn state(resources: Value, outputs: Value) -> Value {
        json!({"version": 4, "terraform_version": "1.9.8", "serial": 3, "lineage": LINEAGE,
               "outputs": outputs, "resources": resources})
    }

    fn resource(kind: &str, name: &str, attributes: Value) -> Value {
        json!({"mode": "managed", "type": kind, "name": name,
               "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
               "instances": [{"schema_version": 0, "attributes": attributes}]})
    }

    fn rules(report: &Report) -> Vec<(&'static str, String)> {
        report
            .findings
            .iter()
            .map(|f| (f.rule, f.address.clone()))
            .collect()
    }

    #[test]
    fn a_clean_state_has_no_findings() {
        let s = state(
            json!([resource(
                "aws_s3_bucket",
                "b",
                json!({"bucket": "b", "id": "b",
                "server_side_encryption_configuration": [{"rule": []}],
                "tags": {"tenant": "acme"}, "tags_all": {"tenant": "acme"}})
            )]),
            json!({"bucket": {"value": "b", "type": "string"}}),
        );
        let r = validate(&s, Some("acme")).expect("valid");
        assert_eq!(rules(&r), vec![]);
        assert_eq!(r.instances, 1);
        assert_eq!(r.serial, Some(3));
    }

    #[test]
    fn ssh_from_anywhere_is_an_admin_port_finding_and_all_ports_is_critical() {
        let s = state(
            json!([
                resource(
                    "aws_security_group",
                    "ssh",
                    json!({"ingress": [
                        {"cidr_blocks": ["10.0.0.0/8"], "from_port": 0, "to_port": 0, "protocol": "-1"},
                        {"cidr_blocks": [], "ipv6_cidr_blocks": ["::/0"], "from_port": 20, "to_port": 25, "protocol": "tcp"}
                    ]})
                ),
                resource(
                    "aws_vpc_security_group_ingress_rule",
                    "all",
                    json!({
                    "cidr_ipv4": "0.0.0.0/0", "ip_protocol": "-1"})
                ),
                resource(
                    "aws_security_group_rule",
                    "https",
                    json!({"type": "ingress",
                    "cidr_blocks": ["0.0.0.0/0"], "from_port": 443, "to_port": 443, "protocol": "tcp"})
                ),
            ]),
            json!({}),
        );
        let r = validate(&s, None).expect("valid");
        assert_eq!(
            rules(&r),
            vec![
                ("sg-open-admin-port", "aws_security_group.ssh".into()),
                (
                    "sg-open-all-ports",
                    "aws_vpc_security_group_ingress_rule.all".into()
                ),
            ]
        );
        assert!(
            r.findings[0].reason.contains("22 (SSH), 23 (telnet)"),
            "{:?}",
            r.findings[0]
        );
    }

    #[test]
    fn wildcard_actions_and_resources_are_found_in_every_policy_kind() {
        let doc = r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"All","Effect":"Allow","Action":"s3:*","Resource":"*"},
            {"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
        let s = state(
            json!([
                resource("aws_iam_policy", "p", json!({"policy": doc})),
                resource(
                    "aws_iam_role",
                    "r",
                    json!({"inline_policy": [{"name": "i", "policy": doc}]})
                ),
            ]),
            json!({}),
        );
        let found = rules(&validate(&s, None).expect("valid"));
        assert_eq!(
            found,
            vec![
                ("iam-wildcard-action", "aws_iam_policy.p".into()),
                ("iam-wildcard-resource", "aws_iam_policy.p".into()),
                ("iam-wildcard-action", "aws_iam_role.r".into()),
                ("iam-wildcard-resource", "aws_iam_role.r".into()),
            ]
        );
    }

    #[test]
    fn public_buckets_and_unencrypted_storage_are_found() {
        let public = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        let guarded = r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-1"}}}}"#;
        let s = state(
            json!([
                resource("aws_s3_bucket", "b", json!({"bucket": "b", "id": "b"})),
                resource("aws_s3_bucket", "c", json!({"bucket": "c", "id": "c"})),
                resource(
                    "aws_s3_bucket_server_side_encryption_configuration",
                    "c",
                    json!({"bucket": "c"})
                ),
                resource(
                    "aws_s3_bucket_policy",
                    "b",
                    json!({"bucket": "b", "policy": public})
                ),
                resource(
                    "aws_s3_bucket_policy",
                    "c",
                    json!({"bucket": "c", "policy": guarded})
                ),
                resource("aws_s3_bucket_acl", "b", json!({"acl": "public-read"})),
                resource(
                    "aws_s3_bucket_public_access_block",
                    "b",
                    json!({
                    "block_public_acls": true, "block_public_policy": false,
                    "ignore_public_acls": true, "restrict_public_buckets": true})
                ),
                resource("aws_ebs_volume", "v", json!({"encrypted": false})),
                resource(
                    "aws_instance",
                    "i",
                    json!({"root_block_device": [{"encrypted": false}]})
                ),
                resource("aws_db_instance", "d", json!({"storage_encrypted": true})),
            ]),
            json!({}),
        );
        let found = rules(&validate(&s, None).expect("valid"));
        assert_eq!(
            found,
            vec![
                ("s3-unencrypted", "aws_s3_bucket.b".into()),
                ("s3-public-policy", "aws_s3_bucket_policy.b".into()),
                ("s3-public-access", "aws_s3_bucket_acl.b".into()),
                (
                    "s3-public-access",
                    "aws_s3_bucket_public_access_block.b".into()
                ),
                ("volume-unencrypted", "aws_ebs_volume.v".into()),
                ("volume-unencrypted", "aws_instance.i".into()),
            ]
        );
    }

    #[test]
    fn outputs_and_tenant_tags_are_checked() {
        let s = state(
            json!([
                resource(
                    "aws_sqs_queue",
                    "untagged",
                    json!({"tags": null, "tags_all": {}})
                ),
                resource(
                    "aws_sqs_queue",
                    "other",
                    json!({"tags": {"tenant": "globex"}})
                ),
                resource(
                    "aws_sqs_queue",
                    "ours",
                    json!({"tags": {}, "tags_all": {"tenant": "acme"}})
                ),
                resource("null_resource", "untaggable", json!({"id": "1"})),
            ]),
            json!({
                "db_password": {"value": "hunter2", "type": "string"},
                "api_token": {"value": "t", "type": "string", "sensitive": true},
                "endpoint": {"value": "https://x", "type": "string"},
            }),
        );
        let r = validate(&s, Some("acme")).expect("valid");
        assert_eq!(
            rules(&r),
            vec![
                ("tenant-tag-missing", "aws_sqs_queue.untagged".into()),
                ("tenant-tag-missing", "aws_sqs_queue.other".into()),
                ("output-sensitive-in-state", "output.api_token".into()),
                ("output-secret-not-sensitive", "output.db_password".into()),
            ]
        );
        let out = format!("{:?}", r.findings);
        assert!(
            !out.contains("hunter2"),
            "a finding repeats an output's value: {out}"
        );
    }

    #[test]
    fn addresses_name_the_module_and_the_index() {
        let s = state(
            json!([{"mode": "managed", "module": "module.net", "type": "aws_ebs_volume", "name": "v",
                    "instances": [{"index_key": 0, "attributes": {"encrypted": false}},
                                  {"index_key": "b", "attributes": {"encrypted": false}}]},
                   {"mode": "data", "type": "aws_ebs_volume", "name": "d",
                    "instances": [{"attributes": {"encrypted": false}}]}]),
            json!({}),
        );
        let r = validate(&s, None).expect("valid");
        assert_eq!(
            rules(&r),
            vec![
                (
                    "volume-unencrypted",
                    "module.net.aws_ebs_volume.v[0]".into()
                ),
                (
                    "volume-unencrypted",
                    "module.net.aws_ebs_volume.v[\"b\"]".into()
                ),
            ]
        );
        assert_eq!(r.instances, 2, "data sources are not checked");
    }

    #[test]
    fn serial_lineage_and_version_are_checked() {
        let r = validate(&json!({"version": 4, "serial": -1, "lineage": "x"}), None).expect("v4");
        assert_eq!(
            rules(&r),
            vec![
                ("state-serial", "state".into()),
                ("state-lineage", "state".into())
            ]
        );
        assert_eq!(
            validate(&json!({"version": 3, "serial": 1}), None).err(),
            Some(Invalid::Version("3".into()))
        );
        assert!(matches!(
            validate(&json!([]), None),
            Err(Invalid::Malformed(_))
        ));
        assert!(matches!(
            validate(&json!({"version": 4, "resources": {}}), None),
            Err(Invalid::Malformed(_))
        ));
    }

    fn invocation(state: &str) -> Invocation {
        serde_json::from_value(json!({
            "invocationId": "i", "tool": "state_validate",
            "arguments": {"state": state}, "deadlineUnixMs": 0
        }))
        .expect("valid invocation")
    }

    #[test]
    fn paths_stay_in_the_tenant_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tenant = dir.path().join("acme");
        std::fs::create_dir_all(tenant.join("states")).expect("mkdir");
        std::fs::write(dir.path().join("outside.tfstate"), b"{}").expect("write");
        std::fs::write(
            tenant.join("states/ok.tfstate"),
            state(json!([]), json!({})).to_string(),
        )
        .expect("write");
        std::os::unix::fs::symlink("../outside.tfstate", tenant.join("link.tfstate"))
            .expect("symlink");
        let view = TenantView {
            dir: tenant,
            tenant: Some("acme".into()),
        };
        let out = state_validate(&invocation("states/ok.tfstate"), &view).expect("validates");
        assert_eq!(
            out.structured_content
                .as_ref()
                .and_then(|s| s.get("passed")),
            Some(&json!(true))
        );
        for (name, want) in [
            ("../outside.tfstate", "must not contain `..`"),
            ("/etc/passwd", "must be relative"),
            ("link.tfstate", "not found for this tenant"),
            ("states/missing.tfstate", "not found for this tenant"),
            ("states", "not found for this tenant"),
        ] {
            let e = state_validate(&invocation(name), &view).expect_err(name);
            assert!(e.to_string().contains(want), "{name}: {e}");
        }
    }

    #[test]
    fn the_example_states_are_clean_and_break_every_rule_once() {
        let parse = |text: &str| serde_json::from_str::<Value>(text).expect("example is JSON");
        let clean = parse(include_str!(
            "../../../examples/tenants/acme/states/clean.tfstate"
        ));
        let r = validate(&clean, Some("acme")).expect("valid");
        assert_eq!(rules(&r), vec![], "the clean example has findings");
        assert!(r.instances >= 5, "{}", r.instances);
        let planted = parse(include_str!(
            "../../../examples/tenants/acme/states/violations.tfstate"
        ));
        let r = validate(&planted, Some("acme")).expect("valid");
        let mut found: Vec<&str> = r.findings.iter().map(|f| f.rule).collect();
        found.sort_unstable();
        let mut all = RULES.to_vec();
        all.sort_unstable();
        assert_eq!(found, all, "one finding per rule: {:#?}", r.findings);
    }

    #[test]
    fn every_rule_is_documented() {
        let doc = include_str!("../../../docs/tools.md");
        for rule in RULES {
            assert!(
                doc.contains(&format!("`{rule}`")),
                "docs/tools.md lacks {rule}"
            );
        }
    }
}
