//! Bounded requests over real connections: bodies too large or too slow, headers that never
//! end, trickling uploads, and animations too large to decode. Raw TCP where a well-behaved
//! client (reqwest) would not misbehave the way an attacker does.

use crate::{spawn_app, App};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

const GIB: u64 = 1 << 30;

async fn connect(app: &App) -> TcpStream {
    let addr = app.server.base_url().replace("http://", "");
    TcpStream::connect(addr).await.expect("connect to the node")
}

/// Reads one response: its status and its JSON body (`Null` when it has none). `None` when the
/// server closed the connection without answering.
async fn read_response(read: &mut OwnedReadHalf) -> Option<(u16, Value)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + length {
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = serde_json::from_slice(&buf[head_end..]).unwrap_or(Value::Null);
    Some((status, body))
}

/// A kernel figure of the node's process from /proc/<pid>/status, in KiB.
fn proc_kib(app: &App, field: &str) -> u64 {
    let pid = app.server.pid().expect("the node runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends `POST /v1/jobs` with a 1 GiB body, generated as it goes (never held here), declared by
/// Content-Length or chunked, and returns the answer, read while the body is still going out.
async fn post_gib(app: &App, chunked: bool) -> (u16, Value) {
    let (mut read, mut write) = connect(app).await.into_split();
    let framing = match chunked {
        true => "transfer-encoding: chunked".to_owned(),
        false => format!("content-length: {GIB}"),
    };
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nhost: pixelmill\r\ncontent-type: application/json\r\n{framing}\r\n\r\n"
    );
    let sender = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        let piece = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < GIB {
            if chunked {
                write
                    .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .await?;
            }
            write.write_all(&piece).await?;
            if chunked {
                write.write_all(b"\r\n").await?;
            }
            sent += piece.len() as u64;
        }
        std::io::Result::Ok(sent)
    });
    let answer = read_response(&mut read).await;
    sender.abort();
    answer.expect("the node answered before closing")
}

#[tokio::test]
async fn a_one_gib_json_body_is_refused_413_without_the_node_reading_it_into_memory() {
    let app = spawn_app(&[]);
    let c = &app.client;
    // The node has served a JSON request before the peak is taken.
    c.create_job(&serde_json::json!({}), None).await;
    let peak_before = proc_kib(&app, "VmHWM:");
    for chunked in [false, true] {
        let (status, body) = post_gib(&app, chunked).await;
        assert_eq!(status, 413, "chunked {chunked}: {body}");
        assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("65536-byte limit"), "{message}");
    }
    let grown = proc_kib(&app, "VmHWM:") - peak_before;
    assert!(
        grown < 16 * 1024,
        "the node's peak RSS grew by {grown} KiB over two 1 GiB bodies"
    );
    // It still takes ordinary JSON: the limit is on size, not on the route.
    let (status, body) = c
        .create_job(
            &serde_json::json!({"image_id": "img_x", "pipeline": []}),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let app = spawn_app(&[("PIXELMILL_HEADER_READ_TIMEOUT", "1s")]);
    let (mut read, mut write) = connect(&app).await.into_split();
    write
        .write_all(b"GET /v1/filters HTTP/1.1\r\nhost: pixelmill\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), read.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the node kept a connection with unfinished headers open for 20 s"
    );
    // The node itself is fine.
    assert_eq!(app.client.get_json("/v1/filters").await.0, 200);
}

#[tokio::test]
async fn an_upload_body_that_stops_sending_is_answered_408() {
    let app = spawn_app(&[("PIXELMILL_BODY_IDLE_TIMEOUT", "1s")]);
    let png = pixelmill_testkit::png_rgba(64, 64);
    let (mut read, mut write) = connect(&app).await.into_split();
    let head = format!(
        "POST /v1/images HTTP/1.1\r\nhost: pixelmill\r\nauthorization: Bearer {}\r\ncontent-length: {}\r\n\r\n",
        pixelmill_testkit::ADMIN_KEY,
        png.len()
    );
    write.write_all(head.as_bytes()).await.unwrap();
    write.write_all(&png[..40]).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(20), read_response(&mut read)).await;
    let (status, body) = answer.expect("answered").expect("a response");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (408, Some("request_timeout")),
        "{body}"
    );
    drop(write);
}

/// Slow clients hold connections, not upload slots: with the default 64 slots, 200 uploads that
/// trickle their bodies a byte at a time leave a normal upload room to succeed at once.
#[tokio::test]
async fn two_hundred_trickling_uploads_do_not_stop_a_normal_one() {
    let app = spawn_app(&[]);
    let png = pixelmill_testkit::png_rgba(64, 64);
    let mut trickles = Vec::new();
    for _ in 0..200 {
        let mut stream = connect(&app).await;
        let head = format!(
            "POST /v1/images HTTP/1.1\r\nhost: pixelmill\r\nauthorization: Bearer {}\r\ncontent-length: {}\r\n\r\n",
            pixelmill_testkit::ADMIN_KEY,
            png.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&png[..40]).await.unwrap();
        let rest = png[40..].to_vec();
        trickles.push(tokio::spawn(async move {
            for byte in rest {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if stream.write_all(&[byte]).await.is_err() {
                    return;
                }
            }
        }));
    }
    // Every trickling upload has been admitted and is streaming by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let upload = app.client.upload(png.clone());
    let (status, body) = tokio::time::timeout(Duration::from_secs(2), upload)
        .await
        .expect("a normal upload was answered within 2 s");
    assert_eq!(status, 201, "{body}\nlog:\n{}", app.server.log());
    assert!(
        trickles.iter().all(|t| !t.is_finished()),
        "the trickling uploads were still sending"
    );
    for trickle in trickles {
        trickle.abort();
    }
}

/// A GIF whose `frames` frames are each composed onto a `width`×`height` canvas, while the file
/// itself holds one pixel per frame: a few hundred bytes that decode to billions of pixels.
fn gif_bomb(width: u16, height: u16, frames: usize) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend(width.to_le_bytes());
    gif.extend(height.to_le_bytes());
    gif.extend([0, 0, 0]); // no global palette
    for _ in 0..frames {
        gif.extend([0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0x80]); // a 1x1 frame with a 2-colour palette
        gif.extend([0, 0, 0, 255, 255, 255]);
        gif.extend([2, 2, 0x44, 0x01, 0]); // LZW: clear, index 0, end
    }
    gif.push(0x3B);
    gif
}

#[tokio::test]
async fn an_animation_too_large_across_its_frames_is_refused_from_its_headers() {
    let app = spawn_app(&[]);
    // 30 frames of 4000x4000: each within the per-frame limit, 480 million pixels in all.
    let bomb = gif_bomb(4000, 4000, 30);
    assert!(bomb.len() < 1024);
    let (status, body) = app.client.upload(bomb).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "image_too_large");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("across all frames"), "{message}");
    // The same frames on a small canvas are a fine animation.
    assert_eq!(app.client.upload(gif_bomb(40, 40, 30)).await.0, 201);
}
