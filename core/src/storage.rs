//! One SQLite database in the data dir, with a key/value namespace per interface so that plugin state
//! (volume, alerts, settings) survives restarts and OTA swaps of the plugin that wrote it.

use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open the database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot start the WAL checkpoint thread: {0}")]
    Checkpointer(std::io::Error),
}

/// Cheap to clone; calls are short and synchronous (plugins call them from their own threads).
#[derive(Clone)]
pub struct Storage {
    shared: Arc<Shared>,
}

/// Dropped in this order: the connection (and its WAL hook) before the checkpointer is joined.
struct Shared {
    db: Mutex<Connection>,
    /// Held for its drop, which joins the thread; tests also read its count.
    #[cfg_attr(not(test), allow(dead_code))]
    checkpointer: Option<Checkpointer>,
}

/// SQLite's own default for an automatic checkpoint.
const CHECKPOINT_PAGES: i32 = 1000;
const RESTART_PAGES: i32 = 10 * CHECKPOINT_PAGES;

impl Storage {
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let open_err = |source| StorageError::Open { path: path.display().to_string(), source };
        let mut db = Connection::open(path).map_err(open_err)?;
        // WAL keeps a write from blocking readers and survives a power cut mid-write.
        db.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        db.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
        let checkpointer = Checkpointer::start(path, &mut db)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (
                 namespace TEXT NOT NULL,
                 key TEXT NOT NULL,
                 value TEXT NOT NULL,
                 PRIMARY KEY (namespace, key)
             ) WITHOUT ROWID;",
        )
        .map_err(open_err)?;
        Ok(Storage { shared: Arc::new(Shared { db: Mutex::new(db), checkpointer }) })
    }

    /// How many checkpoints the checkpointer ran, once there are more than `seen` (up to `timeout`).
    #[cfg(test)]
    fn checkpoints_after(&self, seen: u64, timeout: std::time::Duration) -> u64 {
        let Some(checkpointer) = &self.shared.checkpointer else { return 0 };
        let (count, ran) = &*checkpointer.done;
        let count = count.lock().unwrap();
        *ran.wait_timeout_while(count, timeout, |count| *count <= seen).unwrap().0
    }

    /// Runs `f` with the connection; every table of the data dir goes through here, one call at a time.
    /// Statements run per directive or event are `prepare_cached`: parsing the SQL each time cost more
    /// than running it.
    pub(crate) fn with_db<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StorageError> {
        let db = self.shared.db.lock().unwrap_or_else(|e| e.into_inner());
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

/// Checkpoints the WAL on a thread and a connection of its own. SQLite's automatic checkpoint runs
/// in whichever thread's commit crosses 1,000 pages — a plugin's, in the middle of a directive — and
/// writing the pages back and syncing the file takes milliseconds: it set the default mix's p99
/// dispatch latency at half rate (3.4–3.7 ms). Here a PASSIVE checkpoint, which takes no lock a
/// writer waits for, runs each time the WAL has grown by 1,000 pages. Under sustained writes it never
/// catches up with the last commit, so the WAL is not restarted: past 10,000 pages a RESTART follows,
/// which does hold writers up, for the little the PASSIVE one left (p99 0.85–0.88 ms; a RESTART at
/// every wake-up gave 1.5–1.6 ms, and PASSIVE alone let the WAL grow without bound).
struct Checkpointer {
    wake: SyncSender<Wake>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Checkpoints run, for tests to await.
    #[cfg_attr(not(test), allow(dead_code))]
    done: Arc<(Mutex<u64>, Condvar)>,
}

enum Wake {
    /// The WAL has this many pages.
    Checkpoint(std::ffi::c_int),
    Stop,
}

impl Checkpointer {
    /// None for a database that is not in WAL mode (in memory), which never needs one.
    fn start(path: &Path, db: &mut Connection) -> Result<Option<Checkpointer>, StorageError> {
        let mode: String = db.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Ok(None);
        }
        let own =
            Connection::open(path).map_err(|source| StorageError::Open { path: path.display().to_string(), source })?;
        // At most one wake-up waits: commits while a checkpoint runs need no second one.
        let (wake, woken) = sync_channel(1);
        let done = Arc::new((Mutex::new(0), Condvar::new()));
        let ran = done.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                for wake in woken {
                    let Wake::Checkpoint(pages) = wake else { break };
                    let checkpoint =
                        |mode: &str| own.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()));
                    let checkpointed = checkpoint("PASSIVE");
                    let checkpointed = if pages >= RESTART_PAGES {
                        checkpointed.and_then(|()| checkpoint("RESTART"))
                    } else {
                        checkpointed
                    };
                    match checkpointed {
                        Ok(()) => {
                            let (count, ran) = &*ran;
                            *count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                            ran.notify_all();
                        }
                        Err(e) => tracing::warn!("WAL checkpoint failed (tried again 1,000 pages on): {e}"),
                    }
                }
            })
            .map_err(StorageError::Checkpointer)?;
        let hook = wake.clone();
        // Replaces the automatic checkpoint (the pragma and this hook are the same SQLite setting).
        // Woken once per CHECKPOINT_PAGES the WAL grows by, not for every commit past the mark: the
        // WAL stays past it until a RESTART, and checkpointing back to back cost 115 µs of CPU per
        // directive of the default mix, against 97–100.
        let mut woken_at = 0;
        db.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
            if pages < woken_at {
                woken_at = 0; // restarted
            }
            if pages >= woken_at + CHECKPOINT_PAGES {
                woken_at = pages;
                let _ = hook.try_send(Wake::Checkpoint(pages));
            }
            Ok(())
        }))?;
        Ok(Some(Checkpointer { wake, thread: Some(thread), done }))
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let _ = self.wake.send(Wake::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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

    #[test]
    fn the_wal_is_checkpointed_by_a_thread_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(&dir.path().join("avs.db")).unwrap();
        let value = "x".repeat(3000);
        // Each commit adds at least a page to the WAL: past 1,000 pages the checkpointer is woken.
        for i in 0..1200 {
            s.put("Speaker", &format!("key-{i}"), &value).unwrap();
        }
        let ran = s.checkpoints_after(0, std::time::Duration::from_secs(20));
        assert!(ran >= 1, "no checkpoint ran after 1,200 commits");
        assert_eq!(s.entries("Speaker").unwrap().len(), 1200);
    }
}
