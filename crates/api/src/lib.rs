//! pubhook-api: the PyWebhooks-compatible REST API.
//!
//! | module         | owns                                                                  |
//! |----------------|-----------------------------------------------------------------------|
//! | `startup`      | [`Application`]: build (bind, connect) then run until stopped          |
//! | `routes`       | one module per resource of the contract, plus health checks, `/docs`   |
//! |                | and the web console's bundled page (`/console`)                       |
//! | `auth`         | the `api-key`/`username` check and the cache of verified keys          |
//! | `client`       | the client address rate limits count against (`trusted_proxies`)       |
//! | `content_type` | the 415 gate                                                          |
//! | `edge`         | body deadline (408) and open connections per client address (429)     |
//! | `body`         | size-limited JSON bodies                                              |
//! | `inbound`      | trigger payloads, form bodies, idempotency keys and delivery ids       |
//! | `paging`       | `start`/`limit`, `next_start`, the page byte budget and 204            |
//! | `response`     | written JSON bodies sent in slices, without a second copy              |
//! | `openapi`      | the OpenAPI 3.1 document, from the handlers' annotations (`/docs` too) |
//! | `metrics`      | the API's Prometheus families and the middleware that counts requests  |
//! | `request_id`   | the request id: kept from `X-Request-Id` or made, logged, echoed       |
//! | `error`        | [`ApiError`]: every HTTP failure and its `{"Error": ...}` body         |
//! | `state`        | what handlers share                                                   |
//!
//! The API never delivers webhooks: a trigger writes a job for the worker (see
//! `pubhook_core::queue`). It depends on `pubhook-core` only, never on the worker.

pub mod auth;
pub mod body;
pub mod client;
pub mod content_type;
pub mod edge;
pub mod error;
pub mod inbound;
pub mod metrics;
pub mod openapi;
pub mod paging;
pub mod request_id;
pub mod response;
pub mod routes;
pub mod startup;
pub mod state;

pub use error::ApiError;
pub use startup::Application;
