//! Secret rotation with a grace period: after a reset, deliveries carry a Standard Webhooks
//! signature by the new secret and one by the old, until the grace period ends. Checked with the
//! official `standardwebhooks` library from PyPI, as a receiver would.

use std::time::Duration;

use pubhook_core::domain::SecretKey;
use pubhook_core::signing::{verify_pywebhooks_signature, webhook_secret};
use pubhook_testkit::python::run_checker;
use pubhook_testkit::{Receiver, RecordedRequest};

use crate::helpers::{test_config, World};

/// Prints, for each secret given after the body file and the headers, whether
/// `standardwebhooks.Webhook(secret).verify` accepts the request.
const VERIFY: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
body = open(sys.argv[1], "rb").read()
headers = json.loads(sys.argv[2])
results = []
for secret in sys.argv[3:]:
    try:
        Webhook(secret).verify(body, headers)
        results.append(True)
    except WebhookVerificationError:
        results.append(False)
print(json.dumps(results))
"#;

/// Which of `secrets` (raw account secrets) the official library verifies `post` with; `None`
/// when the library is not installed outside CI.
fn verified_by(post: &RecordedRequest, secrets: &[&str]) -> Option<Vec<bool>> {
    let dir = std::env::temp_dir().join(format!("pubhook-grace-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = dir.join("body");
    std::fs::write(&body, &post.body).unwrap();
    let headers: serde_json::Map<String, serde_json::Value> = post
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone().into()))
        .collect();
    let headers = serde_json::Value::Object(headers).to_string();
    let whsecs: Vec<String> = secrets.iter().map(|s| webhook_secret(s)).collect();
    let mut args = vec![body.to_str().unwrap(), headers.as_str()];
    args.extend(whsecs.iter().map(String::as_str));
    let printed = run_checker(&["standardwebhooks"], VERIFY, &args);
    std::fs::remove_dir_all(&dir).unwrap();
    printed.map(|out| serde_json::from_str(&out).unwrap())
}

fn signatures(post: &RecordedRequest) -> usize {
    post.header("webhook-signature").unwrap().split(' ').count()
}

#[tokio::test]
async fn during_the_grace_period_receivers_verify_with_the_old_secret_or_the_new() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"n": 1}"#).await;
    let new_secret = SecretKey::generate();
    world
        .store
        .replace_secret_key(sub.id, &new_secret, Duration::from_secs(3600))
        .await
        .unwrap();
    let _worker = world.start_worker(test_config());
    world.trigger(reg).await;
    let posts = receiver.wait_for_posts(1, Duration::from_secs(10)).await;
    let post = &posts[0];
    assert_eq!(signatures(post), 2, "v1,<new> v1,<old>");
    let (old, new) = (sub.secret.as_str(), new_secret.expose());
    let stranger = SecretKey::generate();
    if let Some(verified) = verified_by(post, &[new, old, stranger.expose()]) {
        assert_eq!(verified, [true, true, false], "new, old, a stranger's");
    }
    // `pywebhooks-signature` is by the new secret only, as PyWebhooks signs after a reset.
    let legacy = post.header("pywebhooks-signature").unwrap();
    assert!(verify_pywebhooks_signature(new, &post.body, legacy));
    assert!(!verify_pywebhooks_signature(old, &post.body, legacy));
}

#[tokio::test]
async fn after_the_grace_period_or_without_one_only_the_new_secret_signs() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let (reg, sub) = world.one_subscriber(&receiver.url(), r#"{"n": 2}"#).await;
    let _worker = world.start_worker(test_config());
    let brief = SecretKey::generate();
    world
        .store
        .replace_secret_key(sub.id, &brief, Duration::from_millis(100))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    world.trigger(reg).await;
    let at_once = SecretKey::generate();
    let posts = receiver.wait_for_posts(1, Duration::from_secs(10)).await;
    world
        .store
        .replace_secret_key(sub.id, &at_once, Duration::ZERO)
        .await
        .unwrap();
    world.trigger(reg).await;
    let posts = [
        posts[0].clone(),
        receiver.wait_for_posts(2, Duration::from_secs(10)).await[1].clone(),
    ];
    for (post, current, before) in [
        (&posts[0], brief.expose(), sub.secret.as_str()),
        (&posts[1], at_once.expose(), brief.expose()),
    ] {
        assert_eq!(signatures(post), 1);
        if let Some(verified) = verified_by(post, &[current, before]) {
            assert_eq!(
                verified,
                [true, false],
                "the current secret, the one it replaced"
            );
        }
    }
}
