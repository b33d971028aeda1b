//! What a call's role session is named and tagged with: the session tags, the `SourceIdentity`
//! and the `RoleSessionName`, each checked against STS's limits before STS is asked.
//!
//! Every value comes from the verified caller ([`Caller`]) or from the gateway (tool name,
//! invocation id), never from the call's arguments.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::CredentialError;
use crate::auth::Caller;
use crate::catalog::SessionTag;

/// STS accepts at most 50 session tags.
pub const MAX_TAGS: usize = 50;
/// A session tag key is 1 to 128 characters.
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// A session tag value is 0 to 256 characters.
pub const MAX_TAG_VALUE_CHARS: usize = 256;
/// A tenant is at most 63 characters (it names an S3 prefix and AWS resources).
pub const MAX_TENANT_CHARS: usize = 63;
/// A `principal` tag (the caller's subject) is at most 128 characters; the work roles' trust
/// policies refuse a longer one too (`policies/tool-work-trust.json.tftpl`).
pub const MAX_PRINCIPAL_CHARS: usize = 128;

/// How much of the subject a `SourceIdentity` keeps in clear before its hash.
const SOURCE_IDENTITY_PREFIX_CHARS: usize = 40;
/// Hex digits of the subject's SHA-256 a `SourceIdentity` ends with.
const SOURCE_IDENTITY_HASH_HEX: usize = 16;

/// The session tags of a call: one per requested key, `tool` = the tool's name, `tenant` = the
/// caller's tenant claim, `principal` = the caller's subject, `invocation` = the invocation id,
/// `approver` = the subject of who approved the call (a tool with `approval`; refused without).
///
/// Refused (before STS is asked): a requested `tenant` when the caller has none or when it is
/// not 1 to 63 characters of `a-z`, `0-9`, `-` starting with a letter or digit; a tag over STS's
/// limits (50 tags, keys of 128 and values of 256 characters); a value outside STS's tag
/// character set (letters, digits, white space and `_ . : / = + - @`).
///
/// A subject outside that character set (Auth0's `auth0|123`, for one) is refused rather than
/// rewritten: a tag IAM policies read through `${aws:PrincipalTag/principal}` must be the exact
/// subject or nothing. Such a catalog drops `principal` from the tool's `session_tags`; the
/// `SourceIdentity` ([`source_identity`]) still names the caller.
pub fn session_tags(
    tags: &[SessionTag],
    tool: &str,
    caller: &Caller,
    invocation_id: &str,
    approver: Option<&str>,
) -> Result<BTreeMap<String, String>, CredentialError> {
    let mut out = BTreeMap::new();
    for tag in tags {
        let value = match tag {
            SessionTag::Tool => tool.to_owned(),
            SessionTag::Tenant => {
                let tenant = caller
                    .tenant
                    .as_deref()
                    .ok_or_else(|| CredentialError::MissingTenant { tool: tool.into() })?;
                check_tenant(tool, tenant)?;
                tenant.to_owned()
            }
            SessionTag::Principal => {
                let chars = caller.subject.chars().count();
                if chars > MAX_PRINCIPAL_CHARS {
                    return Err(CredentialError::PrincipalTooLong {
                        tool: tool.into(),
                        chars,
                    });
                }
                caller.subject.clone()
            }
            SessionTag::Invocation => invocation_id.to_owned(),
            SessionTag::Approver => {
                // An empty approver names nobody: refused like none (so do the trust policies).
                let approver = approver
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| CredentialError::MissingApprover { tool: tool.into() })?;
                let chars = approver.chars().count();
                if chars > MAX_PRINCIPAL_CHARS {
                    return Err(CredentialError::ApproverTooLong {
                        tool: tool.into(),
                        chars,
                    });
                }
                approver.to_owned()
            }
        };
        out.insert(tag.as_str().to_owned(), value);
    }
    check_tag_set(tool, &out)?;
    Ok(out)
}

/// A tenant is `^[a-z0-9][a-z0-9-]{0,62}$`: it becomes an S3 prefix and part of resource names
/// through `${aws:PrincipalTag/tenant}`, so `/`, `..` or upper case would name someone else's.
fn check_tenant(tool: &str, tenant: &str) -> Result<(), CredentialError> {
    match tenant_problem(tenant) {
        None => Ok(()),
        Some(reason) => Err(CredentialError::BadTenant {
            tool: tool.into(),
            tenant: shorten(tenant),
            reason,
        }),
    }
}

/// What makes `tenant` unusable as a tenant (an S3 prefix, a folder name, part of a resource
/// name), or `None` when it is `^[a-z0-9][a-z0-9-]{0,62}$`.
pub fn tenant_problem(tenant: &str) -> Option<String> {
    if tenant.is_empty() {
        Some("it is empty".to_owned())
    } else if tenant.chars().count() > MAX_TENANT_CHARS {
        Some(format!("it is longer than {MAX_TENANT_CHARS} characters"))
    } else if tenant.starts_with('-') {
        Some("it starts with '-'".to_owned())
    } else {
        tenant
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            .map(|c| match c {
                '/' => "it contains '/', which would reach into another tenant's prefix".to_owned(),
                '.' => "it contains '.' ('..' would climb out of its prefix)".to_owned(),
                c if c.is_uppercase() => format!("it contains upper-case {c:?}"),
                c => format!("it contains {c:?}"),
            })
    }
}

/// STS's limits on a set of session tags.
fn check_tag_set(tool: &str, tags: &BTreeMap<String, String>) -> Result<(), CredentialError> {
    if tags.len() > MAX_TAGS {
        return Err(CredentialError::TooManyTags {
            tool: tool.into(),
            count: tags.len(),
        });
    }
    for (key, value) in tags {
        let key_chars = key.chars().count();
        if key_chars > MAX_TAG_KEY_CHARS {
            return Err(CredentialError::TagKeyTooLong {
                tool: tool.into(),
                key: shorten(key),
                chars: key_chars,
            });
        }
        if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
            return Err(CredentialError::BadTag {
                tool: tool.into(),
                key: shorten(key),
                reason: "a key starting with 'aws:' is reserved".into(),
            });
        }
        let value_chars = value.chars().count();
        if value_chars > MAX_TAG_VALUE_CHARS {
            return Err(CredentialError::TagValueTooLong {
                tool: tool.into(),
                key: key.clone(),
                chars: value_chars,
            });
        }
        for (what, text) in [("key", key), ("value", value)] {
            if let Some(c) = text.chars().find(|c| !is_tag_char(*c)) {
                return Err(CredentialError::BadTag {
                    tool: tool.into(),
                    key: shorten(key),
                    reason: format!(
                        "its {what} contains {c:?}; STS allows letters, digits, spaces and \
                         _ . : / = + - @ only"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// STS's tag character set, `[\p{L}\p{Z}\p{N}_.:/=+\-@]`. (`char::is_alphabetic` also admits
/// a few combining marks `\p{L}` does not; STS refuses those itself.)
fn is_tag_char(c: char) -> bool {
    c.is_alphabetic()
        || c.is_numeric()
        || (c.is_whitespace() && !c.is_control())
        || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

/// STS's character set for `RoleSessionName` and `SourceIdentity`: `[\w+=,.@-]`.
fn is_session_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

/// The `SourceIdentity` of a caller: its subject made to fit STS (2 to 64 characters of
/// `[\w+=,.@-]`, never starting with `aws:`), deterministic, and different for different
/// subjects.
///
/// It is the subject's first 40 characters with every character outside the set replaced by
/// `_`, then `-`, then the first 16 hex digits of the SHA-256 of the exact subject (always
/// appended, so `a/b` and `a_b` differ): `alice_example.com-1f2e3d4c5b6a7988`.
pub fn source_identity(subject: &str) -> String {
    let digest = Sha256::digest(subject.as_bytes());
    let mut hash = hex::encode(digest);
    hash.truncate(SOURCE_IDENTITY_HASH_HEX);
    // ':' is outside the set, so the result can never start with `aws:`.
    let prefix: String = subject
        .chars()
        .take(SOURCE_IDENTITY_PREFIX_CHARS)
        .map(|c| if is_session_char(c) { c } else { '_' })
        .collect();
    if prefix.is_empty() {
        hash
    } else {
        format!("{prefix}-{hash}")
    }
}

/// The `RoleSessionName` is the invocation id: STS wants 2 to 64 characters of `[\w+=,.@-]`
/// (a UUID is 36).
pub(crate) fn check_session_name(tool: &str, invocation_id: &str) -> Result<(), CredentialError> {
    let chars = invocation_id.chars().count();
    let reason = if !(2..=64).contains(&chars) {
        Some(format!("it is {chars} characters, not 2 to 64"))
    } else {
        invocation_id
            .chars()
            .find(|c| !is_session_char(*c))
            .map(|c| format!("it contains {c:?}"))
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(CredentialError::BadSessionName {
            tool: tool.into(),
            invocation_id: shorten(invocation_id),
            reason,
        }),
    }
}

/// A value quoted in an error message, cut to 64 characters.
fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(64).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod approver_tests {
    use super::*;

    fn alice() -> Caller {
        Caller {
            subject: "alice".into(),
            tenant: Some("acme".into()),
            groups: vec![],
            scopes: vec![],
        }
    }

    #[test]
    fn the_approver_tag_names_who_approved_and_is_refused_without_an_approval() {
        let id = "0190a6a8-0000-7000-8000-000000000000";
        let tags = session_tags(&[SessionTag::Approver], "apply", &alice(), id, Some("bob"))
            .expect("tags");
        assert_eq!(tags.get("approver").map(String::as_str), Some("bob"));
        assert!(matches!(
            session_tags(&[SessionTag::Approver], "apply", &alice(), id, None),
            Err(CredentialError::MissingApprover { .. })
        ));
        // An empty approver names nobody (a `require_approval` statement would refuse it anyway).
        assert!(matches!(
            session_tags(&[SessionTag::Approver], "apply", &alice(), id, Some("")),
            Err(CredentialError::MissingApprover { .. })
        ));
        let long = "b".repeat(MAX_PRINCIPAL_CHARS + 1);
        assert!(matches!(
            session_tags(&[SessionTag::Approver], "apply", &alice(), id, Some(&long)),
            Err(CredentialError::ApproverTooLong { .. })
        ));
        // An approver outside STS's character set is refused, not rewritten.
        assert!(matches!(
            session_tags(
                &[SessionTag::Approver],
                "apply",
                &alice(),
                id,
                Some("bob|1")
            ),
            Err(CredentialError::BadTag { .. })
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [SessionTag; 4] = [
        SessionTag::Tool,
        SessionTag::Tenant,
        SessionTag::Principal,
        SessionTag::Invocation,
    ];
    const INVOCATION: &str = "01937a4e-9c1b-7cc2-a3d4-5e6f708192a3";

    fn caller(subject: &str, tenant: Option<&str>) -> Caller {
        Caller {
            subject: subject.into(),
            tenant: tenant.map(Into::into),
            groups: vec!["dev".into()],
            scopes: vec![],
        }
    }

    fn tags_for(
        subject: &str,
        tenant: Option<&str>,
    ) -> Result<BTreeMap<String, String>, CredentialError> {
        session_tags(
            &ALL,
            "tenant-files",
            &caller(subject, tenant),
            INVOCATION,
            None,
        )
    }

    fn refusal(tenant: &str) -> CredentialError {
        tags_for("alice", Some(tenant)).expect_err(tenant)
    }

    #[test]
    fn session_tags_come_from_the_caller_and_the_gateway() {
        let tags = tags_for("alice@example.com", Some("acme")).expect("valid tags");
        let expected: BTreeMap<String, String> = [
            ("tool", "tenant-files"),
            ("tenant", "acme"),
            ("principal", "alice@example.com"),
            ("invocation", INVOCATION),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(tags, expected);
        // Only the requested keys.
        let some = session_tags(
            &[SessionTag::Invocation, SessionTag::Tool],
            "echo",
            &caller("alice", Some("acme")),
            INVOCATION,
            None,
        )
        .expect("valid tags");
        assert_eq!(some.keys().collect::<Vec<_>>(), ["invocation", "tool"]);
    }

    #[test]
    fn refuses_tenant_with_slash() {
        let e = refusal("acme/x");
        assert_eq!(e.code(), "bad_tenant");
        let text = e.to_string();
        assert!(
            text.contains("tenant-files") && text.contains("'/'"),
            "{text}"
        );
        assert!(text.contains("a-z, 0-9 and '-'"), "{text}");
    }

    #[test]
    fn refuses_upper_case_tenant() {
        let e = refusal("ACME");
        assert_eq!(e.code(), "bad_tenant");
        assert!(e.to_string().contains("upper-case"), "{e}");
    }

    #[test]
    fn refuses_a_principal_over_128_characters_and_takes_one_of_128() {
        let longest = "a".repeat(MAX_PRINCIPAL_CHARS);
        assert_eq!(
            tags_for(&longest, Some("acme")).expect("128 characters")["principal"],
            longest
        );
        let e = tags_for(&"a".repeat(MAX_PRINCIPAL_CHARS + 1), Some("acme")).expect_err("129");
        assert_eq!(e.code(), "principal_too_long");
        assert!(e.to_string().contains("129 characters"), "{e}");
    }

    #[test]
    fn refuses_empty_tenant() {
        let e = refusal("");
        assert_eq!(e.code(), "bad_tenant");
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn refuses_dot_dot_tenant() {
        let e = refusal("..");
        assert_eq!(e.code(), "bad_tenant");
        assert!(e.to_string().contains("'.'"), "{e}");
    }

    #[test]
    fn refuses_tenant_starting_with_dash() {
        assert_eq!(refusal("-acme").code(), "bad_tenant");
    }

    #[test]
    fn refuses_tenant_longer_than_63() {
        assert!(tags_for("alice", Some(&"a".repeat(63))).is_ok());
        let e = refusal(&"a".repeat(64));
        assert_eq!(e.code(), "bad_tenant");
        assert!(e.to_string().contains("longer than 63"), "{e}");
    }

    #[test]
    fn refuses_tenant_with_other_characters() {
        for tenant in ["acme x", "acme_x", "acmé", "acme\n", "a:b"] {
            assert_eq!(refusal(tenant).code(), "bad_tenant", "{tenant:?}");
        }
    }

    #[test]
    fn accepts_lower_case_tenants() {
        for tenant in ["a", "acme", "0", "acme-1", "a-", "9lives"] {
            assert!(tags_for("alice", Some(tenant)).is_ok(), "{tenant:?}");
        }
    }

    #[test]
    fn refuses_missing_tenant_when_tool_tags_tenant() {
        let e = tags_for("alice", None).expect_err("no tenant");
        assert_eq!(e.code(), "missing_tenant");
        assert!(e.to_string().contains("tenant-files"), "{e}");
    }

    #[test]
    fn a_tool_without_the_tenant_tag_needs_no_tenant() {
        let tags = session_tags(
            &[SessionTag::Tool, SessionTag::Principal],
            "echo",
            &caller("alice", None),
            INVOCATION,
            None,
        )
        .expect("no tenant needed");
        assert!(!tags.contains_key("tenant"));
        // ... and a malformed one it does not use is not its business.
        let tags = session_tags(
            &[SessionTag::Tool],
            "echo",
            &caller("alice", Some("ACME/x")),
            INVOCATION,
            None,
        );
        assert!(tags.is_ok());
    }

    fn many(n: usize) -> BTreeMap<String, String> {
        (0..n).map(|i| (format!("k{i}"), "v".to_owned())).collect()
    }

    #[test]
    fn refuses_more_than_50_tags() {
        assert!(check_tag_set("t", &many(50)).is_ok());
        let e = check_tag_set("t", &many(51)).expect_err("51 tags");
        assert_eq!(e.code(), "too_many_tags");
        assert!(e.to_string().contains("51"), "{e}");
    }

    #[test]
    fn refuses_tag_key_over_128() {
        let tags = |len: usize| BTreeMap::from([("k".repeat(len), "v".to_owned())]);
        assert!(check_tag_set("t", &tags(128)).is_ok());
        let e = check_tag_set("t", &tags(129)).expect_err("long key");
        assert_eq!(e.code(), "tag_key_too_long");
        assert!(e.to_string().contains("129"), "{e}");
    }

    #[test]
    fn refuses_tag_key_starting_with_aws() {
        let tags = BTreeMap::from([("AWS:tool".to_owned(), "v".to_owned())]);
        assert_eq!(
            check_tag_set("t", &tags).expect_err("reserved").code(),
            "bad_tag"
        );
    }

    #[test]
    fn refuses_tag_value_over_256() {
        let tags = |value: String| BTreeMap::from([("team".to_owned(), value)]);
        assert!(check_tag_set("t", &tags("s".repeat(256))).is_ok());
        let e = check_tag_set("t", &tags("s".repeat(257))).expect_err("long value");
        assert_eq!(e.code(), "tag_value_too_long");
        let text = e.to_string();
        assert!(text.contains("team") && text.contains("257"), "{text}");
        assert!(
            !text.contains(&"s".repeat(100)),
            "the message quotes no long value: {text}"
        );
    }

    #[test]
    fn refuses_principal_outside_the_tag_charset() {
        let e = tags_for("auth0|5f3c", Some("acme")).expect_err("'|' is not a tag character");
        assert_eq!(e.code(), "bad_tag");
        let text = e.to_string();
        assert!(text.contains("principal") && text.contains("'|'"), "{text}");
        // Letters of any script, digits, spaces and the listed punctuation are fine.
        assert!(tags_for("Zoë Müller/ops:1=2+3@例え.jp_-", Some("acme")).is_ok());
    }

    #[test]
    fn source_identity_never_starts_with_aws() {
        for subject in ["aws:admin", "AWS:root", "Aws:x", "aws:", "aws"] {
            let id = source_identity(subject);
            assert!(
                !id.to_ascii_lowercase().starts_with("aws:"),
                "{subject:?} -> {id}"
            );
        }
    }

    #[test]
    fn two_subjects_never_share_a_source_identity() {
        let long = "x".repeat(200);
        let subjects = [
            "a/b".to_owned(),
            "a_b".to_owned(),
            "a b".to_owned(),
            "a:b".to_owned(),
            "a|b".to_owned(),
            "A_B".to_owned(),
            String::new(),
            "é".to_owned(),
            "ê".to_owned(),
            format!("{long}1"),
            format!("{long}2"),
        ];
        let ids: std::collections::HashSet<String> =
            subjects.iter().map(|s| source_identity(s)).collect();
        assert_eq!(ids.len(), subjects.len(), "{ids:?}");
    }

    #[test]
    fn source_identity_fits_sts() {
        for subject in [
            "",
            "a",
            "alice@example.com",
            "auth0|5f3c",
            "Zoë Müller",
            &"z".repeat(1000),
            "aws:admin",
        ] {
            let id = source_identity(subject);
            let n = id.chars().count();
            assert!((2..=64).contains(&n), "{subject:?} -> {id}");
            assert!(id.chars().all(is_session_char), "{subject:?} -> {id}");
            assert_eq!(id, source_identity(subject), "deterministic");
        }
        let id = source_identity("alice@example.com");
        assert!(id.starts_with("alice@example.com-"), "{id}");
        assert_eq!(
            source_identity("auth0|5f3c").split('-').next(),
            Some("auth0_5f3c")
        );
    }

    #[test]
    fn refuses_invocation_id_sts_cannot_name_a_session_with() {
        assert!(check_session_name("t", INVOCATION).is_ok());
        for id in ["a", &"a".repeat(65), "a/b", "a b"] {
            let e = check_session_name("t", id).expect_err(id);
            assert_eq!(e.code(), "bad_session_name", "{id:?}");
        }
    }
}
