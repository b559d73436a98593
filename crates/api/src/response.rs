//! JSON bodies the API has already written to bytes, sent without a second copy.
//!
//! actix-web copies a response body into the connection's write buffer, and a body given whole
//! is copied whole: a 1 MiB answer costs 2 MiB until the client has read it. Given as a stream of
//! slices of one buffer, it is copied a slice at a time, as the socket drains, since actix-web
//! asks for the next slice only when its write buffer is below its size (32 KiB). The slices
//! share the buffer, so nothing is copied to make them.

use std::convert::Infallible;

use actix_web::body::SizedStream;
use actix_web::http::header::ContentType;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, HttpResponseBuilder};

/// Bodies up to this size are sent whole; larger ones in slices of this size.
const SLICE_BYTES: usize = 32 * 1024;

/// `builder` with a JSON `body`.
pub fn json_bytes(mut builder: HttpResponseBuilder, body: Vec<u8>) -> HttpResponse {
    builder.insert_header(ContentType::json());
    if body.len() <= SLICE_BYTES {
        return builder.body(body);
    }
    let body = Bytes::from(body);
    let length = body.len() as u64;
    let slices =
        futures_util::stream::iter((0..body.len()).step_by(SLICE_BYTES).map(move |start| {
            let end = (start + SLICE_BYTES).min(body.len());
            Ok::<_, Infallible>(body.slice(start..end))
        }));
    builder.body(SizedStream::new(length, slices))
}

/// `builder` with a JSON body made of `parts` in order, sent as slices of them without joining
/// them first: a large stored payload goes out from its own buffer, not from a copy.
pub fn json_parts(mut builder: HttpResponseBuilder, parts: Vec<Bytes>) -> HttpResponse {
    builder.insert_header(ContentType::json());
    let length = parts.iter().map(|part| part.len() as u64).sum();
    let slices = futures_util::stream::iter(parts.into_iter().flat_map(|part| {
        (0..part.len()).step_by(SLICE_BYTES).map(move |start| {
            let end = (start + SLICE_BYTES).min(part.len());
            Ok::<_, Infallible>(part.slice(start..end))
        })
    }));
    builder.body(SizedStream::new(length, slices))
}

#[cfg(test)]
mod tests {
    use actix_web::body::{to_bytes, MessageBody as _};

    use super::*;

    #[actix_web::test]
    async fn a_large_body_goes_out_in_slices_whole_and_in_order() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let response = json_bytes(HttpResponse::Created(), body.clone());
        assert_eq!(response.status(), 201);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/json"
        );
        let sent = response.into_body();
        assert_eq!(sent.size(), actix_web::body::BodySize::Sized(100_000));
        assert_eq!(to_bytes(sent).await.unwrap(), body);
    }

    #[actix_web::test]
    async fn parts_go_out_joined_in_order_with_their_total_length() {
        let large: Vec<u8> = (0..70_000u32).map(|i| (i % 241) as u8).collect();
        let parts = vec![
            Bytes::from_static(b"{\"a\":"),
            Bytes::from(large.clone()),
            Bytes::new(),
            Bytes::from_static(b"}"),
        ];
        let response = json_parts(HttpResponse::Created(), parts);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/json"
        );
        let sent = response.into_body();
        let mut expected = b"{\"a\":".to_vec();
        expected.extend_from_slice(&large);
        expected.push(b'}');
        assert_eq!(
            sent.size(),
            actix_web::body::BodySize::Sized(expected.len() as u64)
        );
        assert_eq!(to_bytes(sent).await.unwrap(), expected);
    }

    #[actix_web::test]
    async fn a_small_body_is_sent_whole() {
        let response = json_bytes(HttpResponse::Ok(), b"{}".to_vec());
        assert_eq!(to_bytes(response.into_body()).await.unwrap(), "{}");
    }
}
