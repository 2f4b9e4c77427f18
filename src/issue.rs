//! Issuing: turns the eligible decisions into `issued` ones with fresh codes (unless this is a
//! dry run), after checking the safety cap. Codes come from the OS CSPRNG and are unique across
//! the ledger and the batch.

use crate::code::{self, CodeList, Format};
use crate::digest::Fingerprinter;
use crate::error::{Error, Result};
use crate::eval::{Decision, Outcome};
use crate::input::ledger::Codes;
use rayon::prelude::*;
use std::collections::HashSet;

/// The codes this run issued, by request row (rows ascending).
#[derive(Debug, Default)]
pub struct Issued {
    pub rows: Vec<usize>,
    pub codes: CodeList,
    /// A dry run over the safety cap: the codes a real run would issue, and the cap that
    /// would refuse it. The dry run itself goes on, so that such a batch can be looked at.
    pub over_cap: Option<(usize, u64)>,
}

impl Issued {
    pub fn code(&self, row: usize) -> Option<&str> {
        let i = self.rows.binary_search(&row).ok()?;
        Some(self.codes.get(i))
    }

    /// Each issued code with its request row, rows ascending.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &str)> + '_ {
        self.rows.iter().copied().zip(self.codes.iter())
    }
}

/// Gives every eligible request a new code, in input order, unique among `existing` (the
/// ledger's codes) and the batch. A run that would issue more than `max_issue` codes is
/// refused. In a dry run nothing is issued, the decisions stay `eligible`, and a batch over
/// the cap is noted (`over_cap`) rather than refused.
pub fn assign(
    decisions: &mut [Decision],
    format: &Format,
    existing: &Codes,
    fingerprints: &Fingerprinter,
    dry_run: bool,
    max_issue: Option<u64>,
) -> Result<Issued> {
    let rows: Vec<usize> = decisions
        .par_iter()
        .enumerate()
        .filter(|(_, d)| d.outcome == Outcome::Eligible)
        .map(|(i, _)| i)
        .collect();
    let over_cap = max_issue.filter(|cap| rows.len() as u64 > *cap);
    if dry_run {
        return Ok(Issued {
            over_cap: over_cap.map(|cap| (rows.len(), cap)),
            ..Issued::default()
        });
    }
    if let Some(cap) = over_cap {
        return Err(Error::refused(format!(
            "this run would issue {} codes, more than the safety cap of {cap}: nothing was written (check the inventory export, or raise --max-issue)",
            rows.len()
        )));
    }
    let mut codes = format.generate_many(rows.len()).map_err(Error::failed)?;
    let key = |c: &str| fingerprints.of(&code::identity_key(c));
    // A clash with the ledger or within the batch is about 2⁻⁹⁵ likely per code; such a code is
    // drawn again, so uniqueness never rests on luck. The keys are checked in parallel; only a
    // clash (in practice, never) is handled one by one.
    let mut keys: Vec<(u128, usize)> = (0..codes.len())
        .into_par_iter()
        .map(|i| (key(codes.get(i)), i))
        .collect();
    keys.par_sort_unstable();
    let in_ledger = existing.contains_sorted(&keys, |k| k.0);
    let clashes: Vec<usize> = keys
        .par_iter()
        .enumerate()
        .filter(|(n, (fp, _))| in_ledger[*n] || (*n > 0 && keys[n - 1].0 == *fp))
        .map(|(_, (_, i))| *i)
        .collect();
    if !clashes.is_empty() {
        let mut taken: HashSet<u128> = keys.iter().map(|k| k.0).collect();
        for i in clashes {
            loop {
                let c = format.generate().map_err(Error::failed)?;
                let fp = key(&c);
                if !existing.contains(fp) && taken.insert(fp) {
                    codes.set(i, &c);
                    break;
                }
            }
        }
    }
    for &row in &rows {
        decisions[row].outcome = Outcome::Issued;
    }
    Ok(Issued {
        rows,
        codes,
        over_cap: None,
    })
}
