//! One SQLite database in the data dir, with a key/value namespace per interface so that plugin state
//! (volume, alerts, settings) survives restarts and OTA swaps of the plugin that wrote it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open the database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Cheap to clone; calls are short and synchronous (plugins call them from their own threads).
#[derive(Clone)]
pub struct Storage {
    db: Arc<Mutex<Connection>>,
}

impl Storage {
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let open_err = |source| StorageError::Open { path: path.display().to_string(), source };
        let db = Connection::open(path).map_err(open_err)?;
        // WAL keeps a write from blocking readers and survives a power cut mid-write.
        db.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        db.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (
                 namespace TEXT NOT NULL,
                 key TEXT NOT NULL,
                 value TEXT NOT NULL,
                 PRIMARY KEY (namespace, key)
             ) WITHOUT ROWID;",
        )
        .map_err(open_err)?;
        Ok(Storage { db: Arc::new(Mutex::new(db)) })
    }

    /// Runs `f` with the connection; every table of the data dir goes through here, one call at a time.
    /// Statements run per directive or event are `prepare_cached`: parsing the SQL each time cost more
    /// than running it.
    pub(crate) fn with_db<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StorageError> {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        Ok(f(&db)?)
    }

    pub fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, StorageError> {
        self.with_db(|db| {
            db.prepare_cached("SELECT value FROM kv WHERE namespace = ?1 AND key = ?2")?
                .query_row(params![namespace, key], |row| row.get(0))
                .optional()
        })
    }

    pub fn put(&self, namespace: &str, key: &str, value: &str) -> Result<(), StorageError> {
        self.with_db(|db| {
            db.prepare_cached(
                "INSERT INTO kv (namespace, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![namespace, key, value])
            .map(drop)
        })
    }

    pub fn delete(&self, namespace: &str, key: &str) -> Result<(), StorageError> {
        self.with_db(|db| {
            db.execute("DELETE FROM kv WHERE namespace = ?1 AND key = ?2", params![namespace, key]).map(drop)
        })
    }

    /// Every key and value of a namespace, in key order.
    pub fn entries(&self, namespace: &str) -> Result<Vec<(String, String)>, StorageError> {
        self.with_db(|db| {
            let mut statement = db.prepare("SELECT key, value FROM kv WHERE namespace = ?1 ORDER BY key")?;
            let rows = statement.query_map(params![namespace], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })
    }

    pub fn delete_namespace(&self, namespace: &str) -> Result<(), StorageError> {
        self.with_db(|db| db.execute("DELETE FROM kv WHERE namespace = ?1", params![namespace]).map(drop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopening_and_namespaces_are_separate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("avs.db");
        {
            let s = Storage::open(&path).unwrap();
            s.put("Speaker", "state", r#"{"volume":30}"#).unwrap();
            s.put("Speaker", "state", r#"{"volume":40}"#).unwrap();
            s.put("Alerts", "state", "[]").unwrap();
        }
        let s = Storage::open(&path).unwrap();
        assert_eq!(s.get("Speaker", "state").unwrap().as_deref(), Some(r#"{"volume":40}"#));
        assert_eq!(s.get("Alerts", "state").unwrap().as_deref(), Some("[]"));
        assert_eq!(s.get("Notifications", "state").unwrap(), None);
        s.delete_namespace("Speaker").unwrap();
        assert_eq!(s.get("Speaker", "state").unwrap(), None);
        assert_eq!(s.get("Alerts", "state").unwrap().as_deref(), Some("[]"));
    }
}
