//! Typed settings: read once from TOML, overridden by `BBB_GATEWAY__SECTION__KEY` variables,
//! validated as a whole. An invalid file yields one [`ConfigError`] naming file, key and problem.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bbb::checksum::ChecksumAlgorithm;
use crate::ids::{RoomId, ServerId, WorldId};

/// Prefix of environment variables that override settings.
pub const ENV_PREFIX: &str = "BBB_GATEWAY__";

pub use crate::secret::Secret;

mod env;
mod validate;

use env::apply_env_overrides;
use validate::validate;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub bbb: BbbSettings,
    #[serde(default)]
    pub simulator: SimulatorSettings,
    #[serde(default)]
    pub worlds: Vec<WorldSettings>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub bind: String,
    /// How browsers reach this service; empty means `http://{bind}`.
    pub public_url: String,
    pub database: PathBuf,
    /// Names this instance in logs, metrics and `/admin`; empty = host name + bind port.
    pub instance_name: String,
    pub admin_token: Option<Secret>,
    pub max_frame_bytes: usize,
    /// Per connection; burst is twice this. 0 disables the limit.
    pub requests_per_second: u32,
    /// WebSocket ping interval (not in the spec's list; an addition with a safe default).
    pub heartbeat_interval_ms: u64,
    /// A socket that answers nothing (not even pongs) for this long is closed.
    pub client_timeout_ms: u64,
    /// SIGTERM: in-flight requests get this long before sockets are closed with 1012.
    pub shutdown_grace_ms: u64,
    /// A socket not authenticated this long after it opened is closed with 1008 (an addition).
    pub auth_timeout_ms: u64,
    /// A fragmented message left unfinished this long closes the socket with 1008 (an addition).
    pub fragment_timeout_ms: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8375".into(),
            public_url: String::new(),
            database: PathBuf::from("data/bbb-gateway.sqlite3"),
            instance_name: String::new(),
            admin_token: None,
            max_frame_bytes: 65536,
            requests_per_second: 20,
            heartbeat_interval_ms: 10_000,
            client_timeout_ms: 30_000,
            shutdown_grace_ms: 10_000,
            auth_timeout_ms: 10_000,
            fragment_timeout_ms: 10_000,
        }
    }
}

impl ServerSettings {
    /// The admin token, if the admin API is on (an empty token counts as none).
    pub fn admin_token(&self) -> Option<&Secret> {
        self.admin_token.as_ref().filter(|t| !t.is_empty())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BbbSettings {
    pub request_timeout_ms: u64,
    pub poll_interval_ms: u64,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
    pub tls_ca_file: String,
    /// Every create carries `meetingEndedURL` back to `public_url` (SPEC §6); false where BBB
    /// cannot reach `public_url`.
    pub end_callbacks: bool,
    pub servers: Vec<ServerConfig>,
}

impl Default for BbbSettings {
    fn default() -> Self {
        Self {
            request_timeout_ms: 5000,
            poll_interval_ms: 15000,
            unhealthy_after: 2,
            healthy_after: 2,
            tls_ca_file: String::new(),
            end_callbacks: true,
            servers: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub id: ServerId,
    /// Base URL ending in `/`; "api/<call>" is appended (normalised by `validate`).
    pub url: String,
    pub secret: Secret,
    #[serde(default = "default_true")]
    pub active: bool,
    #[serde(default)]
    pub rooms_only: bool,
    #[serde(default)]
    pub world_exclusive: Option<WorldId>,
    #[serde(default)]
    pub checksum: ChecksumAlgorithm,
    #[serde(default = "default_multiplier")]
    pub load_multiplier: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorSettings {
    pub enabled: bool,
    pub secret: Secret,
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            secret: Secret::new("simulator-secret"),
        }
    }
}

/// One element of a trait-grant requirement list: a trait, or "at least one of these".
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Requirement {
    Trait(String),
    AnyOf(Vec<String>),
}

/// Role name -> requirement list (all elements must hold; empty grants everyone).
pub type TraitGrants = BTreeMap<String, Vec<Requirement>>;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldSettings {
    pub id: WorldId,
    #[serde(default)]
    pub title: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default)]
    pub connection_limit: usize,
    #[serde(default = "default_true")]
    pub bbb_disable_privatechat: bool,
    #[serde(default)]
    pub trait_grants: TraitGrants,
    #[serde(default)]
    pub jwt_secrets: Vec<JwtSecret>,
    /// Role name -> permissions; `None` means the default roles.
    #[serde(default)]
    pub roles: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    pub rooms: Vec<RoomSettings>,
    #[serde(default)]
    pub role_grants: Vec<RoleGrantSettings>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSecret {
    pub issuer: String,
    pub audience: String,
    pub secret: Secret,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSettings {
    pub id: RoomId,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub trait_grants: TraitGrants,
    #[serde(default)]
    pub modules: Vec<ModuleSettings>,
}

impl RoomSettings {
    /// The room's BBB module config, if it has a `call.bigbluebutton` module.
    pub fn bbb(&self) -> Option<BbbRoomConfig> {
        self.modules
            .iter()
            .find(|m| m.kind == BBB_MODULE)
            .map(|m| BbbRoomConfig::from_table(&m.config).unwrap_or_default())
    }
}

/// The module type that makes a room a BBB room.
pub const BBB_MODULE: &str = "call.bigbluebutton";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSettings {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub config: toml::Table,
}

/// The `config` of a room's `call.bigbluebutton` module.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BbbRoomConfig {
    pub record: bool,
    pub voice_bridge: Option<String>,
    pub prefer_server: Option<String>,
    pub waiting_room: bool,
    pub presentation: Option<String>,
    pub auto_microphone: bool,
    pub auto_camera: bool,
    pub hide_presentation: bool,
    pub bbb_mute_on_start: bool,
    pub bbb_disable_cam: bool,
    pub bbb_disable_chat: bool,
}

impl BbbRoomConfig {
    fn from_table(table: &toml::Table) -> Result<Self, (String, String)> {
        let value = toml::Value::Table(table.clone());
        serde_path_to_error::deserialize(value)
            .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleGrantSettings {
    pub uid: String,
    pub role: String,
    #[serde(default)]
    pub room: Option<RoomId>,
}

fn default_true() -> bool {
    true
}

fn default_multiplier() -> f64 {
    1.0
}

fn default_timezone() -> String {
    "UTC".into()
}

/// The default role table of SPEC §5, used when a world sets no `roles`.
pub fn default_roles() -> BTreeMap<String, Vec<String>> {
    let attendee = vec!["world:view".to_string(), "world:chat.direct".to_string()];
    let mut viewer = attendee.clone();
    viewer.push("room:view".into());
    let mut participant = viewer.clone();
    participant.push("room:bbb.join".into());
    let mut speaker = participant.clone();
    speaker.push("room:bbb.moderate".into());
    let mut moderator = speaker.clone();
    moderator.push("room:bbb.recordings".into());
    let mut admin = moderator.clone();
    admin.push("world:update".into());
    admin.push("world:connections.unlimited".into());
    BTreeMap::from([
        ("attendee".to_string(), attendee),
        ("viewer".to_string(), viewer),
        ("participant".to_string(), participant),
        ("speaker".to_string(), speaker),
        ("moderator".to_string(), moderator),
        ("admin".to_string(), admin),
    ])
}

impl WorldSettings {
    /// The world's role table (its own, or the defaults).
    pub fn role_table(&self) -> BTreeMap<String, Vec<String>> {
        self.roles.clone().unwrap_or_else(default_roles)
    }

    pub fn room(&self, id: &str) -> Option<&RoomSettings> {
        self.rooms.iter().find(|r| r.id.as_str() == id)
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
}

impl Settings {
    pub fn world(&self, id: &str) -> Option<&WorldSettings> {
        self.worlds.iter().find(|w| w.id.as_str() == id)
    }

    /// The URL browsers use to reach this service, without a trailing slash.
    pub fn public_url(&self) -> String {
        let url = if self.server.public_url.is_empty() {
            format!("http://{}", self.server.bind)
        } else {
            self.server.public_url.clone()
        };
        url.trim_end_matches('/').to_string()
    }
}

/// The settings in force, swappable by the admin reload. Readers take a cheap snapshot.
#[derive(Clone)]
pub struct ConfigHandle {
    current: std::sync::Arc<std::sync::RwLock<std::sync::Arc<Settings>>>,
    path: Option<PathBuf>,
}

impl ConfigHandle {
    pub fn new(settings: Settings, path: Option<PathBuf>) -> Self {
        Self {
            current: std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(settings))),
            path,
        }
    }

    /// A snapshot of the settings in force.
    pub fn current(&self) -> std::sync::Arc<Settings> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The file the settings came from, if any (the admin reload re-reads it).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn replace(&self, settings: std::sync::Arc<Settings>) {
        match self.current.write() {
            Ok(mut guard) => *guard = settings,
            Err(poisoned) => *poisoned.into_inner() = settings,
        }
    }
}

/// A settings problem, printed as one line: `FILE: KEY: PROBLEM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}{problem}", key_prefix(.key))]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub problem: String,
}

/// `KEY: ` of a [`ConfigError`] line, nothing for file-wide problems.
fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

/// Reads, overrides and validates the settings file at `path`, using the process environment.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    load_with_env(path, &vars)
}

/// Like [`load`], with the environment given explicitly (for tests).
pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Settings, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        key: String::new(),
        problem: format!("cannot read: {e}"),
    })?;
    parse(&file, &text, env)
}

/// Parses settings text; `file` only names the source in errors.
pub fn parse(file: &str, text: &str, env: &[(String, String)]) -> Result<Settings, ConfigError> {
    let err = |key: String, problem: String| ConfigError {
        file: file.to_string(),
        key,
        problem,
    };
    let mut root: toml::Table = toml::from_str(text).map_err(|e: toml::de::Error| {
        let location = e
            .span()
            .map(|span| {
                let before = text.get(..span.start).unwrap_or("");
                let line = before.matches('\n').count() + 1;
                format!("line {line}")
            })
            .unwrap_or_default();
        err(location, e.message().replace('\n', " "))
    })?;
    apply_env_overrides(&mut root, env).map_err(|(key, problem)| err(key, problem))?;
    let mut settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        err(key, redact_values(&e.into_inner().message().replace('\n', " ")))
    })?;
    validate(&mut settings).map_err(|(key, problem)| err(key, problem))?;
    Ok(settings)
}

/// Drops the offending value from a deserializer's message, keeping what was expected: serde
/// and toml quote it (``invalid type: integer `5`, expected a string``), and the value may be a
/// mistyped secret. Key names (``unknown field `x` ``) are kept.
pub fn redact_values(message: &str) -> String {
    const VALUE_MESSAGES: [&str; 3] = ["invalid type: ", "invalid value: ", "unknown variant "];
    let Some(prefix) = VALUE_MESSAGES.iter().find(|p| message.starts_with(**p)) else {
        return message.to_string();
    };
    let rest = message.get(prefix.len()..).unwrap_or("");
    let (what, expected) = match rest.find(", expected") {
        Some(at) => (rest.get(..at).unwrap_or(""), rest.get(at..).unwrap_or("")),
        None => (rest, ""),
    };
    // Keep the kind of value ("integer", "string"), drop the value itself.
    let cut = what.find(['`', '"', '\'']).unwrap_or(what.len());
    let kind = what.get(..cut).unwrap_or("").trim();
    let kind = if kind.is_empty() { "value" } else { kind };
    format!("{prefix}{kind}{expected}")
}

/// Room lookup table for a world: id -> index in config order.
pub fn room_index(world: &WorldSettings) -> HashMap<RoomId, usize> {
    world
        .rooms
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect()
}

/// Fills in what depends on the bound address: a `public_url` left empty becomes
/// `http://{address}`, and with the simulator enabled and no servers configured the simulator
/// becomes the one BBB server ("simulator").
pub fn complete_for_listener(settings: &mut Settings, local: std::net::SocketAddr) {
    let reachable = if local.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], local.port()))
    } else {
        local
    };
    if settings.server.public_url.is_empty() {
        settings.server.public_url = format!("http://{reachable}");
    }
    if settings.simulator.enabled && settings.bbb.servers.is_empty() {
        settings.bbb.servers.push(ServerConfig {
            id: ServerId::new("simulator"),
            url: format!("http://{reachable}/simulator/bigbluebutton/"),
            secret: settings.simulator.secret.clone(),
            active: true,
            rooms_only: false,
            world_exclusive: None,
            checksum: ChecksumAlgorithm::Sha256,
            load_multiplier: 1.0,
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    #[test]
    fn messages_about_a_value_keep_its_kind_and_drop_the_value() {
        assert_eq!(
            super::redact_values("invalid type: integer `12345`, expected a string"),
            "invalid type: integer, expected a string"
        );
        assert_eq!(
            super::redact_values("invalid value: string \"hunter2\", expected a URL"),
            "invalid value: string, expected a URL"
        );
        assert_eq!(
            super::redact_values("unknown variant `sha999`, expected one of `sha1`, `sha256`"),
            "unknown variant value, expected one of `sha1`, `sha256`"
        );
        assert_eq!(
            super::redact_values("unknown field `x`, expected `bind`"),
            "unknown field `x`, expected `bind`"
        );
    }

    use super::*;

    const MINIMAL: &str = r#"
[[bbb.servers]]
id = "bbb1"
url = "https://bbb1.example.org/bigbluebutton"
secret = "s3cret"

[[worlds]]
id = "sample"
trait_grants = { attendee = [] }

[[worlds.rooms]]
id = "main"
modules = [ { type = "call.bigbluebutton", config = { record = true, prefer_server = "bbb1" } } ]
"#;

    fn parse_ok(text: &str) -> Settings {
        parse("test.toml", text, &[]).unwrap()
    }

    fn parse_err(text: &str, env: &[(String, String)]) -> ConfigError {
        parse("test.toml", text, env).unwrap_err()
    }

    #[test]
    fn minimal_settings_get_defaults_and_normalised_urls() {
        let s = parse_ok(MINIMAL);
        assert_eq!(s.server.bind, "127.0.0.1:8375");
        assert_eq!(s.server.max_frame_bytes, 65536);
        assert_eq!(s.bbb.servers[0].url, "https://bbb1.example.org/bigbluebutton/");
        assert!(s.bbb.servers[0].active);
        assert_eq!(s.worlds[0].timezone, "UTC");
        assert!(s.worlds[0].rooms[0].bbb().unwrap().record);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse_err("[server]\nbindd = \"x\"\n", &[]);
        assert!(e.to_string().contains("bindd"), "{e}");
        assert!(e.to_string().starts_with("test.toml: "), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = parse_err("[server]\nmax_frame_bytes = \"big\"\n", &[]);
        assert_eq!(e.key, "server.max_frame_bytes");
    }

    #[test]
    fn duplicate_server_ids_are_rejected() {
        let text =
            format!("{MINIMAL}\n[[bbb.servers]]\nid = \"bbb1\"\nurl = \"http://x/\"\nsecret = \"a\"\n");
        let e = parse_err(&text, &[]);
        assert_eq!(e.key, "bbb.servers[1].id");
    }

    #[test]
    fn room_naming_unknown_role_is_rejected() {
        let text = MINIMAL.replace("id = \"main\"", "id = \"main\"\ntrait_grants = { wizard = [] }");
        let e = parse_err(&text, &[]);
        assert_eq!(e.key, "worlds[0].rooms[0].trait_grants.wizard");
    }

    #[test]
    fn unparsable_server_url_is_rejected() {
        let e = parse_err(
            &MINIMAL.replace("https://bbb1.example.org/bigbluebutton", "not a url"),
            &[],
        );
        assert_eq!(e.key, "bbb.servers[0].url");
    }

    #[test]
    fn unknown_bbb_module_key_is_rejected_with_its_path() {
        let e = parse_err(&MINIMAL.replace("record = true", "recrod = true"), &[]);
        assert!(e.key.starts_with("worlds[0].rooms[0].modules[0].config"), "{e}");
    }

    #[test]
    fn voice_bridge_longer_than_five_digits_is_rejected() {
        let e = parse_err(
            &MINIMAL.replace("record = true", "voice_bridge = \"123456\""),
            &[],
        );
        assert_eq!(e.key, "worlds[0].rooms[0].modules[0].config.voice_bridge");
    }

    #[test]
    fn env_overrides_reach_nested_keys_and_arrays() {
        let env = vec![
            (
                "BBB_GATEWAY__SERVER__BIND".to_string(),
                "0.0.0.0:9000".to_string(),
            ),
            (
                "BBB_GATEWAY__SERVER__REQUESTS_PER_SECOND".to_string(),
                "7".to_string(),
            ),
            (
                "BBB_GATEWAY__BBB__SERVERS__0__SECRET".to_string(),
                "12345".to_string(),
            ),
        ];
        let s = parse("t", MINIMAL, &env).unwrap();
        assert_eq!(s.server.bind, "0.0.0.0:9000");
        assert_eq!(s.server.requests_per_second, 7);
        assert_eq!(s.bbb.servers[0].secret.expose(), "12345");
    }

    #[test]
    fn env_override_of_wrong_type_is_an_error() {
        let env = vec![(
            "BBB_GATEWAY__SERVER__MAX_FRAME_BYTES".to_string(),
            "huge".to_string(),
        )];
        let e = parse_err(MINIMAL, &env);
        assert_eq!(e.key, "server.max_frame_bytes");
    }

    #[test]
    fn secrets_are_hidden_from_debug_output() {
        let s = parse_ok(MINIMAL);
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn nested_requirement_lists_parse() {
        let text = MINIMAL.replace("attendee = []", "attendee = [\"a\", [\"b\", \"c\"]]");
        let s = parse_ok(&text);
        assert_eq!(
            s.worlds[0].trait_grants["attendee"],
            vec![
                Requirement::Trait("a".into()),
                Requirement::AnyOf(vec!["b".into(), "c".into()])
            ]
        );
    }

    #[test]
    fn invalid_world_id_is_rejected() {
        let e = parse_err(&MINIMAL.replace("id = \"sample\"", "id = \"Sample World\""), &[]);
        assert_eq!(e.key, "worlds[0].id");
    }
}
