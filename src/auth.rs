//! Credentials of `authenticate`: HS256 JWTs checked against a world's secrets, or an
//! anonymous client id. Pure functions; the session actor drives the login itself.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::JwtSecret;
use crate::error::Error;
use crate::store::LoginKey;

/// What a successful credential check yields.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    pub key: LoginKey,
    /// `Some` replaces the stored traits; `None` leaves them as they are.
    pub traits: Option<Vec<String>>,
    /// Stored only when the user is created.
    pub profile: Option<Value>,
}

impl Credentials {
    pub fn is_token(&self) -> bool {
        matches!(self.key, LoginKey::Token(_))
    }
}

/// Reads the body of `authenticate`: a token wins over a client id.
pub fn credentials(body: &Value, secrets: &[JwtSecret]) -> Result<Credentials, Error> {
    let token = body.get("token").filter(|t| !t.is_null());
    if let Some(token) = token {
        let Value::String(token) = token else {
            return Err(Error::InvalidToken);
        };
        return verify_token(token, secrets);
    }
    match body.get("client_id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(Credentials {
            key: LoginKey::Client(id.clone()),
            traits: None,
            profile: None,
        }),
        _ => Err(Error::MissingIdOrToken),
    }
}

/// Checks an HS256 token against each secret in order. A valid signature with a past `exp` is
/// `auth.expired_token`; anything else that fails is `auth.invalid_token`.
pub fn verify_token(token: &str, secrets: &[JwtSecret]) -> Result<Credentials, Error> {
    verify_token_at(
        token,
        secrets,
        chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
    )
}

/// [`verify_token`] at the Unix time `now` (seconds).
pub fn verify_token_at(token: &str, secrets: &[JwtSecret], now: f64) -> Result<Credentials, Error> {
    for entry in secrets {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // The time claims are checked by `check_times`, which (unlike jsonwebtoken) refuses
        // claims that are present but not numbers.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[entry.issuer.as_str()]);
        validation.set_audience(&[entry.audience.as_str()]);
        validation.set_required_spec_claims(&["iss", "aud"]);
        let key = DecodingKey::from_secret(entry.secret.expose().as_bytes());
        if let Ok(data) = decode::<Map<String, Value>>(token, &key, &validation) {
            check_times(&data.claims, now)?;
            return claims(data.claims);
        }
    }
    Err(Error::InvalidToken)
}

/// The time claims of a token with a valid signature, as PyJWT checks them: `exp`, `nbf` and
/// `iat` must be numbers when present; `nbf` in the future is invalid; `exp` at or before `now`
/// is expired. No leeway.
pub fn check_times(claims: &Map<String, Value>, now: f64) -> Result<(), Error> {
    let number = |name: &str| -> Result<Option<f64>, Error> {
        match claims.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(Error::InvalidToken),
            Some(_) => Err(Error::InvalidToken),
        }
    };
    let exp = number("exp")?;
    let nbf = number("nbf")?;
    number("iat")?;
    if nbf.is_some_and(|nbf| nbf > now) {
        return Err(Error::InvalidToken);
    }
    if exp.is_some_and(|exp| exp <= now) {
        return Err(Error::ExpiredToken);
    }
    Ok(())
}

fn claims(claims: Map<String, Value>) -> Result<Credentials, Error> {
    let uid = match claims.get("uid") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(Error::InvalidToken),
    };
    let traits = match claims.get("traits") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|t| t.as_str().map(str::to_string).ok_or(Error::InvalidToken))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(Error::InvalidToken),
    };
    // A token's profile is stored like one from `user.update`, so the same size cap applies;
    // a larger one is not stored.
    let profile = match claims.get("profile") {
        Some(Value::Object(p))
            if crate::protocol::command::profile_bytes(p) <= crate::protocol::command::MAX_PROFILE_BYTES =>
        {
            Some(Value::Object(p.clone()))
        }
        _ => None,
    };
    Ok(Credentials {
        key: LoginKey::Token(uid),
        traits,
        profile,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn secrets() -> Vec<JwtSecret> {
        vec![
            JwtSecret {
                issuer: "any".into(),
                audience: "venueless".into(),
                secret: Secret::new("one"),
            },
            JwtSecret {
                issuer: "other".into(),
                audience: "venueless".into(),
                secret: Secret::new("two"),
            },
        ]
    }

    fn token(claims: Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn valid_token_yields_uid_traits_and_profile() {
        let t = token(
            json!({"iss": "any", "aud": "venueless", "uid": 42, "traits": ["a"], "profile": {"display_name": "A"}, "exp": now() + 60}),
            "one",
        );
        let c = verify_token(&t, &secrets()).unwrap();
        assert_eq!(c.key, LoginKey::Token("42".into()));
        assert_eq!(c.traits, Some(vec!["a".to_string()]));
        assert_eq!(c.profile, Some(json!({"display_name": "A"})));
    }

    #[test]
    fn time_claims_must_be_numbers_when_present() {
        let base = json!({"iss": "any", "aud": "venueless", "uid": "u"});
        for claim in ["exp", "nbf", "iat"] {
            for bad in [json!("1"), json!(null), json!({}), json!([]), json!(true)] {
                let mut claims = base.clone();
                claims[claim] = bad.clone();
                let t = token(claims, "one");
                assert_eq!(
                    verify_token(&t, &secrets()),
                    Err(Error::InvalidToken),
                    "{claim} = {bad}"
                );
            }
            let mut claims = base.clone();
            claims[claim] = json!(now() - 10);
            if claim != "exp" {
                assert!(verify_token(&token(claims, "one"), &secrets()).is_ok(), "{claim}");
            }
        }
    }

    #[test]
    fn nbf_in_the_future_is_invalid_and_in_the_past_is_fine() {
        let claims = |nbf: Value| json!({"iss": "any", "aud": "venueless", "uid": "u", "nbf": nbf});
        assert_eq!(
            verify_token(&token(claims(json!(now() + 3600)), "one"), &secrets()),
            Err(Error::InvalidToken)
        );
        assert!(verify_token(&token(claims(json!(now() - 1)), "one"), &secrets()).is_ok());
        assert!(verify_token(&token(claims(json!(now() as f64 - 0.5)), "one"), &secrets()).is_ok());
    }

    #[test]
    fn check_times_is_exact_at_the_boundaries() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            check_times(&m(json!({"exp": 100})), 100.0),
            Err(Error::ExpiredToken)
        );
        assert_eq!(check_times(&m(json!({"exp": 100.5})), 100.0), Ok(()));
        assert_eq!(check_times(&m(json!({"nbf": 100})), 100.0), Ok(()));
        assert_eq!(
            check_times(&m(json!({"nbf": 100.001})), 100.0),
            Err(Error::InvalidToken)
        );
        assert_eq!(
            check_times(&m(json!({"nbf": 200, "exp": 50})), 100.0),
            Err(Error::InvalidToken),
            "not yet valid wins over expired"
        );
        assert_eq!(check_times(&m(json!({})), 100.0), Ok(()));
    }

    #[test]
    fn secrets_are_tried_in_order() {
        let t = token(json!({"iss": "other", "aud": "venueless", "uid": "u"}), "two");
        assert!(verify_token(&t, &secrets()).is_ok());
    }

    #[test]
    fn expired_with_good_signature_is_expired() {
        let t = token(
            json!({"iss": "any", "aud": "venueless", "uid": "u", "exp": now() - 5}),
            "one",
        );
        assert_eq!(verify_token(&t, &secrets()), Err(Error::ExpiredToken));
    }

    #[test]
    fn expired_with_bad_signature_is_invalid() {
        let t = token(
            json!({"iss": "any", "aud": "venueless", "uid": "u", "exp": now() - 5}),
            "wrong",
        );
        assert_eq!(verify_token(&t, &secrets()), Err(Error::InvalidToken));
    }

    #[test]
    fn missing_uid_wrong_audience_and_garbage_are_invalid() {
        let no_uid = token(json!({"iss": "any", "aud": "venueless"}), "one");
        let wrong_aud = token(json!({"iss": "any", "aud": "x", "uid": "u"}), "one");
        for t in [no_uid, wrong_aud, "not.a.jwt".to_string()] {
            assert_eq!(verify_token(&t, &secrets()), Err(Error::InvalidToken));
        }
    }

    #[test]
    fn other_algorithms_are_refused() {
        let claims = json!({"iss": "any", "aud": "venueless", "uid": "u"});
        let t = encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(b"one"),
        )
        .unwrap();
        assert_eq!(verify_token(&t, &secrets()), Err(Error::InvalidToken));
    }

    #[test]
    fn token_wins_over_client_id_and_empty_client_id_is_missing() {
        assert_eq!(
            credentials(&json!({"token": "garbage", "client_id": "c"}), &secrets()),
            Err(Error::InvalidToken)
        );
        assert_eq!(
            credentials(&json!({"client_id": ""}), &secrets()),
            Err(Error::MissingIdOrToken)
        );
        assert_eq!(credentials(&json!({}), &secrets()), Err(Error::MissingIdOrToken));
        assert_eq!(
            credentials(&json!({"client_id": "c"}), &secrets()).unwrap().key,
            LoginKey::Client("c".into())
        );
    }
}
