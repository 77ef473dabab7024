//! Replication of the store's rows into shared state (docs/SCALEOUT.md "Shared
//! configuration"): the row encoding, the [`Replicator`] a gateway gives the store, and what
//! [`Store::write`](crate::Store::write) and [`Store::replace_replicated`](crate::Store) do with
//! it.
//!
//! Every replicated table is a rowid table; a row is the key `row/<table>/<rowid>` whose value
//! is [`encode_row`] of its columns. A write collects the rows it touched through TEMP
//! triggers (not SQLite's update hook: the hook is not called for the rows an
//! `INSERT OR REPLACE` deletes, and every `put_*` here is one; the triggers are, with
//! `recursive_triggers` on), reads each back before COMMIT and hands the replicator the rows
//! to set and the rows to remove with the cluster version the store holds. Only when the
//! replicator's compare-and-set succeeds does the local transaction commit, with the new
//! version. The `meta` table is the gateway's own and is never replicated.

use std::collections::BTreeMap;

use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

use crate::{bad, Result, StoreError};

/// The meta key holding the cluster version this store holds (gateway-local).
pub const CLUSTER_VERSION_KEY: &str = "cluster_version";

/// The prefix of a replicated row's key.
pub const ROW_PREFIX: &str = "row/";

/// Tables that are never replicated: the gateway's own settings and SQLite's bookkeeping.
const LOCAL_TABLES: &[&str] = &["meta", "schema_version"];

/// Rows to set (key, encoded row) and keys to remove.
pub(crate) type Touched = (Vec<(String, Vec<u8>)>, Vec<String>);

/// A decoded row: its columns by name.
type Row = Vec<(String, Value)>;

/// The first byte of an encoded row (the encoding's version).
const MAGIC: u8 = 0xD1;

/// The shared state a store replicates into (one compare-and-set per write).
pub trait Replicator: Send {
    /// When the shared version is still `base`: sets `set`, removes `remove`, and answers
    /// `Ok(Ok(new_version))`. When another writer came first: `Ok(Err(found))`, nothing
    /// changed. An error: the shared state could not be reached (nothing is known changed).
    fn update(
        &self,
        base: u64,
        set: &[(String, Vec<u8>)],
        remove: &[String],
    ) -> std::io::Result<std::result::Result<u64, u64>>;
}

/// Encodes one row: its columns by name, each a tagged value (null, integer, real, text,
/// blob). Self-describing, so that a row is read by column name, not position.
pub fn encode_row(cols: &[(String, Value)]) -> Vec<u8> {
    let mut out = vec![MAGIC];
    out.extend_from_slice(&(cols.len() as u32).to_be_bytes());
    for (name, v) in cols {
        put_bytes(&mut out, name.as_bytes());
        match v {
            Value::Null => out.push(0),
            Value::Integer(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_be_bytes());
            }
            Value::Real(f) => {
                out.push(2);
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            Value::Text(s) => {
                out.push(3);
                put_bytes(&mut out, s.as_bytes());
            }
            Value::Blob(b) => {
                out.push(4);
                put_bytes(&mut out, b);
            }
        }
    }
    out
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// A reader over an encoded row that refuses to read past its end.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.b.len() < n {
            return Err(bad("a replicated row ends early"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Decodes [`encode_row`]'s bytes strictly: a wrong first byte, an unknown tag, a length past
/// the end, text that is not UTF-8, a column named twice or bytes left over are errors.
pub fn decode_row(b: &[u8]) -> Result<Vec<(String, Value)>> {
    let mut r = Reader { b };
    if r.take(1)? != [MAGIC] {
        return Err(bad("a replicated row has an unknown encoding"));
    }
    let n = r.u32()? as usize;
    // Every column takes at least 5 bytes: a count past that is a lie, not an allocation.
    if n > b.len() / 5 {
        return Err(bad("a replicated row claims more columns than it holds"));
    }
    let mut cols: Vec<(String, Value)> = Vec::with_capacity(n);
    for _ in 0..n {
        let name = std::str::from_utf8(r.bytes()?)
            .map_err(|_| bad("a replicated column name is not UTF-8"))?
            .to_string();
        if cols.iter().any(|(c, _)| *c == name) {
            return Err(bad(format!("a replicated row names column {name:?} twice")));
        }
        let v = match r.take(1)?[0] {
            0 => Value::Null,
            1 => Value::Integer(r.u64()? as i64),
            2 => Value::Real(f64::from_bits(r.u64()?)),
            3 => Value::Text(
                std::str::from_utf8(r.bytes()?)
                    .map_err(|_| bad(format!("replicated column {name:?} is not UTF-8")))?
                    .to_string(),
            ),
            4 => Value::Blob(r.bytes()?.to_vec()),
            t => return Err(bad(format!("replicated column {name:?} has tag {t}"))),
        };
        cols.push((name, v));
    }
    if !r.b.is_empty() {
        return Err(bad("a replicated row has bytes after its last column"));
    }
    Ok(cols)
}

/// The key of a row.
pub fn row_key(table: &str, rowid: i64) -> String {
    format!("{ROW_PREFIX}{table}/{rowid}")
}

/// `row/<table>/<rowid>` → (table, rowid), for a table in `tables`.
fn parse_key<'k>(key: &'k str, tables: &[String]) -> Result<(&'k str, i64)> {
    let rest = key
        .strip_prefix(ROW_PREFIX)
        .ok_or_else(|| bad(format!("key {key:?} is not a row")))?;
    let (table, id) = rest
        .split_once('/')
        .ok_or_else(|| bad(format!("key {key:?} names no rowid")))?;
    if !tables.iter().any(|t| t == table) {
        return Err(bad(format!("key {key:?} names no replicated table")));
    }
    let id: i64 = id
        .parse()
        .map_err(|_| bad(format!("key {key:?} has a bad rowid")))?;
    Ok((table, id))
}

/// The replicated tables of the open schema (every table but the local ones), by name.
pub(crate) fn tables(c: &Connection) -> Result<Vec<String>> {
    let mut st = c.prepare(
        "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names
        .into_iter()
        .filter(|n| !LOCAL_TABLES.contains(&n.as_str()))
        .collect())
}

/// The columns of `table` in order (a name from [`tables`], never input).
fn columns(c: &Connection, table: &str) -> Result<Vec<String>> {
    let mut st = c.prepare(&format!("PRAGMA main.table_info({table})"))?;
    let cols = st
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(cols)
}

/// Installs the TEMP table and triggers that note every row a write touches.
pub(crate) fn install_triggers(c: &Connection) -> Result<()> {
    c.pragma_update(None, "recursive_triggers", true)?;
    let mut sql = String::from(
        "CREATE TEMP TABLE IF NOT EXISTS vds_touched (tbl TEXT NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (tbl, rid));\n",
    );
    for t in tables(c)? {
        for (ev, row) in [("INSERT", "new"), ("UPDATE", "new"), ("DELETE", "old")] {
            sql.push_str(&format!(
                "CREATE TEMP TRIGGER IF NOT EXISTS vds_rep_{t}_{ev} AFTER {ev} ON main.{t} BEGIN \
                 INSERT OR IGNORE INTO vds_touched VALUES ('{t}', {row}.rowid); END;\n"
            ));
        }
        // An UPDATE that moves a row's rowid leaves the old one behind.
        sql.push_str(&format!(
            "CREATE TEMP TRIGGER IF NOT EXISTS vds_rep_{t}_MOVE AFTER UPDATE ON main.{t} \
             WHEN old.rowid != new.rowid BEGIN \
             INSERT OR IGNORE INTO vds_touched VALUES ('{t}', old.rowid); END;\n"
        ));
    }
    c.execute_batch(&sql)?;
    Ok(())
}

/// The rows a transaction touched: what to set (rows present, encoded) and what to remove
/// (rows gone). Empties the notes.
pub(crate) fn touched(c: &Connection) -> Result<Touched> {
    let notes: Vec<(String, i64)> = {
        let mut st = c.prepare("SELECT tbl, rid FROM temp.vds_touched ORDER BY tbl, rid")?;
        let v = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        v
    };
    c.execute("DELETE FROM temp.vds_touched", [])?;
    let mut cols_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut set, mut remove) = (Vec::new(), Vec::new());
    for (table, rid) in notes {
        if !cols_of.contains_key(&table) {
            cols_of.insert(table.clone(), columns(c, &table)?);
        }
        let cols = &cols_of[&table];
        let mut st = c.prepare_cached(&format!("SELECT * FROM main.{table} WHERE rowid = ?1"))?;
        let mut rows = st.query([rid])?;
        match rows.next()? {
            Some(r) => {
                let mut vals = Vec::with_capacity(cols.len());
                for (i, name) in cols.iter().enumerate() {
                    let v: Value = match r.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(i) => Value::Integer(i),
                        ValueRef::Real(f) => Value::Real(f),
                        ValueRef::Text(t) => Value::Text(
                            std::str::from_utf8(t)
                                .map_err(|_| bad(format!("{table}.{name} is not UTF-8")))?
                                .to_string(),
                        ),
                        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                    };
                    vals.push((name.clone(), v));
                }
                set.push((row_key(&table, rid), encode_row(&vals)));
            }
            None => remove.push(row_key(&table, rid)),
        }
    }
    Ok((set, remove))
}

/// Makes the replicated tables exactly `rows` (keys `row/<table>/<rowid>`; other keys are
/// ignored), rowids kept, inside the caller's transaction. Every row is decoded and checked
/// against its table's columns before anything is written.
pub(crate) fn replace(c: &Connection, rows: &[(String, Vec<u8>)]) -> Result<()> {
    let tables = tables(c)?;
    let mut by_table: BTreeMap<&str, Vec<(i64, Row)>> = BTreeMap::new();
    for (key, val) in rows {
        if !key.starts_with(ROW_PREFIX) {
            continue;
        }
        let (table, rid) = parse_key(key, &tables)?;
        let cols = decode_row(val).map_err(|e| match e {
            StoreError::BadRow(why) => bad(format!("{key}: {why}")),
            other => other,
        })?;
        by_table.entry(table).or_default().push((rid, cols));
    }
    for t in &tables {
        c.execute(&format!("DELETE FROM main.{t}"), [])?;
    }
    for (table, rows) in by_table {
        let cols = columns(c, table)?;
        let sql = format!(
            "INSERT INTO main.{table} (rowid, {}) VALUES (?1, {})",
            cols.join(", "),
            (2..=cols.len() + 1)
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut st = c.prepare(&sql)?;
        for (rid, vals) in rows {
            let mut args: Vec<Value> = vec![Value::Integer(rid)];
            for name in &cols {
                match vals.iter().find(|(n, _)| n == name) {
                    Some((_, v)) => args.push(v.clone()),
                    None => return Err(bad(format!("{}: no column {name}", row_key(table, rid)))),
                }
            }
            if vals.len() != cols.len() {
                return Err(bad(format!(
                    "{}: {} columns, the table has {}",
                    row_key(table, rid),
                    vals.len(),
                    cols.len()
                )));
            }
            st.execute(rusqlite::params_from_iter(args))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
