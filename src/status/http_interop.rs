//! Conversions between [`HttpRequest`]/[`HttpResponse`] and the `http` crate's
//! `Request<Vec<u8>>`/`Response<Vec<u8>>` (feature `http`).
//!
//! Why convert rather than use the `http` types throughout: the sans-I/O core
//! (request builders, parsers, [`super::Poller`]) stays free of the `http`
//! dependency, its types keep their guarantees (the `Authorization` header is
//! redacted in `Debug`; header names are the few the Open API needs), and every
//! existing `StatusChecker` keeps compiling. Clients built on `http` (ureq 3,
//! reqwest, hyper) convert in one call at the edge.

use crate::status::{HttpRequest, HttpResponse, Method};

impl From<Method> for http::Method {
    fn from(method: Method) -> Self {
        match method {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
        }
    }
}

/// A request ready for any `http`-based client: same method, URL, headers (in
/// order) and body.
///
/// # Errors
/// `http::Error` if the URL is not a valid `http::Uri` or a header value is not
/// a valid `HeaderValue`. Requests built by [`crate::status::Api`] always
/// convert: their base URL and token are checked when given.
impl TryFrom<HttpRequest> for http::Request<Vec<u8>> {
    type Error = http::Error;

    fn try_from(request: HttpRequest) -> Result<Self, http::Error> {
        let mut builder = http::Request::builder()
            .method(http::Method::from(request.method))
            .uri(request.url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value.as_str());
        }
        builder.body(request.body)
    }
}

/// An answer from any `http`-based client, as the parsers read it: status,
/// headers in order (a value that is not UTF-8 is kept lossily, with U+FFFD),
/// body bytes. Infallible.
impl From<http::Response<Vec<u8>>> for HttpResponse {
    fn from(response: http::Response<Vec<u8>>) -> Self {
        let (parts, body) = response.into_parts();
        HttpResponse {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        }
    }
}

/// An answer as an `http::Response` (for fakes and relays built on `http`).
///
/// # Errors
/// `http::Error` if the status is outside 100–999 or a header name or value is
/// not valid HTTP.
impl TryFrom<HttpResponse> for http::Response<Vec<u8>> {
    type Error = http::Error;

    fn try_from(response: HttpResponse) -> Result<Self, http::Error> {
        let mut builder = http::Response::builder().status(response.status);
        for (name, value) in &response.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder.body(response.body)
    }
}

#[cfg(test)]
mod tests {
    use crate::status::{Api, HttpResponse, Token, TEST_BASE_URL};
    use crate::Md5;

    #[test]
    fn request_converts_with_every_header() {
        let api = Api::new("http://127.0.0.1:8080/relay")
            .unwrap()
            .with_token(Token::new("a.b.c").unwrap());
        let ours = api.check_transaction_by_md5(&Md5::of("x")).unwrap();
        let theirs = http::Request::<Vec<u8>>::try_from(ours.clone()).unwrap();
        assert_eq!(theirs.method(), http::Method::POST);
        assert_eq!(
            theirs.uri().to_string(),
            "http://127.0.0.1:8080/relay/v1/check_transaction_by_md5"
        );
        assert_eq!(theirs.headers()["authorization"], "Bearer a.b.c");
        assert_eq!(theirs.headers()["content-type"], "application/json");
        assert_eq!(theirs.headers().len(), ours.headers.len());
        assert_eq!(theirs.body(), &ours.body);
        let anon = Api::new(TEST_BASE_URL).unwrap();
        let renew = anon.renew_token("me@example.com").unwrap();
        let theirs = http::Request::<Vec<u8>>::try_from(renew).unwrap();
        assert!(theirs.headers().get("authorization").is_none());
    }

    #[test]
    fn response_round_trips() {
        let ours = HttpResponse::new(429, b"slow down".to_vec())
            .with_header("Retry-After", "7")
            .with_header("X-Two", "a")
            .with_header("x-two", "b");
        let theirs = http::Response::<Vec<u8>>::try_from(ours.clone()).unwrap();
        assert_eq!(theirs.status(), 429);
        let back = HttpResponse::from(theirs);
        assert_eq!(back.status, 429);
        assert_eq!(back.header("retry-after"), Some("7"));
        assert_eq!(back.body, b"slow down");
        // http lower-cases names and keeps repeated headers, in order.
        let twos: Vec<&str> = back
            .headers
            .iter()
            .filter(|(n, _)| n == "x-two")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(twos, ["a", "b"]);
        assert!(http::Response::<Vec<u8>>::try_from(HttpResponse::new(1000, vec![])).is_err());
        let bad_name = HttpResponse::new(200, vec![]).with_header("bad name", "x");
        assert!(http::Response::<Vec<u8>>::try_from(bad_name).is_err());
    }
}
