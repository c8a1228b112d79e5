//! bbb-gateway: hands out signed BigBlueButton join URLs to venueless-style WebSocket clients.
//!
//! Module map (who talks to whom; no module imports one that imports it back):
//! - [`app`]: startup; opens the [`store`], starts the actors, serves [`http`] routes.
//! - [`services`]: `Services`, the actors' addresses every session and route gets (a leaf).
//! - [`reload`]: re-reads the settings and hands them to the actors (the admin route calls it).
//! - [`http`]: routes; `/ws/world/{id}/` upgrades into a [`session`].
//! - [`session`]: one actor per socket (fragments reassembled by [`inbound`], its unsent output
//!   bounded by [`outbound`]); parses frames via [`protocol`] into typed commands
//!   (newtype ids), runs them through [`users`], [`rooms`] and [`chat`], and alone encodes their
//!   typed replies ([`protocol::reply`]) as frames ([`protocol::wire`]).
//! - [`users`], [`rooms`], [`chat`]: the logic behind login and `user.*`, room commands, and
//!   DMs/calls/conversations (SPEC 4.4, 4.6); they ask [`permissions::PermissionActor`], the
//!   [`store::Store`] and the [`balancer::BbbBalancer`], and answer with pushes for the [`bus`].
//! - [`permissions`]: rights from roles, trait grants, explicit grants, moderation
//!   (pure rules in `permissions::rules`); answers typed views.
//! - [`store`]: one async interface ([`store::StoreBackend`] behind [`store::Store`]); SQLite
//!   is the first backend, on its own thread; ordered migrations.
//! - [`registry`]: live sessions per user; `connection_limit`; delivers the bus's pushes.
//! - [`bus`]: the one push bus: ordered deliveries addressed to users, delivered by the
//!   registry (a PostgreSQL NOTIFY carrier can take them across instances).
//! - [`cluster`]: several instances on PostgreSQL: heartbeat, sockets, LISTEN/NOTIFY (the bus's
//!   carrier across instances); [`relay`]: its `LISTEN` connection, handing what other
//!   instances publish to the local actors.
//! - [`auth`]: JWT and client-id credentials (pure).
//! - [`config`]: typed settings, env overrides, validation; [`secret`]: `Secret` and
//!   constant-time comparison; [`tls`]: outgoing TLS material.
//! - [`error`], [`codes`]: the one error enum and its wire codes.
//! - [`rate_limit`]: the per-socket request limit.
//! - [`metrics`]: Prometheus metrics; [`log_limit`]: aggregated repeated warnings.
//! - [`balancer`]: `BbbBalancer`, a thin actor over pure cores: the server pool with health
//!   (`balancer::pool`), the meeting table (`balancer::meetings`: ready / wait / create on S),
//!   placement (`balancer::strategy`), create/join parameters (`balancer::params`), the
//!   end callback with its HMAC tokens (`balancer::callback`) and recordings merging
//!   (`balancer::recordings`); meetings are known running until BBB says they ended.
//! - [`bbb`]: BBB API checksums, query signing, XML parsing and escaping (pure), the client.
//! - [`simulator`]: the built-in BBB API simulator (dev and tests).
//! - [`wsclient`]: the WebSocket client of the load generator and the integration tests.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod app;
pub mod auth;
pub mod balancer;
pub mod bbb;
pub mod bus;
pub mod chat;
pub mod cluster;
pub mod codes;
pub mod config;
pub mod error;
pub mod http;
pub mod ids;
pub mod inbound;
pub mod log_limit;
pub mod metrics;
pub mod outbound;
pub mod permissions;
pub mod pgserver;
pub mod protocol;
pub mod rate_limit;
pub mod registry;
pub mod relay;
pub mod reload;
pub mod rooms;
pub mod secret;
pub mod services;
pub mod session;
pub mod simulator;
pub mod store;
pub mod tls;
pub mod users;
pub mod wsclient;
