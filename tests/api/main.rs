//! The one integration-test binary: the real app on port 0, real WebSocket clients.

mod admin;
mod auth;
mod bbb;
mod bbb_today;
mod browser;
mod chat;
mod cluster;
mod cluster_bbb;
mod cluster_faults;
mod conversations;
mod hardening;
mod helpers;
mod loadgen;
mod migrate;
mod protocol;
mod startup;
mod tls;
mod users;
