//! The worker's Lua scripts. Like the store's, they build per-record key names from the prefix
//! (see `pubhook_core::keys`), because they discover ids while they run.

use std::sync::LazyLock;

use redis::Script;

pub(crate) static FAN_OUT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/fan_out.lua")));
pub(crate) static RECORD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/record.lua")));
pub(crate) static PROMOTE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/promote.lua")));
pub(crate) static DEAD_LETTER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/dead_letter.lua")));
pub(crate) static HAND_BACK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/hand_back.lua")));
pub(crate) static PARK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/park.lua")));
