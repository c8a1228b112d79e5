//! HTTP routes: the WebSocket endpoint, the test page, health and metrics.

use actix_web::{web, HttpResponse};

use crate::app::Services;
use crate::session;

/// Mounts every route on an actix-web app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws/world/{world_id}/", web::get().to(session::ws_route))
        .route("/ws/world/{world_id}", web::get().to(session::ws_route))
        .route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics))
        .route("/", web::get().to(index));
}

/// 200 whenever the process serves HTTP.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

async fn metrics(services: web::Data<Services>) -> HttpResponse {
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
