//! `/ui`: the web dashboard. Its files are built into the binary; the page holds no data and
//! asks for the bearer token itself, so it is served without one. Every answer forbids
//! inline script and other origins.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiError;

/// The page's policy: its own files and API only, no inline script or style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file of the dashboard.
struct Asset {
    /// Its name under `/ui/`.
    name: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes.
    body: &'static [u8],
}

/// Every file of the dashboard; no other name is served.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../ui/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../ui/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../ui/icon.svg"),
    },
];

/// The routes of the dashboard.
pub fn router() -> Router<AppState> {
    routes()
}

/// The routes, for any state: they use none.
fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/{asset}", get(asset))
        .layer(axum::middleware::map_response(protect))
}

/// The page itself.
async fn index() -> Response {
    serve(&ASSETS[0])
}

/// One of the page's files by name; any other name is a 404.
async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => serve(a),
        None => ApiError::NotFound(format!(
            "no file {} in the dashboard",
            crate::domain::text::quote(&name)
        ))
        .into_response(),
    }
}

/// A file with its content type.
fn serve(asset: &Asset) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.body,
    )
        .into_response()
}

/// Adds the security and caching headers to every answer under `/ui`, errors included.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change with the binary: a browser checks them on each load.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    use super::{CONTENT_SECURITY_POLICY, routes};

    /// Answers one GET of `path`.
    async fn get(path: &str) -> axum::response::Response {
        let req = Request::get(path).body(Body::empty()).unwrap();
        routes::<()>().oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn the_page_is_served_with_its_policy() {
        for path in ["/ui", "/ui/", "/ui/index.html"] {
            let r = get(path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let h = r.headers();
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
            assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
            assert_eq!(h[header::CACHE_CONTROL], "no-cache");
            let body = to_bytes(r.into_body(), 1 << 20).await.unwrap();
            let html = String::from_utf8(body.to_vec()).unwrap();
            assert!(html.contains("/ui/app.js"), "{html}");
        }
    }

    #[tokio::test]
    async fn each_file_has_its_content_type() {
        for (path, content_type) in [
            ("/ui/app.js", "text/javascript; charset=utf-8"),
            ("/ui/app.css", "text/css; charset=utf-8"),
            ("/ui/icon.svg", "image/svg+xml"),
        ] {
            let r = get(path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(
                r.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
        }
    }

    #[tokio::test]
    async fn other_names_are_not_found() {
        for path in ["/ui/secret.txt", "/ui/..%2FCargo.toml", "/ui/app.js%00"] {
            let r = get(path).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(
                r.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            let body = to_bytes(r.into_body(), 1 << 20).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["code"], "not_found", "{path}");
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(super::ASSETS[0].body).unwrap();
        let lower = html.to_ascii_lowercase();
        assert!(!lower.contains("<script>"), "inline script");
        assert!(!lower.contains(" style="), "inline style");
        assert!(!lower.contains("<style"), "inline style sheet");
        assert!(!lower.contains("javascript:"), "script URL");
        for attribute in lower.split_whitespace() {
            assert!(
                !(attribute.starts_with("on") && attribute.contains('=')),
                "event handler attribute {attribute}"
            );
        }
    }
}
