//! API keys and tenants over real HTTP: what needs a key, what another tenant sees (nothing), the
//! `pixelmill keys` commands, and the bootstrap key of a node on embedded defaults.

use crate::{spawn_app, App};
use pixelmill_testkit::{jpeg, Client};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// What a route is to a caller without a key, and to another tenant's key.
#[derive(Debug, PartialEq)]
enum Access {
    /// Needs no key: health checks, and download links (bearer capabilities of their own).
    Open,
    /// A tenant's resource by id: another tenant's ids answer 404.
    TenantScoped,
    /// The caller's own tenant, no id in the path: nothing of another tenant to reach.
    OwnTenant,
    /// Operator endpoints: a tenant key gets 403.
    Admin,
}

fn access(path: &str) -> Access {
    match path {
        "/healthz" | "/readyz" | "/d/{token}" => Access::Open,
        "/v1/images"
        | "/v1/jobs"
        | "/v1/filters"
        | "/v1/tenant"
        | "/v1/tenant/render-keys"
        | "/v1/tenant/webhook-secrets" => Access::OwnTenant,
        "/metrics" => Access::Admin,
        p if p.starts_with("/v1/admin/") => Access::Admin,
        p if p.contains('{') => Access::TenantScoped,
        other => panic!("route {other} is new: say in auth.rs who may call it, and test it"),
    }
}

/// Tenant A's resources, which tenant B probes.
struct Owned {
    image: String,
    job: String,
    link: String,
}

async fn owned_by(client: &Client) -> Owned {
    let image = client.upload_ok(jpeg(48, 32)).await;
    let job =
        json!({"image_id": image, "pipeline": [{"op": "grayscale"}], "output": {"format": "png"}});
    let (status, accepted) = client.create_job(&job, Some("shared-key")).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    let done = client.wait_job(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let url = done["download_url"].as_str().unwrap();
    Owned {
        image,
        job: id,
        link: url.rsplit('/').next().unwrap().to_owned(),
    }
}

async fn send(client: &Client, method: &str, path: &str) -> (StatusCode, Value) {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut request = client.http.request(method.clone(), client.url(path));
    if method == Method::POST || method == Method::PUT {
        request = request.json(&json!({}));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn fill(path: &str, owned: &Owned) -> String {
    let id = if path.starts_with("/v1/jobs/") {
        &owned.job
    } else {
        &owned.image
    };
    path.replace("{id}", id).replace("{token}", &owned.link)
}

#[tokio::test]
async fn every_route_needs_a_key_and_hides_other_tenants() {
    let app = spawn_app(&[]);
    let admin = &app.client;
    let (a, b) = (
        admin.tenant_client("acme").await,
        admin.tenant_client("bolt").await,
    );
    let owned = owned_by(&a).await;
    let anonymous = Client::with_key(&admin.base, "");
    let anonymous = Client {
        http: reqwest::Client::new(),
        ..anonymous
    };
    let mut checked = 0;
    for (path, methods) in pixelmill_api::ROUTES {
        let url = fill(path, &owned);
        for method in *methods {
            let (status, body) = send(&anonymous, method, &url).await;
            let kind = access(path);
            if kind != Access::Open {
                assert_eq!(status, 401, "{method} {path} without a key: {body}");
                assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
            }
            let (status, body) = send(&b, method, &url).await;
            match kind {
                Access::TenantScoped => {
                    assert_eq!(
                        status, 404,
                        "{method} {path} with another tenant's id: {body}"
                    )
                }
                Access::Admin => assert_eq!(status, 403, "{method} {path} with a tenant key"),
                Access::Open | Access::OwnTenant => {
                    assert!(
                        ![401, 403].contains(&status.as_u16()),
                        "{method} {path}: {status}"
                    )
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} routes × methods");

    // Ids inside bodies and headers are scoped too.
    let job = json!({"image_id": owned.image, "pipeline": [], "output": {"format": "png"}});
    let (status, _) = b.create_job(&job, None).await;
    assert_eq!(status, 404, "a job on another tenant's image");
    let b_image = b.upload_ok(jpeg(16, 16)).await;
    let watermark = json!({"image_id": b_image,
        "pipeline": [{"op": "watermark", "image": owned.image}], "output": {"format": "png"}});
    let (status, body) = b.create_job(&watermark, None).await;
    let unknown = watermark
        .to_string()
        .replace(&owned.image, "img_00000000000000000000000000000000");
    let (unknown_status, _) = b
        .create_job(&serde_json::from_str(&unknown).unwrap(), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (unknown_status, Some("invalid_pipeline")),
        "another tenant's overlay is refused exactly as an unknown one: {body}"
    );
    let same_key = json!({"image_id": b_image, "pipeline": [{"op": "grayscale"}], "output": {"format": "png"}});
    let (status, job) = b.create_job(&same_key, Some("shared-key")).await;
    assert_eq!(status, 202, "an idempotency key is per tenant: {job}");
    assert_ne!(job["id"].as_str(), Some(owned.job.as_str()));
    // The link stays a bearer capability: whoever holds it downloads.
    let (status, _) = send(&b, "get", &format!("/d/{}", owned.link)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_revoked_link_answers_410_and_only_its_tenant_can_revoke_it() {
    let app = spawn_app(&[]);
    let a = app.client.tenant_client("acme").await;
    let b = app.client.tenant_client("bolt").await;
    let owned = owned_by(&a).await;
    let link = format!("/v1/links/{}", owned.link);
    assert_eq!(send(&b, "delete", &link).await.0, 404);
    assert_eq!(send(&a, "get", &format!("/d/{}", owned.link)).await.0, 200);
    let (status, body) = send(&a, "delete", &link).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(&b, "get", &format!("/d/{}", owned.link)).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (410, Some("revoked"))
    );
}

#[tokio::test]
async fn tenant_keys_cannot_reach_operator_endpoints() {
    let app = spawn_app(&[]);
    let tenant = app.client.tenant_client("acme").await;
    for (method, path) in [
        ("get", "/metrics"),
        ("get", "/v1/admin/keys"),
        ("post", "/v1/admin/keys"),
    ] {
        let (status, body) = send(&tenant, method, path).await;
        assert_eq!(
            (status.as_u16(), body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{path}"
        );
    }
    assert!(app.client.get_text("/metrics").await.contains("pixelmill_"));
    let (status, _) = send(
        &Client::with_key(&app.client.base, "key_0011223344556677.00"),
        "get",
        "/v1/filters",
    )
    .await;
    assert_eq!(status, 401, "a made-up key");
}

fn keys_cli(app: &App, args: &[&str], key: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pixelmill"))
        .arg("keys")
        .args(args)
        .env("PIXELMILL_URL", app.server.base_url())
        .env("PIXELMILL_KEY", key)
        .output()
        .expect("pixelmill keys runs")
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked_with_the_cli() {
    let app = spawn_app(&[]);
    let admin = pixelmill_testkit::ADMIN_KEY;
    let out = keys_cli(
        &app,
        &["create", "--tenant", "acme", "--label", "ci"],
        admin,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().last().unwrap().trim().to_owned();
    let id = key.split('.').next().unwrap().to_owned();
    let acme = Client::with_key(&app.client.base, &key);
    acme.upload_ok(jpeg(8, 8)).await;

    let out = keys_cli(&app, &["list"], admin);
    let listing = String::from_utf8(out.stdout).unwrap();
    let line = listing
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("the key is listed");
    assert!(
        line.contains("acme") && line.contains("tenant") && !listing.contains(&key),
        "{listing}"
    );
    let out = keys_cli(&app, &["list"], &key);
    assert!(!out.status.success(), "a tenant key cannot list keys");

    let out = keys_cli(&app, &["revoke", &id], admin);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = acme.upload(jpeg(8, 8)).await;
    assert_eq!(
        status, 401,
        "a revoked key is refused at once on the node that revoked it"
    );
}

#[tokio::test]
async fn a_node_on_embedded_defaults_writes_its_bootstrap_key_0600() {
    // Always on the embedded store, whatever the suite's pass: that is where a key is generated.
    let dir = tempfile::tempdir().unwrap();
    let server = pixelmill_testkit::Server::start(
        env!("CARGO_BIN_EXE_pixelmill"),
        dir.path(),
        &[("PIXELMILL_BOOTSTRAP_KEY", "")],
    );
    let app = (&server, Client::new(server.base_url()));
    let path = app.0.data_dir().join("bootstrap-key");
    let key = std::fs::read_to_string(&path).expect("bootstrap-key written");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let secret = app.0.data_dir().join("webhook-secret");
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !app.0.log().contains(key.trim()),
        "the key never reaches the log"
    );
    let client = Client::with_key(&app.1.base, key.trim());
    client.upload_ok(jpeg(8, 8)).await;
    assert_eq!(
        app.1.upload(jpeg(8, 8)).await.0,
        401,
        "the test key is not this node's"
    );
}

#[tokio::test]
async fn webhooks_are_signed_with_their_tenants_secrets_through_a_rotation() {
    let app = spawn_app(&[]);
    let acme = app.client.tenant_client("acme").await;
    let hooks = pixelmill_testkit::Hooks::start().await;
    let image = acme.upload_ok(jpeg(16, 16)).await;
    let secrets = |tenant: Value| -> Vec<String> {
        let list = tenant["webhook_secrets"].as_array().unwrap();
        list.iter()
            .map(|s| s["secret"].as_str().unwrap().to_owned())
            .collect()
    };
    let run = |n: usize| {
        let (acme, image, url) = (acme.clone(), image.clone(), hooks.url.clone());
        async move {
            let job = json!({"image_id": image, "pipeline": [{"op": "rotate", "degrees": 90 * n}],
                "output": {"format": "png"}, "notify": {"webhook": url}});
            let (status, body) = acme.create_job(&job, None).await;
            assert_eq!(status, 202, "{body}");
        }
    };
    let first = secrets(acme.get_json("/v1/tenant").await.1);
    run(1).await;
    let delivered = hooks.wait_for(1, Duration::from_secs(30)).await;
    assert!(
        delivered[0].signature_valid(&first[0]),
        "signed with acme's secret"
    );
    assert!(
        !delivered[0].signature_valid(crate::SECRET),
        "not with the bootstrap tenant's"
    );

    let rotated = secrets(
        acme.post_json("/v1/tenant/webhook-secrets", &json!({}))
            .await
            .1,
    );
    assert_eq!(rotated.len(), 2);
    assert_eq!(rotated[1], first[0], "the previous secret stays valid");
    run(2).await;
    let delivered = hooks.wait_for(2, Duration::from_secs(30)).await;
    assert!(delivered[1].signature_valid(&rotated[0]) && delivered[1].signature_valid(&first[0]));
}
