//! Clients, functions and invocations shared by the suite.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, EphemeralStorage, FunctionCode, Runtime, State};
use serde_json::Value;

/// LocalStack's address, from the environment run.sh sets up.
pub fn endpoint() -> String {
    std::env::var("LOCALSTACK_ENDPOINT")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .expect("LOCALSTACK_ENDPOINT is not set: run this suite through tests/lambda/run.sh")
}

async fn sdk_config() -> aws_config::SdkConfig {
    let credentials = aws_sdk_lambda::config::Credentials::new("test", "test", None, None, "suite");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await
}

pub async fn lambda() -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(&sdk_config().await)
}

pub async fn logs() -> aws_sdk_cloudwatchlogs::Client {
    aws_sdk_cloudwatchlogs::Client::new(&sdk_config().await)
}

/// Which zip a test function runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Package {
    /// `switchboard-lambda-probe`: the test tool (`LAMBDA_PROBE_ZIP`).
    #[default]
    Probe,
    /// `switchboard-tool`: the reference tools as shipped (`LAMBDA_TOOLS_ZIP`, made by
    /// `scripts/package-lambda`).
    ReferenceTools,
}

impl Package {
    fn zip(self) -> Vec<u8> {
        let var = match self {
            Self::Probe => "LAMBDA_PROBE_ZIP",
            Self::ReferenceTools => "LAMBDA_TOOLS_ZIP",
        };
        let path = std::env::var(var).unwrap_or_else(|_| {
            panic!("{var} is not set: run this suite through tests/lambda/run.sh")
        });
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
    }
}

/// How a test function is configured.
#[derive(Debug, Clone)]
pub struct Spec {
    pub timeout_seconds: i32,
    pub memory_mb: i32,
    pub ephemeral_storage_mb: i32,
    pub variables: Vec<(&'static str, &'static str)>,
    pub package: Package,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            timeout_seconds: 10,
            memory_mb: 128,
            ephemeral_storage_mb: 512,
            variables: Vec::new(),
            package: Package::Probe,
        }
    }
}

/// A function created for one test; [`Function::delete`] removes it.
#[derive(Debug)]
pub struct Function {
    pub name: String,
    pub client: aws_sdk_lambda::Client,
}

/// What `Invoke` answered.
#[derive(Debug)]
pub struct Invoked {
    pub function_error: Option<String>,
    pub payload: Value,
}

impl Invoked {
    /// The tool's structured result, failing the test when the invocation failed.
    pub fn result(&self) -> &Value {
        assert!(
            self.function_error.is_none(),
            "the invocation failed: {:?} {}",
            self.function_error,
            self.payload
        );
        &self.payload["structuredContent"]
    }
}

impl Function {
    /// Creates the function as `probe-<label>-<random>` and waits until it is Active.
    pub async fn create(label: &str, spec: Spec) -> Self {
        let client = lambda().await;
        let name = format!(
            "probe-{label}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut env = Environment::builder();
        for (k, v) in &spec.variables {
            env = env.variables(*k, *v);
        }
        client
            .create_function()
            .function_name(&name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role("arn:aws:iam::000000000000:role/switchboard-lambda-probe")
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(spec.package.zip()))
                    .build(),
            )
            .timeout(spec.timeout_seconds)
            .memory_size(spec.memory_mb)
            .ephemeral_storage(
                EphemeralStorage::builder()
                    .size(spec.ephemeral_storage_mb)
                    .build()
                    .expect("size is set"),
            )
            .environment(env.build())
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateFunction {name}: {e:?}"));
        let function = Self { name, client };
        function.wait_active().await;
        function
    }

    async fn wait_active(&self) {
        for _ in 0..120 {
            let config = self
                .client
                .get_function_configuration()
                .function_name(&self.name)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetFunctionConfiguration {}: {e:?}", self.name));
            match config.state() {
                Some(State::Active) => return,
                Some(State::Failed) => panic!("{} failed: {:?}", self.name, config.state_reason()),
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        panic!("{} did not become Active", self.name);
    }

    /// Invokes `tool` with `arguments` (the tool contract's invocation as payload).
    pub async fn invoke(&self, tool: &str, arguments: Value) -> Invoked {
        let invocation = serde_json::json!({
            "invocationId": uuid::Uuid::new_v4().to_string(),
            "tool": tool,
            "arguments": arguments,
            "deadlineUnixMs": 4_102_444_800_000u64,
        });
        let out = self
            .client
            .invoke()
            .function_name(&self.name)
            .payload(Blob::new(invocation.to_string()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("Invoke {} {tool}: {e:?}", self.name));
        let bytes = out
            .payload()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        let payload = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Invoked {
            function_error: out.function_error().map(str::to_owned),
            payload,
        }
    }

    pub async fn delete(self) {
        self.client
            .delete_function()
            .function_name(&self.name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteFunction {}: {e:?}", self.name));
    }
}

/// Command lines of the live processes whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmdline.contains(needle).then_some((pid, cmdline))
        })
        .collect()
}
