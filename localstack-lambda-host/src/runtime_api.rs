//! The Lambda Runtime API (`/2018-06-01/runtime/...`), served on a Unix socket that is bound into
//! the sandbox. What the runtime says becomes a [`RuntimeEvent`] for the environment
//! ([`crate::environment`]), which decides what it means.
//!
//! - `GET  /2018-06-01/runtime/invocation/next`: waits for the next invocation. The first call
//!   of a sandbox is how its init ends.
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../error`: the invocation's
//!   outcome; any other id than the current invocation's is refused.
//! - `POST /2018-06-01/runtime/init/error`: the init failed.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::mpsc;

use crate::config::MAX_RESPONSE_BYTES;

/// The header that names the type of a function's error.
pub const ERROR_TYPE_HEADER: &str = "lambda-runtime-function-error-type";

/// One invocation, as `/next` hands it to the runtime.
#[derive(Debug, Clone)]
pub struct NextInvocation {
    pub request_id: String,
    pub deadline_unix_ms: u64,
    pub function_arn: String,
    pub trace_id: String,
    pub payload: Bytes,
}

/// What the runtime did.
#[derive(Debug)]
pub enum RuntimeEvent {
    /// `/next` was called (the runtime is initialized and waiting).
    NextCalled,
    Response {
        request_id: String,
        body: Bytes,
    },
    Error {
        request_id: String,
        error_type: Option<String>,
        body: Bytes,
    },
    InitError {
        error_type: Option<String>,
        body: Bytes,
    },
    /// The runtime answered with more than [`MAX_RESPONSE_BYTES`].
    ResponseTooLarge {
        request_id: String,
    },
    /// The sandbox of this generation ended by itself (sent by the supervisor, not the API).
    Exited {
        generation: u64,
        status: std::process::ExitStatus,
    },
}

type Queue = Arc<tokio::sync::Mutex<mpsc::Receiver<NextInvocation>>>;

/// State shared by the Runtime API's handlers and the environment.
#[derive(Debug)]
pub struct RuntimeApi {
    events: mpsc::UnboundedSender<RuntimeEvent>,
    /// The invocation queue of the current sandbox. Each sandbox gets a new one, so a `/next`
    /// left waiting by a killed runtime never takes an invocation meant for its successor.
    queue: Mutex<Queue>,
    /// The invocation under way, whose outcome is awaited.
    current: Mutex<Option<String>>,
}

impl RuntimeApi {
    pub fn new(events: mpsc::UnboundedSender<RuntimeEvent>) -> Arc<Self> {
        let (_, rx) = mpsc::channel(1);
        Arc::new(Self {
            events,
            queue: Mutex::new(Arc::new(tokio::sync::Mutex::new(rx))),
            current: Mutex::new(None),
        })
    }

    /// Starts a new queue (for a new sandbox) and answers its sending end.
    pub fn new_queue(&self) -> mpsc::Sender<NextInvocation> {
        let (tx, rx) = mpsc::channel(1);
        if let Ok(mut q) = self.queue.lock() {
            *q = Arc::new(tokio::sync::Mutex::new(rx));
        }
        tx
    }

    /// Where the supervisor reports a sandbox's end.
    pub fn events(&self) -> mpsc::UnboundedSender<RuntimeEvent> {
        self.events.clone()
    }

    /// Sets the invocation whose outcome is awaited (`None`: no invocation under way).
    pub fn set_current(&self, request_id: Option<String>) {
        if let Ok(mut c) = self.current.lock() {
            *c = request_id;
        }
    }

    fn queue(&self) -> Option<Queue> {
        self.queue.lock().ok().map(|q| Arc::clone(&q))
    }

    /// Takes the current invocation if it is `request_id`.
    fn claim(&self, request_id: &str) -> bool {
        match self.current.lock() {
            Ok(mut c) if c.as_deref() == Some(request_id) => {
                *c = None;
                true
            }
            _ => false,
        }
    }
}

/// The Runtime API's routes.
pub fn router(api: Arc<RuntimeApi>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        // One byte more than allowed, so that an oversized answer is seen and reported.
        .layer(DefaultBodyLimit::max(MAX_RESPONSE_BYTES + 1))
        .with_state(api)
}

fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({"errorType": error_type, "errorMessage": message});
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(http::header::CONTENT_TYPE, "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> Response {
    let Some(queue) = api.queue() else {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceError",
            "queue lost",
        );
    };
    let _ = api.events.send(RuntimeEvent::NextCalled);
    let invocation = queue.lock().await.recv().await;
    let Some(inv) = invocation else {
        return api_error(
            StatusCode::GONE,
            "EnvironmentStopped",
            "this execution environment is being replaced",
        );
    };
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", &inv.request_id);
    put(
        "lambda-runtime-deadline-ms",
        &inv.deadline_unix_ms.to_string(),
    );
    put("lambda-runtime-invoked-function-arn", &inv.function_arn);
    put("lambda-runtime-trace-id", &inv.trace_id);
    put("content-type", "application/json");
    (StatusCode::OK, headers, inv.payload).into_response()
}

fn invalid_request_id() -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        "Invalid request ID",
    )
}

async fn response(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    if !api.claim(&id) {
        return invalid_request_id();
    }
    match body {
        Ok(body) if body.len() <= MAX_RESPONSE_BYTES => {
            let _ = api.events.send(RuntimeEvent::Response {
                request_id: id,
                body,
            });
            accepted()
        }
        _ => {
            let _ = api
                .events
                .send(RuntimeEvent::ResponseTooLarge { request_id: id });
            api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "response payload too large",
            )
        }
    }
}

fn error_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn error(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !api.claim(&id) {
        return invalid_request_id();
    }
    let _ = api.events.send(RuntimeEvent::Error {
        request_id: id,
        error_type: error_type(&headers),
        body,
    });
    accepted()
}

async fn init_error(
    State(api): State<Arc<RuntimeApi>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _ = api.events.send(RuntimeEvent::InitError {
        error_type: error_type(&headers),
        body,
    });
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn request(method: &str, uri: &str, body: &'static str) -> http::Request<Body> {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header(ERROR_TYPE_HEADER, "ToolError")
            .body(Body::from(body))
            .expect("request")
    }

    #[tokio::test]
    async fn next_hands_out_the_queued_invocation_with_lambdas_headers() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let api = RuntimeApi::new(tx);
        let queue = api.new_queue();
        queue
            .send(NextInvocation {
                request_id: "req-1".into(),
                deadline_unix_ms: 42,
                function_arn: "arn:f".into(),
                trace_id: "Root=1".into(),
                payload: Bytes::from_static(b"{\"a\":1}"),
            })
            .await
            .expect("queued");
        let res = router(Arc::clone(&api))
            .oneshot(request("GET", "/2018-06-01/runtime/invocation/next", ""))
            .await
            .expect("answer");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["lambda-runtime-aws-request-id"], "req-1");
        assert_eq!(res.headers()["lambda-runtime-deadline-ms"], "42");
        assert_eq!(
            res.headers()["lambda-runtime-invoked-function-arn"],
            "arn:f"
        );
        let body = res.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"{\"a\":1}");
        assert!(matches!(rx.recv().await, Some(RuntimeEvent::NextCalled)));
    }

    #[tokio::test]
    async fn only_the_current_invocation_may_answer_and_only_once() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let api = RuntimeApi::new(tx);
        api.set_current(Some("req-1".into()));
        let app = router(Arc::clone(&api));
        let wrong = app
            .clone()
            .oneshot(request(
                "POST",
                "/2018-06-01/runtime/invocation/other/response",
                "{}",
            ))
            .await
            .expect("answer");
        assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
        let right = app
            .clone()
            .oneshot(request(
                "POST",
                "/2018-06-01/runtime/invocation/req-1/error",
                "{\"errorMessage\":\"x\"}",
            ))
            .await
            .expect("answer");
        assert_eq!(right.status(), StatusCode::ACCEPTED);
        match rx.recv().await {
            Some(RuntimeEvent::Error {
                request_id,
                error_type,
                ..
            }) => {
                assert_eq!(request_id, "req-1");
                assert_eq!(error_type.as_deref(), Some("ToolError"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let again = app
            .oneshot(request(
                "POST",
                "/2018-06-01/runtime/invocation/req-1/response",
                "{}",
            ))
            .await
            .expect("answer");
        assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_replaced_queue_releases_a_waiting_next() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let api = RuntimeApi::new(tx);
        let first = api.new_queue();
        let app = router(Arc::clone(&api));
        let waiting =
            tokio::spawn(app.oneshot(request("GET", "/2018-06-01/runtime/invocation/next", "")));
        tokio::task::yield_now().await;
        let _second = api.new_queue();
        drop(first);
        let res = waiting.await.expect("joined").expect("answer");
        assert_eq!(res.status(), StatusCode::GONE);
    }
}
