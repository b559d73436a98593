//! Signature styles: a receiver written for GitHub or for Foundries CI verifies pubhook's
//! deliveries as those services document, with the account's `secret_key` as the shared secret.

use std::time::Duration;

use hmac::{Hmac, Mac};
use pubhook_core::domain::SignatureStyles;
use pubhook_testkit::Receiver;
use serde_json::json;
use sha2::Sha256;

use crate::helpers::{test_config, World};

/// GitHub's documented check: `sha256=` + hex HMAC-SHA256 of the raw body under the secret.
/// Foundries' JobServ signs the same way and prefixes `sha256:`.
fn hex_hmac_sha256(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn receivers_of_github_and_jobserv_verify_the_styles_their_account_asked_for() {
    let world = World::new().await;
    let receiver = Receiver::start().await;
    let owner = world.account("owner", &receiver.url()).await;
    let both = world
        .account("both", &format!("{}/both", receiver.url()))
        .await;
    let github = world
        .account("github", &format!("{}/github", receiver.url()))
        .await;
    let plain = world
        .account("plain", &format!("{}/plain", receiver.url()))
        .await;
    for (who, styles) in [
        (both.id, json!(["github", "jobserv"])),
        (github.id, json!(["github"])),
    ] {
        let styles = SignatureStyles::parse(&styles).unwrap();
        world
            .store
            .update_account(who, None, Some(&styles))
            .await
            .unwrap();
    }
    let reg = world
        .registration(owner.id, "owner.build", r#"{"status":"PASSED","n":1}"#)
        .await;
    for who in [both.id, github.id, plain.id] {
        world.subscribe(who, reg).await;
    }
    let _worker = world.start_worker(test_config());
    world.trigger(reg).await;

    let posts = receiver.wait_for_posts(3, Duration::from_secs(10)).await;
    assert_eq!(posts.len(), 3);
    for post in &posts {
        let name = post.path.rsplit('/').next().unwrap();
        let secret = match name {
            "both" => &both.secret,
            "github" => &github.secret,
            _ => &plain.secret,
        };
        let hex = hex_hmac_sha256(secret, &post.body);
        let hub = post.header("x-hub-signature-256");
        let jobserv = post.header("x-jobserv-sig");
        match name {
            "both" => {
                assert_eq!(hub, Some(format!("sha256={hex}").as_str()));
                assert_eq!(jobserv, Some(format!("sha256:{hex}").as_str()));
            }
            "github" => {
                assert_eq!(hub, Some(format!("sha256={hex}").as_str()));
                assert_eq!(jobserv, None);
            }
            _ => {
                assert_eq!(hub, None);
                assert_eq!(jobserv, None);
            }
        }
        // Another secret does not verify: the check can fail.
        assert_ne!(hex, hex_hmac_sha256("another secret", &post.body));
        assert!(post.header("pywebhooks-signature").is_some(), "{name}");
        assert!(post.header("webhook-signature").is_some(), "{name}");
    }
}
