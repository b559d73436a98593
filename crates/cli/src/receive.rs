//! `pubhook receive`: a development endpoint, the Rust counterpart of the Flask and Sinatra
//! examples of PyWebhooks' README. It answers the echo challenge and key-reset GETs, verifies
//! both signatures of every delivery with the account's secret key, and prints each delivery
//! with its verdict. A secret-key reset updates the key it verifies with.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use pubhook_core::signing::{verify_pywebhooks_signature, verify_standard_signature};
use serde_json::json;

/// Longest body printed, in bytes.
const PRINTED_BODY_BYTES: usize = 2000;
/// Standard Webhooks receivers refuse timestamps further than this from their clock.
const TIMESTAMP_TOLERANCE_SECS: i64 = 300;

struct Receiver {
    secret: Mutex<Option<String>>,
}

/// Serves until `shutdown` completes.
pub async fn run(
    bind: SocketAddr,
    secret: Option<String>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let state = web::Data::new(Receiver {
        secret: Mutex::new(secret),
    });
    let verifying = state.secret.lock().map(|s| s.is_some()).unwrap_or(false);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .default_service(web::to(handle))
    })
    .workers(1)
    .disable_signals()
    .bind(bind)?
    .run();
    say(&format!(
        "pubhook receive: listening on http://{bind}/ ({})",
        if verifying {
            "verifying signatures"
        } else {
            "not verifying: pass --secret <secret_key> to check signatures"
        }
    ));
    let handle = server.handle();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        () = shutdown => {
            let stopped = handle.stop(true);
            server.await?;
            stopped.await;
        }
    }
    Ok(())
}

async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<Receiver>) -> HttpResponse {
    let query: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let find = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if req.method() == actix_web::http::Method::POST {
        return delivery(&req, &body, &state);
    }
    if let Some(echo) = find("echo") {
        say(&format!("echo challenge answered ({})", req.path()));
        return HttpResponse::Ok().json(json!({ "echo": echo }));
    }
    if let Some(key) = find("secret_key") {
        say(&format!("new secret_key: {key} (now verifying with it)"));
        *state.secret.lock().unwrap_or_else(|p| p.into_inner()) = Some(key);
        return HttpResponse::Ok().json(json!({}));
    }
    if let Some(key) = find("api_key") {
        say(&format!("new api_key: {key}"));
        return HttpResponse::Ok().json(json!({}));
    }
    HttpResponse::Ok().json(json!({}))
}

fn delivery(req: &HttpRequest, body: &[u8], state: &Receiver) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let event = String::from_utf8_lossy(
        req.headers()
            .get("event")
            .map(|v| v.as_bytes())
            .unwrap_or_default(),
    )
    .into_owned();
    let webhook_id = header("webhook-id");
    let timestamp: Option<i64> = header("webhook-timestamp").parse().ok();
    let secret = state
        .secret
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let (legacy, standard) = match (&secret, timestamp) {
        (None, _) => ("unchecked", "unchecked"),
        (Some(secret), timestamp) => {
            let legacy = verify_pywebhooks_signature(secret, body, &header("pywebhooks-signature"));
            let standard = timestamp.is_some_and(|ts| {
                verify_standard_signature(
                    secret,
                    &webhook_id,
                    ts,
                    body,
                    &header("webhook-signature"),
                )
            });
            (verdict(legacy), verdict(standard))
        }
    };
    let now = pubhook_core::domain::now_seconds();
    let stale = timestamp.is_some_and(|ts| (now - ts).abs() > TIMESTAMP_TOLERANCE_SECS);
    let shown = &body[..body.len().min(PRINTED_BODY_BYTES)];
    say(&format!(
        "delivery {path} event={event:?} webhook-id={webhook_id} pywebhooks-signature={legacy} \
         webhook-signature={standard}{stale}\n  {body}{more}",
        path = req.path(),
        stale = if stale {
            " (timestamp more than 5 minutes off)"
        } else {
            ""
        },
        body = String::from_utf8_lossy(shown),
        more = if body.len() > shown.len() { " …" } else { "" },
    ));
    if legacy == "BAD" || standard == "BAD" {
        return HttpResponse::BadRequest().json(json!({ "error": "signature mismatch" }));
    }
    HttpResponse::Ok().json(json!({}))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "BAD"
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
