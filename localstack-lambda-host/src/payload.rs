//! The bodies and log lines the host sends to LocalStack, shaped as LocalStack's own
//! runtime-init (the Docker executor's) shapes them, so an invocation fails the same way here
//! as there.

use std::process::ExitStatus;
use std::time::Duration;

use serde_json::json;

/// `2006-01-02T15:04:05Z`, the timestamp of a timeout message.
fn now_seconds() -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// The error of an invocation that ran past the function's timeout (no `errorType`, as the
/// Docker executor reports it).
pub fn timeout_error(request_id: &str, timeout_seconds: u32) -> Vec<u8> {
    json!({
        "errorMessage": format!(
            "{} {request_id} Task timed out after {timeout_seconds}.00 seconds",
            now_seconds()
        ),
    })
    .to_string()
    .into_bytes()
}

/// The log line Lambda writes when an invocation times out.
pub fn timeout_log_line(request_id: &str, timeout_seconds: u32) -> String {
    format!(
        "{} {request_id} Task timed out after {timeout_seconds}.00 seconds\n",
        now_seconds()
    )
}

/// How a process ended, in Go's words (`exit status 1`, `signal: killed`), as Lambda says it.
pub fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(9)) => "signal: killed".into(),
        (None, Some(6)) => "signal: aborted".into(),
        (None, Some(11)) => "signal: segmentation fault".into(),
        (None, Some(signal)) => format!("signal: {signal}"),
        (None, None) => "unknown exit".into(),
    }
}

/// The runtime process ended while an invocation (or the init) was under way.
pub fn exit_error(request_id: Option<&str>, status: &ExitStatus) -> Vec<u8> {
    let prefix = request_id
        .map(|id| format!("RequestId: {id} "))
        .unwrap_or_default();
    json!({
        "errorType": "Runtime.ExitError",
        "errorMessage": format!(
            "{prefix}Error: Runtime exited with error: {}",
            describe_exit(status)
        ),
    })
    .to_string()
    .into_bytes()
}

/// A failure of the host itself (the sandbox could not start, the runtime is gone), as the
/// Docker executor reports its own.
pub fn runtime_unknown(message: &str) -> Vec<u8> {
    json!({"errorType": "Runtime.Unknown", "errorMessage": message})
        .to_string()
        .into_bytes()
}

/// No bootstrap to run.
pub fn invalid_entrypoint(message: &str) -> Vec<u8> {
    json!({
        "errorType": "Runtime.InvalidEntrypoint",
        "errorMessage": message,
    })
    .to_string()
    .into_bytes()
}

/// A response larger than Lambda accepts.
pub fn response_too_large(limit: usize) -> Vec<u8> {
    json!({
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": format!("Response payload size exceeded maximum allowed payload size ({limit} bytes)."),
    })
    .to_string()
    .into_bytes()
}

/// An error the function posted (`/invocation/{id}/error` or `/init/error`): its body when it
/// is a JSON object, with `errorType` taken from the `Lambda-Runtime-Function-Error-Type` header
/// when the body has none; otherwise the body as the message.
pub fn function_error(error_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let fallback_type = error_type.unwrap_or("Unhandled");
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut map)) => {
            if !map.contains_key("errorType") {
                map.insert("errorType".into(), fallback_type.into());
            }
            serde_json::Value::Object(map).to_string().into_bytes()
        }
        _ => json!({
            "errorType": fallback_type,
            "errorMessage": String::from_utf8_lossy(body),
        })
        .to_string()
        .into_bytes(),
    }
}

pub fn start_line(request_id: &str, version: &str) -> String {
    format!("START RequestId: {request_id} Version: {version}\n")
}

/// `END` and `REPORT`, as LocalStack's runtime-init prints them (the memory used is reported as
/// the memory size there too). `init` is the duration of an init that ran for this invocation.
pub fn end_lines(
    request_id: &str,
    duration: Duration,
    timeout: Duration,
    memory_mb: u32,
    init: Option<Duration>,
) -> String {
    let ms = duration.min(timeout).as_secs_f64() * 1000.0;
    let init = init
        .map(|d| format!("Init Duration: {:.2} ms\t", d.as_secs_f64() * 1000.0))
        .unwrap_or_default();
    format!(
        "END RequestId: {request_id}\nREPORT RequestId: {request_id}\t{init}Duration: {ms:.2} ms\t\
         Billed Duration: {:.0} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: {memory_mb} MB\t\n",
        ms.ceil()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn parse(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).expect("json")
    }

    #[test]
    fn timeout_matches_the_docker_executor() {
        let v = parse(&timeout_error("req-1", 3));
        let message = v["errorMessage"].as_str().expect("message");
        assert!(
            message.ends_with(" req-1 Task timed out after 3.00 seconds"),
            "{message}"
        );
        assert!(v.get("errorType").is_none());
    }

    #[test]
    fn exit_error_names_the_status() {
        let v = parse(&exit_error(Some("r"), &ExitStatus::from_raw(1 << 8)));
        assert_eq!(v["errorType"], "Runtime.ExitError");
        assert_eq!(
            v["errorMessage"],
            "RequestId: r Error: Runtime exited with error: exit status 1"
        );
        let killed = parse(&exit_error(None, &ExitStatus::from_raw(9)));
        assert_eq!(
            killed["errorMessage"],
            "Error: Runtime exited with error: signal: killed"
        );
    }

    #[test]
    fn function_error_keeps_the_body_and_fills_the_type() {
        let v = parse(&function_error(
            Some("ToolError"),
            br#"{"errorMessage":"no luck"}"#,
        ));
        assert_eq!(v["errorType"], "ToolError");
        assert_eq!(v["errorMessage"], "no luck");
        let kept = parse(&function_error(
            Some("X"),
            br#"{"errorType":"Mine","errorMessage":"m"}"#,
        ));
        assert_eq!(kept["errorType"], "Mine");
        let text = parse(&function_error(None, b"plain words"));
        assert_eq!(text["errorType"], "Unhandled");
        assert_eq!(text["errorMessage"], "plain words");
    }

    #[test]
    fn report_line_has_lambdas_fields() {
        let lines = end_lines(
            "r",
            Duration::from_millis(1500),
            Duration::from_secs(1),
            128,
            Some(Duration::from_millis(5)),
        );
        assert!(lines.starts_with("END RequestId: r\nREPORT RequestId: r\t"));
        assert!(lines.contains("Init Duration: 5.00 ms\t"));
        assert!(
            lines.contains("Duration: 1000.00 ms\tBilled Duration: 1000 ms\tMemory Size: 128 MB")
        );
    }
}
