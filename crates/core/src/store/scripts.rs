//! The store's Lua scripts, compiled once. `redis::Script` runs them by SHA and reloads them when
//! Redis answers NOSCRIPT, so a Redis that restarted empty needs nothing from us.

use std::sync::LazyLock;

use redis::Script;

const LIB: &str = include_str!("scripts/lib.lua");

fn with_lib(body: &str) -> Script {
    Script::new(&format!("{LIB}\n{body}"))
}

pub(super) static CREATE_ACCOUNT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/create_account.lua")));
pub(super) static UPDATE_FIELDS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/update_fields.lua")));
pub(super) static CREATE_REGISTRATION: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/create_registration.lua")));
pub(super) static SUBSCRIBE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/subscribe.lua")));
pub(super) static TRIGGER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/trigger.lua")));
pub(super) static INDEX_TRIGGERED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/index_triggered.lua")));
pub(super) static DELETE_ONE: LazyLock<Script> =
    LazyLock::new(|| with_lib(include_str!("scripts/delete_one.lua")));
pub(super) static DELETE_BATCH: LazyLock<Script> =
    LazyLock::new(|| with_lib(include_str!("scripts/delete_batch.lua")));
pub(super) static COUNT_HIT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/count_hit.lua")));
pub(super) static REPLACE_API_KEY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/replace_api_key.lua")));
pub(super) static STAGE_API_KEY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/stage_api_key.lua")));
pub(super) static PROMOTE_API_KEY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/promote_api_key.lua")));
pub(super) static UPGRADE_API_KEY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/upgrade_api_key.lua")));

/// Runs `script` with `keys` and `args` as one `EVALSHA` built in place, loading the script once
/// if Redis answers NOSCRIPT.
///
/// For calls that carry a large argument (a stored payload): `ScriptInvocation` keeps its own
/// copy of every argument and copies them again into the command it sends, so a 1 MiB payload
/// would be held twice before the packed command and the connection's buffer take two more.
pub(super) async fn invoke_once_copied<T: redis::FromRedisValue>(
    conn: &mut impl redis::aio::ConnectionLike,
    script: &Script,
    keys: &[&str],
    args: &[&[u8]],
) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len());
    for key in keys {
        cmd.arg(*key);
    }
    for arg in args {
        cmd.arg(*arg);
    }
    match cmd.query_async(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            script.prepare_invoke().load_async(conn).await?;
            cmd.query_async(conn).await
        }
        result => result,
    }
}
