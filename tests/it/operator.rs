//! What an operator relies on at the server's edge: HTTPS with their own certificate, and log
//! lines a collector can parse.

use std::process::Command;

use crate::support::TestServer;

/// A self-signed certificate for 127.0.0.1, made with the system's `openssl`.
fn self_signed(dir: &std::path::Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is needed to make a test certificate (apt-get install openssl)");
    assert!(status.success(), "openssl req failed");
    (cert.display().to_string(), key.display().to_string())
}

#[tokio::test]
async fn tls_cert_and_key_serve_https() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let server = TestServer::builder()
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .start()
        .await;
    let url = server.base_url().to_owned();
    assert!(url.starts_with("https://"), "{url}\n{}", server.logs());
    let health = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "10",
            "--cacert",
            &cert,
        ])
        .arg(format!("{url}/healthz"))
        .output()
        .expect("curl runs");
    assert!(
        health.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&health.stderr),
        server.logs()
    );
    assert_eq!(
        String::from_utf8_lossy(&health.stdout),
        r#"{"status":"ok"}"#
    );
    // The token never travels in clear: plain HTTP on the same port gets no answer.
    let plain = Command::new("curl")
        .args(["--silent", "--max-time", "5"])
        .arg(format!(
            "{}/healthz",
            url.replacen("https://", "http://", 1)
        ))
        .output()
        .expect("curl runs");
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("ok"));
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_and_text_logs_carry_no_colour_codes() {
    let mut server = TestServer::builder()
        .arg("--log-format")
        .arg("json")
        .start()
        .await;
    // A clean stop logs at least its two lines.
    assert!(server.stop().await, "{}", server.logs());
    let logs = server.logs();
    let stderr = logs.split("--- tributary stderr ---\n").nth(1).unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines\n{logs}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v.get(key).is_some(), "no {key} in {line}");
        }
    }

    let mut text = TestServer::builder().start().await;
    assert!(text.stop().await, "{}", text.logs());
    let logs = text.logs();
    assert!(logs.contains("INFO"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes in a log file:\n{logs}"
    );
}
