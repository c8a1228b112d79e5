//! Settings validation: every problem named by its key; fills in derived values (normalised
//! URLs).

use std::collections::{BTreeMap, HashSet};

use super::*;

type Invalid = (String, String);

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Invalid {
    (key.into(), problem.into())
}

/// Checks what types alone cannot: ids, references between sections, URLs, ranges.
/// Normalises server URLs to end with `/`.
pub(super) fn validate(s: &mut Settings) -> Result<(), Invalid> {
    s.server
        .bind
        .parse::<SocketAddr>()
        .map_err(|e| invalid("server.bind", format!("not an ADDRESS:PORT: {e}")))?;
    if !s.server.public_url.is_empty() {
        check_http_url("server.public_url", &s.server.public_url)?;
    }
    if s.server.max_frame_bytes < 512 {
        return Err(invalid("server.max_frame_bytes", "must be at least 512"));
    }
    if s.server.heartbeat_interval_ms == 0 || s.server.client_timeout_ms <= s.server.heartbeat_interval_ms {
        return Err(invalid(
            "server.client_timeout_ms",
            "must be larger than server.heartbeat_interval_ms, which must be positive",
        ));
    }
    for (key, value) in [
        ("server.auth_timeout_ms", s.server.auth_timeout_ms),
        ("server.fragment_timeout_ms", s.server.fragment_timeout_ms),
    ] {
        if value == 0 {
            return Err(invalid(key, "must be positive"));
        }
    }
    if s.bbb.request_timeout_ms == 0 {
        return Err(invalid("bbb.request_timeout_ms", "must be positive"));
    }
    if s.bbb.poll_interval_ms == 0 {
        return Err(invalid("bbb.poll_interval_ms", "must be positive"));
    }
    if s.bbb.unhealthy_after == 0 {
        return Err(invalid("bbb.unhealthy_after", "must be at least 1"));
    }
    if s.bbb.healthy_after == 0 {
        return Err(invalid("bbb.healthy_after", "must be at least 1"));
    }
    if !s.bbb.tls_ca_file.is_empty() {
        crate::tls::read_pem_certs(&s.bbb.tls_ca_file).map_err(|e| invalid("bbb.tls_ca_file", e))?;
    }
    if s.simulator.enabled && s.simulator.secret.is_empty() {
        return Err(invalid("simulator.secret", "must not be empty"));
    }

    let world_ids: HashSet<&str> = s.worlds.iter().map(|w| w.id.as_str()).collect();
    let mut seen_servers = HashSet::new();
    for (i, server) in s.bbb.servers.iter_mut().enumerate() {
        let key = |k: &str| format!("bbb.servers[{i}].{k}");
        if server.id.as_str().is_empty() {
            return Err(invalid(key("id"), "must not be empty"));
        }
        if !seen_servers.insert(server.id.0.clone()) {
            return Err(invalid(key("id"), format!("duplicate id \"{}\"", server.id)));
        }
        check_http_url(&key("url"), &server.url)?;
        if !server.url.ends_with('/') {
            server.url.push('/');
        }
        if server.secret.is_empty() {
            return Err(invalid(key("secret"), "must not be empty"));
        }
        if let Some(w) = &server.world_exclusive {
            if !world_ids.contains(w.as_str()) {
                return Err(invalid(key("world_exclusive"), format!("unknown world \"{w}\"")));
            }
        }
        if !(server.load_multiplier.is_finite() && server.load_multiplier > 0.0) {
            return Err(invalid(key("load_multiplier"), "must be a positive number"));
        }
    }
    let servers: Vec<(String, String)> = s
        .bbb
        .servers
        .iter()
        .map(|srv| (srv.id.0.clone(), srv.url.clone()))
        .collect();

    let mut seen_worlds = HashSet::new();
    for (wi, world) in s.worlds.iter().enumerate() {
        validate_world(wi, world, &servers)?;
        if !seen_worlds.insert(world.id.as_str()) {
            return Err(invalid(
                format!("worlds[{wi}].id"),
                format!("duplicate id \"{}\"", world.id),
            ));
        }
    }
    Ok(())
}

fn validate_world(wi: usize, world: &WorldSettings, servers: &[(String, String)]) -> Result<(), Invalid> {
    let key = |k: &str| format!("worlds[{wi}].{k}");
    let id = world.id.as_str();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(invalid(key("id"), "must match [a-z0-9]+"));
    }
    if world.timezone.parse::<chrono_tz::Tz>().is_err() {
        return Err(invalid(
            key("timezone"),
            format!("unknown time zone \"{}\"", world.timezone),
        ));
    }
    for (i, jwt) in world.jwt_secrets.iter().enumerate() {
        if jwt.secret.is_empty() {
            return Err(invalid(
                key(&format!("jwt_secrets[{i}].secret")),
                "must not be empty",
            ));
        }
    }
    let roles = world.role_table();
    check_grants(&key("trait_grants"), &world.trait_grants, &roles)?;
    let mut room_ids = HashSet::new();
    for (ri, room) in world.rooms.iter().enumerate() {
        let rkey = |k: &str| key(&format!("rooms[{ri}].{k}"));
        let rid = room.id.as_str();
        if rid.is_empty()
            || !rid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid(rkey("id"), "must be non-empty and match [A-Za-z0-9_-]+"));
        }
        if !room_ids.insert(rid) {
            return Err(invalid(rkey("id"), format!("duplicate id \"{rid}\"")));
        }
        check_grants(&rkey("trait_grants"), &room.trait_grants, &roles)?;
        for (mi, module) in room.modules.iter().enumerate() {
            let mkey = |k: &str| rkey(&format!("modules[{mi}].{k}"));
            if module.kind.is_empty() {
                return Err(invalid(mkey("type"), "must not be empty"));
            }
            if module.kind == BBB_MODULE {
                let config = BbbRoomConfig::from_table(&module.config)
                    .map_err(|(path, problem)| invalid(mkey(&format!("config.{path}")), problem))?;
                validate_bbb_config(&mkey("config"), &config, servers)?;
            }
        }
    }
    for (gi, grant) in world.role_grants.iter().enumerate() {
        let gkey = |k: &str| key(&format!("role_grants[{gi}].{k}"));
        if grant.uid.is_empty() {
            return Err(invalid(gkey("uid"), "must not be empty"));
        }
        if !roles.contains_key(&grant.role) {
            return Err(invalid(gkey("role"), format!("unknown role \"{}\"", grant.role)));
        }
        if let Some(room) = &grant.room {
            if !room_ids.contains(room.as_str()) {
                return Err(invalid(gkey("room"), format!("unknown room \"{room}\"")));
            }
        }
    }
    Ok(())
}

fn check_grants(
    key: &str,
    grants: &TraitGrants,
    roles: &BTreeMap<String, Vec<String>>,
) -> Result<(), Invalid> {
    for role in grants.keys() {
        if !roles.contains_key(role) {
            return Err(invalid(
                format!("{key}.{role}"),
                format!("unknown role \"{role}\""),
            ));
        }
    }
    Ok(())
}

fn validate_bbb_config(
    key: &str,
    config: &BbbRoomConfig,
    servers: &[(String, String)],
) -> Result<(), Invalid> {
    if let Some(vb) = &config.voice_bridge {
        if vb.is_empty() || vb.len() > 5 || !vb.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!("{key}.voice_bridge"), "must be 1 to 5 digits"));
        }
    }
    if let Some(prefer) = &config.prefer_server {
        let normalized = format!("{}/", prefer.trim_end_matches('/'));
        if !servers.iter().any(|(id, url)| id == prefer || *url == normalized) {
            return Err(invalid(
                format!("{key}.prefer_server"),
                format!("\"{prefer}\" is neither a server id nor a server URL"),
            ));
        }
    }
    if let Some(url) = &config.presentation {
        check_http_url(&format!("{key}.presentation"), url)?;
    }
    Ok(())
}

fn check_http_url(key: &str, value: &str) -> Result<(), Invalid> {
    let parsed = url::Url::parse(value).map_err(|e| invalid(key, format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(key, "must be an http:// or https:// URL with a host"));
    }
    Ok(())
}
