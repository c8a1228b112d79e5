//! The admin API (SPEC §8): bearer-token auth, server list, enable/disable, room moves,
//! user moderation and settings reload. JSON in and out; every route is 404 when no
//! `admin_token` is configured, 401 without the right token.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use crate::balancer::{params, AdminRefusal, ListServers, MoveRoom, SetServerActive};
use crate::bus::{self, Audience, Delivery, Publish};
use crate::cluster::InstanceInfo;
use crate::ids::{RoomId, ServerId, WorldId};
use crate::permissions::rules::Moderation;
use crate::permissions::ApplyModeration;
use crate::registry::{GetCounts, Push};
use crate::reload::ReloadError;
use crate::services::Services;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .route("/servers", web::get().to(servers))
            .route("/servers/{id}/disable", web::post().to(disable))
            .route("/servers/{id}/enable", web::post().to(enable))
            .route("/rooms/{world}/{room}/move", web::post().to(move_room))
            .route(
                "/worlds/{world}/users/{user}/moderation",
                web::post().to(moderation),
            )
            .route("/reload", web::post().to(reload))
            .default_service(web::to(unknown)),
    );
}

/// Why an admin request failed; each variant is one HTTP status with a JSON `{"error"}` body.
#[derive(Debug, thiserror::Error)]
enum AdminError {
    /// The admin API is off (no token configured): every route does not exist.
    #[error("not found")]
    Off,
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("internal error")]
    Internal,
}

impl actix_web::ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminError::Off | AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AdminError::Off => HttpResponse::NotFound().finish(),
            other => HttpResponse::build(other.status_code()).json(json!({ "error": other.to_string() })),
        }
    }
}

impl From<actix::MailboxError> for AdminError {
    fn from(e: actix::MailboxError) -> Self {
        log::error!("admin: actor mailbox failed: {e}");
        AdminError::Internal
    }
}

type AdminResult = Result<HttpResponse, AdminError>;

/// `Off` when the admin API is off, `Unauthorized` unless the request carries the token.
fn authorize(req: &HttpRequest, services: &Services) -> Result<(), AdminError> {
    let settings = services.config.current();
    let token = settings.server.admin_token().ok_or(AdminError::Off)?;
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    match given {
        Some(given) if token.matches(given.trim()) => Ok(()),
        _ => Err(AdminError::Unauthorized),
    }
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|e| AdminError::BadRequest(format!("invalid body: {e}")))
}

async fn unknown(req: HttpRequest, services: web::Data<Services>) -> AdminResult {
    authorize(&req, &services)?;
    Err(AdminError::NotFound("no such admin route"))
}

async fn servers(req: HttpRequest, services: web::Data<Services>) -> AdminResult {
    authorize(&req, &services)?;
    let list = services.balancer.send(ListServers).await?;
    let instances = match &services.cluster {
        Some(cluster) => cluster.instances().await.map_err(|e| {
            log::error!("admin: listing instances failed: {e}");
            AdminError::Internal
        })?,
        None => {
            let sockets = services.registry.send(GetCounts).await?.sockets;
            vec![InstanceInfo {
                instance_name: services.instance_name.to_string(),
                sockets: sockets as i64,
                last_heartbeat: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }]
        }
    };
    Ok(HttpResponse::Ok().json(json!({ "servers": list, "instances": instances })))
}

async fn set_active(
    req: HttpRequest,
    services: web::Data<Services>,
    id: String,
    active: bool,
) -> AdminResult {
    authorize(&req, &services)?;
    let status = services
        .balancer
        .send(SetServerActive {
            server: ServerId(id),
            active,
        })
        .await?
        .map_err(|_| AdminError::NotFound("unknown server"))?;
    Ok(HttpResponse::Ok().json(json!({ "server": status })))
}

async fn disable(req: HttpRequest, services: web::Data<Services>, path: web::Path<String>) -> AdminResult {
    set_active(req, services, path.into_inner(), false).await
}

async fn enable(req: HttpRequest, services: web::Data<Services>, path: web::Path<String>) -> AdminResult {
    set_active(req, services, path.into_inner(), true).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    server: String,
}

async fn move_room(
    req: HttpRequest,
    services: web::Data<Services>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> AdminResult {
    authorize(&req, &services)?;
    let (world, room) = path.into_inner();
    let settings = services.config.current();
    let config = settings
        .world(&world)
        .and_then(|w| w.room(&room))
        .and_then(|r| r.bbb())
        .ok_or(AdminError::NotFound("unknown world, or no BBB room with that id"))?;
    let body: MoveBody = parse_body(&body)?;
    let moved = services
        .balancer
        .send(MoveRoom {
            world: WorldId(world.clone()),
            room: RoomId(room.clone()),
            server: ServerId(body.server),
            guest_policy: params::guest_policy(&config),
        })
        .await?
        .map_err(|refusal| match refusal {
            AdminRefusal::UnknownServer => AdminError::NotFound("unknown server"),
            AdminRefusal::Unusable => {
                AdminError::Conflict("that server is inactive, unhealthy or exclusive to another world")
            }
        })?;
    Ok(HttpResponse::Ok().json(json!({ "world": world, "room": room, "moved": moved })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModerationBody {
    state: String,
}

async fn moderation(
    req: HttpRequest,
    services: web::Data<Services>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> AdminResult {
    authorize(&req, &services)?;
    let (world, user) = path.into_inner();
    if services.config.current().world(&world).is_none() {
        return Err(AdminError::NotFound("unknown world"));
    }
    let body: ModerationBody = parse_body(&body)?;
    let state = Moderation::parse(&body.state)
        .ok_or_else(|| AdminError::BadRequest("state must be silenced, banned or none".into()))?;
    let record = services
        .perms
        .send(ApplyModeration {
            world: WorldId(world),
            user,
            state,
        })
        .await?
        .map_err(|_| AdminError::Internal)?
        .ok_or(AdminError::NotFound("unknown user"))?;
    bus::publish(
        &services,
        Publish {
            deliveries: vec![Delivery::new(Audience::User(record.id.clone()), Push::Reload)],
        },
    );
    Ok(HttpResponse::Ok().json(json!({ "user": record.id, "state": state })))
}

/// Re-reads the settings file and applies worlds, rooms and servers without dropping sockets.
/// Bind address, database and simulator need a restart.
async fn reload(req: HttpRequest, services: web::Data<Services>) -> AdminResult {
    authorize(&req, &services)?;
    let reloaded = crate::reload::reload(&services).await.map_err(|e| match e {
        ReloadError::NoSettingsFile | ReloadError::Invalid(_) => AdminError::BadRequest(e.to_string()),
        ReloadError::Internal => AdminError::Internal,
    })?;
    Ok(HttpResponse::Ok().json(json!({
        "reloaded": true,
        "worlds": reloaded.worlds,
        "servers": reloaded.servers,
    })))
}
