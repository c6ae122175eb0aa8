//! [`AppState`]: what the handlers share that is not configuration (the
//! store, Bakong, caches, the render pool, the watchers), and the
//! configuration itself behind one [`Arc`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::Semaphore;

use crate::client_ip::ClientAddr;
use crate::config::{Config, ConfigError};
use crate::events::Events;
use crate::local_limits::{RouteBuckets, StreamCaps};
use crate::recon::Reconciler;
use crate::render_pool::RenderPool;
use crate::store::AnyStore;
use crate::token::TokenKeeper;
use crate::upstream::Upstream;
use crate::watch::Watchers;
use crate::webhook::Webhooks;

/// Which image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageKind {
    /// The bare QR.
    Qr,
    /// The KHQR stand card.
    Stand,
}

/// The shared state of the application.
pub struct AppState {
    /// The configuration, as given.
    pub config: Arc<Config>,
    /// [`Config::public_base`], computed once.
    pub public_url: String,
    /// Who the client is: [`Config::trusted_proxies`] and their header.
    pub client_addr: ClientAddr,
    /// The caps on open event streams.
    pub streams: Arc<StreamCaps>,
    /// The per-client buckets of the routes that do not touch the store.
    pub buckets: Arc<RouteBuckets>,
    /// QRs and rate limits.
    pub store: Arc<AnyStore>,
    /// Bakong.
    pub upstream: Arc<Upstream>,
    /// The token's renewal and alerts.
    pub token: Arc<TokenKeeper>,
    /// Payment watchers.
    pub watchers: Arc<Watchers>,
    /// Webhook deliveries.
    pub webhooks: Arc<Webhooks>,
    /// The event log's writer.
    pub events: Arc<Events>,
    /// The reconciliation job.
    pub recon: Arc<Reconciler>,
    /// Images being drawn at once, at most [`Config::render_threads`].
    pub renders: Semaphore,
    /// The drawing threads.
    pub pool: RenderPool,
    /// Drawn PNGs by MD5 and kind, bounded by bytes.
    pub images: moka::future::Cache<(String, ImageKind), Bytes>,
}

impl AppState {
    /// The state for `config` on `store`, and its background tasks (token
    /// file, token renewal and alerts, rate-limit pruning, owed webhooks, the reconciliation job), which end when it is dropped.
    ///
    /// # Errors
    /// [`ConfigError`] from [`Upstream::new`] or [`Config::client_addr`]
    /// (`--client-ip-header` without `--trusted-proxies`).
    pub fn start(config: Arc<Config>, store: AnyStore) -> Result<Arc<Self>, ConfigError> {
        let store = Arc::new(store);
        let upstream = Arc::new(Upstream::new(config.clone(), store.clone())?);
        let client_addr = config.client_addr()?;
        let token = Arc::new(TokenKeeper::new(&config, store.clone(), upstream.clone()));
        let webhooks = Arc::new(Webhooks::new(config.clone(), store.clone())?);
        let events = Arc::new(Events::new(config.clone(), store.clone(), webhooks.clone()));
        let watchers = Arc::new(Watchers::new(
            config.clone(),
            store.clone(),
            upstream.clone(),
            events.clone(),
        ));
        let recon = Arc::new(Reconciler::new(
            config.clone(),
            store.clone(),
            upstream.clone(),
            events.clone(),
        ));
        let threads = config.render_threads();
        let state = Arc::new(AppState {
            public_url: config.public_base(),
            client_addr,
            streams: StreamCaps::new(config.max_events_per_client, config.max_events),
            buckets: Arc::new(RouteBuckets::new(
                config.rate_assets_per_client,
                config.rate_admin_per_client,
                config.rate_per_merchant,
            )),
            store,
            upstream,
            token,
            watchers,
            webhooks,
            events,
            recon,
            renders: Semaphore::new(threads),
            pool: RenderPool::new(threads),
            images: moka::future::Cache::builder()
                .max_capacity(config.image_cache_bytes().max(1))
                .weigher(|_, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
                .time_to_live(Duration::from_millis(
                    config.qr_ttl_ms().saturating_add(config.grace_ms()),
                ))
                .build(),
            config,
        });
        if let Some(path) = state.config.token_file.clone() {
            crate::upstream::spawn_token_watch(Arc::downgrade(&state.upstream), path);
        }
        crate::token::spawn(Arc::downgrade(&state.token));
        crate::store::spawn_prune(Arc::downgrade(&state.store));
        RouteBuckets::spawn_prune(Arc::downgrade(&state.buckets));
        crate::watch::spawn_resume(Arc::downgrade(&state.watchers));
        crate::webhook::spawn_outbox(Arc::downgrade(&state.webhooks));
        crate::recon::spawn(Arc::downgrade(&state.recon));
        Ok(state)
    }
}
