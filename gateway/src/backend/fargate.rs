//! The Fargate backend: each call is one `RunTask` of the tool's task definition.
//!
//! `RunTask` overrides are readable by anyone with `ecs:DescribeTasks` and are recorded by
//! CloudTrail, so the invocation (arguments and minted credentials) never goes there. Per call:
//!
//! 1. the call's start window begins ([`StartWindow`]): the tool's `fargate.start_timeout_seconds`
//!    (120 s by default, at most its timeout), ending at the deadline if that comes first;
//! 2. the invocation, with a random result key of the call (`switchboard_tool_runtime::seal`), is
//!    written to the invocation bucket at `<prefix><invocation id>/invocation.json` (encrypted by
//!    the bucket's default, the deployment's own KMS key: `infra/modules/gateway`);
//! 3. `RunTask` (`FARGATE`, `awsvpc` with the binding's subnets and security groups,
//!    `assignPublicIp DISABLED`, the tool's ephemeral storage, `startedBy` and `clientToken` = the
//!    invocation id, tags `tool` and `invocation`) whose only container override is two variables
//!    (and `TRACEPARENT`, the call's trace context, when there is one): a presigned `GET` of the
//!    invocation, signed as of the start of the window and valid for exactly the window, and a
//!    presigned `PUT` of `.../result.json`, expiring at the call's deadline. The URLs are bearer
//!    tokens that anyone who can read the overrides holds, so the one that reads the invocation
//!    (the call's credentials) dies once the task should have read it; the task's
//!    `switchboard-tool` runs in container mode (`tool-runtime/src/container.rs`), whose first act
//!    is that `GET`;
//! 4. the backend polls `DescribeTasks` and the result object with capped, jittered backoff,
//!    reporting progress as the task moves (provisioning, pending, running); the answer is the
//!    result object (at most [`MAX_RESULT_BYTES`]), or a clear error naming the exit code or the
//!    stopped reason. The result must be sealed with the call's result key (an HMAC-SHA-256 of
//!    the result's JSON): the result URL is readable in the overrides until the deadline, the key
//!    only through the invocation's `GET`, so an object stored with the URL alone is refused
//!    ([`BackendError::ForgedResult`], a tool error, audit outcome `forged_result`) and the task
//!    stopped (reason "got a forged result"). A task that `DescribeTasks` has not shown started
//!    (`RUNNING` or past it) by the end of its start window fails the call
//!    ([`BackendError::StartTimeout`], a tool error, audit outcome `start_timeout`): a poll goes
//!    out at the window's end and may run [`START_CHECK_TIMEOUT`] past it, and what it shows
//!    decides. The task is then stopped (the
//!    `StopTask` reason says it did not start within the window) and both objects deleted before
//!    the call answers. Once the task has started, only the deadline bounds it;
//! 5. the call answers at its deadline ([`BackendError::DeadlineExceeded`]) or at its cancel (the
//!    client's, or the gateway's at shutdown: [`BackendError::Cancelled`]) in whichever step it
//!    is: staging, `RunTask` with its throttling pauses, or the wait. This backend alone enforces
//!    the deadline: every wait on AWS goes through [`until_stop`];
//! 6. whatever the call put into AWS goes when it ends, however it ends ([`Leftovers`]): both
//!    objects are deleted, and a task that did not end by itself gets a `StopTask` whose reason
//!    names the invocation. After a stop this runs in the background and the call answers at
//!    once; a `PutObject` or `RunTask` the call stopped waiting for is still answered first (at
//!    most [`SETTLE_TIMEOUT`] more), so a task that `RunTask` started after the call gave up is
//!    stopped too. Shutdown waits for these clean-ups, at most [`SHUTDOWN_WAIT`].
//!
//! A task that reaches `RUNNING` in the last second of its window may find its `GET` expired (the
//! signing time is whole seconds); it then exits without a result and the call says so.
//!
//! `clientToken` makes `RunTask` idempotent, so the SDK's retries cannot start a second task.
//!
//! **Bounds are tokio timers, not the SDK's operation timeouts.** The call's wait on each request
//! ends at the deadline or the cancel; a request that changes something (`PutObject`, `RunTask`)
//! runs on a task of its own, so that its answer is still read when the call stops waiting (an
//! operation timeout at the deadline would throw away exactly what the clean-up needs: the ARN of
//! a task started after the call answered), bounded by [`SETTLE_TIMEOUT`] from then. A poll
//! (`DescribeTasks`, reading the result) takes at most [`POLL_TIMEOUT`] and is then retried;
//! `StopTask` and each `DeleteObject` at most [`CLEAN_TIMEOUT`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_ecs::config::http::HttpResponse;
use aws_sdk_ecs::error::SdkError;
use aws_sdk_ecs::operation::run_task::{RunTaskError, RunTaskOutput};
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, ContainerOverride, EphemeralStorage, KeyValuePair,
    LaunchType, NetworkConfiguration, Tag, TaskOverride,
};
use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use switchboard_tool_runtime::ToolOutput;
use switchboard_tool_runtime::container::{INVOCATION_URL_ENV, RESULT_URL_ENV};
use switchboard_tool_runtime::seal::{self, ResultKey};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

/// The container variable holding the call's W3C traceparent (not a secret: ids only).
pub const TRACEPARENT_ENV: &str = "TRACEPARENT";

use super::{
    Backend, BackendError, Dispatch, Dispatched, InFlight, InFlightGuard, PayloadLimit, Progress,
    StopReason, encode_for, log_finished, until_stop,
};
use crate::aws::{AwsErrors, Backoff, SdkFailure};
use crate::bindings::{Bindings, InvocationBucket};
use crate::catalog::{BackendKind, DEFAULT_START_TIMEOUT_SECONDS, Tool};

/// The largest result object the gateway reads (the local backend's stdout cap).
pub const MAX_RESULT_BYTES: i64 = 4 << 20;

/// The largest invocation the gateway writes (what container mode accepts).
#[allow(
    clippy::cast_possible_truncation,
    reason = "a few MiB: fits a usize of 32 bits or more"
)]
pub const MAX_INVOCATION_BYTES: usize =
    switchboard_tool_runtime::oneshot::MAX_INVOCATION_BYTES as usize;

/// The refusal of an invocation over [`MAX_INVOCATION_BYTES`].
const PAYLOAD_LIMIT: PayloadLimit = PayloadLimit {
    bytes: MAX_INVOCATION_BYTES,
    whose: "the limit",
    note: "",
};

/// How much of an SDK error without a service message goes into an error.
const MAX_SDK_ERROR_CHARS: usize = 500;

/// Fargate's least ephemeral storage (GiB); the task definition's own is at least this.
const MIN_STORAGE_GIB: i32 = 21;

/// How long a `PutObject` or `RunTask` the call stopped waiting for may still take to answer,
/// for its clean-up (a task `RunTask` started is then stopped, the objects deleted).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one `StopTask` or `DeleteObject` of a clean-up may take.
pub const CLEAN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one poll (`DescribeTasks`, or reading the result) may take before it is retried.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// How far past the end of the start window the poll that decides it may run: a task not shown
/// started by then has not started ([`BackendError::StartTimeout`]).
pub const START_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long shutdown waits for the clean-ups still running: the longest one (a request settling,
/// then the two deletes one after the other).
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(15 + 2 * 5 + 1);

/// What RunTask needs for one tool (from its binding).
#[derive(Debug, Clone)]
pub struct TaskTarget {
    pub cluster: String,
    pub task_definition: String,
    pub container: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
}

/// The time a call's task has to start: from the start of the call's staging, the tool's
/// `fargate.start_timeout_seconds` (at most its timeout), and never past the deadline. The
/// invocation's presigned `GET` is valid for exactly this window; the gateway stops a task that
/// `DescribeTasks` has not shown started by its end.
#[derive(Debug, Clone, Copy)]
struct StartWindow {
    /// The window's length (the catalog's, clamped to the call's timeout).
    length: Duration,
    /// When the call's staging began, on both clocks: the `GET` is signed as of `began_wall`.
    began: Instant,
    began_wall: SystemTime,
    /// The window's end: `began + length`, or the deadline if that comes first.
    end: Instant,
    /// Whether the window ends before the deadline (otherwise the deadline alone stops the call).
    enforced: bool,
}

impl StartWindow {
    /// The window of `call`, beginning now.
    fn begin(call: &Dispatch) -> Self {
        let timeout = call.tool.timeout_seconds;
        let length = match &call.tool.fargate {
            Some(unit) => unit.start_window(timeout),
            None => Duration::from_secs(u64::from(DEFAULT_START_TIMEOUT_SECONDS.min(timeout))),
        };
        Self::new(
            length,
            Instant::now(),
            SystemTime::now(),
            call.deadline.instant(),
        )
    }

    fn new(length: Duration, began: Instant, began_wall: SystemTime, deadline: Instant) -> Self {
        let end = began + length;
        Self {
            length,
            began,
            began_wall,
            end: end.min(deadline),
            enforced: end < deadline,
        }
    }

    /// How long the invocation's `GET` is valid, from `began_wall`.
    fn get_valid_for(&self) -> Duration {
        self.end.saturating_duration_since(self.began)
    }

    /// The latest a poll begun now may answer: [`POLL_TIMEOUT`] from now, and, while the task is
    /// not shown started, at most [`START_CHECK_TIMEOUT`] past the end of the window.
    fn poll_by(&self, started: bool) -> Instant {
        let now = Instant::now();
        let by = now + POLL_TIMEOUT;
        if started {
            by
        } else {
            by.min(self.end.max(now) + START_CHECK_TIMEOUT)
        }
    }
}

/// Whether a task in `status` has started: its containers run, or it is past that (a task on its
/// way to `STOPPED` from a failed start is not held to the window: its stop says why).
fn has_started(status: &str) -> bool {
    !matches!(
        status,
        "PROVISIONING" | "PENDING" | "ACTIVATING" | "UNKNOWN"
    )
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

/// Runs `work` on a task of its own, counted in `background` until it ends (or is dropped with
/// the runtime), so that shutdown can wait for it; `None` outside a runtime (a process exiting).
fn spawn_counted(
    background: &Arc<InFlight>,
    work: impl Future<Output = ()> + Send + 'static,
) -> Option<JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let counted = InFlightGuard::new(background);
    Some(runtime.spawn(async move {
        let _counted = counted;
        work.await;
    }))
}

type PutResult = Result<PutObjectOutput, SdkError<PutObjectError>>;
type RunResult = Result<RunTaskOutput, SdkError<RunTaskError>>;

/// What one call has put into AWS, removed when the call ends however it ends: both objects
/// (once the invocation's `PutObject` was sent) and the task (once `RunTask` was sent, unless
/// the task ended by itself). A request the call stopped waiting for is answered first (at most
/// [`SETTLE_TIMEOUT`]), so that what it did is undone too. Dropped without [`Leftovers::clean`]
/// (the dispatch itself was dropped unfinished), it cleans up in the background all the same.
struct Leftovers {
    ecs: aws_sdk_ecs::Client,
    s3: aws_sdk_s3::Client,
    bucket: String,
    errors: AwsErrors,
    background: Arc<InFlight>,
    invocation_id: String,
    cluster: String,
    keys: [String; 2],
    /// Whether the invocation's `PutObject` was sent.
    staged: bool,
    /// The invocation's `PutObject`, while unanswered.
    put: Option<JoinHandle<PutResult>>,
    /// A `RunTask`, while unanswered.
    run: Option<JoinHandle<RunResult>>,
    /// The call's task, until it is known to have ended by itself.
    task: Option<String>,
}

impl Leftovers {
    /// Starts the clean-up in the background (`why` completes the `StopTask` reason:
    /// "switchboard: invocation <id> <why>"); its handle, unless there was nothing to do.
    fn clean(&mut self, why: &str) -> Option<JoinHandle<()>> {
        let staged = std::mem::take(&mut self.staged);
        let (put, run, task) = (self.put.take(), self.run.take(), self.task.take());
        if !staged && run.is_none() && task.is_none() {
            return None;
        }
        let reason = format!("switchboard: invocation {} {why}", self.invocation_id);
        let (ecs, s3, errors) = (self.ecs.clone(), self.s3.clone(), self.errors.clone());
        let (bucket, cluster, keys) =
            (self.bucket.clone(), self.cluster.clone(), self.keys.clone());
        let work = async move {
            let objects = async {
                if let Some(put) = put {
                    let _ = settle(put, "the invocation's PutObject").await;
                }
                if staged {
                    for key in &keys {
                        delete_object(&s3, &errors, &bucket, key).await;
                    }
                }
            };
            let task = async {
                let task = match run {
                    Some(run) => match settle(run, "RunTask").await {
                        Some(Ok(out)) => task_arn(&out),
                        _ => None,
                    },
                    None => task,
                };
                if let Some(task) = task {
                    stop_task(&ecs, &errors, &cluster, &task, reason).await;
                }
            };
            tokio::join!(objects, task);
        };
        spawn_counted(&self.background, work.in_current_span())
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        self.clean("was abandoned by the gateway");
    }
}

/// The answer of a request the call no longer waits for, if it comes within [`SETTLE_TIMEOUT`];
/// the request is dropped otherwise.
async fn settle<T>(mut request: JoinHandle<T>, what: &str) -> Option<T> {
    match tokio::time::timeout(SETTLE_TIMEOUT, &mut request).await {
        Ok(Ok(answer)) => Some(answer),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "{what} of a call that ended did not finish");
            None
        }
        Err(_) => {
            request.abort();
            tracing::warn!(
                "{what} of a call that ended did not answer within {} s; given up",
                SETTLE_TIMEOUT.as_secs()
            );
            None
        }
    }
}

/// The ARN of the task a `RunTask` started, if it started one.
fn task_arn(out: &RunTaskOutput) -> Option<String> {
    out.tasks()
        .first()
        .and_then(|t| t.task_arn())
        .map(str::to_owned)
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
    /// Clean-ups still running after their calls ended; shutdown waits for them.
    background: Arc<InFlight>,
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
            background: Arc::default(),
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

    fn start_error(&self, service: &str, what: &str, failure: &SdkFailure) -> BackendError {
        self.errors.count_failure(service, failure);
        BackendError::Start {
            message: format!(
                "{what} failed: {}: {}",
                failure.code_or_unknown(),
                failure.text(MAX_SDK_ERROR_CHARS)
            ),
        }
    }

    /// What the call will leave in AWS, empty for now.
    fn leftovers(&self, invocation_id: &str, cluster: &str, keys: [String; 2]) -> Leftovers {
        Leftovers {
            ecs: self.ecs.clone(),
            s3: self.s3.clone(),
            bucket: self.bucket.name.clone(),
            errors: self.errors.clone(),
            background: Arc::clone(&self.background),
            invocation_id: invocation_id.to_owned(),
            cluster: cluster.to_owned(),
            keys,
            staged: false,
            put: None,
            run: None,
            task: None,
        }
    }

    /// Writes the invocation and presigns the two URLs.
    async fn stage(
        &self,
        call: &Dispatch,
        window: &StartWindow,
        payload: Vec<u8>,
        left: &mut Leftovers,
    ) -> Result<(String, String), BackendError> {
        let stopped = |stop: StopReason| stop.error(None, call.tool.timeout_seconds);
        // Nothing is sent for a call already over.
        until_stop(call, std::future::ready(()))
            .await
            .map_err(stopped)?;
        let [invocation_key, result_key] = &left.keys;
        let (invocation_key, result_key) = (invocation_key.clone(), result_key.clone());
        let request = self
            .s3
            .put_object()
            .bucket(&self.bucket.name)
            .key(&invocation_key)
            .content_type("application/json")
            .body(ByteStream::from(payload))
            .send()
            .in_current_span();
        left.staged = true;
        let pending = left.put.insert(tokio::spawn(request));
        let written = until_stop(call, pending).await.map_err(stopped)?;
        left.put = None;
        match written {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let failure = SdkFailure::read(&e);
                return Err(self.start_error("s3", "writing the invocation", &failure));
            }
            Err(e) => {
                return Err(BackendError::Start {
                    message: format!("writing the invocation failed: {e}"),
                });
            }
        }
        // Presigning sends nothing, but may have to fetch the gateway's own credentials.
        until_stop(
            call,
            self.presign(call, window, &invocation_key, &result_key),
        )
        .await
        .map_err(stopped)?
    }

    /// The presigned `GET` of the invocation, signed as of the start of staging and expiring at
    /// the end of the start window, and the `PUT` of the result, expiring at the deadline.
    async fn presign(
        &self,
        call: &Dispatch,
        window: &StartWindow,
        invocation_key: &str,
        result_key: &str,
    ) -> Result<(String, String), BackendError> {
        let presign = |start: Option<SystemTime>, expires: Duration| {
            let expires = expires.max(Duration::from_secs(1));
            let mut config = PresigningConfig::builder().expires_in(expires);
            config.set_start_time(start);
            config.build().map_err(|e| BackendError::Start {
                message: format!("cannot presign for {} s: {e}", expires.as_secs()),
            })
        };
        let get = self
            .s3
            .get_object()
            .bucket(&self.bucket.name)
            .key(invocation_key)
            .presigned(presign(Some(window.began_wall), window.get_valid_for())?)
            .await
            .map_err(|e| BackendError::Start {
                message: format!("cannot presign the invocation's GET: {e}"),
            })?;
        let put = self
            .s3
            .put_object()
            .bucket(&self.bucket.name)
            .key(result_key)
            .presigned(presign(None, call.deadline.remaining())?)
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
        urls: (String, String),
        left: &mut Leftovers,
    ) -> Result<String, BackendError> {
        let stopped = |stop: StopReason| stop.error(None, call.tool.timeout_seconds);
        let id = &call.invocation.invocation_id;
        let (network, overrides) = task_overrides(call, target, urls)?;
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let mut retry = 0;
        loop {
            let request = self
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
                .in_current_span();
            // On a task of its own: if the call stops waiting, the answer is still read and the
            // task it started stopped (Leftovers).
            let pending = left.run.insert(tokio::spawn(request));
            let sent = until_stop(call, pending).await.map_err(stopped)?;
            left.run = None;
            let sent = sent.map_err(|e| BackendError::Start {
                message: format!("ECS RunTask failed: {e}"),
            })?;
            let reason = match sent {
                Ok(out) => {
                    if let Some(arn) = task_arn(&out) {
                        left.task = Some(arn.clone());
                        return Ok(arn);
                    }
                    self.why_no_task(&out)?
                }
                Err(e) => {
                    let failure = SdkFailure::read(&e);
                    if !failure.is_throttling() {
                        return Err(self.start_error("ecs", "ECS RunTask", &failure));
                    }
                    self.errors.count_failure("ecs", &failure);
                    format!(
                        "{}: {}",
                        failure.code_or_unknown(),
                        failure.text(MAX_SDK_ERROR_CHARS)
                    )
                }
            };
            retry += 1;
            let Some(pause) = self.polling.next_pause(retry, call.deadline.remaining()) else {
                return Err(BackendError::Start {
                    message: format!(
                        "ECS could not start the task ({reason}) and the deadline leaves no time \
                         to retry ({retry} attempt(s))"
                    ),
                });
            };
            until_stop(call, tokio::time::sleep(pause))
                .await
                .map_err(stopped)?;
        }
    }

    /// Why a `RunTask` answer started no task: a capacity shortage, which may pass (retried), or
    /// anything else, which will not (the call fails).
    fn why_no_task(&self, out: &RunTaskOutput) -> Result<String, BackendError> {
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
        Ok(failures.join("; "))
    }

    /// Waits for the task's result or its stop, or the end of its start window while it has not
    /// started (the caller bounds the wait by the deadline and the cancel: [`until_stop`]).
    async fn wait(
        &self,
        call: &Dispatch,
        window: &StartWindow,
        target: &TaskTarget,
        task_arn: &str,
        result_key: &str,
        key: &ResultKey,
    ) -> Result<ToolOutput, BackendError> {
        let mut seen: Option<String> = None;
        let mut step = 0u32;
        let mut retry = 0u32;
        // Past the start window only the deadline bounds the wait.
        let mut started = !window.enforced;
        loop {
            let described = tokio::time::timeout_at(
                window.poll_by(started),
                self.ecs
                    .describe_tasks()
                    .cluster(&target.cluster)
                    .tasks(task_arn)
                    .send(),
            )
            .await;
            match described {
                Ok(Ok(out)) => {
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
                        started |= has_started(&status);
                        let read = tokio::time::timeout_at(
                            window.poll_by(started),
                            self.result(task_arn, result_key, key),
                        )
                        .await;
                        match read {
                            Ok(Ok(Some(output))) => return Ok(output),
                            Ok(Ok(None)) => {}
                            Ok(Err(e)) => return Err(e),
                            Err(_) => {
                                tracing::debug!(key = result_key, "reading the result timed out")
                            }
                        }
                        if status == "STOPPED" {
                            return Err(stopped_error(task, &target.container));
                        }
                    }
                }
                Ok(Err(e)) => {
                    let failure = SdkFailure::read(&e);
                    self.errors.count_failure("ecs", &failure);
                    let code = failure.code_or_unknown();
                    tracing::debug!(task = task_arn, code, "DescribeTasks failed; retrying");
                }
                Err(_) => tracing::debug!(task = task_arn, "DescribeTasks timed out; retrying"),
            }
            if !started && Instant::now() >= window.end {
                return Err(BackendError::StartTimeout {
                    unit_id: Some(task_arn.to_owned()),
                    start_timeout_seconds: window.length.as_secs(),
                });
            }
            retry = (retry + 1).min(16);
            let mut wake = Instant::now() + self.polling.pause(retry);
            if !started {
                // The poll that decides the window goes out at its end.
                wake = wake.min(window.end);
            }
            tokio::time::sleep_until(wake).await;
        }
    }

    /// The result object, if the unit has stored it, sealed with the call's `key`.
    async fn result(
        &self,
        task_arn: &str,
        result_key: &str,
        key: &ResultKey,
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
                let failure = SdkFailure::read(&e);
                self.errors.count_failure("s3", &failure);
                let code = failure.code_or_unknown();
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
        if i64::try_from(bytes.len()).unwrap_or(i64::MAX) > MAX_RESULT_BYTES {
            return Err(BackendError::Unit {
                unit_id: unit(),
                message: format!("the task's result is over the limit of {MAX_RESULT_BYTES} bytes"),
            });
        }
        let json = seal::open(key, &bytes).map_err(|e| BackendError::ForgedResult {
            unit_id: unit(),
            message: e.to_string(),
        })?;
        serde_json::from_slice::<ToolOutput>(json)
            .map(Some)
            .map_err(|e| BackendError::Unit {
                unit_id: unit(),
                message: format!("the task did not store a tool result ({e})"),
            })
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
    let request = ecs
        .stop_task()
        .cluster(cluster)
        .task(task)
        .reason(reason)
        .send();
    clean_up(errors, "ecs", "StopTask", task, request).await;
}

/// Deletes one object of a call; a failure is counted and logged (the bucket's lifecycle rule is
/// the backstop).
async fn delete_object(s3: &aws_sdk_s3::Client, errors: &AwsErrors, bucket: &str, key: &str) {
    let request = s3.delete_object().bucket(bucket).key(key).send();
    clean_up(errors, "s3", "DeleteObject", key, request).await;
}

/// One request of a clean-up (`operation` on `target`), bounded by [`CLEAN_TIMEOUT`]; a refusal
/// is counted under `service` and logged, as is no answer in time.
async fn clean_up<T, E>(
    errors: &AwsErrors,
    service: &str,
    operation: &str,
    target: &str,
    request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) where
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match tokio::time::timeout(CLEAN_TIMEOUT, request).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            let failure = SdkFailure::read(&e);
            errors.count_failure(service, &failure);
            let code = failure.code_or_unknown();
            tracing::warn!(target, code, "{operation} failed");
        }
        Err(_) => tracing::warn!(target, "{operation} did not answer in time"),
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

/// The network configuration and the overrides of a call's `RunTask`: the binding's subnets and
/// security groups without a public IP; the tool's ephemeral storage, and the container's only
/// variables, the two presigned URLs (and the trace context).
fn task_overrides(
    call: &Dispatch,
    target: &TaskTarget,
    (get_url, put_url): (String, String),
) -> Result<(AwsVpcConfiguration, TaskOverride), BackendError> {
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
    let var = |name: &str, value: String| KeyValuePair::builder().name(name).value(value).build();
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
    Ok((network, overrides))
}

/// Whole GiB for `mb` megabytes, at least Fargate's 21.
fn storage_gib(mb: u32) -> i32 {
    i32::try_from(mb.div_ceil(1024))
        .unwrap_or(i32::MAX)
        .clamp(MIN_STORAGE_GIB, 200)
}

#[async_trait]
impl Backend for FargateBackend {
    async fn dispatch(&self, mut call: Dispatch) -> Result<Dispatched, BackendError> {
        let started = std::time::Instant::now();
        let timeout_seconds = call.tool.timeout_seconds;
        let unit = call.unit_span("fargate");
        // The key the task seals its result with: only the invocation carries it.
        let key = ResultKey::from_bytes(rand::random());
        call.invocation.result_key = Some(key.clone());
        let (target, payload) = encode_for(&call, &self.targets, "task definition", PAYLOAD_LIMIT)?;
        let id = call.invocation.invocation_id.clone();
        let (invocation_key, result_key) = self.keys(&id);
        let mut left = self.leftovers(&id, &target.cluster, [invocation_key, result_key.clone()]);

        let run = async {
            let window = StartWindow::begin(&call);
            let urls = self.stage(&call, &window, payload, &mut left).await?;
            let arn = self.run_task(&call, target, urls, &mut left).await?;
            self.running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(arn.clone(), target.cluster.clone());
            let waited = until_stop(
                &call,
                self.wait(&call, &window, target, &arn, &result_key, &key),
            )
            .await;
            self.running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&arn);
            match waited {
                // The task stored its result or stopped by itself: nothing to stop, unless it
                // did not start in time or the result was forged (the task may still run).
                Ok(done) => {
                    if !matches!(
                        done,
                        Err(BackendError::StartTimeout { .. } | BackendError::ForgedResult { .. })
                    ) {
                        left.task = None;
                    }
                    done.map(|output| Dispatched {
                        output,
                        unit_id: arn,
                    })
                }
                Err(stop) => Err(stop.error(Some(arn), timeout_seconds)),
            }
        };
        let guarded = run.instrument(unit.clone()).await;
        if let Ok(d) = &guarded {
            unit.record("switchboard.unit_id", d.unit_id.as_str());
        }
        match &guarded {
            // The call answers at once; the clean-up goes on in the background.
            Err(BackendError::Cancelled { .. }) => {
                left.clean("was cancelled");
            }
            Err(BackendError::DeadlineExceeded { .. }) => {
                left.clean("ran past its deadline");
            }
            // Ended by itself, or not started within its window (the task is then stopped): the
            // clean-up is done before the answer, unless the deadline or a cancel comes first (it
            // then goes on in the background).
            _ => {
                let why = match &guarded {
                    Err(BackendError::StartTimeout {
                        start_timeout_seconds,
                        ..
                    }) => format!("did not start within {start_timeout_seconds} s"),
                    Err(BackendError::ForgedResult { .. }) => "got a forged result".to_owned(),
                    _ => "has ended".to_owned(),
                };
                if let Some(clean) = left.clean(&why) {
                    let _ = until_stop(&call, clean).await;
                }
            }
        }
        log_finished("fargate task", &call, started, None, &guarded);
        guarded
    }

    async fn shutdown(&self) {
        // Calls still waiting for their task (normally none: a cancelled call stops waiting at
        // once and leaves its StopTask to the background).
        let tasks: Vec<(String, String)> = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
            .collect();
        for (task, cluster) in tasks {
            let reason = "switchboard: the gateway is shutting down".to_owned();
            let (ecs, errors) = (self.ecs.clone(), self.errors.clone());
            spawn_counted(&self.background, async move {
                stop_task(&ecs, &errors, &cluster, &task, reason).await;
            });
        }
        // Requests whose calls stopped waiting (a RunTask not yet answered), and the StopTasks and
        // deletes after them.
        let running = self.background.count();
        if running > 0 {
            tracing::info!(running, "shutting down: waiting for the Fargate clean-ups");
        }
        if tokio::time::timeout(SHUTDOWN_WAIT, self.background.until_idle())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.background.count(),
                "shutting down: Fargate clean-ups still running after {} s; what they leave \
                 (a task, an object) is left to the task's own end and the bucket's lifecycle rule",
                SHUTDOWN_WAIT.as_secs()
            );
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
    fn a_start_window_ends_before_the_deadline_or_at_it() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let deadline = now + Duration::from_secs(30);
        let short = StartWindow::new(Duration::from_secs(5), now, wall, deadline);
        assert!(short.enforced);
        assert_eq!(short.end, now + Duration::from_secs(5));
        assert_eq!(short.get_valid_for(), Duration::from_secs(5));
        // A window as long as the timeout, begun after admission, ends at the deadline: the
        // deadline alone stops the call.
        let late = StartWindow::new(
            Duration::from_secs(30),
            now + Duration::from_secs(1),
            wall,
            deadline,
        );
        assert!(!late.enforced);
        assert_eq!(late.end, deadline);
        assert_eq!(late.get_valid_for(), Duration::from_secs(29));
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_of_a_task_not_started_runs_at_most_a_little_past_the_window() {
        let now = Instant::now();
        let window = StartWindow::new(
            Duration::from_secs(3),
            now,
            SystemTime::now(),
            now + Duration::from_secs(60),
        );
        assert_eq!(window.poll_by(false), window.end + START_CHECK_TIMEOUT);
        assert_eq!(window.poll_by(true), now + POLL_TIMEOUT);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(window.poll_by(false), Instant::now() + START_CHECK_TIMEOUT);
    }

    #[test]
    fn a_task_has_started_once_it_runs_or_is_past_it() {
        for status in ["PROVISIONING", "PENDING", "ACTIVATING", "UNKNOWN"] {
            assert!(!has_started(status), "{status}");
        }
        for status in [
            "RUNNING",
            "DEACTIVATING",
            "STOPPING",
            "DEPROVISIONING",
            "STOPPED",
        ] {
            assert!(has_started(status), "{status}");
        }
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
