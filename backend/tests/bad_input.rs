//! Bad input gets a clear 4xx with a JSON error naming the problem: never a 5xx, never a panic.

mod common;

use common::{Backend, Target, ADMIN};
use hyper::{Method, StatusCode};
use serde_json::json;

/// method, path, bearer token, body, expected status, what the message must name.
type Case<'a> = (
    Method,
    String,
    Option<&'a str>,
    Option<String>,
    StatusCode,
    &'a str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_malformed_request_gets_its_4xx() {
    let b = Backend::start(
        Target::Single,
        &[
            ("SECKILL_WRITER", "false"),
            ("SECKILL_MAX_BODY", "1024"),
            ("SECKILL_MAX_ADMIN_BODY", "1024"),
        ],
    )
    .await;
    let sale = b.create_sale(5, 1).await;
    let user = b.login(&format!("bad-{sale}")).await;
    let path = b.path(sale, &user).await;
    let valid = |patch: &str| {
        let now = seckill::clock::now_ms();
        let mut v = serde_json::json!({"title": "T", "price_cents": 1, "stock": 5,
            "starts_at": now, "ends_at": now + 60_000});
        let p: serde_json::Value = serde_json::from_str(patch).unwrap();
        for (k, x) in p.as_object().unwrap() {
            v[k] = x.clone();
        }
        v.to_string()
    };
    let huge = format!("{{\"title\": \"{}\"}}", "x".repeat(5000));
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some("{\"title\":".into()),
            StatusCode::BAD_REQUEST,
            "body: invalid JSON",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some("".into()),
            StatusCode::BAD_REQUEST,
            "body: required",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some("[1,2]".into()),
            StatusCode::BAD_REQUEST,
            "body: expected a JSON object",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some(valid(r#"{"stock": null}"#)),
            StatusCode::BAD_REQUEST,
            "stock: required",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some(valid(r#"{"stock": -5}"#)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "stock: expected an integer from 1",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some(valid(r#"{"stock": "ten"}"#)),
            StatusCode::BAD_REQUEST,
            "stock: expected an integer",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some(valid(r#"{"stock": 1.5}"#)),
            StatusCode::BAD_REQUEST,
            "stock: expected an integer",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some(valid(r#"{"price_cents": -1}"#)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "price_cents:",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some(valid(r#"{"title": ""}"#)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "title:",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some(valid(r#"{"starts_at": "next tuesday"}"#)),
            StatusCode::BAD_REQUEST,
            "starts_at:",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some(valid(r#"{"ends_at": 5}"#)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ends_at:",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some(valid(r#"{"per_user_limit": 0}"#)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "per_user_limit:",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some(valid(r#"{"colour": "red"}"#)),
            StatusCode::BAD_REQUEST,
            "colour: unknown field",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some(huge),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body: larger than 1024 bytes",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            None,
            Some(valid("{}")),
            StatusCode::UNAUTHORIZED,
            "admin token: missing",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some(valid(r#"{"title": "Phone\u0000 deal"}"#)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "title: control characters are not allowed (found U+0000)",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some(ADMIN),
            Some(valid(r#"{"title": "Phone\n<script>"}"#)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "title: control characters",
        ),
        (
            Method::POST,
            "/admin/sales".into(),
            Some("wrong-token"),
            Some(valid("{}")),
            StatusCode::FORBIDDEN,
            "admin token: wrong",
        ),
        (
            Method::GET,
            "/api/sales/abc".into(),
            None,
            None,
            StatusCode::NOT_FOUND,
            "sale id \"abc\"",
        ),
        (
            Method::GET,
            "/api/sales/-1".into(),
            None,
            None,
            StatusCode::NOT_FOUND,
            "sale id \"-1\"",
        ),
        (
            Method::GET,
            "/api/sales/99999999".into(),
            None,
            None,
            StatusCode::NOT_FOUND,
            "sale 99999999: no such sale",
        ),
        (
            Method::POST,
            path.clone(),
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "session: missing",
        ),
        (
            Method::POST,
            path.clone(),
            Some("1.2.3"),
            None,
            StatusCode::FORBIDDEN,
            "session:",
        ),
        (
            Method::POST,
            path.replace(&path[path.len() - 4..], "0000"),
            Some(&user),
            None,
            StatusCode::FORBIDDEN,
            "purchase link:",
        ),
        (
            Method::POST,
            format!("/api/sales/{sale}/buy/not-hex"),
            Some(&user),
            None,
            StatusCode::FORBIDDEN,
            "purchase link:",
        ),
        (
            Method::GET,
            "/api/orders/xyz".into(),
            Some(&user),
            None,
            StatusCode::NOT_FOUND,
            "order id \"xyz\"",
        ),
        (
            Method::GET,
            format!("/api/orders/{}", (sale << 32) | 4000),
            Some(&user),
            None,
            StatusCode::NOT_FOUND,
            "no such order",
        ),
        (
            Method::POST,
            "/api/login".into(),
            None,
            Some(r#"{"user": "a b"}"#.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "user:",
        ),
        (
            Method::POST,
            "/api/login".into(),
            None,
            Some(r#"{"user": 5}"#.into()),
            StatusCode::BAD_REQUEST,
            "user: expected a string",
        ),
        (
            Method::DELETE,
            "/api/time".into(),
            None,
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "DELETE is not allowed on this path (use GET)",
        ),
        (
            Method::GET,
            "/nowhere".into(),
            None,
            None,
            StatusCode::NOT_FOUND,
            "no such endpoint",
        ),
    ];
    for (method, path, token, body, want, message) in cases {
        let (status, v) = b.call(method.clone(), &path, token, body.clone()).await;
        assert_eq!(status, want, "{method} {path} {body:?}: {v}");
        let got = v["message"].as_str().unwrap_or_default();
        assert!(
            got.contains(message),
            "{method} {path}: message {got:?} should name {message:?}"
        );
        assert!(v["error"].is_string(), "{method} {path}: a JSON error code");
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_the_start_a_signed_link_answers_425() {
    let b = Backend::start(Target::Single, &[("SECKILL_WRITER", "false")]).await;
    let later = b.create_sale_starting(5, 1, 60_000).await;
    let user = b.login("window-user").await;
    // A link signed with the right key before the start is still refused with 425.
    let (status, v) = b.buy(&common::signed_path(later, &user), &user).await;
    assert_eq!(status, StatusCode::TOO_EARLY, "{v}");
    // The backend has no captcha-less route that signs a link, in any spelling.
    for path in [
        format!("/api/sales/{later}/path"),
        format!("/api/sales/{later}/path/"),
        format!("/api//sales/{later}/path"),
        format!("/api/sales/+{later}/path"),
    ] {
        let (status, v) = b.call(Method::POST, &path, Some(&user), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "POST {path}: {v}");
        assert_eq!(v["error"], "not_found", "POST {path}: {v}");
    }
    b.stop().await;
}

/// The operator's routes of an evening: each refusal names the field (and, in a list, the
/// index), and the state a change meets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_routes_refuse_bad_input_by_name() {
    let b = Backend::start(Target::Single, &[("SECKILL_WRITER", "false")]).await;
    let now = seckill::clock::now_ms();
    let ok = json!({"title": "Fine", "price_cents": 1, "stock": 3,
                    "starts_at": now + 600_000, "ends_at": now + 1_200_000});
    let mut bad = ok.clone();
    bad["stock"] = json!(0);
    let post = |body: serde_json::Value| {
        let b = &b;
        async move {
            b.call(
                Method::POST,
                "/admin/sales",
                Some(ADMIN),
                Some(body.to_string()),
            )
            .await
        }
    };
    let (status, v) = post(json!([ok, bad])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        (v["index"].as_u64(), v["field"].as_str()),
        (Some(1), Some("stock")),
        "{v}"
    );
    let (status, v) = post(json!([])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let mut past = ok.clone();
    past["starts_at"] = json!(now - 3_600_000);
    let (status, v) = post(past).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "starts_at", "{v}");
    let (status, v) = post(json!([ok, ok])).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["created"], 2);

    for (query, name) in [
        ("limit=500", "limit"),
        ("status=later", "status"),
        ("colour=red", "colour"),
        ("starts_from=tuesday", "starts_from"),
    ] {
        let (status, v) = b
            .call(
                Method::GET,
                &format!("/admin/sales?{query}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert!(
            v["message"].as_str().unwrap().starts_with(name),
            "{query}: {v}"
        );
    }
    let (status, v) = b.call(Method::GET, "/admin/sales", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let (status, v) = b
        .call(Method::DELETE, "/admin/sales", Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("use GET, POST"),
        "{v}"
    );

    let started = b.create_sale(5, 1).await;
    let patch = |id: u64, body: serde_json::Value| {
        let b = &b;
        async move {
            b.call(
                Method::PATCH,
                &format!("/admin/sales/{id}"),
                Some(ADMIN),
                Some(body.to_string()),
            )
            .await
        }
    };
    let (status, v) = patch(started, json!({"stock": 9})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["field"], "stock", "{v}");
    let (status, v) = patch(started, json!({"title": ""})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (status, v) = patch(2_000_000_000, json!({"title": "x"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let (status, v) = patch(started, json!({"title": "Renamed"})).await;
    assert_eq!(
        (status, v["title"].as_str()),
        (StatusCode::OK, Some("Renamed")),
        "{v}"
    );
    let end = format!("/admin/sales/{started}/end");
    let (status, _) = b.call(Method::POST, &end, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = b.call(Method::POST, &end, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let pause = format!("/admin/sales/{started}/pause");
    let (status, v) = b.call(Method::POST, &pause, Some(ADMIN), None).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an ended sale is not paused: {v}"
    );
    b.stop().await;
}

/// Every id the storefront lists, page by page (each page checked for the list's order).
async fn storefront_ids(b: &Backend) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/api/sales?after={a}"),
            None => "/api/sales".to_string(),
        };
        let (status, v) = b.call(Method::GET, &path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let page: Vec<(i64, u64)> = v["sales"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["starts_ms"].as_i64().unwrap(), s["id"].as_u64().unwrap()))
            .collect();
        assert!(
            page.windows(2).all(|w| w[0] < w[1]),
            "soonest first: {page:?}"
        );
        ids.extend(page.iter().map(|(_, id)| *id));
        match v["next_after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => return ids,
        }
    }
}

/// Publishing: an unlisted sale is not on the storefront; published, it is (once the
/// storefront's second-long copy has aged); the storefront pages through every listed sale
/// once each. Reconciling one sale answers that sale only. Bad input names its parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_the_storefront_and_reconciling_one_sale() {
    let b = Backend::start(Target::Single, &[("SECKILL_WRITER", "false")]).await;
    let now = seckill::clock::now_ms();
    let sale = |title: &str, listed: bool| {
        json!({"title": title, "price_cents": 100, "stock": 2, "listed": listed,
               "starts_at": now + 600_000, "ends_at": now + 1_200_000})
    };
    let hidden = b.create_sale_from(sale("Hidden", false)).await;
    let many: Vec<_> = (0..105)
        .map(|i| sale(&format!("Listed {i}"), true))
        .collect();
    let (status, v) = b
        .call(
            Method::POST,
            "/admin/sales",
            Some(ADMIN),
            Some(json!(many).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let listed: Vec<u64> = v["sales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    let ids = storefront_ids(&b).await;
    for id in &listed {
        assert_eq!(ids.iter().filter(|i| *i == id).count(), 1, "sale {id} once");
    }
    assert!(
        !ids.contains(&hidden),
        "an unlisted sale is not on the storefront"
    );

    let publish = format!("/admin/sales/{hidden}/publish");
    let (status, v) = b.call(Method::POST, &publish, Some(ADMIN), None).await;
    assert_eq!(
        (status, v["listed"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
    tokio::time::sleep(seckill::buy::storefront::FRESH).await;
    assert!(
        storefront_ids(&b).await.contains(&hidden),
        "published: listed"
    );

    let (status, v) = b.call(Method::GET, &publish, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{v}");
    let (status, v) = b
        .call(
            Method::POST,
            "/admin/sales/2000000000/publish",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let (status, v) = b.call(Method::POST, &publish, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let ended = b.create_sale(2, 1).await;
    b.call(
        Method::POST,
        &format!("/admin/sales/{ended}/end"),
        Some(ADMIN),
        None,
    )
    .await;
    let (status, v) = b
        .call(
            Method::POST,
            &format!("/admin/sales/{ended}/publish"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("sale_ended")),
        "{v}"
    );

    // Ending an upcoming sale calls it off: ended at once, never open.
    let (status, v) = b
        .call(
            Method::POST,
            &format!("/admin/sales/{hidden}/end"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (StatusCode::OK, Some("ended")),
        "{v}"
    );

    let (status, v) = b
        .call(
            Method::POST,
            &format!("/admin/reconcile?sale={hidden}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let checked: Vec<u64> = v["sales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sale_id"].as_u64().unwrap())
        .collect();
    assert_eq!(checked, vec![hidden], "{v}");

    for (method, path, status, field) in [
        (
            Method::GET,
            "/api/sales?after=yesterday",
            StatusCode::BAD_REQUEST,
            "after",
        ),
        (
            Method::GET,
            "/api/sales?page=2",
            StatusCode::BAD_REQUEST,
            "page",
        ),
        (
            Method::POST,
            "/admin/reconcile?sale=0",
            StatusCode::BAD_REQUEST,
            "sale",
        ),
        (
            Method::POST,
            "/admin/reconcile?sale=x",
            StatusCode::BAD_REQUEST,
            "sale",
        ),
        (
            Method::POST,
            "/admin/reconcile?repair=maybe",
            StatusCode::BAD_REQUEST,
            "repair",
        ),
        (
            Method::POST,
            "/admin/reconcile?sale=2000000000",
            StatusCode::NOT_FOUND,
            "sale",
        ),
    ] {
        let bearer = path.starts_with("/admin").then_some(ADMIN);
        let (got, v) = b.call(method, path, bearer, None).await;
        assert_eq!(got, status, "{path}: {v}");
        assert!(
            v["message"].as_str().unwrap().starts_with(field),
            "{path}: {v}"
        );
    }
    b.stop().await;
}
