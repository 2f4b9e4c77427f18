//! Lookups over the loaded tables: instance id → its inventory rows, and request id → the first
//! batch row that carries it. The hash tables hold row numbers only (4 bytes a slot); the text
//! they stand for is read from the table when a probe needs to compare.

use super::Table;
use crate::schema::col;
use hashbrown::HashTable;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// Distinct texts of one column, each by the first row that carries it.
struct FirstRows<'t> {
    table: &'t Table,
    col: usize,
    hasher: foldhash::fast::RandomState,
    rows: HashTable<u32>,
}

impl<'t> FirstRows<'t> {
    fn new(table: &'t Table, col: usize) -> Self {
        FirstRows {
            table,
            col,
            hasher: foldhash::fast::RandomState::default(),
            rows: HashTable::with_capacity(table.len()),
        }
    }

    fn text(&self, row: u32) -> &'t str {
        self.table.text(self.col, row as usize)
    }

    /// The first row carrying `row`'s text; `row` itself when it is the first.
    fn first_of(&mut self, row: u32) -> u32 {
        let (table, col, hasher) = (self.table, self.col, &self.hasher);
        let text = table.text(col, row as usize);
        let hash = hasher.hash_one(text);
        let entry = self.rows.entry(
            hash,
            |r| table.text(col, *r as usize) == text,
            |r| hasher.hash_one(table.text(col, *r as usize)),
        );
        *entry.or_insert(row).get()
    }

    fn get(&self, text: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(text);
        self.rows.find(hash, |r| self.text(*r) == text).copied()
    }
}

/// Instance id → key (the id's first inventory row), and key → every row that carries the id.
pub struct InstanceIndex<'t> {
    first: FirstRows<'t>,
    /// Rows after the first, for the rare ids that appear more than once.
    more: HashMap<u32, Vec<u32>>,
}

impl<'t> InstanceIndex<'t> {
    pub fn new(instances: &'t Table) -> Self {
        let mut first = FirstRows::new(instances, col::INSTANCE_ID);
        let mut more: HashMap<u32, Vec<u32>> = HashMap::new();
        for row in 0..instances.len() as u32 {
            if instances.text(col::INSTANCE_ID, row as usize).is_empty() {
                continue;
            }
            let key = first.first_of(row);
            if key != row {
                more.entry(key).or_default().push(row);
            }
        }
        InstanceIndex { first, more }
    }

    /// The number of keys may reach this (keys are row numbers).
    pub fn key_space(&self) -> usize {
        self.first.table.len()
    }

    pub fn key(&self, instance_id: &str) -> Option<u32> {
        if instance_id.is_empty() {
            return None;
        }
        self.first.get(instance_id)
    }

    fn others(&self, key: u32) -> &[u32] {
        if self.more.is_empty() {
            return &[];
        }
        self.more.get(&key).map(Vec::as_slice).unwrap_or_default()
    }

    /// The inventory rows of a key, in file order.
    pub fn rows(&self, key: u32) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(key)
            .chain(self.others(key).iter().copied())
            .map(|r| r as usize)
    }

    pub fn row_count(&self, key: u32) -> usize {
        1 + self.others(key).len()
    }
}

/// Request id → the first row carrying it (empty ids are not indexed), and the rows whose id
/// an earlier row already carried.
pub struct RequestIndex<'t> {
    first: FirstRows<'t>,
    /// Row → the first row with the same id, for repeated ids only.
    repeats: HashMap<u32, u32>,
}

impl<'t> RequestIndex<'t> {
    pub fn new(requests: &'t Table) -> Self {
        let mut first = FirstRows::new(requests, col::REQUEST_ID);
        let mut repeats = HashMap::new();
        for row in 0..requests.len() as u32 {
            if requests.text(col::REQUEST_ID, row as usize).is_empty() {
                continue;
            }
            let at = first.first_of(row);
            if at != row {
                repeats.insert(row, at);
            }
        }
        RequestIndex { first, repeats }
    }

    /// The first row carrying `request_id`.
    pub fn first_row(&self, request_id: &str) -> Option<u32> {
        if request_id.is_empty() {
            return None;
        }
        self.first.get(request_id)
    }

    /// For a row whose id an earlier row carried, that earlier row.
    pub fn repeat_of(&self, row: usize) -> Option<usize> {
        if self.repeats.is_empty() {
            return None;
        }
        self.repeats.get(&(row as u32)).map(|r| *r as usize)
    }
}
