//! The operator console: server-rendered pages at `console.path` (default `/console`) for
//! health and live charts, runs, queues, webhooks, workers and the project, with sign-in by API
//! key exchanged for a session cookie. See `docs/console.md`.
//!
//! Every asset is compiled in (one stylesheet, one script that draws the charts); pages are
//! HTML built with `maud`, which escapes every value spliced into them. The console reads
//! through the components' own APIs (the worker's queue views, the delivery log, the readiness
//! registry, the autoloader's last result, the metrics registry) and acts through them too
//! (cancel, retry, start, replay, reload): it adds no SQL of its own.
//!
//! ```no_run
//! # fn demo(deps: compozy_console::Deps, builder: compozy_server::AppBuilder) {
//! let console = compozy_console::Console::new(deps).expect("valid console configuration");
//! let _sampler = console.spawn_sampler();
//! let builder = builder.pages(console.routes());
//! # let _ = builder; }
//! ```

pub mod config;
mod overview;
mod project;
mod queues;
mod runs;
pub mod series;
pub mod session;
mod sign_in;
mod viewer;
mod views;
mod webhooks;
mod workers;

use std::sync::Arc;

use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use compozy_auth::{Guard, Sessions};
use compozy_autoload::Autoloader;
use compozy_core::Readiness;
use compozy_telemetry::Registry;
use compozy_webhooks::Webhooks;
use compozy_worker::Worker;
use http::{HeaderValue, StatusCode, header};

pub use config::{ConsoleConfig, SecureCookie};
pub use series::Series;
pub use viewer::Viewer;

const SCRIPT: &str = include_str!("../assets/console.js");
const STYLE: &str = include_str!("../assets/console.css");

/// Sign-in and sessions; absent when `auth.enabled` is false.
#[derive(Clone, Debug)]
pub struct Access {
    /// The failure guard, rate limits and metrics the API uses (rate-limit group `console`).
    pub guard: Guard,
    pub sessions: Sessions,
}

/// What the console reads and acts through.
pub struct Deps {
    pub config: ConsoleConfig,
    pub registry: Arc<Registry>,
    pub readiness: Readiness,
    pub worker: Worker,
    pub webhooks: Webhooks,
    pub autoloader: Autoloader,
    pub access: Option<Access>,
    /// The engine's version and commit, shown on the overview.
    pub version: &'static str,
    pub commit: &'static str,
}

/// The console; cheap to clone.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    deps: Deps,
    series: Arc<Series>,
    /// Forms' CSRF token when authentication is off (random per process).
    anonymous_csrf: String,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").field("config", &self.inner.deps.config).finish_non_exhaustive()
    }
}

impl Console {
    pub fn new(deps: Deps) -> Result<Self, String> {
        deps.config.validate()?;
        let series = Arc::new(Series::new(deps.registry.clone(), deps.config.points()));
        let anonymous_csrf = compozy_auth::keys::random_secret().map_err(|e| e.to_string())?;
        Ok(Self { inner: Arc::new(Inner { deps, series, anonymous_csrf }) })
    }

    pub fn config(&self) -> &ConsoleConfig {
        &self.inner.deps.config
    }

    pub(crate) fn deps(&self) -> &Deps {
        &self.inner.deps
    }

    pub(crate) fn access(&self) -> Option<&Access> {
        self.inner.deps.access.as_ref()
    }

    pub(crate) fn anonymous_csrf(&self) -> String {
        self.inner.anonymous_csrf.clone()
    }

    pub fn series(&self) -> &Arc<Series> {
        &self.inner.series
    }

    /// `console.path` followed by `rest` (`""` or `/runs`).
    pub(crate) fn at(&self, rest: &str) -> String {
        format!("{}{rest}", self.inner.deps.config.path)
    }

    /// Where an unauthenticated request goes: the sign-in page (pages), or 401 (the charts' JSON).
    pub(crate) fn to_sign_in(&self, json: bool, clear_cookie: bool) -> Response {
        if json {
            return compozy_core::problem::problem(
                compozy_core::problem::ProblemType::Unauthorized,
                "sign in to the console",
            );
        }
        let mut r = session::see_other(&self.at("/sign-in"));
        if clear_cookie {
            r.headers_mut().insert(header::SET_COOKIE, session::set_cookie(&self.config().path, "", 0, false));
        }
        r
    }

    /// Starts sampling the metrics for the charts; abort the handle at shutdown.
    pub fn spawn_sampler(&self) -> tokio::task::JoinHandle<()> {
        self.inner.series.spawn(self.config().sample_interval)
    }

    /// Every route of the console, for `AppBuilder::pages`. Templates (not raw paths) label the
    /// HTTP metrics, as for the API.
    pub fn routes(&self) -> Vec<(String, MethodRouter)> {
        let c = self.clone();
        let routes: Vec<(&str, MethodRouter<Console>)> = vec![
            ("", get(overview::page)),
            (
                "/",
                get(
                    |axum::extract::State(c): axum::extract::State<Console>| async move { session::see_other(&c.at("")) },
                ),
            ),
            ("/series.json", get(overview::series)),
            ("/sign-in", get(sign_in::page).post(sign_in::submit)),
            ("/sign-out", post(sign_in::sign_out)),
            ("/runs", get(runs::list).post(runs::start)),
            ("/runs/{id}", get(runs::detail)),
            ("/runs/{id}/json", get(runs::json)),
            ("/runs/{id}/cancel", post(runs::cancel)),
            ("/runs/{id}/retry", post(runs::retry)),
            ("/queues", get(queues::page)),
            ("/webhooks", get(webhooks::page)),
            ("/webhooks/deliveries/{id}/replay", post(webhooks::replay)),
            ("/workers", get(workers::page)),
            ("/project", get(project::page)),
            ("/project/reload", post(project::reload)),
            ("/static/console.js", get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") })),
            ("/static/console.css", get(|| async { asset(STYLE, "text/css; charset=utf-8") })),
        ];
        routes
            .into_iter()
            .map(|(rest, r)| (c.at(rest), r.layer(map_response(session::security_headers)).with_state(c.clone())))
            .collect()
    }
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    r
}
