//! The web console in a real browser: `pubhook standalone` with an admin, an owner whose
//! username holds HTML, a registration whose event holds script text, two subscribers (one
//! endpoint answers 200, the other 500) and a few triggers; then `tests/browser/console.test.mjs`
//! drives Debian's chromium through it (sign-in, paging, a trigger's attempts, redelivery, the
//! admin views, `/docs`) and saves screenshots to `target/ci-artifacts/`.
//!
//! It needs `node`, `chromium` (or `PUBHOOK_CHROMIUM`) and `npm ci` run in `tests/browser`.
//! Without them it says what is missing and passes, except with `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pubhook_testkit::{random_prefix, shared_storage, Receiver, Reply};
use serde_json::json;

use crate::support::{
    eventually, free_port, pubhook_on, run, stdout_json, wait_until_up, Api, Process, CREATED, GET,
    OK, POST,
};

/// Triggers made before the browser looks: enough for three pages of two.
const TRIGGERS: usize = 5;
/// How long the deliveries of those triggers may take to be on record.
const DELIVERY_WAIT: Duration = Duration::from_secs(20);
/// The owner's username and the event name: HTML and script text that must stay text.
const OWNER: &str = "<img/src=x/onerror=window.__xss=1>";
const EVENT: &str = "<script>window.__xss=2</script> release";

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The browser and its driver, or why they cannot be used.
fn browser_tools(root: &Path) -> Result<(PathBuf, PathBuf), String> {
    let node_runs = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !node_runs {
        return Err("`node` is not on PATH (Debian: apt-get install nodejs npm)".into());
    }
    let chromium = std::env::var_os("PUBHOOK_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Err(format!(
            "{} is missing (Debian: apt-get install chromium; or set PUBHOOK_CHROMIUM)",
            chromium.display()
        ));
    }
    let browser_tests = root.join("tests/browser");
    if !browser_tests.join("node_modules/playwright-core").exists() {
        return Err("playwright-core is not installed: run `npm ci` in tests/browser".into());
    }
    Ok((chromium, browser_tests))
}

#[tokio::test]
async fn the_console_works_in_a_real_browser_and_shows_user_input_as_text() {
    let root = repository_root();
    let (chromium, browser_tests) = match browser_tools(&root) {
        Ok(tools) => tools,
        Err(missing) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("the browser test cannot run in CI: {missing}")
        }
        Err(missing) => {
            eprintln!("SKIPPED the console's browser test: {missing}");
            return;
        }
    };

    let storage = shared_storage().await;
    let prefix = random_prefix();
    let admin = stdout_json(&run(pubhook_on(storage, &prefix).arg("init")));
    let port = free_port();
    let _standalone = Process::spawn(
        pubhook_on(storage, &prefix)
            .env("PUBHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env("PUBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
            .arg("standalone"),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    let api = Api::new(&base);

    let up = Receiver::start().await;
    let down = Receiver::start().await;
    down.set_post_default(Reply::new(500));
    let owner_key = api.create_account(OWNER, &up.url()).await;
    let up_key = api.create_account("subscriber-up", &up.url()).await;
    let down_key = api.create_account("subscriber-down", &down.url()).await;
    let owner = Some((OWNER, owner_key.as_str()));
    let registration = json!({
        "event": EVENT,
        "description": "<b>bold</b> description",
        "event_data": {"html": "<i>payload</i>"},
    });
    let registration = api.register(owner, registration).await;
    for subscriber in [("subscriber-up", &up_key), ("subscriber-down", &down_key)] {
        let (name, key) = subscriber;
        let path = format!("/v1/webhook/subscription/{registration}");
        api.expect(CREATED, POST, &path, Some((name, key)), None)
            .await;
    }
    let mut triggers = Vec::new();
    for _ in 0..TRIGGERS {
        let path = format!("/v1/webhook/triggered/{registration}");
        let triggered = api.expect(CREATED, POST, &path, owner, None).await;
        triggers.push(triggered["id"].as_str().expect("id").to_owned());
    }
    // The first trigger's two attempts are on record before the browser opens it.
    let first = format!("/v1/webhook/triggered/{}?attempts=10", triggers[0]);
    let recorded = eventually(DELIVERY_WAIT, || async {
        let body = api.expect(OK, GET, &first, owner, None).await;
        body["attempts"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    assert!(recorded, "the first trigger's attempts were not recorded");

    let artifacts = root.join("target/ci-artifacts");
    let fixture = json!({
        "base": base,
        "chromium": chromium,
        "artifacts": artifacts,
        "owner": {"username": OWNER, "api_key": owner_key},
        "admin": {"username": admin["username"], "api_key": admin["api_key"]},
        "event": EVENT,
        "triggers": triggers,
    });
    // The receivers run on this test's runtime: the browser run waits on a blocking thread.
    let run_browser = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("console.test.mjs")
            .current_dir(&browser_tests)
            .env("PUBHOOK_CONSOLE_FIXTURE", fixture.to_string())
            .output()
            .expect("node runs")
    });
    let output = run_browser.await.expect("the browser run finishes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(
        artifacts.join("console.png").exists(),
        "no screenshot was saved"
    );
}
