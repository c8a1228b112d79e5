//! Built-in BBB API simulator (SPEC §9): answers the BBB API under `/simulator/...` for dev and tests.
//!
//! Routes (all under `/simulator`; `{instance}` is `[a-z0-9-]{1,32}`, the bare form is "default"):
//! - `GET|POST [/{instance}]/bigbluebutton/api/{call}`: create, join, getMeetings, getMeetingInfo,
//!   isMeetingRunning, end, getRecordings; checksums checked like BBB (algorithm by length).
//! - `GET [/{instance}]/bigbluebutton/api`: the version index.
//! - `GET /stats`: per-instance call counters as JSON.
//! - `GET /{instance}/meetings/{meetingID}`: what the last create and every join received (JSON).
//! - `POST /{instance}/meetings/{meetingID}/end`: ends a meeting without a checksum.
//! - `POST /{instance}/meetings/{meetingID}/leave`: everyone leaves (the meeting stays, empty).
//! - `POST /{instance}/meetings/{meetingID}/forget`: the meeting vanishes without a callback.
//! - `POST /{instance}/meetings/{meetingID}/recordings` `{"count": N}`: adds N recordings.
//! - `GET|POST /{instance}/config` `{"bbb_version"?, "empty_meeting_expiry_ms"?}`: the version
//!   the instance pretends to be, and after how long an empty meeting expires (0 = never).
//! - `POST /{instance}/fault` `{"mode": ...}`: makes the instance misbehave (see [`FaultMode`]).
//! - `GET /playback/...`: small pages served behind the URLs of simulated recordings.
//!
//! Each instance keeps its state behind one `std::sync::Mutex`, held only for map updates and
//! rendering, never across an `.await`.

mod callbacks;
mod control;
mod model;
mod recordings;
mod render;

use callbacks::{notify_end, start_expiry};
use control::{
    add_recordings, end_without_checksum, forget, get_config, leave_all, meeting_details, playback,
    set_config, set_fault, stats,
};
use recordings::get_recordings;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::bbb::checksum::verify;
use crate::bbb::query::strip_checksum;
use model::{CreateCall, CreateOutcome, InstanceData, JoinOutcome, Params};

/// Name of the instance served at `/simulator/bigbluebutton/api/...`.
pub const DEFAULT_INSTANCE: &str = "default";

/// How long the `hang` fault waits before answering.
pub const HANG_SECS: u64 = 120;

/// Default artificial delay inside `create`, so overlapping creates are observable.
pub const DEFAULT_CREATE_DELAY_MS: u64 = 5;

/// Behaviour of one instance for every BBB API call (set with `POST /simulator/{instance}/fault`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultMode {
    /// Answer normally.
    #[default]
    Ok,
    /// Status 500 with a short text body.
    Http500,
    /// Status 200 with a body that is not XML.
    Garbage,
    /// A well-formed `FAILED` / `internalError` response.
    Failed,
    /// Wait [`HANG_SECS`] (on a timer, no thread blocked), then answer normally.
    Hang,
    /// Send a 200 head, then abort the connection while streaming the body: the client sees
    /// a reset/truncated response and actix logs a payload error.
    Close,
}

impl FaultMode {
    fn as_u8(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Http500 => 1,
            Self::Garbage => 2,
            Self::Failed => 3,
            Self::Hang => 4,
            Self::Close => 5,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Http500,
            2 => Self::Garbage,
            3 => Self::Failed,
            4 => Self::Hang,
            5 => Self::Close,
            _ => Self::Ok,
        }
    }
}

/// One simulated BBB server.
#[derive(Debug, Default)]
struct Instance {
    data: Mutex<InstanceData>,
    fault: AtomicU8,
    /// Whether the expiry task of this instance runs.
    sweeping: AtomicBool,
}

impl Instance {
    fn data(&self) -> MutexGuard<'_, InstanceData> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fault(&self) -> FaultMode {
        FaultMode::from_u8(self.fault.load(Ordering::Relaxed))
    }
}

/// Shared state of the simulator: the secret, the public URL and every instance.
pub struct SimulatorState {
    secret: String,
    public_url: String,
    create_delay_ms: u64,
    instances: Mutex<BTreeMap<String, Arc<Instance>>>,
}

impl std::fmt::Debug for SimulatorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("SimulatorState")
            .field("public_url", &self.public_url)
            .field("create_delay_ms", &self.create_delay_ms)
            .finish_non_exhaustive()
    }
}

fn valid_instance_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl SimulatorState {
    /// `public_url` is how browsers reach the service (playback URLs are built from it).
    pub fn new(secret: String, public_url: String) -> Self {
        let mut instances = BTreeMap::new();
        instances.insert(DEFAULT_INSTANCE.to_string(), Arc::new(Instance::default()));
        Self {
            secret,
            public_url: public_url.trim_end_matches('/').to_string(),
            create_delay_ms: DEFAULT_CREATE_DELAY_MS,
            instances: Mutex::new(instances),
        }
    }

    /// Artificial delay inside every `create` (0 disables it).
    pub fn with_create_delay_ms(mut self, create_delay_ms: u64) -> Self {
        self.create_delay_ms = create_delay_ms;
        self
    }

    fn instances(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Instance>>> {
        self.instances.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The instance of that name, created on first use; `None` for an invalid name.
    fn instance(&self, name: &str) -> Option<Arc<Instance>> {
        if !valid_instance_name(name) {
            return None;
        }
        Some(self.instances().entry(name.to_string()).or_default().clone())
    }

    fn existing_instance(&self, name: &str) -> Option<Arc<Instance>> {
        self.instances().get(name).cloned()
    }
}

/// Mounts every simulator route under `/simulator`.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<SimulatorState>) {
    cfg.service(
        web::scope("/simulator")
            .app_data(state)
            .route("/stats", web::get().to(stats))
            .route("/playback/{tail:.*}", web::get().to(playback))
            .route("/bigbluebutton/api", web::get().to(index))
            .route("/bigbluebutton/api/", web::get().to(index))
            .route("/bigbluebutton/api/{call}", web::get().to(api))
            .route("/bigbluebutton/api/{call}", web::post().to(api))
            .route("/{instance}/bigbluebutton/api", web::get().to(index))
            .route("/{instance}/bigbluebutton/api/", web::get().to(index))
            .route("/{instance}/bigbluebutton/api/{call}", web::get().to(api))
            .route("/{instance}/bigbluebutton/api/{call}", web::post().to(api))
            .route("/{instance}/fault", web::post().to(set_fault))
            .route(
                "/{instance}/meetings/{meeting_id}",
                web::get().to(meeting_details),
            )
            .route(
                "/{instance}/meetings/{meeting_id}/end",
                web::post().to(end_without_checksum),
            )
            .route(
                "/{instance}/meetings/{meeting_id}/leave",
                web::post().to(leave_all),
            )
            .route("/{instance}/meetings/{meeting_id}/forget", web::post().to(forget))
            .route(
                "/{instance}/meetings/{meeting_id}/recordings",
                web::post().to(add_recordings),
            )
            .route("/{instance}/config", web::get().to(get_config))
            .route("/{instance}/config", web::post().to(set_config)),
    );
}

fn instance_name(req: &HttpRequest) -> &str {
    req.match_info().get("instance").unwrap_or(DEFAULT_INSTANCE)
}

fn xml(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml;charset=utf-8")
        .body(body)
}

fn not_found(what: &str) -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({ "error": what }))
}

/// A body that fails on first poll, which makes actix abort the connection.
struct DroppedBody;

impl MessageBody for DroppedBody {
    type Error = std::io::Error;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "simulated connection drop",
        ))))
    }
}

/// The answer a fault mode forces, if any. `hang` waits and then lets the call proceed.
async fn apply_fault(instance: &Instance, name: &str) -> Option<HttpResponse> {
    match instance.fault() {
        FaultMode::Ok => None,
        FaultMode::Http500 => Some(
            HttpResponse::InternalServerError()
                .content_type("text/plain")
                .body("simulated internal server error"),
        ),
        FaultMode::Garbage => Some(
            HttpResponse::Ok()
                .content_type("text/xml;charset=utf-8")
                .body("simulated garbage {\"not\": xml} <<<"),
        ),
        FaultMode::Failed => Some(xml(render::failed("internalError", "simulated failure"))),
        FaultMode::Hang => {
            log::debug!("simulator[{name}]: hanging for {HANG_SECS} s");
            actix_web::rt::time::sleep(Duration::from_secs(HANG_SECS)).await;
            None
        }
        FaultMode::Close => Some(HttpResponse::Ok().force_close().body(DroppedBody)),
    }
}

async fn index(req: HttpRequest, state: web::Data<SimulatorState>) -> HttpResponse {
    let name = instance_name(&req);
    let Some(instance) = state.instance(name) else {
        return not_found("unknown instance");
    };
    if let Some(forced) = apply_fault(&instance, name).await {
        return forced;
    }
    let version = instance.data().version().to_string();
    let mut out = render::XmlOut::response("SUCCESS");
    out.el("version", "2.0")
        .el("apiVersion", "2.0")
        .el("bbbVersion", &version);
    xml(out.finish())
}

const KNOWN_CALLS: [&str; 7] = [
    "create",
    "join",
    "getMeetings",
    "getMeetingInfo",
    "isMeetingRunning",
    "end",
    "getRecordings",
];

async fn api(req: HttpRequest, body: Bytes, state: web::Data<SimulatorState>) -> HttpResponse {
    let name = instance_name(&req).to_string();
    let Some(instance) = state.instance(&name) else {
        return not_found("unknown instance");
    };
    if let Some(forced) = apply_fault(&instance, &name).await {
        return forced;
    }
    let call = req.match_info().get("call").unwrap_or_default();
    if !KNOWN_CALLS.contains(&call) {
        log::debug!("simulator[{name}]: unsupported call {call:?}");
        return xml(render::failed(
            "unsupportedRequest",
            "This request is not supported.",
        ));
    }
    // Like BBB: drop `checksum=` from the raw query and hash the rest exactly as received.
    let (query, given) = strip_checksum(req.query_string());
    let valid = given.is_some_and(|sum| verify(call, &query, &state.secret, &sum));
    if !valid {
        log::debug!("simulator[{name}]: {call} refused: checksum mismatch");
        return xml(render::failed("checksumError", "Checksums do not match"));
    }
    let params = Params::parse(&query);
    let method = req.method().as_str().to_string();
    let behaviour = instance.data().behaviour();
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !body.is_empty() && behaviour.checks_content_type && !model::content_type_accepted(content_type) {
        // BBB 2.6.18+ and 3.0 (ContentTypeConstraint): a body needs a supported type.
        log::debug!("simulator[{name}]: {call} refused: Content-Type {content_type:?}");
        return xml(render::failed(
            "unsupportedContentType",
            "POST request Content-Type is missing or unsupported",
        ));
    }
    // A form body holds parameters, not a modules document.
    let xml_body = content_type.is_none_or(|t| !t.to_ascii_lowercase().contains("form"));
    let body: &[u8] = if xml_body { &body } else { &[] };
    match call {
        "create" => create(&state, &instance, &name, params, method, body).await,
        "join" => join(&state, &instance, &name, &params, &method),
        "getMeetings" => {
            let mut data = instance.data();
            data.get_meetings_total += 1;
            xml(render::meetings(data.meetings.values()))
        }
        "getMeetingInfo" => get_meeting_info(&instance, &params),
        "isMeetingRunning" => is_meeting_running(&instance, &params),
        "end" => end(&state, &instance, &name, &params).await,
        _ => get_recordings(&instance, &params, behaviour),
    }
}

fn missing_meeting_id() -> HttpResponse {
    xml(render::failed(
        "missingParamMeetingID",
        "You must specify a meeting ID for the meeting.",
    ))
}

fn meeting_not_found() -> HttpResponse {
    xml(render::failed(
        "notFound",
        "A meeting with that ID does not exist",
    ))
}

/// Presentation URLs from a create body `<modules><module name="presentation"><document url=..>`.
fn presentation_urls(body: &[u8]) -> Result<Vec<String>, crate::bbb::xml::XmlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let root = crate::bbb::xml::parse_document(body)?;
    Ok(root
        .children_named("module")
        .filter(|m| m.attr("name") == Some("presentation"))
        .flat_map(|m| m.children_named("document"))
        .filter_map(|d| d.attr("url"))
        .map(str::to_string)
        .collect())
}

/// Decrements the in-flight create counter even if the request future is dropped.
struct InFlightCreate {
    instance: Arc<Instance>,
    meeting_id: String,
}

impl Drop for InFlightCreate {
    fn drop(&mut self) {
        self.instance.data().leave_create(&self.meeting_id);
    }
}

async fn create(
    state: &SimulatorState,
    instance: &Arc<Instance>,
    name: &str,
    params: Params,
    method: String,
    body: &[u8],
) -> HttpResponse {
    let Some(meeting_id) = params.non_empty("meetingID").map(str::to_string) else {
        return missing_meeting_id();
    };
    instance.data().enter_create(&meeting_id);
    let _in_flight = InFlightCreate {
        instance: instance.clone(),
        meeting_id: meeting_id.clone(),
    };
    let presentation_urls = match presentation_urls(body) {
        Ok(urls) => urls,
        Err(err) => {
            log::warn!("simulator[{name}]: create {meeting_id}: bad modules body: {err}");
            return xml(render::failed(
                "invalidModules",
                "The request body is not a valid modules document.",
            ));
        }
    };
    if state.create_delay_ms > 0 {
        actix_web::rt::time::sleep(Duration::from_millis(state.create_delay_ms)).await;
    }
    let call = CreateCall {
        method,
        params,
        presentation_urls,
    };
    let outcome = instance.data().create(&meeting_id, call, now_ms());
    match outcome {
        CreateOutcome::Created(meeting) => {
            log::info!("simulator[{name}]: created meeting {meeting_id}");
            xml(render::create_response(&meeting, false))
        }
        CreateOutcome::Duplicate(meeting) => {
            log::debug!("simulator[{name}]: duplicate create of {meeting_id}");
            xml(render::create_response(&meeting, true))
        }
        CreateOutcome::NotUnique => xml(render::failed(
            "idNotUnique",
            "A meeting already exists with that meeting ID.  Please use a different meeting ID.",
        )),
    }
}

fn join(
    state: &SimulatorState,
    instance: &Instance,
    name: &str,
    params: &Params,
    method: &str,
) -> HttpResponse {
    if params.non_empty("meetingID").is_none() {
        return missing_meeting_id();
    }
    let outcome = instance.data().join(params, method);
    match outcome {
        JoinOutcome::UnknownMeeting => xml(render::failed(
            "invalidMeetingIdentifier",
            "The meeting ID that you supplied did not match any existing meetings",
        )),
        JoinOutcome::MissingFullName => xml(render::failed(
            "missingParamFullName",
            "You must specify a name for the attendee who will be joining the meeting.",
        )),
        JoinOutcome::InvalidPassword => xml(render::failed(
            "invalidPassword",
            "You either did not supply a password or the password supplied is neither the \
             attendee or moderator password for this conference.",
        )),
        JoinOutcome::Joined {
            meeting_name,
            user_id,
            role,
            guest_waiting,
        } => {
            let meeting_id = params.non_empty("meetingID").unwrap_or_default();
            let full_name = params.non_empty("fullName").unwrap_or_default();
            log::debug!(
                "simulator[{name}]: join {meeting_id} as {} (guest waiting: {guest_waiting})",
                role.as_str()
            );
            if params
                .get("redirect")
                .is_some_and(|r| r.eq_ignore_ascii_case("false"))
            {
                let token = model::sha1_hex(&format!("{meeting_id}/{user_id}"));
                let session = token.get(..16).unwrap_or_default();
                let mut out = render::XmlOut::response("SUCCESS");
                out.el("messageKey", "successfullyJoined")
                    .el("message", "You have joined successfully.")
                    .el("meeting_id", &model::sha1_hex(meeting_id))
                    .el("user_id", &user_id)
                    .el("auth_token", token.get(16..28).unwrap_or_default())
                    .el("session_token", session)
                    .el("guestStatus", if guest_waiting { "WAIT" } else { "ALLOW" })
                    .el(
                        "url",
                        &format!(
                            "{}/simulator/html5client/join?sessionToken={session}",
                            state.public_url
                        ),
                    );
                return xml(out.finish());
            }
            HttpResponse::Ok()
                .content_type("text/html;charset=utf-8")
                .body(render::join_page(&render::JoinPage {
                    meeting_name: &meeting_name,
                    meeting_id,
                    full_name,
                    user_id: &user_id,
                    role: role.as_str(),
                    guest_waiting,
                }))
        }
    }
}

fn get_meeting_info(instance: &Instance, params: &Params) -> HttpResponse {
    let Some(meeting_id) = params.non_empty("meetingID") else {
        return missing_meeting_id();
    };
    let data = instance.data();
    match data.meetings.get(meeting_id) {
        Some(meeting) => xml(render::meeting_info(meeting)),
        None => meeting_not_found(),
    }
}

fn is_meeting_running(instance: &Instance, params: &Params) -> HttpResponse {
    let Some(meeting_id) = params.non_empty("meetingID") else {
        return missing_meeting_id();
    };
    let running = instance
        .data()
        .meetings
        .get(meeting_id)
        .is_some_and(model::Meeting::running);
    let mut out = render::XmlOut::response("SUCCESS");
    out.el_display("running", running);
    xml(out.finish())
}

async fn end(state: &SimulatorState, instance: &Instance, name: &str, params: &Params) -> HttpResponse {
    let Some(meeting_id) = params.non_empty("meetingID") else {
        return missing_meeting_id();
    };
    let ended = instance.data().end(meeting_id, now_ms(), &state.public_url);
    let Some(callbacks) = ended else {
        return meeting_not_found();
    };
    notify_end(callbacks).await;
    log::info!("simulator[{name}]: ended meeting {meeting_id}");
    let mut out = render::XmlOut::response("SUCCESS");
    out.el("messageKey", "sentEndMeetingRequest").el(
        "message",
        "A request to end the meeting was sent.  Please wait a few seconds, and then use the \
         getMeetingInfo or isMeetingRunning API calls to verify that it was ended.",
    );
    xml(out.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests;
