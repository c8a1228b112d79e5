//! The simulator's control and inspection endpoints for tests and benchmarks: stats, fault
//! modes, meeting details, ending without a checksum, everyone leaving, adding recordings, the
//! version and expiry settings, and the fake playback pages.

use super::*;

pub(super) async fn stats(state: web::Data<SimulatorState>) -> HttpResponse {
    let instances: Vec<(String, Arc<Instance>)> = state
        .instances()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut out = serde_json::Map::new();
    for (name, instance) in instances {
        let data = instance.data();
        out.insert(
            name,
            serde_json::json!({
                "meetings": data.meetings.len(),
                "creates_total": data.creates_total,
                "joins_total": data.joins_total,
                "ends_total": data.ends_total,
                "get_meetings_total": data.get_meetings_total,
                "creates": data.creates,
                "max_concurrent_creates": data.max_concurrent_creates,
                "recordings": data.recordings.len(),
                "bbb_version": data.version(),
                "empty_meeting_expiry_ms": data.empty_expiry_ms,
                "fault": instance.fault(),
            }),
        );
    }
    HttpResponse::Ok().json(serde_json::json!({ "instances": out }))
}

#[derive(Deserialize)]
pub(super) struct FaultRequest {
    mode: FaultMode,
}

pub(super) async fn set_fault(
    req: HttpRequest,
    body: web::Json<FaultRequest>,
    state: web::Data<SimulatorState>,
) -> HttpResponse {
    let name = instance_name(&req);
    let Some(instance) = state.instance(name) else {
        return not_found("unknown instance");
    };
    instance.fault.store(body.mode.as_u8(), Ordering::Relaxed);
    log::info!("simulator[{name}]: fault mode {:?}", body.mode);
    HttpResponse::Ok().json(serde_json::json!({ "instance": name, "mode": body.mode }))
}

fn join_json(j: &model::JoinCall) -> serde_json::Value {
    serde_json::json!({
        "method": j.method,
        "params": j.params.to_json(),
        "userID": j.user_id,
        "role": j.role.as_str(),
        "guest_waiting": j.guest_waiting,
    })
}

pub(super) async fn meeting_details(req: HttpRequest, state: web::Data<SimulatorState>) -> HttpResponse {
    let name = instance_name(&req);
    let meeting_id = req.match_info().get("meeting_id").unwrap_or_default();
    let Some(instance) = state.existing_instance(name) else {
        return not_found("unknown instance");
    };
    let data = instance.data();
    let Some(m) = data.meetings.get(meeting_id) else {
        return not_found("unknown meeting");
    };
    let create = &m.last_create;
    let body = serde_json::json!({
        "instance": name,
        "meetingID": m.meeting_id,
        "internalMeetingID": m.internal_id,
        "name": m.name,
        "createTime": m.create_time_ms,
        "attendeePW": m.attendee_pw,
        "moderatorPW": m.moderator_pw,
        "voiceBridge": m.voice_bridge,
        "guestPolicy": m.guest_policy,
        "record": m.record,
        "metadata": m.metadata.iter().cloned().collect::<BTreeMap<_, _>>(),
        "creates": data.creates.get(meeting_id).copied().unwrap_or(0),
        "create": {
            "method": create.method,
            "params": create.params.to_json(),
            "presentation_urls": create.presentation_urls,
        },
        "first_create": {
            "method": m.first_create.method,
            "params": m.first_create.params.to_json(),
            "presentation_urls": m.first_create.presentation_urls,
        },
        "running": m.running(),
        "participantCount": m.participant_count(),
        "moderatorCount": m.moderator_count(),
        "hasUserJoined": m.has_user_joined(),
        "attendees": m.attendees.iter().map(|a| serde_json::json!({
            "userID": a.user_id,
            "fullName": a.full_name,
            "role": a.role.as_str(),
            "guest_waiting": a.guest_waiting,
        })).collect::<Vec<_>>(),
        "joins": m.joins.iter().map(join_json).collect::<Vec<_>>(),
    });
    drop(data);
    HttpResponse::Ok().json(body)
}

pub(super) async fn end_without_checksum(req: HttpRequest, state: web::Data<SimulatorState>) -> HttpResponse {
    let name = instance_name(&req);
    let meeting_id = req.match_info().get("meeting_id").unwrap_or_default();
    let Some(instance) = state.existing_instance(name) else {
        return not_found("unknown instance");
    };
    let ended = instance.data().end(meeting_id, now_ms(), &state.public_url);
    if let Some(callbacks) = ended {
        notify_end(callbacks).await;
        log::info!("simulator[{name}]: ended meeting {meeting_id} (test route)");
        HttpResponse::Ok().json(serde_json::json!({ "ended": true }))
    } else {
        not_found("unknown meeting")
    }
}

pub(super) async fn leave_all(req: HttpRequest, state: web::Data<SimulatorState>) -> HttpResponse {
    let name = instance_name(&req);
    let meeting_id = req.match_info().get("meeting_id").unwrap_or_default();
    let Some(instance) = state.existing_instance(name) else {
        return not_found("unknown instance");
    };
    if instance.data().leave_all(meeting_id, now_ms()) {
        log::info!("simulator[{name}]: everyone left meeting {meeting_id}");
        HttpResponse::Ok().json(serde_json::json!({ "left": true }))
    } else {
        not_found("unknown meeting")
    }
}

/// The meeting disappears without any callback, as when a BBB server restarts.
pub(super) async fn forget(req: HttpRequest, state: web::Data<SimulatorState>) -> HttpResponse {
    let name = instance_name(&req);
    let meeting_id = req.match_info().get("meeting_id").unwrap_or_default();
    let Some(instance) = state.existing_instance(name) else {
        return not_found("unknown instance");
    };
    if instance.data().meetings.remove(meeting_id).is_some() {
        log::info!("simulator[{name}]: forgot meeting {meeting_id} (no callback)");
        HttpResponse::Ok().json(serde_json::json!({ "forgotten": true }))
    } else {
        not_found("unknown meeting")
    }
}

/// Most recordings one request may add.
const MAX_ADDED_RECORDINGS: usize = 10_000;

#[derive(Deserialize)]
pub(super) struct AddRecordings {
    count: usize,
}

pub(super) async fn add_recordings(
    req: HttpRequest,
    body: web::Json<AddRecordings>,
    state: web::Data<SimulatorState>,
) -> HttpResponse {
    let name = instance_name(&req);
    let meeting_id = req.match_info().get("meeting_id").unwrap_or_default();
    if body.count > MAX_ADDED_RECORDINGS || meeting_id.is_empty() {
        return HttpResponse::BadRequest().json(serde_json::json!({ "error": "count is at most 10000" }));
    }
    let Some(instance) = state.instance(name) else {
        return not_found("unknown instance");
    };
    let total = instance
        .data()
        .add_recordings(meeting_id, body.count, now_ms(), &state.public_url);
    HttpResponse::Ok().json(serde_json::json!({ "meetingID": meeting_id, "recordings": total }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigRequest {
    bbb_version: Option<String>,
    empty_meeting_expiry_ms: Option<u64>,
}

fn config_json(name: &str, data: &InstanceData) -> serde_json::Value {
    serde_json::json!({
        "instance": name,
        "bbb_version": data.version(),
        "empty_meeting_expiry_ms": data.empty_expiry_ms,
    })
}

pub(super) async fn get_config(req: HttpRequest, state: web::Data<SimulatorState>) -> HttpResponse {
    let name = instance_name(&req);
    let Some(instance) = state.instance(name) else {
        return not_found("unknown instance");
    };
    let body = config_json(name, &instance.data());
    HttpResponse::Ok().json(body)
}

pub(super) async fn set_config(
    req: HttpRequest,
    body: web::Json<ConfigRequest>,
    state: web::Data<SimulatorState>,
) -> HttpResponse {
    let name = instance_name(&req);
    let Some(instance) = state.instance(name) else {
        return not_found("unknown instance");
    };
    let body = body.into_inner();
    if let Some(v) = &body.bbb_version {
        let valid = (1..=32).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid {
            return HttpResponse::BadRequest()
                .json(serde_json::json!({ "error": "bbb_version: 1 to 32 of [A-Za-z0-9.-]" }));
        }
    }
    let (answer, expiry) = {
        let mut data = instance.data();
        if let Some(v) = body.bbb_version {
            data.bbb_version = Some(v);
        }
        if let Some(ms) = body.empty_meeting_expiry_ms {
            data.empty_expiry_ms = ms;
            // Meetings already empty count from now.
            let now = now_ms();
            for m in data.meetings.values_mut().filter(|m| m.attendees.is_empty()) {
                m.empty_since_ms = Some(m.empty_since_ms.map_or(now, |t| t.max(now)));
            }
        }
        (config_json(name, &data), data.empty_expiry_ms)
    };
    if expiry > 0 {
        start_expiry(&instance, name.to_string(), state.public_url.clone());
    }
    log::info!("simulator[{name}]: config {answer}");
    HttpResponse::Ok().json(answer)
}

pub(super) async fn playback(req: HttpRequest) -> HttpResponse {
    let path = req.match_info().get("tail").unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/html;charset=utf-8")
        .body(render::playback_page(path))
}
