//! The binary's startup contract: health, invalid settings exit with status 2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;

use crate::helpers::*;

#[actix_web::test]
async fn healthz_answers_200() {
    let app = spawn_app().await;
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200);
}

fn run_with_settings(text: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bbb-gateway"));
    cmd.arg("--config").arg(&path).arg("--bind").arg("127.0.0.1:0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn invalid_settings_exit_2_with_one_line_naming_file_and_key() {
    let cases = [
        ("[server]\nunknown_key = 1\n", "unknown_key"),
        ("[server]\nmax_frame_bytes = \"lots\"\n", "server.max_frame_bytes"),
        ("[[bbb.servers]]\nid = \"a\"\nurl = \"::nope::\"\nsecret = \"s\"\n", "bbb.servers[0].url"),
        (
            "[[bbb.servers]]\nid = \"a\"\nurl = \"http://a/\"\nsecret = \"s\"\n[[bbb.servers]]\nid = \"a\"\nurl = \"http://b/\"\nsecret = \"s\"\n",
            "bbb.servers[1].id",
        ),
        (
            "[[worlds]]\nid = \"w\"\n[[worlds.rooms]]\nid = \"r\"\ntrait_grants = { wizard = [] }\n",
            "worlds[0].rooms[0].trait_grants.wizard",
        ),
    ];
    for (text, key) in cases {
        let (status, stderr) = run_with_settings(text, &[]);
        assert_eq!(status, Some(2), "for {text}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected: {stderr}");
        assert!(
            lines[0].contains("bad.toml") && lines[0].contains(key),
            "{stderr}"
        );
    }
}

#[test]
fn invalid_environment_override_exits_2() {
    let (status, stderr) = run_with_settings("", &[("BBB_GATEWAY__SERVER__REQUESTS_PER_SECOND", "many")]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("server.requests_per_second"), "{stderr}");
}

#[test]
fn shipped_settings_are_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("settings.toml");
    let settings = bbb_gateway::config::load_with_env(&path, &[]).unwrap();
    let world = settings.world("sample").unwrap();
    assert!(world.rooms.len() >= 3);
    assert!(settings.simulator.enabled);
}
