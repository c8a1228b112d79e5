//! Tests of the simulator, driving it through actix's test service (and a real server on port 0
//! where a connection matters), parsing its XML with the crate's own BBB parsers.

use super::*;
use crate::bbb::checksum::{checksum, ChecksumAlgorithm};
use crate::bbb::query::{signed_url, QueryBuilder};
use crate::bbb::xml::{
    parse_get_meetings, parse_is_meeting_running, parse_meeting_info, parse_recordings, parse_status,
    MeetingLoad,
};
use actix_web::http::StatusCode;
use actix_web::{test, App};

const SECRET: &str = "sim-secret-for-tests";
const PUBLIC_URL: &str = "http://sim.test:8375";

fn state() -> web::Data<SimulatorState> {
    web::Data::new(SimulatorState::new(SECRET.to_string(), format!("{PUBLIC_URL}/")).with_create_delay_ms(0))
}

/// Signed path+query for an API call on an instance (`None` = the bare default routes).
fn uri(instance: Option<&str>, call: &str, query: &str) -> String {
    uri_alg(instance, call, query, ChecksumAlgorithm::Sha1)
}

fn uri_alg(instance: Option<&str>, call: &str, query: &str, alg: ChecksumAlgorithm) -> String {
    let base = match instance {
        Some(i) => format!("/simulator/{i}/bigbluebutton/"),
        None => "/simulator/bigbluebutton/".to_string(),
    };
    signed_url(&base, call, query, alg, SECRET)
}

fn create_query(meeting_id: &str, record: bool) -> String {
    QueryBuilder::new()
        .text("name", "Main stage")
        .text("meetingID", meeting_id)
        .text("attendeePW", "att-pw")
        .text("moderatorPW", "mod-pw")
        .flag("record", record)
        .text("meta_Source", "bbb-gateway")
        .text("meta_World", "sample")
        .flag("muteOnStart", true)
        .flag("lockSettingsDisablePrivateChat", true)
        .text("voiceBridge", "71234")
        .text("guestPolicy", "ALWAYS_ACCEPT")
        .finish()
}

fn join_query(meeting_id: &str, name: &str, user_id: &str, password: &str) -> String {
    QueryBuilder::new()
        .text("meetingID", meeting_id)
        .text("fullName", name)
        .text("userID", user_id)
        .text("password", password)
        .flag("joinViaHtml5", true)
        .text("userdata-bbb_custom_style_url", "http://gw.test/_bbb.css")
        .flag("userdata-bbb_skip_check_audio", true)
        .finish()
}

macro_rules! app {
    ($state:expr) => {
        test::init_service(App::new().configure(|cfg| configure(cfg, $state.clone()))).await
    };
}

macro_rules! get {
    ($app:expr, $uri:expr) => {
        test::call_and_read_body(&$app, test::TestRequest::get().uri(&$uri).to_request()).await
    };
}

macro_rules! get_resp {
    ($app:expr, $uri:expr) => {
        test::call_service(&$app, test::TestRequest::get().uri(&$uri).to_request()).await
    };
}

macro_rules! post_json {
    ($app:expr, $uri:expr, $json:expr) => {
        test::call_service(
            &$app,
            test::TestRequest::post().uri(&$uri).set_json($json).to_request(),
        )
        .await
    };
}

macro_rules! json {
    ($app:expr, $uri:expr) => {{
        let body = get!($app, $uri);
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    }};
}

fn text(body: &Bytes) -> String {
    String::from_utf8(body.to_vec()).unwrap()
}

#[actix_rt::test]
async fn wrong_missing_or_tampered_checksum_is_refused() {
    let st = state();
    let app = app!(st);
    let query = create_query("m1", false);
    let wrong_secret = signed_url(
        "/simulator/bigbluebutton/",
        "create",
        &query,
        ChecksumAlgorithm::Sha1,
        "not-the-secret",
    );
    let no_checksum = format!("/simulator/bigbluebutton/api/create?{query}");
    let tampered = uri(None, "create", &query).replace("meetingID=m1", "meetingID=m2");
    let other_call = uri(None, "getMeetings", &query).replace("getMeetings", "create");
    let bad_length = format!("/simulator/bigbluebutton/api/create?{query}&checksum=abc");
    for bad in [wrong_secret, no_checksum, tampered, other_call, bad_length] {
        let st = parse_status(&get!(app, bad)).unwrap();
        assert_eq!(st.returncode, "FAILED", "{bad}");
        assert_eq!(st.message_key.as_deref(), Some("checksumError"));
        assert_eq!(st.message.as_deref(), Some("Checksums do not match"));
    }
    let (_, meetings) = parse_get_meetings(&get!(app, uri(None, "getMeetings", ""))).unwrap();
    assert!(meetings.is_empty());
}

#[actix_rt::test]
async fn checksum_is_checked_over_the_raw_query_as_received() {
    let st = state();
    let app = app!(st);
    // Space as %20 instead of '+', checksum first: BBB hashes the bytes as sent.
    let query = "name=Raw%20Name&meetingID=raw-1";
    let sum = checksum(ChecksumAlgorithm::Sha1, "create", query, SECRET);
    let path = format!("/simulator/bigbluebutton/api/create?checksum={sum}&{query}");
    assert!(parse_status(&get!(app, path)).unwrap().is_success());
    let details = json!(app, "/simulator/default/meetings/raw-1");
    assert_eq!(details["name"], "Raw Name");
}

#[actix_rt::test]
async fn sha256_sha384_and_sha512_checksums_are_accepted() {
    let st = state();
    let app = app!(st);
    for (i, alg) in [
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha384,
        ChecksumAlgorithm::Sha512,
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("alg-{i}");
        let body = get!(app, uri_alg(None, "create", &create_query(&id, false), alg));
        assert!(parse_status(&body).unwrap().is_success(), "{alg}");
        let q = QueryBuilder::new().text("meetingID", &id).finish();
        let (_, info) = parse_meeting_info(&get!(app, uri_alg(None, "getMeetingInfo", &q, alg))).unwrap();
        assert_eq!(info.unwrap().meeting_id, id);
    }
}

#[actix_rt::test]
async fn create_twice_answers_duplicate_warning_and_keeps_passwords() {
    let st = state();
    let app = app!(st);
    let first = text(&get!(app, uri(None, "create", &create_query("dup", false))));
    let st1 = parse_status(first.as_bytes()).unwrap();
    assert!(st1.is_success());
    assert_eq!(st1.message_key, None);
    assert!(first.contains("<attendeePW>att-pw</attendeePW>"));
    assert!(first.contains("<moderatorPW>mod-pw</moderatorPW>"));
    assert!(first.contains("<voiceBridge>71234</voiceBridge>"));
    assert!(first.contains(&format!("<internalMeetingID>{}-", model::sha1_hex("dup"))));

    let second = get!(app, uri(None, "create", &create_query("dup", false)));
    let st2 = parse_status(&second).unwrap();
    assert!(st2.is_success());
    assert_eq!(st2.message_key.as_deref(), Some("duplicateWarning"));

    let stats = json!(app, "/simulator/stats");
    assert_eq!(stats["instances"]["default"]["creates"]["dup"], 2);
    assert_eq!(stats["instances"]["default"]["meetings"], 1);
}

#[actix_rt::test]
async fn create_with_other_passwords_is_id_not_unique() {
    let st = state();
    let app = app!(st);
    get!(app, uri(None, "create", &create_query("pw", false)));
    let q = QueryBuilder::new()
        .text("meetingID", "pw")
        .text("attendeePW", "different")
        .finish();
    let st = parse_status(&get!(app, uri(None, "create", &q))).unwrap();
    assert_eq!(st.returncode, "FAILED");
    assert_eq!(st.message_key.as_deref(), Some("idNotUnique"));
}

#[actix_rt::test]
async fn create_without_meeting_id_is_missing_param_and_random_passwords_are_generated() {
    let st = state();
    let app = app!(st);
    let q = QueryBuilder::new().text("name", "No id").finish();
    let st1 = parse_status(&get!(app, uri(None, "create", &q))).unwrap();
    assert_eq!(st1.message_key.as_deref(), Some("missingParamMeetingID"));

    let q = QueryBuilder::new().text("meetingID", "gen").finish();
    assert!(parse_status(&get!(app, uri(None, "create", &q)))
        .unwrap()
        .is_success());
    let details = json!(app, "/simulator/default/meetings/gen");
    let att = details["attendeePW"].as_str().unwrap();
    let moder = details["moderatorPW"].as_str().unwrap();
    assert!(att.len() >= 8 && moder.len() >= 8 && att != moder);
    assert_eq!(details["name"], "gen");
}

#[actix_rt::test]
async fn create_by_post_stores_presentation_urls_and_every_parameter() {
    let st = state();
    let app = app!(st);
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<modules>\r\n  \
                <module name=\"presentation\">\r\n    \
                <document url=\"https://files.example/deck.pdf?a=1&amp;b=2\" filename=\"deck.pdf\"/>\r\n    \
                <document url=\"https://files.example/second.pdf\"/>\r\n  </module>\r\n  \
                <module name=\"other\"><document url=\"https://ignored.example/x.pdf\"/></module>\r\n\
                </modules>";
    let req = test::TestRequest::post()
        .uri(&uri(None, "create", &create_query("post-1", true)))
        .insert_header(("content-type", "application/xml"))
        .set_payload(body)
        .to_request();
    let resp = test::call_and_read_body(&app, req).await;
    assert!(parse_status(&resp).unwrap().is_success());

    let d = json!(app, "/simulator/default/meetings/post-1");
    assert_eq!(d["create"]["method"], "POST");
    assert_eq!(
        d["create"]["presentation_urls"],
        serde_json::json!([
            "https://files.example/deck.pdf?a=1&b=2",
            "https://files.example/second.pdf"
        ])
    );
    let p = &d["create"]["params"];
    assert_eq!(p["name"], "Main stage");
    assert_eq!(p["record"], "true");
    assert_eq!(p["meta_Source"], "bbb-gateway");
    assert_eq!(p["meta_World"], "sample");
    assert_eq!(p["muteOnStart"], "true");
    assert_eq!(p["lockSettingsDisablePrivateChat"], "true");
    assert_eq!(p["voiceBridge"], "71234");
    assert_eq!(p["guestPolicy"], "ALWAYS_ACCEPT");
    assert!(p.get("checksum").is_none());
    assert_eq!(d["record"], true);
    assert_eq!(d["metadata"]["source"], "bbb-gateway");
    assert_eq!(d["creates"], 1);
}

#[actix_rt::test]
async fn create_by_post_with_a_doctype_body_is_refused() {
    let st = state();
    let app = app!(st);
    let body = "<!DOCTYPE m [<!ENTITY x \"y\">]><modules><module name=\"presentation\">\
                <document url=\"&x;\"/></module></modules>";
    let req = test::TestRequest::post()
        .uri(&uri(None, "create", &create_query("evil", false)))
        .set_payload(body)
        .to_request();
    let st = parse_status(&test::call_and_read_body(&app, req).await).unwrap();
    assert_eq!(st.returncode, "FAILED");
    assert_eq!(
        get_resp!(app, "/simulator/default/meetings/evil").status(),
        StatusCode::NOT_FOUND
    );
}

#[actix_rt::test]
async fn join_by_password_gives_moderator_and_viewer_pages_and_records_parameters() {
    let st = state();
    let app = app!(st);
    get!(app, uri(None, "create", &create_query("j1", false)));

    let moderator = get_resp!(
        app,
        uri(None, "join", &join_query("j1", "Ada L", "u-1", "mod-pw"))
    );
    assert_eq!(moderator.status(), StatusCode::OK);
    let ctype = moderator.headers().get("content-type").unwrap().to_str().unwrap();
    assert!(ctype.starts_with("text/html"), "{ctype}");
    let html = text(&test::read_body(moderator).await);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<title>BBB simulator</title>"));
    assert!(html.contains(
        r#"<main id="sim-join" data-meeting-id="j1" data-full-name="Ada L" data-role="MODERATOR""#
    ));
    assert!(html.contains("Main stage"));

    let viewer = text(&get!(
        app,
        uri(None, "join", &join_query("j1", "Bob", "u-2", "att-pw"))
    ));
    assert!(viewer.contains(r#"data-full-name="Bob" data-role="VIEWER""#));

    let d = json!(app, "/simulator/default/meetings/j1");
    let joins = d["joins"].as_array().unwrap();
    assert_eq!(joins.len(), 2);
    assert_eq!(joins[0]["role"], "MODERATOR");
    assert_eq!(joins[0]["method"], "GET");
    assert_eq!(joins[0]["params"]["fullName"], "Ada L");
    assert_eq!(joins[0]["params"]["userID"], "u-1");
    assert_eq!(joins[0]["params"]["joinViaHtml5"], "true");
    assert_eq!(
        joins[0]["params"]["userdata-bbb_custom_style_url"],
        "http://gw.test/_bbb.css"
    );
    assert_eq!(joins[0]["params"]["userdata-bbb_skip_check_audio"], "true");
    assert_eq!(joins[1]["role"], "VIEWER");
    assert_eq!(d["participantCount"], 2);
    assert_eq!(d["moderatorCount"], 1);
    assert_eq!(d["hasUserJoined"], true);
}

#[actix_rt::test]
async fn join_role_parameter_wins_over_password() {
    let st = state();
    let app = app!(st);
    get!(app, uri(None, "create", &create_query("r1", false)));
    let q = QueryBuilder::new()
        .text("meetingID", "r1")
        .text("fullName", "Role User")
        .text("role", "MODERATOR")
        .text("password", "att-pw")
        .finish();
    assert!(text(&get!(app, uri(None, "join", &q))).contains(r#"data-role="MODERATOR""#));
    let q = QueryBuilder::new()
        .text("meetingID", "r1")
        .text("fullName", "No Password")
        .text("role", "viewer")
        .finish();
    assert!(text(&get!(app, uri(None, "join", &q))).contains(r#"data-role="VIEWER""#));
}

#[actix_rt::test]
async fn join_unknown_meeting_wrong_password_or_no_name_is_refused() {
    let st = state();
    let app = app!(st);
    get!(app, uri(None, "create", &create_query("k1", false)));
    let cases = [
        (join_query("nope", "A", "u", "mod-pw"), "invalidMeetingIdentifier"),
        (join_query("k1", "A", "u", "wrong"), "invalidPassword"),
        (
            QueryBuilder::new()
                .text("meetingID", "k1")
                .text("password", "mod-pw")
                .finish(),
            "missingParamFullName",
        ),
        (
            QueryBuilder::new().text("fullName", "A").finish(),
            "missingParamMeetingID",
        ),
    ];
    for (q, key) in cases {
        let st = parse_status(&get!(app, uri(None, "join", &q))).unwrap();
        assert_eq!(st.returncode, "FAILED", "{key}");
        assert_eq!(st.message_key.as_deref(), Some(key));
    }
    let d = json!(app, "/simulator/default/meetings/k1");
    assert_eq!(d["participantCount"], 0);
    assert_eq!(d["hasUserJoined"], false);
}

#[actix_rt::test]
async fn join_page_escapes_html_and_shows_waiting_guests() {
    let st = state();
    let app = app!(st);
    let q = QueryBuilder::new()
        .text("name", "<b>Room & \"Co\"</b>")
        .text("meetingID", "g1")
        .text("attendeePW", "a")
        .text("moderatorPW", "m")
        .text("guestPolicy", "ASK_MODERATOR")
        .finish();
    get!(app, uri(None, "create", &q));
    let q = QueryBuilder::new()
        .text("meetingID", "g1")
        .text("fullName", "<script>alert(1)</script>")
        .text("password", "a")
        .flag("guest", true)
        .finish();
    let html = text(&get!(app, uri(None, "join", &q)));
    assert!(!html.contains("<script>"));
    assert!(!html.contains("<b>Room"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;b&gt;Room &amp; &quot;Co&quot;&lt;/b&gt;"));
    assert!(html.contains(r#"data-guest-waiting="true""#));
    assert!(html.contains(r#"id="sim-guest-waiting""#));
}

#[actix_rt::test]
async fn get_meetings_counts_participants_and_rejoin_does_not_double_count() {
    let st = state();
    let app = app!(st);
    let (status, none) = parse_get_meetings(&get!(app, uri(None, "getMeetings", ""))).unwrap();
    assert_eq!(status.message_key.as_deref(), Some("noMeetings"));
    assert!(none.is_empty());

    get!(app, uri(None, "create", &create_query("c1", false)));
    get!(app, uri(None, "create", &create_query("c2", false)));
    get!(app, uri(None, "join", &join_query("c1", "A", "u-1", "mod-pw")));
    get!(app, uri(None, "join", &join_query("c1", "B", "u-2", "att-pw")));
    get!(
        app,
        uri(None, "join", &join_query("c1", "B again", "u-2", "att-pw"))
    );

    let (status, meetings) = parse_get_meetings(&get!(app, uri(None, "getMeetings", ""))).unwrap();
    assert!(status.is_success());
    assert_eq!(
        meetings,
        vec![
            MeetingLoad {
                meeting_id: "c1".to_string(),
                running: true,
                participant_count: 2,
                moderator_count: 1,
                ..MeetingLoad::default()
            },
            MeetingLoad {
                meeting_id: "c2".to_string(),
                ..MeetingLoad::default()
            },
        ]
    );
    let q = QueryBuilder::new().text("meetingID", "c1").finish();
    let (_, running) = parse_is_meeting_running(&get!(app, uri(None, "isMeetingRunning", &q))).unwrap();
    assert!(running);
    let q2 = QueryBuilder::new().text("meetingID", "c2").finish();
    let (_, running2) = parse_is_meeting_running(&get!(app, uri(None, "isMeetingRunning", &q2))).unwrap();
    assert!(!running2);
    let (_, info) = parse_meeting_info(&get!(app, uri(None, "getMeetingInfo", &q))).unwrap();
    let info = info.unwrap();
    assert_eq!(info.participant_count, 2);
    assert!(info.has_user_joined);
    assert!(info.create_time > 1_600_000_000_000);
}

#[actix_rt::test]
async fn end_removes_the_meeting_and_unknown_end_is_not_found() {
    let st = state();
    let app = app!(st);
    get!(app, uri(None, "create", &create_query("e1", false)));
    let q = QueryBuilder::new().text("meetingID", "e1").finish();
    let ended = parse_status(&get!(app, uri(None, "end", &q))).unwrap();
    assert!(ended.is_success());
    assert_eq!(ended.message_key.as_deref(), Some("sentEndMeetingRequest"));

    let (st_info, info) = parse_meeting_info(&get!(app, uri(None, "getMeetingInfo", &q))).unwrap();
    assert_eq!(st_info.message_key.as_deref(), Some("notFound"));
    assert_eq!(
        st_info.message.as_deref(),
        Some("A meeting with that ID does not exist")
    );
    assert!(info.is_none());
    let (_, running) = parse_is_meeting_running(&get!(app, uri(None, "isMeetingRunning", &q))).unwrap();
    assert!(!running);

    let again = parse_status(&get!(app, uri(None, "end", &q))).unwrap();
    assert_eq!(again.returncode, "FAILED");
    assert_eq!(again.message_key.as_deref(), Some("notFound"));
}

#[actix_rt::test]
async fn ending_a_recorded_meeting_with_joins_publishes_a_recording() {
    let st = state();
    let app = app!(st);
    let create = text(&get!(app, uri(None, "create", &create_query("rec-1", true))));
    let create_time: i64 = create
        .split("<createTime>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .parse()
        .unwrap();
    get!(app, uri(None, "join", &join_query("rec-1", "A", "u-1", "mod-pw")));
    get!(app, uri(None, "join", &join_query("rec-1", "B", "u-2", "att-pw")));
    get!(app, uri(None, "join", &join_query("rec-1", "B", "u-2", "att-pw")));
    // Not recorded, or recorded but nobody joined: no recording.
    get!(app, uri(None, "create", &create_query("plain", false)));
    get!(app, uri(None, "join", &join_query("plain", "A", "u-1", "mod-pw")));
    get!(app, uri(None, "create", &create_query("empty", true)));
    for id in ["rec-1", "plain", "empty"] {
        let q = QueryBuilder::new().text("meetingID", id).finish();
        assert!(parse_status(&get!(app, uri(None, "end", &q)))
            .unwrap()
            .is_success());
    }

    let q = QueryBuilder::new()
        .text("meetingID", "rec-1,plain,empty,never")
        .text("state", "any")
        .finish();
    let raw = text(&get!(app, uri(None, "getRecordings", &q)));
    assert!(raw.contains("<name><![CDATA[Main stage]]></name>"));
    let (status, recs) = parse_recordings(raw.as_bytes()).unwrap();
    assert!(status.is_success());
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    let record_id = format!("{}-{create_time}", model::sha1_hex("rec-1"));
    assert_eq!(r.record_id, record_id);
    assert_eq!(r.meeting_id, "rec-1");
    assert_eq!(r.state, "published");
    assert!(r.published);
    assert_eq!(r.participants, "2");
    assert_eq!(r.start_time_ms, create_time);
    assert!(r.end_time_ms >= create_time);
    let formats: Vec<(&str, String)> = r
        .formats
        .iter()
        .map(|f| (f.kind.as_str(), f.url.clone()))
        .collect();
    assert_eq!(
        formats,
        vec![
            (
                "presentation",
                format!("{PUBLIC_URL}/simulator/playback/presentation/2.3/{record_id}")
            ),
            (
                "video",
                format!("{PUBLIC_URL}/simulator/playback/video/{record_id}/video-0.m4v")
            ),
        ]
    );

    let none_q = QueryBuilder::new().text("meetingID", "plain").finish();
    let (st_none, none) = parse_recordings(&get!(app, uri(None, "getRecordings", &none_q))).unwrap();
    assert_eq!(st_none.message_key.as_deref(), Some("noRecordings"));
    assert!(none.is_empty());

    let playback = get_resp!(app, format!("/simulator/playback/presentation/2.3/{record_id}"));
    assert_eq!(playback.status(), StatusCode::OK);
}

#[actix_rt::test]
async fn instances_are_isolated_and_invalid_names_are_404() {
    let st = state();
    let app = app!(st);
    get!(app, uri(Some("bbb-a"), "create", &create_query("iso", false)));
    let (_, on_a) = parse_get_meetings(&get!(app, uri(Some("bbb-a"), "getMeetings", ""))).unwrap();
    let (_, on_b) = parse_get_meetings(&get!(app, uri(Some("bbb-b"), "getMeetings", ""))).unwrap();
    let (_, on_default) = parse_get_meetings(&get!(app, uri(None, "getMeetings", ""))).unwrap();
    assert_eq!(on_a.len(), 1);
    assert!(on_b.is_empty());
    assert!(on_default.is_empty());
    // The bare routes and "/simulator/default/..." are the same instance.
    get!(app, uri(None, "create", &create_query("dflt", false)));
    let (_, via_name) = parse_get_meetings(&get!(app, uri(Some("default"), "getMeetings", ""))).unwrap();
    assert_eq!(via_name.len(), 1);
    let st_join = parse_status(&get!(
        app,
        uri(Some("bbb-b"), "join", &join_query("iso", "A", "u", "mod-pw"))
    ))
    .unwrap();
    assert_eq!(st_join.message_key.as_deref(), Some("invalidMeetingIdentifier"));

    for bad in [
        "UPPER",
        "under_score",
        "this-name-is-far-too-long-for-an-instance",
    ] {
        let resp = get_resp!(app, uri(Some(bad), "getMeetings", ""));
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{bad}");
    }
    assert_eq!(
        get_resp!(app, "/simulator/bbb-a/meetings/unknown").status(),
        StatusCode::NOT_FOUND
    );
}

#[actix_rt::test]
async fn index_answers_the_version_and_unknown_calls_are_unsupported() {
    let st = state();
    let app = app!(st);
    for path in [
        "/simulator/bigbluebutton/api",
        "/simulator/bigbluebutton/api/",
        "/simulator/x1/bigbluebutton/api",
    ] {
        let body = text(&get!(app, path));
        assert!(parse_status(body.as_bytes()).unwrap().is_success(), "{path}");
        assert!(body.contains("<version>2.0</version>"));
        assert!(body.contains("<apiVersion>2.0</apiVersion>"));
        assert!(body.contains("<bbbVersion>3.0.0-sim</bbbVersion>"));
    }
    let st_unknown = parse_status(&get!(app, uri(None, "deleteRecordings", "recordID=x"))).unwrap();
    assert_eq!(st_unknown.message_key.as_deref(), Some("unsupportedRequest"));
}

#[actix_rt::test]
async fn fault_modes_http500_garbage_failed_and_back_to_ok() {
    let st = state();
    let app = app!(st);
    let call = uri(Some("flaky"), "getMeetings", "");

    let set = post_json!(
        app,
        "/simulator/flaky/fault",
        serde_json::json!({"mode": "http500"})
    );
    assert_eq!(set.status(), StatusCode::OK);
    assert_eq!(get_resp!(app, call).status(), StatusCode::INTERNAL_SERVER_ERROR);
    // Other instances are unaffected.
    assert!(parse_status(&get!(app, uri(None, "getMeetings", "")))
        .unwrap()
        .is_success());

    post_json!(
        app,
        "/simulator/flaky/fault",
        serde_json::json!({"mode": "garbage"})
    );
    let resp = get_resp!(app, call);
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(parse_status(&test::read_body(resp).await).is_err());

    post_json!(
        app,
        "/simulator/flaky/fault",
        serde_json::json!({"mode": "failed"})
    );
    let failed = parse_status(&get!(app, call)).unwrap();
    assert_eq!(failed.returncode, "FAILED");
    assert_eq!(failed.message_key.as_deref(), Some("internalError"));
    assert_eq!(failed.message.as_deref(), Some("simulated failure"));
    assert_eq!(
        json!(app, "/simulator/stats")["instances"]["flaky"]["fault"],
        "failed"
    );

    post_json!(app, "/simulator/flaky/fault", serde_json::json!({"mode": "ok"}));
    assert!(parse_status(&get!(app, call)).unwrap().is_success());

    let bad = post_json!(
        app,
        "/simulator/flaky/fault",
        serde_json::json!({"mode": "explode"})
    );
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[actix_rt::test]
async fn stats_count_creates_joins_and_ends_per_instance() {
    let st = state();
    let app = app!(st);
    get!(app, uri(Some("s1"), "create", &create_query("a", false)));
    get!(app, uri(Some("s1"), "create", &create_query("a", false)));
    get!(app, uri(Some("s1"), "create", &create_query("b", false)));
    get!(
        app,
        uri(Some("s1"), "join", &join_query("a", "A", "u-1", "mod-pw"))
    );
    get!(
        app,
        uri(Some("s1"), "join", &join_query("a", "A", "u-1", "mod-pw"))
    );
    get!(
        app,
        uri(Some("s1"), "join", &join_query("nope", "A", "u-1", "mod-pw"))
    );
    let q = QueryBuilder::new().text("meetingID", "b").finish();
    get!(app, uri(Some("s1"), "end", &q));
    // Test route: end without checksum.
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/simulator/s1/meetings/a/end")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);

    let stats = json!(app, "/simulator/stats");
    let s1 = &stats["instances"]["s1"];
    assert_eq!(s1["meetings"], 0);
    assert_eq!(s1["creates_total"], 3);
    assert_eq!(s1["joins_total"], 2);
    assert_eq!(s1["ends_total"], 2);
    assert_eq!(s1["creates"], serde_json::json!({"a": 2, "b": 1}));
    assert_eq!(s1["max_concurrent_creates"], serde_json::json!({"a": 1, "b": 1}));
    assert_eq!(stats["instances"]["default"]["creates_total"], 0);
}

#[actix_rt::test]
async fn meeting_details_list_attendees_and_join_parameters_and_404_for_unknown() {
    let st = state();
    let app = app!(st);
    assert_eq!(
        get_resp!(app, "/simulator/default/meetings/none").status(),
        StatusCode::NOT_FOUND
    );
    get!(app, uri(None, "create", &create_query("d1", false)));
    get!(app, uri(None, "join", &join_query("d1", "Ada", "u-1", "mod-pw")));
    let d = json!(app, "/simulator/default/meetings/d1");
    assert_eq!(d["meetingID"], "d1");
    assert_eq!(d["attendeePW"], "att-pw");
    assert_eq!(d["moderatorPW"], "mod-pw");
    assert_eq!(d["voiceBridge"], "71234");
    assert_eq!(d["guestPolicy"], "ALWAYS_ACCEPT");
    assert_eq!(d["create"]["method"], "GET");
    assert_eq!(
        d["attendees"],
        serde_json::json!([{"userID": "u-1", "fullName": "Ada", "role": "MODERATOR", "guest_waiting": false}])
    );
}

#[actix_rt::test]
async fn join_with_redirect_false_answers_xml() {
    let st = state();
    let app = app!(st);
    get!(app, uri(None, "create", &create_query("x1", false)));
    let q = QueryBuilder::new()
        .text("meetingID", "x1")
        .text("fullName", "A")
        .text("password", "att-pw")
        .flag("redirect", false)
        .finish();
    let st_join = parse_status(&get!(app, uri(None, "join", &q))).unwrap();
    assert!(st_join.is_success());
    assert_eq!(st_join.message_key.as_deref(), Some("successfullyJoined"));
}

// ---- real server on port 0, driven with awc ----

async fn spawn_server(state: web::Data<SimulatorState>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        let state = state.clone();
        App::new().configure(move |cfg| configure(cfg, state))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_rt::spawn(server);
    format!("http://127.0.0.1:{port}")
}

#[actix_rt::test]
async fn overlapping_creates_of_one_meeting_are_counted_as_concurrent() {
    let st = web::Data::new(
        SimulatorState::new(SECRET.to_string(), PUBLIC_URL.to_string()).with_create_delay_ms(100),
    );
    let base = spawn_server(st.clone()).await;
    let client = awc::Client::default();
    let url = format!("{base}{}", uri(None, "create", &create_query("race", false)));
    let mut handles = Vec::new();
    for _ in 0..4 {
        let client = client.clone();
        let url = url.clone();
        handles.push(actix_rt::spawn(async move {
            let mut resp = client.get(url).send().await.unwrap();
            resp.body().await.unwrap()
        }));
    }
    let mut duplicates = 0;
    for h in handles {
        let st = parse_status(&h.await.unwrap()).unwrap();
        assert!(st.is_success());
        if st.message_key.as_deref() == Some("duplicateWarning") {
            duplicates += 1;
        }
    }
    assert_eq!(duplicates, 3);
    let stats: serde_json::Value = client
        .get(format!("{base}/simulator/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = &stats["instances"]["default"];
    assert_eq!(d["creates"]["race"], 4);
    assert_eq!(d["meetings"], 1);
    assert!(d["max_concurrent_creates"]["race"].as_u64().unwrap() >= 2, "{d}");
}

#[actix_rt::test]
async fn close_fault_drops_the_connection_and_hang_fault_outlasts_a_client_timeout() {
    let st = state();
    let base = spawn_server(st.clone()).await;
    let client = awc::Client::builder()
        .timeout(Duration::from_millis(500))
        .finish();
    let call = format!("{base}{}", uri(Some("broken"), "getMeetings", ""));

    client
        .post(format!("{base}/simulator/broken/fault"))
        .send_json(&serde_json::json!({"mode": "close"}))
        .await
        .unwrap();
    let closed = match client.get(&call).send().await {
        Err(_) => true,
        Ok(mut resp) => resp.body().await.is_err(),
    };
    assert!(closed, "close mode must not deliver a complete response");

    client
        .post(format!("{base}/simulator/broken/fault"))
        .send_json(&serde_json::json!({"mode": "hang"}))
        .await
        .unwrap();
    let hung = client.get(&call).send().await;
    assert!(
        matches!(hung, Err(awc::error::SendRequestError::Timeout)),
        "{hung:?}"
    );

    // The instance recovers as soon as the mode is reset.
    client
        .post(format!("{base}/simulator/broken/fault"))
        .send_json(&serde_json::json!({"mode": "ok"}))
        .await
        .unwrap();
    let mut resp = client.get(&call).send().await.unwrap();
    assert!(parse_status(&resp.body().await.unwrap()).unwrap().is_success());
}

// ---- BBB 2.6-3.0 behaviours: Content-Type, versions, paging, end callbacks, expiry ----

const MODULES: &str =
    "<modules><module name=\"presentation\"><document url=\"https://files.example/d.pdf\"/></module></modules>";

fn post_create(meeting_id: &str, content_type: Option<&str>) -> actix_http::Request {
    let mut req = test::TestRequest::post().uri(&uri(None, "create", &create_query(meeting_id, false)));
    if let Some(t) = content_type {
        req = req.insert_header(("content-type", t));
    }
    req.set_payload(MODULES).to_request()
}

#[actix_rt::test]
async fn a_create_body_without_a_supported_content_type_is_refused_like_bbb_2_6_18() {
    let st = state();
    let app = app!(st);
    for bad in [None, Some("text/plain"), Some("application/json")] {
        let resp = test::call_and_read_body(&app, post_create("ct", bad)).await;
        let status = parse_status(&resp).unwrap();
        assert_eq!(status.returncode, "FAILED", "{bad:?}");
        assert_eq!(status.message_key.as_deref(), Some("unsupportedContentType"));
    }
    assert_eq!(
        json!(app, "/simulator/stats")["instances"]["default"]["meetings"],
        0
    );
    let ok = test::call_and_read_body(&app, post_create("ct", Some("application/xml; charset=utf-8"))).await;
    assert!(parse_status(&ok).unwrap().is_success());
    let d = json!(app, "/simulator/default/meetings/ct");
    assert_eq!(
        d["create"]["presentation_urls"],
        serde_json::json!(["https://files.example/d.pdf"])
    );
    // A GET create has no body and needs no Content-Type.
    assert!(
        parse_status(&get!(app, uri(None, "create", &create_query("ct2", false))))
            .unwrap()
            .is_success()
    );
}

#[actix_rt::test]
async fn an_older_version_takes_a_body_without_content_type_and_reports_its_version() {
    let st = state();
    let app = app!(st);
    let resp = post_json!(
        app,
        "/simulator/default/config",
        serde_json::json!({"bbb_version": "2.6.10"})
    );
    assert_eq!(resp.status(), StatusCode::OK);
    let body = text(&get!(app, "/simulator/bigbluebutton/api"));
    assert!(body.contains("<bbbVersion>2.6.10</bbbVersion>"), "{body}");
    let resp = test::call_and_read_body(&app, post_create("old", None)).await;
    assert!(parse_status(&resp).unwrap().is_success());
    // Other instances keep the default.
    let body = text(&get!(app, "/simulator/other/bigbluebutton/api"));
    assert!(body.contains("<bbbVersion>3.0.0-sim</bbbVersion>"));
    for bad in [
        serde_json::json!({"bbb_version": "2.7 <x>"}),
        serde_json::json!({"bbb_version": ""}),
    ] {
        let resp = post_json!(app, "/simulator/default/config", bad);
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
    let resp = post_json!(
        app,
        "/simulator/default/config",
        serde_json::json!({"unknown": 1})
    );
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json!(app, "/simulator/default/config")["bbb_version"], "2.6.10");
}

fn recordings_query(meeting_id: &str, paging: &str) -> String {
    let q = format!("meetingID={meeting_id}&state=any");
    if paging.is_empty() {
        q
    } else {
        format!("{q}&{paging}")
    }
}

#[actix_rt::test]
async fn get_recordings_pages_with_offset_and_limit() {
    let st = state();
    let app = app!(st);
    let resp = post_json!(
        app,
        "/simulator/default/meetings/many/recordings",
        serde_json::json!({"count": 250})
    );
    assert_eq!(resp.status(), StatusCode::OK);
    let mut seen = Vec::new();
    for (offset, expected) in [(0, 100), (100, 100), (200, 50), (250, 0)] {
        let q = recordings_query("many", &format!("offset={offset}&limit=100"));
        let body = get!(app, uri(None, "getRecordings", &q));
        let (status, page) = parse_recordings(&body).unwrap();
        assert!(status.is_success());
        assert_eq!(page.len(), expected, "offset {offset}");
        assert!(text(&body).contains("<totalElements>250</totalElements>"));
        seen.extend(page.into_iter().map(|r| r.record_id));
    }
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 250);
    // Unpaged: everything; limits beyond 100 are cut to 100.
    let (_, all) = parse_recordings(&get!(
        app,
        uri(None, "getRecordings", &recordings_query("many", ""))
    ))
    .unwrap();
    assert_eq!(all.len(), 250);
    let (_, big) = parse_recordings(&get!(
        app,
        uri(None, "getRecordings", &recordings_query("many", "limit=1000"))
    ))
    .unwrap();
    assert_eq!(big.len(), 100);
    // 3.0 nests the total in <pagination>; 2.7 puts it in <response>.
    let body = text(&get!(
        app,
        uri(None, "getRecordings", &recordings_query("many", "limit=5"))
    ));
    assert!(
        body.contains("<pagination>\n<totalElements>250</totalElements>\n</pagination>"),
        "{body}"
    );
    post_json!(
        app,
        "/simulator/default/config",
        serde_json::json!({"bbb_version": "2.7.12"})
    );
    let body = text(&get!(
        app,
        uri(None, "getRecordings", &recordings_query("many", "limit=5"))
    ));
    assert!(!body.contains("<pagination>"));
    assert!(
        body.contains("</recordings>\n<totalElements>250</totalElements>"),
        "{body}"
    );
}

/// A simulator plus a `/hook/...` route that records every request it gets.
async fn spawn_with_hook(state: web::Data<SimulatorState>) -> (String, Arc<Mutex<Vec<String>>>) {
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let recorded = hits.clone();
    let server = actix_web::HttpServer::new(move || {
        let state = state.clone();
        let recorded = recorded.clone();
        App::new().configure(move |cfg| configure(cfg, state)).route(
            "/hook/{tail:.*}",
            web::to(move |req: HttpRequest| {
                let recorded = recorded.clone();
                async move {
                    recorded
                        .lock()
                        .unwrap()
                        .push(format!("{} {}", req.method(), req.uri()));
                    HttpResponse::Ok().finish()
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_rt::spawn(server);
    (format!("http://127.0.0.1:{port}"), hits)
}

fn create_with_callbacks(meeting_id: &str, base: &str) -> String {
    QueryBuilder::new()
        .text("name", "Room")
        .text("meetingID", meeting_id)
        .text("attendeePW", "att-pw")
        .text("moderatorPW", "mod-pw")
        .text(
            "meetingEndedURL",
            &format!("{base}/hook/ended/{meeting_id}/tok.en"),
        )
        .finish()
}

#[actix_rt::test]
async fn end_calls_the_meeting_ended_url_as_given() {
    let st = state();
    let (base, hits) = spawn_with_hook(st.clone()).await;
    let client = awc::Client::default();
    let create = format!(
        "{base}{}",
        uri(None, "create", &create_with_callbacks("e1", &base))
    );
    let body = client.get(create).send().await.unwrap().body().await.unwrap();
    assert!(parse_status(&body).unwrap().is_success());
    // The URL is not metadata: it is not shown by getMeetingInfo.
    let info = client
        .get(format!("{base}{}", uri(None, "getMeetingInfo", "meetingID=e1")))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    assert!(!text(&info).contains("/hook/"));
    assert!(hits.lock().unwrap().is_empty());
    let end = format!("{base}{}", uri(None, "end", "meetingID=e1"));
    let body = client.get(end).send().await.unwrap().body().await.unwrap();
    assert!(parse_status(&body).unwrap().is_success());
    assert_eq!(
        *hits.lock().unwrap(),
        vec!["GET /hook/ended/e1/tok.en".to_string()]
    );
}

#[actix_rt::test]
async fn an_empty_meeting_expires_and_calls_back_and_a_full_one_does_not() {
    let st = state();
    let (base, hits) = spawn_with_hook(st.clone()).await;
    let client = awc::Client::default();
    for id in ["empty", "full"] {
        let create = format!("{base}{}", uri(None, "create", &create_with_callbacks(id, &base)));
        client.get(create).send().await.unwrap().body().await.unwrap();
    }
    let join = format!(
        "{base}{}",
        uri(None, "join", &join_query("full", "Ann", "u1", "att-pw"))
    );
    client.get(join).send().await.unwrap().body().await.unwrap();
    let resp = client
        .post(format!("{base}/simulator/default/config"))
        .send_json(&serde_json::json!({"empty_meeting_expiry_ms": 50}))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hits.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        *hits.lock().unwrap(),
        vec!["GET /hook/ended/empty/tok.en".to_string()]
    );
    let running = |id: &str| {
        let data = st.existing_instance("default").unwrap();
        let has = data.data().meetings.contains_key(id);
        has
    };
    assert!(!running("empty"));
    assert!(running("full"));
    // Everyone leaves: the second meeting expires too.
    let resp = client
        .post(format!("{base}/simulator/default/meetings/full/leave"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hits.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hits.lock().unwrap().len(), 2);
    assert!(!running("full"));
}
