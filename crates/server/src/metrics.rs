//! Prometheus metrics, served at `GET /api/v1/metrics` in the OpenMetrics
//! text format. The bearer token is the metrics token
//! (`data_dir/metrics-token`), which opens nothing else: a Prometheus
//! configuration does not hold the keys to the server.
//!
//! Counters are bumped where things happen; gauges that describe the
//! stored state (contacts by status, devices) are read from the database at
//! scrape time, so they are right after a restart and cost nothing between
//! scrapes.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::AppState;

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// The route template (`/api/v1/admin/users/{id}`), never the raw path,
    /// so ids do not explode the series count; `unmatched` otherwise.
    pub route: String,
    /// Status class: `2xx`, `4xx`, …
    pub status: String,
}

/// Labels of a free-space gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VolumeLabels {
    /// What lives there: `uploads` or `data`.
    pub volume: String,
}

/// Labels of a state gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The state, e.g. `pending` or `revoked`.
    pub state: String,
}

/// Labels of a finished upload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `stored`, `rejected`, or `refused` (the contact was erased or
    /// expired meanwhile).
    pub outcome: String,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RouteLabels, Counter>,
    http_seconds: Family<RouteLabels, Histogram>,
    /// Contacts created or changed by imports.
    pub contacts_imported: Counter,
    /// Contact messages sent to agents (replays included).
    pub contacts_relayed: Counter,
    /// Uploads that finished, by outcome.
    pub uploads_finished: Family<OutcomeLabels, Counter>,
    /// Connections closed on accept: their address held its share.
    pub connections_refused: Counter,
    /// Sign-ins refused before any password check (throttled or malformed).
    pub sign_ins_throttled: Counter,
    /// Hellos naming a login another connected device shows.
    pub logins_concurrent: Counter,
    connected_agents: Gauge,
    storage_free: Family<VolumeLabels, Gauge>,
    contacts: Family<StateLabels, Gauge>,
    devices: Family<StateLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("deskrec");
        let http_requests = Family::<RouteLabels, Counter>::default();
        let http_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0])
        });
        let m = Self {
            http_requests,
            http_seconds,
            contacts_imported: Counter::default(),
            contacts_relayed: Counter::default(),
            uploads_finished: Family::default(),
            connections_refused: Counter::default(),
            sign_ins_throttled: Counter::default(),
            logins_concurrent: Counter::default(),
            connected_agents: Gauge::default(),
            storage_free: Family::default(),
            contacts: Family::default(),
            devices: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route and status class",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request durations (to the response head)",
            m.http_seconds.clone(),
        );
        registry.register(
            "contacts_imported",
            "Contacts created or changed by imports",
            m.contacts_imported.clone(),
        );
        registry.register(
            "contacts_relayed",
            "Contact messages sent to agents, replays included",
            m.contacts_relayed.clone(),
        );
        registry.register(
            "uploads_finished",
            "Recording uploads that finished, by outcome",
            m.uploads_finished.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed on accept because their address held its share (limits.connections_per_address)",
            m.connections_refused.clone(),
        );
        registry.register(
            "sign_ins_throttled",
            "Sign-ins refused before any password check: throttled, or a login too long",
            m.sign_ins_throttled.clone(),
        );
        registry.register(
            "logins_concurrent",
            "Hellos naming a login another connected device shows (audited as login.concurrent)",
            m.logins_concurrent.clone(),
        );
        registry.register(
            "rte_connected_agents",
            "Agents with an open RTE WebSocket",
            m.connected_agents.clone(),
        );
        registry.register(
            "storage_free_bytes",
            "Free bytes on the volumes of the data directory's uploads and recordings",
            m.storage_free.clone(),
        );
        registry.register(
            "contacts",
            "Contacts by screen-recording status",
            m.contacts.clone(),
        );
        registry.register("devices", "Enrolled devices by state", m.devices.clone());
        Self { registry, ..m }
    }
}

impl Metrics {
    fn observe(&self, labels: RouteLabels, seconds: f64) {
        self.http_requests.get_or_create(&labels).inc();
        self.http_seconds.get_or_create(&labels).observe(seconds);
    }

    /// The OpenMetrics text, after refreshing the state gauges.
    pub async fn render(&self, state: &AppState) -> Result<String, rusqlite::Error> {
        self.connected_agents.set(state.hub().connected() as i64);
        let volumes = [
            ("uploads", state.uploads().dir().to_owned()),
            ("data", state.data_dir().to_owned()),
        ];
        let free = tokio::task::spawn_blocking(move || {
            volumes.map(|(name, dir)| (name, crate::limits::free_bytes(&dir)))
        })
        .await
        .unwrap_or_default();
        for (volume, bytes) in free {
            if let Some(bytes) = bytes {
                self.storage_free
                    .get_or_create(&VolumeLabels {
                        volume: volume.into(),
                    })
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
        }
        let (contacts, devices) = state
            .db()
            .call(|c| {
                let count = |sql: &str| -> rusqlite::Result<Vec<(String, i64)>> {
                    c.prepare(sql)?
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                };
                Ok::<_, rusqlite::Error>((
                    count("SELECT status, count(*) FROM contacts GROUP BY status")?,
                    count(
                        "SELECT CASE WHEN revoked_at IS NULL THEN 'active' ELSE 'revoked' END, count(*)
                         FROM devices GROUP BY 1",
                    )?,
                ))
            })
            .await?;
        for (family, rows, states) in [
            (
                &self.contacts,
                contacts,
                &["pending", "uploaded", "failed", "unrecoverable"][..],
            ),
            (&self.devices, devices, &["active", "revoked"][..]),
        ] {
            // Every known state is exported, zeros included, so a state
            // that empties drops to 0 instead of keeping its last value.
            for s in states {
                let n = rows.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
                family
                    .get_or_create(&StateLabels { state: (*s).into() })
                    .set(n);
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        Ok(out)
    }
}

/// Middleware: counts and times every request by route template.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let resp = next.run(req).await;
    let status = format!("{}xx", resp.status().as_u16() / 100);
    state.metrics().observe(
        RouteLabels {
            method,
            route,
            status,
        },
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// `GET /api/v1/metrics`: Prometheus / OpenMetrics text, for the metrics
/// token only.
pub async fn endpoint(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, crate::api::ApiError> {
    match crate::api::bearer(&headers) {
        Some(t) if state.is_metrics_token(t) => {}
        _ => return Err(crate::api::ApiError::unauthorized()),
    }
    let text = state.metrics().render(&state).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
