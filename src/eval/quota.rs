//! Sharing the quota across the batch. Only requests that passed every gate and check take
//! part; for each instance they are served in (`requested_at`, `request_id`) order, the times
//! compared as instants and the ids byte-wise, after the codes the ledger already counts.

use super::{Decision, Outcome, Why, World};
use crate::schema::{Status, Value, col};
use rayon::prelude::*;

/// `Err` only when the ledger cannot be read again for the codes of instance ids the
/// inventory lacks (see `Ledger::held_by_ids`).
pub(super) fn share(w: &World<'_>, decisions: &mut [Decision]) -> Result<(), String> {
    if w.policy.quotas.is_empty() {
        return Ok(());
    }
    let req = w.requests;
    let at = |row: usize| match req.value(col::REQUESTED_AT, row) {
        Value::Time(t) => t.timestamp_micros(),
        _ => i64::MIN,
    };
    // (instance key, requested_at in µs, row): compact, so the sort touches no row data except
    // to break ties between equal instants by request id.
    // A request judged on no inventory row is keyed `UNLISTED` here, and given its key below.
    const UNLISTED: u32 = u32::MAX;
    let mut waiting: Vec<(u32, i64, u32)> = decisions
        .par_iter()
        .enumerate()
        .filter(|(_, d)| d.outcome == Outcome::Eligible)
        .map(|(row, d)| {
            // INVARIANT: an instance's key is its first inventory row, the row it was judged on.
            let key = d.instance_row().map_or(UNLISTED, |r| r as u32);
            (key, at(row), row as u32)
        })
        .collect();
    // A policy without the `instance-exists` gate may let through a request for an instance
    // the inventory lacks: such a request shares the quota of the inventory instance its id
    // names once spelt loosely (`index::loose`), if any; otherwise, by that id's
    // loose form, after the ledger's codes for it (read again for them), under keys past the
    // inventory's.
    // An inventory that writes one id in several spellings (case, spaces, Unicode's forms) holds
    // each spelling's codes under every one of them: their requests share one quota too, the
    // lowest key's, as they would on separate nights.
    if w.by_instance.has_odd_ids() {
        waiting
            .par_iter_mut()
            .filter(|(key, ..)| *key != UNLISTED)
            .for_each(|(key, ..)| {
                let id = crate::input::loose(w.instances.text(col::INSTANCE_ID, *key as usize));
                if let Some(first) = w.by_instance.loose_keys(&id).into_iter().min() {
                    *key = first;
                }
            });
    }
    let mut unlisted: Vec<String> = Vec::new();
    let mut by_id: std::collections::HashMap<String, u32> = Default::default();
    for (key, _, row) in waiting.iter_mut().filter(|(key, ..)| *key == UNLISTED) {
        let id = crate::input::loose(req.text(col::REQUEST_INSTANCE, *row as usize));
        if let Some(k) = w.by_instance.loose_keys(&id).into_iter().min() {
            *key = k;
            continue;
        }
        *key = *by_id.entry(id.clone()).or_insert_with(|| {
            unlisted.push(id);
            (w.instances.len() + unlisted.len() - 1) as u32
        });
    }
    let unlisted_held = match unlisted.is_empty() {
        true => Default::default(),
        false => w.ledger.held_by_ids(&unlisted.iter().cloned().collect())?,
    };
    let id = |row: u32| req.text(col::REQUEST_ID, row as usize).as_bytes();
    waiting.par_sort_unstable_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| id(a.2).cmp(id(b.2)))
    });
    // Each instance's requests are served in turn; instances side by side.
    let (unlisted, unlisted_held) = (&unlisted, &unlisted_held);
    let refused: Vec<(u32, Why)> = waiting
        .par_chunk_by(|a, b| a.0 == b.0)
        .flat_map_iter(|requests| {
            let mut granted = 0u32;
            requests.iter().filter_map(move |&(key, _, row)| {
                let why = over_quota(w, key, unlisted, unlisted_held, granted);
                if why.is_none() {
                    granted += 1;
                }
                why.map(|why| (row, why))
            })
        })
        .collect();
    for (row, why) in refused {
        let d = &mut decisions[row as usize];
        *d = Decision::new(Outcome::Denied, why).on(d.instance_row());
    }
    Ok(())
}

/// The first quota rule that one more code for this instance would exceed. A key past the
/// inventory's stands for an instance id the inventory lacks (`unlisted`), whose codes are in
/// `unlisted_held`.
fn over_quota(
    w: &World<'_>,
    key: u32,
    unlisted: &[String],
    unlisted_held: &std::collections::HashMap<String, [u32; 3]>,
    granted: u32,
) -> Option<Why> {
    let held = match (key as usize).checked_sub(w.instances.len()) {
        None => w.ledger.held(key),
        Some(i) => unlisted_held.get(&unlisted[i]).copied().unwrap_or_default(),
    };
    w.policy.quotas.iter().enumerate().find_map(|(i, q)| {
        let from_ledger: u32 = Status::ALL
            .into_iter()
            .filter(|s| q.counts_status(*s))
            .map(|s| held[s as usize])
            .sum();
        let used = from_ledger + granted;
        (used >= q.max).then_some(Why::Quota {
            rule: i as u16,
            used,
        })
    })
}
