//! `switchboard serve`: builds the gateway from a catalog and runs it until a signal, then shuts
//! down gracefully (stop accepting, let calls finish up to a bound, then cancel them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::approval::sign_in::OidcSignIn;
use crate::approval::{ApprovalSettings, Approvals, DynamoStore, MemoryStore, PageSignIn, Store};
use crate::audit::AuditSink;
use crate::auth::dev::DevKey;
use crate::auth::{SettingsError, Verifier, setup};
use crate::backend::Backends;
use crate::backend::fargate::FargateBackend;
use crate::backend::lambda::LambdaBackend;
use crate::catalog::BackendKind;
use crate::catalog::{self, Catalog};
use crate::credentials::Broker;
use crate::http::{AppState, RequestLimit, app, authority_of};
use crate::mcp::{Gateway, GatewayConfig, GatewayError};
use crate::metrics::Metrics;
use crate::preflight::{self, AuthFrom, Refusal};
use crate::sessions::Sessions;

use crate::aws::Aws;

/// Options of `switchboard serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub catalog: PathBuf,
    pub listen: SocketAddr,
    pub dev: bool,
    pub dev_key: PathBuf,
    pub audit_log: Option<PathBuf>,
    pub bindings: Option<crate::bindings::Bindings>,
    /// Tools served turned off, each with why (`--tool-off NAME=WHY`).
    pub tools_off: Vec<(String, String)>,
}

/// Why the gateway could not start. A variant holding another error shows it in its own message
/// and keeps it as a value (not as a `source`, so that a report of the chain does not say it
/// twice).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    #[error("{0}")]
    Refused(Refusal),
    #[error("--tool-off {0}: the catalog has no such tool")]
    UnknownToolOff(String),
    #[error("--dev refuses to listen on {0}: development mode serves loopback addresses only")]
    DevNotLoopback(SocketAddr),
    #[error("{0}: gateway.auth is missing: give the catalog an auth section or run with --dev")]
    NoAuth(PathBuf),
    #[error("dev key: {0}")]
    DevKey(#[from] crate::auth::dev::DevKeyError),
    #[error("signing keys: {0}")]
    Keys(#[from] crate::auth::JwksError),
    #[error("auth settings: {0}")]
    Auth(SettingsError),
    #[error("backends: {0}")]
    Local(crate::backend::local::LocalError),
    /// What the Fargate backend's constructor answers (a message).
    #[error("backends: {0}")]
    Backend(String),
    #[error(
        "tool {0:?} runs on the {1} backend, which needs the deployment's bindings: pass \
         --bindings FILE (the JSON of `terraform output -json switchboard_bindings`) or set \
         SWITCHBOARD_BINDINGS"
    )]
    NoBindings(String, &'static str),
    #[error("credentials: {0}")]
    Credentials(#[from] crate::credentials::CredentialError),
    #[error("gateway: {0}")]
    Gateway(GatewayError),
    #[error("cannot open audit log {0}: {1}")]
    Audit(PathBuf, std::io::Error),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("server error: {0}")]
    Io(std::io::Error),
    #[error("sessions: {0}")]
    Sessions(#[from] crate::sessions::SessionSettingsError),
    #[error("{0}")]
    ApprovalSignIn(#[from] crate::approval::sign_in::MissingSecret),
}

/// A gateway built and bound, not yet serving.
#[derive(Debug)]
pub struct Prepared {
    pub state: AppState,
    pub listener: tokio::net::TcpListener,
    pub grace: Duration,
}

/// Builds the backends the catalog's tools need: the local sandbox for `local` tools, the
/// Lambda backend (functions from the bindings) for `lambda` tools, the Fargate backend (task
/// definitions and the invocation bucket from the bindings) for `fargate` tools.
pub fn backends_for(
    catalog: &Catalog,
    catalog_dir: &Path,
    aws: Option<&Aws>,
) -> Result<Backends, ServeError> {
    let mut backends = Backends::new();
    if catalog
        .tools
        .iter()
        .any(|t| t.backend == BackendKind::Local)
    {
        let backend_error = ServeError::Local;
        let mut options = crate::backend::local::LocalOptions::from_env().map_err(backend_error)?;
        options.region = aws.map(|a| a.bindings.region.clone());
        let local =
            crate::backend::local::LocalBackend::with_options(catalog_dir, &catalog.tools, options)
                .map_err(backend_error)?;
        backends = backends.with(BackendKind::Local, Arc::new(local));
    }
    let lambda_tools: Vec<&str> = catalog
        .tools
        .iter()
        .filter(|t| t.backend == BackendKind::Lambda)
        .map(|t| t.name.as_str())
        .collect();
    if let Some(first) = lambda_tools.first() {
        let aws = aws.ok_or_else(|| ServeError::NoBindings((*first).to_owned(), "lambda"))?;
        let functions = lambda_tools
            .iter()
            .filter_map(|name| {
                let arn = aws.bindings.tool(name)?.function_arn.clone()?;
                Some(((*name).to_owned(), arn))
            })
            .collect();
        let lambda = LambdaBackend::new(&aws.config, functions, aws.errors.clone());
        backends = backends.with(BackendKind::Lambda, Arc::new(lambda));
    }
    if let Some(first) = catalog
        .tools
        .iter()
        .find(|t| t.backend == BackendKind::Fargate)
    {
        let aws = aws.ok_or_else(|| ServeError::NoBindings(first.name.clone(), "fargate"))?;
        let fargate = FargateBackend::new(
            &aws.config,
            &aws.bindings,
            &catalog.tools,
            aws.errors.clone(),
        )
        .map_err(ServeError::Backend)?;
        backends = backends.with(BackendKind::Fargate, Arc::new(fargate));
    }
    Ok(backends)
}

/// Loads the catalog, builds auth, backends and the gateway, and binds the listener: the steps
/// below, in this order.
pub async fn prepare(
    opts: &ServeOptions,
    backends: Option<Backends>,
) -> Result<Prepared, ServeError> {
    let (catalog, catalog_dir) = load_checked(opts)?;
    if opts.dev && !opts.listen.ip().is_loopback() {
        return Err(ServeError::DevNotLoopback(opts.listen));
    }
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| ServeError::Bind(opts.listen, e))?;
    let bound = listener.local_addr().map_err(ServeError::Io)?;
    let resource = catalog
        .gateway
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}/mcp"));
    let (verifier, authorization_servers) =
        authentication(opts, &catalog, &catalog_dir, &resource)?;
    let sessions = sessions()?;
    let audit = match &opts.audit_log {
        Some(p) => AuditSink::file(p).map_err(|e| ServeError::Audit(p.clone(), e))?,
        None => AuditSink::stdout(),
    };
    let aws = match opts.bindings.clone() {
        Some(bindings) => Some(Aws::load(bindings).await),
        None => None,
    };
    let approvals = approvals(opts, &catalog, &sessions, &resource, &audit, aws.as_ref())?;
    let gateway = build_gateway(
        opts,
        &catalog,
        &catalog_dir,
        backends,
        audit,
        approvals.clone(),
        aws,
    )
    .await?;
    let allowed_hosts = allowed_hosts(&catalog, &resource, bound);
    let limits = &catalog.gateway.limits;
    let state = AppState {
        gateway,
        verifier,
        resource,
        authorization_servers,
        allowed_hosts,
        allowed_origins: catalog.gateway.allowed_origins.clone(),
        max_body_bytes: limits.max_body_bytes,
        max_json_depth: limits.max_json_depth,
        requests: RequestLimit::for_calls(limits.max_in_flight),
        mcp_shutdown: CancellationToken::new(),
        sessions: Arc::new(sessions),
        approvals,
    };
    Ok(Prepared {
        state,
        listener,
        grace: Duration::from_secs(limits.shutdown_grace_seconds),
    })
}

/// Step 1: the catalog, loaded and checked by the rules `switchboard check` applies
/// ([`preflight::check`]), and the folder its relative paths start from.
fn load_checked(opts: &ServeOptions) -> Result<(Catalog, PathBuf), ServeError> {
    let catalog = catalog::load(&opts.catalog)?;
    let auth = if opts.dev {
        AuthFrom::DevKey
    } else {
        AuthFrom::Catalog
    };
    preflight::check(&catalog, opts.bindings.as_ref(), auth).map_err(ServeError::Refused)?;
    let catalog_dir = opts
        .catalog
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    Ok((catalog, catalog_dir))
}

/// Step 2: who may call, with the authorization servers the metadata announces: the dev key's
/// tokens with `--dev`, else the catalog's auth section.
fn authentication(
    opts: &ServeOptions,
    catalog: &Catalog,
    catalog_dir: &Path,
    resource: &str,
) -> Result<(Verifier, Vec<String>), ServeError> {
    if opts.dev {
        let (key, created) = DevKey::load_or_create(&opts.dev_key)?;
        tracing::warn!(
            key = %key.path().display(),
            kid = %key.kid(),
            created,
            "DEVELOPMENT MODE: trusting only the local dev key; mint tokens with `switchboard dev-token`"
        );
        let settings = setup::dev_settings(&key);
        let verifier = Verifier::new(&settings, resource.to_owned(), key.key_source())
            .map_err(ServeError::Auth)?;
        return Ok((verifier, vec![]));
    }
    let auth = catalog
        .gateway
        .auth
        .as_ref()
        .ok_or_else(|| ServeError::NoAuth(opts.catalog.clone()))?;
    let keys = setup::key_source(auth, catalog_dir)?;
    let verifier = Verifier::new(auth, resource.to_owned(), keys).map_err(ServeError::Auth)?;
    Ok((verifier, setup::authorization_servers(auth)))
}

/// Step 3: the approvals, when a tool asks for them: kept in the bindings' DynamoDB table,
/// which every replica shares ([`DynamoStore`]), or, for a gateway without bindings (`--dev`),
/// in this process ([`MemoryStore`]); [`preflight`] refuses bindings without the table. Sealed
/// with a key every replica holding the session key derives alike. The page's sign-in is the dev
/// form with `--dev`, else through the authorization server (`gateway.auth.approval_sign_in`,
/// which [`preflight`] requires of such a catalog).
fn approvals(
    opts: &ServeOptions,
    catalog: &Catalog,
    sessions: &Sessions,
    resource: &str,
    audit: &AuditSink,
    aws: Option<&Aws>,
) -> Result<Option<Approvals>, ServeError> {
    if !catalog.tools.iter().any(|t| t.approval.is_some()) {
        return Ok(None);
    }
    let origin = crate::http::origin_of(resource).unwrap_or_else(|| resource.to_owned());
    let auth = catalog.gateway.auth.as_ref();
    let sign_in = match auth.and_then(|a| a.approval_sign_in.as_ref().map(|s| (a, s))) {
        _ if opts.dev => PageSignIn::Dev,
        Some((auth, settings)) => PageSignIn::Oidc(Arc::new(OidcSignIn::new(
            settings,
            &auth.issuer,
            resource,
            &origin,
        )?)),
        None => PageSignIn::Unavailable,
    };
    let store: Arc<dyn Store> = match aws.and_then(|a| Some((a, a.bindings.approvals.as_ref()?))) {
        Some((aws, table)) => {
            tracing::info!(table = %table.table_name, "approvals are kept in DynamoDB, shared by every replica");
            Arc::new(DynamoStore::new(
                &aws.config,
                &table.table_name,
                aws.errors.clone(),
            ))
        }
        None => {
            tracing::info!("approvals are kept in this process: a restart forgets them");
            Arc::new(MemoryStore::new())
        }
    };
    Ok(Some(Approvals::new(ApprovalSettings {
        store,
        key: sessions.ids.derive_key("approvals"),
        origin,
        sign_in,
        audit: audit.clone(),
    })))
}

/// Step 4: the gateway: the AWS side (`aws`, when there are bindings), the backends (`backends` when
/// given, else those the catalog needs), the credential broker when a tool has a work role, the
/// audit sink and the metrics.
async fn build_gateway(
    opts: &ServeOptions,
    catalog: &Catalog,
    catalog_dir: &Path,
    backends: Option<Backends>,
    audit: AuditSink,
    approvals: Option<Approvals>,
    aws: Option<Aws>,
) -> Result<Gateway, ServeError> {
    let tools_off: std::collections::HashMap<String, String> =
        opts.tools_off.iter().cloned().collect();
    if let Some(name) = tools_off
        .keys()
        .find(|n| !catalog.tools.iter().any(|t| &t.name == *n))
    {
        return Err(ServeError::UnknownToolOff(name.clone()));
    }
    for (name, why) in &tools_off {
        tracing::warn!(tool = %name, why = %why, "tool turned off: its calls answer why");
    }
    let backends = match backends {
        Some(b) => b,
        // The units of tools turned off are neither built nor checked.
        None => {
            let mut served = catalog.clone();
            served.tools.retain(|t| !tools_off.contains_key(&t.name));
            backends_for(&served, catalog_dir, aws.as_ref())?
        }
    };
    let aws_errors = aws.as_ref().map(|a| a.errors.clone()).unwrap_or_default();
    let work_roles = aws.as_ref().map(Aws::work_roles).unwrap_or_default();
    let broker = if work_roles.is_empty() {
        None
    } else {
        let config = aws.as_ref().map(|a| &a.config);
        config.map(|c| Broker::with_client(aws_sdk_sts::Client::new(c)))
    };
    let metrics = Metrics::with_registered(&aws_errors, |r| backends.register_metrics(r));
    Gateway::new(
        catalog,
        GatewayConfig {
            backends,
            audit,
            metrics,
            max_in_flight: catalog.gateway.limits.max_in_flight,
            work_roles,
            broker,
            approvals,
            tools_off,
        },
    )
    .map_err(ServeError::Gateway)
}

/// Step 5: the `Host` values accepted: the catalog's, the resource's own and the bound address.
fn allowed_hosts(catalog: &Catalog, resource: &str, bound: SocketAddr) -> Vec<String> {
    let mut allowed_hosts = catalog.gateway.allowed_hosts.clone();
    if let Some(host) = authority_of(resource) {
        allowed_hosts.push(host);
    }
    allowed_hosts.push(bound.to_string());
    allowed_hosts
}

/// Step 6: the sessions, from the environment, saying whether other replicas can verify them.
fn sessions() -> Result<Sessions, ServeError> {
    let sessions = Sessions::from_env()?;
    if sessions.ids.shared_key() {
        tracing::info!(
            peers = !sessions.peers.is_empty(),
            "sessions are verifiable by every replica holding SWITCHBOARD_SESSION_KEY"
        );
    } else {
        tracing::info!(
            "sessions are bound to this process: set the same SWITCHBOARD_SESSION_KEY on every replica"
        );
    }
    Ok(sessions)
}

/// Serves until `shutdown` is cancelled, then drains: refuses new calls, waits up to the grace
/// period for running ones, cancels what is left, stops the backends and closes every stream.
pub async fn run(prepared: Prepared, shutdown: CancellationToken) -> Result<(), ServeError> {
    let Prepared {
        state,
        listener,
        grace,
    } = prepared;
    let addr = listener.local_addr().map_err(ServeError::Io)?;
    tracing::info!(%addr, resource = %state.resource, "switchboard listening");
    let gateway = state.gateway.clone();
    let mcp_shutdown = state.mcp_shutdown.clone();
    let router = app(state);
    let stop_accepting = CancellationToken::new();
    let server = {
        let stop = stop_accepting.clone();
        tokio::spawn(async move {
            // No Nagle: a response written in pieces (SSE) must not wait for the client's
            // delayed ACK (a 40 ms stall per call otherwise).
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        })
    };
    shutdown.cancelled().await;
    tracing::info!(
        in_flight = gateway.in_flight(),
        "shutting down: refusing new calls"
    );
    gateway.start_draining();
    stop_accepting.cancel();
    if !gateway.wait_idle(grace).await {
        tracing::warn!(
            in_flight = gateway.in_flight(),
            "grace period over: cancelling running calls"
        );
    }
    gateway.stop_calls().await;
    mcp_shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(result)) => result.map_err(ServeError::Io)?,
        Ok(Err(join)) => tracing::error!(error = %join, "server task failed"),
        Err(_) => tracing::warn!("connections still open after shutdown; closing them"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Cancels the returned token on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        t.cancel();
    });
    token
}

/// Everything `serve` does, from options to exit.
pub async fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    let prepared = prepare(&opts, None).await?;
    run(prepared, shutdown_on_signals()).await
}
