//! bbb-gateway: hands out signed BigBlueButton join URLs to venueless-style WebSocket clients.
//!
//! Module map (who talks to whom):
//! - [`app`]: startup; opens the store, starts the actors, serves [`http`] routes.
//! - [`http`]: routes; `/ws/world/{id}/` upgrades into a [`session`].
//! - [`session`]: one actor per socket; parses frames via [`protocol`], asks
//!   [`permissions::PermissionActor`] for rights, [`store::StoreActor`] for users, and
//!   [`registry::SessionRegistry`] for pushes to a user's other sockets.
//! - [`permissions`]: rights from roles, trait grants, explicit grants, moderation
//!   (pure rules in `permissions::rules`).
//! - [`store`]: SQLite on its own thread (`SyncArbiter`), ordered migrations.
//! - [`registry`]: live sessions per user; `connection_limit`; push delivery.
//! - [`rooms`], [`chat`]: the logic behind room commands and DMs/calls; sessions call them,
//!   they ask the actors.
//! - [`auth`]: JWT and client-id credentials (pure).
//! - [`config`]: typed settings, env overrides, validation.
//! - [`error`], [`protocol::codes`]: the one error enum and its wire codes.
//! - [`metrics`]: Prometheus metrics.
//! - [`balancer`]: `BbbBalancer` owns the server pool and meeting records; places, creates,
//!   signs join URLs, polls load and health, gathers recordings (pure placement in
//!   `balancer::strategy`, create/join parameters in `balancer::params`).
//! - [`bbb`]: BBB API checksums, query signing, XML parsing (pure).
//! - [`simulator`]: the built-in BBB API simulator (dev and tests).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod app;
pub mod auth;
pub mod balancer;
pub mod bbb;
pub mod chat;
pub mod codes;
pub mod config;
pub mod error;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod permissions;
pub mod protocol;
pub mod registry;
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
