//! The job contract between the API and the delivery workers.
//!
//! ## Layout
//!
//! Jobs are entries of one Redis stream, `{p}jobs` (see [`crate::keys`]), each with a single field
//! `job` holding the JSON of a [`Job`]. A stream with a consumer group gives what the queue needs
//! without extra bookkeeping: entries stay until acknowledged (at-least-once), a dead worker's
//! pending entries can be claimed by another after a visibility timeout (`XAUTOCLAIM`), and the
//! per-entry delivery counter lets a job that keeps killing workers be set aside.
//!
//! The API only appends. The trigger appends its [`Job::FanOutV1`] in the same Lua script that
//! writes the triggered record, so an acknowledged trigger is never lost and never delivered
//! without its record.
//!
//! ## Versioning
//!
//! A job is a tagged enum (`{"type": "fan_out.v1", ...}`). A change of shape adds a variant and
//! never edits one, so workers of the previous release keep reading what is already queued.

use serde::{Deserialize, Serialize};

use crate::domain::{RegistrationId, TriggeredId};

/// The name of the stream field that holds a job's JSON.
pub const JOB_FIELD: &str = "job";

/// One unit of work on the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Job {
    /// Expand a trigger into one delivery per subscription row of its registration, in bounded
    /// pages, and deliver them.
    #[serde(rename = "fan_out.v1")]
    FanOutV1 {
        /// The triggered record; deliveries carry it as `webhook-id`.
        triggered_id: TriggeredId,
        /// The registration whose subscribers receive the payload.
        registration_id: RegistrationId,
        /// The id of the API request that triggered it, for log correlation.
        request_id: Option<String>,
    },
}

impl Job {
    /// The JSON written to the stream.
    pub fn to_json(&self) -> String {
        // A Job holds only ids and strings, which always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a job back from the stream.
    pub fn from_json(raw: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fan_out_job_round_trips_with_its_version_tag() {
        let job = Job::FanOutV1 {
            triggered_id: TriggeredId::generate(),
            registration_id: RegistrationId::generate(),
            request_id: Some("req-1".into()),
        };
        let json = job.to_json();
        assert!(json.starts_with(r#"{"type":"fan_out.v1","#), "{json}");
        assert_eq!(Job::from_json(&json).unwrap(), job);
    }

    #[test]
    fn an_unknown_version_is_an_error_not_a_guess() {
        assert!(Job::from_json(r#"{"type":"fan_out.v9","triggered_id":"x"}"#).is_err());
    }
}
