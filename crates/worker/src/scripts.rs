//! The worker's Lua scripts. Each touches the keys of one hash slot, all named in `KEYS` (see
//! `pubhook_core::keys`), so they run on a single Redis and on a Redis Cluster alike.

use std::sync::LazyLock;

use redis::Script;

pub(crate) static FAN_OUT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/fan_out.lua")));
pub(crate) static SUBSCRIBER_PAGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/subscriber_page.lua")));
pub(crate) static RECORD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/record.lua")));
pub(crate) static OWN_ATTEMPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/own_attempt.lua")));
pub(crate) static FAILED_COUNT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/failed_count.lua")));
pub(crate) static PROMOTE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/promote.lua")));
pub(crate) static DEAD_LETTER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/dead_letter.lua")));
pub(crate) static HAND_BACK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/hand_back.lua")));
pub(crate) static PARK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/park.lua")));
pub(crate) static PROBE_OUTCOME: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/probe_outcome.lua")));
pub(crate) static PROBE_NEXT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/probe_next.lua")));
pub(crate) static ORDER_TURN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/order_turn.lua")));
pub(crate) static ORDER_RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/order_release.lua")));
