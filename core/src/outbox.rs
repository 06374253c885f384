//! The persistent event outbox: events that must reach AVS (the plugin's manifest says which: alerts,
//! volume and settings changes, exceptions…) are written to SQLite before they are queued and removed
//! only once AVS accepted them, so that neither a dead network nor a killed process loses one. After a
//! restart they are sent again, in the order they were first queued, before anything new.
//!
//! An event AVS refused as malformed (400) is not retried unchanged: it leaves the outbox for the
//! `rejected_events` table, a record of what was refused and why.

use rusqlite::params;
use serde_json::value::RawValue;

use crate::events::OutgoingEvent;
use crate::storage::{Storage, StorageError};

/// Cheap to clone: the database connection is shared with `Storage`.
#[derive(Clone)]
pub struct Outbox {
    storage: Storage,
}

/// One refused event, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedEvent {
    pub namespace: String,
    pub name: String,
    pub message_id: String,
    pub status: u16,
    /// AVS's answer body (its exception JSON).
    pub answer: String,
}

impl Outbox {
    pub fn open(storage: Storage) -> Result<Outbox, StorageError> {
        // WAL with synchronous=NORMAL (set by Storage): a committed row survives the process being killed;
        // only a power cut can take the last transactions back.
        // `seq` is the rowid, without AUTOINCREMENT: a new row's rowid is above every row present,
        // which is all the order needs, and AUTOINCREMENT's sqlite_sequence row made each kept event
        // write three WAL pages instead of two. (Tables created with it work the same.)
        storage.with_db(|db| {
            db.execute_batch(
                "CREATE TABLE IF NOT EXISTS outbox (
                     seq INTEGER PRIMARY KEY,
                     message_id TEXT NOT NULL UNIQUE,
                     namespace TEXT NOT NULL,
                     name TEXT NOT NULL,
                     dialog_request_id TEXT,
                     payload TEXT NOT NULL,
                     with_context INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS rejected_events (
                     message_id TEXT PRIMARY KEY,
                     namespace TEXT NOT NULL,
                     name TEXT NOT NULL,
                     status INTEGER NOT NULL,
                     answer TEXT NOT NULL,
                     at TEXT NOT NULL DEFAULT (datetime('now'))
                 );",
            )
        })?;
        Ok(Outbox { storage })
    }

    /// Keeps `event` until `delivered` or `rejected` is called with its messageId.
    pub fn keep(&self, event: &OutgoingEvent) -> Result<(), StorageError> {
        self.storage.with_db(|db| {
            db.prepare_cached(
                "INSERT OR IGNORE INTO outbox (message_id, namespace, name, dialog_request_id, payload, with_context)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                event.message_id,
                event.namespace,
                event.name,
                event.dialog_request_id,
                event.payload.get(),
                event.with_context
            ])
            .map(drop)
        })
    }

    /// AVS accepted these events: they leave in one transaction, one commit however many they are.
    pub fn delivered<'a>(&self, message_ids: impl IntoIterator<Item = &'a str>) -> Result<(), StorageError> {
        self.storage.with_db(|db| {
            let transaction = db.unchecked_transaction()?;
            {
                let mut delete = transaction.prepare_cached("DELETE FROM outbox WHERE message_id = ?1")?;
                for message_id in message_ids {
                    delete.execute([message_id])?;
                }
            }
            transaction.commit()
        })
    }

    /// AVS refused the event for good: it moves to the record of rejected events, in one transaction.
    pub fn rejected(&self, event: &OutgoingEvent, status: u16, answer: &str) -> Result<(), StorageError> {
        self.storage.with_db(|db| {
            db.execute_batch("BEGIN")?;
            let moved = db
                .execute(
                    "INSERT OR REPLACE INTO rejected_events (message_id, namespace, name, status, answer)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![event.message_id, event.namespace, event.name, status, answer],
                )
                .and_then(|_| db.execute("DELETE FROM outbox WHERE message_id = ?1", [&event.message_id]));
            db.execute_batch(if moved.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
            moved.map(drop)
        })
    }

    /// Every event still waiting for AVS, oldest first.
    pub fn pending(&self) -> Result<Vec<OutgoingEvent>, StorageError> {
        self.storage.with_db(|db| {
            let mut statement = db.prepare(
                "SELECT message_id, namespace, name, dialog_request_id, payload, with_context FROM outbox ORDER BY seq",
            )?;
            let rows = statement.query_map([], |row| {
                let payload: String = row.get(4)?;
                let payload = RawValue::from_string(payload)
                    .map_err(|e| rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into()))?;
                let mut event = OutgoingEvent::new(&row.get::<_, String>(1)?, &row.get::<_, String>(2)?, payload);
                event.message_id = row.get(0)?;
                event.dialog_request_id = row.get(3)?;
                event.with_context = row.get(5)?;
                event.must_deliver = true;
                Ok(event)
            })?;
            rows.collect()
        })
    }

    /// What AVS refused, most recent last.
    pub fn rejected_events(&self) -> Result<Vec<RejectedEvent>, StorageError> {
        self.storage.with_db(|db| {
            let mut statement =
                db.prepare("SELECT namespace, name, message_id, status, answer FROM rejected_events ORDER BY rowid")?;
            let rows = statement.query_map([], |row| {
                Ok(RejectedEvent {
                    namespace: row.get(0)?,
                    name: row.get(1)?,
                    message_id: row.get(2)?,
                    status: row.get(3)?,
                    answer: row.get(4)?,
                })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, payload: &str) -> OutgoingEvent {
        let mut event = OutgoingEvent::new("Alerts", name, RawValue::from_string(payload.into()).unwrap());
        event.must_deliver = true;
        event
    }

    #[test]
    fn kept_events_survive_reopening_in_order_until_delivered_or_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("avs.db");
        let (first, second, third) =
            (event("AlertStarted", r#"{"token":"a"}"#), event("AlertStopped", r#"{"token":"a"}"#), {
                let mut e = event("SetAlertSucceeded", r#"{"token":"b"}"#);
                e.with_context = true;
                e.dialog_request_id = Some("dialog-1".into());
                e
            });
        {
            let outbox = Outbox::open(Storage::open(&path).unwrap()).unwrap();
            for e in [&first, &second, &third] {
                outbox.keep(e).unwrap();
            }
            outbox.keep(&first).unwrap(); // kept once, whatever the retries
        }
        let outbox = Outbox::open(Storage::open(&path).unwrap()).unwrap();
        let pending = outbox.pending().unwrap();
        let ids: Vec<_> = pending.iter().map(|e| e.message_id.as_str()).collect();
        assert_eq!(ids, [&first.message_id, &second.message_id, &third.message_id]);
        let restored = &pending[2];
        assert_eq!((restored.namespace.as_str(), restored.name.as_str()), ("Alerts", "SetAlertSucceeded"));
        assert_eq!(restored.payload.get(), r#"{"token":"b"}"#);
        assert_eq!(restored.dialog_request_id.as_deref(), Some("dialog-1"));
        assert!(restored.with_context && restored.must_deliver);

        let fourth = event("AlertStarted", r#"{"token":"c"}"#);
        outbox.keep(&fourth).unwrap();
        outbox.delivered([first.message_id.as_str(), fourth.message_id.as_str()]).unwrap();
        outbox.rejected(&second, 400, r#"{"payload":{"code":"INVALID_REQUEST_EXCEPTION"}}"#).unwrap();
        let ids: Vec<_> = outbox.pending().unwrap().into_iter().map(|e| e.message_id).collect();
        assert_eq!(ids, [third.message_id.as_str()]);
        let rejected = outbox.rejected_events().unwrap();
        assert_eq!(rejected.len(), 1);
        assert_eq!((rejected[0].message_id.as_str(), rejected[0].status), (second.message_id.as_str(), 400));
        assert!(rejected[0].answer.contains("INVALID_REQUEST_EXCEPTION"));
    }
}
