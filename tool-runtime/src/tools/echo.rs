//! `echo`: answers with the message it is given. A harmless tool to try the gateway with.

use crate::contract::{Invocation, ToolOutput};

/// Why echo could not answer.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    #[error("argument \"message\" must be a string")]
    MissingMessage,
}

/// Returns `{"message": <message>}` as structured content and the message as text.
pub fn echo(invocation: Invocation) -> Result<ToolOutput, EchoError> {
    let message = invocation
        .arguments
        .get("message")
        .and_then(|m| m.as_str())
        .ok_or(EchoError::MissingMessage)?;
    let mut output = ToolOutput::structured(serde_json::json!({ "message": message }));
    output.content = vec![crate::ContentItem::Text {
        text: message.to_owned(),
    }];
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(arguments: serde_json::Value) -> Invocation {
        serde_json::from_value(serde_json::json!({
            "invocationId": "i", "tool": "echo", "arguments": arguments, "deadlineUnixMs": 0
        }))
        .expect("valid invocation")
    }

    #[test]
    fn echoes_the_message() {
        let out = echo(invocation(serde_json::json!({"message": "héllo"}))).expect("echo works");
        assert_eq!(
            out.structured_content,
            Some(serde_json::json!({"message": "héllo"}))
        );
        assert_eq!(
            out.content,
            vec![crate::ContentItem::Text {
                text: "héllo".into()
            }]
        );
    }

    #[test]
    fn refuses_a_missing_message() {
        assert!(echo(invocation(serde_json::json!({"msg": 1}))).is_err());
    }
}
