//! Renders simulator answers in the shapes real BBB servers emit (XML) and the join page (HTML).

use std::fmt::Write as _;

use super::model::{Meeting, SimRecording};

pub(crate) use crate::bbb::xml::escape;

/// A `<response>` document written one element per line, like BBB's templates.
pub(crate) struct XmlOut {
    buf: String,
}

impl XmlOut {
    pub(crate) fn response(returncode: &str) -> Self {
        let mut out = Self {
            buf: String::from("<response>\n"),
        };
        out.el("returncode", returncode);
        out
    }

    pub(crate) fn el(&mut self, name: &str, value: &str) -> &mut Self {
        let _ = writeln!(self.buf, "<{name}>{}</{name}>", escape(value));
        self
    }

    pub(crate) fn el_display(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        self.el(name, &value.to_string())
    }

    /// CDATA like BBB's recording templates; `]]>` inside a value is split across sections.
    pub(crate) fn cdata(&mut self, name: &str, value: &str) -> &mut Self {
        let _ = writeln!(
            self.buf,
            "<{name}><![CDATA[{}]]></{name}>",
            value.replace("]]>", "]]]]><![CDATA[>")
        );
        self
    }

    pub(crate) fn open(&mut self, name: &str) -> &mut Self {
        let _ = writeln!(self.buf, "<{name}>");
        self
    }

    pub(crate) fn close(&mut self, name: &str) -> &mut Self {
        let _ = writeln!(self.buf, "</{name}>");
        self
    }

    pub(crate) fn empty(&mut self, name: &str) -> &mut Self {
        let _ = writeln!(self.buf, "<{name}/>");
        self
    }

    pub(crate) fn finish(mut self) -> String {
        self.buf.push_str("</response>");
        self.buf
    }
}

/// `<response><returncode>FAILED</returncode><messageKey>..</messageKey><message>..</message>`.
pub(crate) fn failed(key: &str, message: &str) -> String {
    let mut out = XmlOut::response("FAILED");
    out.el("messageKey", key).el("message", message);
    out.finish()
}

/// Answer of `create` (new or duplicate).
pub(crate) fn create_response(m: &Meeting, duplicate: bool) -> String {
    let mut out = XmlOut::response("SUCCESS");
    out.el("meetingID", &m.meeting_id)
        .el("internalMeetingID", &m.internal_id)
        .el("parentMeetingID", "bbb-none")
        .el("attendeePW", &m.attendee_pw)
        .el("moderatorPW", &m.moderator_pw)
        .el_display("createTime", m.create_time_ms)
        .el("voiceBridge", &m.voice_bridge)
        .el("dialNumber", "613-555-1234")
        .el("createDate", &create_date(m.create_time_ms))
        .el_display("hasUserJoined", m.has_user_joined())
        .el_display("duration", m.duration_min)
        .el("hasBeenForciblyEnded", "false");
    if duplicate {
        out.el("messageKey", "duplicateWarning").el(
            "message",
            "This conference was already in existence and may currently be in progress.",
        );
    } else {
        out.el("messageKey", "").el("message", "");
    }
    out.finish()
}

/// The elements describing one meeting, shared by `getMeetingInfo` and `getMeetings`.
fn meeting_fields(out: &mut XmlOut, m: &Meeting) {
    out.el("meetingName", &m.name)
        .el("meetingID", &m.meeting_id)
        .el("internalMeetingID", &m.internal_id)
        .el_display("createTime", m.create_time_ms)
        .el("createDate", &create_date(m.create_time_ms))
        .el("voiceBridge", &m.voice_bridge)
        .el("dialNumber", "613-555-1234")
        .el("attendeePW", &m.attendee_pw)
        .el("moderatorPW", &m.moderator_pw)
        .el_display("running", m.running())
        .el_display("duration", m.duration_min)
        .el_display("hasUserJoined", m.has_user_joined())
        .el_display("recording", m.record)
        .el("hasBeenForciblyEnded", "false")
        .el_display("startTime", m.create_time_ms)
        .el("endTime", "0")
        .el_display("participantCount", m.participant_count())
        .el("listenerCount", "0")
        .el("voiceParticipantCount", "0")
        .el("videoCount", "0")
        .el("maxUsers", "0")
        .el_display("moderatorCount", m.moderator_count());
    out.open("attendees");
    for a in &m.attendees {
        out.open("attendee")
            .el("userID", &a.user_id)
            .el("fullName", &a.full_name)
            .el("role", a.role.as_str())
            .el("isPresenter", "false")
            .el("isListeningOnly", "false")
            .el("hasJoinedVoice", "false")
            .el("hasVideo", "false")
            .el("clientType", "HTML5")
            .close("attendee");
    }
    out.close("attendees");
    out.open("metadata");
    for (k, v) in &m.metadata {
        out.el(k, v);
    }
    out.close("metadata");
    out.el("isBreakout", "false");
}

pub(crate) fn meeting_info(m: &Meeting) -> String {
    let mut out = XmlOut::response("SUCCESS");
    meeting_fields(&mut out, m);
    out.finish()
}

pub(crate) fn meetings<'a>(list: impl ExactSizeIterator<Item = &'a Meeting>) -> String {
    let mut out = XmlOut::response("SUCCESS");
    if list.len() == 0 {
        out.empty("meetings")
            .el("messageKey", "noMeetings")
            .el("message", "no meetings were found on this server");
        return out.finish();
    }
    out.open("meetings");
    for m in list {
        out.open("meeting");
        meeting_fields(&mut out, m);
        out.close("meeting");
    }
    out.close("meetings");
    out.finish()
}

/// The total of a paged `getRecordings` answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Total {
    /// Recordings matching the request, on every page.
    pub(crate) elements: usize,
    /// 3.0 puts `totalElements` inside `<pagination>`, 2.6 and 2.7 directly in `<response>`.
    pub(crate) nested: bool,
}

fn total(out: &mut XmlOut, total: Option<Total>) {
    match total {
        Some(Total {
            elements,
            nested: true,
        }) => {
            out.open("pagination")
                .el_display("totalElements", elements)
                .close("pagination");
        }
        Some(Total {
            elements,
            nested: false,
        }) => {
            out.el_display("totalElements", elements);
        }
        None => {}
    }
}

/// `getRecordings`: one page (or everything, when `paged` is `None`).
pub(crate) fn recordings(list: &[SimRecording], paged: Option<Total>) -> String {
    let mut out = XmlOut::response("SUCCESS");
    if list.is_empty() {
        out.el("recordings", "")
            .el("messageKey", "noRecordings")
            .el("message", "There are no recordings for the meeting(s).");
        total(&mut out, paged);
        return out.finish();
    }
    out.open("recordings");
    for r in list {
        let length_min = (r.end_time_ms - r.start_time_ms).max(0) / 60_000;
        out.open("recording")
            .el("recordID", &r.record_id)
            .el("meetingID", &r.meeting_id)
            .el("internalMeetingID", &r.record_id)
            .cdata("name", &r.name)
            .el("isBreakout", "false")
            .el("published", "true")
            .el("state", "published")
            .el_display("startTime", r.start_time_ms)
            .el_display("endTime", r.end_time_ms)
            .el_display("participants", r.participants)
            .el("rawSize", "0")
            .open("metadata");
        for (k, v) in &r.metadata {
            out.cdata(k, v);
        }
        out.close("metadata")
            .open("breakout")
            .el("parentId", "unknown")
            .el("sequence", "0")
            .el("freeJoin", "false")
            .close("breakout")
            .el("size", "0")
            .open("playback");
        for (kind, url) in &r.formats {
            out.open("format")
                .el("type", kind)
                .cdata("url", url)
                .el("processingTime", "0")
                .el_display("length", length_min)
                .el("size", "0")
                .close("format");
        }
        out.close("playback").close("recording");
    }
    out.close("recordings");
    total(&mut out, paged);
    out.finish()
}

/// `createDate` as BBB prints it (Java `Date.toString()` in UTC): `Thu May 09 13:35:28 UTC 2024`.
pub(crate) fn create_date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = match (days + 4).rem_euclid(7) {
        0 => "Sun",
        1 => "Mon",
        2 => "Tue",
        3 => "Wed",
        4 => "Thu",
        5 => "Fri",
        _ => "Sat",
    };
    let month_name = match month {
        1 => "Jan",
        2 => "Feb",
        3 => "Mar",
        4 => "Apr",
        5 => "May",
        6 => "Jun",
        7 => "Jul",
        8 => "Aug",
        9 => "Sep",
        10 => "Oct",
        11 => "Nov",
        _ => "Dec",
    };
    format!(
        "{weekday} {month_name} {day:02} {:02}:{:02}:{:02} UTC {year}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// What the join page shows.
pub(crate) struct JoinPage<'a> {
    pub(crate) meeting_name: &'a str,
    pub(crate) meeting_id: &'a str,
    pub(crate) full_name: &'a str,
    pub(crate) user_id: &'a str,
    pub(crate) role: &'a str,
    pub(crate) guest_waiting: bool,
}

/// The page a browser lands on after following a join URL; `#sim-join` carries data attributes
/// so tests and the test page can read who joined where.
pub(crate) fn join_page(p: &JoinPage<'_>) -> String {
    let meeting_name = escape(p.meeting_name);
    let meeting_id = escape(p.meeting_id);
    let full_name = escape(p.full_name);
    let user_id = escape(p.user_id);
    let role = escape(p.role);
    let waiting = if p.guest_waiting {
        "<p class=\"waiting\" id=\"sim-guest-waiting\">You are a guest: waiting for a moderator \
         to let you in (guest policy ASK_MODERATOR).</p>\n"
    } else {
        ""
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>BBB simulator</title>
<style>
body {{ margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: #0b1d2c; color: #eef2f6; }}
main {{ background: #16324a; border-radius: 12px; padding: 2rem 2.5rem; max-width: 34rem; width: 90%;
  box-shadow: 0 10px 30px rgba(0, 0, 0, .4); }}
h1 {{ margin: 0 0 .25rem; font-size: 1.4rem; }}
.sub {{ margin: 0 0 1.5rem; color: #9fb6cc; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .5rem 1.25rem; margin: 0; }}
dt {{ color: #9fb6cc; }}
dd {{ margin: 0; font-weight: 600; overflow-wrap: anywhere; }}
.role {{ display: inline-block; padding: .1rem .6rem; border-radius: 999px; background: #2e5b80; }}
.role-MODERATOR {{ background: #b7791f; color: #111; }}
.waiting {{ margin: 1.5rem 0 0; padding: .75rem 1rem; border-radius: 8px; background: #5a4312; }}
</style>
</head>
<body>
<main id="sim-join" data-meeting-id="{meeting_id}" data-full-name="{full_name}" data-role="{role}" data-user-id="{user_id}" data-guest-waiting="{guest_waiting}">
<h1>BBB simulator</h1>
<p class="sub">You joined a simulated BigBlueButton meeting.</p>
<dl>
<dt>Meeting</dt><dd id="sim-meeting-name">{meeting_name}</dd>
<dt>Meeting ID</dt><dd id="sim-meeting-id"><code>{meeting_id}</code></dd>
<dt>User</dt><dd id="sim-full-name">{full_name}</dd>
<dt>Role</dt><dd><span id="sim-role" class="role role-{role}">{role}</span></dd>
<dt>Guest</dt><dd id="sim-guest">{guest_text}</dd>
</dl>
{waiting}</main>
</body>
</html>
"#,
        guest_waiting = p.guest_waiting,
        guest_text = if p.guest_waiting {
            "waiting for approval"
        } else {
            "no"
        },
    )
}

/// The page behind the playback URLs of simulated recordings.
pub(crate) fn playback_page(path: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>BBB simulator \
         playback</title></head>\n<body><main id=\"sim-playback\" data-path=\"{0}\">\
         <h1>BBB simulator playback</h1><p>Simulated recording <code>{0}</code>; there is \
         nothing to play.</p></main></body>\n</html>\n",
        escape(path)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn create_date_matches_a_real_bbb_value() {
        // From a real BBB 3.0 getMeetingInfo: createTime 1715261728123.
        assert_eq!(create_date(1_715_261_728_123), "Thu May 09 13:35:28 UTC 2024");
        assert_eq!(create_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(create_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn cdata_splits_terminator_and_parses_back() {
        let mut out = XmlOut::response("SUCCESS");
        out.cdata("message", "a]]>b");
        let xml = out.finish();
        let st = crate::bbb::xml::parse_status(xml.as_bytes()).unwrap();
        assert_eq!(st.message.as_deref(), Some("a]]>b"));
    }
}
