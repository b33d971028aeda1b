//! What a unit answers is untrusted: every content item is checked here (base64 that decodes, a
//! `type/subtype` mime type, a resource URI with a scheme) before it becomes MCP content that
//! reaches the client.

use rmcp::model::{CallToolResult, ContentBlock};
use switchboard_tool_runtime::{ContentItem, ResourceContents, ToolOutput};

/// The MCP result of a tool's output, or why the output cannot be passed on: every item is
/// checked, since what a unit writes is untrusted (base64 that decodes, a `type/subtype` mime
/// type, a resource URI with a scheme).
pub(super) fn to_call_result(output: ToolOutput) -> Result<CallToolResult, String> {
    let content = output
        .content
        .into_iter()
        .enumerate()
        .map(|(i, c)| to_content_block(c).map_err(|why| format!("content item {i}: {why}")))
        .collect::<Result<Vec<ContentBlock>, String>>()?;
    let mut result = if output.is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    result.structured_content = output.structured_content;
    Ok(result)
}

fn to_content_block(item: ContentItem) -> Result<ContentBlock, String> {
    Ok(match item {
        ContentItem::Text { text } => ContentBlock::text(text),
        ContentItem::Image { data, mime_type } => {
            check_base64("image data", &data)?;
            check_mime_type(&mime_type)?;
            ContentBlock::image(data, mime_type)
        }
        ContentItem::Audio { data, mime_type } => {
            check_base64("audio data", &data)?;
            check_mime_type(&mime_type)?;
            ContentBlock::audio(data, mime_type)
        }
        ContentItem::Resource { resource } => {
            let contents = match resource {
                ResourceContents::Text {
                    uri,
                    mime_type,
                    text,
                } => {
                    check_uri(&uri)?;
                    mime_type.as_deref().map(check_mime_type).transpose()?;
                    rmcp::model::ResourceContents::TextResourceContents {
                        uri,
                        mime_type,
                        text,
                        meta: None,
                    }
                }
                ResourceContents::Blob {
                    uri,
                    mime_type,
                    blob,
                } => {
                    check_uri(&uri)?;
                    mime_type.as_deref().map(check_mime_type).transpose()?;
                    check_base64("resource blob", &blob)?;
                    rmcp::model::ResourceContents::BlobResourceContents {
                        uri,
                        mime_type,
                        blob,
                        meta: None,
                    }
                }
            };
            ContentBlock::resource(contents)
        }
    })
}

/// `data` must be base64 of the standard alphabet, padded.
fn check_base64(what: &str, data: &str) -> Result<(), String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map(drop)
        .map_err(|e| format!("{what} is not valid base64 ({e})"))
}

/// A mime type must look like `type/subtype`, optionally followed by `;` parameters.
fn check_mime_type(mime: &str) -> Result<(), String> {
    let bad = || {
        let shown: String = mime.chars().take(64).collect();
        Err(format!("{shown:?} is not a mime type (type/subtype)"))
    };
    if mime.len() > 255 {
        return bad();
    }
    let (essence, params) = mime.split_once(';').unwrap_or((mime, ""));
    let Some((kind, subtype)) = essence.split_once('/') else {
        return bad();
    };
    // RFC 6838 restricted names.
    let name = |s: &str| {
        s.len() <= 127
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let params_ok = params.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    if name(kind) && name(subtype) && params_ok {
        Ok(())
    } else {
        bad()
    }
}

/// A resource URI must be non-empty, have a scheme and hold no whitespace or control characters.
fn check_uri(uri: &str) -> Result<(), String> {
    let scheme_ok = uri.split_once(':').is_some_and(|(scheme, _)| {
        scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    });
    if scheme_ok && uri.len() <= 8192 && !uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(())
    } else {
        let shown: String = uri.chars().take(64).collect();
        Err(format!("resource uri {shown:?} is not a URI"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(items: serde_json::Value) -> ToolOutput {
        serde_json::from_value(serde_json::json!({ "content": items })).expect("valid output")
    }

    #[test]
    fn every_content_type_reaches_mcp() {
        let result = to_call_result(output(serde_json::json!([
            {"type": "text", "text": "hi"},
            {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
            {"type": "audio", "data": "UklGRg==", "mimeType": "audio/wav"},
            {"type": "resource", "resource": {"uri": "test://r", "mimeType": "text/plain", "text": "x"}},
            {"type": "resource", "resource": {"uri": "file:///b.bin", "blob": "AAEC"}},
        ])))
        .expect("valid content");
        let wire = serde_json::to_value(&result).expect("serializes");
        assert_eq!(
            wire["content"],
            serde_json::json!([
                {"type": "text", "text": "hi"},
                {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
                {"type": "audio", "data": "UklGRg==", "mimeType": "audio/wav"},
                {"type": "resource", "resource": {"uri": "test://r", "mimeType": "text/plain", "text": "x"}},
                {"type": "resource", "resource": {"uri": "file:///b.bin", "blob": "AAEC"}},
            ])
        );
        assert_ne!(result.is_error, Some(true));
    }

    #[test]
    fn invalid_content_is_refused_with_a_reason() {
        for (items, needle) in [
            (
                serde_json::json!([{"type": "image", "data": "not base64!", "mimeType": "image/png"}]),
                "image data is not valid base64",
            ),
            (
                serde_json::json!([{"type": "image", "data": "AAAA", "mimeType": "png"}]),
                "not a mime type",
            ),
            (
                serde_json::json!([{"type": "audio", "data": "AAA", "mimeType": "audio/wav"}]),
                "audio data is not valid base64",
            ),
            (
                serde_json::json!([{"type": "audio", "data": "AAAA", "mimeType": "audio/wav\n"}]),
                "not a mime type",
            ),
            (
                serde_json::json!([{"type": "text", "text": "ok"},
                    {"type": "resource", "resource": {"uri": "no scheme", "text": "x"}}]),
                "content item 1: resource uri",
            ),
            (
                serde_json::json!([{"type": "resource", "resource": {"uri": "u:x", "blob": "@@@@"}}]),
                "resource blob is not valid base64",
            ),
            (
                serde_json::json!([{"type": "resource", "resource": {"uri": "u:x", "mimeType": "a b/c", "text": "x"}}]),
                "not a mime type",
            ),
        ] {
            let e = to_call_result(output(items.clone())).expect_err("must be refused");
            assert!(e.contains(needle), "{items}: {e}");
        }
    }

    #[test]
    fn mime_types_and_uris() {
        for ok in [
            "image/png",
            "audio/wav",
            "application/vnd.api+json",
            "text/plain; charset=utf-8",
        ] {
            assert!(check_mime_type(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "image",
            "/png",
            "image/",
            "ima ge/png",
            "image/png/x",
            "image/p\u{0}ng",
        ] {
            assert!(check_mime_type(bad).is_err(), "{bad:?}");
        }
        for ok in [
            "test://embedded-resource",
            "file:///a/b",
            "urn:x:y",
            "data:,hi",
        ] {
            assert!(check_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "relative/path",
            "://x",
            "1ab:x",
            "test://a b",
            "test://a\nb",
        ] {
            assert!(check_uri(bad).is_err(), "{bad:?}");
        }
    }
}
