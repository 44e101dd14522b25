//! [`Http1Upstream`]: hyper's pooled HTTP/1.1 client, for upstreams that
//! speak only HTTP/1.1 (uvicorn, most REST servers): each request is
//! rewritten to HTTP/1.1's form on the way.

use std::{future::Future, sync::Arc, time::Duration};

use http::{HeaderMap, HeaderValue, header};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tonic::body::Body;

use super::{UpstreamConfig, dial::Dial, hop_by_hop};
use crate::StartupError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The HTTP/1.1 client of one upstream. Cheap to clone: clones share the
/// pool.
#[derive(Clone)]
pub(super) struct Http1Upstream {
    client: Arc<Client<Dial, Body>>,
    base: http::Uri,
}

impl Http1Upstream {
    /// A client of `upstream`; connects on the first call.
    pub(super) fn new(upstream: &UpstreamConfig) -> Result<Http1Upstream, StartupError> {
        Ok(Http1Upstream {
            client: Arc::new(
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(60))
                    .build(Dial::new(upstream, b"http/1.1")?),
            ),
            base: upstream.url.clone(),
        })
    }

    /// Sends `request` to the upstream as HTTP/1.1: its URI the upstream's
    /// scheme and authority with the request's path and query, `Host` the
    /// upstream's or `kept_host`, the cookies HTTP/2 may have split joined;
    /// the answer without hop-by-hop headers.
    pub(super) fn send(
        &self,
        mut request: http::Request<Body>,
        kept_host: Option<HeaderValue>,
    ) -> impl Future<Output = Result<http::Response<Body>, BoxError>> + Send + 'static {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let uri = http::Uri::builder()
            .scheme(self.base.scheme_str().unwrap_or("http"))
            .authority(self.base.authority().map_or("", |a| a.as_str()))
            .path_and_query(path)
            .build();
        let client = self.client.clone();
        async move {
            *request.uri_mut() = uri?;
            *request.version_mut() = http::Version::HTTP_11;
            if let Some(host) = kept_host {
                request.headers_mut().insert(header::HOST, host);
            }
            join_cookies(request.headers_mut());
            let mut response = client.request(request).await?.map(Body::new);
            hop_by_hop::strip(response.headers_mut());
            Ok(response)
        }
    }
}

/// Joins several `cookie` headers (HTTP/2 may split them, one per cookie)
/// into one, as RFC 9113 section 8.2.3 says to before HTTP/1.1: many
/// HTTP/1.1 servers read only the first.
fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(header::COOKIE).iter();
    if cookies.next().is_none() || cookies.next().is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_split_by_http2_are_one_header_for_http1() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", HeaderValue::from_static("a=1"));
        join_cookies(&mut headers);
        assert_eq!(headers["cookie"], "a=1");
        headers.append("cookie", HeaderValue::from_static("b=2"));
        headers.append("cookie", HeaderValue::from_static("c=3"));
        join_cookies(&mut headers);
        assert_eq!(headers.get_all("cookie").iter().count(), 1);
        assert_eq!(headers["cookie"], "a=1; b=2; c=3");
    }
}
