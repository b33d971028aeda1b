//! Argument validation: input schemas compiled once at start-up, never resolving anything remote,
//! and a bound on JSON nesting that is checked before a body is parsed.

use jsonschema::Validator;

/// Compiles a tool's input schema. Remote references are refused by the catalog check before this
/// runs, and the validator is built without any retriever, so nothing is ever fetched.
pub fn compile(schema: &serde_json::Value) -> Result<Validator, String> {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// Validates arguments; on failure the message names the failing field by its JSON pointer.
pub fn check_arguments(validator: &Validator, arguments: &serde_json::Value) -> Result<(), String> {
    let errors: Vec<String> = validator
        .iter_errors(arguments)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() {
                "(arguments)".to_owned()
            } else {
                format!("field {at}")
            };
            format!("{at}: {}", truncate(&e.to_string(), 200))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The deepest nesting of arrays and objects in a JSON text, scanning bytes without parsing
/// (so a hostile document cannot exhaust the parser's stack). Brackets inside strings do not
/// count. Stops early once `limit` is exceeded.
pub fn json_depth_exceeds(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_nesting_outside_strings() {
        assert!(!json_depth_exceeds(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(json_depth_exceeds(br#"{"a":[1,{"b":[2]}]}"#, 3));
        assert!(!json_depth_exceeds(br#"{"a":"[[[[[[[[\"[[["}"#, 1));
        let deep = "[".repeat(10_000);
        assert!(json_depth_exceeds(deep.as_bytes(), 64));
    }

    #[test]
    fn failing_field_is_named() {
        let v = compile(&json!({
            "type": "object",
            "properties": {"message": {"type": "string", "maxLength": 3}},
            "required": ["message"]
        }))
        .expect("compiles");
        assert!(check_arguments(&v, &json!({"message": "hi"})).is_ok());
        let e = check_arguments(&v, &json!({"message": "too long"})).expect_err("too long");
        assert!(e.contains("/message"), "{e}");
        let e = check_arguments(&v, &json!({})).expect_err("missing");
        assert!(e.contains("message"), "{e}");
    }

    #[test]
    fn remote_ref_is_never_fetched() {
        // No retriever is configured: compiling a schema with a remote $ref fails instead of
        // reaching out.
        let r = compile(
            &json!({"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:9/x"}}}),
        );
        assert!(r.is_err());
    }
}
