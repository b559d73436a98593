//! `pubhook dead-letters`: the operator's hands on the jobs the workers set aside, read and
//! redriven through the store as the admin API does it.

use anyhow::bail;
use pubhook_core::store::{RedriveRefusal, Store};
use serde_json::json;

use crate::cli::DeadLetterAction;

/// Letters read per page.
const PAGE: u64 = 100;

/// Runs one `dead-letters` action.
pub async fn run(store: &Store, action: DeadLetterAction) -> anyhow::Result<()> {
    match action {
        DeadLetterAction::List => {
            for letter in all_letters(store).await? {
                println!("{}", serde_json::to_string(&letter)?);
            }
            Ok(())
        }
        DeadLetterAction::Redrive { ids, all } => {
            let ids = if all {
                all_letters(store)
                    .await?
                    .into_iter()
                    .filter(|letter| letter.redriven_at.is_none())
                    .map(|letter| letter.id)
                    .collect()
            } else {
                ids
            };
            let mut missing = 0;
            for id in ids {
                let line = match store.redrive_dead_letter(&id).await? {
                    Ok(letter) => json!({"id": id, "redriven_as": letter.redriven_as}),
                    Err(RedriveRefusal::AlreadyRedriven(letter)) => json!({
                        "id": id,
                        "already_redriven_as": letter.redriven_as,
                    }),
                    Err(RedriveRefusal::DeliveryInProgress) => {
                        json!({"id": id, "in_progress": true})
                    }
                    Err(RedriveRefusal::NotFound) => {
                        missing += 1;
                        json!({"id": id, "not_found": true})
                    }
                };
                println!("{line}");
            }
            if missing > 0 {
                bail!("{missing} dead letter id(s) not found");
            }
            Ok(())
        }
    }
}

/// Every dead letter, newest first per shard.
async fn all_letters(store: &Store) -> anyhow::Result<Vec<pubhook_core::store::DeadLetter>> {
    let mut letters = Vec::new();
    let mut start = 0;
    loop {
        let page = store.dead_letters(start, PAGE).await?;
        letters.extend(page.items);
        match page.next_start {
            Some(next) => start = next,
            None => return Ok(letters),
        }
    }
}
