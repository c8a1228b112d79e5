//! The simulator's control and inspection endpoints for tests and benchmarks: stats, fault
//! modes, meeting details, ending without a checksum, and the fake playback pages.

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
                "creates": data.creates,
                "max_concurrent_creates": data.max_concurrent_creates,
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
    if let Some(callback) = ended {
        notify_end(callback, meeting_id).await;
        log::info!("simulator[{name}]: ended meeting {meeting_id} (test route)");
        HttpResponse::Ok().json(serde_json::json!({ "ended": true }))
    } else {
        not_found("unknown meeting")
    }
}

pub(super) async fn playback(req: HttpRequest) -> HttpResponse {
    let path = req.match_info().get("tail").unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/html;charset=utf-8")
        .body(render::playback_page(path))
}
