//! `pixelmill keys`: an operator's API keys, through a running node's admin API.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

/// The node an operator command goes to, and the admin key it sends.
#[derive(Args)]
pub struct AdminNode {
    /// A node's base URL, e.g. http://127.0.0.1:8080
    #[arg(long, env = "PIXELMILL_URL")]
    url: String,
    /// An admin API key (the bootstrap key, or one made with `keys create --admin`)
    #[arg(long, env = "PIXELMILL_KEY", hide_env_values = true)]
    key: String,
}

impl AdminNode {
    /// Sends one admin request and answers its JSON body, or fails with the node's error.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = reqwest::Client::new()
            .request(method, &url)
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", self.url))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("the node answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("the node answered {text:?}, not JSON"))
    }
}

#[derive(Subcommand)]
pub enum KeysAction {
    /// Create a key for a tenant (created if new); prints the key alone on the last line, once.
    Create {
        #[arg(long)]
        tenant: String,
        /// An operator key: may also create, list and revoke keys, drain regions, read /metrics
        #[arg(long)]
        admin: bool,
        /// What the key is for
        #[arg(long)]
        label: Option<String>,
    },
    /// List every key (never the keys themselves): id, tenant, role, label, created, revoked.
    List,
    /// Revoke a key by its id (key_…); refused everywhere within 30 s, on the node asked at once.
    Revoke { id: String },
}

pub async fn keys(node: AdminNode, action: KeysAction) -> Result<()> {
    match action {
        KeysAction::Create {
            tenant,
            admin,
            label,
        } => {
            let body = json!({"tenant": tenant, "admin": admin, "label": label});
            let created = node
                .send(Method::POST, "/v1/admin/keys", Some(body))
                .await?;
            let key = created["key"]
                .as_str()
                .context("the node answered no key")?;
            eprintln!(
                "created {} for tenant {} ({}); it is shown only now:",
                created["id"].as_str().unwrap_or("?"),
                created["tenant"].as_str().unwrap_or("?"),
                created["role"].as_str().unwrap_or("?"),
            );
            println!("{key}");
        }
        KeysAction::List => {
            let listed = node.send(Method::GET, "/v1/admin/keys", None).await?;
            println!(
                "{:<22} {:<20} {:<7} {:<25} {:<25} LABEL",
                "ID", "TENANT", "ROLE", "CREATED", "REVOKED"
            );
            for key in listed["keys"].as_array().into_iter().flatten() {
                let field = |name: &str| key[name].as_str().unwrap_or("-").to_owned();
                println!(
                    "{:<22} {:<20} {:<7} {:<25} {:<25} {}",
                    field("id"),
                    field("tenant"),
                    field("role"),
                    field("created_at"),
                    field("revoked_at"),
                    field("label"),
                );
            }
        }
        KeysAction::Revoke { id } => {
            let revoked = node
                .send(Method::DELETE, &format!("/v1/admin/keys/{id}"), None)
                .await?;
            println!(
                "revoked {} (tenant {})",
                id,
                revoked["tenant"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}
