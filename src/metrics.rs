//! Prometheus metrics (prometheus-client): sockets, logins, requests by action and code, and
//! (filled in by the balancer) BBB API calls and per-server load. Cheap to clone.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Actions that get their own label value; anything else a client sends is "other", so a
/// client cannot grow the label set.
const KNOWN_ACTIONS: &[&str] = &[
    "authenticate",
    "user.update",
    "user.fetch",
    "bbb.room_url",
    "bbb.call_url",
    "bbb.recordings",
    "chat.direct.create",
    "chat.send",
    "chat.fetch",
    "user.list.search",
    "user.online_status",
    "chat.subscribe",
    "chat.unsubscribe",
    "chat.mark_read",
    "chat.leave",
    "room.enter",
    "room.leave",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub action: &'static str,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BbbCallLabels {
    pub server: String,
    pub call: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    pub server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub server: String,
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    pub instance_name: String,
}

struct Inner {
    registry: Registry,
    sockets_open: Gauge,
    sessions_authenticated: Gauge,
    users_online: Gauge,
    requests: Family<RequestLabels, Counter>,
    logins: Family<OutcomeLabels, Counter>,
    login_seconds: Histogram,
    bbb_calls: Family<BbbCallLabels, Counter>,
    bbb_call_seconds: Family<ServerLabels, Histogram>,
    server_meetings: Family<ServerLabels, Gauge>,
    server_participants: Family<ServerLabels, Gauge>,
    server_cost: Family<ServerLabels, Gauge<f64, AtomicU64>>,
    server_healthy: Family<ServerLabels, Gauge<i64, AtomicI64>>,
    end_callbacks: Family<OutcomeLabels, Counter>,
    server_version: Family<VersionLabels, Gauge>,
    meetings_running: Gauge,
    instance_info: Family<InstanceLabels, Gauge>,
}

/// Handle to the process's metrics.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
    .into_iter()
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::build(Registry::with_prefix("bbb_gateway"))
    }

    /// Every metric labelled `instance="{name}"` (`server.instance_name`).
    pub fn for_instance(name: &str) -> Self {
        Self::build(Registry::with_prefix_and_labels(
            "bbb_gateway",
            [(
                std::borrow::Cow::Borrowed("instance"),
                std::borrow::Cow::Owned(name.to_string()),
            )]
            .into_iter(),
        ))
    }

    fn build(mut registry: Registry) -> Self {
        let sockets_open = Gauge::default();
        let sessions_authenticated = Gauge::default();
        let users_online = Gauge::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let logins = Family::<OutcomeLabels, Counter>::default();
        let login_seconds = Histogram::new(latency_buckets());
        let bbb_calls = Family::<BbbCallLabels, Counter>::default();
        let bbb_call_seconds =
            Family::<ServerLabels, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()));
        let server_meetings = Family::<ServerLabels, Gauge>::default();
        let server_participants = Family::<ServerLabels, Gauge>::default();
        let server_cost = Family::<ServerLabels, Gauge<f64, AtomicU64>>::default();
        let server_healthy = Family::<ServerLabels, Gauge<i64, AtomicI64>>::default();
        let end_callbacks = Family::<OutcomeLabels, Counter>::default();
        let server_version = Family::<VersionLabels, Gauge>::default();
        let meetings_running = Gauge::default();
        let instance_info = Family::<InstanceLabels, Gauge>::default();
        registry.register(
            "instance_info",
            "1, labelled with this instance's server.instance_name",
            instance_info.clone(),
        );
        registry.register("sockets_open", "Open WebSocket connections", sockets_open.clone());
        registry.register(
            "sessions_authenticated",
            "Authenticated WebSocket sessions",
            sessions_authenticated.clone(),
        );
        registry.register(
            "users_online",
            "Distinct users with an authenticated socket",
            users_online.clone(),
        );
        registry.register(
            "requests",
            "WebSocket requests by action and result code",
            requests.clone(),
        );
        registry.register("logins", "Authentication attempts by outcome", logins.clone());
        registry.register(
            "login_seconds",
            "Time to authenticate a socket",
            login_seconds.clone(),
        );
        registry.register(
            "bbb_api_calls",
            "BBB API calls by server, call and outcome",
            bbb_calls.clone(),
        );
        registry.register(
            "bbb_api_call_seconds",
            "BBB API call latency by server",
            bbb_call_seconds.clone(),
        );
        registry.register(
            "server_meetings",
            "Meetings per BBB server at the last poll",
            server_meetings.clone(),
        );
        registry.register(
            "server_participants",
            "Participants per BBB server at the last poll",
            server_participants.clone(),
        );
        registry.register(
            "server_cost",
            "Placement cost per BBB server",
            server_cost.clone(),
        );
        registry.register(
            "server_healthy",
            "1 when the BBB server is healthy",
            server_healthy.clone(),
        );
        registry.register(
            "end_callbacks",
            "BBB end callbacks by outcome (ended, stale, forged)",
            end_callbacks.clone(),
        );
        registry.register(
            "server_version",
            "1 for the BBB version each server reports (empty when unknown)",
            server_version.clone(),
        );
        registry.register(
            "meetings_running",
            "Meetings the gateway knows to be running on BBB (joins skip create)",
            meetings_running.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            sockets_open,
            sessions_authenticated,
            users_online,
            requests,
            logins,
            login_seconds,
            bbb_calls,
            bbb_call_seconds,
            server_meetings,
            server_participants,
            server_cost,
            server_healthy,
            end_callbacks,
            server_version,
            meetings_running,
            instance_info,
        }))
    }

    /// Names this instance (`bbb_gateway_instance_info{instance_name="..."} 1`).
    pub fn set_instance_info(&self, name: &str) {
        self.0
            .instance_info
            .get_or_create(&InstanceLabels {
                instance_name: name.to_string(),
            })
            .set(1);
    }

    pub fn socket_opened(&self) {
        self.0.sockets_open.inc();
    }

    pub fn socket_closed(&self, authenticated: bool) {
        self.0.sockets_open.dec();
        if authenticated {
            self.0.sessions_authenticated.dec();
        }
    }

    pub fn set_users_online(&self, users: usize) {
        self.0.users_online.set(users as i64);
    }

    pub fn login(&self, elapsed: Duration, outcome: &str) {
        if outcome == "success" {
            self.0.sessions_authenticated.inc();
        }
        self.0.login_seconds.observe(elapsed.as_secs_f64());
        self.0
            .logins
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn request(&self, action: &str, code: &str) {
        let action = KNOWN_ACTIONS
            .iter()
            .find(|a| **a == action)
            .copied()
            .unwrap_or("other");
        self.0
            .requests
            .get_or_create(&RequestLabels {
                action,
                code: code.to_string(),
            })
            .inc();
    }

    pub fn bbb_call(&self, server: &str, call: &str, outcome: &str, elapsed: Duration) {
        self.0
            .bbb_calls
            .get_or_create(&BbbCallLabels {
                server: server.to_string(),
                call: call.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.0
            .bbb_call_seconds
            .get_or_create(&ServerLabels {
                server: server.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn server_state(&self, server: &str, meetings: i64, participants: i64, cost: f64, healthy: bool) {
        let labels = ServerLabels {
            server: server.to_string(),
        };
        self.0.server_meetings.get_or_create(&labels).set(meetings);
        self.0
            .server_participants
            .get_or_create(&labels)
            .set(participants);
        self.0.server_cost.get_or_create(&labels).set(cost);
        self.0
            .server_healthy
            .get_or_create(&labels)
            .set(i64::from(healthy));
    }

    /// One end callback and its verdict (`ended`, `stale`, `forged`).
    pub fn end_callback(&self, outcome: &str) {
        self.0
            .end_callbacks
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// The version a server reports: `server_version{server, version} 1`, replacing the
    /// series of the version it reported before.
    pub fn server_version(&self, server: &str, previous: Option<&str>, version: Option<&str>) {
        if let Some(previous) = previous {
            self.0.server_version.remove(&VersionLabels {
                server: server.to_string(),
                version: previous.to_string(),
            });
        }
        self.0
            .server_version
            .get_or_create(&VersionLabels {
                server: server.to_string(),
                version: version.unwrap_or_default().to_string(),
            })
            .set(1);
    }

    pub fn set_meetings_running(&self, running: usize) {
        self.0.meetings_running.set(running as i64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.0.registry).is_err() {
            log::error!("metrics: encoding failed");
        }
        out
    }
}
