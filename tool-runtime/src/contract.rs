//! Wire types of one tool call.
//!
//! The gateway hands the unit one [`Invocation`]; the unit answers with one [`ToolOutput`].
//!
//! In one-shot mode (the local sandbox, Fargate) the unit may also report progress while it
//! runs: before its result it may write any number of [`ProgressReport`] lines on stdout, each one
//! compact JSON object on a line of its own:
//!
//! ```text
//! {"type":"progress","progress":50,"total":100,"message":"halfway"}
//! ```
//!
//! `progress` is required (a number), `total` and `message` are optional, and no other key is
//! allowed. The result is what remains of stdout once the progress lines are taken out; it may
//! still span several lines. A [`ToolOutput`] never has a top-level `"type"` key, so the two
//! cannot be confused; the one thing a tool must avoid is a multi-line (pretty-printed) result
//! holding a line that is, on its own, a JSON object with `"type":"progress"`. A line that is
//! a JSON object with `"type":"progress"` but not a valid report (no `progress`, an unknown key)
//! is dropped: it is neither progress nor part of the result ([`classify_line`]).
//!
//! The gateway forwards reports to the client only when the client asked for progress, only
//! while the progress value increases, and drops reports rather than wait for a slow client.
//! Lambda mode has no channel for them: its reporter drops every report.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Temporary AWS credentials minted for exactly one invocation.
///
/// The secret parts are [`SecretString`]s: `Debug` never prints them, and the one place they
/// are exposed is serialization, because the invocation is how they reach the unit. Comparing
/// two values compares the secrets too.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsCredentials {
    pub access_key_id: String,
    #[serde(serialize_with = "expose", deserialize_with = "secret")]
    pub secret_access_key: SecretString,
    #[serde(serialize_with = "expose", deserialize_with = "secret")]
    pub session_token: SecretString,
    /// RFC 3339 expiry.
    pub expiration: String,
}

/// Writes a secret on the wire (the invocation is where the unit reads it).
fn expose<S: serde::Serializer>(value: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.expose_secret())
}

fn secret<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    String::deserialize(deserializer).map(SecretString::from)
}

impl PartialEq for AwsCredentials {
    fn eq(&self, other: &Self) -> bool {
        self.access_key_id == other.access_key_id
            && self.secret_access_key.expose_secret() == other.secret_access_key.expose_secret()
            && self.session_token.expose_secret() == other.session_token.expose_secret()
            && self.expiration == other.expiration
    }
}

impl Eq for AwsCredentials {}

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
    /// The W3C `traceparent` of the gateway's span for this unit (or the client's, when the
    /// gateway exports no traces): a unit that records spans makes them its children. Also in
    /// the environment as `TRACEPARENT` where the unit's environment is made for its call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The key the unit seals its result with ([`crate::seal`]), when the result travels by a
    /// URL others can read (a Fargate task's); never given to the tool itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_key: Option<crate::seal::ResultKey>,
}

/// One piece of content of a tool result, as MCP's content blocks on the wire.
///
/// `data` and `blob` are base64 (standard alphabet, padded); a mime type is `type/subtype`. The
/// gateway checks both and fails the call when an item is invalid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ContentItem {
    Text {
        text: String,
    },
    /// `{"type":"image","data":"<base64>","mimeType":"image/png"}`
    #[serde(rename_all = "camelCase")]
    Image {
        data: String,
        mime_type: String,
    },
    /// `{"type":"audio","data":"<base64>","mimeType":"audio/wav"}`
    #[serde(rename_all = "camelCase")]
    Audio {
        data: String,
        mime_type: String,
    },
    /// `{"type":"resource","resource":{"uri":"...","mimeType":"...","text":"..."}}`, or with
    /// `blob` (base64) instead of `text`.
    Resource {
        resource: ResourceContents,
    },
}

impl ContentItem {
    /// A text item.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }
}

/// The contents of an embedded resource: text or a base64 blob, never both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, try_from = "RawResourceContents")]
pub enum ResourceContents {
    #[serde(rename_all = "camelCase")]
    Text {
        uri: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        text: String,
    },
    #[serde(rename_all = "camelCase")]
    Blob {
        uri: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        blob: String,
    },
}

/// [`ResourceContents`] as read, before telling text from blob.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawResourceContents {
    uri: String,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    blob: Option<String>,
}

impl TryFrom<RawResourceContents> for ResourceContents {
    type Error = &'static str;

    fn try_from(raw: RawResourceContents) -> Result<Self, Self::Error> {
        let RawResourceContents {
            uri,
            mime_type,
            text,
            blob,
        } = raw;
        match (text, blob) {
            (Some(text), None) => Ok(Self::Text {
                uri,
                mime_type,
                text,
            }),
            (None, Some(blob)) => Ok(Self::Blob {
                uri,
                mime_type,
                blob,
            }),
            (Some(_), Some(_)) => Err("an embedded resource has `text` or `blob`, not both"),
            (None, None) => Err("an embedded resource needs `text` or `blob`"),
        }
    }
}

/// A progress report: one line on stdout before the result, in one-shot mode only. On the wire
/// it carries `"type":"progress"` and nothing but the fields below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "WireProgress", into = "WireProgress")]
pub struct ProgressReport {
    /// How far the work is; should increase with each report (the gateway drops a report that
    /// does not).
    pub progress: f64,
    /// The value `progress` reaches when the work is done, when known.
    pub total: Option<f64>,
    /// What the unit is doing, for people.
    pub message: Option<String>,
}

/// [`ProgressReport`] on the wire (serde's `tag` on a struct ignores `deny_unknown_fields`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireProgress {
    #[serde(rename = "type")]
    kind: ProgressTag,
    progress: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Serialize, Deserialize)]
enum ProgressTag {
    #[serde(rename = "progress")]
    Progress,
}

impl From<WireProgress> for ProgressReport {
    fn from(w: WireProgress) -> Self {
        Self {
            progress: w.progress,
            total: w.total,
            message: w.message,
        }
    }
}

impl From<ProgressReport> for WireProgress {
    fn from(r: ProgressReport) -> Self {
        Self {
            kind: ProgressTag::Progress,
            progress: r.progress,
            total: r.total,
            message: r.message,
        }
    }
}

/// What one line of a one-shot unit's stdout is.
#[derive(Debug, Clone, PartialEq)]
pub enum StdoutLine {
    /// A valid progress report.
    Progress(ProgressReport),
    /// A JSON object with `"type":"progress"` that is not a valid report: dropped.
    BadProgress(String),
    /// Anything else: part of the result.
    Result,
}

/// Tells a progress line from a line of the result. `line` may end with its newline.
pub fn classify_line(line: &[u8]) -> StdoutLine {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "type", borrow, default)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    let trimmed = line.trim_ascii();
    if !trimmed.starts_with(b"{") {
        return StdoutLine::Result;
    }
    match serde_json::from_slice::<Probe<'_>>(trimmed) {
        Ok(Probe { kind: Some(kind) }) if kind == "progress" => {
            match serde_json::from_slice::<ProgressReport>(trimmed) {
                Ok(report) => StdoutLine::Progress(report),
                Err(e) => StdoutLine::BadProgress(e.to_string()),
            }
        }
        _ => StdoutLine::Result,
    }
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
        let inv = Invocation {
            invocation_id: "i-1".into(),
            tool: "t".into(),
            arguments: serde_json::Map::new(),
            deadline_unix_ms: 1,
            credentials: Some(c),
            session_tags: BTreeMap::new(),
            traceparent: None,
            result_key: Some(crate::seal::ResultKey::from_bytes([0xcd; 32])),
        };
        let s = format!("{inv:?}");
        assert!(
            !s.contains("very-secret") && !s.contains("token-secret") && !s.contains("cdcd"),
            "{s}"
        );
    }

    #[test]
    fn credentials_go_on_the_wire_in_camel_case_and_come_back() {
        let json = serde_json::json!({
            "accessKeyId": "ASIA1", "secretAccessKey": "s3cr3t", "sessionToken": "t0k3n",
            "expiration": "2026-12-01T10:15:00Z"
        });
        let c: AwsCredentials = serde_json::from_value(json.clone()).expect("valid credentials");
        assert_eq!(c.secret_access_key.expose_secret(), "s3cr3t");
        assert_eq!(c.session_token.expose_secret(), "t0k3n");
        assert_eq!(serde_json::to_value(&c).expect("serializes"), json);
        let mut other = c.clone();
        assert_eq!(other, c);
        other.session_token = "different".into();
        assert_ne!(other, c);
        let mut bad = json;
        bad["extra"] = serde_json::json!(1);
        assert!(serde_json::from_value::<AwsCredentials>(bad).is_err());
    }

    #[test]
    fn progress_report_wire_shape() {
        let r = ProgressReport {
            progress: 50.0,
            total: Some(100.0),
            message: Some("half".into()),
        };
        assert_eq!(
            serde_json::to_value(&r).expect("serializes"),
            serde_json::json!({"type": "progress", "progress": 50.0, "total": 100.0, "message": "half"})
        );
        let bare: ProgressReport =
            serde_json::from_str(r#"{"type":"progress","progress":1}"#).expect("valid");
        assert_eq!(bare.total, None);
        assert!(serde_json::from_str::<ProgressReport>(r#"{"progress":1}"#).is_err());
        assert!(
            serde_json::from_str::<ProgressReport>(r#"{"type":"progress","progress":1,"x":2}"#)
                .is_err()
        );
    }

    #[test]
    fn lines_are_classified() {
        assert_eq!(
            classify_line(b"{\"type\":\"progress\",\"progress\":2,\"total\":4}\n"),
            StdoutLine::Progress(ProgressReport {
                progress: 2.0,
                total: Some(4.0),
                message: None
            })
        );
        assert!(matches!(
            classify_line(br#"{"type":"progress","progress":"lots"}"#),
            StdoutLine::BadProgress(_)
        ));
        assert!(matches!(
            classify_line(br#"{"type":"progress","progress":1,"extra":true}"#),
            StdoutLine::BadProgress(_)
        ));
        for line in [
            &br#"{"content":[{"type":"text","text":"hi"}]}"#[..],
            br#"{"type":"other","progress":1}"#,
            br#"  {"type": "progress","#,
            br#"["progress"]"#,
            b"",
            b"\n",
            b"not json",
        ] {
            assert_eq!(classify_line(line), StdoutLine::Result, "{line:?}");
        }
    }

    #[test]
    fn content_items_match_mcp_on_the_wire() {
        let items = serde_json::json!([
            {"type": "text", "text": "hi"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"},
            {"type": "audio", "data": "AAAA", "mimeType": "audio/wav"},
            {"type": "resource", "resource": {"uri": "test://a", "mimeType": "text/plain", "text": "x"}},
            {"type": "resource", "resource": {"uri": "test://b", "blob": "AAAA"}},
        ]);
        let parsed: Vec<ContentItem> = serde_json::from_value(items.clone()).expect("valid");
        assert_eq!(
            parsed[1],
            ContentItem::Image {
                data: "AAAA".into(),
                mime_type: "image/png".into()
            }
        );
        assert!(matches!(
            &parsed[4],
            ContentItem::Resource {
                resource: ResourceContents::Blob {
                    mime_type: None,
                    ..
                }
            }
        ));
        assert_eq!(serde_json::to_value(&parsed).expect("serializes"), items);
        // Text and blob at once, or neither, is no resource.
        for bad in [
            serde_json::json!({"type": "resource", "resource": {"uri": "u:x", "text": "a", "blob": "AAAA"}}),
            serde_json::json!({"type": "resource", "resource": {"uri": "u:x"}}),
            serde_json::json!({"type": "image", "data": "AAAA"}),
        ] {
            assert!(
                serde_json::from_value::<ContentItem>(bad.clone()).is_err(),
                "{bad}"
            );
        }
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
