//! The local gateway: runs each function of the template as its real binary, speaking the
//! Lambda Runtime API, and serves the template's event sources in front of them.
//!
//! - [`instance`]: one function process with its own Runtime API endpoint.
//! - [`pool`]: a function's instances: started on demand up to a concurrency limit, reused
//!   when idle, replaced when they crash or time out.
//! - [`http_api`]: the API Gateway HTTP API (payload format 2.0) event source.
//! - [`sqs`]: the SQS event source (Lambda's event source mapping: long polls a queue, invokes
//!   the function with batches, deletes what succeeded).
//! - [`websocket`]: the API Gateway WebSocket API (its routes' functions, and the
//!   `@connections` Management API the functions post to), on a listener of its own.
//! - [`streams`]: the DynamoDB stream event source (Lambda's event source mapping over the
//!   table's stream, with [`filter`]ing, batch item failures, retries, bisection and an
//!   on-failure queue).
//! - [`schedules`]: the template's `Schedule`/`ScheduleV2` events and the emulator's Scheduler
//!   schedules, fired on a real clock (`make dev`) or a virtual one (tests).
//!
//! - [`metrics`] and [`dashboard`]: the EMF lines the functions print, collected, and the
//!   template's dashboard and alarms over them at `/_local/dashboard` (no CloudWatch locally).
//!
//! Event sources are modules of their own over [`pool::FunctionPool::invoke`], so more plug
//! in beside these.

pub mod dashboard;
pub mod filter;
pub mod http_api;
pub mod instance;
pub mod logs;
pub mod metrics;
pub mod pool;
pub mod schedules;
mod server;
pub mod sqs;
pub mod streams;
pub mod websocket;

use crate::Error;
use crate::resolve::Resolver;
use crate::template::Template;
pub use logs::LogSink;
pub use pool::{FunctionPool, InvokeError};
pub use schedules::{ScheduleClock, ScheduleOptions, Schedules};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
pub use streams::StreamOptions;
pub use websocket::{WebSocketApi, WebSocketSettings};

/// The variable that points the functions' API Gateway Management API client at the gateway's
/// own `@connections` endpoint (the SDK's service-specific endpoint override).
pub const MANAGEMENT_ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI";

/// Instances per function unless configured otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Everything the gateway needs; `main` of the `gateway` binary and the end-to-end tests build
/// it the same way ([`GatewayConfig::from_env`]).
#[derive(Clone)]
pub struct GatewayConfig {
    pub template: Template,
    /// Where the HTTP API listens.
    pub bind: SocketAddr,
    /// Where the WebSocket API (and its `@connections` endpoint) listens, if the template has
    /// one; `None` does not serve it.
    pub ws_bind: Option<SocketAddr>,
    pub websocket: WebSocketSettings,
    pub streams: StreamOptions,
    /// The clock schedules fire on (real unless a test says otherwise).
    pub schedules: ScheduleOptions,
    /// Folder holding the function binaries (`target/debug` or `target/release`).
    pub bin_dir: PathBuf,
    /// The AWS emulator every function talks to.
    pub endpoint_url: String,
    pub region: String,
    /// Template parameter values that replace the defaults.
    pub parameters: HashMap<String, String>,
    /// Appended to every resource's local name (isolated test runs); empty for `make dev`.
    pub name_suffix: String,
    pub concurrency: usize,
    pub logs: LogSink,
}

impl GatewayConfig {
    /// The configuration `make dev` uses: `PORT` (default 3000), `WS_PORT` (the WebSocket API,
    /// default 3001), `AWS_ENDPOINT_URL` (default
    /// the emulator on 127.0.0.1:`MOTO_PORT` or 5000), `AWS_REGION` (default us-east-1),
    /// `GATEWAY_BIN_DIR` (default `target/debug` of this workspace), `GATEWAY_CONCURRENCY`, and
    /// `PARAMETER_OVERRIDES` (as `sam deploy --parameter-overrides`: `Key=Value` pairs separated
    /// by spaces) for template parameters.
    pub fn from_env(template: Template) -> Result<GatewayConfig, Error> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let port: u16 = match var("PORT") {
            Some(p) => p
                .parse()
                .map_err(|_| config_error(format!("PORT must be a port number, got {p:?}")))?,
            None => 3000,
        };
        let ws_port: u16 = match var("WS_PORT") {
            Some(p) => p
                .parse()
                .map_err(|_| config_error(format!("WS_PORT must be a port number, got {p:?}")))?,
            None => 3001,
        };
        let endpoint_url = var("AWS_ENDPOINT_URL").unwrap_or_else(|| {
            format!(
                "http://127.0.0.1:{}",
                var("MOTO_PORT").unwrap_or_else(|| "5000".into())
            )
        });
        let concurrency = match var("GATEWAY_CONCURRENCY") {
            Some(c) => c.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                config_error(format!(
                    "GATEWAY_CONCURRENCY must be a positive number, got {c:?}"
                ))
            })?,
            None => DEFAULT_CONCURRENCY,
        };
        let parameters = match var("PARAMETER_OVERRIDES") {
            Some(text) => parse_overrides(&text, &template)?,
            None => HashMap::new(),
        };
        Ok(GatewayConfig {
            template,
            bind: SocketAddr::from(([127, 0, 0, 1], port)),
            ws_bind: Some(SocketAddr::from(([127, 0, 0, 1], ws_port))),
            websocket: WebSocketSettings::default(),
            streams: StreamOptions::default(),
            schedules: ScheduleOptions::default(),
            bin_dir: var("GATEWAY_BIN_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(default_bin_dir),
            endpoint_url,
            region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
            parameters,
            name_suffix: String::new(),
            concurrency,
            logs: LogSink::stderr(),
        })
    }
}

/// `Key=Value Key2=Value2`: each key a parameter of the template.
fn parse_overrides(text: &str, template: &Template) -> Result<HashMap<String, String>, Error> {
    text.split_whitespace()
        .map(|pair| {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                config_error(format!("PARAMETER_OVERRIDES: {pair:?} is not Key=Value"))
            })?;
            if !template.parameters().iter().any(|p| p.name == key) {
                return Err(config_error(format!(
                    "PARAMETER_OVERRIDES: the template has no parameter {key:?}"
                )));
            }
            Ok((key.to_string(), value.to_string()))
        })
        .collect()
}

fn config_error(message: String) -> Error {
    Error::Template {
        template: "gateway configuration".into(),
        message,
    }
}

/// The function that the `kind` (an event source or route: `SQS event`) `name` invokes, or an
/// error when the gateway does not run it.
fn function_pool<'a>(
    functions: &'a HashMap<String, Arc<FunctionPool>>,
    kind: &str,
    name: &str,
    function: &str,
) -> Result<&'a Arc<FunctionPool>, Error> {
    functions.get(function).ok_or_else(|| {
        config_error(format!(
            "{kind} {name} names function {function}, which the gateway does not run"
        ))
    })
}

/// One event of a function (an event source mapping's), being resolved against the local
/// resources.
struct EventOf<'a> {
    template: &'a Template,
    resolver: &'a Resolver,
    /// The function's logical id.
    function: String,
    /// The event's name under the function's `Events`.
    event: String,
}

impl EventOf<'_> {
    /// An error about this event.
    fn error(&self, message: String) -> Error {
        Error::Template {
            template: self.template.source().to_owned(),
            message: format!("{}: event {}: {message}", self.function, self.event),
        }
    }
}

/// Each of `events` (function, event name, properties) that is `enabled`, resolved by
/// `resolve`, in order; the first that cannot be is an error.
fn resolve_enabled<S, T>(
    template: &Template,
    resolver: &Resolver,
    events: Vec<(String, String, S)>,
    enabled: impl Fn(&S) -> bool,
    resolve: impl Fn(EventOf<'_>, S) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    events
        .into_iter()
        .filter(|(_, _, spec)| enabled(spec))
        .map(|(function, event, spec)| {
            let at = EventOf {
                template,
                resolver,
                function,
                event,
            };
            resolve(at, spec)
        })
        .collect()
}

/// An event source mapping's `BatchSize` as the pollers count records (at least one).
fn batch_size(batch_size: u64) -> usize {
    usize::try_from(batch_size).unwrap_or(usize::MAX).max(1)
}

/// `target/debug` of this workspace (CARGO_TARGET_DIR honoured).
pub fn default_bin_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    target.join("debug")
}

/// The template parameter with the base URL of links in emails.
pub const PUBLIC_URL_PARAMETER: &str = "PublicUrl";

/// What `make dev` runs (and the end-to-end tests, the same way): the template's KMS keys and
/// SES identities in the emulator (tables are provisioned before), then the gateway.
pub async fn start_dev(mut config: GatewayConfig) -> Result<(Gateway, Vec<String>), Error> {
    // Links in emails point at this gateway unless told otherwise.
    if config
        .template
        .parameters()
        .iter()
        .any(|p| p.name == PUBLIC_URL_PARAMETER)
    {
        config
            .parameters
            .entry(PUBLIC_URL_PARAMETER.to_string())
            .or_insert_with(|| format!("http://{}", config.bind));
    }
    let resolver = Resolver::new(
        &config.template,
        &config.parameters,
        &config.name_suffix,
        &config.region,
    )
    .with_endpoint(&config.endpoint_url);
    let provisioned =
        crate::provision::provision_services(&config.template, &resolver, &config.endpoint_url)
            .await?;
    Ok((Gateway::start(config).await?, provisioned))
}

/// A running gateway. Dropping it stops the HTTP and WebSocket servers, the SQS pollers and
/// stream readers (and the invocations they started) and every function instance.
pub struct Gateway {
    addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
    websocket: Option<Arc<WebSocketApi>>,
    functions: Arc<HashMap<String, Arc<FunctionPool>>>,
    server: tokio::task::JoinHandle<()>,
    ws_server: Option<tokio::task::JoinHandle<()>>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
    schedules: Arc<Schedules>,
    metrics: Arc<metrics::Metrics>,
    dashboard: Arc<dashboard::Dashboard>,
}

impl Gateway {
    /// Resolves every function's environment, binds the HTTP API and starts serving, serves the
    /// template's WebSocket API (if it has one and `ws_bind` is set), starts polling the queues
    /// of the functions' SQS events (the queues must exist: [`start_dev`] creates them) and
    /// reading the streams of their DynamoDB events (the tables must exist; with `LATEST`,
    /// every change after this returns is delivered). Function instances start on the first
    /// request, message or batch that needs them.
    pub async fn start(mut config: GatewayConfig) -> Result<Gateway, Error> {
        // Every line the functions print passes the metrics collector (their EMF lines).
        let metrics = metrics::Metrics::new();
        config.logs = metrics.tee(config.logs.clone());
        let resolver = Resolver::new(
            &config.template,
            &config.parameters,
            &config.name_suffix,
            &config.region,
        )
        .with_endpoint(&config.endpoint_url);
        let sqs_sources = sqs::SqsSource::from_template(&config.template, &resolver)?;
        let stream_sources = streams::StreamSource::from_template(&config.template, &resolver)?;
        // Bound first: the functions' environment names the Management API's address.
        let ws_api = config.template.websocket_api().zip(config.ws_bind);
        let (ws_listener, management) = match ws_api {
            Some((api, bind)) => {
                let listener = tokio::net::TcpListener::bind(bind)
                    .await
                    .map_err(|e| config_error(format!("cannot listen on {bind}: {e}")))?;
                let addr = listener
                    .local_addr()
                    .map_err(|e| config_error(e.to_string()))?;
                let endpoint = format!("http://{addr}/{}", api.stage);
                (Some((listener, addr)), Some(endpoint))
            }
            None => (None, None),
        };
        let mut functions = HashMap::new();
        for spec in config.template.functions() {
            let binary = config.bin_dir.join(&spec.binary);
            if !binary.is_file() {
                return Err(config_error(format!(
                    "{}: binary {} not found; build the functions first (cargo build --bins)",
                    spec.logical_id,
                    binary.display()
                )));
            }
            let mut pool = FunctionPool::new(&spec, &resolver, &config)?;
            if let Some(endpoint) = &management {
                pool = pool.with_variable(MANAGEMENT_ENDPOINT_ENV, endpoint.clone());
            }
            functions.insert(spec.logical_id.clone(), Arc::new(pool));
        }
        let functions = Arc::new(functions);
        let schedules = Arc::new(Schedules::new(
            &config.template,
            &resolver,
            &functions,
            &crate::provision::emulator_sdk_config(&config.endpoint_url).await,
            &config.logs,
            &config.schedules,
        )?);
        let router = http_api::Router::new(&config.template.http_routes());
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|e| config_error(format!("cannot listen on {}: {e}", config.bind)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| config_error(e.to_string()))?;
        let state = Arc::new(http_api::HttpApi::new(
            router,
            functions.clone(),
            config.logs.clone(),
        ));
        let mut pollers = Vec::new();
        if !sqs_sources.is_empty() || !stream_sources.is_empty() {
            let sdk = crate::provision::emulator_sdk_config(&config.endpoint_url).await;
            pollers = sqs::start(
                sqs_sources,
                &functions,
                aws_sdk_sqs::Client::new(&sdk),
                &config.region,
                &config.logs,
            )?;
            let started = streams::start(
                stream_sources,
                &functions,
                &streams::Clients::new(&sdk),
                &config.region,
                &config.logs,
                &config.streams,
            )
            .await;
            match started {
                Ok(handles) => pollers.extend(handles),
                Err(e) => {
                    for poller in &pollers {
                        poller.abort();
                    }
                    return Err(e);
                }
            }
        }
        let (websocket, ws_server, ws_addr) = match (config.template.websocket_api(), ws_listener) {
            (Some(spec), Some((listener, ws_addr))) => {
                let api_id = resolver
                    .name(&spec.logical_id)
                    .unwrap_or(&spec.logical_id)
                    .to_owned();
                let api = Arc::new(WebSocketApi::new(
                    spec,
                    &functions,
                    &api_id,
                    config.websocket.clone(),
                    config.logs.clone(),
                )?);
                let handle = api.clone().serve(listener);
                (Some(api), Some(handle), Some(ws_addr))
            }
            _ => (None, None, None),
        };
        pollers.extend(schedules.spawn_ticker());
        let dashboard = Arc::new(dashboard::Dashboard::new(
            &config.template,
            &resolver,
            metrics.clone(),
        ));
        let local = dashboard.clone();
        let server = tokio::spawn(server::serve(listener, move |req| {
            let state = state.clone();
            let local = local.clone();
            async move {
                // The gateway's own pages, before API routing: never a function's.
                if dashboard::is_local(req.uri().path()) {
                    return local.handle(&req);
                }
                state.handle(req).await
            }
        }));
        Ok(Gateway {
            addr,
            ws_addr,
            websocket,
            functions,
            server,
            ws_server,
            pollers,
            schedules,
            metrics,
            dashboard,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the WebSocket API listens (`ws://{ws_addr}/{stage}`), if it is served.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// The WebSocket API's URL, e.g. `ws://127.0.0.1:3001/ws`, if it is served.
    pub fn ws_url(&self) -> Option<String> {
        let api = self.websocket.as_ref()?;
        Some(format!("ws://{}/{}", self.ws_addr?, api.stage()))
    }

    /// The WebSocket API (its connections, the test hooks), if it is served.
    pub fn websocket(&self) -> Option<&Arc<WebSocketApi>> {
        self.websocket.as_ref()
    }

    /// Delays each `POST @connections` answer by `delay` (simulates API Gateway's latency).
    pub fn set_post_delay(&self, delay: Duration) {
        if let Some(api) = &self.websocket {
            api.set_post_delay(delay);
        }
    }

    /// The schedule event source (a test on a virtual clock calls its `advance_to`).
    pub fn schedules(&self) -> &Arc<Schedules> {
        &self.schedules
    }

    /// The metrics collected from the functions' EMF lines.
    pub fn metrics(&self) -> &Arc<metrics::Metrics> {
        &self.metrics
    }

    /// The template's dashboard and alarms over [`Gateway::metrics`].
    pub fn dashboard(&self) -> &Arc<dashboard::Dashboard> {
        &self.dashboard
    }

    /// A function's pool, by logical id (tests look at its instances).
    pub fn function(&self, logical_id: &str) -> Option<&Arc<FunctionPool>> {
        self.functions.get(logical_id)
    }

    pub fn functions(&self) -> impl Iterator<Item = &Arc<FunctionPool>> {
        self.functions.values()
    }

    /// Serves until the HTTP server stops (it stops only when the gateway is dropped).
    pub async fn wait(&mut self) {
        let _ = (&mut self.server).await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(ws) = &self.ws_server {
            ws.abort();
        }
        for poller in &self.pollers {
            poller.abort();
        }
        for pool in self.functions.values() {
            pool.stop_all();
        }
    }
}
