//! The audit trail's edge: every request runs inside its context
//! (`giftd_service::audit::RequestContext`: its request id, the client's address, its method and
//! path), which authentication completes with who made it and each command records in its own
//! transaction. A state-changing request that no command recorded (refused before one ran, or
//! failed) is recorded here once it is answered, if its caller is known.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use giftd_service::Service;
use giftd_service::audit::{self, RequestContext};

use crate::REQUEST_ID_HEADER;
use crate::guard::ClientAddress;

/// The audit middleware.
pub async fn record(State(service): State<Service>, request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|id| id.to_str().ok())
        .map(str::to_owned);
    let address = request
        .extensions()
        .get::<ClientAddress>()
        .map(|ClientAddress(ip)| ip.to_string());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let context = RequestContext::new(
        request_id,
        address,
        request.method().as_str(),
        request.uri().path(),
        crate::guard::channel(crate::FRONT_ENDS, request.uri().path()),
    );
    let response = audit::within(context.clone(), next.run(request)).await;
    service
        .audit_unrecorded(&context, response.status().as_u16(), route.as_deref())
        .await;
    response
}
