//! HTTP routes: the WebSocket endpoint, the test page, health, metrics and the admin API.

pub mod admin;

use actix_web::{web, HttpResponse};

use serde_json::json;

use crate::balancer::callback::Verdict;
use crate::balancer::{ListServers, MeetingEnded};
use crate::registry::GetCounts;
use crate::services::Services;
use crate::session;

/// Mounts every route on an actix-web app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws/world/{world_id}/", web::get().to(session::ws_route))
        .route("/ws/world/{world_id}", web::get().to(session::ws_route))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/_bbb.css", web::get().to(bbb_css))
        .route("/bbb/ended/{meeting_id}/{token}", web::get().to(meeting_ended))
        .route("/bbb/ended/{meeting_id}/{token}", web::post().to(meeting_ended))
        .route("/metrics", web::get().to(metrics))
        .route("/", web::get().to(index))
        .configure(admin::routes);
}

/// 200 whenever the process serves HTTP.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

/// 200 when a database write works and at least one BBB server is active and healthy, else
/// 503 with the reason (`database` first).
async fn readyz(services: web::Data<Services>) -> HttpResponse {
    if let Err(e) = services.store.ping().await {
        crate::log_limit::warn("readyz-database", &format!("readyz: database write failed: {e}"));
        return not_ready("database");
    }
    match services.balancer.send(ListServers).await {
        Ok(servers) if servers.iter().any(|s| s.active && s.healthy) => {
            HttpResponse::Ok().json(json!({"ready": true}))
        }
        Ok(_) => not_ready("no healthy BBB server"),
        Err(_) => not_ready("balancer unavailable"),
    }
}

fn not_ready(reason: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({"ready": false, "reason": reason}))
}

/// BBB's end callback (`meetingEndedURL`, GET or POST): a forged token is 403 and changes
/// nothing; a genuine one is 200, and for the meeting's current incarnation the gateway forgets
/// that the meeting runs.
async fn meeting_ended(path: web::Path<(String, String)>, services: web::Data<Services>) -> HttpResponse {
    let (meeting_id, token) = path.into_inner();
    match services.balancer.send(MeetingEnded { meeting_id, token }).await {
        Ok(verdict) => {
            services.metrics.end_callback(verdict.as_str());
            match verdict {
                Verdict::Forged => HttpResponse::Forbidden().finish(),
                Verdict::Ended | Verdict::Stale => HttpResponse::Ok().finish(),
            }
        }
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// Styles for the BBB HTML5 client (`userdata-bbb_custom_style_url`).
async fn bbb_css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(BBB_CSS)
}

const BBB_CSS: &str = "/* bbb-gateway: blend the BBB client into the event page */
:root { --color-primary: #3b1c4a; }
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; }
";

async fn metrics(services: web::Data<Services>) -> HttpResponse {
    if let Ok(counts) = services.registry.send(GetCounts).await {
        services.metrics.set_users_online(counts.users);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(services.metrics.render())
}

/// The browser test page, compiled into the binary so it works from any directory.
async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("../../static/index.html"))
}
