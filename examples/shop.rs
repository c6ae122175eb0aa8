//! A shop's back end on axum, built on the library: it creates a KHQR for an
//! order, serves the order's KHQR card, and accepts the signed "paid" webhook
//! that `khqr-server` sends, verified with [`bakong_khqr::webhook`] on the raw
//! body before the order is marked paid.
//!
//! ```text
//! cargo run --example shop --features card,webhook,reqwest
//! ```
//!
//! So that it runs by itself, `main` starts the shop on a free port of
//! 127.0.0.1 and plays the two other parties over HTTP: a customer (create an
//! order for USD 12.50, fetch its card PNG) and `khqr-server` (a webhook signed
//! with the shared secret, then the same body with a forged signature). It
//! prints each answer, checks the order ended paid, and exits 0. Nothing leaves
//! 127.0.0.1 and Bakong is never called. In a real shop the webhook comes from
//! your `khqr-server` (`callback_url` at a create made with your merchant's
//! API key; the secret is the one `khqr-server merchant add` printed;
//! docs/server.md).
//!
//! Routes:
//! * `POST /orders?amount=12.50` → 201 `{"order","khqr","md5","card"}`: a
//!   dynamic USD KHQR that expires in 10 minutes;
//! * `GET /orders/{id}` → `{"order","amount","currency","status"}`;
//! * `GET /orders/{id}/card.png` → the KHQR card (600 × 870 px PNG);
//! * `POST /webhooks/khqr` → 204 once the event is verified and matches an
//!   order (200 for a repeat), 401 for a bad signature, 400 for a body that is
//!   not a paid event, 404 for an unknown QR, 409 for a wrong amount.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bakong_khqr::render::{card_png, CardOptions};
use bakong_khqr::webhook::{sign, verify_webhook_signature, SIGNATURE_HEADER};
use bakong_khqr::{Amount, Currency, Request};
use serde_json::{json, Value};

/// The merchant's Bakong account and name, printed on every card.
const BAKONG_ID: &str = "coffee@abaa";
const MERCHANT_NAME: &str = "ហាងកាហ្វេ Coffee";
/// How long a customer has to pay, in milliseconds.
const ORDER_TTL_MS: u64 = 10 * 60 * 1000;

/// One order: the KHQR made for it and whether it is paid.
struct Order {
    khqr: String,
    md5: String,
    /// The amount in cents (USD has two decimals): money is never a float.
    cents: u64,
    paid: bool,
}

/// The shop's state: orders by id, and the webhook secret it shares with its
/// khqr-server (in production: read from a file or a secret store).
struct Shop {
    secret: Vec<u8>,
    orders: Mutex<Vec<Order>>,
}

type SharedShop = Arc<Shop>;

fn router(shop: SharedShop) -> Router {
    Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(show_order))
        .route("/orders/{id}/card.png", get(order_card))
        .route("/webhooks/khqr", post(khqr_webhook))
        .with_state(shop)
}

/// A JSON error answer.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn lock(shop: &Shop) -> std::sync::MutexGuard<'_, Vec<Order>> {
    shop.orders.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `POST /orders?amount=12.50`: a KHQR for that many US dollars.
async fn create_order(
    State(shop): State<SharedShop>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(amount) = query.get("amount") else {
        return error(StatusCode::BAD_REQUEST, "amount is required, e.g. 12.50");
    };
    // The library checks the amount's text (decimal, at most two decimals for
    // USD, more than zero) and every field; its message says what is wrong.
    let generated = Request::individual(BAKONG_ID, MERCHANT_NAME)
        .merchant_city("Phnom Penh")
        .currency(Currency::Usd)
        .amount(amount.as_str())
        .expires_in_ms(ORDER_TTL_MS)
        .generate(bakong_khqr::now_ms());
    let khqr = match generated {
        Ok(khqr) => khqr,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let Ok(cents) = Amount::read_minor_units(amount, Currency::Usd) else {
        return error(StatusCode::BAD_REQUEST, "amount is not a USD amount");
    };
    let md5 = khqr.md5().to_string();
    let mut orders = lock(&shop);
    let id = orders.len();
    let body = json!({
        "order": id,
        "khqr": khqr.as_str(),
        "md5": md5,
        "card": format!("/orders/{id}/card.png"),
    });
    orders.push(Order {
        khqr: khqr.into_string(),
        md5,
        cents,
        paid: false,
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

/// `GET /orders/{id}`: the order's amount and whether it is paid.
async fn show_order(State(shop): State<SharedShop>, Path(id): Path<usize>) -> Response {
    let orders = lock(&shop);
    let Some(order) = orders.get(id) else {
        return error(StatusCode::NOT_FOUND, "no such order");
    };
    Json(json!({
        "order": id,
        "amount": Amount::with_decimals(order.cents, Currency::Usd),
        "currency": "USD",
        "status": if order.paid { "paid" } else { "pending" },
    }))
    .into_response()
}

/// `GET /orders/{id}/card.png`: the KHQR card the customer scans.
async fn order_card(State(shop): State<SharedShop>, Path(id): Path<usize>) -> Response {
    let Some(khqr) = lock(&shop).get(id).map(|order| order.khqr.clone()) else {
        return error(StatusCode::NOT_FOUND, "no such order");
    };
    // Drawing takes about a millisecond or two: off the async workers.
    let drawn = tokio::task::spawn_blocking(move || card_png(&khqr, &CardOptions::default())).await;
    match drawn {
        Ok(Ok(png)) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the card could not be drawn",
        ),
    }
}

/// `POST /webhooks/khqr`: khqr-server says a QR was paid.
///
/// The signature is checked on the raw body, before any parsing; then the
/// event must name one of our QRs, with its amount and currency. Deliveries are
/// at least once, so a repeat is answered 200 and changes nothing.
async fn khqr_webhook(State(shop): State<SharedShop>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if let Err(e) = verify_webhook_signature(&shop.secret, signature, &body, bakong_khqr::now_ms())
    {
        return error(StatusCode::UNAUTHORIZED, &e.to_string());
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let field = |name: &str| event.get(name).and_then(Value::as_str).unwrap_or("");
    if field("type") != "khqr.paid" {
        // khqr.created, khqr.expired, …: received, nothing to do here.
        return StatusCode::NO_CONTENT.into_response();
    }
    let mut orders = lock(&shop);
    let Some(order) = orders.iter_mut().find(|order| order.md5 == field("md5")) else {
        return error(StatusCode::NOT_FOUND, "no order has this QR");
    };
    let paid_cents = Amount::read_minor_units(field("amount"), Currency::Usd).ok();
    if field("currency") != "USD" || paid_cents != Some(order.cents) {
        return error(StatusCode::CONFLICT, "the amount paid is not the order's");
    }
    if order.paid {
        return StatusCode::OK.into_response();
    }
    order.paid = true;
    StatusCode::NO_CONTENT.into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shop = Arc::new(Shop {
        secret: b"whsec-shared-with-khqr-server".to_vec(),
        orders: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("shop listening on {base}");
    let app = router(Arc::clone(&shop));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();

    // The customer's side: an order, and its card.
    let created = client
        .post(format!("{base}/orders?amount=12.50"))
        .send()
        .await?;
    println!("POST /orders?amount=12.50 -> {}", created.status());
    let order: Value = serde_json::from_slice(&created.bytes().await?)?;
    println!("  khqr {}", order["khqr"]);
    println!("  md5  {}", order["md5"]);
    let card = client
        .get(format!("{base}{}", order["card"].as_str().unwrap_or("")))
        .send()
        .await?;
    let status = card.status();
    let png = card.bytes().await?;
    println!(
        "GET {} -> {status}, {} bytes of PNG",
        order["card"].as_str().unwrap_or(""),
        png.len()
    );
    if !png.starts_with(b"\x89PNG") {
        return Err("the card is not a PNG".into());
    }

    // khqr-server's side: the QR was paid; it signs the event with the secret.
    let event = json!({
        "type": "khqr.paid",
        "md5": order["md5"],
        "tran": "",
        "bakongId": BAKONG_ID,
        "amount": "12.50",
        "currency": "USD",
        "paidAtMs": bakong_khqr::now_ms(),
    })
    .to_string();
    let post_webhook = |signature: String| {
        client
            .post(format!("{base}/webhooks/khqr"))
            .header(SIGNATURE_HEADER, signature)
            .header(header::CONTENT_TYPE.as_str(), "application/json")
            .body(event.clone())
            .send()
    };
    let signed = sign(&shop.secret, bakong_khqr::now_ms(), event.as_bytes());
    let answer = post_webhook(signed).await?;
    println!("POST /webhooks/khqr (signed) -> {}", answer.status());

    // Someone without the secret tries the same.
    let forged = sign(b"not-the-secret", bakong_khqr::now_ms(), event.as_bytes());
    let answer = post_webhook(forged).await?;
    println!(
        "POST /webhooks/khqr (forged) -> {} {}",
        answer.status(),
        answer.text().await?
    );

    let shown = client
        .get(format!("{base}/orders/{}", order["order"]))
        .send()
        .await?
        .bytes()
        .await?;
    let shown: Value = serde_json::from_slice(&shown)?;
    println!("GET /orders/{} -> {shown}", order["order"]);
    server.abort();
    if shown["status"] != "paid" {
        return Err("the signed webhook did not mark the order paid".into());
    }
    Ok(())
}
