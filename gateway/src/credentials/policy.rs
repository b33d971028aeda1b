//! The inline session policy of a call: the tool's `permissions` as IAM statements, each one
//! valid only until the call's deadline.
//!
//! ```text
//! {"Version":"2012-10-17","Statement":[{"Sid":"Read","Effect":"Allow","Action":["s3:GetObject"],
//!   "Resource":["arn:aws:s3:::b/${aws:PrincipalTag/tenant}/*"],
//!   "Condition":{"DateLessThan":{"aws:CurrentTime":"2026-12-01T10:00:05Z"}}}]}
//! ```
//!
//! (one line, no white space, on the wire). Policy variables such as
//! `${aws:PrincipalTag/tenant}` are left for IAM to fill from the session tags. A permission's own
//! `Condition` is kept; when it already limits `aws:CurrentTime` under `DateLessThan`, the earlier
//! of its time and the deadline stays, so the gateway never widens what the catalog wrote.
//!
//! A permission with `require_approval` also gets `StringLike: {aws:PrincipalTag/approver: "?*"}`
//! (the call's credentials must name a non-empty approver; a missing key never matches a
//! `StringLike`). When the catalog already wrote a `StringLike` pattern for that key, the two
//! cannot sit side by side (one key per operator): the catalog's patterns are kept where each
//! already needs a character, a pattern of `*` only becomes `?*`, an empty one is dropped, and
//! one holding a policy variable (which may expand to nothing) is refused, so the result is
//! exactly "the catalog's patterns, and not empty". `infra/modules/catalog` merges alike.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::CredentialError;
use crate::catalog::{Permission, Tool};
use crate::deadline::Deadline;

/// STS refuses an inline session policy over 2,048 characters.
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;

/// The longest text [`Deadline::rfc3339`] produces: what [`check_session_policy_fits`] measures
/// with.
const LATEST_DEADLINE: &str = "9999-12-31T23:59:59Z";
const DATE_LESS_THAN: &str = "DateLessThan";
const CURRENT_TIME: &str = "aws:CurrentTime";
const STRING_LIKE: &str = "StringLike";
/// The session tag of who approved the call (`SessionTag::Approver`).
const APPROVER_TAG: &str = "aws:PrincipalTag/approver";
/// Any value of at least one character.
const NOT_EMPTY: &str = "?*";

type Condition = BTreeMap<String, BTreeMap<String, Value>>;

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Statement")]
    statement: Vec<Statement<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Statement<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    effect: &'static str,
    action: &'a [String],
    resource: &'a [String],
    condition: Condition,
}

/// The session policy of one call of `tool`, compact JSON. Refused when the tool has no
/// permissions (it has no work role), or when the policy is over
/// [`MAX_SESSION_POLICY_CHARS`] (the error names the tool).
pub fn session_policy(tool: &Tool, deadline: &Deadline) -> Result<String, CredentialError> {
    if tool.permissions.is_empty() {
        return Err(CredentialError::NoPermissions {
            tool: tool.name.clone(),
        });
    }
    let text = render(tool, &deadline.rfc3339())?;
    check_size(tool, &text)?;
    Ok(text)
}

/// Checked once at start for every tool: its session policy fits STS's limit whatever the
/// deadline, and its `DateLessThan` conditions can be merged with one. A tool without
/// permissions passes (it never mints).
pub fn check_session_policy_fits(tool: &Tool) -> Result<(), CredentialError> {
    if tool.permissions.is_empty() {
        return Ok(());
    }
    check_size(tool, &render(tool, LATEST_DEADLINE)?)
}

#[allow(
    clippy::expect_used,
    reason = "a policy document has string keys only, so it always serializes"
)]
fn render(tool: &Tool, not_after: &str) -> Result<String, CredentialError> {
    let statement = tool
        .permissions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            Ok(Statement {
                sid: p.sid.as_deref(),
                effect: "Allow",
                action: &p.actions,
                resource: &p.resources,
                condition: approved(tool, index, p, expiring(tool, index, p, not_after)?)?,
            })
        })
        .collect::<Result<Vec<_>, CredentialError>>()?;
    let document = Document {
        version: "2012-10-17",
        statement,
    };
    Ok(serde_json::to_string(&document)
        .expect("a policy document has string keys only, so it always serializes"))
}

/// The permission's condition with `DateLessThan: {aws:CurrentTime: <limit>}` merged in.
fn expiring(
    tool: &Tool,
    index: usize,
    permission: &Permission,
    not_after: &str,
) -> Result<Condition, CredentialError> {
    let mut condition = permission.condition.clone().unwrap_or_default();
    let block = condition.entry(DATE_LESS_THAN.to_owned()).or_default();
    // Condition keys are case-insensitive in IAM: `aws:currenttime` is the same key.
    let existing = block
        .keys()
        .find(|k| k.eq_ignore_ascii_case(CURRENT_TIME))
        .cloned()
        .and_then(|k| block.remove(&k));
    let limit = match existing {
        None => not_after.to_owned(),
        Some(existing) => earlier(tool, index, permission, &existing, not_after)?,
    };
    block.insert(CURRENT_TIME.to_owned(), Value::String(limit));
    Ok(condition)
}

/// A `require_approval` permission's condition with `StringLike: {aws:PrincipalTag/approver: "?*"}`
/// merged in (the module's documentation says how a pattern of the catalog's own is narrowed); any
/// other permission's as it is.
fn approved(
    tool: &Tool,
    index: usize,
    permission: &Permission,
    mut condition: Condition,
) -> Result<Condition, CredentialError> {
    if !permission.require_approval {
        return Ok(condition);
    }
    let block = condition.entry(STRING_LIKE.to_owned()).or_default();
    // Condition keys are case-insensitive in IAM: `aws:principaltag/Approver` is the same key.
    let existing = block
        .keys()
        .find(|k| k.eq_ignore_ascii_case(APPROVER_TAG))
        .cloned()
        .and_then(|k| block.remove(&k));
    let patterns = match existing {
        None => Value::String(NOT_EMPTY.to_owned()),
        Some(existing) => not_empty(tool, index, permission, &existing)?,
    };
    block.insert(APPROVER_TAG.to_owned(), patterns);
    Ok(condition)
}

/// The catalog's own `StringLike` patterns of the approver, narrowed to non-empty values.
fn not_empty(
    tool: &Tool,
    index: usize,
    permission: &Permission,
    existing: &Value,
) -> Result<Value, CredentialError> {
    let bad = |reason: String| CredentialError::BadCondition {
        tool: tool.name.clone(),
        statement: statement_name(index, permission),
        reason,
    };
    let not_patterns = || {
        bad(format!(
            "{STRING_LIKE} {APPROVER_TAG} must be one or more patterns, not {existing}"
        ))
    };
    let texts = condition_values(existing).ok_or_else(not_patterns)?;
    let mut kept: Vec<String> = Vec::new();
    for text in texts {
        if text.contains("${") {
            return Err(bad(format!(
                "require_approval: the pattern {text:?} of {STRING_LIKE} {APPROVER_TAG} holds a policy \
                 variable, which may expand to nothing and so admit an empty approver; write the \
                 approvers without variables"
            )));
        }
        let narrowed = match text {
            "" => continue,
            only_stars if only_stars.chars().all(|c| c == '*') => NOT_EMPTY.to_owned(),
            pattern => pattern.to_owned(),
        };
        if !kept.contains(&narrowed) {
            kept.push(narrowed);
        }
    }
    match kept.len() {
        0 => Err(bad(format!(
            "require_approval: {STRING_LIKE} {APPROVER_TAG} admits no non-empty approver, so the \
             statement could never be used"
        ))),
        1 => Ok(Value::String(kept.remove(0))),
        _ => Ok(Value::Array(kept.into_iter().map(Value::String).collect())),
    }
}

/// How a message names a permission: its sid, else its place in the tool's list (from 1).
fn statement_name(index: usize, permission: &Permission) -> String {
    permission
        .sid
        .clone()
        .unwrap_or_else(|| format!("#{}", index + 1))
}

/// The earlier of the catalog's own `aws:CurrentTime` bound and the deadline. Several values
/// are alternatives to IAM (any may match), so the latest of them is the catalog's bound.
fn earlier(
    tool: &Tool,
    index: usize,
    permission: &Permission,
    existing: &Value,
    not_after: &str,
) -> Result<String, CredentialError> {
    let bad = || CredentialError::BadCondition {
        tool: tool.name.clone(),
        statement: statement_name(index, permission),
        reason: format!(
            "{DATE_LESS_THAN} {CURRENT_TIME} must be one or more RFC 3339 times, not {existing}"
        ),
    };
    let texts = condition_values(existing).ok_or_else(bad)?;
    let latest = texts
        .into_iter()
        .map(|t| OffsetDateTime::parse(t, &Rfc3339).map(|at| (at, t)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad())?
        .into_iter()
        .max_by_key(|(at, _)| *at)
        .ok_or_else(bad)?;
    Ok(match OffsetDateTime::parse(not_after, &Rfc3339) {
        Ok(deadline) if deadline <= latest.0 => not_after.to_owned(),
        _ => latest.1.to_owned(),
    })
}

fn check_size(tool: &Tool, text: &str) -> Result<(), CredentialError> {
    let chars = text.chars().count();
    if chars > MAX_SESSION_POLICY_CHARS {
        return Err(CredentialError::PolicyTooLarge {
            tool: tool.name.clone(),
            chars,
        });
    }
    Ok(())
}

/// The values of one condition key as IAM writes them: one string, or a list of strings.
fn condition_values(value: &Value) -> Option<Vec<&str>> {
    match value {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    const AT: &str = "2026-12-01T10:00:05Z";

    fn tool(permissions: Value) -> Tool {
        serde_json::from_value(json!({
            "name": "tenant-files",
            "description": "d",
            "input_schema": {"type": "object"},
            "backend": "lambda",
            "allow": {"groups": ["dev"]},
            "permissions": permissions,
        }))
        .expect("a valid tool")
    }

    fn statements(text: &str) -> Vec<Value> {
        let doc: Value = serde_json::from_str(text).expect("the policy is JSON");
        assert_eq!(doc["Version"], "2012-10-17");
        doc["Statement"].as_array().expect("statements").clone()
    }

    #[test]
    fn one_allow_statement_per_permission_in_compact_json() {
        let t = tool(json!([
            {"sid": "Read", "actions": ["s3:GetObject"],
             "resources": ["arn:aws:s3:::b/${aws:PrincipalTag/tenant}/*"]},
            {"actions": ["s3:ListBucket"], "resources": ["arn:aws:s3:::b"],
             "condition": {"StringLike": {"s3:prefix": ["${aws:PrincipalTag/tenant}/*"]}}},
        ]));
        assert_eq!(
            render(&t, AT).expect("renders"),
            concat!(
                r#"{"Version":"2012-10-17","Statement":["#,
                r#"{"Sid":"Read","Effect":"Allow","Action":["s3:GetObject"],"#,
                r#""Resource":["arn:aws:s3:::b/${aws:PrincipalTag/tenant}/*"],"#,
                r#""Condition":{"DateLessThan":{"aws:CurrentTime":"2026-12-01T10:00:05Z"}}},"#,
                r#"{"Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::b"],"#,
                r#""Condition":{"DateLessThan":{"aws:CurrentTime":"2026-12-01T10:00:05Z"},"#,
                r#""StringLike":{"s3:prefix":["${aws:PrincipalTag/tenant}/*"]}}}]}"#,
            )
        );
    }

    #[tokio::test]
    async fn every_statement_expires_at_the_deadline() {
        let t = tool(json!([
            {"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::a/*"]},
            {"actions": ["s3:PutObject"], "resources": ["arn:aws:s3:::b/*"],
             "condition": {"DateLessThan": {"aws:EpochTime": 4102444800u64}}},
            {"actions": ["logs:PutLogEvents"], "resources": ["arn:aws:logs:*:*:*"],
             "condition": {"DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}}},
        ]));
        let deadline = Deadline::after(Duration::from_secs(30));
        let text = session_policy(&t, &deadline).expect("renders");
        let all = statements(&text);
        assert_eq!(all.len(), 3);
        for s in &all {
            assert_eq!(s["Effect"], "Allow");
            assert_eq!(
                s["Condition"]["DateLessThan"]["aws:CurrentTime"],
                deadline.rfc3339(),
                "{s}"
            );
        }
        // Merged into the existing block, not replacing it.
        assert_eq!(
            all[1]["Condition"]["DateLessThan"]["aws:EpochTime"],
            4102444800u64
        );
    }

    #[test]
    fn an_earlier_catalog_time_is_kept() {
        let t = tool(json!([
            {"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::a/*"],
             "condition": {"DateLessThan": {"aws:currenttime": "2020-01-01T00:00:00Z"}}},
            {"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::b/*"],
             "condition": {"DateLessThan": {"aws:CurrentTime":
                 ["2019-01-01T00:00:00Z", "2021-06-01T00:00:00+02:00"]}}},
        ]));
        let all = statements(&render(&t, AT).expect("renders"));
        assert_eq!(
            all[0]["Condition"]["DateLessThan"],
            json!({"aws:CurrentTime": "2020-01-01T00:00:00Z"})
        );
        assert_eq!(
            all[1]["Condition"]["DateLessThan"],
            json!({"aws:CurrentTime": "2021-06-01T00:00:00+02:00"})
        );
    }

    #[test]
    fn refuses_a_current_time_condition_that_is_not_a_time() {
        for bad in [
            json!("tomorrow"),
            json!(5),
            json!([]),
            json!(["2020-01-01T00:00:00Z", 3]),
        ] {
            let t = tool(
                json!([{"sid": "Odd", "actions": ["s3:GetObject"], "resources": ["*"],
                                 "condition": {"DateLessThan": {"aws:CurrentTime": bad}}}]),
            );
            let e = check_session_policy_fits(&t).expect_err("not a time");
            assert_eq!(e.code(), "bad_condition");
            assert!(
                e.to_string().contains("tenant-files") && e.to_string().contains("Odd"),
                "{e}"
            );
        }
    }

    #[test]
    fn principal_tag_variables_stay_untouched() {
        let t = tool(json!([{"actions": ["s3:GetObject"],
            "resources":
                ["arn:aws:s3:::b/${aws:PrincipalTag/tenant}/${aws:PrincipalTag/principal}/*"],
            "condition": {"StringEquals":
                {"s3:ExistingObjectTag/tenant": "${aws:PrincipalTag/tenant}"}}}]));
        let text = render(&t, AT).expect("renders");
        assert!(
            text.contains(
                r#""arn:aws:s3:::b/${aws:PrincipalTag/tenant}/${aws:PrincipalTag/principal}/*""#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#""s3:ExistingObjectTag/tenant":"${aws:PrincipalTag/tenant}""#),
            "{text}"
        );
    }

    /// A tool whose one statement lists `n` copies of a resource of `len` characters.
    fn sized(n: usize, len: usize) -> Tool {
        let resource = format!("arn:aws:s3:::{}", "r".repeat(len - 13));
        tool(json!([{"actions": ["s3:GetObject"], "resources": vec![resource; n]}]))
    }

    #[tokio::test]
    async fn refuses_session_policy_over_2048_naming_the_tool() {
        let deadline = Deadline::after(Duration::from_secs(30));
        let e = session_policy(&sized(30, 100), &deadline).expect_err("too large");
        assert_eq!(e.code(), "policy_too_large");
        let text = e.to_string();
        assert!(
            text.contains("tenant-files") && text.contains("2048"),
            "{text}"
        );
        // Right at the limit is fine.
        let base = render(&sized(1, 100), AT).expect("renders").len();
        let fits = sized(1, 100 + MAX_SESSION_POLICY_CHARS - base);
        assert_eq!(
            session_policy(&fits, &deadline).expect("fits").len(),
            MAX_SESSION_POLICY_CHARS
        );
        let over = sized(1, 101 + MAX_SESSION_POLICY_CHARS - base);
        assert!(session_policy(&over, &deadline).is_err());
    }

    #[test]
    fn a_tool_whose_policy_can_never_fit_is_refused() {
        let e = check_session_policy_fits(&sized(30, 100)).expect_err("never fits");
        assert_eq!(e.code(), "policy_too_large");
        assert!(e.to_string().contains("tenant-files"), "{e}");
        assert!(check_session_policy_fits(&sized(2, 100)).is_ok());
        assert!(
            check_session_policy_fits(&tool(json!([]))).is_ok(),
            "no permissions: nothing to mint"
        );
    }

    #[test]
    fn a_statement_that_requires_approval_needs_a_non_empty_approver_tag() {
        let t = tool(json!([
            {"sid": "Read", "actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::b/*"]},
            {"sid": "Publish", "actions": ["s3:PutObject"], "resources": ["arn:aws:s3:::b/*"],
             "require_approval": true},
        ]));
        let all = statements(&render(&t, AT).expect("renders"));
        assert_eq!(
            all[0]["Condition"],
            json!({"DateLessThan": {"aws:CurrentTime": AT}}),
            "a statement without require_approval is left alone"
        );
        assert_eq!(
            all[1]["Condition"],
            json!({"DateLessThan": {"aws:CurrentTime": AT},
                   "StringLike": {"aws:PrincipalTag/approver": "?*"}})
        );
    }

    #[test]
    fn the_approver_condition_joins_the_catalogs_own_string_like_block() {
        let t = tool(
            json!([{"actions": ["s3:ListBucket"], "resources": ["arn:aws:s3:::b"],
            "require_approval": true,
            "condition": {"StringLike": {"s3:prefix": ["${aws:PrincipalTag/tenant}/*"]},
                          "StringEquals": {"aws:PrincipalTag/approver": "bob"}}}]),
        );
        let all = statements(&render(&t, AT).expect("renders"));
        assert_eq!(
            all[0]["Condition"]["StringLike"],
            json!({"s3:prefix": ["${aws:PrincipalTag/tenant}/*"],
                   "aws:PrincipalTag/approver": "?*"})
        );
        // Another operator on the same key is another condition, and both must hold.
        assert_eq!(
            all[0]["Condition"]["StringEquals"],
            json!({"aws:PrincipalTag/approver": "bob"})
        );
    }

    #[test]
    fn the_catalogs_own_approver_patterns_are_narrowed_to_non_empty_values() {
        let narrowed = |patterns: Value| {
            let t = tool(
                json!([{"actions": ["s3:PutObject"], "resources": ["arn:aws:s3:::b/*"],
                "require_approval": true,
                "condition": {"StringLike": {"aws:principaltag/Approver": patterns}}}]),
            );
            let all = statements(&render(&t, AT).expect("renders"));
            assert_eq!(
                all[0]["Condition"]["StringLike"]
                    .as_object()
                    .expect("a block")
                    .len(),
                1,
                "one key, whatever its case: {}",
                all[0]["Condition"]
            );
            all[0]["Condition"]["StringLike"]["aws:PrincipalTag/approver"].clone()
        };
        assert_eq!(narrowed(json!("*@example.com")), json!("*@example.com"));
        assert_eq!(narrowed(json!("*")), json!("?*"));
        assert_eq!(narrowed(json!("**")), json!("?*"));
        assert_eq!(
            narrowed(json!(["", "alice", "*", "?*"])),
            json!(["alice", "?*"])
        );
    }

    #[test]
    fn refuses_approver_patterns_that_cannot_be_narrowed() {
        for (bad, why) in [
            (json!("${aws:PrincipalTag/principal}"), "policy variable"),
            (json!(["bob", "${aws:username}*"]), "policy variable"),
            (json!(""), "no non-empty approver"),
            (json!([""]), "no non-empty approver"),
            (json!([]), "no non-empty approver"),
            (json!(3), "patterns"),
            (json!(["bob", 3]), "patterns"),
        ] {
            let t = tool(json!([{"sid": "Publish", "actions": ["s3:PutObject"],
                "resources": ["arn:aws:s3:::b/*"], "require_approval": true,
                "condition": {"StringLike": {"aws:PrincipalTag/approver": bad}}}]));
            let e = check_session_policy_fits(&t).expect_err("refused");
            let text = e.to_string();
            assert_eq!(e.code(), "bad_condition", "{text}");
            assert!(
                text.contains("tenant-files") && text.contains("Publish") && text.contains(why),
                "{bad}: {text}"
            );
        }
    }

    #[test]
    fn the_approver_condition_counts_toward_the_size_limit() {
        let base = render(&sized(1, 100), AT).expect("renders").len();
        let at_limit = sized(1, 100 + MAX_SESSION_POLICY_CHARS - base);
        check_session_policy_fits(&at_limit).expect("fits without require_approval");
        let mut approved = at_limit;
        approved.permissions[0].require_approval = true;
        let e = check_session_policy_fits(&approved).expect_err("the condition makes it too large");
        assert_eq!(e.code(), "policy_too_large");
    }

    #[tokio::test]
    async fn refuses_minting_a_tool_without_permissions() {
        let e = session_policy(&tool(json!([])), &Deadline::after(Duration::from_secs(5)))
            .expect_err("no work role");
        assert_eq!(e.code(), "no_permissions");
    }
}
