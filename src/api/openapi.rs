//! The OpenAPI 3.1 document (`/openapi.json`), generated from the handlers' annotations and
//! the wire types of [`super::dto`], and the interactive docs (`/docs`, served from the binary: no
//! internet access needed).

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;
use super::dto::{Error, ErrorDetail, TimeZoneName};

/// `/openapi.json` and `/docs`.
pub fn router() -> Router<AppState> {
    SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .into()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cronhook",
        description = "A durable cron-over-HTTP job scheduler. Every error, on every endpoint, \
                       has the shape of `Error`."
    ),
    paths(
        super::jobs::create,
        super::jobs::list,
        super::jobs::read,
        super::jobs::change,
        super::jobs::remove,
        super::jobs::pause,
        super::jobs::resume,
        super::jobs::trigger,
        super::executions::page,
        super::executions::detail,
        super::cron::next,
        super::health::health,
        super::scrape::metrics,
        super::dummy::dummy,
    ),
    components(schemas(Error, ErrorDetail, TimeZoneName)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "jobs", description = "Create and manage jobs"),
        (name = "executions", description = "What each job's calls did"),
        (name = "tools", description = "Cron preview, health, metrics and a test target"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer token (`API_TOKEN`) scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
