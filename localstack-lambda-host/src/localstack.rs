//! LocalStack's side of the executor protocol, as its runtime-init speaks it in a Docker
//! container:
//!
//! - LocalStack sends `POST /invoke` (`{"invoke-id", "invoked-function-arn", "payload",
//!   "trace-id"}`) to the environment's address and expects `200` at once; the outcome comes
//!   back later as a callback.
//! - The environment calls back under `LOCALSTACK_RUNTIME_ENDPOINT`
//!   (`.../_localstack_lambda/<runtime id>`): `status/<id>/ready` once the runtime is
//!   initialized, `status/<id>/error` (body: the error) when the init failed, and per invocation
//!   `invocations/<request id>/logs` (`{"logs": "..."}`) followed by
//!   `invocations/<request id>/response` or `invocations/<request id>/error`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;
use tokio::sync::mpsc;

/// Why a callback to LocalStack failed.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("POST {url}: {message}")]
    Send { url: String, message: String },
    #[error("POST {url}: LocalStack answered {status}")]
    Status { url: String, status: StatusCode },
}

/// One invocation as LocalStack sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct InvokeRequest {
    #[serde(rename = "invoke-id")]
    pub invoke_id: String,
    #[serde(rename = "invoked-function-arn", default)]
    pub invoked_function_arn: String,
    #[serde(default)]
    pub payload: String,
    #[serde(rename = "trace-id", default)]
    pub trace_id: String,
}

/// The routes LocalStack calls: `POST /invoke`, queued for the environment.
pub fn router(invocations: mpsc::Sender<InvokeRequest>) -> Router {
    Router::new()
        .route("/invoke", post(invoke))
        .with_state(invocations)
}

async fn invoke(
    State(invocations): State<mpsc::Sender<InvokeRequest>>,
    body: axum::body::Bytes,
) -> (StatusCode, &'static str) {
    match serde_json::from_slice::<InvokeRequest>(&body) {
        Ok(request) => match invocations.send(request).await {
            Ok(()) => (StatusCode::OK, "OK"),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        },
        Err(_) => (StatusCode::BAD_REQUEST, "not an invocation"),
    }
}

/// An error and its sources, `outer: inner: ...`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Calls back to LocalStack.
#[derive(Debug, Clone)]
pub struct Callbacks {
    http: reqwest::Client,
    endpoint: String,
    runtime_id: String,
}

impl Callbacks {
    pub fn new(endpoint: &str, runtime_id: &str) -> Result<Self, CallbackError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(CallbackError::Client)?;
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            runtime_id: runtime_id.to_owned(),
        })
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<(), CallbackError> {
        let url = format!("{}/{path}", self.endpoint);
        let res = self
            .http
            .post(&url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| CallbackError::Send {
                url: url.clone(),
                message: chain(&e),
            })?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(CallbackError::Status {
                url,
                status: res.status(),
            })
        }
    }

    pub async fn ready(&self) -> Result<(), CallbackError> {
        self.post(&format!("status/{}/ready", self.runtime_id), Vec::new())
            .await
    }

    pub async fn init_failed(&self, error: Vec<u8>) -> Result<(), CallbackError> {
        self.post(&format!("status/{}/error", self.runtime_id), error)
            .await
    }

    pub async fn logs(&self, request_id: &str, logs: String) -> Result<(), CallbackError> {
        let body = serde_json::json!({ "logs": logs }).to_string().into_bytes();
        self.post(&format!("invocations/{request_id}/logs"), body)
            .await
    }

    pub async fn response(&self, request_id: &str, body: Vec<u8>) -> Result<(), CallbackError> {
        self.post(&format!("invocations/{request_id}/response"), body)
            .await
    }

    pub async fn error(&self, request_id: &str, body: Vec<u8>) -> Result<(), CallbackError> {
        self.post(&format!("invocations/{request_id}/error"), body)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test]
    async fn invoke_is_queued_and_answered_at_once() {
        let (tx, mut rx) = mpsc::channel(1);
        let body =
            r#"{"invoke-id":"r1","invoked-function-arn":"arn:f","payload":"{}","trace-id":"t"}"#;
        let res = router(tx)
            .oneshot(
                http::Request::post("/invoke")
                    .body(Body::from(body))
                    .expect("request"),
            )
            .await
            .expect("answer");
        assert_eq!(res.status(), StatusCode::OK);
        let queued = rx.recv().await.expect("queued");
        assert_eq!(queued.invoke_id, "r1");
        assert_eq!(queued.payload, "{}");
    }

    #[tokio::test]
    async fn garbage_is_refused() {
        let (tx, _rx) = mpsc::channel(1);
        let res = router(tx)
            .oneshot(
                http::Request::post("/invoke")
                    .body(Body::from("nope"))
                    .expect("request"),
            )
            .await
            .expect("answer");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
}
