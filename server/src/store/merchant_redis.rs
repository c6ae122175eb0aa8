//! Merchants in Redis. Keys, under the prefix `khqr:`: `khqr:m:{id}` (the
//! merchant as JSON), `khqr:ms` (the set of ids), `khqr:mk:{key hash}` and
//! `khqr:mb:{bakongid}` (each the id of the merchant holding it). A save is
//! one script (`lua/merchant_save.lua`), so the indexes never disagree with
//! the merchant; finding a key's merchant is one script too (one round trip).

use std::sync::{Arc, OnceLock};

use super::{redis_error, RedisStore, StoreError, PREFIX};
use crate::merchant::{Merchant, MerchantStore, SaveConflict};

fn script(cell: &'static OnceLock<redis::Script>, source: &str) -> &'static redis::Script {
    cell.get_or_init(|| redis::Script::new(source))
}

fn save_script() -> &'static redis::Script {
    static CELL: OnceLock<redis::Script> = OnceLock::new();
    script(&CELL, include_str!("lua/merchant_save.lua"))
}

fn by_key_script() -> &'static redis::Script {
    static CELL: OnceLock<redis::Script> = OnceLock::new();
    script(&CELL, include_str!("lua/merchant_by_key.lua"))
}

fn parse(json: &str) -> Result<Arc<Merchant>, StoreError> {
    serde_json::from_str(json)
        .map(Arc::new)
        .map_err(|e| StoreError(format!("redis: unreadable merchant: {e}")))
}

impl MerchantStore for RedisStore {
    async fn merchant_save(
        &self,
        m: &Merchant,
        create: bool,
    ) -> Result<Result<(), SaveConflict>, StoreError> {
        let json = serde_json::to_string(m).map_err(|e| StoreError(e.to_string()))?;
        let (code, detail): (i64, String) = save_script()
            .key(format!("{PREFIX}m:{}", m.id))
            .key(format!("{PREFIX}ms"))
            .arg(json)
            .arg(if create { "1" } else { "0" })
            .arg(&m.id)
            .arg(PREFIX)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        match code {
            0 => Ok(Ok(())),
            1 => Ok(Err(SaveConflict::Exists)),
            2 => {
                let (b, owner) = detail.split_once(' ').unwrap_or((detail.as_str(), ""));
                Ok(Err(SaveConflict::Claimed(b.to_owned(), owner.to_owned())))
            }
            _ => Err(StoreError("redis: unexpected script answer".into())),
        }
    }

    async fn merchant_get(&self, id: &str) -> Result<Option<Arc<Merchant>>, StoreError> {
        let json: Option<String> = redis::cmd("GET")
            .arg(format!("{PREFIX}m:{id}"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        json.as_deref().map(parse).transpose()
    }

    async fn merchant_by_key(&self, hash: &str) -> Result<Option<Arc<Merchant>>, StoreError> {
        let json: Option<String> = by_key_script()
            .key(format!("{PREFIX}mk:{hash}"))
            .arg(format!("{PREFIX}m:"))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        json.as_deref().map(parse).transpose()
    }

    async fn merchant_list(&self) -> Result<Vec<Arc<Merchant>>, StoreError> {
        let mut conn = self.conn.clone();
        let mut ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{PREFIX}ms"))
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        ids.sort();
        let keys: Vec<String> = ids.iter().map(|id| format!("{PREFIX}m:{id}")).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        values.iter().flatten().map(|v| parse(v)).collect()
    }

    async fn bakong_id_owner(&self, bakong_id: &str) -> Result<Option<String>, StoreError> {
        redis::cmd("GET")
            .arg(format!("{PREFIX}mb:{bakong_id}"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))
    }
}
