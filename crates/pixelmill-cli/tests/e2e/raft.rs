//! The raft secret at start-up: a node with peers will not run without one, nor with a short one;
//! `pixelmill raft` will not ask without one.

use std::process::{Command, Output};

fn pixelmill(args: &[&str], env: &[(&str, &str)]) -> Output {
    let data = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_pixelmill"))
        .args(args)
        .args(["--data-dir", &data.path().display().to_string()])
        .env_remove("PIXELMILL_RAFT_SECRET")
        .env_remove("PIXELMILL_RAFT_SECRET_FILE")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn serve_with_a_peer(env: &[(&str, &str)]) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let peers = format!("1=127.0.0.1:{port}");
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--node-id",
        "1",
        "--peers",
        &peers,
    ];
    let out = pixelmill(&args, env);
    assert!(!out.status.success(), "it started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_node_with_peers_and_no_raft_secret_refuses_to_start_and_says_how_to_fix_it() {
    let stderr = serve_with_a_peer(&[]);
    assert!(
        stderr.contains("needs the region's raft secret"),
        "{stderr}"
    );
    assert!(stderr.contains("PIXELMILL_RAFT_SECRET"), "{stderr}");
}

#[test]
fn a_raft_secret_shorter_than_32_bytes_is_refused_without_showing_it() {
    let stderr = serve_with_a_peer(&[("PIXELMILL_RAFT_SECRET", "hunter2-hunter2")]);
    assert!(stderr.contains("at least 32 are needed"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
