//! Frame parsing and building: text in, a raw [`Frame`] out; typed replies to text.
//! Parsing never fails hard: a bad frame becomes an error carrying the id when one is known.

use serde_json::{json, Value};

use crate::error::Error;

/// One incoming frame, before any command-specific checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `["ping", x]`.
    Ping(Value),
    /// `["authenticate", body]` (or `["authenticate", id, body]`).
    Authenticate { id: Option<Value>, body: Value },
    /// `[action, id, body]`; `body` is `None` when the frame had no third element.
    Request {
        action: String,
        id: Value,
        body: Option<Value>,
    },
}

/// A frame that could not be understood, with the id to answer to (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub id: Option<Value>,
    pub error: Error,
}

fn bad(id: Option<Value>, message: &str) -> FrameError {
    FrameError {
        id,
        error: Error::invalid(message),
    }
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Frame, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|_| bad(None, "frame is not valid JSON"))?;
    let Value::Array(mut items) = value else {
        return Err(bad(None, "frame must be a JSON array"));
    };
    let id = items.get(1).cloned();
    let action = match items.first() {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad(id, "first element must be the action name")),
        None => return Err(bad(None, "frame must not be empty")),
    };
    match action.as_str() {
        "ping" => match (items.len(), id) {
            (2, Some(x)) => Ok(Frame::Ping(x)),
            (_, id) => Err(bad(id, "ping takes exactly one payload")),
        },
        "authenticate" => {
            let (id, body) = match items.len() {
                2 => (None, items.pop()),
                3 => (id, items.pop()),
                _ => return Err(bad(None, "authenticate takes one body object")),
            };
            match body {
                Some(body @ Value::Object(_)) => Ok(Frame::Authenticate { id, body }),
                _ => Err(bad(id, "authenticate body must be an object")),
            }
        }
        _ => {
            let Some(id) = id else {
                return Err(bad(None, "request needs an id"));
            };
            if items.len() > 3 {
                return Err(bad(Some(id), "request has too many elements"));
            }
            let body = if items.len() == 3 { items.pop() } else { None };
            Ok(Frame::Request { action, id, body })
        }
    }
}

/// `["success", id, data]`.
pub fn success(id: &Value, data: Value) -> String {
    json!(["success", id, data]).to_string()
}

/// `["error", id, {"code", "message"?}]`, or `["error", {...}]` without an id.
pub fn error(id: Option<&Value>, error: &Error) -> String {
    let mut body = json!({ "code": error.code() });
    if let (Some(message), Some(obj)) = (error.message(), body.as_object_mut()) {
        obj.insert("message".into(), Value::String(message.to_string()));
    }
    match id {
        Some(id) => json!(["error", id, body]).to_string(),
        None => json!(["error", body]).to_string(),
    }
}

/// A server push: `[event, data]`.
pub fn event(name: &str, data: Value) -> String {
    json!([name, data]).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn ping_echoes_its_payload() {
        assert_eq!(parse(r#"["ping", 42]"#).unwrap(), Frame::Ping(json!(42)));
        assert_eq!(parse(r#"["ping", null]"#).unwrap(), Frame::Ping(json!(null)));
    }

    #[test]
    fn ping_without_payload_or_with_two_is_a_wrong_arity() {
        let e = parse(r#"["ping"]"#).unwrap_err();
        assert_eq!((e.id, e.error.code()), (None, "protocol.invalid_message"));
        let e = parse(r#"["ping", 1, 2]"#).unwrap_err();
        assert_eq!(
            (e.id, e.error.code()),
            (Some(json!(1)), "protocol.invalid_message")
        );
    }

    #[test]
    fn authenticate_takes_two_or_three_elements() {
        assert_eq!(
            parse(r#"["authenticate", {"client_id": "x"}]"#).unwrap(),
            Frame::Authenticate {
                id: None,
                body: json!({"client_id": "x"})
            }
        );
        assert_eq!(
            parse(r#"["authenticate", 5, {"client_id": "x"}]"#).unwrap(),
            Frame::Authenticate {
                id: Some(json!(5)),
                body: json!({"client_id": "x"})
            }
        );
        assert!(parse(r#"["authenticate", "token"]"#).is_err());
    }

    #[test]
    fn invalid_json_has_no_id() {
        let e = parse("[oops").unwrap_err();
        assert_eq!(e.id, None);
        assert_eq!(e.error.code(), "protocol.invalid_message");
    }

    #[test]
    fn non_array_is_invalid() {
        assert_eq!(
            parse(r#"{"a": 1}"#).unwrap_err().error.code(),
            "protocol.invalid_message"
        );
    }

    #[test]
    fn second_element_is_the_id_even_when_the_frame_is_bad() {
        let e = parse(r#"[1, "abc", {}]"#).unwrap_err();
        assert_eq!(e.id, Some(json!("abc")));
    }

    #[test]
    fn request_without_body_is_kept_for_later_checks() {
        assert_eq!(
            parse(r#"["bbb.room_url", 7]"#).unwrap(),
            Frame::Request {
                action: "bbb.room_url".into(),
                id: json!(7),
                body: None
            }
        );
    }

    #[test]
    fn error_frames_have_exact_shapes() {
        assert_eq!(
            error(Some(&json!(3)), &Error::RoomUnknown),
            r#"["error",3,{"code":"room.unknown"}]"#
        );
        assert_eq!(
            error(None, &Error::InvalidToken),
            r#"["error",{"code":"auth.invalid_token"}]"#
        );
        assert_eq!(
            error(Some(&json!("a")), &Error::invalid("bad")),
            r#"["error","a",{"code":"protocol.invalid_message","message":"bad"}]"#
        );
    }
}
