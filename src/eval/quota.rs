//! Sharing the quota across the batch. Only requests that passed every gate and check take
//! part; for each instance they are served in (`requested_at`, `request_id`) order, the times
//! compared as instants and the ids byte-wise, after the codes the ledger already counts.

use super::{Decision, Outcome, Why, World};
use crate::schema::{Status, Value, col};

pub(super) fn share(w: &World<'_>, decisions: &mut [Decision]) {
    if w.policy.quotas.is_empty() {
        return;
    }
    let req = w.requests;
    let mut waiting: Vec<(u32, usize)> = decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.outcome == Outcome::Eligible)
        .filter_map(|(row, _)| {
            let key = w.by_instance.key(req.text(col::REQUEST_INSTANCE, row))?;
            Some((key, row))
        })
        .collect();
    let time = |row| match req.value(col::REQUESTED_AT, row) {
        Value::Time(t) => Some(t),
        _ => None,
    };
    let id = |row| req.text(col::REQUEST_ID, row).as_bytes();
    waiting.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| time(a.1).cmp(&time(b.1)))
            .then_with(|| id(a.1).cmp(id(b.1)))
    });
    let mut granted = 0u32;
    for (i, &(key, row)) in waiting.iter().enumerate() {
        if i == 0 || waiting[i - 1].0 != key {
            granted = 0;
        }
        match over_quota(w, key, granted) {
            Some(why) => {
                let d = &mut decisions[row];
                *d = Decision::new(Outcome::Denied, why).on(d.instance_row());
            }
            None => granted += 1,
        }
    }
}

/// The first quota rule that one more code for this instance would exceed.
fn over_quota(w: &World<'_>, key: u32, granted: u32) -> Option<Why> {
    let held = w.ledger.held[key as usize];
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
