//! Where the coordinator keeps desired state: a few tables of string keys and JSON values,
//! behind [`Store`] so another backend can come later. [`RedbStore`] is the one in use (redb:
//! one file, copy-on-write B-trees, a transaction is durable when `commit` returns);
//! [`MemoryStore`] serves unit tests.
//!
//! The coordinator holds everything in memory and hands the store only what changed, as one
//! batch per round, committed in one transaction: a crash leaves the state before or after the
//! round, never half of it, and an unchanged round writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The tables the coordinator keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// `Kind/namespace/name` → the object as applied.
    Objects,
    /// `namespace/name` → a pod the coordinator made or was given, and its board.
    Pods,
    /// `namespace/name/revision` → a Deployment's pod template of that revision.
    Revisions,
    /// Board name → what the coordinator remembers of a board (cordoned, generation).
    Nodes,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Objects, Table::Pods, Table::Revisions, Table::Nodes];

    fn name(self) -> &'static str {
        match self {
            Table::Objects => "objects",
            Table::Pods => "pods",
            Table::Revisions => "revisions",
            Table::Nodes => "nodes",
        }
    }
}

/// One change to a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put { table: Table, key: String, value: Vec<u8> },
    Delete { table: Table, key: String },
}

/// Every table's contents.
pub type Snapshot = BTreeMap<Table, BTreeMap<String, Vec<u8>>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {message}")]
    Backend { path: PathBuf, message: String },
}

/// A crash-safe key-value store of a few tables.
pub trait Store: Send {
    /// Everything stored.
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// Applies `writes` all or none. An empty batch touches nothing.
    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError>;
}

/// The store of a data directory: `state.redb`.
#[derive(Debug)]
pub struct RedbStore {
    path: PathBuf,
    db: redb::Database,
}

impl RedbStore {
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db = redb::Database::create(path).map_err(|e| backend(path, e))?;
        Ok(RedbStore { path: path.to_owned(), db })
    }
}

fn backend(path: &Path, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend { path: path.to_owned(), message: error.to_string() }
}

fn definition(table: Table) -> redb::TableDefinition<'static, &'static str, &'static [u8]> {
    redb::TableDefinition::new(table.name())
}

impl Store for RedbStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        use redb::{ReadableDatabase, ReadableTable, TableError};
        let fail = |e: &dyn std::fmt::Display| backend(&self.path, e);
        let read = self.db.begin_read().map_err(|e| fail(&e))?;
        let mut snapshot = Snapshot::new();
        for table in Table::ALL {
            let rows = snapshot.entry(table).or_default();
            let opened = match read.open_table(definition(table)) {
                Ok(opened) => opened,
                // A fresh store has no tables until the first write.
                Err(TableError::TableDoesNotExist(_)) => continue,
                Err(e) => return Err(fail(&e)),
            };
            for row in opened.iter().map_err(|e| fail(&e))? {
                let (key, value) = row.map_err(|e| fail(&e))?;
                rows.insert(key.value().to_owned(), value.value().to_vec());
            }
        }
        Ok(snapshot)
    }

    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let fail = |e: &dyn std::fmt::Display| backend(&self.path, e);
        let txn = self.db.begin_write().map_err(|e| fail(&e))?;
        for write in writes {
            match write {
                Write::Put { table, key, value } => {
                    let mut opened = txn.open_table(definition(*table)).map_err(|e| fail(&e))?;
                    opened.insert(key.as_str(), value.as_slice()).map_err(|e| fail(&e))?;
                }
                Write::Delete { table, key } => {
                    let mut opened = txn.open_table(definition(*table)).map_err(|e| fail(&e))?;
                    opened.remove(key.as_str()).map_err(|e| fail(&e))?;
                }
            }
        }
        txn.commit().map_err(|e| fail(&e))
    }
}

/// A store in memory that counts its commits, for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub tables: Snapshot,
    pub commits: usize,
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        Ok(self.tables.clone())
    }

    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.commits += 1;
        for write in writes {
            match write {
                Write::Put { table, key, value } => {
                    self.tables.entry(*table).or_default().insert(key.clone(), value.clone());
                }
                Write::Delete { table, key } => {
                    self.tables.entry(*table).or_default().remove(key);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(table: Table, key: &str, value: &str) -> Write {
        Write::Put { table, key: key.into(), value: value.as_bytes().to_vec() }
    }

    #[test]
    fn redb_keeps_commits_across_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.redb");
        {
            let mut store = RedbStore::open(&path).expect("open");
            assert!(store.load().expect("load").values().all(BTreeMap::is_empty));
            store
                .commit(&[
                    put(Table::Objects, "Deployment/default/web", "{}"),
                    put(Table::Pods, "default/a", "1"),
                ])
                .expect("commit");
            store
                .commit(&[
                    Write::Delete { table: Table::Pods, key: "default/a".into() },
                    put(Table::Pods, "default/b", "2"),
                ])
                .expect("commit");
        }
        let store = RedbStore::open(&path).expect("reopen");
        let snapshot = store.load().expect("load");
        assert_eq!(snapshot[&Table::Objects]["Deployment/default/web"], b"{}");
        assert_eq!(snapshot[&Table::Pods].keys().collect::<Vec<_>>(), ["default/b"]);
    }

    #[test]
    fn a_file_that_is_not_a_store_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.redb");
        std::fs::write(&path, b"not a database at all, just text").expect("write");
        let error = RedbStore::open(&path).expect_err("garbage refused");
        assert!(error.to_string().contains("state.redb"), "{error}");
    }
}
