//! The summary of a saved plan (`terraform show -json`): counts by action and resource type,
//! and flags for the changes a reviewer must see.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// What a plan would do: counts by action and resource type, and the changes a reviewer must see.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    /// By resource type: creates, updates, deletes, replacements.
    pub by_type: BTreeMap<String, Counts>,
    pub flags: Vec<Flag>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub create: u32,
    pub update: u32,
    pub delete: u32,
    pub replace: u32,
}

/// One change a reviewer must see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// `delete`, `replace`, `iam`, `security_group` or `public`.
    pub kind: &'static str,
    pub address: String,
    pub reason: String,
}

impl Summary {
    pub(super) fn totals(&self) -> Counts {
        self.by_type
            .values()
            .fold(Counts::default(), |t, c| Counts {
                create: t.create + c.create,
                update: t.update + c.update,
                delete: t.delete + c.delete,
                replace: t.replace + c.replace,
            })
    }

    pub(super) fn to_json(&self) -> Value {
        let counts = |c: &Counts| json!({"create": c.create, "update": c.update, "delete": c.delete, "replace": c.replace});
        let by_type: Map<String, Value> = self
            .by_type
            .iter()
            .map(|(t, c)| (t.clone(), counts(c)))
            .collect();
        json!({
            "changes": counts(&self.totals()),
            "byType": by_type,
            "flags": self.flags.iter().map(|f| json!({
                "kind": f.kind, "address": f.address, "reason": f.reason,
            })).collect::<Vec<_>>(),
        })
    }

    pub(super) fn line(&self, project: &str) -> String {
        let t = self.totals();
        let mut line = format!(
            "plan of {project}: {} to create, {} to update, {} to delete, {} to replace",
            t.create, t.update, t.delete, t.replace
        );
        if self.flags.is_empty() {
            line.push_str("; nothing flagged");
        } else {
            line.push_str(&format!("; {} flagged:", self.flags.len()));
            for f in &self.flags {
                line.push_str(&format!("\n- [{}] {}: {}", f.kind, f.address, f.reason));
            }
        }
        line
    }
}

/// Summarises the JSON of `terraform show -json <plan>`.
pub fn summarize(plan: &Value) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let changes = match plan.get("resource_changes") {
        None | Some(Value::Null) => return Ok(summary),
        Some(Value::Array(changes)) => changes,
        Some(_) => return Err("resource_changes is not a list".into()),
    };
    for rc in changes {
        if rc.get("mode").and_then(Value::as_str) != Some("managed") {
            continue;
        }
        let address = rc
            .get("address")
            .and_then(Value::as_str)
            .ok_or("a resource change has no address")?
            .to_owned();
        let kind = rc
            .get("type")
            .and_then(Value::as_str)
            .ok_or("a resource change has no type")?
            .to_owned();
        let change = rc.get("change").ok_or("a resource change has no change")?;
        let actions: Vec<&str> = change
            .get("actions")
            .and_then(Value::as_array)
            .ok_or("a resource change has no actions")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let action = match actions.as_slice() {
            ["create"] => "create",
            ["update"] => "update",
            ["delete"] => "delete",
            ["delete", "create"] | ["create", "delete"] => "replace",
            _ => continue, // no-op, read, forget
        };
        let counts = summary.by_type.entry(kind.clone()).or_default();
        match action {
            "create" => counts.create += 1,
            "update" => counts.update += 1,
            "delete" => counts.delete += 1,
            _ => counts.replace += 1,
        }
        let mut flag = |kind: &'static str, reason: String| {
            summary.flags.push(Flag {
                kind,
                address: address.clone(),
                reason,
            });
        };
        match action {
            "delete" => flag("delete", "is destroyed".into()),
            "replace" => flag("replace", replace_reason(change, rc)),
            _ => {}
        }
        if kind.starts_with("aws_iam_") {
            flag("iam", format!("IAM: {kind} is {}", past(action)));
        }
        if SECURITY_GROUP_TYPES.contains(&kind.as_str()) {
            flag(
                "security_group",
                format!("network rule: {kind} is {}", past(action)),
            );
        }
        if action != "delete"
            && let Some(why) = public_exposure(&kind, change.get("after").unwrap_or(&Value::Null))
        {
            flag("public", why);
        }
    }
    Ok(summary)
}

const SECURITY_GROUP_TYPES: &[&str] = &[
    "aws_security_group",
    "aws_default_security_group",
    "aws_security_group_rule",
    "aws_vpc_security_group_ingress_rule",
    "aws_vpc_security_group_egress_rule",
    "aws_network_acl",
    "aws_network_acl_rule",
    "aws_default_network_acl",
];

fn past(action: &str) -> &'static str {
    match action {
        "create" => "created",
        "update" => "updated",
        "delete" => "destroyed",
        _ => "replaced",
    }
}

fn replace_reason(change: &Value, rc: &Value) -> String {
    let paths: Vec<String> = change
        .get("replace_paths")
        .and_then(Value::as_array)
        .map(|paths| {
            paths
                .iter()
                .filter_map(|p| p.as_array())
                .map(|p| {
                    p.iter()
                        .map(|s| match s {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(".")
                })
                .collect()
        })
        .unwrap_or_default();
    match (
        paths.is_empty(),
        rc.get("action_reason").and_then(Value::as_str),
    ) {
        (false, _) => format!(
            "is destroyed and created again (a change to {})",
            paths.join(", ")
        ),
        (true, Some(reason)) => format!("is destroyed and created again ({reason})"),
        (true, None) => "is destroyed and created again".into(),
    }
}

const OPEN: &[&str] = &["0.0.0.0/0", "::/0"];

/// Why the planned values of a resource expose something to the internet, if they do.
fn public_exposure(kind: &str, after: &Value) -> Option<String> {
    let s = |key: &str| after.get(key).and_then(Value::as_str);
    let b = |key: &str| after.get(key).and_then(Value::as_bool);
    let open_in = |v: &Value| -> Option<&'static str> {
        let list = |key: &str| {
            v.get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .find_map(|c| OPEN.iter().find(|o| **o == c).copied())
        };
        list("cidr_blocks").or_else(|| list("ipv6_cidr_blocks"))
    };
    match kind {
        "aws_security_group" | "aws_default_security_group" => after
            .get("ingress")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find_map(|rule| {
                open_in(rule).map(|cidr| {
                    format!(
                        "ingress from {cidr} on ports {}-{}",
                        rule.get("from_port").unwrap_or(&Value::Null),
                        rule.get("to_port").unwrap_or(&Value::Null)
                    )
                })
            }),
        "aws_security_group_rule" if s("type") == Some("ingress") => open_in(after).map(|cidr| {
            format!(
                "ingress from {cidr} on ports {}-{}",
                after.get("from_port").unwrap_or(&Value::Null),
                after.get("to_port").unwrap_or(&Value::Null)
            )
        }),
        "aws_vpc_security_group_ingress_rule" => s("cidr_ipv4")
            .or_else(|| s("cidr_ipv6"))
            .filter(|c| OPEN.contains(c))
            .map(|cidr| format!("ingress from {cidr}")),
        "aws_s3_bucket_public_access_block" => {
            let off: Vec<&str> = [
                "block_public_acls",
                "block_public_policy",
                "ignore_public_acls",
                "restrict_public_buckets",
            ]
            .into_iter()
            .filter(|k| b(k) == Some(false))
            .collect();
            (!off.is_empty()).then(|| format!("public access not blocked: {}", off.join(", ")))
        }
        "aws_s3_bucket_acl" => s("acl")
            .filter(|acl| matches!(*acl, "public-read" | "public-read-write"))
            .map(|acl| format!("bucket ACL {acl}")),
        "aws_db_instance" | "aws_rds_cluster_instance" | "aws_redshift_cluster"
            if b("publicly_accessible") == Some(true) =>
        {
            Some("publicly_accessible is true".into())
        }
        "aws_instance" | "aws_launch_template"
            if b("associate_public_ip_address") == Some(true) =>
        {
            Some("gets a public IP address".into())
        }
        "aws_lb" | "aws_alb" if b("internal") == Some(false) => {
            Some("an internet-facing load balancer".into())
        }
        "aws_lambda_function_url" if s("authorization_type") == Some("NONE") => {
            Some("a function URL without authorization".into())
        }
        _ => s("policy").and_then(public_policy),
    }
}

/// A resource policy (JSON) that allows everyone (`"Principal": "*"` or `{"AWS": "*"}`) without
/// a condition.
fn public_policy(policy: &str) -> Option<String> {
    let doc: Value = serde_json::from_str(policy).ok()?;
    let statements = match doc.get("Statement")? {
        Value::Array(list) => list.clone(),
        one => vec![one.clone()],
    };
    statements.iter().find_map(|st| {
        let allow = st.get("Effect").and_then(Value::as_str) == Some("Allow");
        let everyone = match st.get("Principal") {
            Some(Value::String(p)) => p == "*",
            Some(Value::Object(p)) => p.get("AWS").is_some_and(|a| {
                a == "*" || a.as_array().is_some_and(|l| l.iter().any(|x| x == "*"))
            }),
            _ => false,
        };
        (allow && everyone && st.get("Condition").is_none())
            .then(|| "a resource policy allows everyone (Principal \"*\", no condition)".into())
    })
}
