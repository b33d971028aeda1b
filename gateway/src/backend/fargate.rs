//! The Fargate backend: each call is one `RunTask` of the tool's task definition.
//!
//! `RunTask` overrides are readable by anyone with `ecs:DescribeTasks` and are recorded by
//! CloudTrail, so the invocation (arguments and minted credentials) never goes there. Per call:
//!
//! 1. the invocation is written to the invocation bucket at `<prefix><invocation id>/invocation.json`
//!    (encrypted by the bucket's default, the deployment's own KMS key: `infra/modules/gateway`);
//! 2. `RunTask` (`FARGATE`, `awsvpc` with the binding's subnets and security groups,
//!    `assignPublicIp DISABLED`, the tool's ephemeral storage, `startedBy` and `clientToken` = the
//!    invocation id, tags `tool` and `invocation`) whose only container override is two variables:
//!    a presigned `GET` of the invocation and a presigned `PUT` of `.../result.json`, both expiring
//!    at the call's deadline (and `TRACEPARENT`, the call's trace context, when there is one) (the task's `switchboard-tool` runs in container mode,
//!    `tool-runtime/src/container.rs`);
//! 3. the backend polls `DescribeTasks` and the result object with capped, jittered backoff,
//!    reporting progress as the task moves (provisioning, pending, running); the answer is the
//!    result object (at most [`MAX_RESULT_BYTES`]), or a clear error naming the exit code or the
//!    stopped reason;
//! 4. cancellation, the deadline and shutdown each end in `StopTask` with a reason naming the
//!    invocation; the call answers at once. Both objects are deleted when the call ends, however
//!    it ends.
//!
//! `clientToken` makes `RunTask` idempotent, so the SDK's retries cannot start a second task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, ContainerOverride, EphemeralStorage, KeyValuePair,
    LaunchType, NetworkConfiguration, Tag, TaskOverride,
};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use switchboard_tool_runtime::ToolOutput;
use switchboard_tool_runtime::container::{INVOCATION_URL_ENV, RESULT_URL_ENV};
use tracing::Instrument as _;

/// The container variable holding the call's W3C traceparent (not a secret: ids only).
pub const TRACEPARENT_ENV: &str = "TRACEPARENT";

use super::{Backend, BackendError, Dispatch, Dispatched, Progress};
use crate::bindings::{Bindings, InvocationBucket};
use crate::catalog::{BackendKind, Tool};
use crate::credentials::Backoff;
use crate::metrics::AwsErrors;

/// The largest result object the gateway reads (the local backend's stdout cap).
pub const MAX_RESULT_BYTES: i64 = 4 << 20;

/// The largest invocation the gateway writes (what container mode accepts).
pub const MAX_INVOCATION_BYTES: usize =
    switchboard_tool_runtime::oneshot::MAX_INVOCATION_BYTES as usize;

/// Fargate's least ephemeral storage (GiB); the task definition's own is at least this.
const MIN_STORAGE_GIB: i32 = 21;

/// How long a `StopTask` at cancellation or shutdown may take before the gateway gives up on it.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What RunTask needs for one tool (from its binding).
#[derive(Debug, Clone)]
pub struct TaskTarget {
    pub cluster: String,
    pub task_definition: String,
    pub container: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
}

/// How often the backend looks at a task, and how RunTask throttling is spaced: the broker's
/// capped, full-jitter [`Backoff`] (its attempt limit is not used; the deadline bounds the wait).
fn polling() -> Backoff {
    Backoff {
        base: Duration::from_millis(250),
        cap: Duration::from_secs(3),
        max_attempts: u32::MAX,
    }
}

/// Runs each call as one Fargate task.
#[derive(Debug)]
pub struct FargateBackend {
    ecs: aws_sdk_ecs::Client,
    s3: aws_sdk_s3::Client,
    bucket: InvocationBucket,
    targets: HashMap<String, TaskTarget>,
    polling: Backoff,
    errors: AwsErrors,
    /// Tasks of calls in flight (task ARN → cluster), stopped at shutdown.
    running: Arc<Mutex<HashMap<String, String>>>,
}

impl FargateBackend {
    /// A backend for the `fargate` tools of `tools`, bound by `bindings`. An S3 endpoint set in
    /// `config` (an emulator) is addressed path-style.
    pub fn new(
        config: &aws_config::SdkConfig,
        bindings: &Bindings,
        tools: &[Tool],
        errors: AwsErrors,
    ) -> Result<Self, String> {
        let bucket = bindings
            .invocation_bucket
            .clone()
            .ok_or("the bindings have no invocation_bucket")?;
        let mut targets = HashMap::new();
        for tool in tools.iter().filter(|t| t.backend == BackendKind::Fargate) {
            let b = bindings
                .tool(&tool.name)
                .ok_or_else(|| format!("tool {:?} has no binding", tool.name))?;
            let need = |v: &Option<String>, what: &str| {
                v.clone()
                    .ok_or_else(|| format!("tool {:?}: the binding has no {what}", tool.name))
            };
            targets.insert(
                tool.name.clone(),
                TaskTarget {
                    cluster: need(&b.cluster_arn, "cluster_arn")?,
                    task_definition: need(&b.task_definition_arn, "task_definition_arn")?,
                    container: need(&b.container_name, "container_name")?,
                    subnets: b.subnets.clone(),
                    security_groups: b.security_groups.clone(),
                },
            );
        }
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        Ok(Self {
            ecs: aws_sdk_ecs::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3),
            bucket,
            targets,
            polling: polling(),
            errors,
            running: Arc::default(),
        })
    }

    /// Uses `polling` instead of the default.
    pub fn with_polling(mut self, polling: Backoff) -> Self {
        self.polling = polling;
        self
    }

    fn keys(&self, invocation_id: &str) -> (String, String) {
        let base = format!("{}{invocation_id}", self.bucket.prefix);
        (
            format!("{base}/invocation.json"),
            format!("{base}/result.json"),
        )
    }

    fn start_error(&self, service: &str, what: &str, code: &str, message: &str) -> BackendError {
        self.errors.count(service, code);
        BackendError::Start {
            message: format!("{what} failed: {code}: {message}"),
        }
    }

    /// Writes the invocation and presigns the two URLs.
    async fn stage(
        &self,
        call: &Dispatch,
        payload: Vec<u8>,
        invocation_key: &str,
        result_key: &str,
    ) -> Result<(String, String), BackendError> {
        self.s3
            .put_object()
            .bucket(&self.bucket.name)
            .key(invocation_key)
            .content_type("application/json")
            .body(ByteStream::from(payload))
            .send()
            .await
            .map_err(|e| {
                let (code, message) = code_and_message(&e);
                self.start_error("s3", "writing the invocation", &code, &message)
            })?;
        let expires = call.deadline.remaining().max(Duration::from_secs(1));
        let presign = || {
            PresigningConfig::expires_in(expires).map_err(|e| BackendError::Start {
                message: format!("cannot presign for {} s: {e}", expires.as_secs()),
            })
        };
        let get = self
            .s3
            .get_object()
            .bucket(&self.bucket.name)
            .key(invocation_key)
            .presigned(presign()?)
            .await
            .map_err(|e| BackendError::Start {
                message: format!("cannot presign the invocation's GET: {e}"),
            })?;
        let put = self
            .s3
            .put_object()
            .bucket(&self.bucket.name)
            .key(result_key)
            .presigned(presign()?)
            .await
            .map_err(|e| BackendError::Start {
                message: format!("cannot presign the result's PUT: {e}"),
            })?;
        Ok((get.uri().to_owned(), put.uri().to_owned()))
    }

    /// `RunTask`, retried on throttling while the deadline allows; the task's ARN.
    async fn run_task(
        &self,
        call: &Dispatch,
        target: &TaskTarget,
        get_url: String,
        put_url: String,
    ) -> Result<String, BackendError> {
        let id = &call.invocation.invocation_id;
        let network = AwsVpcConfiguration::builder()
            .set_subnets(Some(target.subnets.clone()))
            .set_security_groups(Some(target.security_groups.clone()))
            .assign_public_ip(AssignPublicIp::Disabled)
            .build()
            .map_err(|e| BackendError::Start {
                message: format!("network configuration: {e}"),
            })?;
        let storage = EphemeralStorage::builder()
            .size_in_gib(storage_gib(call.tool.ephemeral_storage_mb))
            .build();
        let var =
            |name: &str, value: String| KeyValuePair::builder().name(name).value(value).build();
        let mut environment = vec![
            var(INVOCATION_URL_ENV, get_url),
            var(RESULT_URL_ENV, put_url),
        ];
        // The trace context is no secret (ids only), unlike what the invocation holds.
        if let Some(traceparent) = &call.invocation.traceparent {
            environment.push(var(TRACEPARENT_ENV, traceparent.clone()));
        }
        let overrides = TaskOverride::builder()
            .container_overrides(
                ContainerOverride::builder()
                    .name(&target.container)
                    .set_environment(Some(environment))
                    .build(),
            )
            .ephemeral_storage(storage)
            .build();
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let mut retry = 0;
        loop {
            let sent = self
                .ecs
                .run_task()
                .cluster(&target.cluster)
                .task_definition(&target.task_definition)
                .launch_type(LaunchType::Fargate)
                .network_configuration(
                    NetworkConfiguration::builder()
                        .awsvpc_configuration(network.clone())
                        .build(),
                )
                .started_by(id)
                .client_token(id)
                .tags(tag("switchboard:tool", &call.tool.name))
                .tags(tag("switchboard:invocation", id))
                .overrides(overrides.clone())
                .send()
                .await;
            let reason = match sent {
                Ok(out) => {
                    if let Some(arn) = out.tasks().first().and_then(|t| t.task_arn()) {
                        return Ok(arn.to_owned());
                    }
                    let failures: Vec<String> = out
                        .failures()
                        .iter()
                        .map(|f| {
                            let reason = f.reason().unwrap_or("unknown");
                            match f.detail() {
                                Some(d) => format!("{reason} ({d})"),
                                None => reason.to_owned(),
                            }
                        })
                        .collect();
                    // A capacity shortage may pass; anything else will not.
                    if !failures.iter().any(|f| f.contains("RESOURCE")) {
                        self.errors.count("ecs", "RunTaskFailure");
                        return Err(BackendError::Start {
                            message: format!(
                                "ECS RunTask started no task: {}",
                                if failures.is_empty() {
                                    "no failure reported".into()
                                } else {
                                    failures.join("; ")
                                }
                            ),
                        });
                    }
                    failures.join("; ")
                }
                Err(e) => {
                    let (code, message) = code_and_message(&e);
                    if !is_throttling(&code) {
                        return Err(self.start_error("ecs", "ECS RunTask", &code, &message));
                    }
                    self.errors.count("ecs", &code);
                    format!("{code}: {message}")
                }
            };
            retry += 1;
            let pause = self.polling.pause(retry);
            if pause >= call.deadline.remaining() {
                return Err(BackendError::Start {
                    message: format!(
                        "ECS could not start the task ({reason}) and the deadline leaves no time \
                         to retry ({retry} attempt(s))"
                    ),
                });
            }
            tokio::select! {
                _ = call.cancel.cancelled() => return Err(BackendError::Cancelled { unit_id: None }),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Waits for the task's result or its stop.
    async fn wait(
        &self,
        call: &Dispatch,
        target: &TaskTarget,
        task_arn: &str,
        result_key: &str,
    ) -> Result<ToolOutput, BackendError> {
        let mut seen: Option<String> = None;
        let mut step = 0u32;
        let mut retry = 0u32;
        loop {
            let described = self
                .ecs
                .describe_tasks()
                .cluster(&target.cluster)
                .tasks(task_arn)
                .send()
                .await;
            match described {
                Ok(out) => {
                    if let Some(task) = out.tasks().first() {
                        let status = task.last_status().unwrap_or("UNKNOWN").to_owned();
                        if seen.as_deref() != Some(status.as_str()) {
                            step += 1;
                            let _ = call.progress.try_send(Progress {
                                progress: f64::from(step),
                                total: None,
                                message: Some(format!("task {}", status.to_lowercase())),
                            });
                            seen = Some(status.clone());
                        }
                        if let Some(output) = self.result(task_arn, result_key).await? {
                            return Ok(output);
                        }
                        if status == "STOPPED" {
                            return Err(stopped_error(task, &target.container));
                        }
                    }
                }
                Err(e) => {
                    let code = e.code().unwrap_or("unknown").to_owned();
                    self.errors.count("ecs", &code);
                    tracing::debug!(task = task_arn, code, "DescribeTasks failed; retrying");
                }
            }
            retry = (retry + 1).min(16);
            let pause = self.polling.pause(retry);
            tokio::time::sleep(pause).await;
        }
    }

    /// The result object, if the unit has stored it.
    async fn result(
        &self,
        task_arn: &str,
        result_key: &str,
    ) -> Result<Option<ToolOutput>, BackendError> {
        let unit = || Some(task_arn.to_owned());
        let got = self
            .s3
            .get_object()
            .bucket(&self.bucket.name)
            .key(result_key)
            .send()
            .await;
        let out = match got {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => {
                let code = e.code().unwrap_or("unknown").to_owned();
                self.errors.count("s3", &code);
                tracing::debug!(
                    key = result_key,
                    code,
                    "reading the result failed; retrying"
                );
                return Ok(None);
            }
        };
        let length = out.content_length().unwrap_or(0);
        if length > MAX_RESULT_BYTES {
            return Err(BackendError::Unit {
                unit_id: unit(),
                message: format!(
                    "the task's result is {length} bytes, over the limit of {MAX_RESULT_BYTES} bytes"
                ),
            });
        }
        let body = out.body.collect().await.map_err(|e| BackendError::Unit {
            unit_id: unit(),
            message: format!("cannot read the task's result: {e}"),
        })?;
        let bytes = body.into_bytes();
        if bytes.len() as i64 > MAX_RESULT_BYTES {
            return Err(BackendError::Unit {
                unit_id: unit(),
                message: format!("the task's result is over the limit of {MAX_RESULT_BYTES} bytes"),
            });
        }
        serde_json::from_slice::<ToolOutput>(&bytes)
            .map(Some)
            .map_err(|e| BackendError::Unit {
                unit_id: unit(),
                message: format!("the task did not store a tool result ({e})"),
            })
    }

    /// Deletes both objects of a call (errors are logged: the bucket's lifecycle rule is the
    /// backstop).
    async fn clean(&self, keys: [&str; 2]) {
        for key in keys {
            if let Err(e) = self
                .s3
                .delete_object()
                .bucket(&self.bucket.name)
                .key(key)
                .send()
                .await
            {
                let code = e.code().unwrap_or("unknown").to_owned();
                self.errors.count("s3", &code);
                tracing::warn!(key, code, "could not delete a call's object");
            }
        }
    }
}

/// Stops a task; counted and logged when ECS refuses.
async fn stop_task(
    ecs: &aws_sdk_ecs::Client,
    errors: &AwsErrors,
    cluster: &str,
    task: &str,
    reason: String,
) {
    let sent = tokio::time::timeout(
        STOP_TIMEOUT,
        ecs.stop_task()
            .cluster(cluster)
            .task(task)
            .reason(reason)
            .send(),
    )
    .await;
    match sent {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            let code = e.code().unwrap_or("unknown").to_owned();
            errors.count("ecs", &code);
            tracing::warn!(task, code, "StopTask failed");
        }
        Err(_) => tracing::warn!(task, "StopTask did not answer in time"),
    }
}

/// What a stopped task without a result came to, in words.
fn stopped_error(task: &aws_sdk_ecs::types::Task, container: &str) -> BackendError {
    let unit_id = task.task_arn().map(str::to_owned);
    let reason = task.stopped_reason().unwrap_or("").trim();
    let code = task.stop_code().map(|c| c.as_str().to_owned());
    let exit = task
        .containers()
        .iter()
        .find(|c| c.name() == Some(container))
        .and_then(|c| c.exit_code());
    let mut message = match exit {
        Some(code) => format!("the task's container exited with code {code} without a result"),
        None => "the task stopped without a result".to_owned(),
    };
    if let Some(code) = code {
        message.push_str(&format!(" (stop code {code})"));
    }
    if !reason.is_empty() {
        message.push_str(&format!(": {reason}"));
    }
    BackendError::Unit { unit_id, message }
}

/// An SDK error's code and words; without a service code (a connection failure, an answer that
/// does not parse) the words are the whole error context.
fn code_and_message<E, R>(e: &aws_sdk_ecs::error::SdkError<E, R>) -> (String, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.code() {
        Some(code) => (
            code.to_owned(),
            e.message().unwrap_or("no message").to_owned(),
        ),
        None => {
            let text = aws_sdk_ecs::error::DisplayErrorContext(e).to_string();
            ("unknown".to_owned(), text.chars().take(500).collect())
        }
    }
}

fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded"
    )
}

/// Whole GiB for `mb` megabytes, at least Fargate's 21.
fn storage_gib(mb: u32) -> i32 {
    (mb.div_ceil(1024) as i32).clamp(MIN_STORAGE_GIB, 200)
}

#[async_trait]
impl Backend for FargateBackend {
    async fn dispatch(&self, mut call: Dispatch) -> Result<Dispatched, BackendError> {
        let timeout_seconds = call.tool.timeout_seconds;
        let unit = call.unit_span("fargate");
        let target = self
            .targets
            .get(&call.tool.name)
            .ok_or_else(|| BackendError::Start {
                message: format!("no task definition is bound to tool {:?}", call.tool.name),
            })?;
        let payload = serde_json::to_vec(&call.invocation).map_err(|e| BackendError::Start {
            message: format!("cannot encode the invocation: {e}"),
        })?;
        if payload.len() > MAX_INVOCATION_BYTES {
            return Err(BackendError::Refused {
                message: format!(
                    "the invocation is {} bytes, over the limit of {MAX_INVOCATION_BYTES} bytes",
                    payload.len()
                ),
                label: "payload_too_large",
            });
        }
        let id = call.invocation.invocation_id.clone();
        let (invocation_key, result_key) = self.keys(&id);

        let run = async {
            let (get, put) = self
                .stage(&call, payload, &invocation_key, &result_key)
                .await?;
            let arn = self.run_task(&call, target, get, put).await?;
            self.running
                .lock()
                .expect("running tasks")
                .insert(arn.clone(), target.cluster.clone());
            let waited = tokio::select! {
                biased;
                _ = call.cancel.cancelled() => Err(BackendError::Cancelled { unit_id: Some(arn.clone()) }),
                _ = tokio::time::sleep_until(call.deadline.instant()) => Err(BackendError::DeadlineExceeded {
                    unit_id: Some(arn.clone()),
                    timeout_seconds,
                }),
                r = self.wait(&call, target, &arn, &result_key) => r,
            };
            // The gateway cancels every call at its deadline too: a cancel once the deadline has
            // passed is the deadline, and the StopTask says so.
            let waited = match waited {
                Err(BackendError::Cancelled { unit_id }) if call.deadline.passed() => {
                    Err(BackendError::DeadlineExceeded {
                        unit_id,
                        timeout_seconds,
                    })
                }
                other => other,
            };
            self.running.lock().expect("running tasks").remove(&arn);
            if let Err(
                e @ (BackendError::Cancelled { .. } | BackendError::DeadlineExceeded { .. }),
            ) = &waited
            {
                let why = if matches!(e, BackendError::Cancelled { .. }) {
                    "was cancelled"
                } else {
                    "ran past its deadline"
                };
                let (ecs, errors, cluster, task) = (
                    self.ecs.clone(),
                    self.errors.clone(),
                    target.cluster.clone(),
                    arn.clone(),
                );
                let reason = format!("switchboard: invocation {id} {why}");
                // The call answers at once; the stop goes on in the background.
                tokio::spawn(
                    async move { stop_task(&ecs, &errors, &cluster, &task, reason).await },
                );
            }
            waited.map(|output| Dispatched {
                output,
                unit_id: arn,
            })
        };
        let guarded = run.instrument(unit.clone()).await;
        if let Ok(d) = &guarded {
            unit.record("switchboard.unit_id", d.unit_id.as_str());
        }
        self.clean([&invocation_key, &result_key]).await;
        // The call's own line (mcp::call) is the one at info.
        tracing::debug!(
            tool = %call.tool.name,
            invocation = %id,
            unit_id = guarded.as_ref().map(|d| d.unit_id.as_str()).unwrap_or("-"),
            outcome = match &guarded {
                Ok(d) if d.output.is_error => "tool_error",
                Ok(_) => "ok",
                Err(e) => e.outcome(),
            },
            "fargate task finished"
        );
        guarded
    }

    async fn shutdown(&self) {
        let tasks: Vec<(String, String)> = self
            .running
            .lock()
            .expect("running tasks")
            .drain()
            .collect();
        let mut stops = Vec::new();
        for (task, cluster) in tasks {
            let reason = "switchboard: the gateway is shutting down".to_owned();
            let (ecs, errors) = (self.ecs.clone(), self.errors.clone());
            stops.push(tokio::spawn(async move {
                stop_task(&ecs, &errors, &cluster, &task, reason).await
            }));
        }
        for stop in stops {
            let _ = stop.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_whole_gib_and_at_least_fargates_least() {
        assert_eq!(storage_gib(512), 21);
        assert_eq!(storage_gib(21 * 1024), 21);
        assert_eq!(storage_gib(21 * 1024 + 1), 22);
        assert_eq!(storage_gib(1 << 30), 200);
    }

    #[test]
    fn throttling_codes_are_known() {
        assert!(is_throttling("ThrottlingException"));
        assert!(!is_throttling("InvalidParameterException"));
    }

    #[test]
    fn a_stopped_task_names_its_exit_code_and_reason() {
        let task = aws_sdk_ecs::types::Task::builder()
            .task_arn("arn:aws:ecs:eu-west-1:1:task/tools/abc")
            .stopped_reason("CannotPullContainerError: pull image manifest has been retried")
            .stop_code(aws_sdk_ecs::types::TaskStopCode::TaskFailedToStart)
            .containers(
                aws_sdk_ecs::types::Container::builder()
                    .name("tool")
                    .exit_code(1)
                    .build(),
            )
            .build();
        let e = stopped_error(&task, "tool");
        let text = e.to_string();
        assert!(text.contains("exited with code 1"), "{text}");
        assert!(text.contains("TaskFailedToStart"), "{text}");
        assert!(text.contains("CannotPullContainerError"), "{text}");
        assert_eq!(e.unit_id(), Some("arn:aws:ecs:eu-west-1:1:task/tools/abc"));
    }
}
