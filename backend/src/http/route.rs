//! The route table, written once: a request's method and path become one [`Route`] (or a
//! 404/405 naming what is wrong), and its metrics name comes from the same value.
//!
//! Only canonical paths are routes: `/` then non-empty segments of `[A-Za-z0-9_-]`, no empty
//! segment (`//`), no trailing slash, no percent-encoding, no dot segments; ids are plain
//! decimal digits without sign or leading zeros. Anything else is a 404, so no other spelling
//! of a guarded route can reach a handler (the edge proxies the canonical spelling only).

use hyper::Method;

use crate::error::ApiError;

/// Every endpoint of the backend, with its parsed path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    // Shopper
    Time,
    Login,
    Storefront,
    Sale(u64),
    Captcha(u64),
    QueueJoin(u64),
    Buy { sale: u64, sig: String },
    MyOrders(u64),
    Mine(u64),
    AllMyOrders,
    // Orders and payments
    Order(u64),
    Pay(u64),
    PayNotify,
    // Operator
    AdminSales,
    AdminSaleList,
    AdminSale(u64),
    AdminSaleChange(u64),
    AdminPause(u64),
    AdminResume(u64),
    AdminEnd(u64),
    AdminPublish(u64),
    AdminReconcile,
    AdminQueue(u64),
    // Loopback: Prometheus, health, the edge's sale-state pull
    Metrics,
    Healthz,
    InternalSales,
}

/// Longest link signature segment looked at (a real one is 64 hex digits).
const MAX_SIG: usize = 128;

impl Route {
    /// Parses a request line. `HEAD` is served as `GET`. A known path asked with another
    /// method is a 405 naming the methods it has.
    pub fn parse(method: &Method, path: &str) -> Result<Route, ApiError> {
        let segments = canonical(path)?;
        let get = |r: Route| [(Method::GET, Some(r)), (Method::GET, None)];
        let post = |r: Route| [(Method::POST, Some(r)), (Method::POST, None)];
        let mut options = match segments.as_slice() {
            ["api", "time"] => get(Route::Time),
            ["api", "login"] => post(Route::Login),
            ["api", "sales"] => get(Route::Storefront),
            ["api", "sales", id] => get(Route::Sale(sale_id(id)?)),
            ["api", "sales", id, "captcha"] => post(Route::Captcha(sale_id(id)?)),
            ["api", "sales", id, "queue"] => post(Route::QueueJoin(sale_id(id)?)),
            ["api", "sales", id, "orders"] => get(Route::MyOrders(sale_id(id)?)),
            ["api", "sales", id, "mine"] => get(Route::Mine(sale_id(id)?)),
            ["api", "orders"] => get(Route::AllMyOrders),
            ["api", "sales", id, "buy", sig] => post(Route::Buy {
                sale: sale_id(id)?,
                sig: signature(sig)?,
            }),
            ["api", "orders", id] => get(Route::Order(order_id(id)?)),
            ["api", "orders", id, "pay"] => post(Route::Pay(order_id(id)?)),
            ["api", "payments", "notify"] => post(Route::PayNotify),
            ["admin", "sales"] => [
                (Method::GET, Some(Route::AdminSaleList)),
                (Method::POST, Some(Route::AdminSales)),
            ],
            ["admin", "sales", id] => {
                let id = sale_id(id)?;
                [
                    (Method::GET, Some(Route::AdminSale(id))),
                    (Method::PATCH, Some(Route::AdminSaleChange(id))),
                ]
            }
            ["admin", "sales", id, "pause"] => post(Route::AdminPause(sale_id(id)?)),
            ["admin", "sales", id, "resume"] => post(Route::AdminResume(sale_id(id)?)),
            ["admin", "sales", id, "end"] => post(Route::AdminEnd(sale_id(id)?)),
            ["admin", "sales", id, "publish"] => post(Route::AdminPublish(sale_id(id)?)),
            ["admin", "reconcile"] => post(Route::AdminReconcile),
            ["admin", "sales", id, "queue"] => post(Route::AdminQueue(sale_id(id)?)),
            ["metrics"] => get(Route::Metrics),
            ["healthz"] => get(Route::Healthz),
            ["internal", "sales"] => get(Route::InternalSales),
            _ => return Err(ApiError::not_found("no such endpoint")),
        };
        let asked = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        for (m, route) in options.iter_mut() {
            if m == asked {
                if let Some(route) = route.take() {
                    return Ok(route);
                }
            }
        }
        let allowed: Vec<&str> = options
            .iter()
            .filter(|(_, r)| r.is_some())
            .map(|(m, _)| m.as_str())
            .collect();
        Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            allowed: allowed.join(", "),
        })
    }

    /// A bounded label set for metrics: the route, never the raw path.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Time => "time",
            Route::Login => "login",
            Route::Storefront => "storefront",
            Route::Sale(_) => "sale",
            Route::Captcha(_) => "captcha",
            Route::QueueJoin(_) => "queue_join",
            Route::Buy { .. } => "buy",
            Route::MyOrders(_) => "my_orders",
            Route::Mine(_) => "mine",
            Route::AllMyOrders => "all_my_orders",
            Route::Order(_) => "order",
            Route::Pay(_) => "pay",
            Route::PayNotify => "pay_notify",
            Route::AdminSales => "admin_sales",
            Route::AdminSaleList => "admin_sale_list",
            Route::AdminSale(_) => "admin_sale",
            Route::AdminSaleChange(_) => "admin_sale_change",
            Route::AdminPause(_) => "admin_pause",
            Route::AdminResume(_) => "admin_resume",
            Route::AdminEnd(_) => "admin_end",
            Route::AdminPublish(_) => "admin_publish",
            Route::AdminReconcile => "admin_reconcile",
            Route::AdminQueue(_) => "admin_queue",
            Route::Metrics => "metrics",
            Route::Healthz => "healthz",
            Route::InternalSales => "internal_sales",
        }
    }
}

/// The segments of a canonical path, or a 404 saying why it is not one.
fn canonical(path: &str) -> Result<Vec<&str>, ApiError> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| ApiError::not_found("no such endpoint"))?;
    let segments: Vec<&str> = rest.split('/').collect();
    let clean = |s: &&str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if segments.iter().all(clean) {
        Ok(segments)
    } else {
        Err(ApiError::not_found(
            "no such endpoint: the path is not in canonical form (an empty segment, a trailing \
             slash, or a character other than letters, digits, '-' and '_')",
        ))
    }
}

/// Plain decimal digits, no sign, no leading zero, at most `max_len` of them.
fn decimal(text: &str, max_len: usize) -> Option<u64> {
    let b = text.as_bytes();
    let plain =
        !b.is_empty() && b.len() <= max_len && b[0] != b'0' && b.iter().all(u8::is_ascii_digit);
    plain.then(|| text.parse().ok()).flatten()
}

fn sale_id(text: &str) -> Result<u64, ApiError> {
    decimal(text, 10)
        .filter(|id| *id < (1 << 31))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no such endpoint: sale id {text:?} is not a sale id (decimal digits, no sign or \
                 leading zero, below 2^31)"
            ))
        })
}

fn order_id(text: &str) -> Result<u64, ApiError> {
    decimal(text, 20)
        .and_then(|id| crate::buy::orders::parse_id(&id.to_string()).ok())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no such endpoint: order id {text:?} is not an order id (decimal digits, no sign \
                 or leading zero)"
            ))
        })
}

fn signature(text: &str) -> Result<String, ApiError> {
    if text.len() > MAX_SIG {
        return Err(ApiError::not_found(
            "no such endpoint: the purchase link is too long",
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn status(method: Method, path: &str) -> u16 {
        match Route::parse(&method, path) {
            Ok(_) => 200,
            Err(e) => e.status().as_u16(),
        }
    }

    #[test]
    fn canonical_paths_are_routes() {
        assert_eq!(
            Route::parse(&Method::POST, &format!("/api/sales/80/buy/{SIG}")).unwrap(),
            Route::Buy {
                sale: 80,
                sig: SIG.into()
            }
        );
        assert_eq!(
            Route::parse(&Method::GET, "/api/sales/2147483647").unwrap(),
            Route::Sale(2147483647)
        );
        assert_eq!(
            Route::parse(&Method::HEAD, "/api/sales/7").unwrap(),
            Route::Sale(7)
        );
        let order = (5u64 << 32) | 9;
        assert_eq!(
            Route::parse(&Method::POST, &format!("/api/orders/{order}/pay")).unwrap(),
            Route::Pay(order)
        );
    }

    #[test]
    fn every_other_spelling_is_a_404() {
        let buy = format!("/api/sales/80/buy/{SIG}");
        for path in [
            "/api/sales/80/".to_string(),
            "/api//sales/80".into(),
            "//api/sales/80".into(),
            "/api/sales/+80".into(),
            "/api/sales/-80".into(),
            "/api/sales/080".into(),
            "/api/sales/0".into(),
            "/api/sales/2147483648".into(),
            "/api/sales/99999999999999999999999".into(),
            "/api/sales/8%30".into(),
            "/api/sales%2F80".into(),
            "/api/sales/80%2fcaptcha".into(),
            "/api/sales/./80".into(),
            "/api/sales/x/../80".into(),
            "/API/sales/80".into(),
            "/api/sales/80/path".into(),
            "/api/sales/ 80".into(),
            format!("{buy}/"),
            buy.replace("/buy/", "/buy//"),
            buy.replace("80", "+80"),
            format!("/api/sales/80/buy/{}", "a".repeat(129)),
            "".into(),
            "api/time".into(),
        ] {
            assert_eq!(status(Method::GET, &path), 404, "GET {path:?}");
            assert_eq!(status(Method::POST, &path), 404, "POST {path:?}");
        }
    }

    #[test]
    fn a_known_path_with_the_wrong_method_is_a_405() {
        assert_eq!(
            status(Method::GET, &format!("/api/sales/80/buy/{SIG}")),
            405
        );
        assert_eq!(
            status(Method::HEAD, &format!("/api/sales/80/buy/{SIG}")),
            405
        );
        assert_eq!(status(Method::DELETE, "/api/time"), 405);
        assert_eq!(status(Method::PUT, "/admin/sales"), 405);
        let e = Route::parse(&Method::DELETE, "/admin/sales").unwrap_err();
        assert!(e.message().contains("use GET, POST"), "{}", e.message());
        assert_eq!(
            Route::parse(&Method::GET, "/admin/sales").unwrap(),
            Route::AdminSaleList
        );
        assert_eq!(
            Route::parse(&Method::PATCH, "/admin/sales/9").unwrap(),
            Route::AdminSaleChange(9)
        );
    }

    #[test]
    fn the_captcha_less_path_route_does_not_exist() {
        assert_eq!(status(Method::POST, "/api/sales/80/path"), 404);
    }
}
