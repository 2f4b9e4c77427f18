//! Time values: parsing the one format every input uses, calendar-month arithmetic, and the one
//! output format. Every time is UTC once parsed; nothing here knows about files or rules.

use chrono::{DateTime, Months, NaiveDate, NaiveTime, TimeDelta, Utc};

/// An instant in UTC.
pub type Time = DateTime<Utc>;

/// What a value that is not a time is told, after the value (or without it, where the value
/// may not be repeated).
pub const NOT_A_TIME: &str =
    "is not a time (expected YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS[.fraction]] then Z or ±HH:MM)";

/// Parses `YYYY-MM-DD`, optionally followed by `THH:MM`, optional `:SS` and fraction, and then
/// `Z` or an offset `±HH:MM`. A bare date is midnight UTC.
pub fn parse(text: &str) -> Result<Time, String> {
    let b = text.as_bytes();
    let bad = || format!("`{text}` {NOT_A_TIME}");
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let year = digits(&b[0..4]).ok_or_else(bad)? as i32;
    let month = digits(&b[5..7]).ok_or_else(bad)?;
    let day = digits(&b[8..10]).ok_or_else(bad)?;
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(bad)?;
    if b.len() == 10 {
        return Ok(date.and_time(NaiveTime::MIN).and_utc());
    }
    let rest = &b[10..];
    if rest.len() < 7 || (rest[0] != b'T' && rest[0] != b't') || rest[3] != b':' {
        return Err(bad());
    }
    let hour = digits(&rest[1..3]).ok_or_else(bad)?;
    let minute = digits(&rest[4..6]).ok_or_else(bad)?;
    let mut i = 6;
    let (mut second, mut nanos) = (0, 0);
    if rest[i] == b':' {
        second = rest.get(i + 1..i + 3).and_then(digits).ok_or_else(bad)?;
        i += 3;
        if rest.get(i) == Some(&b'.') {
            let start = i + 1;
            let len = rest[start..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if len == 0 {
                return Err(bad());
            }
            // Digits past the nanosecond are read and dropped (times are kept to the
            // microsecond): the specification sets no limit on a fraction's length.
            let kept = len.min(9);
            nanos =
                digits(&rest[start..start + kept]).ok_or_else(bad)? * 10u32.pow(9 - kept as u32);
            i = start + len;
        }
    }
    let offset = zone(&rest[i..]).ok_or_else(bad)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos).ok_or_else(bad)?;
    let local = date.and_time(time).and_utc();
    if offset.is_zero() {
        // Four digits were read: the year is within 0000 to 9999.
        return Ok(local);
    }
    let utc = local.checked_sub_signed(offset).ok_or_else(bad)?;
    // In UTC the year must still have four digits, so that it is written back as RFC 3339.
    if !(0..=9999).contains(&chrono::Datelike::year(&utc.naive_utc())) {
        return Err(format!("`{text}` is outside the years 0000 to 9999 in UTC"));
    }
    Ok(utc)
}

/// `parse`, as the microseconds since 1970 that an input keeps. The two forms exports and the
/// generator write, `YYYY-MM-DDTHH:MMZ` and `YYYY-MM-DDTHH:MM:SSZ`, are counted straight from
/// their digits, without building a calendar date and a time (a few million cells a run); any
/// other text, and any that does not name a real instant, goes through `parse`, which gives the
/// same instant or the same error.
pub fn parse_micros(text: &str) -> Result<i64, String> {
    match plain_micros(text.as_bytes()) {
        Some(us) => Ok(us),
        None => parse(text).map(|t| t.timestamp_micros()),
    }
}

/// The microseconds of a time in one of the two plain forms (`T` and `Z` in either case), or
/// `None` when `b` is not one or names no real instant.
fn plain_micros(b: &[u8]) -> Option<i64> {
    let with_seconds = match b.len() {
        17 => false,
        20 => true,
        _ => return None,
    };
    let punctuated = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && (!with_seconds || b[16] == b':')
        && matches!(b[b.len() - 1], b'Z' | b'z');
    if !punctuated {
        return None;
    }
    let year = i64::from(digits(&b[0..4])?);
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = i64::from(digits(&b[11..13])?);
    let minute = i64::from(digits(&b[14..16])?);
    let second = if with_seconds {
        i64::from(digits(&b[17..19])?)
    } else {
        0
    };
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_since_1970(year, month, day);
    Some((((days * 24 + hour) * 60 + minute) * 60 + second) * 1_000_000)
}

/// The days of a month of the proleptic Gregorian calendar (the one chrono uses).
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The days from 1970-01-01 to a valid date of the years 0000 to 9999: its years counted from
/// March, so that the leap day ends a year, in whole 400-year cycles of 146,097 days; counted
/// from the year -400, so that every number is positive.
fn days_since_1970(year: i64, month: u32, day: u32) -> i64 {
    let from_march = if month > 2 { month - 3 } else { month + 9 };
    let year = (year + 400) as u32 - u32::from(month <= 2);
    let (cycle, year_of_cycle) = (year / 400, year % 400);
    let day_of_year = (153 * from_march + 2) / 5 + day - 1;
    let day_of_cycle = year_of_cycle * 365 + year_of_cycle / 4 - year_of_cycle / 100 + day_of_year;
    // From -0400-03-01 to 1970-01-01: 719,468 days and one cycle.
    i64::from(cycle * 146_097 + day_of_cycle) - 719_468 - 146_097
}

/// The offset east of UTC written as `Z` or `±HH:MM`.
fn zone(b: &[u8]) -> Option<TimeDelta> {
    match b {
        [b'Z' | b'z'] => Some(TimeDelta::zero()),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = i64::from(hours * 3600 + minutes * 60);
            Some(TimeDelta::seconds(if *sign == b'-' { -secs } else { secs }))
        }
        _ => None,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// Adds (or, for a negative count, subtracts) calendar months; the day is clamped to the end of
/// the target month (Nov 30 + 3 months = Feb 28, or 29 in a leap year). `None` past year 262143.
pub fn add_months(t: Time, months: i32) -> Option<Time> {
    let m = Months::new(months.unsigned_abs());
    if months >= 0 {
        t.checked_add_months(m)
    } else {
        t.checked_sub_months(m)
    }
}

/// The current time, to the whole second.
pub fn now() -> Time {
    whole_seconds(chrono::Utc::now())
}

/// `t` to the microsecond, the precision every time of the inputs is kept at (and written at):
/// an `--as-of` is kept so, with its fraction, so that the as-of a run writes is the one it
/// decided with.
pub fn whole_micros(t: Time) -> Time {
    t - TimeDelta::nanoseconds(i64::from(t.timestamp_subsec_nanos() % 1_000))
}

/// `t` without its fraction of a second: the clock's as-of time is kept so (its fraction is
/// only noise).
pub fn whole_seconds(t: Time) -> Time {
    t - TimeDelta::nanoseconds(i64::from(t.timestamp_subsec_nanos()))
}

/// The one output form: RFC 3339, UTC, with seconds (`2026-11-30T00:00:00Z`), and the fraction
/// of a second when there is one, to the microsecond the run keeps, without trailing zeros
/// (`2026-11-30T00:00:00.5Z`): so that the as-of time a run writes is the one it decided with.
pub fn format(t: Time) -> String {
    let mut s = String::with_capacity(20);
    write(t, &mut s);
    s
}

/// Appends `t` in the output form.
pub fn write(t: Time, out: &mut String) {
    use chrono::{Datelike, Timelike};
    // Its twenty bytes made on the stack and appended at once: this runs for most lines of
    // `denials.csv`, where the formatting machinery of `write!`, and then a push per
    // character, showed in profiles. Years are 0000 to 9999 (see `parse`).
    let t = t.naive_utc();
    let year = t.year().clamp(0, 9999) as u32;
    let mut text = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, n: u32, width: usize| {
        let mut n = n;
        for place in (at..at + width).rev() {
            text[place] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, year, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    let micros = t.nanosecond() / 1_000 % 1_000_000;
    if micros == 0 {
        out.push_str(std::str::from_utf8(&text).expect("digits and punctuation are ASCII"));
        return;
    }
    out.push_str(std::str::from_utf8(&text[..19]).expect("digits and punctuation are ASCII"));
    let digits = format!(".{micros:06}");
    out.push_str(digits.trim_end_matches('0'));
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        parse(s).unwrap()
    }

    #[test]
    fn format_writes_rfc3339_seconds_in_utc() {
        for text in [
            "0000-01-01T00:00:00Z",
            "0009-02-03T04:05:06Z",
            "0999-12-31T23:59:59Z",
            "2026-11-27T00:00:00Z",
            "2027-07-04T21:04:09.999Z",
            "2026-03-01T08:30+08:00",
            "9999-12-31T23:59:59Z",
        ] {
            let time = t(text);
            // chrono's own RFC 3339 form, with as many fraction digits as it takes.
            let want = time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            let want = match want.split_once('.') {
                Some((whole, frac)) => {
                    let digits = frac.trim_end_matches('Z').trim_end_matches('0');
                    format!("{whole}.{digits}Z")
                }
                None => want,
            };
            assert_eq!(format(time), want, "{text}");
        }
        assert_eq!(format(t("2026-03-01T08:30+08:00")), "2026-03-01T00:30:00Z");
        // A fraction is kept to the microsecond, without trailing zeros, and read back the same.
        for (text, written) in [
            ("2026-11-27T00:00:00.5Z", "2026-11-27T00:00:00.5Z"),
            ("2026-11-27T00:00:00.000001Z", "2026-11-27T00:00:00.000001Z"),
            (
                "2026-11-27T00:00:00.1234567Z",
                "2026-11-27T00:00:00.123456Z",
            ),
            ("2026-11-27T08:00:00.250+08:00", "2026-11-27T00:00:00.25Z"),
            ("2026-11-27T00:00:00.000Z", "2026-11-27T00:00:00Z"),
        ] {
            assert_eq!(format(t(text)), written, "{text}");
            assert_eq!(format(t(written)), written, "{written} read back");
        }
    }

    #[test]
    fn parses_every_listed_form_to_the_same_instant() {
        let want = "2027-03-01T16:00:00Z";
        for s in [
            "2027-03-01T16:00Z",
            "2027-03-01T16:00:00Z",
            "2027-03-01T16:00:00.000Z",
            "2027-03-02T00:00+08:00",
            "2027-03-01T11:30:00-04:30",
            "2027-03-01t16:00z",
        ] {
            assert_eq!(format(t(s)), want, "{s}");
        }
        assert_eq!(format(t("2026-11-30")), "2026-11-30T00:00:00Z");
        assert_eq!(t("2026-01-01T00:00:00.5Z").timestamp_subsec_millis(), 500);
        // A fraction of any length: digits past the nanosecond are dropped.
        let long = t("2026-01-01T00:00:00.1234567891234Z");
        assert_eq!(long.timestamp_subsec_nanos(), 123_456_789);
        assert_eq!(
            format(t("2026-01-01T23:59:59.99999999999+00:00")),
            "2026-01-01T23:59:59.999999Z",
            "written to the microsecond"
        );
    }

    #[test]
    fn plain_forms_count_the_instant_parse_gives() {
        // Every day number 0 to 32 of every month number 0 to 13 of years around the calendar's
        // rules (leap years by 4, 100 and 400, both ends of the four digits), at times at and
        // past each field's range, in both plain forms and both cases.
        let mut counted = 0;
        for year in [
            0, 1, 4, 99, 100, 400, 1900, 1969, 1970, 2000, 2024, 2026, 2100, 9999,
        ] {
            for month in 0..=13 {
                for day in 0..=32 {
                    for (hour, minute, second) in
                        [(0, 0, 0), (23, 59, 59), (24, 0, 0), (12, 60, 0), (1, 2, 60)]
                    {
                        let date = format!("{year:04}-{month:02}-{day:02}");
                        for text in [
                            format!("{date}T{hour:02}:{minute:02}Z"),
                            format!("{date}T{hour:02}:{minute:02}:{second:02}Z"),
                            format!("{date}t{hour:02}:{minute:02}:{second:02}z"),
                        ] {
                            let want = parse(&text).map(|t| t.timestamp_micros());
                            assert_eq!(parse_micros(&text), want, "{text}");
                            if want.is_ok() {
                                assert!(plain_micros(text.as_bytes()).is_some(), "{text}");
                                counted += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(counted > 10_000, "{counted} valid times counted");
        // Other forms give what `parse` gives, valid or not.
        for text in [
            "2026-11-27",
            "2026-11-27T00:00:00.5Z",
            "2026-11-27T08:00+08:00",
            "2026-11-27T00:00Q",
            "2026-11-27X00:00Z",
            "2026-11-27T00-00Z",
            "2026-11-27T00:00-00Z",
            "2026+11-27T00:00Z",
            "+026-11-27T00:00Z",
            "2026-11-27T00:0aZ",
            "2026-11-27T0:000:00Z",
            // Bytes just outside the digits, in each field, some of which would make a valid
            // field if read as a digit (':' as ten).
            "20;6-11-27T00:00Z",
            "20:6-11-27T00:00Z",
            "2026-11-27T00:0:Z",
            "2026-1:-27T00:00Z",
            "2026-11-?7T00:00Z",
            "2026-11-27T0/:00Z",
            "2026-11-27T00:0?Z",
            "2026-11-27T00:00:5:Z",
            "2026-11-27T00:00:/0Z",
            "2026-11-27T00:00\u{e9}Z",
        ] {
            let want = parse(text).map(|t| t.timestamp_micros());
            assert_eq!(parse_micros(text), want, "{text}");
        }
    }

    #[test]
    fn rejects_malformed_times() {
        for s in [
            "",
            "2026-13-01",
            "2026-02-30",
            "2026-1-01",
            "2026-01-01T10:00",
            "2026-01-01 10:00Z",
            "2026-01-01T25:00Z",
            "2026-01-01T10:00:61Z",
            "2026-01-01T10:00+8",
            "2026-01-01T10:00:00.Z",
            "2026-01-01T10:00:00.1234567891x",
            "2026-01-01T10:00Zjunk",
            "yesterday",
            "2026-01-01T10:00+24:00",
            "9999-12-31T23:59:59-23:59",
        ] {
            assert!(parse(s).is_err(), "{s} should not parse");
        }
    }

    #[test]
    fn month_arithmetic_clamps_to_month_end() {
        let cases = [
            ("2026-11-30", 3, "2027-02-28T00:00:00Z"),
            ("2027-11-30", 3, "2028-02-29T00:00:00Z"),
            ("2026-08-31", 1, "2026-09-30T00:00:00Z"),
            ("2026-01-31", 1, "2026-02-28T00:00:00Z"),
            ("2028-01-31", 1, "2028-02-29T00:00:00Z"),
            ("2026-11-28T13:45:10Z", 3, "2027-02-28T13:45:10Z"),
            ("2026-12-15", 3, "2027-03-15T00:00:00Z"),
            ("2027-05-31", -3, "2027-02-28T00:00:00Z"),
            ("2026-03-31", 0, "2026-03-31T00:00:00Z"),
            ("2024-02-29", 12, "2025-02-28T00:00:00Z"),
        ];
        for (start, months, want) in cases {
            assert_eq!(
                format(add_months(t(start), months).unwrap()),
                want,
                "{start} + {months}"
            );
        }
    }

    #[test]
    fn offsets_are_applied_before_month_arithmetic() {
        // 2026-12-01T02:00+08:00 is Nov 30 18:00 UTC: + 3 months clamps to Feb 28.
        let got = add_months(t("2026-12-01T02:00+08:00"), 3).unwrap();
        assert_eq!(format(got), "2027-02-28T18:00:00Z");
    }

    #[test]
    fn whole_seconds_drops_the_fraction_only() {
        let t = |s| parse(s).unwrap();
        assert_eq!(
            whole_seconds(t("2026-11-30T08:00:00.75+08:00")),
            t("2026-11-30T00:00:00Z")
        );
        assert_eq!(
            whole_seconds(t("2026-11-30T00:00:59Z")),
            t("2026-11-30T00:00:59Z")
        );
        assert_eq!(
            whole_seconds(t("1969-12-31T23:59:59.5Z")),
            t("1969-12-31T23:59:59Z"),
            "before 1970 too"
        );
    }

    #[test]
    fn three_month_boundary_is_inclusive_to_the_second() {
        let as_of = t("2026-11-30T00:00:00Z");
        let edge = add_months(as_of, 3).unwrap();
        assert_eq!(edge, t("2027-02-28T00:00Z"));
        assert!(t("2027-02-28T00:00:00Z") >= edge);
        assert!(t("2027-02-27T23:59:59Z") < edge);
    }
}
