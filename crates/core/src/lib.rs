//! pubhook-core: everything the API and the worker share, and nothing that speaks HTTP to clients.
//!
//! | module      | owns                                                                    |
//! |-------------|-------------------------------------------------------------------------|
//! | `domain`    | parsed newtypes (`Username`, `EndpointUrl`, `EventName`, typed ids, keys) |
//! | `hashing`   | API-key hashes (fast HMAC form, legacy PBKDF2 read), constant-time checks  |
//! | `inbound`   | hook keys, GitHub signature checks, fingerprints of one-time keys        |
//! | `signing`   | delivery signatures (`pywebhooks-signature`, Standard Webhooks)           |
//! | `pyjson`    | byte-exact Python `json.dumps` serialisation of payloads                  |
//! | `settings`  | typed, layered configuration (defaults, TOML, `PUBHOOK_*`, flags)          |
//! | `keys`      | every Redis key name, under the configured prefix                         |
//! | `store`     | records in Redis: accounts, registrations, subscriptions, triggered        |
//! | `queue`     | the job contract between the API and the worker                           |
//! | `outbound`  | the one HTTP client for calls to account endpoints, with its SSRF policy  |
//! | `metrics`   | the Prometheus registry, how families are made in it, text exposition     |
//! | `telemetry` | `tracing` set-up: text or JSON lines, the request-id field               |
//!
//! Nothing here knows about actix-web; the API maps these errors to HTTP responses.

pub mod domain;
pub mod hashing;
pub mod inbound;
pub mod keys;
pub mod metrics;
pub mod outbound;
pub mod pyjson;
pub mod queue;
pub mod settings;
pub mod signing;
pub mod store;
pub mod telemetry;
