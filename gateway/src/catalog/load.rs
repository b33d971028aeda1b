//! Reading and checking a catalog file. Every error names the file, the tool and the field.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::types::{BackendKind, Catalog, Tool};

/// Why a catalog was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {location}: {message}")]
    Parse {
        file: PathBuf,
        location: String,
        message: String,
    },
    #[error("{file}: tool {tool:?}: field {field:?}: {message}")]
    Invalid {
        file: PathBuf,
        tool: String,
        field: String,
        message: String,
    },
    #[error("{file}: field {field:?}: {message}")]
    Top {
        file: PathBuf,
        field: String,
        message: String,
    },
}

/// Reads and checks a catalog file.
pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
    let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and checks catalog text; `file` is used in messages only.
pub fn parse(file: &Path, text: &str) -> Result<Catalog, CatalogError> {
    let file_buf = file.to_path_buf();
    let raw: serde_json::Value =
        serde_yaml_ng::from_str(text).map_err(|e| CatalogError::Parse {
            file: file_buf.clone(),
            location: e
                .location()
                .map(|l| format!("line {} column {}", l.line(), l.column()))
                .unwrap_or_else(|| "document".into()),
            message: e.to_string(),
        })?;
    let catalog: Catalog = serde_path_to_error::deserialize(&raw).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        match tool_of_path(&raw, &path) {
            Some((tool, field)) => CatalogError::Invalid {
                file: file_buf.clone(),
                tool,
                field,
                message,
            },
            None => CatalogError::Top {
                file: file_buf.clone(),
                field: path,
                message,
            },
        }
    })?;
    check(file, &catalog)?;
    Ok(catalog)
}

/// Maps a serde path like `tools[2].allow.groups` to the tool's name and the field inside it.
fn tool_of_path(raw: &serde_json::Value, path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("tools[")?;
    let (index, field) = rest.split_once(']')?;
    let index: usize = index.parse().ok()?;
    let name = raw
        .get("tools")
        .and_then(|t| t.get(index))
        .and_then(|t| t.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("#{index}"));
    let field = field.trim_start_matches('.');
    Some((
        name,
        if field.is_empty() {
            "(tool)".into()
        } else {
            field.into()
        },
    ))
}

fn check(file: &Path, catalog: &Catalog) -> Result<(), CatalogError> {
    let top = |field: &str, message: String| CatalogError::Top {
        file: file.to_path_buf(),
        field: field.into(),
        message,
    };
    if catalog.version != 1 {
        return Err(top(
            "version",
            format!("unsupported version {}, expected 1", catalog.version),
        ));
    }
    if catalog.tools.is_empty() {
        return Err(top("tools", "the catalog declares no tool".into()));
    }
    if let Some(auth) = &catalog.gateway.auth {
        for alg in &auth.algorithms {
            if !matches!(
                alg.as_str(),
                "RS256"
                    | "RS384"
                    | "RS512"
                    | "PS256"
                    | "PS384"
                    | "PS512"
                    | "ES256"
                    | "ES384"
                    | "EdDSA"
            ) {
                return Err(top(
                    "gateway.auth.algorithms",
                    format!("{alg:?} is not an accepted asymmetric algorithm"),
                ));
            }
        }
        if auth.leeway_seconds > 300 {
            return Err(top(
                "gateway.auth.leeway_seconds",
                "must be at most 300".into(),
            ));
        }
        if !(1..=3600).contains(&auth.jwks_cache_seconds) {
            return Err(top(
                "gateway.auth.jwks_cache_seconds",
                "must be between 1 and 3600".into(),
            ));
        }
        if auth.max_token_lifetime_seconds == Some(0) {
            return Err(top(
                "gateway.auth.max_token_lifetime_seconds",
                "must be at least 1".into(),
            ));
        }
        if let Some(typ) = &auth.required_typ
            && (typ.is_empty() || typ.len() > 64)
        {
            return Err(top(
                "gateway.auth.required_typ",
                "must be 1 to 64 characters".into(),
            ));
        }
        if let Some(sign_in) = &auth.approval_sign_in {
            check_approval_sign_in(sign_in).map_err(|(field, message)| top(field, message))?;
        }
    }
    let limits = &catalog.gateway.limits;
    if limits.max_json_depth == 0 || limits.max_json_depth > 512 {
        return Err(top(
            "gateway.limits.max_json_depth",
            "must be between 1 and 512".into(),
        ));
    }
    if limits.max_body_bytes < 1024 || limits.max_body_bytes > 64 * 1024 * 1024 {
        return Err(top(
            "gateway.limits.max_body_bytes",
            "must be between 1 KiB and 64 MiB".into(),
        ));
    }
    let mut seen = HashSet::new();
    for tool in &catalog.tools {
        let bad = |field: &str, message: String| CatalogError::Invalid {
            file: file.to_path_buf(),
            tool: tool.name.clone(),
            field: field.into(),
            message,
        };
        if !seen.insert(tool.name.as_str()) {
            return Err(bad("name", "declared twice".into()));
        }
        check_tool_definition(tool).map_err(|(field, message)| bad(field, message))?;
    }
    Ok(())
}

/// What a refused field of a tool says: the field and why.
type FieldProblem = (&'static str, String);

/// The first field of a tool's own definition that breaks a rule: its name, sizes and limits,
/// who may call it, its permissions, its backend's block.
fn check_tool_definition(tool: &Tool) -> Result<(), FieldProblem> {
    check_name_and_limits(tool)?;
    check_allow_and_tags(tool)?;
    check_permissions(tool)?;
    check_approval(tool)?;
    check_required_approvals(tool)?;
    check_unit(tool)
}

/// A permission that requires approval holds only for credentials that name an approver
/// (`aws:PrincipalTag/approver`), so the tool must ask for approval and tag its credentials
/// with the approver: without either, the statement could never be used.
fn check_required_approvals(tool: &Tool) -> Result<(), FieldProblem> {
    let Some((index, permission)) = tool
        .permissions
        .iter()
        .enumerate()
        .find(|(_, p)| p.require_approval)
    else {
        return Ok(());
    };
    let name = permission
        .sid
        .as_ref()
        .map_or_else(|| format!("#{}", index + 1), |sid| format!("{sid:?}"));
    if tool.approval.is_none() {
        return Err((
            "permissions",
            format!(
                "permission {name} has `require_approval: true`, but the tool has no `approval` \
                 section: no call would ever be approved, so the statement could never be used \
                 (add `approval: {{groups: [...]}}`, or drop `require_approval`)"
            ),
        ));
    }
    if !tool
        .session_tags
        .contains(&crate::catalog::SessionTag::Approver)
    {
        return Err((
            "permissions",
            format!(
                "permission {name} has `require_approval: true`, but `session_tags` does not list \
                 `approver`: the call's credentials would name no approver, so the statement \
                 could never be used (add `approver` to `session_tags`)"
            ),
        ));
    }
    Ok(())
}

/// An approval names who decides, expires in a sane time, and lets no caller approve its own
/// call of a tool that holds AWS permissions.
fn check_approval(tool: &Tool) -> Result<(), FieldProblem> {
    let Some(approval) = &tool.approval else {
        return Ok(());
    };
    if approval.groups.is_empty() || approval.groups.iter().any(|g| g.trim().is_empty()) {
        return Err((
            "approval.groups",
            "must name at least one group, none empty".into(),
        ));
    }
    if !(60..=86_400).contains(&approval.expires_seconds) {
        return Err((
            "approval.expires_seconds",
            "must be between 60 and 86400".into(),
        ));
    }
    if approval.approver_may_be_caller && !tool.permissions.is_empty() {
        return Err((
            "approval.approver_may_be_caller",
            "may not be true for a tool with AWS permissions: its caller must not approve its own call".into(),
        ));
    }
    Ok(())
}

/// The name, description, schemas, timeout, memory and ephemeral storage (for its backend).
fn check_name_and_limits(tool: &Tool) -> Result<(), FieldProblem> {
    let name_ok = !tool.name.is_empty()
        && tool.name.len() <= 48
        && tool.name.starts_with(|c: char| c.is_ascii_lowercase())
        && tool
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !name_ok {
        return Err((
            "name",
            "must be 1 to 48 characters of a-z, 0-9, '-' or '_', starting with a letter".into(),
        ));
    }
    if tool.description.trim().is_empty() {
        return Err(("description", "must not be empty".into()));
    }
    check_schema(&tool.input_schema).map_err(|m| ("input_schema", m))?;
    if let Some(out) = &tool.output_schema {
        check_schema(out).map_err(|m| ("output_schema", m))?;
    }
    if !(1..=900).contains(&tool.timeout_seconds) {
        return Err(("timeout_seconds", "must be between 1 and 900".into()));
    }
    if !(128..=10240).contains(&tool.memory_mb) {
        return Err(("memory_mb", "must be between 128 and 10240".into()));
    }
    let storage = match tool.backend {
        BackendKind::Local => 1..=10240,
        BackendKind::Lambda => 512..=10240,
        BackendKind::Fargate => 21504..=204_800,
    };
    if !storage.contains(&tool.ephemeral_storage_mb) {
        return Err((
            "ephemeral_storage_mb",
            format!(
                "must be between {} and {} for the {} backend",
                storage.start(),
                storage.end(),
                tool.backend.as_str()
            ),
        ));
    }
    Ok(())
}

/// Somebody may call the tool, and its session tags are listed once each.
fn check_allow_and_tags(tool: &Tool) -> Result<(), FieldProblem> {
    if tool.allow.groups.is_empty() && tool.allow.scopes.is_empty() {
        return Err((
            "allow",
            "names no group and no scope, so nobody could call the tool".into(),
        ));
    }
    if tool
        .allow
        .groups
        .iter()
        .chain(&tool.allow.scopes)
        .any(|g| g.trim().is_empty())
    {
        return Err(("allow", "an empty group or scope name".into()));
    }
    let mut tags = HashSet::new();
    if !tool.session_tags.iter().all(|t| tags.insert(*t)) {
        return Err(("session_tags", "a tag is listed twice".into()));
    }
    if tags.contains(&crate::catalog::SessionTag::Approver) && tool.approval.is_none() {
        return Err((
            "session_tags",
            "`approver` names who approved the call: only a tool with `approval` has one".into(),
        ));
    }
    Ok(())
}

/// Every permission has actions and resources, no action is a whole service, no resource
/// reaches any account unless the statement pins it, and sids are letters and digits.
fn check_permissions(tool: &Tool) -> Result<(), FieldProblem> {
    for p in &tool.permissions {
        if p.actions.is_empty() || p.resources.is_empty() {
            return Err((
                "permissions",
                "every statement needs actions and resources".into(),
            ));
        }
        if let Some(a) = p.actions.iter().find(|a| *a == "*" || a.ends_with(":*")) {
            return Err((
                "permissions",
                format!("action {a:?} is a wildcard over a whole service"),
            ));
        }
        let pins_account = p
            .condition
            .as_ref()
            .and_then(|c| c.get("StringEquals"))
            .is_some_and(|keys| keys.contains_key("aws:ResourceAccount"));
        if let Some(r) = p.resources.iter().find(|r| arn_names_any_account(r))
            && !pins_account
        {
            return Err((
                "permissions",
                format!(
                    "resource {r:?} names any account (a wildcard in its account field): name \
                     the account, or pin the statement to one with the condition \
                     {{StringEquals: {{aws:ResourceAccount: ...}}}} (\"${{aws:PrincipalAccount}}\" \
                     for the deployment's own)"
                ),
            ));
        }
        if let Some(sid) = &p.sid
            && !sid.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err((
                "permissions",
                format!("sid {sid:?} must be letters and digits"),
            ));
        }
    }
    Ok(())
}

/// The backend's block: present, and (local) a command, a bounded number of prepared sandboxes
/// that hold nothing of a call, plain read-only places; (fargate) a valid CPU, start window and an
/// image pinned by digest.
fn check_unit(tool: &Tool) -> Result<(), FieldProblem> {
    match tool.backend {
        BackendKind::Local => {
            let unit = tool
                .local
                .as_ref()
                .ok_or(("local", "the local backend needs a `local` block".into()))?;
            if unit.command.first().is_none_or(|c| c.is_empty()) {
                return Err(("local.command", "must name the executable".into()));
            }
            if unit.prepared > 16 {
                return Err(("local.prepared", "must be between 0 and 16".into()));
            }
            if unit.prepared > 0 && (!tool.permissions.is_empty() || unit.tenant_root.is_some()) {
                return Err((
                    "local.prepared",
                    "a prepared sandbox starts before its call, so it cannot hold the call's \
                     credentials (`permissions`) or its caller's folder (`local.tenant_root`)"
                        .into(),
                ));
            }
            for bind in &unit.read_only_paths {
                if bind.path().is_empty() {
                    return Err(("local.read_only_paths", "a path is empty".into()));
                }
                if let Some(at) = bind.at()
                    && let Err(why) = sandbox_place(at)
                {
                    return Err(("local.read_only_paths", format!("at {at:?} {why}")));
                }
            }
        }
        BackendKind::Lambda => {
            tool.lambda
                .as_ref()
                .ok_or(("lambda", "the lambda backend needs a `lambda` block".into()))?;
        }
        BackendKind::Fargate => {
            let unit = tool.fargate.as_ref().ok_or((
                "fargate",
                "the fargate backend needs a `fargate` block".into(),
            ))?;
            if ![256, 512, 1024, 2048, 4096].contains(&unit.cpu) {
                return Err(("fargate.cpu", "must be 256, 512, 1024, 2048 or 4096".into()));
            }
            if !(1..=900).contains(&unit.start_timeout_seconds) {
                return Err((
                    "fargate.start_timeout_seconds",
                    "must be between 1 and 900".into(),
                ));
            }
            if !pinned_by_digest(&unit.image) {
                return Err((
                    "fargate.image",
                    format!(
                        "{:?} is not pinned by digest: name the image as <repository>@sha256:<64 hex \
                         digits> (scripts/build-image prints the digest); a tag such as :latest can \
                         be moved to other code after review",
                        unit.image
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `<repository>@sha256:<64 lowercase hex digits>`: the one image reference that cannot come to
/// mean other bytes.
/// Whether `at` may receive a read-only bind in a sandbox: absolute, plain, and clear of what
/// the sandbox itself mounts (`/proc`, `/dev`, the scratch `/tmp`, `/run/switchboard`) and of
/// the system folders the sandbox shares with the host.
fn sandbox_place(at: &str) -> Result<(), &'static str> {
    use std::path::{Component, Path};
    let path = Path::new(at);
    if !path.is_absolute() {
        return Err("must be an absolute path");
    }
    if path
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
        || at.contains("//")
    {
        return Err("must not contain `.`, `..` or empty parts");
    }
    let reserved = [
        "/proc",
        "/dev",
        "/tmp",
        "/run/switchboard",
        "/usr",
        "/lib",
        "/lib64",
        "/lib32",
        "/bin",
        "/sbin",
        "/etc",
    ];
    if path == Path::new("/") || reserved.iter().any(|r| path.starts_with(r)) {
        return Err(
            "must not be `/` or under /proc, /dev, /tmp, /run/switchboard or the system folders \
             (/usr, /lib*, /bin, /sbin, /etc)",
        );
    }
    Ok(())
}

fn pinned_by_digest(image: &str) -> bool {
    image.split_once("@sha256:").is_some_and(|(repo, hex)| {
        !repo.is_empty()
            && hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// An input schema must be an object schema that compiles and refers to nothing remote.
fn check_schema(schema: &serde_json::Value) -> Result<(), String> {
    if schema.get("type").and_then(|t| t.as_str()) != Some("object") {
        return Err("must be a JSON Schema with \"type\": \"object\"".into());
    }
    if let Some(r) = find_remote_ref(schema) {
        return Err(format!(
            "$ref {r:?} is not local: only \"#...\" references are allowed"
        ));
    }
    crate::validate::compile(schema)
        .map(|_| ())
        .map_err(|e| format!("does not compile: {e}"))
}

fn find_remote_ref(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map {
                if (k == "$ref" || k == "$dynamicRef" || k == "$recursiveRef")
                    && let Some(s) = val.as_str()
                    && !s.starts_with('#')
                {
                    return Some(s.to_owned());
                }
                if let Some(found) = find_remote_ref(val) {
                    return Some(found);
                }
            }
            None
        }
        serde_json::Value::Array(items) => items.iter().find_map(find_remote_ref),
        _ => None,
    }
}

/// Whether an ARN's account field (the fifth) holds a wildcard: `arn:aws:sqs:*:*:queue` would
/// reach every account's resources that let it in, unless its statement pins
/// `aws:ResourceAccount`. An empty account (S3 buckets) is fine.
fn arn_names_any_account(resource: &str) -> bool {
    let mut fields = resource.splitn(6, ':');
    if fields.next() != Some("arn") {
        return false;
    }
    fields
        .nth(3)
        .is_some_and(|account| !account.starts_with("${") && account.contains(['*', '?']))
}

/// `gateway.auth.approval_sign_in`: a client id the authorization server can have issued, an
/// environment variable name, scopes that are single scope tokens (RFC 6749 3.3).
fn check_approval_sign_in(
    sign_in: &crate::catalog::ApprovalSignIn,
) -> Result<(), (&'static str, String)> {
    let printable = |s: &str| {
        !s.is_empty()
            && s.len() <= 255
            && s.chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    };
    if !printable(&sign_in.client_id) {
        return Err((
            "gateway.auth.approval_sign_in.client_id",
            "must be 1 to 255 printable ASCII characters, without spaces, quotes or backslashes"
                .into(),
        ));
    }
    if let Some(name) = &sign_in.client_secret_env {
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err((
                "gateway.auth.approval_sign_in.client_secret_env",
                format!("{name:?} is not an environment variable name (letters, digits, _)"),
            ));
        }
    }
    if let Some(bad) = sign_in.scopes.iter().find(|s| !printable(s)) {
        return Err((
            "gateway.auth.approval_sign_in.scopes",
            format!("{bad:?} is not one scope (printable ASCII, no spaces)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const GOOD: &str = r#"
version: 1
tools:
  - name: echo
    description: Echo.
    input_schema: {type: object, properties: {message: {type: string}}, required: [message]}
    backend: local
    local: {command: [/bin/cat]}
    allow: {groups: [dev]}
"#;

    fn err(text: &str) -> String {
        parse(Path::new("c.yaml"), text)
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn good_catalog_loads() {
        let c = parse(Path::new("c.yaml"), GOOD).expect("valid");
        assert_eq!(c.tools[0].name, "echo");
        assert_eq!(c.tools[0].timeout_seconds, 30);
    }

    #[test]
    fn prepared_sandboxes_are_refused_where_they_would_need_the_call() {
        let prepared = |extra: &str| {
            GOOD.replace(
                "local: {command: [/bin/cat]}",
                &format!("local: {{command: [/bin/cat], prepared: 2{extra}}}"),
            )
        };
        let ok = parse(Path::new("c.yaml"), &prepared("")).expect("valid");
        assert_eq!(ok.tools[0].local.as_ref().map(|l| l.prepared), Some(2));
        let e = err(&prepared(", tenant_root: tenants"));
        assert!(
            e.contains("local.prepared") && e.contains("tenant_root"),
            "{e}"
        );
        let e = err(&prepared("").replace(
            "allow: {groups: [dev]}",
            "allow: {groups: [dev]}\n    permissions: [{actions: [s3:GetObject], resources: [\"*\"]}]",
        ));
        assert!(
            e.contains("local.prepared") && e.contains("permissions"),
            "{e}"
        );
        let e = err(&GOOD.replace(
            "local: {command: [/bin/cat]}",
            "local: {command: [/bin/cat], prepared: 17}",
        ));
        assert!(e.contains("between 0 and 16"), "{e}");
    }

    #[test]
    fn the_jwks_cache_window_defaults_to_five_minutes_and_is_bounded() {
        let with = |extra: &str| {
            format!(
                "gateway:\n  auth: {{issuer: https://i, jwks: {{url: https://i/jwks}}{extra}}}\n{}",
                GOOD.trim_start()
            )
        };
        let c = parse(Path::new("c.yaml"), &with("")).expect("valid");
        let auth = c.gateway.auth.expect("auth");
        assert_eq!(auth.jwks_cache_seconds, 300);
        let c = parse(Path::new("c.yaml"), &with(", jwks_cache_seconds: 3")).expect("valid");
        assert_eq!(c.gateway.auth.expect("auth").jwks_cache_seconds, 3);
        for bad in ["0", "3601"] {
            let e = err(&with(&format!(", jwks_cache_seconds: {bad}")));
            assert!(
                e.contains("gateway.auth.jwks_cache_seconds") && e.contains("between 1 and 3600"),
                "{e}"
            );
        }
    }

    #[test]
    fn an_approval_names_its_approvers_and_a_sane_expiry() {
        let with = |approval: &str| {
            GOOD.replace(
                "allow: {groups: [dev]}",
                &format!("allow: {{groups: [dev]}}\n    approval: {approval}"),
            )
        };
        let c = parse(Path::new("c.yaml"), &with("{groups: [approvers]}")).expect("valid");
        let approval = c.tools[0].approval.as_ref().expect("approval");
        assert_eq!(approval.expires_seconds, 900);
        assert!(!approval.approver_may_be_caller);
        let e = err(&with("{groups: []}"));
        assert!(e.contains("approval.groups"), "{e}");
        let e = err(&with("{groups: [\"\"]}"));
        assert!(e.contains("approval.groups"), "{e}");
        let e = err(&with("{groups: [a], expires_seconds: 59}"));
        assert!(e.contains("approval.expires_seconds"), "{e}");
        let e = err(&with("{groups: [a], expires_seconds: 86401}"));
        assert!(e.contains("approval.expires_seconds"), "{e}");
        let e = err(&with("{groups: [a], whoever: true}"));
        assert!(e.contains("whoever"), "{e}");
    }

    #[test]
    fn only_a_tool_with_approval_may_tag_its_approver() {
        let tagged = GOOD.replace(
            "allow: {groups: [dev]}",
            "allow: {groups: [dev]}\n    session_tags: [tool, approver]",
        );
        let e = err(&tagged);
        assert!(e.contains("session_tags") && e.contains("approver"), "{e}");
        let approved = tagged.replace(
            "session_tags: [tool, approver]",
            "session_tags: [tool, approver]\n    approval: {groups: [a]}",
        );
        parse(Path::new("c.yaml"), &approved).expect("a tool with approval may");
    }

    /// GOOD with `extra` after its `allow` line and a permission that requires approval.
    fn requiring_approval(extra: &str) -> String {
        GOOD.replace(
            "allow: {groups: [dev]}",
            &format!(
                "allow: {{groups: [dev]}}\n    {extra}\n    permissions:\n      \
                 - {{sid: Read, actions: [s3:GetObject], resources: [\"arn:aws:s3:::b/*\"]}}\n      \
                 - {{sid: Publish, actions: [s3:PutObject], resources: [\"arn:aws:s3:::b/*\"], \
                 require_approval: true}}"
            ),
        )
    }

    #[test]
    fn a_permission_may_require_approval_of_a_tool_that_asks_for_it_and_tags_the_approver() {
        let c = parse(
            Path::new("c.yaml"),
            &requiring_approval(
                "approval: {groups: [a]}\n    session_tags: [tool, tenant, approver]",
            ),
        )
        .expect("valid");
        let required: Vec<bool> = c.tools[0]
            .permissions
            .iter()
            .map(|p| p.require_approval)
            .collect();
        assert_eq!(required, [false, true], "false by default");
        // And it is written back only where it is set.
        let written = serde_json::to_value(&c.tools[0].permissions).expect("serializes");
        assert_eq!(written[0].get("require_approval"), None);
        assert_eq!(written[1]["require_approval"], true);
    }

    #[test]
    fn a_permission_that_requires_approval_is_refused_for_a_tool_without_approval() {
        let e = err(&requiring_approval("session_tags: [tool, tenant]"));
        assert!(
            e.contains("tool \"echo\": field \"permissions\"")
                && e.contains("permission \"Publish\"")
                && e.contains("no `approval` section"),
            "{e}"
        );
    }

    #[test]
    fn a_permission_that_requires_approval_is_refused_when_the_approver_is_not_tagged() {
        for tags in ["session_tags: [tool, tenant]", "# the default tags"] {
            let e = err(&requiring_approval(&format!(
                "approval: {{groups: [a]}}\n    {tags}"
            )));
            assert!(
                e.contains("tool \"echo\": field \"permissions\"")
                    && e.contains("permission \"Publish\"")
                    && e.contains("does not list `approver`"),
                "{tags}: {e}"
            );
        }
        // A permission without a sid is named by its place.
        let e = err(&GOOD.replace(
            "allow: {groups: [dev]}",
            "allow: {groups: [dev]}\n    approval: {groups: [a]}\n    permissions: \
             [{actions: [s3:PutObject], resources: [\"*\"], require_approval: true}]",
        ));
        assert!(e.contains("permission #1"), "{e}");
    }

    #[test]
    fn a_caller_may_not_approve_its_own_call_of_a_tool_with_aws_permissions() {
        let self_approved = "approval: {groups: [a], approver_may_be_caller: true}";
        let ok = GOOD.replace(
            "allow: {groups: [dev]}",
            &format!("allow: {{groups: [dev]}}\n    {self_approved}"),
        );
        parse(Path::new("c.yaml"), &ok).expect("no AWS permissions: allowed");
        let e = err(&GOOD.replace(
            "allow: {groups: [dev]}",
            &format!(
                "allow: {{groups: [dev]}}\n    {self_approved}\n    permissions: [{{actions: [s3:GetObject], resources: [\"arn:aws:s3:::b/*\"]}}]"
            ),
        ));
        assert!(e.contains("approval.approver_may_be_caller"), "{e}");
    }

    #[test]
    fn unknown_field_names_file_tool_and_field() {
        let e = err(&GOOD.replace("backend: local", "backend: local\n    timeout: 5"));
        assert!(e.starts_with("c.yaml: tool \"echo\""), "{e}");
        assert!(e.contains("timeout"), "{e}");
    }

    #[test]
    fn bad_value_names_the_field() {
        let e = err(&GOOD.replace(
            "backend: local",
            "backend: local\n    timeout_seconds: 9000",
        ));
        assert!(
            e.contains("tool \"echo\": field \"timeout_seconds\""),
            "{e}"
        );
    }

    #[test]
    fn remote_ref_is_refused() {
        let e = err(&GOOD.replace(
            "{message: {type: string}}",
            "{message: {$ref: \"https://evil.example/s.json\"}}",
        ));
        assert!(
            e.contains("field \"input_schema\"") && e.contains("not local"),
            "{e}"
        );
    }

    #[test]
    fn a_read_only_path_bound_elsewhere_must_name_a_plain_place_of_its_own() {
        let with = |bind: &str| {
            GOOD.replace(
                "local: {command: [/bin/cat]}",
                &format!("local: {{command: [/bin/cat], read_only_paths: [{bind}]}}"),
            )
        };
        let ok = parse(
            Path::new("c.yaml"),
            &with("/opt/x, {path: kit/tf, at: /opt/switchboard/terraform/terraform}"),
        )
        .expect("valid");
        let unit = ok.tools[0].local.as_ref().expect("local");
        assert_eq!(unit.read_only_paths[0].at(), None);
        assert_eq!(
            unit.read_only_paths[1].at(),
            Some("/opt/switchboard/terraform/terraform")
        );
        for (at, why) in [
            ("relative/place", "absolute"),
            ("/opt/../etc/shadow", "`..`"),
            ("/", "must not be `/`"),
            ("/tmp/x", "/tmp"),
            ("/run/switchboard/endpoints.sock", "/run/switchboard"),
            ("/usr/bin/sh", "system folders"),
            ("/proc/1", "/proc"),
        ] {
            let e = err(&with(&format!("{{path: kit/tf, at: \"{at}\"}}")));
            assert!(
                e.contains("local.read_only_paths") && e.contains(why),
                "{at}: {e}"
            );
        }
        let e = err(&with("{path: kit/tf, at: /opt/a, mode: rw}"));
        assert!(e.contains("read_only_paths"), "{e}");
    }

    fn fargate_with(image: &str) -> String {
        GOOD.replace("backend: local", "backend: fargate").replace(
            "local: {command: [/bin/cat]}",
            &format!(
                "fargate: {{image: \"{image}\"}}\n    memory_mb: 512\n    ephemeral_storage_mb: 21504"
            ),
        )
    }

    #[test]
    fn a_fargate_start_window_defaults_to_two_minutes_within_the_timeout() {
        let digest = "0123456789abcdef".repeat(4);
        let image = format!("switchboard-tools@sha256:{digest}");
        let unit = |doc: &str| {
            let c = parse(Path::new("c.yaml"), doc).expect("a valid catalog");
            let tool = c.tools[0].clone();
            let unit = tool.fargate.expect("a fargate block");
            (
                unit.start_timeout_seconds,
                unit.start_window(tool.timeout_seconds),
            )
        };
        // timeout_seconds is 30 in GOOD: the default of 120 s is clamped to it.
        assert_eq!(unit(&fargate_with(&image)), (120, Duration::from_secs(30)));
        let short = fargate_with(&image).replace(
            &format!("image: \"{image}\"}}"),
            &format!("image: \"{image}\", start_timeout_seconds: 5}}"),
        );
        assert_eq!(unit(&short), (5, Duration::from_secs(5)));
        for bad in ["0", "901"] {
            let doc = fargate_with(&image).replace(
                &format!("image: \"{image}\"}}"),
                &format!("image: \"{image}\", start_timeout_seconds: {bad}}}"),
            );
            let e = err(&doc);
            assert!(
                e.contains("field \"fargate.start_timeout_seconds\"")
                    && e.contains("between 1 and 900"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_fargate_image_must_be_pinned_by_digest() {
        let digest = "0123456789abcdef".repeat(4);
        parse(
            Path::new("c.yaml"),
            &fargate_with(&format!("switchboard-tools@sha256:{digest}")),
        )
        .expect("a digest is accepted");
        for image in [
            "switchboard-tools:latest".to_owned(),
            "switchboard-tools".to_owned(),
            format!("switchboard-tools@sha256:{}", &digest[..63]),
            format!("switchboard-tools@sha256:{}", digest.to_uppercase()),
            format!("@sha256:{digest}"),
        ] {
            let e = err(&fargate_with(&image));
            assert!(
                e.contains("field \"fargate.image\"") && e.contains("not pinned by digest"),
                "{image}: {e}"
            );
        }
    }

    #[test]
    fn nobody_allowed_is_refused() {
        let e = err(&GOOD.replace("allow: {groups: [dev]}", "allow: {}"));
        assert!(e.contains("field \"allow\""), "{e}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let tool = GOOD.split_once("tools:\n").expect("has tools").1;
        let e = err(&format!("{GOOD}{tool}"));
        assert!(e.contains("declared twice"), "{e}");
    }

    #[test]
    fn wildcard_action_is_refused() {
        let e = err(&GOOD.replace(
            "allow: {groups: [dev]}",
            "allow: {groups: [dev]}\n    permissions: [{actions: [\"s3:*\"], resources: [\"*\"]}]",
        ));
        assert!(e.contains("field \"permissions\""), "{e}");
    }

    #[test]
    fn an_arn_with_any_account_is_refused_unless_its_statement_pins_the_account() {
        let with = |resource: &str, condition: &str| {
            GOOD.replace(
                "allow: {groups: [dev]}",
                &format!(
                    "allow: {{groups: [dev]}}\n    permissions: [{{actions: [sqs:SendMessage], \
                     resources: [\"{resource}\"]{condition}}}]"
                ),
            )
        };
        for any in [
            "arn:aws:sqs:*:*:jobs",
            "arn:aws:sqs:eu-west-1:12345678901?:jobs",
        ] {
            let e = err(&with(any, ""));
            assert!(e.contains("names any account") && e.contains(any), "{e}");
        }
        let pinned =
            ", condition: {StringEquals: {\"aws:ResourceAccount\": \"${aws:PrincipalAccount}\"}}";
        parse(Path::new("c.yaml"), &with("arn:aws:sqs:*:*:jobs", pinned)).expect("pinned");
        for fine in [
            "arn:aws:sqs:eu-west-1:123456789012:jobs",
            "arn:aws:s3:::bucket/*",
            "*",
        ] {
            parse(Path::new("c.yaml"), &with(fine, "")).expect(fine);
        }
    }

    #[test]
    fn yaml_syntax_error_names_the_line() {
        let e = err("version: 1\ntools: [\n");
        assert!(e.starts_with("c.yaml: line"), "{e}");
    }
}
