//! The numbers behind `summary.json`, `report.html` and the terminal table, gathered in one
//! pass over the decisions: requests per outcome, reasons per rule, refusals per region and
//! what each remedy would unblock. A row costs a few increments of counters indexed by rule,
//! remedy and inventory row; text is read once per distinct key at the end. Only a remedy with
//! placeholders, or a built-in reason's, is rendered per row.

use crate::eval::{Builtin, Decision, Outcome, Scratch, Why, World, each_reason};
use crate::policy::Policy;
use foldhash::HashMap;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// Outcomes in the order people read them: what got a code first, what is at fault last.
pub const READING_ORDER: [Outcome; 6] = [
    Outcome::Issued,
    Outcome::Eligible,
    Outcome::AlreadyIssued,
    Outcome::NotRequired,
    Outcome::Denied,
    Outcome::Invalid,
];

/// Counts per outcome, per reason id, per region and per remedy.
pub struct Counts<'a> {
    /// Requests per outcome name, every outcome included.
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Reasons per rule id over every decision (every policy rule included, with 0): the rows
    /// of `denials.csv` per `rule_id`.
    pub rules: BTreeMap<String, u64>,
    /// `denied` and `not_required` requests per region, largest first.
    pub regions: Vec<RegionCount<'a>>,
    /// Remedies of `denied` and `invalid` requests, the most unblocking first.
    pub remedies: Vec<RemedyCount<'a>>,
}

/// Refusals in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionCount<'a> {
    /// The region of the inventory row the request was judged on; `None`: it had none.
    pub region: Option<&'a str>,
    pub denied: u64,
    pub not_required: u64,
}

impl RegionCount<'_> {
    pub fn total(&self) -> u64 {
        self.denied + self.not_required
    }
}

/// What one remedy would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemedyCount<'a> {
    pub remedy: Cow<'a, str>,
    /// Requests every one of whose reasons has this remedy: acting on it alone clears every
    /// reason the run found for them.
    pub unblocks: u64,
    /// Reasons (rows of `denials.csv`) with this remedy.
    pub addresses: u64,
    /// The rule ids whose reasons carry this remedy, sorted.
    pub rules: Vec<&'a str>,
}

#[derive(Default)]
struct RemedyTally<'a> {
    unblocks: u64,
    addresses: u64,
    rules: BTreeSet<&'a str>,
}

impl<'a> Counts<'a> {
    pub fn of(world: &World<'a>, decisions: &[Decision]) -> Counts<'a> {
        let mut pass = Pass::new(world);
        // A batch's per-row counters are prefetched first, together, so that their cache misses
        // overlap: counted up one at a time, each waited for its own (nine tenths of this
        // pass's time at 1M).
        const BATCH: usize = crate::input::BATCH;
        for (b, batch) in decisions.chunks(BATCH).enumerate() {
            for i in batch.iter().filter_map(Decision::instance_row) {
                crate::input::prefetch(&pass.by_row[i]);
            }
            for (i, d) in batch.iter().enumerate() {
                pass.add(b * BATCH + i, d);
            }
        }
        pass.finish()
    }

    /// Requests with outcome `o`.
    pub fn outcome(&self, o: Outcome) -> u64 {
        self.outcomes.get(o.name()).copied().unwrap_or(0)
    }

    /// The `n` reason ids with the most reasons (ties by id), leaving out those with none.
    pub fn top_rules(&self, n: usize) -> Vec<(&str, u64)> {
        let mut top: Vec<(&str, u64)> = self
            .rules
            .iter()
            .filter(|(_, c)| **c > 0)
            .map(|(id, c)| (id.as_str(), *c))
            .collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        top.truncate(n);
        top
    }
}

/// The state of the one pass: plain counters indexed by rule, remedy and inventory row, so a
/// row costs a few increments; text is looked at once per distinct key, in `finish`.
struct Pass<'w, 'a> {
    world: &'w World<'a>,
    outcomes: [u64; 6],
    /// Reasons per policy rule (bit `i` of a mask), per quota rule, per built-in reason.
    rules: Vec<u64>,
    quotas: Vec<u64>,
    builtins: BTreeMap<&'static str, u64>,
    /// Per inventory row, its `denied` and `not_required` requests; then those with no row.
    by_row: Vec<[u32; 2]>,
    no_row: [u64; 2],
    remedies: Remedies<'a>,
}

/// Remedies as counted: the policy's plain remedies by class (one class per distinct text),
/// the others (with placeholders, or built-in) by their rendered text.
struct Remedies<'a> {
    /// The class of each policy rule's and each quota's remedy, `None` when it has
    /// placeholders.
    rule_class: Vec<Option<usize>>,
    quota_class: Vec<Option<usize>>,
    /// Per class: its text, and (requests unblocked, reasons addressed).
    classes: Vec<(&'a str, [u64; 2])>,
    /// Reasons of refused requests per policy rule and per quota: which rules give a remedy.
    rule_refusals: Vec<u64>,
    quota_refusals: Vec<u64>,
    rendered: HashMap<String, RemedyTally<'a>>,
    /// The first remedy of the decision being rendered, reused.
    first: String,
    scratch: Scratch,
}

impl<'w, 'a> Pass<'w, 'a> {
    fn new(world: &'w World<'a>) -> Self {
        let policy = world.policy;
        Pass {
            world,
            outcomes: [0; 6],
            rules: vec![0; policy.rules.len()],
            quotas: vec![0; policy.quotas.len()],
            // Every built-in reason is listed, at 0 too, as the policy's rules are: a script
            // reading `rules["malformed-request"]` finds it on a clean night.
            builtins: Builtin::ALL.iter().map(|b| (b.id(), 0)).collect(),
            // Counted up in place: see `filled`.
            by_row: crate::input::filled(world.instances.len(), [0; 2]),
            no_row: [0; 2],
            remedies: Remedies::new(policy),
        }
    }

    fn add(&mut self, row: usize, d: &Decision) {
        self.outcomes[d.outcome as usize] += 1;
        match d.why() {
            Why::Nothing => {}
            Why::Rules(mask) => bits(mask).for_each(|i| self.rules[i] += 1),
            Why::Quota { rule, .. } => self.quotas[rule as usize] += 1,
            Why::Builtin(b) => *self.builtins.entry(b.id()).or_default() += 1,
        }
        match d.outcome {
            Outcome::Denied => {
                self.region(d, 0);
                self.remedies.add(self.world, row, d);
            }
            Outcome::NotRequired => self.region(d, 1),
            Outcome::Invalid => self.remedies.add(self.world, row, d),
            _ => {}
        }
    }

    fn region(&mut self, d: &Decision, slot: usize) {
        // A request whose instance is not in the inventory (or whose rows are damaged) has no
        // region.
        match d.instance_row() {
            Some(i) => self.by_row[i][slot] += 1,
            None => self.no_row[slot] += 1,
        }
    }

    fn finish(self) -> Counts<'a> {
        let policy = self.world.policy;
        let outcomes = Outcome::ALL
            .iter()
            .map(|o| (o.name(), self.outcomes[*o as usize]))
            .collect();
        let per_rule = policy.rules.iter().map(|r| &r.id).zip(&self.rules);
        let per_quota = policy.quotas.iter().map(|q| &q.id).zip(&self.quotas);
        let mut rules: BTreeMap<String, u64> = per_rule
            .chain(per_quota)
            .map(|(id, n)| (id.clone(), *n))
            .collect();
        for (id, n) in self.builtins {
            *rules.entry(id.to_string()).or_default() += n;
        }
        Counts {
            outcomes,
            rules,
            regions: regions(self.world, &self.by_row, self.no_row),
            remedies: self.remedies.finish(policy),
        }
    }
}

/// Sums the per-row refusals by the rows' regions, largest first.
fn regions<'a>(world: &World<'a>, by_row: &[[u32; 2]], no_row: [u64; 2]) -> Vec<RegionCount<'a>> {
    let col = world.policy.instances.index("region_id");
    let mut sums: HashMap<Option<&'a str>, [u64; 2]> = HashMap::default();
    for (i, n) in by_row.iter().enumerate().filter(|(_, n)| **n != [0, 0]) {
        let region = col.map(|c| world.instances.text(c, i));
        let sum = sums.entry(region).or_default();
        sum[0] += u64::from(n[0]);
        sum[1] += u64::from(n[1]);
    }
    if no_row != [0, 0] {
        let sum = sums.entry(None).or_default();
        sum[0] += no_row[0];
        sum[1] += no_row[1];
    }
    let mut regions: Vec<RegionCount<'a>> = sums
        .into_iter()
        .map(|(region, [denied, not_required])| RegionCount {
            region,
            denied,
            not_required,
        })
        .collect();
    regions.sort_by(|a, b| b.total().cmp(&a.total()).then(a.region.cmp(&b.region)));
    regions
}

impl<'a> Remedies<'a> {
    fn new(policy: &'a Policy) -> Self {
        let mut classes: Vec<(&'a str, [u64; 2])> = Vec::new();
        let mut class_of = |text: Option<&'a str>| {
            let text = text?;
            let found = classes.iter().position(|(t, _)| *t == text);
            Some(found.unwrap_or_else(|| {
                classes.push((text, [0, 0]));
                classes.len() - 1
            }))
        };
        let rule_class = policy
            .rules
            .iter()
            .map(|r| class_of(r.remedy.plain_text()))
            .collect();
        let quota_class = policy
            .quotas
            .iter()
            .map(|q| class_of(q.remedy.plain_text()))
            .collect();
        Remedies {
            rule_class,
            quota_class,
            classes,
            rule_refusals: vec![0; policy.rules.len()],
            quota_refusals: vec![0; policy.quotas.len()],
            rendered: HashMap::default(),
            first: String::new(),
            scratch: Scratch::default(),
        }
    }

    /// Tallies the remedies of one refused request: by class when every remedy is plain,
    /// else rendered.
    fn add(&mut self, world: &World<'a>, row: usize, d: &Decision) {
        match d.why() {
            Why::Rules(mask) if bits(mask).all(|i| self.rule_class[i].is_some()) => {
                let mut first = None;
                let mut same = true;
                for i in bits(mask) {
                    let class = self.rule_class[i].expect("checked");
                    same &= *first.get_or_insert(class) == class;
                    self.classes[class].1[1] += 1;
                    self.rule_refusals[i] += 1;
                }
                if let Some(class) = first.filter(|_| same) {
                    self.classes[class].1[0] += 1;
                }
            }
            Why::Quota { rule, .. } if self.quota_class[rule as usize].is_some() => {
                // The quota's reason is a request's only one: it unblocks and addresses.
                let class = self.quota_class[rule as usize].expect("checked");
                let [unblocks, addresses] = &mut self.classes[class].1;
                *unblocks += 1;
                *addresses += 1;
                self.quota_refusals[rule as usize] += 1;
            }
            Why::Nothing => {}
            _ => self.render(world, row, d),
        }
    }

    /// The slow path, for remedies with placeholders and built-in reasons: renders them.
    fn render(&mut self, world: &World<'a>, row: usize, d: &Decision) {
        let mut first = std::mem::take(&mut self.first);
        first.clear();
        let (mut any, mut same) = (false, true);
        let rendered = &mut self.rendered;
        let _ = each_reason(world, row, d, &mut self.scratch, |rule, _, remedy| {
            let remedy = remedy.text();
            if !any {
                first.push_str(remedy);
                any = true;
            }
            same &= first == remedy;
            tally(rendered, remedy).addresses += 1;
            tally(rendered, remedy).rules.insert(rule);
            Ok(())
        });
        if any && same {
            tally(rendered, &first).unblocks += 1;
        }
        self.first = first;
    }

    fn finish(mut self, policy: &'a Policy) -> Vec<RemedyCount<'a>> {
        let mut by_text: BTreeMap<Cow<'a, str>, RemedyTally<'a>> = BTreeMap::new();
        for (class, (text, [unblocks, addresses])) in self.classes.iter().enumerate() {
            if *addresses == 0 {
                continue;
            }
            let t = by_text.entry(Cow::Borrowed(*text)).or_default();
            t.unblocks += unblocks;
            t.addresses += addresses;
            let rules = policy
                .rules
                .iter()
                .zip(&self.rule_class)
                .zip(&self.rule_refusals);
            let quotas = policy.quotas.iter().zip(&self.quota_class);
            let quotas = quotas.zip(&self.quota_refusals);
            let ids = rules
                .map(|((r, c), n)| (r.id.as_str(), *c, *n))
                .chain(quotas.map(|((q, c), n)| (q.id.as_str(), *c, *n)));
            t.rules.extend(
                ids.filter(|(_, c, n)| *c == Some(class) && *n > 0)
                    .map(|(id, _, _)| id),
            );
        }
        for (text, r) in self.rendered.drain() {
            let t = by_text.entry(Cow::Owned(text)).or_default();
            t.unblocks += r.unblocks;
            t.addresses += r.addresses;
            t.rules.extend(r.rules);
        }
        let mut remedies: Vec<RemedyCount<'a>> = by_text
            .into_iter()
            .map(|(remedy, t)| RemedyCount {
                remedy,
                unblocks: t.unblocks,
                addresses: t.addresses,
                rules: t.rules.into_iter().collect(),
            })
            .collect();
        remedies.sort_by(|a, b| {
            (b.unblocks, b.addresses)
                .cmp(&(a.unblocks, a.addresses))
                .then(a.remedy.cmp(&b.remedy))
        });
        remedies
    }
}

/// The tally of a rendered remedy, allocating its text only the first time it is seen.
fn tally<'m, 'a>(
    map: &'m mut HashMap<String, RemedyTally<'a>>,
    remedy: &str,
) -> &'m mut RemedyTally<'a> {
    if !map.contains_key(remedy) {
        map.insert(remedy.to_string(), RemedyTally::default());
    }
    map.get_mut(remedy).expect("just inserted")
}

/// The set bits of a rule mask, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let i = mask.trailing_zeros() as usize;
        mask &= mask.wrapping_sub(1);
        (i < 64).then_some(i)
    })
}

/// The policy's rule ids: rules, then quotas, in policy order.
pub fn rule_order(policy: &Policy) -> impl Iterator<Item = &str> {
    let rules = policy.rules.iter().map(|r| r.id.as_str());
    rules.chain(policy.quotas.iter().map(|q| q.id.as_str()))
}

#[cfg(test)]
mod tests {
    use super::bits;

    #[test]
    fn bits_lists_the_set_bits_in_order() {
        assert_eq!(bits(0).collect::<Vec<_>>(), Vec::<usize>::new());
        assert_eq!(bits(0b1011).collect::<Vec<_>>(), [0, 1, 3]);
        assert_eq!(bits(1 << 63).collect::<Vec<_>>(), [63]);
        assert_eq!(bits(u64::MAX).count(), 64);
    }
}
