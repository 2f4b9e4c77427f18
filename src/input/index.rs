//! Lookups over the loaded tables: instance id → its inventory rows (one key per distinct id),
//! and request id → the first batch row that carries it.

use super::Table;
use crate::schema::col;
use std::collections::HashMap;

/// A fast hasher for ids, seeded per run.
type Fast = foldhash::fast::RandomState;

/// Set in `InstanceIndex::first` when the id has more rows than its first.
const MORE: u32 = 1 << 31;

/// Instance id → key, and key → the rows that carry the id.
pub struct InstanceIndex<'a> {
    keys: HashMap<&'a str, u32, Fast>,
    /// The first row of each key, with `MORE` set when there are others.
    first: Vec<u32>,
    /// Rows after the first, for the rare ids that appear more than once.
    more: HashMap<u32, Vec<u32>, Fast>,
}

impl<'a> InstanceIndex<'a> {
    pub fn new(instances: &'a Table) -> Self {
        let mut index = InstanceIndex {
            keys: HashMap::with_capacity_and_hasher(instances.len(), Fast::default()),
            first: Vec::with_capacity(instances.len()),
            more: HashMap::default(),
        };
        for row in 0..instances.len() {
            let id = instances.text(col::INSTANCE_ID, row);
            if id.is_empty() {
                continue;
            }
            let next = index.first.len() as u32;
            let key = *index.keys.entry(id).or_insert(next);
            if key == next {
                index.first.push(row as u32);
            } else {
                index.first[key as usize] |= MORE;
                index.more.entry(key).or_default().push(row as u32);
            }
        }
        index
    }

    /// How many distinct instance ids there are.
    pub fn len(&self) -> usize {
        self.first.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn key(&self, instance_id: &str) -> Option<u32> {
        self.keys.get(instance_id).copied()
    }

    /// The inventory rows of a key, in file order.
    pub fn rows(&self, key: u32) -> impl Iterator<Item = usize> + '_ {
        let first = self.first[key as usize];
        let more = if first & MORE != 0 {
            self.more.get(&key).map(Vec::as_slice).unwrap_or_default()
        } else {
            &[]
        };
        std::iter::once(first & !MORE)
            .chain(more.iter().copied())
            .map(|r| r as usize)
    }

    pub fn row_count(&self, key: u32) -> usize {
        match self.first[key as usize] & MORE {
            0 => 1,
            _ => 1 + self.more.get(&key).map_or(0, Vec::len),
        }
    }
}

/// Request id → the first row carrying it (empty ids are not indexed).
pub struct RequestIndex<'a> {
    first: HashMap<&'a str, u32, Fast>,
}

impl<'a> RequestIndex<'a> {
    pub fn new(requests: &'a Table) -> Self {
        let mut first = HashMap::with_capacity_and_hasher(requests.len(), Fast::default());
        for row in 0..requests.len() {
            let id = requests.text(col::REQUEST_ID, row);
            if !id.is_empty() {
                first.entry(id).or_insert(row as u32);
            }
        }
        RequestIndex { first }
    }

    pub fn first_row(&self, request_id: &str) -> Option<u32> {
        self.first.get(request_id).copied()
    }
}
