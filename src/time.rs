//! Time values: parsing the one format every input uses, calendar-month arithmetic, and the one
//! output format. Every time is UTC once parsed; nothing here knows about files or rules.

use chrono::{DateTime, Months, NaiveDate, NaiveTime, TimeDelta, Utc};

/// An instant in UTC.
pub type Time = DateTime<Utc>;

/// Parses `YYYY-MM-DD`, optionally followed by `THH:MM`, optional `:SS` and fraction, and then
/// `Z` or an offset `±HH:MM`. A bare date is midnight UTC.
pub fn parse(text: &str) -> Result<Time, String> {
    let b = text.as_bytes();
    let bad = || format!("`{text}` is not a time (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]Z)");
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
            if len == 0 || len > 9 {
                return Err(bad());
            }
            nanos = digits(&rest[start..start + len]).ok_or_else(bad)? * 10u32.pow(9 - len as u32);
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
    let t = chrono::Utc::now();
    t - TimeDelta::nanoseconds(i64::from(t.timestamp_subsec_nanos()))
}

/// The one output form: RFC 3339, UTC, whole seconds (`2026-11-30T00:00:00Z`).
pub fn format(t: Time) -> String {
    let mut s = String::with_capacity(20);
    write(t, &mut s);
    s
}

/// Appends `t` in the output form.
pub fn write(t: Time, out: &mut String) {
    use chrono::{Datelike, Timelike};
    // Digits pushed directly: this runs for most lines of `denials.csv`, where the formatting
    // machinery of `write!` showed in profiles. Years are 0000 to 9999 (see `parse`).
    let t = t.naive_utc();
    let year = t.year().clamp(0, 9999) as u32;
    let digits = |out: &mut String, n: u32, width: u32| {
        for place in (0..width).rev() {
            out.push(char::from(b'0' + (n / 10u32.pow(place) % 10) as u8));
        }
    };
    digits(out, year, 4);
    for (separator, n) in [
        ('-', t.month()),
        ('-', t.day()),
        ('T', t.hour()),
        (':', t.minute()),
        (':', t.second()),
    ] {
        out.push(separator);
        digits(out, n, 2);
    }
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
            assert_eq!(
                format(time),
                time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "{text}"
            );
        }
        assert_eq!(format(t("2026-03-01T08:30+08:00")), "2026-03-01T00:30:00Z");
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
    fn three_month_boundary_is_inclusive_to_the_second() {
        let as_of = t("2026-11-30T00:00:00Z");
        let edge = add_months(as_of, 3).unwrap();
        assert_eq!(edge, t("2027-02-28T00:00Z"));
        assert!(t("2027-02-28T00:00:00Z") >= edge);
        assert!(t("2027-02-27T23:59:59Z") < edge);
    }
}
