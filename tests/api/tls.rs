//! https to BBB: a local TLS server with a self-signed certificate, trusted only through
//! `bbb.tls_ca_file`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use bbb_gateway::simulator::{self, SimulatorState};
use serde_json::json;

use crate::helpers::*;

/// Starts the simulator on https://localhost:PORT with a fresh self-signed certificate;
/// returns the port and the certificate's PEM.
fn spawn_tls_simulator() -> (u16, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = certified.cert.pem();
    let cert_der = certified.cert.der().clone();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = web::Data::new(SimulatorState::new(
        SIM_SECRET.into(),
        format!("https://localhost:{port}"),
    ));
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new().configure(move |cfg| simulator::configure(cfg, state))
    })
    .workers(1)
    .listen_rustls_0_23(listener, config)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    (port, cert_pem)
}

fn https_server(port: u16, ca_file: Option<&std::path::Path>) -> impl FnOnce(String) -> String {
    let ca = ca_file
        .map(|p| format!("tls_ca_file = \"{}\"\n", p.display()))
        .unwrap_or_default();
    move |s: String| {
        s.replace("[bbb]\n", &format!("[bbb]\n{ca}"))
            + &format!(
                "\n[[bbb.servers]]\nid = \"secure\"\nurl = \"https://localhost:{port}/simulator/bigbluebutton/\"\nsecret = \"{SIM_SECRET}\"\nchecksum = \"sha512\"\n"
            )
    }
}

#[actix_web::test]
async fn https_server_trusted_through_tls_ca_file_works() {
    let (port, pem) = spawn_tls_simulator();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let app = spawn_app_with(https_server(port, Some(&ca))).await;
    let (mut ws, _) = app.client("sample", "tls-user").await;
    ws.set_name("Tilda").await;
    let r = ws.request("bbb.room_url", json!({"room": "stage"})).await;
    assert_eq!(r[0], "success", "{r}");
    let url = r[2]["url"].as_str().unwrap();
    assert!(url.starts_with(&format!(
        "https://localhost:{port}/simulator/bigbluebutton/api/join?"
    )));
    assert_eq!(query_params(url)["checksum"].len(), 128, "sha512 checksum");
}

#[actix_web::test]
async fn https_server_with_an_untrusted_certificate_is_refused() {
    let (port, _pem) = spawn_tls_simulator();
    let app = spawn_app_with(https_server(port, None)).await;
    let (mut ws, _) = app.client("sample", "tls-user").await;
    ws.set_name("Tilda").await;
    let r = ws.request("bbb.room_url", json!({"room": "stage"})).await;
    assert_eq!(code(&r), "bbb.failed");
}
