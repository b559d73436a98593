//! The store's Lua scripts, compiled once. `redis::Script` runs them by SHA and reloads them when
//! Redis answers NOSCRIPT, so a Redis that restarted empty needs nothing from us.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($(#[$doc:meta])* $name:ident, $file:literal) => {
        $(#[$doc])*
        pub(super) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("scripts/", $file))));
    };
}

script!(UPDATE_FIELDS, "update_fields.lua");
script!(
    /// A secret-key reset with its grace period (see `super::accounts`).
    ROTATE_SECRET,
    "rotate_secret.lua"
);
script!(TRIGGER, "trigger.lua");
script!(INDEX_TRIGGERED, "index_triggered.lua");
script!(
    /// Dead-letter redrive (see `super::redrive`).
    FIND_DEAD_LETTER,
    "find_dead_letter.lua"
);
script!(REDRIVE, "redrive.lua");
script!(
    /// Manual redeliveries (see `super::redeliveries`).
    QUEUE_REDELIVERIES,
    "queue_redeliveries.lua"
);
script!(
    /// The steps of creates and deletes that span hash slots (see `super::steps`).
    CREATE_RECORD,
    "create_record.lua"
);
script!(COMMIT_RECORD, "commit_record.lua");
script!(
    /// One-time keys of triggers and registrations' hook keys (see `super::claims`).
    CLAIM,
    "claim.lua"
);
script!(RELEASE_CLAIM, "release_claim.lua");
script!(SET_HOOK_KEY, "set_hook_key.lua");
script!(TOMBSTONE, "tombstone.lua");
script!(LINK_CHILD, "link_child.lua");
script!(LINK_SUBSCRIBER, "link_subscriber.lua");
script!(UNLINK_SUBSCRIBER, "unlink_subscriber.lua");
script!(REMOVE_ADMIN, "remove_admin.lua");
script!(RELEASE_USERNAME, "release_username.lua");
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
        Err(e) if is_no_script(&e) => {
            script.prepare_invoke().load_async(conn).await?;
            cmd.query_async(conn).await
        }
        result => result,
    }
}

/// Whether Redis answered that it does not have the script (after a restart or `SCRIPT FLUSH`,
/// or on a cluster node that never ran it): loading it and sending again is the cure.
pub fn is_no_script(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// Runs `invocations` as one pipeline on one Redis, which runs them in the order given: one
/// round trip for steps that must happen in order but need nothing from each other's answers.
///
/// A pipeline of `EVALSHA`s cannot reload a script mid-way, so after a Redis restart one of them
/// may answer NOSCRIPT while the ones after it ran. Each one that did is run again alone (which
/// loads it), in order; the others are not repeated. Not for a cluster, where the steps go to
/// different masters and a pipeline does not keep their order.
pub(super) async fn invoke_in_order(
    conn: &mut impl redis::aio::ConnectionLike,
    invocations: &[&redis::ScriptInvocation<'_>],
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for invocation in invocations {
        pipe.invoke_script(invocation);
    }
    let replies: Vec<redis::RedisResult<redis::Value>> =
        pipe.ignore_errors().query_async(conn).await?;
    for (invocation, reply) in invocations.iter().zip(replies) {
        match reply {
            Err(e) if is_no_script(&e) => {
                let _: redis::Value = invocation.invoke_async(conn).await?;
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    Ok(())
}
