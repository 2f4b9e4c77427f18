//! Synthetic workloads for benchmarks (`icp-audit generate`).
//!
//! Writes `instances.csv`, `ledger.csv` and `requests.csv` in the formats of SPEC §2, shaped
//! like a real nightly batch around the as-of time 2026-11-27T00:00:00Z:
//!
//! - instances: mostly mainland regions, some `cn-hongkong` and overseas; a Subscription /
//!   Pay-As-You-Go mix; expiries from a year before to two years after the as-of time (and a few
//!   exactly on the `not-expired` / `three-months-left` boundaries); creation before expiry;
//!   mostly `Running`; some zero bandwidth, EIP-only and no-IP instances; a few `financial`
//!   (and `security`) operation locks;
//! - ledger: 0 to 5 codes per instance in every status (`in_use` and `spent` rows have a
//!   domain), some legacy rows with no request id, some rows for deleted instances;
//! - requests: the day before the as-of time, mostly for an existing instance from its owner, a
//!   few percent for missing instances or from other accounts, and a hot set of instances that
//!   receive several requests each so that the quota matters.
//!
//! Everything is a function of the seed: the same seed writes the same bytes. Identifiers are
//! bijections of row numbers, so instance ids, request ids and ledger codes never repeat, and
//! ledger request ids (`L-…`) never collide with the batch's (`R-…`). No field begins with `=`,
//! `+`, `-` or `@`, and no field needs quoting.
//!
//! The three files are written on three threads; each has its own random stream, and the facts
//! they share (an instance's id and owner) are pure functions of the seed and the row number.

use crate::code::ALPHABET;
use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const INSTANCES_HEADER: &str = "instance_id,account_id,region_id,charge_type,expired_time,\
creation_time,status,internet_max_bandwidth_out,public_ip,eip_address,operation_locks";
pub const LEDGER_HEADER: &str = "code,instance_id,account_id,request_id,issued_at,status,domain";
pub const REQUESTS_HEADER: &str = "request_id,account_id,instance_id,requested_at";

/// Minutes per day.
const DAY_MIN: i64 = 24 * 60;
/// Pay-As-You-Go rows carry this expiry (2099-12-31T15:59Z), in minutes since the epoch.
const PAYG_EXPIRY_MIN: i64 = (days_from_civil(2099, 12, 31) * 24 + 15) * 60 + 59;
/// The as-of time the workload is shaped around (2026-11-27T00:00Z), in minutes.
const AS_OF_MIN: i64 = days_from_civil(2026, 11, 27) * DAY_MIN;
/// The as-of time plus three calendar months (2027-02-27T00:00Z), in minutes.
const AS_OF_PLUS_3M_MIN: i64 = days_from_civil(2027, 2, 27) * DAY_MIN;

/// Region, weight (per mille), instance id prefix.
const REGIONS: &[(&str, u32, &str)] = &[
    // Mainland China: 850 ‰.
    ("cn-hangzhou", 230, "bp1"),
    ("cn-shanghai", 130, "uf6"),
    ("cn-beijing", 130, "2ze"),
    ("cn-shenzhen", 100, "wz9"),
    ("cn-zhangjiakou", 60, "8vb"),
    ("cn-qingdao", 40, "m5e"),
    ("cn-huhehaote", 25, "hp3"),
    ("cn-wulanchabu", 20, "0jl"),
    ("cn-chengdu", 30, "2vc"),
    ("cn-guangzhou", 25, "7xv"),
    ("cn-nanjing", 10, "gc7"),
    ("cn-fuzhou", 8, "gw0"),
    ("cn-wuhan-lr", 7, "n4a"),
    ("cn-heyuan", 10, "f8z"),
    ("cn-hangzhou-finance", 8, "7xq"),
    ("cn-shanghai-finance-1", 7, "uf8"),
    ("cn-shenzhen-finance-1", 5, "wz8"),
    ("cn-beijing-finance-1", 5, "2zf"),
    // Hong Kong: 50 ‰.
    ("cn-hongkong", 50, "j6c"),
    // Overseas: 100 ‰.
    ("ap-southeast-1", 30, "t4n"),
    ("us-west-1", 15, "rj9"),
    ("eu-central-1", 12, "gw8"),
    ("us-east-1", 10, "0xi"),
    ("ap-northeast-1", 10, "6we"),
    ("eu-west-1", 8, "d7o"),
    ("ap-southeast-5", 7, "k1a"),
    ("me-east-1", 4, "eb3"),
    ("ap-southeast-3", 4, "8ps"),
];

const BANDWIDTHS: &[u64] = &[1, 1, 2, 3, 5, 5, 10, 10, 20, 50, 100, 200];
const IP_FIRST_OCTETS: &[u64] = &[47, 39, 8, 120, 101, 106, 121, 139, 182];
const DOMAIN_WORDS: &[&str] = &[
    "shop", "blog", "mall", "cloud", "data", "news", "edu", "game", "tech", "food", "travel",
    "health",
];
const DOMAIN_TLDS: &[&str] = &[".cn", ".com", ".com.cn", ".net", ".org.cn", ".top"];
const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// The facts the three files share, all pure functions of the seed and a row number.
#[derive(Clone, Copy)]
struct World {
    instances: u64,
    accounts: u64,
    k_instance: u64,
    k_region: u64,
    k_owner: u64,
    k_account: u64,
    k_request: u64,
    k_ledger: u64,
    k_hot: u64,
    seed: u64,
}

impl World {
    fn new(instances: usize, seed: u64) -> World {
        let key = |tag: u64| mix(seed ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        World {
            instances: instances as u64,
            accounts: instances as u64 / 8 + 1,
            k_instance: key(1),
            k_region: key(2),
            k_owner: key(3),
            k_account: key(4),
            k_request: key(5),
            k_ledger: key(6),
            k_hot: key(7),
            seed,
        }
    }

    /// A random stream for one file.
    fn rng(&self, stream: u64) -> fastrand::Rng {
        fastrand::Rng::with_seed(mix(self.seed ^ mix(stream.wrapping_add(0x5EED))))
    }

    /// The region of instance `i` (also for ids beyond the inventory, the missing instances).
    fn region(&self, i: u64) -> usize {
        let mut x = (mix(i ^ self.k_region) % 1000) as u32;
        for (r, &(_, weight, _)) in REGIONS.iter().enumerate() {
            if x < weight {
                return r;
            }
            x -= weight;
        }
        0
    }

    /// The owning account (an index) of instance `i`.
    fn owner(&self, i: u64) -> u64 {
        mix(i ^ self.k_owner) % self.accounts
    }

    /// `i-<region prefix><13 base36 symbols, a bijection of i><4 more>`: unique for every `i`.
    fn push_instance_id(&self, buf: &mut Vec<u8>, i: u64) {
        let r = self.region(i);
        buf.extend_from_slice(b"i-");
        buf.extend_from_slice(REGIONS[r].2.as_bytes());
        let p = mix(i ^ self.k_instance);
        push_radix(buf, p, BASE36, 13);
        push_radix(buf, mix(p), BASE36, 4);
    }

    /// A 16-digit account id, `1` then a bijection of `a` modulo 10^15.
    fn push_account_id(&self, buf: &mut Vec<u8>, a: u64) {
        const M: u128 = 1_000_000_000_000_000;
        let v = ((a as u128 % M) * 982_451_653 + (self.k_account as u128 % M)) % M;
        buf.push(b'1');
        push_padded(buf, v as u64, 15);
    }
}

/// The files `write` makes.
pub const FILES: [&str; 3] = ["instances.csv", "ledger.csv", "requests.csv"];

/// Writes instances.csv, ledger.csv and requests.csv into `out`; unless `force`, refuses (exit
/// 2, nothing written) when one of them is already there: it may be a real ledger. A folder in
/// a file's place, or an `out` that cannot be made, is refused too. The ledger's lock is held
/// throughout, as a run holds it (exit 3 while a run, or another `generate`, holds it), and the
/// files are looked for again under it, so that a ledger a run commits meanwhile is never
/// replaced. The files are written under temporary names and put in place once all three are
/// whole, so a failure (a full disk) leaves the files that were there as they were.
pub fn write(out: &Path, instances: usize, requests: usize, seed: u64, force: bool) -> Result<()> {
    let refuse_existing = || -> Result<()> {
        let there: Vec<&str> = FILES
            .into_iter()
            .filter(|f| std::fs::symlink_metadata(out.join(f)).is_ok())
            .collect();
        if !force && !there.is_empty() {
            return Err(Error::refused(format!(
                "generate --out {}: {} already there; nothing was written (give --force to \
                 replace them with synthetic data)",
                out.display(),
                there.join(", ")
            )));
        }
        if let Some(folder) = there.iter().find(|f| out.join(f).is_dir()) {
            return Err(Error::refused(format!(
                "generate --out {}: {folder} is a folder, not a file; nothing was written",
                out.display()
            )));
        }
        Ok(())
    };
    // Before the folder is made, so that a refusal makes nothing; again under the lock.
    refuse_existing()?;
    std::fs::create_dir_all(out).map_err(|e| {
        let why = match out.is_file() {
            true => "is a file, not a folder".to_string(),
            false => format!("cannot create the folder: {e}"),
        };
        Error::refused(format!(
            "generate --out {}: {why}; nothing was written",
            out.display()
        ))
    })?;
    let _lock = crate::ledger::lock(&out.join(FILES[1]))?;
    refuse_existing()?;
    let tmp = |f: &str| out.join(format!(".{f}.tmp-{}", std::process::id()));
    // Each temporary file made first: a folder the run may not write in is refused (exit 2)
    // before anything is written, as `run`'s --out is.
    for (i, f) in FILES.iter().enumerate() {
        if let Err(e) = File::create(tmp(f)) {
            FILES[..i]
                .iter()
                .for_each(|f| drop(std::fs::remove_file(tmp(f))));
            return Err(Error::refused(format!(
                "generate --out {}: cannot create {f} there: {e}; nothing was written",
                out.display()
            )));
        }
    }
    let world = World::new(instances, seed);
    let results = std::thread::scope(|s| {
        let a = s.spawn(|| write_instances(&tmp(FILES[0]), world));
        let b = s.spawn(|| write_ledger(&tmp(FILES[1]), world));
        let c = s.spawn(|| write_requests(&tmp(FILES[2]), world, requests as u64));
        [a.join(), b.join(), c.join()]
    });
    let written = results
        .into_iter()
        .try_for_each(|r| r.map_err(|_| Error::failed("generate: a writer thread panicked"))?);
    let placed = written.and_then(|()| {
        FILES.into_iter().try_for_each(|f| {
            std::fs::rename(tmp(f), out.join(f)).map_err(|e| {
                Error::failed(format!(
                    "{}: cannot put in place: {e}",
                    out.join(f).display()
                ))
            })
        })
    });
    if placed.is_err() {
        for f in FILES {
            let _ = std::fs::remove_file(tmp(f));
        }
    }
    placed
}

fn write_instances(path: &Path, w: World) -> Result<()> {
    let mut rng = w.rng(1);
    let mut out = Sink::create(path)?;
    out.buf.extend_from_slice(INSTANCES_HEADER.as_bytes());
    out.end_row()?;
    for i in 0..w.instances {
        let b = &mut out.buf;
        w.push_instance_id(b, i);
        b.push(b',');
        w.push_account_id(b, w.owner(i));
        b.push(b',');
        b.extend_from_slice(REGIONS[w.region(i)].0.as_bytes());
        b.push(b',');

        let prepaid = rng.u32(0..100) < 72;
        let (expiry, creation) = if prepaid {
            let expiry = if rng.u32(0..100) == 0 {
                // Exactly on, or a minute either side of, the two time boundaries.
                let base = if rng.bool() {
                    AS_OF_MIN
                } else {
                    AS_OF_PLUS_3M_MIN
                };
                base + rng.i64(-1..=1)
            } else {
                let day = AS_OF_MIN / DAY_MIN + rng.i64(-365..=730);
                // The API writes midnight China time, 16:00 UTC, for most expiries.
                let minute = if rng.u32(0..100) < 85 {
                    16 * 60
                } else {
                    rng.i64(0..DAY_MIN)
                };
                day * DAY_MIN + minute
            };
            const PERIODS: &[i64] = &[1, 1, 1, 2, 3, 6, 6, 12, 12, 12, 24, 36];
            let period = PERIODS[rng.usize(0..PERIODS.len())] * 30 + rng.i64(0..5);
            let by_period = expiry - period * DAY_MIN - rng.i64(0..DAY_MIN);
            let before_as_of = AS_OF_MIN - rng.i64(60..1000 * DAY_MIN);
            (expiry, by_period.min(before_as_of))
        } else {
            (PAYG_EXPIRY_MIN, AS_OF_MIN - rng.i64(60..6 * 365 * DAY_MIN))
        };
        let expired = expiry <= AS_OF_MIN;
        b.extend_from_slice(if prepaid { b"PrePaid," } else { b"PostPaid," });
        push_time_min(b, expiry);
        b.push(b',');
        push_time_min(b, creation);
        b.push(b',');

        let s = rng.u32(0..100);
        let status: &[u8] = if expired && s < 60 {
            b"Stopped"
        } else {
            match s {
                0..88 => b"Running",
                88..96 => b"Stopped",
                96..97 => b"Stopping",
                97..98 => b"Starting",
                98..99 => b"Pending",
                _ => b"Running",
            }
        };
        b.extend_from_slice(status);
        b.push(b',');

        // Network: bandwidth and public IP, EIP only, nothing, and the odd mixes.
        let n = rng.u32(0..100);
        let bandwidth = BANDWIDTHS[rng.usize(0..BANDWIDTHS.len())];
        let (bw, public, eip) = match n {
            0..66 => (bandwidth, true, false),
            66..80 => (0, false, true),
            80..92 => (0, false, false),
            92..96 => (bandwidth, false, false),
            _ => (0, true, false),
        };
        push_u64(b, bw);
        b.push(b',');
        if public {
            push_ip(b, &mut rng);
        }
        b.push(b',');
        if eip {
            push_ip(b, &mut rng);
        }
        b.push(b',');

        let l = rng.u32(0..1000);
        let locks: &[u8] = if prepaid && expired && l < 500 {
            b"financial"
        } else {
            match l {
                0..20 => b"financial",
                20..30 => b"security",
                30..33 => b"financial;security",
                _ => b"",
            }
        };
        b.extend_from_slice(locks);
        out.end_row()?;
    }
    out.finish()
}

fn write_ledger(path: &Path, w: World) -> Result<()> {
    let mut rng = w.rng(2);
    let mut out = Sink::create(path)?;
    out.buf.extend_from_slice(LEDGER_HEADER.as_bytes());
    out.end_row()?;
    // Unique row number: codes and request ids are bijections of it.
    let mut row: u64 = 0;
    let emit = |out: &mut Sink, rng: &mut fastrand::Rng, i: u64, row: u64| -> Result<()> {
        let b = &mut out.buf;
        let legacy = rng.u32(0..100) < 15;
        let p = mix(row ^ w.k_ledger);
        if legacy {
            // Console or hand-made codes: any format, no request id.
            if rng.bool() {
                b.extend_from_slice(b"LEGACY-");
                push_u64(b, row);
            } else {
                b.extend_from_slice(b"icp-");
                let start = b.len();
                push_radix(b, p, ALPHABET, 13);
                b[start..].make_ascii_lowercase();
            }
        } else {
            // Codes of the default policy's format, as a run issues them: 13 symbols of a
            // bijection of the row, 6 random ones, and the check symbol.
            let mut sym = Vec::with_capacity(20);
            push_radix(&mut sym, p, ALPHABET, 13);
            for _ in 0..6 {
                sym.push(ALPHABET[rng.usize(0..32)]);
            }
            let check = crate::code::check_symbol(&sym).expect("symbols of the alphabet");
            sym.push(check);
            for (k, chunk) in sym.chunks(4).enumerate() {
                if k > 0 {
                    b.push(b'-');
                }
                b.extend_from_slice(chunk);
            }
        }
        b.push(b',');
        w.push_instance_id(b, i);
        b.push(b',');
        w.push_account_id(b, w.owner(i));
        b.push(b',');
        if !legacy {
            b.extend_from_slice(b"L-");
            push_radix(b, p, b"0123456789abcdef", 16);
        }
        b.push(b',');
        push_time_sec(b, AS_OF_MIN * 60 - rng.i64(3600..3 * 365 * 86_400));
        b.push(b',');
        let s = rng.u32(0..100);
        let (status, domain): (&[u8], bool) = match s {
            0..35 => (b"issued", false),
            35..60 => (b"in_use", true),
            _ => (b"spent", true),
        };
        b.extend_from_slice(status);
        b.push(b',');
        if domain {
            b.extend_from_slice(b"www.");
            b.extend_from_slice(DOMAIN_WORDS[rng.usize(0..DOMAIN_WORDS.len())].as_bytes());
            push_u64(b, rng.u64(1..100_000));
            b.extend_from_slice(DOMAIN_TLDS[rng.usize(0..DOMAIN_TLDS.len())].as_bytes());
        }
        out.end_row()
    };
    for i in 0..w.instances {
        // How many codes this instance already holds: 0 (most) to 5 (the limit).
        let k = match rng.u32(0..100) {
            0..55 => 0,
            55..70 => 1,
            70..80 => 2,
            80..88 => 3,
            88..94 => 4,
            _ => 5,
        };
        for _ in 0..k {
            emit(&mut out, &mut rng, i, row)?;
            row += 1;
        }
        // Now and then a code of an instance that has since been released.
        if rng.u32(0..100) < 2 {
            let gone = w.instances + rng.u64(0..1 << 40);
            emit(&mut out, &mut rng, gone, row)?;
            row += 1;
        }
    }
    out.finish()
}

fn write_requests(path: &Path, w: World, requests: u64) -> Result<()> {
    let mut rng = w.rng(3);
    let mut out = Sink::create(path)?;
    out.buf.extend_from_slice(REQUESTS_HEADER.as_bytes());
    out.end_row()?;
    let day_before = (AS_OF_MIN - DAY_MIN) * 60;
    let hot = w.instances / 50 + 1;
    let mut at = day_before;
    for j in 0..requests {
        let b = &mut out.buf;
        b.extend_from_slice(b"R-");
        push_radix(b, mix(j ^ w.k_request), b"0123456789abcdef", 16);
        b.push(b',');

        let t = rng.u32(0..100);
        let i = if w.instances == 0 || t < 3 {
            w.instances + rng.u64(0..1 << 40) // not in the inventory
        } else if t < 12 {
            mix(rng.u64(0..hot) ^ w.k_hot) % w.instances // a hot instance: several requests
        } else {
            rng.u64(0..w.instances)
        };
        let owner = w.owner(i);
        let account = if rng.u32(0..100) < 4 {
            let other = rng.u64(0..w.accounts + w.accounts / 10 + 2);
            if other == owner { other + 1 } else { other }
        } else {
            owner
        };
        w.push_account_id(b, account);
        b.push(b',');
        w.push_instance_id(b, i);
        b.push(b',');
        // Now and then the same second as the previous request: the request id breaks the tie.
        if j == 0 || rng.u32(0..100) >= 3 {
            at = day_before + rng.i64(0..86_400);
        }
        push_time_sec(b, at);
        out.end_row()?;
    }
    out.finish()
}

/// A file written through a buffer of whole rows.
struct Sink {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
}

impl Sink {
    const FLUSH_AT: usize = 1 << 20;

    fn create(path: &Path) -> Result<Sink> {
        let file = File::create(path)
            .map_err(|e| Error::failed(format!("{}: cannot create: {e}", path.display())))?;
        Ok(Sink {
            file,
            path: path.to_path_buf(),
            buf: Vec::with_capacity(Self::FLUSH_AT + 4096),
        })
    }

    fn end_row(&mut self) -> Result<()> {
        self.buf.push(b'\n');
        if self.buf.len() >= Self::FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.file
            .write_all(&self.buf)
            .map_err(|e| Error::failed(format!("{}: cannot write: {e}", self.path.display())))?;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.flush()
    }
}

/// The splitmix64 finaliser: a bijection of u64.
const fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (the inverse of `days_from_civil`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn push_date_hm(buf: &mut Vec<u8>, minutes: i64) {
    let (y, m, d) = civil_from_days(minutes.div_euclid(DAY_MIN));
    let t = minutes.rem_euclid(DAY_MIN);
    push_padded(buf, y as u64, 4);
    buf.push(b'-');
    push_padded(buf, m as u64, 2);
    buf.push(b'-');
    push_padded(buf, d as u64, 2);
    buf.push(b'T');
    push_padded(buf, (t / 60) as u64, 2);
    buf.push(b':');
    push_padded(buf, (t % 60) as u64, 2);
}

/// `YYYY-MM-DDTHH:MMZ`, the API's form.
fn push_time_min(buf: &mut Vec<u8>, minutes: i64) {
    push_date_hm(buf, minutes);
    buf.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn push_time_sec(buf: &mut Vec<u8>, seconds: i64) {
    push_date_hm(buf, seconds.div_euclid(60));
    buf.push(b':');
    push_padded(buf, seconds.rem_euclid(60) as u64, 2);
    buf.push(b'Z');
}

fn push_ip(buf: &mut Vec<u8>, rng: &mut fastrand::Rng) {
    push_u64(buf, IP_FIRST_OCTETS[rng.usize(0..IP_FIRST_OCTETS.len())]);
    for _ in 0..3 {
        buf.push(b'.');
        push_u64(buf, rng.u64(1..255));
    }
}

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// `n` in decimal, zero-padded to `width` digits (its low `width` digits).
fn push_padded(buf: &mut Vec<u8>, n: u64, width: usize) {
    push_radix(buf, n, b"0123456789", width);
}

/// The low `width` digits of `n` in the radix of `alphabet`, most significant first.
fn push_radix(buf: &mut Vec<u8>, mut n: u64, alphabet: &[u8], width: usize) {
    let radix = alphabet.len() as u64;
    let start = buf.len();
    buf.resize(start + width, b'0');
    for k in (start..start + width).rev() {
        buf[k] = alphabet[(n % radix) as usize];
        n /= radix;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// A fresh scratch folder for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("icp-audit-gen-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn files(dir: &Path) -> Vec<Vec<u8>> {
        ["instances.csv", "ledger.csv", "requests.csv"]
            .iter()
            .map(|f| std::fs::read(dir.join(f)).unwrap())
            .collect()
    }

    fn rows(dir: &Path, file: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(dir.join(file))
            .unwrap();
        let header = rdr.headers().unwrap().iter().map(String::from).collect();
        let rows = rdr
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        (header, rows)
    }

    #[test]
    fn same_seed_same_bytes_different_seed_different_bytes() {
        let (a, b, c) = (scratch("a"), scratch("b"), scratch("c"));
        write(&a, 2000, 3000, 7, false).unwrap();
        write(&b, 2000, 3000, 7, false).unwrap();
        write(&c, 2000, 3000, 8, false).unwrap();
        let (fa, fb, fc) = (files(&a), files(&b), files(&c));
        assert_eq!(fa, fb);
        for k in 0..3 {
            assert_ne!(fa[k], fc[k], "file {k} does not depend on the seed");
        }
        for d in [a, b, c] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn header_rows() {
        let dir = scratch("headers");
        write(&dir, 10, 10, 1, false).unwrap();
        let first = |f: &str| {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            text.lines().next().unwrap().to_string()
        };
        assert_eq!(
            first("instances.csv"),
            "instance_id,account_id,region_id,charge_type,expired_time,creation_time,status,\
             internet_max_bandwidth_out,public_ip,eip_address,operation_locks"
        );
        assert_eq!(
            first("ledger.csv"),
            "code,instance_id,account_id,request_id,issued_at,status,domain"
        );
        assert_eq!(
            first("requests.csv"),
            "request_id,account_id,instance_id,requested_at"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn empty_inventory_and_batch() {
        let dir = scratch("empty");
        write(&dir, 0, 0, 1, false).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("requests.csv"))
                .unwrap()
                .lines()
                .count(),
            1
        );
        // Written again: refused without --force, nothing changed; replaced with it.
        let before = files(&dir);
        let refused = write(&dir, 0, 5, 1, false).unwrap_err();
        assert_eq!(refused.exit, crate::error::Exit::Refused);
        assert!(
            refused
                .message
                .contains("instances.csv, ledger.csv, requests.csv already there"),
            "{}",
            refused.message
        );
        assert_eq!(files(&dir), before);
        write(&dir, 0, 5, 1, true).unwrap();
        let (_, reqs) = rows(&dir, "requests.csv");
        assert_eq!(reqs.len(), 5);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn well_formed_unique_and_realistic() {
        let dir = scratch("shape");
        let n = 20_000;
        write(&dir, n, n, 42, false).unwrap();
        let (ih, inst) = rows(&dir, "instances.csv");
        let (lh, ledger) = rows(&dir, "ledger.csv");
        let (rh, reqs) = rows(&dir, "requests.csv");
        assert_eq!(inst.len(), n);
        assert_eq!(reqs.len(), n);
        for (h, rs) in [(&ih, &inst), (&lh, &ledger), (&rh, &reqs)] {
            for r in rs {
                assert_eq!(r.len(), h.len());
                for f in r {
                    assert!(!f.starts_with(['=', '+', '-', '@']), "{f}");
                    assert!(!f.contains([',', '"', '\n', '\r']), "{f}");
                }
            }
        }
        let time_min = |t: &str| crate::time::parse(t).is_ok() && t.len() == 17;
        let time_sec = |t: &str| crate::time::parse(t).is_ok() && t.len() == 20;

        // Instances: unique ids, required values, times, a mix of everything.
        let ids: HashSet<&str> = inst.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(ids.len(), n);
        let owner: HashMap<&str, &str> = inst
            .iter()
            .map(|r| (r[0].as_str(), r[1].as_str()))
            .collect();
        let mainland = REGIONS[..18].iter().map(|r| r.0).collect::<HashSet<_>>();
        let (mut main, mut hk, mut over, mut post, mut fin, mut sec) = (0, 0, 0, 0, 0, 0);
        let (mut bw0, mut eip_only, mut no_ip, mut running) = (0, 0, 0, 0);
        let (mut expired, mut short, mut long) = (0, 0, 0);
        for r in &inst {
            for k in [0, 1, 2, 3, 4, 7] {
                assert!(!r[k].is_empty());
            }
            assert!(time_min(&r[4]) && time_min(&r[5]), "{r:?}");
            let exp = crate::time::parse(&r[4]).unwrap();
            assert!(crate::time::parse(&r[5]).unwrap() < exp, "{r:?}");
            match r[3].as_str() {
                "PrePaid" => {
                    let as_of = crate::time::parse("2026-11-27T00:00Z").unwrap();
                    let plus3 = crate::time::parse("2027-02-27T00:00Z").unwrap();
                    if exp <= as_of {
                        expired += 1;
                    } else if exp < plus3 {
                        short += 1;
                    } else {
                        long += 1;
                    }
                }
                "PostPaid" => {
                    post += 1;
                    assert_eq!(r[4], "2099-12-31T15:59Z");
                }
                other => panic!("charge type {other}"),
            }
            match r[2].as_str() {
                "cn-hongkong" => hk += 1,
                x if mainland.contains(x) => main += 1,
                _ => over += 1,
            }
            let bw: u64 = r[7].parse().unwrap();
            bw0 += usize::from(bw == 0);
            eip_only += usize::from(r[8].is_empty() && !r[9].is_empty());
            no_ip += usize::from(r[8].is_empty() && r[9].is_empty());
            running += usize::from(r[6] == "Running");
            fin += usize::from(r[10].split(';').any(|l| l == "financial"));
            sec += usize::from(r[10].split(';').any(|l| l == "security"));
        }
        assert!(
            main > n * 8 / 10 && hk > n / 40 && over > n / 20,
            "{main} {hk} {over}"
        );
        assert!(post > n / 5 && post < n / 2);
        assert!(
            expired > n / 20 && short > n / 50 && long > n / 4,
            "{expired} {short} {long}"
        );
        assert!(bw0 > n / 10 && eip_only > n / 20 && no_ip > n / 20);
        assert!(running > n / 2);
        assert!(fin > n / 100 && sec > n / 200, "{fin} {sec}");

        // Ledger: unique codes (by identity) and request ids; domains where they belong.
        let mut codes = HashSet::new();
        let mut lreq = HashSet::new();
        let mut per: HashMap<&str, usize> = HashMap::new();
        let mut statuses = HashSet::new();
        let format = crate::policy::default_policy().code;
        for r in &ledger {
            assert!(codes.insert(crate::code::identity_key(&r[0])), "{}", r[0]);
            if !r[3].is_empty() {
                assert!(r[3].starts_with("L-"));
                assert!(lreq.insert(r[3].clone()));
                // A code of the tool's own format verifies, as the codes a run issued do.
                assert_eq!(format.verify(&r[0]).as_deref(), Ok(r[0].as_str()));
            }
            assert!(time_sec(&r[4]));
            assert_eq!(r[6].is_empty(), r[5] == "issued", "{r:?}");
            statuses.insert(r[5].clone());
            if let Some(o) = owner.get(r[1].as_str()) {
                assert_eq!(*o, r[2]);
                *per.entry(r[1].as_str()).or_default() += 1;
            }
        }
        assert_eq!(statuses.len(), 3);
        assert!(per.values().all(|&k| k <= 5));
        assert!(per.values().filter(|&&k| k == 5).count() > n / 50);

        // Requests: unique ids, the day before, mostly existing instances and owners.
        let rids: HashSet<&str> = reqs.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(rids.len(), n);
        let (mut missing, mut other) = (0, 0);
        let mut per_req: HashMap<&str, usize> = HashMap::new();
        for r in &reqs {
            assert!(r[0].starts_with("R-"));
            assert!(
                time_sec(&r[3]) && r[3].starts_with("2026-11-26T"),
                "{}",
                r[3]
            );
            match owner.get(r[2].as_str()) {
                None => missing += 1,
                Some(o) if *o != r[1] => other += 1,
                Some(_) => *per_req.entry(r[2].as_str()).or_default() += 1,
            }
        }
        assert!(missing > n / 100 && missing < n / 10, "{missing}");
        assert!(other > n / 100 && other < n / 10, "{other}");
        assert!(per_req.values().filter(|&&k| k >= 3).count() > n / 100);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn civil_round_trip() {
        for z in [0, 1, 59, 365, 10_957, 20_784, 47_482, 47_846] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        let mut b = Vec::new();
        push_time_min(&mut b, PAYG_EXPIRY_MIN);
        assert_eq!(b, b"2099-12-31T15:59Z");
        b.clear();
        push_time_sec(&mut b, AS_OF_PLUS_3M_MIN * 60 + 61);
        assert_eq!(b, b"2027-02-27T00:01:01Z");
    }
}
