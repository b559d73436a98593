//! The one HTTP client for calls to account endpoints: echo challenges, key resets and
//! deliveries.
//!
//! PyWebhooks let any user make its server call any URL: loopback, the private network, cloud
//! metadata, with TLS unverified and redirects followed. Here every call is checked by a
//! [`DestinationPolicy`]: loopback, private, link-local, multicast and the other special ranges
//! are refused unless an `allowed_networks` entry contains them.
//!
//! Checking the URL's host is not enough: a name can resolve to a private address, or to several
//! addresses of which only some are public. So names are resolved by our own resolver, which
//! checks **every** resolved address and hands the connector only the allowed ones; it then
//! connects only to a checked address (no second lookup for an attacker to rebind). The
//! connector does not call the resolver for IP literals, so those are checked before the
//! request.
//!
//! TLS is verified, redirects are not followed (a 3xx is an answer like any other), every call
//! has a total timeout, and responses are read only up to `max_response_bytes`.

mod client;
mod policy;
mod pool;

pub use client::{KeyKind, OutboundClient, OutboundConfig, OutboundError, PostResponse};
pub use policy::{classify, BlockedDestination, DestinationPolicy};
