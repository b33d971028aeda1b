//! Wire types of one tool call.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Temporary AWS credentials minted for exactly one invocation.
///
/// `Debug` never prints the secret parts.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// RFC 3339 expiry.
    pub expiration: String,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// One tool call as the execution unit receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Invocation {
    /// Unique id of this call (also the STS role session name on AWS).
    pub invocation_id: String,
    /// The catalog name of the tool.
    pub tool: String,
    /// Arguments, already validated by the gateway against the tool's input schema.
    pub arguments: serde_json::Map<String, serde_json::Value>,
    /// Unix time in milliseconds after which the result is no longer wanted.
    pub deadline_unix_ms: u64,
    /// Credentials for the tool's work role, when the tool has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<AwsCredentials>,
    /// Session tags the credentials carry (tool, tenant, principal, invocation).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub session_tags: BTreeMap<String, String>,
}

/// One piece of content of a tool result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ContentItem {
    Text { text: String },
}

/// What the tool answers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolOutput {
    #[serde(default)]
    pub content: Vec<ContentItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<serde_json::Value>,
    /// True when the tool itself failed (reported to the agent as `isError: true`).
    #[serde(default)]
    pub is_error: bool,
}

impl ToolOutput {
    /// A successful result with one text item and structured content.
    pub fn structured(value: serde_json::Value) -> Self {
        Self {
            content: vec![ContentItem::Text {
                text: value.to_string(),
            }],
            structured_content: Some(value),
            is_error: false,
        }
    }

    /// A tool failure with a message for the agent.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            content: vec![ContentItem::Text {
                text: message.into(),
            }],
            structured_content: None,
            is_error: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = AwsCredentials {
            access_key_id: "AKIA".into(),
            secret_access_key: "very-secret".into(),
            session_token: "token-secret".into(),
            expiration: "2026-01-01T00:00:00Z".into(),
        };
        let s = format!("{c:?}");
        assert!(!s.contains("very-secret"));
        assert!(!s.contains("token-secret"));
    }

    #[test]
    fn invocation_round_trips_and_rejects_unknown_fields() {
        let json = serde_json::json!({
            "invocationId": "i-1", "tool": "echo", "arguments": {"a": 1},
            "deadlineUnixMs": 5
        });
        let inv: Invocation = serde_json::from_value(json.clone()).expect("valid invocation");
        assert_eq!(serde_json::to_value(&inv).expect("serializes"), json);
        let mut bad = json;
        bad["extra"] = serde_json::json!(1);
        assert!(serde_json::from_value::<Invocation>(bad).is_err());
    }
}
