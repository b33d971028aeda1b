//! `secret_lookup`: says whether a named secret exists for the caller's tenant in AWS Secrets
//! Manager, for deployment-readiness checks, and what is known of it: its ARN, when it last
//! changed and rotated, whether rotation is on, and its version stages. **Never its value**: the
//! tool calls `DescribeSecret` only, which does not return one, and its work role may do nothing
//! else (`secretsmanager:DescribeSecret` on `secret:switchboard/${aws:PrincipalTag/tenant}/*`).
//!
//! The one argument, `name`, is the secret's name under the tenant's prefix: `db/password` looks
//! up `switchboard/<tenant>/db/password`, the tenant being the `tenant` session tag of this call's
//! credentials (what the gateway verified in the caller's token; the same tag IAM checks). A
//! secret that does not exist, that is scheduled for deletion, or that IAM does not let this call
//! describe all answer `"exists": false`, so a caller learns nothing of other tenants' secrets.

use serde_json::{Value, json};

use crate::contract::{Invocation, ToolOutput};

/// The prefix of every tenant's secrets.
pub const PREFIX: &str = "switchboard";
/// The longest `name` accepted (Secrets Manager names are at most 512 characters).
pub const MAX_NAME_CHARS: usize = 256;

/// Why a lookup could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("argument \"name\" must be a string")]
    NoName,
    #[error("secret name {0:?}: {1}")]
    BadName(String, String),
    #[error(
        "this call's credentials carry no tenant session tag: the tool looks up secrets of the \
         caller's tenant only (the catalog's session_tags must include tenant, and the caller's \
         token must name one)"
    )]
    NoTenant,
    #[error("cannot call Secrets Manager: {0}")]
    Setup(#[from] crate::aws::UnitAwsError),
    #[error("Secrets Manager DescribeSecret failed: {0}")]
    Describe(String),
}

/// Looks up the secret named by the `name` argument for this call's tenant.
pub fn secret_lookup(invocation: &Invocation) -> Result<ToolOutput, SecretError> {
    let name = invocation
        .arguments
        .get("name")
        .and_then(Value::as_str)
        .ok_or(SecretError::NoName)?;
    check_name(name)?;
    // Credentials first: without a work-role binding there are neither credentials nor session
    // tags, and "no credentials" is what to mend.
    let aws = crate::aws::UnitAws::for_call(invocation)?;
    let tenant = invocation
        .session_tags
        .get("tenant")
        .filter(|t| !t.is_empty())
        .ok_or(SecretError::NoTenant)?;
    let id = format!("{PREFIX}/{tenant}/{name}");
    let client = aws.secrets_manager()?;
    let described = describe(client, id.clone())?;
    let structured = match described {
        None => json!({"name": name, "tenant": tenant, "secretId": id, "exists": false}),
        Some(d) => json!({
            "name": name, "tenant": tenant, "secretId": id, "exists": true,
            "arn": d.arn, "lastChangedDate": d.last_changed, "lastRotatedDate": d.last_rotated,
            "rotationEnabled": d.rotation_enabled, "versionStages": d.version_stages,
        }),
    };
    let text = if structured["exists"] == json!(true) {
        format!(
            "secret {name:?} exists for tenant {tenant}: {}; last changed {}, last rotated {}",
            structured["arn"].as_str().unwrap_or("?"),
            structured["lastChangedDate"].as_str().unwrap_or("never"),
            structured["lastRotatedDate"].as_str().unwrap_or("never"),
        )
    } else {
        format!("secret {name:?} not found for tenant {tenant}")
    };
    let mut output = ToolOutput::structured(structured);
    output.content = vec![crate::ContentItem::text(text)];
    Ok(output)
}

/// A secret name: 1 to 256 of `A-Z a-z 0-9 / _ + = . @ -`, no empty, `.` or `..` segment, not
/// starting with `/` (it is a path under the tenant's prefix).
fn check_name(name: &str) -> Result<(), SecretError> {
    let bad = |why: &str| Err(SecretError::BadName(shorten(name), why.to_owned()));
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return bad(&format!("it is longer than {MAX_NAME_CHARS} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
    {
        return bad(&format!(
            "it contains {c:?} (allowed: letters, digits and / _ + = . @ -)"
        ));
    }
    if name
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return bad("it has an empty, `.` or `..` segment");
    }
    Ok(())
}

fn shorten(name: &str) -> String {
    name.chars().take(64).collect()
}

/// What `DescribeSecret` said, in the answer's terms.
struct Described {
    arn: Option<String>,
    last_changed: Option<String>,
    last_rotated: Option<String>,
    rotation_enabled: bool,
    version_stages: serde_json::Map<String, Value>,
}

/// `DescribeSecret` of `id`; `None` when it does not exist for this call (not found, deleted or
/// scheduled for deletion, or access denied).
fn describe(
    client: aws_sdk_secretsmanager::Client,
    id: String,
) -> Result<Option<Described>, SecretError> {
    use aws_sdk_secretsmanager::error::ProvideErrorMetadata as _;
    let answer = crate::aws::block_on(async move {
        match client.describe_secret().secret_id(id).send().await {
            Ok(out) => Ok(Some(out)),
            Err(e) => match e.code() {
                Some("ResourceNotFoundException" | "AccessDeniedException") => Ok(None),
                _ => Err(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string()),
            },
        }
    })
    .map_err(SecretError::Describe)?;
    let Some(out) = answer else {
        return Ok(None);
    };
    if out.deleted_date().is_some() {
        return Ok(None);
    }
    let date = |d: Option<&aws_sdk_secretsmanager::primitives::DateTime>| {
        d.and_then(|d| {
            d.fmt(aws_sdk_secretsmanager::primitives::DateTimeFormat::DateTime)
                .ok()
        })
    };
    let mut version_stages = serde_json::Map::new();
    if let Some(versions) = out.version_ids_to_stages() {
        let mut ids: Vec<_> = versions.iter().collect();
        ids.sort();
        for (version, stages) in ids {
            version_stages.insert(version.clone(), json!(stages));
        }
    }
    Ok(Some(Described {
        arn: out.arn().map(str::to_owned),
        last_changed: date(out.last_changed_date()),
        last_rotated: date(out.last_rotated_date()),
        rotation_enabled: out.rotation_enabled().unwrap_or(false),
        version_stages,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(arguments: Value, tags: Value) -> Invocation {
        serde_json::from_value(json!({
            "invocationId": "i", "tool": "secret_lookup", "arguments": arguments,
            "deadlineUnixMs": 0, "sessionTags": tags,
        }))
        .expect("valid invocation")
    }

    #[test]
    fn names_are_paths_under_the_tenant_prefix() {
        for ok in ["db", "db/password", "api-key.v2", "a_b+c=d@e"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("/etc", "segment"),
            ("../globex/db", "segment"),
            ("a//b", "segment"),
            ("a/./b", "segment"),
            ("db password", "' '"),
            ("db*", "'*'"),
        ] {
            let e = check_name(bad).expect_err(bad);
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        assert!(check_name(&"a".repeat(MAX_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn without_a_tenant_tag_or_credentials_it_says_why() {
        let mut credentialed = invocation(json!({"name": "db"}), json!({"tool": "t"}));
        credentialed.credentials = Some(
            serde_json::from_value(json!({
                "accessKeyId": "ASIAEXAMPLE", "secretAccessKey": "s", "sessionToken": "t",
                "expiration": "2030-01-01T00:00:00Z",
            }))
            .expect("credentials"),
        );
        let e = secret_lookup(&credentialed).expect_err("no tenant");
        assert!(matches!(e, SecretError::NoTenant), "{e}");
        // Neither credentials nor tags (a tool with no work-role binding): credentials are named.
        let e = secret_lookup(&invocation(json!({"name": "db"}), json!({})))
            .expect_err("no credentials");
        assert!(e.to_string().contains("no AWS credentials"), "{e}");
        let e = secret_lookup(&invocation(
            json!({"name": "db"}),
            json!({"tenant": "acme"}),
        ))
        .expect_err("no credentials");
        assert!(e.to_string().contains("no AWS credentials"), "{e}");
        let e =
            secret_lookup(&invocation(json!({}), json!({"tenant": "acme"}))).expect_err("no name");
        assert!(matches!(e, SecretError::NoName), "{e}");
    }
}
