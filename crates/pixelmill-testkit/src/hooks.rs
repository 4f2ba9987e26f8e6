use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One webhook request as received.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }

    /// Checks `Pixelmill-Signature: t=…,v1=hex(HMAC-SHA256(secret, "t.body"))` independently of
    /// pixelmill's own code.
    /// Whether any `v1` of the signature header verifies under `secret` (a sender signs with two
    /// secrets while rotating). Written here from the documented format, not with pixelmill's code.
    pub fn signature_valid(&self, secret: &str) -> bool {
        use hmac::{Hmac, Mac};
        let Some(header) = self.header("pixelmill-signature") else {
            return false;
        };
        let parts: Vec<(&str, &str)> = header
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let Some((_, t)) = parts.iter().find(|(k, _)| *k == "t") else {
            return false;
        };
        parts.iter().filter(|(k, _)| *k == "v1").any(|(_, v1)| {
            let Ok(expected) = hex::decode(v1) else {
                return false;
            };
            let mut mac =
                Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
            mac.update(t.as_bytes());
            mac.update(b".");
            mac.update(&self.body);
            mac.verify_slice(&expected).is_ok()
        })
    }
}

#[derive(Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<Delivery>>>,
    /// Requests answered 500 before the receiver starts accepting.
    fail_first: Arc<AtomicUsize>,
    /// Where every request is redirected (307), if anywhere.
    redirect: Option<String>,
}

/// A real webhook receiver on a loopback port.
pub struct Hooks {
    pub url: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Hooks {
    pub async fn start() -> Hooks {
        Self::start_on(0, 0).await
    }

    /// Listens on `port` (0: any) and answers the first `fail_first` requests with 500.
    pub async fn start_on(port: u16, fail_first: usize) -> Hooks {
        let shared = Shared::default();
        shared.fail_first.store(fail_first, Ordering::SeqCst);
        Self::serve(Ipv4Addr::LOCALHOST.into(), port, shared).await
    }

    /// Listens on another loopback address, e.g. 127.0.0.2, to test which ones may be reached.
    pub async fn start_at(ip: IpAddr) -> Hooks {
        Self::serve(ip, 0, Shared::default()).await
    }

    /// Listens on `ip` and answers every request with a 307 redirect to `location`.
    pub async fn redirecting(ip: IpAddr, location: &str) -> Hooks {
        let shared = Shared {
            redirect: Some(location.to_owned()),
            ..Shared::default()
        };
        Self::serve(ip, 0, shared).await
    }

    async fn serve(ip: IpAddr, port: u16, shared: Shared) -> Hooks {
        let listener = tokio::net::TcpListener::bind((ip, port))
            .await
            .expect("bind hooks");
        let addr = listener.local_addr().expect("hooks addr");
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hooks {
            url: format!("http://{addr}/hook"),
            shared,
            server,
        }
    }

    pub fn received(&self) -> Vec<Delivery> {
        self.shared.received.lock().expect("hooks lock").clone()
    }

    /// Waits until `n` requests arrived (failed ones included) or `timeout` passes.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    shared
        .received
        .lock()
        .expect("hooks lock")
        .push(Delivery { headers, body });
    if let Some(location) = &shared.redirect {
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location.clone())],
        )
            .into_response();
    }
    let failing = shared
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    } else {
        StatusCode::OK.into_response()
    }
}
