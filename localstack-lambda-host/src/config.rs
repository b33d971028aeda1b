//! What one execution environment is: read as one JSON line on standard input, written there by
//! the LocalStack plugin (`localstack/plugin/switchboard_localstack/sandbox_executor.py`).
//!
//! The function's environment carries the role's credentials, so it travels on a pipe rather
//! than the command line, and `Debug` prints the variable names only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// The port of the Runtime API inside the sandbox (`AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001`,
/// as in Lambda).
pub const RUNTIME_API_PORT: u16 = 9001;
/// The largest response or error a function may return (Lambda's synchronous limit).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Logs kept for one invocation; more is dropped with a note.
pub const MAX_LOG_BYTES: usize = 4 * 1024 * 1024;
/// Processes and threads of one environment (enforced when the host runs as root and the
/// environment has a host uid of its own).
pub const MAX_PROCESSES: u64 = 256;
/// Open files per process (Lambda's limit).
pub const MAX_OPEN_FILES: u64 = 1024;

/// LocalStack's internal variables, which its own runtime-init removes before it starts the
/// function (plus `HOME` and `HOSTNAME`, as there).
const INTERNAL_VARIABLES: &[&str] = &[
    "LOCALSTACK_RUNTIME_ENDPOINT",
    "LOCALSTACK_RUNTIME_ID",
    "LOCALSTACK_INTEROP_PORT",
    "LOCALSTACK_RUNTIME_TRACING_PORT",
    "LOCALSTACK_USER",
    "LOCALSTACK_CODE_ARCHIVES",
    "LOCALSTACK_HOT_RELOADING_PATHS",
    "LOCALSTACK_ENABLE_DNS_SERVER",
    "LOCALSTACK_ENABLE_XRAY_TELEMETRY",
    "LOCALSTACK_INIT_LOG_LEVEL",
    "LOCALSTACK_POST_INVOKE_WAIT_MS",
    "LOCALSTACK_CHMOD_PATHS",
    "LOCALSTACK_MAX_PAYLOAD_SIZE",
    "HOSTNAME",
    "HOME",
];

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration line from stdin: {0}")]
    Read(std::io::Error),
    #[error("stdin closed before the configuration line arrived")]
    Missing,
    #[error("the configuration line is not valid: {0}")]
    Parse(serde_json::Error),
    #[error("{field} must be at least {min} (got {value})")]
    TooSmall {
        field: &'static str,
        min: u32,
        value: u32,
    },
}

/// One execution environment of one function version.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// LocalStack's id of the environment (`LOCALSTACK_RUNTIME_ID`).
    pub runtime_id: String,
    pub function_name: String,
    /// The version's qualifier (`$LATEST`, `1`, ...).
    pub function_version: String,
    /// LocalStack's callback base, `http://127.0.0.1:4566/_localstack_lambda/<id>`.
    pub runtime_endpoint: String,
    /// The unzipped code, mounted read-only at `/var/task`.
    pub code_dir: PathBuf,
    pub timeout_seconds: u32,
    pub memory_mb: u32,
    /// Size of `/tmp` in MiB.
    pub ephemeral_storage_mb: u32,
    /// What LocalStack gives the environment (reserved variables, credentials, the function's
    /// own variables).
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// A folder only this environment uses (its Runtime API socket); removed at the end.
    pub work_dir: PathBuf,
    /// Where leases of host uids are kept (shared by all environments of the machine).
    pub uid_lock_dir: PathBuf,
    /// The bubblewrap executable; found on `PATH` when absent.
    #[serde(default)]
    pub bwrap: Option<PathBuf>,
    /// First host uid an environment may lease when the host runs as root.
    #[serde(default = "default_uid_base")]
    pub host_uid_base: u32,
    /// How many host uids there are to lease.
    #[serde(default = "default_uid_count")]
    pub host_uid_count: u32,
}

fn default_uid_base() -> u32 {
    1_800_000_000
}

fn default_uid_count() -> u32 {
    4096
}

impl fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostConfig")
            .field("runtime_id", &self.runtime_id)
            .field("function_name", &self.function_name)
            .field("function_version", &self.function_version)
            .field("runtime_endpoint", &self.runtime_endpoint)
            .field("code_dir", &self.code_dir)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("memory_mb", &self.memory_mb)
            .field("ephemeral_storage_mb", &self.ephemeral_storage_mb)
            .field("environment", &self.environment.keys().collect::<Vec<_>>())
            .field("work_dir", &self.work_dir)
            .field("uid_lock_dir", &self.uid_lock_dir)
            .finish_non_exhaustive()
    }
}

impl HostConfig {
    /// Parses and checks one configuration line.
    pub fn parse(line: &str) -> Result<Self, ConfigError> {
        let config: Self = serde_json::from_str(line).map_err(ConfigError::Parse)?;
        for (field, min, value) in [
            ("timeout_seconds", 1, config.timeout_seconds),
            ("memory_mb", 32, config.memory_mb),
            ("ephemeral_storage_mb", 1, config.ephemeral_storage_mb),
        ] {
            if value < min {
                return Err(ConfigError::TooSmall { field, min, value });
            }
        }
        Ok(config)
    }

    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.memory_mb) << 20
    }

    pub fn scratch_bytes(&self) -> u64 {
        u64::from(self.ephemeral_storage_mb) << 20
    }

    /// The function's environment: LocalStack's variables less its internal ones, the Runtime
    /// API's address, and Lambda's defaults for what is not set.
    pub fn function_environment(&self) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = self
            .environment
            .iter()
            .filter(|(k, _)| !INTERNAL_VARIABLES.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, value) in [
            ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
            (
                "LD_LIBRARY_PATH",
                "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
            ),
            ("LANG", "en_US.UTF-8"),
            ("LAMBDA_TASK_ROOT", "/var/task"),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
        ] {
            env.entry(key.into()).or_insert_with(|| value.into());
        }
        env.insert(
            "AWS_LAMBDA_RUNTIME_API".into(),
            format!("127.0.0.1:{RUNTIME_API_PORT}"),
        );
        env.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(extra: serde_json::Value) -> String {
        let mut v = serde_json::json!({
            "runtime_id": "r1", "function_name": "f", "function_version": "$LATEST",
            "runtime_endpoint": "http://127.0.0.1:4566/_localstack_lambda/r1",
            "code_dir": "/code", "timeout_seconds": 3, "memory_mb": 128,
            "ephemeral_storage_mb": 512, "work_dir": "/w", "uid_lock_dir": "/u",
        });
        if let (Some(map), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            map.extend(extra.clone());
        }
        v.to_string()
    }

    #[test]
    fn internal_variables_are_removed_and_the_runtime_api_is_set() {
        let config = HostConfig::parse(&line(serde_json::json!({"environment": {
            "LOCALSTACK_RUNTIME_ENDPOINT": "http://x", "HOME": "/root", "FOO": "bar",
            "AWS_LAMBDA_RUNTIME_API": "10.0.0.1:1", "PATH": "/custom"
        }})))
        .expect("valid");
        let env: BTreeMap<_, _> = config.function_environment().into_iter().collect();
        assert_eq!(env.get("FOO").map(String::as_str), Some("bar"));
        assert_eq!(env.get("PATH").map(String::as_str), Some("/custom"));
        assert_eq!(
            env.get("AWS_LAMBDA_RUNTIME_API").map(String::as_str),
            Some("127.0.0.1:9001")
        );
        assert!(!env.contains_key("LOCALSTACK_RUNTIME_ENDPOINT"));
        assert!(!env.contains_key("HOME"));
        assert_eq!(
            env.get("LAMBDA_TASK_ROOT").map(String::as_str),
            Some("/var/task")
        );
    }

    #[test]
    fn unknown_fields_and_tiny_limits_are_refused() {
        assert!(matches!(
            HostConfig::parse(&line(serde_json::json!({"surprise": 1}))),
            Err(ConfigError::Parse(_))
        ));
        assert!(matches!(
            HostConfig::parse(&line(serde_json::json!({"timeout_seconds": 0}))),
            Err(ConfigError::TooSmall { .. })
        ));
    }

    #[test]
    fn debug_never_prints_variable_values() {
        let config = HostConfig::parse(&line(serde_json::json!({"environment": {
            "AWS_SECRET_ACCESS_KEY": "very-secret"
        }})))
        .expect("valid");
        let printed = format!("{config:?}");
        assert!(printed.contains("AWS_SECRET_ACCESS_KEY"));
        assert!(!printed.contains("very-secret"));
    }
}
