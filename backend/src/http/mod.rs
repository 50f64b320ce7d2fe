//! The HTTP layer: requests in, handlers by audience, responses out.
//!
//! - [`server`]: the accept loop, per-connection hyper service, graceful shutdown.
//! - [`route`]: the route table: method and canonical path -> one [`Route`] (else 404/405).
//! - [`request`]: who is asking (session, admin token) and bounded body reading.
//! - [`shopper`]: clock, login, sale state, captcha, buy (the hot path).
//! - [`orders`]: order status, the shopper's orders, paying, the provider's notifications.
//! - [`admin`]: creating sales, reconciling.
//! - [`internal`]: metrics, health, the edge's sale-state pull (loopback).
//! - [`reply`]: JSON answers and the one error shape.

pub mod admin;
pub mod internal;
pub mod orders;
pub mod query;
pub mod reply;
pub mod request;
pub mod route;
pub mod server;
pub mod shopper;

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::Request;

use crate::app::App;
use crate::error::ApiError;
use reply::Resp;
pub use route::Route;
pub use server::serve;

/// Counts a request in flight for as long as it lives (also when the client goes away).
struct Inflight<'a>(&'a App);

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.inflight.dec();
    }
}

/// One request: route it, shed it past the in-flight cap, run its handler, count it.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let started = Instant::now();
    let route = Route::parse(req.method(), req.uri().path());
    let name = route.as_ref().map_or("other", Route::name);
    let before = app.inflight.fetch_add(1, Ordering::Relaxed);
    app.metrics.inflight.inc();
    let _guard = Inflight(&app);
    let result = match route {
        Err(e) => Err(e),
        Ok(Route::Metrics) => internal::metrics(&app),
        Ok(_) if before >= app.cfg.max_inflight => Err(ApiError::Overloaded),
        Ok(route) => dispatch(&app, route, req).await,
    };
    let resp = result.unwrap_or_else(|e| reply::error(&e));
    let m = &app.metrics;
    m.http_requests
        .with_label_values(&[name, resp.status().as_str()])
        .inc();
    m.http_duration
        .with_label_values(&[name])
        .observe(started.elapsed().as_secs_f64());
    Ok(resp)
}

async fn dispatch(app: &App, route: Route, req: Request<Incoming>) -> Result<Resp, ApiError> {
    match route {
        Route::Buy { sale, sig } => shopper::buy(app, &req, sale, &sig).await,
        Route::Time => shopper::time(),
        Route::Login => shopper::login(app, req).await,
        Route::Storefront => shopper::storefront(app, &req).await,
        Route::Sale(sale) => shopper::sale_state(app, sale).await,
        Route::Captcha(sale) => shopper::captcha(app, &req, sale).await,
        Route::QueueJoin(sale) => shopper::join_queue(app, &req, sale).await,
        Route::MyOrders(sale) => orders::of_user(app, &req, sale).await,
        Route::Mine(sale) => orders::mine(app, &req, sale).await,
        Route::AllMyOrders => orders::all(app, &req).await,
        Route::Order(id) => orders::status(app, &req, id).await,
        Route::Pay(id) => orders::pay(app, &req, id).await,
        Route::PayNotify => orders::notify(app, req).await,
        Route::AdminSales => admin::create_sale(app, req).await,
        Route::AdminSaleList => admin::list_sales(app, &req).await,
        Route::AdminSale(id) => admin::sale(app, &req, id).await,
        Route::AdminSaleChange(id) => admin::change_sale(app, req, id).await,
        Route::AdminPause(id) => admin::pause(app, &req, id, true).await,
        Route::AdminResume(id) => admin::pause(app, &req, id, false).await,
        Route::AdminEnd(id) => admin::end(app, &req, id).await,
        Route::AdminPublish(id) => admin::publish(app, &req, id).await,
        Route::AdminReconcile => admin::reconcile(app, &req).await,
        Route::AdminQueue(sale) => admin::queue(app, req, sale).await,
        Route::Metrics => internal::metrics(app),
        Route::Healthz => internal::healthz(),
        Route::InternalSales => internal::sale_states(app, &req).await,
    }
}
