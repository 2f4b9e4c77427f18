//! Sharing the quota across the batch. Only requests that passed every gate and check take
//! part; for each instance they are served in (`requested_at`, `request_id`) order, the times
//! compared as instants and the ids byte-wise, after the codes the ledger already counts.

use super::{Decision, Env, Outcome, Reason, World, render};
use crate::schema::{Value, col};

pub(super) fn share<'p>(w: &World<'p>, decisions: &mut [Decision<'p>]) {
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
    waiting.sort_by(|a, b| {
        let time = |row| match req.value(col::REQUESTED_AT, row) {
            Value::Time(t) => Some(t),
            _ => None,
        };
        a.0.cmp(&b.0)
            .then_with(|| time(a.1).cmp(&time(b.1)))
            .then_with(|| {
                let id = |row| req.text(col::REQUEST_ID, row).as_bytes();
                id(a.1).cmp(id(b.1))
            })
    });
    let mut granted = 0u32;
    for (i, (key, row)) in waiting.iter().enumerate() {
        if i == 0 || waiting[i - 1].0 != *key {
            granted = 0;
        }
        match over_quota(w, *key, *row, granted) {
            Some(reason) => decisions[*row] = Decision::refused(Outcome::Denied, vec![reason]),
            None => granted += 1,
        }
    }
}

/// The first quota rule that this request would exceed, as a reason.
fn over_quota<'p>(w: &World<'p>, key: u32, row: usize, granted: u32) -> Option<Reason<'p>> {
    let held = w.ledger.held[key as usize];
    w.policy.quotas.iter().find_map(|q| {
        let from_ledger: u32 = crate::schema::Status::ALL
            .into_iter()
            .filter(|s| q.counts_status(*s))
            .map(|s| held[s as usize])
            .sum();
        let used = from_ledger + granted;
        (used >= q.max).then(|| {
            let mut env = Env::new(w, row, w.by_instance.rows(key).next());
            env.quota = (i64::from(used), i64::from(q.max));
            Reason {
                rule: &q.id,
                message: render(&q.message, &env),
                remedy: render(&q.remedy, &env),
            }
        })
    })
}
