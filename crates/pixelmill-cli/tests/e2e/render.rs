use crate::{decode, spawn_app};
use pixelmill_testkit::jpeg;
use reqwest::StatusCode;
use std::time::Duration;

fn render_path(image: &str, query: &str) -> String {
    format!("/v1/images/{image}/render?{query}")
}

/// Renders on the fly with the right type and size, then serves the memory tier, honours
/// If-None-Match, negotiates `format=auto` from Accept and refuses bad requests with their codes.
#[tokio::test]
async fn renders_caches_negotiates_and_refuses_bad_requests() {
    let app = spawn_app(&[]);
    let c = app.client.clone();
    let image = c.upload_ok(jpeg(400, 300)).await;
    let url = c.url(&render_path(
        &image,
        "ops=resize:width=100|grayscale&format=png",
    ));

    let first = c.http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "image/png");
    assert_eq!(first.headers()["x-pixelmill-cache"], "miss");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let bytes = first.bytes().await.unwrap();
    let out = decode(&bytes).to_rgba8();
    assert_eq!(out.dimensions(), (100, 75));
    assert!(
        out.pixels().all(|p| p[0] == p[1] && p[1] == p[2]),
        "grayscale"
    );

    let again = c.http.get(&url).send().await.unwrap();
    assert_eq!(again.headers()["x-pixelmill-cache"], "memory");
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(again.bytes().await.unwrap(), bytes);
    let not_modified = c
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);

    let auto = c.url(&render_path(&image, "ops=resize:width=50&format=auto"));
    let mut etags = Vec::new();
    for (accept, expected) in [
        ("image/avif,image/webp,*/*;q=0.8", "image/avif"),
        ("image/webp,*/*;q=0.8", "image/webp"),
        ("", "image/jpeg"),
    ] {
        let negotiated = c
            .http
            .get(&auto)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(negotiated.headers()["content-type"], expected, "{accept}");
        assert_eq!(negotiated.headers()["vary"], "accept");
        etags.push(negotiated.headers()["etag"].clone());
        let bytes = negotiated.bytes().await.unwrap();
        if expected == "image/avif" {
            assert_eq!(&bytes[4..12], b"ftypavif");
        } else {
            assert_eq!(decode(&bytes).width(), 50, "{expected}");
        }
    }
    assert!(etags[0] != etags[1] && etags[1] != etags[2], "{etags:?}");

    let progressive = c
        .http
        .get(c.url(&render_path(
            &image,
            "ops=resize:width=50&format=jpeg&progressive=true",
        )))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        progressive.windows(2).any(|w| w == [0xFF, 0xC2]),
        "SOF2 marker"
    );

    for (query, status, code) in [
        ("ops=resize:width=0", 422, "invalid_pipeline"),
        ("ops=explode", 422, "invalid_pipeline"),
        ("ops=resize:width=10&format=tga", 422, "invalid_pipeline"),
        ("ops=resize:width=10&quality=500", 400, "bad_request"),
    ] {
        let (got, body) = c.get_json(&render_path(&image, query)).await;
        assert_eq!(
            (got.as_u16(), body["error"]["code"].as_str()),
            (status, Some(code)),
            "{query}: {body}"
        );
    }
    let (status, body) = c
        .get_json(&render_path(
            "img_00000000000000000000000000000000",
            "ops=grayscale",
        ))
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

/// 100 identical concurrent requests compute the rendition once and all get the same bytes.
#[tokio::test]
async fn identical_concurrent_renders_compute_once() {
    let app = spawn_app(&[("PIXELMILL_RENDER_STORE", "false")]);
    let c = app.client.clone();
    let image = c.upload_ok(jpeg(1200, 900)).await;
    let url = c.url(&render_path(
        &image,
        "ops=blur:sigma=4|resize:width=300&format=webp",
    ));
    let requests = (0..100).map(|_| {
        let (http, url) = (c.http.clone(), url.clone());
        tokio::spawn(async move {
            let response = http.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let source = response.headers()["x-pixelmill-cache"]
                .to_str()
                .unwrap()
                .to_owned();
            (source, response.bytes().await.unwrap())
        })
    });
    let results: Vec<_> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(results.iter().all(|(_, b)| *b == results[0].1));
    let computed = results.iter().filter(|(s, _)| s == "miss").count();
    assert_eq!(computed, 1, "the others are `coalesced` or `memory`");
    let metrics = c.get_text("/metrics").await;
    assert!(
        metrics.contains("pixelmill_render_served_total{source=\"miss\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("pixelmill_render_compute_seconds_count 1\n"));
}

/// Without a key, a render URL must name its tenant and be signed with one of its two current
/// render keys, and not be past its `exp`.
#[tokio::test]
async fn signed_render_urls_are_enforced_per_tenant_with_rotation() {
    let app = spawn_app(&[]);
    let acme = app.client.tenant_client("acme").await;
    let bolt = app.client.tenant_client("bolt").await;
    let image = acme.upload_ok(jpeg(64, 48)).await;
    let anonymous = reqwest::Client::new();
    let fetch = |path: String| {
        let (anonymous, url) = (anonymous.clone(), acme.url(&path));
        async move { anonymous.get(url).send().await.unwrap() }
    };
    let render_key = |client: &pixelmill_testkit::Client| {
        let client = client.clone();
        async move {
            let (_, tenant) = client.get_json("/v1/tenant").await;
            tenant["render_keys"][0]["secret"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let signed = |key: &str, query: &str| {
        let path = render_path(&image, query);
        let sig = pixelmill_api::sign_render_url(key.as_bytes(), &path);
        format!("{path}&sig={sig}")
    };
    let first = render_key(&acme).await;
    let query = "ops=resize:width=32&format=png&tenant=acme";

    let unsigned = fetch(render_path(&image, query)).await;
    assert_eq!(unsigned.status(), 401);
    let body: serde_json::Value = unsigned.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("sig"),
        "{body}"
    );
    assert_eq!(
        fetch(render_path(&image, "ops=resize:width=32"))
            .await
            .status(),
        401
    );
    assert_eq!(fetch(signed(&first, query)).await.status(), 200);
    let tampered = signed(&first, query).replace("width=32", "width=33");
    assert_eq!(fetch(tampered).await.status(), 401);
    let later = chrono_secs() + 3600;
    let expiring = format!("{query}&exp={later}");
    assert_eq!(fetch(signed(&first, &expiring)).await.status(), 200);
    let past = format!("{query}&exp={}", chrono_secs() - 1);
    assert_eq!(
        fetch(signed(&first, &past)).await.status(),
        401,
        "past its exp"
    );
    // Another tenant's key signs nothing of acme's, and cannot pose as acme.
    let other = render_key(&bolt).await;
    assert_eq!(fetch(signed(&other, query)).await.status(), 401);
    let as_bolt = query.replace("tenant=acme", "tenant=bolt");
    assert_eq!(
        fetch(signed(&other, &as_bolt)).await.status(),
        404,
        "acme's image is not bolt's"
    );

    // Rotation: the previous key keeps working until the next rotation.
    let (status, _) = acme
        .post_json("/v1/tenant/render-keys", &serde_json::json!({}))
        .await;
    assert_eq!(status, 200);
    let second = render_key(&acme).await;
    assert_ne!(second, first);
    assert_eq!(fetch(signed(&second, query)).await.status(), 200);
    assert_eq!(fetch(signed(&first, query)).await.status(), 200);
    acme.post_json("/v1/tenant/render-keys", &serde_json::json!({}))
        .await;
    assert_eq!(
        fetch(signed(&first, query)).await.status(),
        401,
        "two rotations retire a key"
    );
    assert_eq!(fetch(signed(&second, query)).await.status(), 200);
}

fn chrono_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `300` and `300.0`, or a default spelled out, are one request: one cache entry, one ETag.
#[tokio::test]
async fn equal_requests_in_other_spellings_share_one_cache_entry() {
    let app = spawn_app(&[]);
    let c = app.client.clone();
    let image = c.upload_ok(jpeg(120, 80)).await;
    let get = |query: &str| {
        let url = c.url(&render_path(&image, query));
        let http = c.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let first = get("ops=resize:width=60&format=png").await;
    assert_eq!(first.headers()["x-pixelmill-cache"], "miss");
    let etag = first.headers()["etag"].clone();
    for spelling in [
        "ops=resize:width=60.0&format=png",
        "ops=resize:width=60.000&format=png",
    ] {
        let again = get(spelling).await;
        assert_eq!(again.status(), 200, "{spelling}");
        assert_eq!(again.headers()["x-pixelmill-cache"], "memory", "{spelling}");
        assert_eq!(again.headers()["etag"], etag, "{spelling}");
    }
}

/// A render whose estimated cost is over the threshold is answered 202 with a job that completes.
#[tokio::test]
async fn a_render_too_heavy_to_answer_inline_becomes_a_job() {
    let app = spawn_app(&[("PIXELMILL_RENDER_MAX_COST", "1000")]);
    let c = app.client.clone();
    let image = c.upload_ok(jpeg(200, 100)).await;
    let response = c
        .http
        .get(c.url(&render_path(&image, "ops=resize:width=50&format=png")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert!(response.headers().contains_key("location"));
    let job: serde_json::Value = response.json().await.unwrap();
    let done = c
        .wait_job(job["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"]["width"], 50, "{done}");

    // Asking again, or in another spelling, never queues the same work twice.
    let mut ids = std::collections::BTreeSet::new();
    for query in [
        "ops=resize:width=50&format=png",
        "ops=resize:width=50.0&format=png",
    ] {
        let again = c
            .http
            .get(c.url(&render_path(&image, query)))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 202);
        let body: serde_json::Value = again.json().await.unwrap();
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        vec![job["id"].as_str().unwrap().to_owned()]
    );
}

/// Renditions are kept in the blob store too, so a restarted node serves them without computing.
#[tokio::test]
async fn the_blob_store_tier_survives_a_restart() {
    let mut app = spawn_app(&[]);
    let image = app.client.upload_ok(jpeg(300, 200)).await;
    let path = render_path(&image, "ops=sepia&format=jpeg&quality=70");
    let first = app
        .client
        .http
        .get(app.client.url(&path))
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["x-pixelmill-cache"], "miss");
    let bytes = first.bytes().await.unwrap();
    // The second-tier write happens after the response; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.restart();
    let c = &app.client;
    let again = c.http.get(c.url(&path)).send().await.unwrap();
    assert_eq!(again.headers()["x-pixelmill-cache"], "store");
    assert_eq!(again.bytes().await.unwrap(), bytes);
}

/// A rendition kept in the blob store past `RENDER_STORE_TTL` is swept: after a restart (which
/// empties the memory tier) the same URL is rendered again instead of read from the store.
#[tokio::test]
async fn renditions_past_their_time_in_the_store_are_swept() {
    let mut app = spawn_app(&[
        ("PIXELMILL_RENDER_STORE_TTL", "1s"),
        ("PIXELMILL_SWEEP_INTERVAL", "200ms"),
    ]);
    let image = app.client.upload_ok(jpeg(300, 200)).await;
    let path = render_path(&image, "ops=sepia&format=jpeg&quality=70");
    let first = app
        .client
        .http
        .get(app.client.url(&path))
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["x-pixelmill-cache"], "miss");
    let bytes = first.bytes().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.restart();
    let c = &app.client;
    let again = c.http.get(c.url(&path)).send().await.unwrap();
    assert_eq!(again.headers()["x-pixelmill-cache"], "miss");
    assert_eq!(
        again.bytes().await.unwrap(),
        bytes,
        "rendered again, to the same bytes"
    );
}

/// Over the concurrency limit and its wait queue, renders are shed with 503 + Retry-After
/// instead of piling up; the admitted ones complete.
#[tokio::test]
async fn renders_beyond_the_limit_are_shed_cleanly() {
    let app = spawn_app(&[
        ("PIXELMILL_RENDER_CONCURRENCY", "1"),
        ("PIXELMILL_RENDER_QUEUE", "2"),
        ("PIXELMILL_RENDER_STORE", "false"),
        ("PIXELMILL_RENDER_DEADLINE", "120s"),
    ]);
    let c = app.client.clone();
    let image = c.upload_ok(jpeg(400, 300)).await;
    // Distinct sigmas, so single-flight cannot merge them.
    let requests = (0..8).map(|i| {
        let (http, url) = (
            c.http.clone(),
            c.url(&render_path(
                &image,
                &format!("ops=blur:sigma={}&format=png", 8 + i),
            )),
        );
        tokio::spawn(async move {
            let response = http.get(&url).send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").is_some();
            let body = response.text().await.unwrap_or_default();
            assert!(
                status == 200 || body.contains("waiting"),
                "{status}: {body}"
            );
            (status, retry_after)
        })
    });
    let results: Vec<_> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let shed = results
        .iter()
        .filter(|(s, retry)| *s == 503 && *retry)
        .count();
    assert_eq!(ok + shed, 8, "{results:?}");
    assert!(ok >= 1 && shed >= 1, "{results:?}");
}

/// PNG `compression` changes the bytes but not the pixels (and so the cache key), options a
/// format cannot honour are refused, and an AVIF rendered here uploads again as an AVIF original.
#[tokio::test]
async fn png_compression_levels_and_avif_uploads() {
    let app = spawn_app(&[]);
    let c = app.client.clone();
    let image = c.upload_ok(jpeg(320, 240)).await;
    let render = |query: &'static str| {
        let c = c.clone();
        let url = c.url(&render_path(&image, query));
        async move {
            let response = c.http.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{query}");
            response.bytes().await.unwrap()
        }
    };
    let stored = render("format=png&compression=0").await;
    let small = render("format=png&compression=9").await;
    assert!(
        small.len() < stored.len(),
        "{} vs {}",
        small.len(),
        stored.len()
    );
    assert_eq!(decode(&small).to_rgba8(), decode(&stored).to_rgba8());

    for (query, status, code) in [
        ("format=jpeg&compression=6", 422, "invalid_pipeline"),
        ("format=png&compression=10", 422, "invalid_pipeline"),
        ("format=gif&icc=keep", 422, "invalid_pipeline"),
        ("format=png&icc=p3", 400, "bad_request"),
    ] {
        let (got, body) = c.get_json(&render_path(&image, query)).await;
        assert_eq!(
            (got.as_u16(), body["error"]["code"].as_str()),
            (status, Some(code)),
            "{query}: {body}"
        );
    }

    let avif = render("ops=resize:width=64&format=avif").await;
    let (status, body) = c.upload(avif.to_vec()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (&body["format"], &body["width"], &body["height"]),
        (&"avif".into(), &64.into(), &48.into())
    );
}

/// `format=auto` offers AVIF only where its slow encoder fits the render budget: here a budget
/// that a small WebP fits and the same AVIF does not, so an AVIF-accepting client gets WebP.
#[tokio::test]
async fn auto_skips_avif_when_its_encode_would_not_fit_the_render_budget() {
    let app = spawn_app(&[("PIXELMILL_RENDER_MAX_COST", "2000000")]);
    let c = app.client.clone();
    let image = c.upload_ok(jpeg(400, 300)).await;
    let auto = c.url(&render_path(&image, "ops=resize:width=50&format=auto"));
    let response = c
        .http
        .get(&auto)
        .header("accept", "image/avif,image/webp,*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/webp");
    // Asked for by name, the same AVIF is over budget and becomes a job.
    let named = c.url(&render_path(&image, "ops=resize:width=50&format=avif"));
    assert_eq!(c.http.get(&named).send().await.unwrap().status(), 202);
}
