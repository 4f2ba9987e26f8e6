//! A webhook receiver the nodes of every region can reach (on the root namespace's bridge
//! address): it records each delivery's job, event and event id, so the checker can tell a
//! duplicate (the same event id again, which the contract allows) from two outcomes of one job.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Json;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct Delivery {
    pub job_id: String,
    pub event: String,
    pub event_id: String,
}

#[derive(Clone, Default)]
pub struct Hooks {
    pub received: Arc<Mutex<Vec<Delivery>>>,
}

impl Hooks {
    /// Starts receiving on `ip` (a free port); the URL jobs should notify.
    pub async fn start(&self, ip: std::net::IpAddr) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(format!("http://{addr}/hook"))
    }
}

async fn receive(State(hooks): State<Hooks>, Json(body): Json<Value>) -> StatusCode {
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
    hooks.received.lock().unwrap().push(Delivery {
        job_id: field("job_id"),
        event: field("event"),
        event_id: field("event_id"),
    });
    StatusCode::OK
}
