//! Merchants: who may use this server with an API key, for which Bakong
//! accounts, and the secrets their webhooks are signed with.
//!
//! * A [`Merchant`] has an `id` (1 to 64 characters of `a-z`, `0-9`, `_`,
//!   `-`), a display name, the `bakongid`s it may create QRs for (each
//!   belongs to one merchant at most: while a merchant holds it, anonymous
//!   creates for it are refused), its API keys, its webhook secrets, and a
//!   `disabled` flag. Merchants live in the store (see
//!   [`MerchantStore`], implemented by every store), so every instance on one Redis
//!   sees the same ones at once.
//! * **API keys** are [`KEY_PREFIX`] then 64 lowercase hex digits: 256 bits
//!   from `rand`'s thread generator (`ChaCha12`, seeded from the operating
//!   system). The store keeps only the SHA-256 of each key, in hex. A key
//!   carries 256 bits of entropy, so one plain SHA-256 is enough: nobody can
//!   find a key from its hash by guessing, and a slow password hash (argon2,
//!   bcrypt) would only slow every request down. A request's key is found by
//!   its hash (one map or Redis lookup), and the stored hash is compared again
//!   in constant time ([`subtle`]). A key is shown once, by `merchant add` and
//!   `merchant rotate-key`; rotating replaces every key of the merchant at once.
//! * **Test keys** (same shape) are made by `merchant test-key`, kept beside
//!   the live ones ([`Merchant::test_key_hashes`]) and rotated on their own: a
//!   request with one is a [`Caller::Test`], whose QRs are test QRs.
//! * **Webhook secrets** are [`SECRET_PREFIX`] then 64 hex digits (256 random
//!   bits); the HMAC key is the whole text, byte for byte as printed.
//!   `merchant rotate-secret` makes a new current secret and keeps the
//!   previous ones live for a grace period; every event is signed with each
//!   live secret, one `v1=` each ([`signature_header`]), so a receiver verifies
//!   with the old or the new secret while it switches over.
//!
//! The operator manages merchants with `khqr-server merchant …`
//! ([`MerchantCommand`], run by [`run`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::StoreError;

/// The start of every API key.
pub const KEY_PREFIX: &str = "khqr_sk_";
/// The start of every webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Most characters in a merchant's id.
pub const MAX_ID_CHARS: usize = 64;
/// Most characters in a merchant's name.
pub const MAX_NAME_CHARS: usize = 100;
/// Most `bakongid`s one merchant holds.
pub const MAX_BAKONG_IDS: usize = 64;
/// Most characters in a `bakongid` (the KHQR limit, tag 29 subtag 00).
pub const MAX_BAKONG_ID_CHARS: usize = 32;

/// One webhook secret of a merchant.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSecret {
    /// The secret text ([`SECRET_PREFIX`] and 64 hex digits); the HMAC key
    /// is its bytes.
    pub value: String,
    /// When it stops being used, ms since the Unix epoch; `None` for the
    /// current secret.
    #[serde(rename = "untilMs", default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecret")
            .field("value", &"<redacted>")
            .field("until_ms", &self.until_ms)
            .finish()
    }
}

/// A merchant, as stored (JSON). `Debug` prints no secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    /// Its id: 1 to [`MAX_ID_CHARS`] of `a-z`, `0-9`, `_`, `-`.
    pub id: String,
    /// Its display name, for the operator.
    pub name: String,
    /// The Bakong accounts it may create QRs for.
    #[serde(rename = "bakongIds")]
    pub bakong_ids: Vec<String>,
    /// SHA-256 (64 lowercase hex digits) of each live API key.
    #[serde(rename = "keyHashes")]
    pub key_hashes: Vec<String>,
    /// SHA-256 (64 lowercase hex digits) of each live **test** key: its QRs
    /// are marked test, never reach Bakong, and may be paid with
    /// `POST /khqr/merchant/test/pay/{tran}` (see [`Caller::Test`]). Absent in
    /// merchants stored before test mode: none.
    #[serde(
        rename = "testKeyHashes",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test_key_hashes: Vec<String>,
    /// Its webhook secrets: the current one first, then those still live
    /// during a rotation.
    pub secrets: Vec<WebhookSecret>,
    /// A disabled merchant's keys are refused (401) and its webhooks are not sent.
    #[serde(default)]
    pub disabled: bool,
    /// When it was added, ms since the Unix epoch.
    #[serde(rename = "createdMs")]
    pub created_ms: u64,
}

impl fmt::Debug for Merchant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merchant")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("bakong_ids", &self.bakong_ids)
            .field("keys", &self.key_hashes.len())
            .field("test_keys", &self.test_key_hashes.len())
            .field("secrets", &self.secrets)
            .field("disabled", &self.disabled)
            .field("created_ms", &self.created_ms)
            .finish()
    }
}

/// What `merchant add` hands out, once.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Issued {
    /// The merchant's id.
    pub id: String,
    /// The API key (send it as `Authorization: Bearer <key>`).
    pub key: String,
    /// The webhook secret (verify `KHQR-Signature` with it).
    pub secret: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A merchant as `merchant list` shows it: no key, no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MerchantView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its Bakong accounts.
    #[serde(rename = "bakongIds")]
    pub bakong_ids: Vec<String>,
    /// How many API keys are live.
    pub keys: usize,
    /// How many test keys it has.
    #[serde(rename = "testKeys")]
    pub test_keys: usize,
    /// How many webhook secrets are live now.
    #[serde(rename = "liveSecrets")]
    pub live_secrets: usize,
    /// When the last previous secret stops, ms since the Unix epoch (during a rotation).
    #[serde(rename = "rotationEndsMs", skip_serializing_if = "Option::is_none")]
    pub rotation_ends_ms: Option<u64>,
    /// Whether it is disabled.
    pub disabled: bool,
    /// When it was added, ms since the Unix epoch.
    #[serde(rename = "createdMs")]
    pub created_ms: u64,
}

/// Why a merchant operation was refused.
#[derive(Debug)]
pub enum MerchantError {
    /// The id is empty, too long or has characters other than `a-z0-9_-`.
    InvalidId(String),
    /// The name is empty, longer than [`MAX_NAME_CHARS`] or has control characters.
    InvalidName,
    /// A `bakongid` is not `account@bank` of at most [`MAX_BAKONG_ID_CHARS`]
    /// printable characters.
    InvalidBakongId(String),
    /// No `bakongid`, or more than [`MAX_BAKONG_IDS`].
    BakongIdCount,
    /// A merchant with this id exists already.
    Exists(String),
    /// No merchant has this id.
    NotFound(String),
    /// This `bakongid` belongs to another merchant (named).
    Claimed {
        /// The account.
        bakong_id: String,
        /// The merchant holding it.
        by: String,
    },
    /// The store failed (detail for the operator).
    Store(StoreError),
}

impl fmt::Display for MerchantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MerchantError::InvalidId(id) => write!(
                f,
                "invalid merchant id {id:?}: 1 to {MAX_ID_CHARS} characters of a-z, 0-9, _ and -"
            ),
            MerchantError::InvalidName => write!(
                f,
                "invalid merchant name: 1 to {MAX_NAME_CHARS} characters, no control characters"
            ),
            MerchantError::InvalidBakongId(b) => write!(
                f,
                "invalid bakongid {b:?}: account@bank, at most {MAX_BAKONG_ID_CHARS} printable characters"
            ),
            MerchantError::BakongIdCount => {
                write!(f, "a merchant needs 1 to {MAX_BAKONG_IDS} bakongids")
            }
            MerchantError::Exists(id) => write!(f, "merchant {id:?} exists already"),
            MerchantError::NotFound(id) => write!(f, "no merchant {id:?}"),
            MerchantError::Claimed { bakong_id, by } => {
                write!(f, "bakongid {bakong_id:?} belongs to merchant {by:?}")
            }
            MerchantError::Store(e) => write!(f, "store: {}", e.detail()),
        }
    }
}

impl std::error::Error for MerchantError {}

impl From<StoreError> for MerchantError {
    fn from(e: StoreError) -> Self {
        MerchantError::Store(e)
    }
}

/// 32 random bytes as 64 lowercase hex digits.
fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A new API key: [`KEY_PREFIX`] and 64 hex digits (256 random bits).
#[must_use]
pub fn new_key() -> String {
    format!("{KEY_PREFIX}{}", random_hex())
}

/// A new webhook secret: [`SECRET_PREFIX`] and 64 hex digits (256 random bits).
#[must_use]
pub fn new_secret() -> String {
    format!("{SECRET_PREFIX}{}", random_hex())
}

/// The stored form of an API key: SHA-256 of its bytes, 64 lowercase hex digits.
#[must_use]
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether `text` has the shape of an API key (so that anything else is
/// refused without a store lookup).
#[must_use]
pub fn is_key_shaped(text: &str) -> bool {
    text.strip_prefix(KEY_PREFIX).is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Checks a merchant id.
///
/// # Errors
/// [`MerchantError::InvalidId`].
pub fn check_id(id: &str) -> Result<(), MerchantError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(MerchantError::InvalidId(id.to_owned()))
    }
}

/// Checks, trims and lowercases a list of `bakongid`s (duplicates dropped,
/// order kept): a merchant holds an account whatever the case it is written in.
///
/// # Errors
/// [`MerchantError::InvalidBakongId`] or [`MerchantError::BakongIdCount`].
pub fn check_bakong_ids(ids: &[String]) -> Result<Vec<String>, MerchantError> {
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for raw in ids {
        let b = raw.trim();
        let ok = b.chars().count() <= MAX_BAKONG_ID_CHARS
            && b.split_once('@')
                .is_some_and(|(a, bank)| !a.is_empty() && !bank.is_empty())
            && b.chars().all(|c| c.is_ascii_graphic());
        if !ok {
            return Err(MerchantError::InvalidBakongId(raw.clone()));
        }
        let b = b.to_ascii_lowercase();
        if !out.contains(&b) {
            out.push(b);
        }
    }
    if out.is_empty() || out.len() > MAX_BAKONG_IDS {
        return Err(MerchantError::BakongIdCount);
    }
    Ok(out)
}

impl Merchant {
    /// A new merchant with one API key and one webhook secret, both returned
    /// once in [`Issued`]. `now_ms`: ms since the Unix epoch.
    ///
    /// # Errors
    /// [`MerchantError::InvalidId`], [`MerchantError::InvalidName`],
    /// [`MerchantError::InvalidBakongId`], [`MerchantError::BakongIdCount`].
    pub fn new(
        id: &str,
        name: &str,
        bakong_ids: &[String],
        now_ms: u64,
    ) -> Result<(Merchant, Issued), MerchantError> {
        check_id(id)?;
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(MerchantError::InvalidName);
        }
        let bakong_ids = check_bakong_ids(bakong_ids)?;
        let key = new_key();
        let secret = new_secret();
        let merchant = Merchant {
            id: id.to_owned(),
            name: name.to_owned(),
            bakong_ids,
            key_hashes: vec![key_hash(&key)],
            test_key_hashes: Vec::new(),
            secrets: vec![WebhookSecret {
                value: secret.clone(),
                until_ms: None,
            }],
            disabled: false,
            created_ms: now_ms,
        };
        let issued = Issued {
            id: id.to_owned(),
            key,
            secret,
        };
        Ok((merchant, issued))
    }

    /// Whether this merchant may create QRs for `bakong_id` (compared after
    /// trimming, ASCII case ignored).
    #[must_use]
    pub fn may_use(&self, bakong_id: &str) -> bool {
        let b = bakong_id.trim();
        self.bakong_ids.iter().any(|o| o.eq_ignore_ascii_case(b))
    }

    /// Whether `hash` ([`key_hash`] of a presented key) is one of this
    /// merchant's live (not test) keys, compared in constant time against
    /// each stored hash.
    #[must_use]
    pub fn has_key_hash(&self, hash: &str) -> bool {
        any_equal(&self.key_hashes, hash)
    }

    /// Whether `hash` ([`key_hash`] of a presented key) is one of this
    /// merchant's test keys, compared in constant time.
    #[must_use]
    pub fn has_test_key_hash(&self, hash: &str) -> bool {
        any_equal(&self.test_key_hashes, hash)
    }

    /// Every key hash the store indexes for this merchant: the live keys'
    /// then the test keys'.
    pub fn all_key_hashes(&self) -> impl Iterator<Item = &String> {
        self.key_hashes.iter().chain(&self.test_key_hashes)
    }

    /// Replaces every test key with one new test key; returns it (show it
    /// once). The live keys are not touched.
    pub fn rotate_test_key(&mut self) -> String {
        let key = new_key();
        self.test_key_hashes = vec![key_hash(&key)];
        key
    }

    /// The secrets that sign events at `now_ms`: the current one first, then
    /// those whose grace period has not ended.
    pub fn live_secrets(&self, now_ms: u64) -> impl Iterator<Item = &str> {
        self.secrets
            .iter()
            .filter(move |s| s.until_ms.is_none_or(|u| u > now_ms))
            .map(|s| s.value.as_str())
    }

    /// Replaces every API key with one new key; returns it (show it once).
    pub fn rotate_key(&mut self) -> String {
        let key = new_key();
        self.key_hashes = vec![key_hash(&key)];
        key
    }

    /// Makes a new current webhook secret and returns it (show it once). The
    /// secrets live until now stay live for `grace_ms` more (those already
    /// ending sooner keep their end); ended ones are dropped.
    pub fn rotate_secret(&mut self, now_ms: u64, grace_ms: u64) -> String {
        let ends = now_ms.saturating_add(grace_ms);
        self.secrets
            .retain(|s| s.until_ms.is_none_or(|u| u > now_ms));
        for s in &mut self.secrets {
            s.until_ms = Some(s.until_ms.map_or(ends, |u| u.min(ends)));
        }
        let secret = new_secret();
        self.secrets.insert(
            0,
            WebhookSecret {
                value: secret.clone(),
                until_ms: None,
            },
        );
        self.secrets
            .retain(|s| s.until_ms.is_none_or(|u| u > now_ms));
        secret
    }

    /// The merchant without keys or secrets, as of `now_ms`.
    #[must_use]
    pub fn view(&self, now_ms: u64) -> MerchantView {
        MerchantView {
            id: self.id.clone(),
            name: self.name.clone(),
            bakong_ids: self.bakong_ids.clone(),
            keys: self.key_hashes.len(),
            test_keys: self.test_key_hashes.len(),
            live_secrets: self.live_secrets(now_ms).count(),
            rotation_ends_ms: self
                .secrets
                .iter()
                .filter_map(|s| s.until_ms)
                .filter(|&u| u > now_ms)
                .max(),
            disabled: self.disabled,
            created_ms: self.created_ms,
        }
    }
}

/// The `KHQR-Signature` value for `body` sent at `timestamp_ms` (ms since the
/// Unix epoch), signed with each of `secrets`:
/// `t=<ms>,v1=<hex>[,v1=<hex>…]`, one `v1` per secret, in order, each as
/// [`bakong_khqr::webhook::sign`] makes it. `None` when `secrets` is empty.
#[must_use]
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a [u8]>,
    timestamp_ms: u64,
    body: &[u8],
) -> Option<String> {
    let mut header: Option<String> = None;
    for secret in secrets {
        let one = bakong_khqr::webhook::sign(secret, timestamp_ms, body);
        match &mut header {
            None => header = Some(one),
            Some(h) => {
                // `one` is `t=<ms>,v1=<hex>`: keep its `,v1=<hex>`.
                if let Some(at) = one.find(",v1=") {
                    h.push_str(&one[at..]);
                }
            }
        }
    }
    header
}

/// Whether any of `hashes` is `hash`, each compared in constant time.
fn any_equal(hashes: &[String], hash: &str) -> bool {
    let mut found = subtle::Choice::from(0);
    for h in hashes {
        found |= h.as_bytes().ct_eq(hash.as_bytes());
    }
    found.into()
}

/// Who made a request: nobody in particular, or a merchant by its key.
#[derive(Clone, Debug, Default)]
pub enum Caller {
    /// No `Authorization` header.
    #[default]
    Anonymous,
    /// A valid live key of this (enabled) merchant.
    Merchant(Arc<Merchant>),
    /// A valid test key of this (enabled) merchant: the same rights as its
    /// live key, but its QRs are test QRs (never sent to Bakong, paid only
    /// through the test route), and only it reaches the test route.
    Test(Arc<Merchant>),
}

impl Caller {
    /// The merchant, if the request was keyed (live or test key).
    #[must_use]
    pub fn merchant(&self) -> Option<&Merchant> {
        match self {
            Caller::Anonymous => None,
            Caller::Merchant(m) | Caller::Test(m) => Some(m),
        }
    }

    /// Whether the request carried a test key.
    #[must_use]
    pub fn is_test(&self) -> bool {
        matches!(self, Caller::Test(_))
    }
}

impl Caller {
    /// Whom the request's rate limit and quota are charged to: the merchant,
    /// or the anonymous `client` (its address key).
    #[must_use]
    pub fn payer<'a>(&'a self, client: &'a str) -> crate::store::Payer<'a> {
        match self {
            Caller::Anonymous => crate::store::Payer::Client(client),
            Caller::Merchant(m) | Caller::Test(m) => crate::store::Payer::Merchant(&m.id),
        }
    }
}

/// Why a request's key was not accepted.
#[derive(Debug)]
pub enum AuthError {
    /// A malformed `Authorization` header, or a key that is nobody's or a
    /// disabled merchant's: 401.
    BadKey,
    /// The store could not be asked: 503.
    Store(StoreError),
}

/// Who sent a request with these `Authorization` header values: nobody in
/// particular without one, else the enabled merchant holding the key
/// (found by its [`key_hash`], then compared in constant time).
///
/// # Errors
/// [`AuthError::BadKey`] for a malformed header, an unknown key or a disabled
/// merchant; [`AuthError::Store`] if the store fails.
pub async fn authenticate<'a, S: MerchantStore>(
    store: &S,
    authorization: impl Iterator<Item = &'a [u8]>,
) -> Result<Caller, AuthError> {
    let key = match presented(authorization) {
        Presented::Nothing => return Ok(Caller::Anonymous),
        Presented::Malformed => return Err(AuthError::BadKey),
        Presented::Key(k) => k,
    };
    let hash = key_hash(key);
    match store.merchant_by_key(&hash).await {
        Ok(Some(m)) if !m.disabled && m.has_key_hash(&hash) => Ok(Caller::Merchant(m)),
        Ok(Some(m)) if !m.disabled && m.has_test_key_hash(&hash) => Ok(Caller::Test(m)),
        Ok(_) => Err(AuthError::BadKey),
        Err(e) => Err(AuthError::Store(e)),
    }
}

/// What the `Authorization` header of a request holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    /// No `Authorization` header.
    Nothing,
    /// `Bearer <token>` with a token of API-key shape.
    Key(&'a str),
    /// Anything else: another scheme, several headers, a token that cannot
    /// be a key.
    Malformed,
}

/// Reads the `Authorization` headers (`values`, all of them): the scheme
/// `Bearer` is matched without regard to case (RFC 7235), the token must have
/// the shape of a key ([`is_key_shaped`]).
pub fn presented<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Presented<'a> {
    let Some(first) = values.next() else {
        return Presented::Nothing;
    };
    if values.next().is_some() {
        return Presented::Malformed;
    }
    let Ok(text) = std::str::from_utf8(first) else {
        return Presented::Malformed;
    };
    let text = text.trim();
    let Some((scheme, token)) = text.split_once(' ') else {
        return Presented::Malformed;
    };
    let token = token.trim();
    if scheme.eq_ignore_ascii_case("bearer") && is_key_shaped(token) {
        Presented::Key(token)
    } else {
        Presented::Malformed
    }
}

/// Why a save was refused by the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaveConflict {
    /// `create` was asked and a merchant with this id exists.
    Exists,
    /// The `bakongid` belongs to the merchant named.
    Claimed(String, String),
}

#[derive(Default)]
struct Tables {
    merchants: HashMap<String, Arc<Merchant>>,
    key_owners: HashMap<String, String>,
    account_owners: HashMap<String, String>,
}

/// The merchants of the in-memory store: three maps behind one lock (id ->
/// merchant, key hash -> id, `bakongid` -> id). Every lookup is O(1).
#[derive(Default)]
pub struct MerchantTable {
    tables: RwLock<Tables>,
}

impl MerchantTable {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.tables
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores `m` (replacing the merchant with its id unless `create`), its
    /// key hashes and its `bakongid`s, dropping the old merchant's others.
    ///
    /// # Errors
    /// [`SaveConflict`]: nothing was changed.
    pub fn save(&self, m: &Merchant, create: bool) -> Result<(), SaveConflict> {
        let mut t = self
            .tables
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if create && t.merchants.contains_key(&m.id) {
            return Err(SaveConflict::Exists);
        }
        for b in &m.bakong_ids {
            if let Some(owner) = t.account_owners.get(b).filter(|o| **o != m.id) {
                return Err(SaveConflict::Claimed(b.clone(), owner.clone()));
            }
        }
        if let Some(old) = t.merchants.get(&m.id).cloned() {
            for h in old.all_key_hashes() {
                t.key_owners.remove(h);
            }
            for b in &old.bakong_ids {
                t.account_owners.remove(b);
            }
        }
        for h in m.all_key_hashes() {
            t.key_owners.insert(h.clone(), m.id.clone());
        }
        for b in &m.bakong_ids {
            t.account_owners.insert(b.clone(), m.id.clone());
        }
        t.merchants.insert(m.id.clone(), Arc::new(m.clone()));
        Ok(())
    }

    /// The merchant with this id.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<Arc<Merchant>> {
        self.read().merchants.get(id).cloned()
    }

    /// The merchant holding the key whose hash is `hash`.
    #[must_use]
    pub fn by_key_hash(&self, hash: &str) -> Option<Arc<Merchant>> {
        let t = self.read();
        t.key_owners
            .get(hash)
            .and_then(|id| t.merchants.get(id))
            .cloned()
    }

    /// The id of the merchant holding `bakong_id`.
    #[must_use]
    pub fn owner_of(&self, bakong_id: &str) -> Option<String> {
        self.read().account_owners.get(bakong_id).cloned()
    }

    /// Every merchant, by id.
    #[must_use]
    pub fn list(&self) -> Vec<Arc<Merchant>> {
        let mut all: Vec<_> = self.read().merchants.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

/// Where merchants are kept: the store's side of `khqr-server merchant …`
/// and of every keyed request. Both stores implement it.
pub trait MerchantStore: Send + Sync {
    /// Stores `m` (a new merchant if `create`, else replacing the one with
    /// its id), its key hashes and its `bakongid`s, atomically; the old
    /// merchant's other key hashes and `bakongid`s are dropped.
    fn merchant_save(
        &self,
        m: &Merchant,
        create: bool,
    ) -> impl std::future::Future<Output = Result<Result<(), SaveConflict>, StoreError>> + Send;

    /// The merchant with this id.
    fn merchant_get(
        &self,
        id: &str,
    ) -> impl std::future::Future<Output = Result<Option<Arc<Merchant>>, StoreError>> + Send;

    /// The merchant holding the API key whose [`key_hash`] is `hash`.
    fn merchant_by_key(
        &self,
        hash: &str,
    ) -> impl std::future::Future<Output = Result<Option<Arc<Merchant>>, StoreError>> + Send;

    /// Every merchant, by id.
    fn merchant_list(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<Arc<Merchant>>, StoreError>> + Send;

    /// The id of the merchant holding `bakong_id`, if any.
    fn bakong_id_owner(
        &self,
        bakong_id: &str,
    ) -> impl std::future::Future<Output = Result<Option<String>, StoreError>> + Send;
}

impl MerchantStore for MerchantTable {
    async fn merchant_save(
        &self,
        m: &Merchant,
        create: bool,
    ) -> Result<Result<(), SaveConflict>, StoreError> {
        Ok(self.save(m, create))
    }

    async fn merchant_get(&self, id: &str) -> Result<Option<Arc<Merchant>>, StoreError> {
        Ok(self.get(id))
    }

    async fn merchant_by_key(&self, hash: &str) -> Result<Option<Arc<Merchant>>, StoreError> {
        Ok(self.by_key_hash(hash))
    }

    async fn merchant_list(&self) -> Result<Vec<Arc<Merchant>>, StoreError> {
        Ok(self.list())
    }

    async fn bakong_id_owner(&self, bakong_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.owner_of(bakong_id))
    }
}

/// `khqr-server merchant …`: the operator's commands. Each prints one JSON
/// value on standard output.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum MerchantCommand {
    /// Adds a merchant; prints its API key and webhook secret, once.
    Add {
        /// Its id: 1 to 64 of a-z, 0-9, _ and -.
        id: String,
        /// Its display name.
        #[arg(long)]
        name: String,
        /// A Bakong account (account@bank) it may create QRs for; repeat the
        /// option for several. Each belongs to one merchant only.
        #[arg(long = "bakongid", required = true)]
        bakong_ids: Vec<String>,
    },
    /// Lists the merchants (never a key or a secret).
    List,
    /// Replaces a merchant's API key with a new one, printed once; the old
    /// key is refused (401) at once.
    RotateKey {
        /// The merchant's id.
        id: String,
    },
    /// Replaces a merchant's test key with a new one, printed once (the
    /// live keys stay). A test key's QRs are test QRs: never sent to Bakong,
    /// paid only with `POST /khqr/merchant/test/pay/{tran}`, their events
    /// marked `"test": true`.
    TestKey {
        /// The merchant's id.
        id: String,
    },
    /// Makes a new webhook secret, printed once. The previous secrets keep
    /// signing (each event carries one `v1=` per live secret) for the grace period.
    RotateSecret {
        /// The merchant's id.
        id: String,
        /// How long the previous secrets stay live, in seconds.
        #[arg(long, default_value_t = 86_400)]
        grace_secs: u64,
    },
    /// Disables a merchant: its keys get 401 and its webhooks stop.
    Disable {
        /// The merchant's id.
        id: String,
    },
    /// Enables a disabled merchant again.
    Enable {
        /// The merchant's id.
        id: String,
    },
}

async fn save<S: MerchantStore>(
    store: &S,
    m: &Merchant,
    create: bool,
) -> Result<(), MerchantError> {
    match store.merchant_save(m, create).await? {
        Ok(()) => Ok(()),
        Err(SaveConflict::Exists) => Err(MerchantError::Exists(m.id.clone())),
        Err(SaveConflict::Claimed(bakong_id, by)) => Err(MerchantError::Claimed { bakong_id, by }),
    }
}

async fn load<S: MerchantStore>(store: &S, id: &str) -> Result<Merchant, MerchantError> {
    check_id(id)?;
    match store.merchant_get(id).await? {
        Some(m) => Ok((*m).clone()),
        None => Err(MerchantError::NotFound(id.to_owned())),
    }
}

/// Runs one operator command on `store` at `now_ms` (ms since the Unix
/// epoch) and returns what to print: `add` gives `{id, key, secret}`,
/// `rotate-key` `{id, key}`, `test-key` `{id, testKey}`, `rotate-secret` `{id, secret,
/// previousUntilMs}`, `list` an array of [`MerchantView`], `disable` and
/// `enable` the merchant's [`MerchantView`]. A command reads, changes and
/// writes one merchant: two commands on one merchant at the same moment may
/// lose one's change (run them one at a time).
///
/// # Errors
/// [`MerchantError`]: bad input, an unknown id, a `bakongid` held by another
/// merchant, or the store.
pub async fn run<S: MerchantStore>(
    store: &S,
    cmd: &MerchantCommand,
    now_ms: u64,
) -> Result<serde_json::Value, MerchantError> {
    let out = match cmd {
        MerchantCommand::Add {
            id,
            name,
            bakong_ids,
        } => {
            let (m, issued) = Merchant::new(id, name, bakong_ids, now_ms)?;
            save(store, &m, true).await?;
            serde_json::to_value(&issued)
        }
        MerchantCommand::List => {
            let all = store.merchant_list().await?;
            serde_json::to_value(all.iter().map(|m| m.view(now_ms)).collect::<Vec<_>>())
        }
        MerchantCommand::RotateKey { id } => {
            let mut m = load(store, id).await?;
            let key = m.rotate_key();
            save(store, &m, false).await?;
            Ok(serde_json::json!({ "id": m.id, "key": key }))
        }
        MerchantCommand::TestKey { id } => {
            let mut m = load(store, id).await?;
            let key = m.rotate_test_key();
            save(store, &m, false).await?;
            Ok(serde_json::json!({ "id": m.id, "testKey": key }))
        }
        MerchantCommand::RotateSecret { id, grace_secs } => {
            let mut m = load(store, id).await?;
            let secret = m.rotate_secret(now_ms, grace_secs.saturating_mul(1000));
            save(store, &m, false).await?;
            let until = m.view(now_ms).rotation_ends_ms;
            Ok(serde_json::json!({ "id": m.id, "secret": secret, "previousUntilMs": until }))
        }
        MerchantCommand::Disable { id } | MerchantCommand::Enable { id } => {
            let mut m = load(store, id).await?;
            m.disabled = matches!(cmd, MerchantCommand::Disable { .. });
            save(store, &m, false).await?;
            serde_json::to_value(m.view(now_ms))
        }
    };
    // Serializing these plain structs cannot fail.
    Ok(out.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn keys_and_secrets_have_their_shape_and_differ() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), KEY_PREFIX.len() + 64);
        assert!(is_key_shaped(&a) && is_key_shaped(&b));
        let s = new_secret();
        assert!(s.starts_with(SECRET_PREFIX) && s.len() == SECRET_PREFIX.len() + 64);
        for bad in [
            "",
            "khqr_sk_",
            &a[..a.len() - 1],
            &format!("{a}0"),
            &a.to_uppercase(),
            &s,
            &a.replace('a', "g"),
        ] {
            if bad != a {
                assert!(!is_key_shaped(bad), "{bad}");
            }
        }
    }

    #[test]
    fn key_hash_is_sha256_hex() {
        // FIPS 180-4 example "abc".
        assert_eq!(
            key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (m, issued) = Merchant::new("shop-1", "Shop", &ids(&["shop@abaa"]), 1_000).unwrap();
        assert!(m.has_key_hash(&key_hash(&issued.key)));
        assert!(!m.has_key_hash(&key_hash(&new_key())));
        assert!(!m.has_key_hash(""));
        assert!(!serde_json::to_string(&m).unwrap().contains(&issued.key));
    }

    #[test]
    fn new_checks_its_input() {
        let one = ids(&["shop@abaa"]);
        assert!(matches!(
            Merchant::new("Shop", "S", &one, 0),
            Err(MerchantError::InvalidId(_))
        ));
        assert!(matches!(
            Merchant::new(&"a".repeat(65), "S", &one, 0),
            Err(MerchantError::InvalidId(_))
        ));
        assert!(matches!(
            Merchant::new("a", " ", &one, 0),
            Err(MerchantError::InvalidName)
        ));
        assert!(matches!(
            Merchant::new("a", "x\ny", &one, 0),
            Err(MerchantError::InvalidName)
        ));
        for bad in [
            "shop",
            "@abaa",
            "shop@",
            "sh op@abaa",
            &format!("{}@abaa", "x".repeat(28)),
        ] {
            assert!(
                matches!(
                    Merchant::new("a", "S", &ids(&[bad]), 0),
                    Err(MerchantError::InvalidBakongId(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            Merchant::new("a", "S", &[], 0),
            Err(MerchantError::BakongIdCount)
        ));
        let (m, _) =
            Merchant::new("a", " Shop ", &ids(&[" x@abaa", "X@abaa", "y@wing"]), 5).unwrap();
        assert_eq!(m.name, "Shop");
        assert_eq!(m.bakong_ids, ids(&["x@abaa", "y@wing"]));
        assert!(m.may_use("y@wing") && m.may_use(" x@abaa ") && !m.may_use("z@abaa"));
        assert!(m.may_use("Y@Wing"));
        assert_eq!(m.created_ms, 5);
    }

    #[test]
    fn rotating_the_secret_keeps_the_old_one_for_the_grace_period() {
        let (mut m, issued) = Merchant::new("a", "S", &ids(&["x@abaa"]), 0).unwrap();
        let live = |m: &Merchant, t| m.live_secrets(t).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(live(&m, 10), vec![issued.secret.clone()]);
        let second = m.rotate_secret(1_000, 500);
        assert_ne!(second, issued.secret);
        assert_eq!(live(&m, 1_499), vec![second.clone(), issued.secret.clone()]);
        assert_eq!(live(&m, 1_500), vec![second.clone()]);
        assert_eq!(m.view(1_200).rotation_ends_ms, Some(1_500));
        assert_eq!(m.view(1_200).live_secrets, 2);
        // A second rotation inside the grace period does not extend the first
        // secret's life; a rotation after it drops the ended secret.
        let third = m.rotate_secret(1_100, 10_000);
        assert_eq!(
            live(&m, 1_200),
            vec![third.clone(), second.clone(), issued.secret.clone()]
        );
        assert_eq!(live(&m, 1_600), vec![third.clone(), second.clone()]);
        let fourth = m.rotate_secret(20_000, 0);
        assert_eq!(m.secrets.len(), 1);
        assert_eq!(live(&m, 20_000), vec![fourth]);
        assert!(!format!("{m:?}").contains(SECRET_PREFIX));
    }

    #[test]
    fn rotating_the_key_drops_every_old_key() {
        let (mut m, issued) = Merchant::new("a", "S", &ids(&["x@abaa"]), 0).unwrap();
        let key = m.rotate_key();
        assert!(m.has_key_hash(&key_hash(&key)));
        assert!(!m.has_key_hash(&key_hash(&issued.key)));
        assert_eq!(m.view(0).keys, 1);
    }

    #[test]
    fn one_v1_per_live_secret_and_each_verifies() {
        use bakong_khqr::webhook::verify_webhook_signature;
        let body = br#"{"type":"khqr.paid"}"#;
        let t = 1_700_000_000_000;
        let h = signature_header([b"old".as_slice(), b"new".as_slice()], t, body).unwrap();
        assert_eq!(h.matches("v1=").count(), 2, "{h}");
        assert!(h.starts_with("t=1700000000000,v1="));
        assert_eq!(verify_webhook_signature(b"old", &h, body, t), Ok(t));
        assert_eq!(verify_webhook_signature(b"new", &h, body, t), Ok(t));
        assert!(verify_webhook_signature(b"other", &h, body, t).is_err());
        let one = signature_header([b"old".as_slice()], t, body).unwrap();
        assert_eq!(one, bakong_khqr::webhook::sign(b"old", t, body));
        assert_eq!(signature_header([], t, body), None);
    }

    #[test]
    fn authorization_header_forms() {
        let key = new_key();
        let v = |s: &str| s.as_bytes().to_vec();
        let one = |s: &str| {
            let owned = v(s);
            match presented(std::iter::once(owned.as_slice())) {
                Presented::Key(k) => Some(k.to_owned()),
                Presented::Nothing => Some(String::new()),
                Presented::Malformed => None,
            }
        };
        assert_eq!(presented(std::iter::empty()), Presented::Nothing);
        assert_eq!(one(&format!("Bearer {key}")), Some(key.clone()));
        assert_eq!(one(&format!("bearer  {key} ")), Some(key.clone()));
        assert_eq!(one(&format!("Basic {key}")), None);
        assert_eq!(one("Bearer "), None);
        assert_eq!(one("Bearer khqr_sk_123"), None);
        assert_eq!(one(&key), None);
        let a = v(&format!("Bearer {key}"));
        assert_eq!(
            presented([a.as_slice(), a.as_slice()].into_iter()),
            Presented::Malformed
        );
        assert_eq!(
            presented(std::iter::once(b"Bearer \xff".as_slice())),
            Presented::Malformed
        );
    }

    #[test]
    fn the_memory_table_keeps_its_indexes_in_step() {
        let t = MerchantTable::default();
        let (mut a, ka) = Merchant::new("a", "A", &ids(&["x@abaa", "y@abaa"]), 0).unwrap();
        let (b, _) = Merchant::new("b", "B", &ids(&["y@abaa"]), 0).unwrap();
        t.save(&a, true).unwrap();
        assert_eq!(t.save(&a, true), Err(SaveConflict::Exists));
        assert_eq!(
            t.save(&b, true),
            Err(SaveConflict::Claimed("y@abaa".into(), "a".into()))
        );
        assert!(t.get("b").is_none());
        assert_eq!(t.by_key_hash(&key_hash(&ka.key)).unwrap().id, "a");
        assert_eq!(t.owner_of("y@abaa").as_deref(), Some("a"));
        let new_key = a.rotate_key();
        a.bakong_ids = ids(&["x@abaa"]);
        t.save(&a, false).unwrap();
        assert!(t.by_key_hash(&key_hash(&ka.key)).is_none());
        assert_eq!(t.by_key_hash(&key_hash(&new_key)).unwrap().id, "a");
        assert_eq!(t.owner_of("y@abaa"), None);
        t.save(&b, true).unwrap();
        assert_eq!(
            t.list().iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
    }

    #[tokio::test]
    async fn a_test_key_is_a_test_caller_and_rotates_on_its_own() {
        let t = MerchantTable::default();
        let (m, issued) = Merchant::new("a", "A", &ids(&["x@abaa"]), 0).unwrap();
        t.save(&m, true).unwrap();
        let out = run(&t, &MerchantCommand::TestKey { id: "a".into() }, 5)
            .await
            .unwrap();
        let test_key = out["testKey"].as_str().unwrap().to_owned();
        assert!(is_key_shaped(&test_key));
        assert_ne!(test_key, issued.key);
        let who = |k: &str| {
            let header = format!("Bearer {k}").into_bytes();
            let t = &t;
            async move { authenticate(t, std::iter::once(header.as_slice())).await }
        };
        assert!(matches!(who(&issued.key).await, Ok(Caller::Merchant(_))));
        match who(&test_key).await {
            Ok(c @ Caller::Test(_)) => {
                assert!(c.is_test());
                assert_eq!(c.merchant().unwrap().id, "a");
            }
            other => panic!("{other:?}"),
        }
        // A new test key drops the old one and leaves the live key alone.
        let again = run(&t, &MerchantCommand::TestKey { id: "a".into() }, 6)
            .await
            .unwrap();
        let second = again["testKey"].as_str().unwrap().to_owned();
        assert!(matches!(who(&test_key).await, Err(AuthError::BadKey)));
        assert!(matches!(who(&second).await, Ok(Caller::Test(_))));
        assert!(matches!(who(&issued.key).await, Ok(Caller::Merchant(_))));
        // Rotating the live key leaves the test key alone.
        run(&t, &MerchantCommand::RotateKey { id: "a".into() }, 7)
            .await
            .unwrap();
        assert!(matches!(who(&issued.key).await, Err(AuthError::BadKey)));
        assert!(matches!(who(&second).await, Ok(Caller::Test(_))));
        let view = t.get("a").unwrap().view(7);
        assert_eq!((view.keys, view.test_keys), (1, 1));
    }

    #[test]
    fn a_merchant_stored_before_test_keys_loads_without_any() {
        let old = r#"{"id":"a","name":"A","bakongIds":["x@abaa"],"keyHashes":["00"],"secrets":[],"createdMs":1}"#;
        let m: Merchant = serde_json::from_str(old).unwrap();
        assert!(m.test_key_hashes.is_empty());
        assert!(!serde_json::to_string(&m).unwrap().contains("testKeyHashes"));
    }

    #[tokio::test]
    async fn operator_commands_on_the_memory_table() {
        let t = MerchantTable::default();
        let add = |id: &str, b: &str| MerchantCommand::Add {
            id: id.into(),
            name: format!("Shop {id}"),
            bakong_ids: vec![b.into()],
        };
        let issued = run(&t, &add("a", "x@abaa"), 1_000).await.unwrap();
        let key = issued["key"].as_str().unwrap().to_owned();
        let secret = issued["secret"].as_str().unwrap().to_owned();
        assert!(is_key_shaped(&key) && secret.starts_with(SECRET_PREFIX));
        assert!(matches!(
            run(&t, &add("a", "z@abaa"), 1_000).await,
            Err(MerchantError::Exists(_))
        ));
        match run(&t, &add("b", "x@abaa"), 1_000).await {
            Err(MerchantError::Claimed { bakong_id, by }) => {
                assert_eq!((bakong_id.as_str(), by.as_str()), ("x@abaa", "a"));
            }
            other => panic!("{other:?}"),
        }
        let list = run(&t, &MerchantCommand::List, 2_000).await.unwrap();
        let text = list.to_string();
        assert!(!text.contains(&key) && !text.contains(&secret), "{text}");
        assert!(!text.contains(&key_hash(&key)), "{text}");
        assert_eq!(list[0]["id"], "a");
        assert_eq!(list[0]["bakongIds"][0], "x@abaa");
        let rotated = run(&t, &MerchantCommand::RotateKey { id: "a".into() }, 3_000)
            .await
            .unwrap();
        let key2 = rotated["key"].as_str().unwrap();
        assert!(t.by_key_hash(&key_hash(&key)).is_none());
        assert_eq!(t.by_key_hash(&key_hash(key2)).unwrap().id, "a");
        let cmd = MerchantCommand::RotateSecret {
            id: "a".into(),
            grace_secs: 60,
        };
        let r = run(&t, &cmd, 4_000).await.unwrap();
        assert_eq!(r["previousUntilMs"], 64_000);
        let m = t.get("a").unwrap();
        let live: Vec<&str> = m.live_secrets(5_000).collect();
        assert_eq!(live, vec![r["secret"].as_str().unwrap(), secret.as_str()]);
        let v = run(&t, &MerchantCommand::Disable { id: "a".into() }, 5_000)
            .await
            .unwrap();
        assert_eq!(v["disabled"], true);
        assert!(t.get("a").unwrap().disabled);
        run(&t, &MerchantCommand::Enable { id: "a".into() }, 5_000)
            .await
            .unwrap();
        assert!(!t.get("a").unwrap().disabled);
        assert!(matches!(
            run(&t, &MerchantCommand::Disable { id: "zz".into() }, 0).await,
            Err(MerchantError::NotFound(_))
        ));
        assert!(matches!(
            run(&t, &MerchantCommand::Disable { id: "Z Z".into() }, 0).await,
            Err(MerchantError::InvalidId(_))
        ));
    }
}
