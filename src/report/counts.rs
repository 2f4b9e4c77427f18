//! The numbers behind `summary.json`, `report.html` and the terminal table, gathered in one
//! pass over the decisions: requests per outcome, reasons per rule, refusals per region and
//! what each remedy would unblock. Counting never allocates per row: keys borrow the policy's
//! and the inventory's text; only a remedy with placeholders is rendered, into a reused buffer.

use crate::eval::{self, Decision, Outcome, Why, World, each_reason, rule_ids};
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
        for (row, d) in decisions.iter().enumerate() {
            pass.add(row, d);
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

/// The state of the one pass.
struct Pass<'w, 'a> {
    world: &'w World<'a>,
    region_col: Option<usize>,
    outcomes: [u64; 6],
    rules: HashMap<&'a str, u64>,
    regions: HashMap<Option<&'a str>, [u64; 2]>,
    remedies: HashMap<Cow<'a, str>, RemedyTally<'a>>,
    /// The first remedy of the decision being rendered (for remedies with placeholders).
    first: String,
}

impl<'w, 'a> Pass<'w, 'a> {
    fn new(world: &'w World<'a>) -> Self {
        Pass {
            world,
            region_col: world.policy.instances.index("region_id"),
            outcomes: [0; 6],
            rules: HashMap::default(),
            regions: HashMap::default(),
            remedies: HashMap::default(),
            first: String::new(),
        }
    }

    fn add(&mut self, row: usize, d: &Decision) {
        self.outcomes[d.outcome as usize] += 1;
        for id in rule_ids(self.world, d) {
            *self.rules.entry(id).or_default() += 1;
        }
        match d.outcome {
            Outcome::Denied => {
                self.region(row, d, 0);
                self.remedies_of(row, d);
            }
            Outcome::NotRequired => self.region(row, d, 1),
            Outcome::Invalid => self.remedies_of(row, d),
            _ => {}
        }
    }

    fn region(&mut self, row: usize, d: &Decision, slot: usize) {
        // A decision that records no inventory row (a confidential gate decides before one is
        // chosen) is placed by the row evaluation would judge it on, so an owner-account
        // refusal counts in its instance's region; a request whose instance is not in the
        // inventory has none.
        let inst = d
            .instance_row()
            .or_else(|| eval::instance_row(self.world, row));
        let region = match (inst, self.region_col) {
            (Some(i), Some(c)) => Some(self.world.instances.text(c, i)),
            _ => None,
        };
        self.regions.entry(region).or_default()[slot] += 1;
    }

    /// Tallies the remedies of one refused request; remedies without placeholders are read
    /// from the policy, the others rendered.
    fn remedies_of(&mut self, row: usize, d: &Decision) {
        let policy = self.world.policy;
        if let Some(plain) = plain_remedies(policy, d.why)
            && plain.clone().all(|(_, r)| r.is_some())
        {
            let mut first = None;
            let mut same = true;
            for (rule, remedy) in plain {
                let remedy = remedy.unwrap_or_default();
                same &= *first.get_or_insert(remedy) == remedy;
                self.address(rule, remedy);
            }
            if let Some(r) = first.filter(|_| same) {
                self.unblock(r);
            }
            return;
        }
        let mut first = std::mem::take(&mut self.first);
        first.clear();
        let (mut any, mut same) = (false, true);
        let _ = each_reason(self.world, row, d, |rule, _, remedy| {
            if !any {
                first.push_str(remedy);
                any = true;
            }
            same &= first == remedy;
            self.address(rule, remedy);
            Ok(())
        });
        if any && same {
            self.unblock(&first);
        }
        self.first = first;
    }

    fn tally(&mut self, remedy: &str) -> &mut RemedyTally<'a> {
        if !self.remedies.contains_key(remedy) {
            self.remedies
                .insert(Cow::Owned(remedy.to_string()), RemedyTally::default());
        }
        self.remedies.get_mut(remedy).expect("just inserted")
    }

    fn address(&mut self, rule: &'a str, remedy: &str) {
        let t = self.tally(remedy);
        t.addresses += 1;
        t.rules.insert(rule);
    }

    fn unblock(&mut self, remedy: &str) {
        self.tally(remedy).unblocks += 1;
    }

    fn finish(self) -> Counts<'a> {
        let policy = self.world.policy;
        let outcomes = Outcome::ALL
            .iter()
            .map(|o| (o.name(), self.outcomes[*o as usize]))
            .collect();
        let mut rules: BTreeMap<String, u64> =
            rule_order(policy).map(|id| (id.to_string(), 0)).collect();
        for (id, n) in self.rules {
            *rules.entry(id.to_string()).or_default() += n;
        }
        let mut regions: Vec<RegionCount<'a>> = self
            .regions
            .into_iter()
            .map(|(region, [denied, not_required])| RegionCount {
                region,
                denied,
                not_required,
            })
            .collect();
        regions.sort_by(|a, b| b.total().cmp(&a.total()).then(a.region.cmp(&b.region)));
        let mut remedies: Vec<RemedyCount<'a>> = self
            .remedies
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
        Counts {
            outcomes,
            rules,
            regions,
            remedies,
        }
    }
}

/// The policy's rule ids: rules, then quotas, in policy order.
pub fn rule_order(policy: &Policy) -> impl Iterator<Item = &str> {
    let rules = policy.rules.iter().map(|r| r.id.as_str());
    rules.chain(policy.quotas.iter().map(|q| q.id.as_str()))
}

/// Each reason's rule id and its remedy's text when the remedy has no placeholder; `None` for
/// the built-in reasons, whose words only `each_reason` knows.
fn plain_remedies(
    policy: &Policy,
    why: Why,
) -> Option<impl Iterator<Item = (&str, Option<&str>)> + Clone> {
    let (mask, quota) = match why {
        Why::Rules(mask) => (mask, None),
        Why::Quota { rule, .. } => (0, Some(&policy.quotas[rule as usize])),
        Why::Nothing | Why::Builtin(_) => return None,
    };
    let rules = policy
        .rules
        .iter()
        .enumerate()
        .filter(move |(i, _)| mask & (1 << i) != 0)
        .map(|(_, r)| (r.id.as_str(), r.remedy.plain_text()));
    let quota = quota.map(|q| (q.id.as_str(), q.remedy.plain_text()));
    Some(rules.chain(quota))
}
