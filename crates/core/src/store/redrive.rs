//! Dead-letter redrive: an admin puts a job the workers set aside back on its queue shard, once.
//!
//! A letter is found by its id (`<shard>-<stream id>`) in its shard's list, then one script in
//! the shard's slot checks that the letter is still as found, queues its job again under a new
//! stream id, marks the letter (`redriven_at`, `redriven_as`) and gives the trigger's summary
//! back the deliveries the letter had counted as failed. A letter already redriven is refused,
//! so one letter never queues its job twice.

use tracing::instrument;

use super::deliveries::DeadLetter;
use super::{scripts, Store, StoreError};
use crate::domain::now_seconds;
use crate::keys::Shard;
use crate::queue::Job;

/// Why a dead letter was not redriven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveRefusal {
    /// No letter has that id (never, or trimmed by the list's cap since).
    NotFound,
    /// It was redriven before; the letter as it is now.
    AlreadyRedriven(Box<DeadLetter>),
    /// It is a manual redelivery, and its delivery is being redelivered again meanwhile.
    DeliveryInProgress,
}

/// How often a redrive looks for its letter again when newer letters moved it meanwhile.
const FIND_TRIES: usize = 5;

impl Store {
    /// Puts the job of the dead letter `id` back on its queue shard and returns the letter as
    /// marked. Refused when the letter does not exist or was redriven already.
    #[instrument(skip_all, fields(letter = id))]
    pub async fn redrive_dead_letter(
        &self,
        id: &str,
    ) -> Result<Result<DeadLetter, RedriveRefusal>, StoreError> {
        let Some((shard, stream_id)) = self.parse_letter_id(id) else {
            return Ok(Err(RedriveRefusal::NotFound));
        };
        let mut conn = self.connection().await?;
        for _ in 0..FIND_TRIES {
            let found: Option<(i64, String)> = scripts::FIND_DEAD_LETTER
                .key(self.keys.dead_letters(shard))
                .arg(format!("\"stream_id\":\"{stream_id}\""))
                .invoke_async(&mut conn)
                .await?;
            let Some((index, raw)) = found else {
                return Ok(Err(RedriveRefusal::NotFound));
            };
            let mut letter: DeadLetter = serde_json::from_str(&raw).map_err(|e| {
                StoreError::Internal(anyhow::Error::new(e).context("a dead letter is not JSON"))
            })?;
            if letter.id.is_empty() {
                letter.id = DeadLetter::id_of(shard, &letter.stream_id);
            }
            if letter.redriven_at.is_some() {
                return Ok(Err(RedriveRefusal::AlreadyRedriven(Box::new(letter))));
            }
            // Only a trigger of this shard is in this slot (always, for the jobs pubhook writes).
            let owed = Job::from_json(&letter.job)
                .ok()
                .and_then(|job| job.owed_deliveries())
                .filter(|(triggered, _)| self.keys.shard_of(*triggered) == shard);
            let redelivery = Job::from_json(&letter.job)
                .ok()
                .and_then(|job| job.redelivery_of())
                .filter(|_| owed.is_some());
            let now = now_seconds();
            let mut redrive = scripts::REDRIVE.key(self.keys.dead_letters(shard));
            redrive.key(self.keys.jobs(shard));
            if let Some((triggered, _)) = owed {
                redrive.key(self.keys.triggered(triggered));
            }
            if let Some((triggered, _)) = redelivery {
                redrive.key(self.keys.redeliveries(triggered));
            }
            redrive
                .arg(index)
                .arg(&raw)
                .arg(&letter.job)
                .arg(now)
                .arg(owed.map_or(0, |(_, count)| count));
            if let Some((_, subscription)) = redelivery {
                redrive.arg(subscription.to_string());
            }
            let queued: Option<String> = redrive.invoke_async(&mut conn).await?;
            if queued.as_deref() == Some("pending") {
                return Ok(Err(RedriveRefusal::DeliveryInProgress));
            }
            if let Some(queued) = queued {
                letter.redriven_at = Some(now);
                letter.redriven_as = Some(queued);
                return Ok(Ok(letter));
            }
            // Moved or changed since it was found: look again.
        }
        Err(StoreError::Unavailable(anyhow::anyhow!(
            "dead letter {id} kept moving while it was redriven"
        )))
    }

    /// The shard and stream id of a letter id, if it is one of this queue's.
    fn parse_letter_id<'a>(&self, id: &'a str) -> Option<(Shard, &'a str)> {
        let (shard, stream_id) = id.strip_prefix('q')?.split_once('-')?;
        let shard = self.keys.shard(shard.parse().ok()?)?;
        let (millis, sequence) = stream_id.split_once('-')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        (digits(millis) && digits(sequence)).then_some((shard, stream_id))
    }
}
