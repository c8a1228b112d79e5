//! Parsing of BBB API responses (untrusted input): bounded size, no DTDs, fields found by name.
//!
//! A response is read into a small element tree first, then each parser picks the elements it
//! needs by name among the direct children of the element it describes, so element order,
//! unknown elements and nested look-alikes (attendees, metadata, breakouts) never matter.

use xml::reader::{ParserConfig, XmlEvent};

/// Larger responses are refused before parsing.
pub const MAX_XML_BYTES: usize = 4 * 1024 * 1024;

/// BBB responses are at most ~6 levels deep; a deeper document is hostile or broken.
const MAX_DEPTH: usize = 64;

/// Why a BBB response could not be used. Messages name elements only, never values.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// Input larger than [`MAX_XML_BYTES`].
    #[error("BBB response larger than {MAX_XML_BYTES} bytes")]
    TooLarge,
    /// Input uses a construct we refuse (DOCTYPE, ENTITY).
    #[error("BBB response refused: it contains {0}")]
    Forbidden(&'static str),
    /// Not well-formed XML (or not UTF-8).
    #[error("BBB response is not well-formed XML: {0}")]
    Malformed(String),
    /// A required element is absent or empty.
    #[error("BBB response lacks <{0}>")]
    Missing(&'static str),
}

/// One parsed element: local name, attributes, trimmed text content, child elements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// First direct child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All direct children with this local name, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Trimmed text of the first direct child with this name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// Value of an attribute by local name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn describe(err: &xml::reader::Error) -> String {
    use xml::reader::ErrorKind;
    // xml-rs messages may quote document text (which can hold passwords); keep only the kind.
    let kind = match err.kind() {
        ErrorKind::Syntax(_) => "syntax error",
        ErrorKind::Io(_) => "read error",
        ErrorKind::Utf8(_) => "invalid UTF-8",
        ErrorKind::UnexpectedEof => "unexpected end of document",
    };
    let pos = xml::common::Position::position(err);
    format!("{kind} at line {}, column {}", pos.row + 1, pos.column + 1)
}

/// Parses a whole document into an element tree, after the size, encoding and DTD checks.
///
/// xml-rs 0.8 emits no event for a DOCTYPE, so DTDs are refused by looking at the raw bytes;
/// a CDATA section that merely mentions `<!DOCTYPE` is refused too (never seen from BBB).
pub fn parse_document(xml: &[u8]) -> Result<Element, XmlError> {
    if xml.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge);
    }
    // Only UTF-8 input: the DTD byte check below would be blind to UTF-16.
    if std::str::from_utf8(xml).is_err() {
        return Err(XmlError::Malformed("input is not UTF-8".to_string()));
    }
    if contains_ignore_ascii_case(xml, b"<!DOCTYPE") {
        return Err(XmlError::Forbidden("a DOCTYPE declaration"));
    }
    if contains_ignore_ascii_case(xml, b"<!ENTITY") {
        return Err(XmlError::Forbidden("an ENTITY declaration"));
    }
    let config = ParserConfig::new()
        .trim_whitespace(true)
        .whitespace_to_characters(true)
        .cdata_to_characters(true)
        .coalesce_characters(true)
        .ignore_comments(true)
        .max_entity_expansion_depth(1)
        .max_entity_expansion_length(64)
        .allow_multiple_root_elements(false);
    let reader = config.create_reader(xml);

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    for event in reader {
        match event.map_err(|e| XmlError::Malformed(describe(&e)))? {
            XmlEvent::StartElement { name, attributes, .. } => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::Malformed(format!(
                        "elements nested deeper than {MAX_DEPTH}"
                    )));
                }
                stack.push(Element {
                    name: name.local_name,
                    attributes: attributes
                        .into_iter()
                        .map(|a| (a.name.local_name, a.value))
                        .collect(),
                    text: String::new(),
                    children: Vec::new(),
                });
            }
            XmlEvent::Characters(text) | XmlEvent::CData(text) | XmlEvent::Whitespace(text) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&text);
                }
            }
            XmlEvent::EndElement { .. } => {
                let Some(mut done) = stack.pop() else {
                    return Err(XmlError::Malformed("unbalanced end tag".to_string()));
                };
                // URLs and messages come wrapped in newlines and indentation.
                let trimmed = done.text.trim();
                if trimmed.len() != done.text.len() {
                    done.text = trimmed.to_string();
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            XmlEvent::EndDocument => break,
            XmlEvent::StartDocument { .. }
            | XmlEvent::ProcessingInstruction { .. }
            | XmlEvent::Comment(_) => {}
        }
    }
    root.ok_or_else(|| XmlError::Malformed("no root element".to_string()))
}

/// `returncode`, `messageKey` and `message` of any BBB response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub returncode: String,
    /// `None` when absent or empty (BBB emits `<messageKey></messageKey>` on plain success).
    pub message_key: Option<String>,
    pub message: Option<String>,
}

impl Status {
    /// `SUCCESS` (a `duplicateWarning` with SUCCESS is a success too).
    pub fn is_success(&self) -> bool {
        self.returncode.eq_ignore_ascii_case("SUCCESS")
    }

    fn has_key(&self, key: &str) -> bool {
        self.message_key.as_deref() == Some(key)
    }
}

fn non_empty(text: Option<&str>) -> Option<String> {
    text.filter(|t| !t.is_empty()).map(str::to_string)
}

fn status_of(root: &Element) -> Result<Status, XmlError> {
    if root.name != "response" {
        return Err(XmlError::Missing("response"));
    }
    let returncode = non_empty(root.child_text("returncode")).ok_or(XmlError::Missing("returncode"))?;
    Ok(Status {
        returncode,
        message_key: non_empty(root.child_text("messageKey")),
        message: non_empty(root.child_text("message")),
    })
}

fn required(el: &Element, name: &'static str) -> Result<String, XmlError> {
    non_empty(el.child_text(name)).ok_or(XmlError::Missing(name))
}

fn text_or_empty(el: &Element, name: &str) -> String {
    el.child_text(name).unwrap_or_default().to_string()
}

/// `true` only for the text `true` (any case); absent or anything else is `false`.
fn flag(el: &Element, name: &str) -> bool {
    el.child_text(name)
        .is_some_and(|t| t.eq_ignore_ascii_case("true"))
}

/// Absent or empty counts as 0 (older BBB versions lack some counters); garbage is an error.
fn number<T: std::str::FromStr + Default>(el: &Element, name: &'static str) -> Result<T, XmlError> {
    match el.child_text(name) {
        None | Some("") => Ok(T::default()),
        Some(text) => text
            .parse()
            .map_err(|_| XmlError::Malformed(format!("<{name}> is not a number"))),
    }
}

/// Parses only the status of any response.
pub fn parse_status(xml: &[u8]) -> Result<Status, XmlError> {
    status_of(&parse_document(xml)?)
}

/// Load figures of one meeting from `getMeetings`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeetingLoad {
    pub meeting_id: String,
    pub running: bool,
    pub participant_count: u64,
    pub voice_participant_count: u64,
    pub video_count: u64,
    pub listener_count: u64,
    pub moderator_count: u64,
    pub is_breakout: bool,
}

fn meeting_load(m: &Element) -> Result<MeetingLoad, XmlError> {
    Ok(MeetingLoad {
        meeting_id: required(m, "meetingID")?,
        running: flag(m, "running"),
        participant_count: number(m, "participantCount")?,
        voice_participant_count: number(m, "voiceParticipantCount")?,
        video_count: number(m, "videoCount")?,
        listener_count: number(m, "listenerCount")?,
        moderator_count: number(m, "moderatorCount")?,
        is_breakout: flag(m, "isBreakout"),
    })
}

/// `getMeetings`: the status and every meeting (empty on `noMeetings` or FAILED).
pub fn parse_get_meetings(xml: &[u8]) -> Result<(Status, Vec<MeetingLoad>), XmlError> {
    let root = parse_document(xml)?;
    let status = status_of(&root)?;
    if !status.is_success() {
        return Ok((status, Vec::new()));
    }
    let meetings = match root.child("meetings") {
        Some(list) => list
            .children_named("meeting")
            .map(meeting_load)
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    Ok((status, meetings))
}

/// The parts of `getMeetingInfo` the gateway uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeetingInfo {
    pub meeting_id: String,
    pub running: bool,
    pub participant_count: u64,
    pub has_user_joined: bool,
    pub create_time: i64,
}

/// `getMeetingInfo`: `None` when the answer is not SUCCESS (e.g. FAILED/notFound).
pub fn parse_meeting_info(xml: &[u8]) -> Result<(Status, Option<MeetingInfo>), XmlError> {
    let root = parse_document(xml)?;
    let status = status_of(&root)?;
    if !status.is_success() || status.has_key("notFound") {
        return Ok((status, None));
    }
    let info = MeetingInfo {
        meeting_id: required(&root, "meetingID")?,
        running: flag(&root, "running"),
        participant_count: number(&root, "participantCount")?,
        has_user_joined: flag(&root, "hasUserJoined"),
        create_time: number(&root, "createTime")?,
    };
    Ok((status, Some(info)))
}

/// `isMeetingRunning`: `false` when the answer is not SUCCESS.
pub fn parse_is_meeting_running(xml: &[u8]) -> Result<(Status, bool), XmlError> {
    let root = parse_document(xml)?;
    let status = status_of(&root)?;
    if !status.is_success() {
        return Ok((status, false));
    }
    let running = root.child_text("running").ok_or(XmlError::Missing("running"))?;
    Ok((status, running.eq_ignore_ascii_case("true")))
}

/// One playback format of a recording (`presentation`, `video`, `podcast`, `notes`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlaybackFormat {
    /// The `<type>` element.
    pub kind: String,
    pub url: String,
}

/// One recording from `getRecordings`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recording {
    pub record_id: String,
    pub meeting_id: String,
    pub state: String,
    pub published: bool,
    pub start_time_ms: i64,
    pub end_time_ms: i64,
    /// Kept as text, as the wire protocol passes it on; empty when absent (pre-2.0 servers).
    pub participants: String,
    pub formats: Vec<PlaybackFormat>,
}

fn recording(r: &Element) -> Result<Recording, XmlError> {
    let formats = r
        .children_named("playback")
        .flat_map(|p| p.children_named("format"))
        .filter_map(|f| {
            // Only the format's own <url>: preview images live deeper and are not considered.
            let kind = non_empty(f.child_text("type"))?;
            let url = non_empty(f.child_text("url"))?;
            Some(PlaybackFormat { kind, url })
        })
        .collect();
    Ok(Recording {
        record_id: required(r, "recordID")?,
        meeting_id: required(r, "meetingID")?,
        state: text_or_empty(r, "state"),
        published: flag(r, "published"),
        start_time_ms: number(r, "startTime")?,
        end_time_ms: number(r, "endTime")?,
        participants: text_or_empty(r, "participants"),
        formats,
    })
}

/// `getRecordings`: the status and every recording (empty on `noRecordings` or FAILED).
pub fn parse_recordings(xml: &[u8]) -> Result<(Status, Vec<Recording>), XmlError> {
    let root = parse_document(xml)?;
    let status = status_of(&root)?;
    if !status.is_success() {
        return Ok((status, Vec::new()));
    }
    let recordings = match root.child("recordings") {
        Some(list) => list
            .children_named("recording")
            .map(recording)
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    Ok((status, recordings))
}

/// Escapes text for XML/HTML element content and double- or single-quoted attributes (the
/// one escaping helper: the BBB client's presentation body, the simulator's XML and HTML).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The version index `GET {url}api`: `bbbVersion` (BBB 2.6+ on most installs), else
/// `apiVersion` (always `2.0` on 2.x and 3.x servers, so a poor fallback), else `None`.
pub fn parse_version(xml: &[u8]) -> Result<(Status, Option<String>), XmlError> {
    let root = parse_document(xml)?;
    let status = status_of(&root)?;
    let version = non_empty(root.child_text("bbbVersion").map(str::trim))
        .or_else(|| non_empty(root.child_text("apiVersion").map(str::trim)));
    Ok((status, version))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    fn status(returncode: &str, key: Option<&str>, message: Option<&str>) -> Status {
        Status {
            returncode: returncode.to_string(),
            message_key: key.map(str::to_string),
            message: message.map(str::to_string),
        }
    }

    // ---- status ----

    const CREATE_OK_EMPTY_KEYS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<response>
    <returncode>SUCCESS</returncode>
    <meetingID>room-7</meetingID>
    <internalMeetingID>0d6f1c5bd4b1f3e7a1d29c3b9b77a1d5c0f0e111-1700000000000</internalMeetingID>
    <parentMeetingID>bbb-none</parentMeetingID>
    <attendeePW>a&amp;b"c</attendeePW>
    <moderatorPW>m0d$pw</moderatorPW>
    <createTime>1700000000000</createTime>
    <voiceBridge>71234</voiceBridge>
    <dialNumber>613-555-1234</dialNumber>
    <createDate>Tue Nov 14 22:13:20 UTC 2023</createDate>
    <hasUserJoined>false</hasUserJoined>
    <duration>0</duration>
    <hasBeenForciblyEnded>false</hasBeenForciblyEnded>
    <messageKey></messageKey>
    <message></message>
</response>"#;

    #[test]
    fn create_success_with_prolog_crlf_and_empty_message_key_is_success() {
        let st = parse_status(&crlf(CREATE_OK_EMPTY_KEYS)).unwrap();
        assert_eq!(st, status("SUCCESS", None, None));
        assert!(st.is_success());
    }

    #[test]
    fn duplicate_warning_with_multiline_message_is_trimmed_success() {
        let xml = "<response>\n<returncode>SUCCESS</returncode>\n<meetingID>x</meetingID>\n\
                   <messageKey>duplicateWarning</messageKey>\n<message>\n\
                   This conference was already in existence and may currently be in progress.\n\
                   </message>\n</response>\n";
        let st = parse_status(xml.as_bytes()).unwrap();
        assert!(st.is_success());
        assert_eq!(st.message_key.as_deref(), Some("duplicateWarning"));
        assert_eq!(
            st.message.as_deref(),
            Some("This conference was already in existence and may currently be in progress.")
        );
    }

    #[test]
    fn checksum_error_is_failed_with_key() {
        let xml = "<response>\n<returncode>FAILED</returncode>\n<messageKey>checksumError</messageKey>\n\
                   <message>Checksums do not match</message>\n</response>";
        let st = parse_status(xml.as_bytes()).unwrap();
        assert_eq!(
            st,
            status("FAILED", Some("checksumError"), Some("Checksums do not match"))
        );
        assert!(!st.is_success());
    }

    #[test]
    fn message_key_before_returncode_and_cdata_message_are_found_by_name() {
        let xml = "<response><messageKey><![CDATA[ idNotUnique ]]></messageKey>\
                   <message>  A meeting already exists  </message>\
                   <unknown><returncode>SUCCESS</returncode></unknown>\
                   <returncode>\n  FAILED\n</returncode></response>";
        let st = parse_status(xml.as_bytes()).unwrap();
        assert_eq!(
            st,
            status("FAILED", Some("idNotUnique"), Some("A meeting already exists"))
        );
    }

    #[test]
    fn returncode_nested_deeper_than_response_child_does_not_count() {
        let xml = "<response><meetings><returncode>SUCCESS</returncode></meetings></response>";
        assert!(matches!(
            parse_status(xml.as_bytes()),
            Err(XmlError::Missing("returncode"))
        ));
    }

    #[test]
    fn empty_returncode_is_missing() {
        let xml = "<response><returncode>  </returncode></response>";
        assert!(matches!(
            parse_status(xml.as_bytes()),
            Err(XmlError::Missing("returncode"))
        ));
    }

    #[test]
    fn other_root_element_is_missing_response() {
        let xml = "<result><returncode>SUCCESS</returncode></result>";
        assert!(matches!(
            parse_status(xml.as_bytes()),
            Err(XmlError::Missing("response"))
        ));
    }

    #[test]
    fn namespaced_elements_match_by_local_name() {
        let xml = r#"<b:response xmlns:b="urn:x"><b:returncode>SUCCESS</b:returncode></b:response>"#;
        assert!(parse_status(xml.as_bytes()).unwrap().is_success());
    }

    // ---- garbage and hostile input ----

    #[test]
    fn html_error_page_with_doctype_is_refused() {
        let html = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\
                    <body><h1>502 Bad Gateway</h1></body></html>";
        assert!(matches!(
            parse_status(html.as_bytes()),
            Err(XmlError::Forbidden(_))
        ));
    }

    #[test]
    fn html_error_page_without_doctype_is_missing_response() {
        let html = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                    <center><h1>502 Bad Gateway</h1></center>\r\n<hr/><center>nginx</center>\r\n\
                    </body>\r\n</html>\r\n";
        assert!(matches!(
            parse_status(html.as_bytes()),
            Err(XmlError::Missing("response"))
        ));
    }

    #[test]
    fn html_with_unclosed_tags_is_malformed() {
        let html = "<html><body>Internal Server Error<br></body></html>";
        assert!(matches!(
            parse_status(html.as_bytes()),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn empty_and_whitespace_bodies_are_malformed() {
        for body in ["", "   \r\n  "] {
            assert!(
                matches!(parse_status(body.as_bytes()), Err(XmlError::Malformed(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn non_xml_bodies_are_malformed() {
        for body in ["{\"returncode\":\"SUCCESS\"}", "SUCCESS", "garbage <<<>>>"] {
            assert!(
                matches!(parse_status(body.as_bytes()), Err(XmlError::Malformed(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn truncated_xml_is_malformed_and_error_text_holds_no_values() {
        let xml = "<response>\n<returncode>SUCCESS</returncode>\n<moderatorPW>hunter2-secret";
        let err = parse_status(xml.as_bytes()).unwrap_err();
        assert!(matches!(err, XmlError::Malformed(_)), "{err:?}");
        let shown = err.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("line"), "{shown}");
    }

    #[test]
    fn mismatched_end_tag_is_malformed() {
        let xml = "<response><returncode>SUCCESS</message></response>";
        assert!(matches!(
            parse_status(xml.as_bytes()),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn doctype_with_entity_is_refused_before_expansion() {
        let xml = r#"<?xml version="1.0"?>
<!DOCTYPE response [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
]>
<response><returncode>&lol2;</returncode></response>"#;
        let err = parse_status(xml.as_bytes()).unwrap_err();
        assert!(matches!(err, XmlError::Forbidden(_)), "{err:?}");
        assert!(err.to_string().contains("DOCTYPE"));
    }

    #[test]
    fn lowercase_doctype_and_bare_entity_declarations_are_refused() {
        for xml in [
            "<!doctype response><response><returncode>SUCCESS</returncode></response>",
            "<response><!ENTITY x \"y\"><returncode>SUCCESS</returncode></response>",
        ] {
            assert!(
                matches!(parse_status(xml.as_bytes()), Err(XmlError::Forbidden(_))),
                "{xml}"
            );
        }
    }

    #[test]
    fn external_entity_reference_without_declaration_is_malformed() {
        let xml = "<response><returncode>&xxe;</returncode></response>";
        assert!(matches!(
            parse_status(xml.as_bytes()),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn predefined_entities_and_char_refs_are_decoded() {
        let xml = "<response><returncode>SUCCESS</returncode>\
                   <message>a &amp; b &lt;c&gt; &#233;</message></response>";
        let st = parse_status(xml.as_bytes()).unwrap();
        assert_eq!(st.message.as_deref(), Some("a & b <c> é"));
    }

    #[test]
    fn oversize_input_is_refused_before_parsing() {
        let mut xml = b"<response><returncode>SUCCESS</returncode><message>".to_vec();
        xml.resize(MAX_XML_BYTES + 1, b'a');
        assert!(matches!(parse_status(&xml), Err(XmlError::TooLarge)));
        assert!(matches!(parse_recordings(&xml), Err(XmlError::TooLarge)));
    }

    #[test]
    fn input_of_exactly_the_limit_is_parsed() {
        let head = "<response><returncode>SUCCESS</returncode><message>";
        let tail = "</message></response>";
        let filler = MAX_XML_BYTES - head.len() - tail.len();
        let xml = format!("{head}{}{tail}", "x".repeat(filler));
        assert_eq!(xml.len(), MAX_XML_BYTES);
        assert!(parse_status(xml.as_bytes()).unwrap().is_success());
    }

    #[test]
    fn non_utf8_input_is_malformed() {
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in "<response/>".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert!(matches!(parse_status(&utf16), Err(XmlError::Malformed(_))));
        let latin1 = b"<response><returncode>SUCCESS</returncode><message>caf\xe9</message></response>";
        assert!(matches!(parse_status(latin1), Err(XmlError::Malformed(_))));
    }

    #[test]
    fn too_deep_nesting_is_malformed() {
        let depth = MAX_DEPTH + 1;
        let xml = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        assert!(matches!(
            parse_status(xml.as_bytes()),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn two_root_elements_are_malformed() {
        let xml = "<response><returncode>SUCCESS</returncode></response><response/>";
        assert!(matches!(
            parse_status(xml.as_bytes()),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn error_display_names_elements_only() {
        assert_eq!(
            XmlError::Missing("returncode").to_string(),
            "BBB response lacks <returncode>"
        );
        assert!(XmlError::TooLarge.to_string().contains("4194304"));
        assert!(XmlError::Forbidden("a DOCTYPE declaration")
            .to_string()
            .contains("DOCTYPE"));
    }

    #[test]
    fn document_tree_keeps_attributes_and_comments_are_ignored() {
        let xml = r#"<modules><!-- c --><module name="presentation">
            <document url="https://a.example/x.pdf" filename="x.pdf"/>
            <document url="https://a.example/y.pdf"></document>
        </module></modules>"#;
        let root = parse_document(xml.as_bytes()).unwrap();
        let module = root.child("module").unwrap();
        assert_eq!(module.attr("name"), Some("presentation"));
        let urls: Vec<_> = module
            .children_named("document")
            .filter_map(|d| d.attr("url"))
            .collect();
        assert_eq!(urls, ["https://a.example/x.pdf", "https://a.example/y.pdf"]);
        assert_eq!(module.attr("missing"), None);
    }

    // ---- getMeetings ----

    const GET_MEETINGS_NONE: &str = "<response>\n<returncode>SUCCESS</returncode>\n<meetings/>\n\
        <messageKey>noMeetings</messageKey>\n<message>no meetings were found on this server</message>\n</response>";

    #[test]
    fn get_meetings_none_is_empty_with_no_meetings_key() {
        let (st, meetings) = parse_get_meetings(&crlf(GET_MEETINGS_NONE)).unwrap();
        assert!(st.is_success());
        assert_eq!(st.message_key.as_deref(), Some("noMeetings"));
        assert!(meetings.is_empty());
    }

    #[test]
    fn get_meetings_none_with_key_before_empty_list_is_empty() {
        let xml = "<response><messageKey>noMeetings</messageKey><returncode>SUCCESS</returncode>\
                   <meetings>\n</meetings></response>";
        let (st, meetings) = parse_get_meetings(xml.as_bytes()).unwrap();
        assert_eq!(st.message_key.as_deref(), Some("noMeetings"));
        assert!(meetings.is_empty());
    }

    const GET_MEETINGS_THREE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<response>
  <returncode>SUCCESS</returncode>
  <meetings>
    <meeting>
      <meetingName><![CDATA[Main stage]]></meetingName>
      <meetingID>
        room-main
      </meetingID>
      <internalMeetingID>4a2b0c6e3f1d8b9a7c5e3d1f0a2b4c6d8e0f1a2b-1700000000001</internalMeetingID>
      <createTime>1700000000001</createTime>
      <createDate>Tue Nov 14 22:13:20 UTC 2023</createDate>
      <voiceBridge>70001</voiceBridge>
      <dialNumber>613-555-1234</dialNumber>
      <attendeePW>=g.Trp|m</attendeePW>
      <moderatorPW>$is=CM}x;1</moderatorPW>
      <running>true</running>
      <duration>0</duration>
      <hasUserJoined>true</hasUserJoined>
      <recording>true</recording>
      <hasBeenForciblyEnded>false</hasBeenForciblyEnded>
      <startTime>1700000000010</startTime>
      <endTime>0</endTime>
      <participantCount> 3 </participantCount>
      <listenerCount>1</listenerCount>
      <voiceParticipantCount>2</voiceParticipantCount>
      <videoCount>1</videoCount>
      <maxUsers>0</maxUsers>
      <moderatorCount>1</moderatorCount>
      <attendees>
        <attendee>
          <userID>w_abc</userID>
          <fullName>Ada</fullName>
          <role>MODERATOR</role>
          <meetingID>decoy-from-attendee</meetingID>
          <participantCount>99</participantCount>
          <isBreakout>true</isBreakout>
          <customdata><running>false</running></customdata>
        </attendee>
      </attendees>
      <metadata>
        <meetingID>decoy-from-metadata</meetingID>
        <videoCount>42</videoCount>
      </metadata>
      <futureField><nested>1</nested></futureField>
      <isBreakout>false</isBreakout>
      <breakoutRooms>
        <breakout>room-main-b1</breakout>
      </breakoutRooms>
    </meeting>
    <meeting>
      <isBreakout>true</isBreakout>
      <parentMeetingID>4a2b0c6e3f1d8b9a7c5e3d1f0a2b4c6d8e0f1a2b-1700000000001</parentMeetingID>
      <sequence>1</sequence>
      <freeJoin>false</freeJoin>
      <meetingID>room-main-b1</meetingID>
      <running>false</running>
      <participantCount>0</participantCount>
    </meeting>
    <meeting>
      <meetingName>Legacy server, no counters</meetingName>
      <meetingID>legacy</meetingID>
      <running>false</running>
    </meeting>
  </meetings>
</response>"#;

    #[test]
    fn get_meetings_reads_direct_children_only_including_breakouts() {
        let (st, meetings) = parse_get_meetings(&crlf(GET_MEETINGS_THREE)).unwrap();
        assert!(st.is_success());
        assert_eq!(
            meetings,
            vec![
                MeetingLoad {
                    meeting_id: "room-main".to_string(),
                    running: true,
                    participant_count: 3,
                    voice_participant_count: 2,
                    video_count: 1,
                    listener_count: 1,
                    moderator_count: 1,
                    is_breakout: false,
                },
                MeetingLoad {
                    meeting_id: "room-main-b1".to_string(),
                    running: false,
                    is_breakout: true,
                    ..MeetingLoad::default()
                },
                MeetingLoad {
                    meeting_id: "legacy".to_string(),
                    ..MeetingLoad::default()
                },
            ]
        );
    }

    #[test]
    fn get_meetings_meeting_without_id_is_missing() {
        let xml = "<response><returncode>SUCCESS</returncode><meetings><meeting>\
                   <attendees><attendee><meetingID>x</meetingID></attendee></attendees>\
                   </meeting></meetings></response>";
        assert!(matches!(
            parse_get_meetings(xml.as_bytes()),
            Err(XmlError::Missing("meetingID"))
        ));
    }

    #[test]
    fn get_meetings_garbage_counter_is_malformed() {
        let xml = "<response><returncode>SUCCESS</returncode><meetings><meeting>\
                   <meetingID>m</meetingID><participantCount>many</participantCount>\
                   </meeting></meetings></response>";
        let err = parse_get_meetings(xml.as_bytes()).unwrap_err();
        assert!(matches!(err, XmlError::Malformed(_)));
        assert!(err.to_string().contains("participantCount"));
        assert!(!err.to_string().contains("many"));
    }

    #[test]
    fn get_meetings_failed_returns_status_and_no_meetings() {
        let xml = "<response>\n<returncode>FAILED</returncode>\n<messageKey>checksumError</messageKey>\n\
                   <message>Checksums do not match</message>\n</response>";
        let (st, meetings) = parse_get_meetings(&crlf(xml)).unwrap();
        assert!(!st.is_success());
        assert_eq!(st.message_key.as_deref(), Some("checksumError"));
        assert!(meetings.is_empty());
    }

    // ---- getMeetingInfo ----

    const MEETING_INFO_RUNNING: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<response>
	<returncode>SUCCESS</returncode>
	<meetingName>Ada's Room</meetingName>
	<meetingID>call-1f2e</meetingID>
	<internalMeetingID>9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c-1715261728123</internalMeetingID>
	<createTime>1715261728123</createTime>
	<createDate>Thu May 09 13:35:28 UTC 2024</createDate>
	<voiceBridge>66052</voiceBridge>
	<attendeePW>1umEM3ic</attendeePW>
	<moderatorPW>V91JirCa</moderatorPW>
	<running>true</running>
	<duration>0</duration>
	<hasUserJoined>true</hasUserJoined>
	<recording>false</recording>
	<participantCount>2</participantCount>
	<attendees>
		<attendee>
			<userID>w_1</userID>
			<fullName>Ada</fullName>
			<role>MODERATOR</role>
			<customdata>
				<participantCount>7</participantCount>
			</customdata>
		</attendee>
		<attendee>
			<userID>w_2</userID>
			<fullName>Grace</fullName>
			<role>VIEWER</role>
			<customdata></customdata>
		</attendee>
	</attendees>
	<isBreakout>false</isBreakout>
	<metadata>
		<bbb-recording-ready-url>
			https://lms.example/recording_ready
		</bbb-recording-ready-url>
		<meetingID>decoy</meetingID>
		<createTime>1</createTime>
	</metadata>
</response>"#;

    #[test]
    fn meeting_info_running_is_read_by_name_ignoring_nested_lookalikes() {
        let (st, info) = parse_meeting_info(&crlf(MEETING_INFO_RUNNING)).unwrap();
        assert!(st.is_success());
        assert_eq!(
            info,
            Some(MeetingInfo {
                meeting_id: "call-1f2e".to_string(),
                running: true,
                participant_count: 2,
                has_user_joined: true,
                create_time: 1_715_261_728_123,
            })
        );
    }

    #[test]
    fn meeting_info_not_found_is_none() {
        let xml = "<response>\n<returncode>FAILED</returncode>\n<messageKey>notFound</messageKey>\n\
                   <message>A meeting with that ID does not exist</message>\n</response>";
        let (st, info) = parse_meeting_info(&crlf(xml)).unwrap();
        assert_eq!(
            st,
            status(
                "FAILED",
                Some("notFound"),
                Some("A meeting with that ID does not exist")
            )
        );
        assert_eq!(info, None);
    }

    #[test]
    fn meeting_info_success_without_meeting_id_is_missing() {
        let xml = "<response><returncode>SUCCESS</returncode><running>true</running></response>";
        assert!(matches!(
            parse_meeting_info(xml.as_bytes()),
            Err(XmlError::Missing("meetingID"))
        ));
    }

    #[test]
    fn meeting_info_not_running_with_minimal_fields() {
        let xml = "<response><meetingID>m</meetingID><returncode>SUCCESS</returncode>\
                   <running>false</running><createTime>-5</createTime></response>";
        let (_, info) = parse_meeting_info(xml.as_bytes()).unwrap();
        let info = info.unwrap();
        assert!(!info.running);
        assert!(!info.has_user_joined);
        assert_eq!(info.participant_count, 0);
        assert_eq!(info.create_time, -5);
    }

    // ---- isMeetingRunning ----

    #[test]
    fn is_meeting_running_true_and_false_with_crlf() {
        let yes =
            "<response>\n    <returncode>SUCCESS</returncode>\n    <running>true</running>\n</response>";
        let no = "<response>\n<returncode>SUCCESS</returncode>\n<running>false</running>\n</response>";
        assert!(parse_is_meeting_running(&crlf(yes)).unwrap().1);
        assert!(!parse_is_meeting_running(&crlf(no)).unwrap().1);
        assert!(parse_is_meeting_running(yes.as_bytes()).unwrap().1);
    }

    #[test]
    fn is_meeting_running_element_order_does_not_matter() {
        let xml = "<response><running>\n TRUE \n</running><returncode>SUCCESS</returncode></response>";
        assert!(parse_is_meeting_running(xml.as_bytes()).unwrap().1);
    }

    #[test]
    fn is_meeting_running_without_running_is_missing_and_failed_is_false() {
        let missing = "<response><returncode>SUCCESS</returncode></response>";
        assert!(matches!(
            parse_is_meeting_running(missing.as_bytes()),
            Err(XmlError::Missing("running"))
        ));
        let failed =
            "<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey></response>";
        let (st, running) = parse_is_meeting_running(failed.as_bytes()).unwrap();
        assert!(!st.is_success());
        assert!(!running);
    }

    // ---- getRecordings ----

    const RECORDINGS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<response>
  <returncode>SUCCESS</returncode>
  <recordings>
    <recording>
      <recordID>3f786850e387550fdab836ed7e6dc881de23001b-1700000000000</recordID>
      <meetingID>room-main</meetingID>
      <internalMeetingID>3f786850e387550fdab836ed7e6dc881de23001b-1700000000000</internalMeetingID>
      <name><![CDATA[Main stage]]></name>
      <isBreakout>false</isBreakout>
      <published>true</published>
      <state>published</state>
      <startTime>1700000000000</startTime>
      <endTime>1700003600000</endTime>
      <participants>12</participants>
      <rawSize>951067</rawSize>
      <metadata>
        <meetingId><![CDATA[decoy-meeting]]></meetingId>
        <meetingID>decoy-meeting-2</meetingID>
        <name><![CDATA[Decoy name]]></name>
        <recordID>decoy-record</recordID>
        <state>decoy</state>
        <isBreakout>false</isBreakout>
        <bbb-origin-server-name>  <![CDATA[lms.example]]>  </bbb-origin-server-name>
      </metadata>
      <breakout>
        <parentId>unknown</parentId>
        <sequence>0</sequence>
        <freeJoin>false</freeJoin>
      </breakout>
      <size>1104836</size>
      <playback>
        <format>
          <type>presentation</type>
          <url>
            https://bbb.example/playback/presentation/2.3/3f786850e387550fdab836ed7e6dc881de23001b-1700000000000
          </url>
          <processingTime>7177</processingTime>
          <length>0</length>
          <preview>
            <images>
              <image alt="Welcome" height="136" width="176">https://bbb.example/thumb-1.png</image>
              <image alt="Slide 2" height="136" width="176"><url>https://bbb.example/decoy.png</url></image>
            </images>
          </preview>
        </format>
        <format>
          <url><![CDATA[https://bbb.example/presentation/3f78-1700000000000/video-0.m4v]]></url>
          <type>video</type>
        </format>
        <format>
          <type>podcast</type>
          <url>https://bbb.example/podcast/3f78/audio.ogg</url>
        </format>
        <format>
          <type>screenshare</type>
          <url>https://bbb.example/recording/screenshare/3f78</url>
        </format>
        <format>
          <type>notes</type>
          <url>https://bbb.example/notes/3f78/notes.html</url>
        </format>
        <format>
          <type>ai-summary</type>
          <url>https://bbb.example/playback/ai-summary/3f78/ai-summary.html</url>
        </format>
        <format>
          <type>broken-without-url</type>
        </format>
      </playback>
    </recording>
    <recording>
      <recordID>3f786850e387550fdab836ed7e6dc881de23001b-1690000000000</recordID>
      <meetingID>room-main</meetingID>
      <name><![CDATA[Main stage]]></name>
      <published>false</published>
      <state>unpublished</state>
      <startTime>1690000000000</startTime>
      <endTime>1690000100000</endTime>
      <metadata>
      </metadata>
      <playback>
      </playback>
    </recording>
  </recordings>
</response>"#;

    #[test]
    fn recordings_with_many_formats_cdata_and_wrapped_urls() {
        let (st, recs) = parse_recordings(&crlf(RECORDINGS)).unwrap();
        assert!(st.is_success());
        assert_eq!(recs.len(), 2);
        let first = &recs[0];
        assert_eq!(
            first.record_id,
            "3f786850e387550fdab836ed7e6dc881de23001b-1700000000000"
        );
        assert_eq!(first.meeting_id, "room-main");
        assert_eq!(first.state, "published");
        assert!(first.published);
        assert_eq!(first.start_time_ms, 1_700_000_000_000);
        assert_eq!(first.end_time_ms, 1_700_003_600_000);
        assert_eq!(first.participants, "12");
        let formats: Vec<(&str, &str)> = first
            .formats
            .iter()
            .map(|f| (f.kind.as_str(), f.url.as_str()))
            .collect();
        assert_eq!(
            formats,
            vec![
                (
                    "presentation",
                    "https://bbb.example/playback/presentation/2.3/3f786850e387550fdab836ed7e6dc881de23001b-1700000000000"
                ),
                (
                    "video",
                    "https://bbb.example/presentation/3f78-1700000000000/video-0.m4v"
                ),
                ("podcast", "https://bbb.example/podcast/3f78/audio.ogg"),
                ("screenshare", "https://bbb.example/recording/screenshare/3f78"),
                ("notes", "https://bbb.example/notes/3f78/notes.html"),
                (
                    "ai-summary",
                    "https://bbb.example/playback/ai-summary/3f78/ai-summary.html"
                ),
            ]
        );
    }

    #[test]
    fn recording_without_formats_or_participants_is_kept() {
        let (_, recs) = parse_recordings(RECORDINGS.as_bytes()).unwrap();
        let second = &recs[1];
        assert_eq!(
            second,
            &Recording {
                record_id: "3f786850e387550fdab836ed7e6dc881de23001b-1690000000000".to_string(),
                meeting_id: "room-main".to_string(),
                state: "unpublished".to_string(),
                published: false,
                start_time_ms: 1_690_000_000_000,
                end_time_ms: 1_690_000_100_000,
                participants: String::new(),
                formats: vec![],
            }
        );
    }

    #[test]
    fn recordings_none_in_both_element_orders() {
        let bbb_order = "<response>\n<returncode>SUCCESS</returncode>\n<recordings></recordings>\n\
                         <messageKey>noRecordings</messageKey>\n\
                         <message>There are no recordings for the meeting(s).</message>\n</response>";
        let alt_order = "<response>\n    <returncode>SUCCESS</returncode>\n    \
                         <messageKey>noRecordings</messageKey>\n    <message>No recordings found</message>\n    \
                         <recordings/>\n</response>\n";
        for xml in [crlf(bbb_order), alt_order.as_bytes().to_vec()] {
            let (st, recs) = parse_recordings(&xml).unwrap();
            assert!(st.is_success());
            assert_eq!(st.message_key.as_deref(), Some("noRecordings"));
            assert!(recs.is_empty());
        }
    }

    #[test]
    fn recordings_failed_not_found_is_empty() {
        let xml = "<response><returncode>FAILED</returncode><messageKey>notFound</messageKey>\
                   <message>Could not find recording</message></response>";
        let (st, recs) = parse_recordings(xml.as_bytes()).unwrap();
        assert_eq!(st.message_key.as_deref(), Some("notFound"));
        assert!(recs.is_empty());
    }

    #[test]
    fn recording_without_record_id_is_missing() {
        let xml = "<response><returncode>SUCCESS</returncode><recordings><recording>\
                   <meetingID>m</meetingID><metadata><recordID>decoy</recordID></metadata>\
                   </recording></recordings></response>";
        assert!(matches!(
            parse_recordings(xml.as_bytes()),
            Err(XmlError::Missing("recordID"))
        ));
    }

    #[test]
    fn truncated_recordings_are_malformed() {
        let cut = &RECORDINGS[..RECORDINGS.len() / 2];
        assert!(matches!(
            parse_recordings(cut.as_bytes()),
            Err(XmlError::Malformed(_))
        ));
    }

    // ---- version index ----

    #[test]
    fn version_of_a_bbb_3_0_index_is_its_bbb_version() {
        let xml = b"<response>\n  <returncode>SUCCESS</returncode>\n  <version>2.0</version>\n  \
            <apiVersion>2.0</apiVersion>\n  <bbbVersion>3.0.12</bbbVersion>\n  \
            <graphqlWebsocketUrl>wss://bbb.example.org/graphql</graphqlWebsocketUrl>\n</response>";
        let (status, version) = parse_version(xml).unwrap();
        assert!(status.is_success());
        assert_eq!(version.as_deref(), Some("3.0.12"));
    }

    #[test]
    fn version_without_bbb_version_falls_back_to_api_version() {
        let xml = b"<response>\n<returncode>SUCCESS</returncode>\n<version>2.0</version>\n<apiVersion>2.0</apiVersion>\n</response>";
        assert_eq!(parse_version(xml).unwrap().1.as_deref(), Some("2.0"));
        let xml = b"<response><returncode>SUCCESS</returncode><bbbVersion> </bbbVersion></response>";
        assert_eq!(parse_version(xml).unwrap().1, None);
    }

    #[test]
    fn version_of_an_html_page_is_an_error() {
        assert!(parse_version(b"<html><body>Welcome to nginx</body></html>").is_err());
    }
}
