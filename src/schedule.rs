//! Schedule specs (`jobq_schedule`): a 5-field cron spec or `@every
//! <duration>`, parsed here, and the function that says when a schedule's
//! next slot is. Pure code: no clock, no store; times are Unix milliseconds
//! and cron fields are read in UTC (so there is no daylight-saving gap or
//! repeat to think about).
//!
//! Cron fields: minute (0-59), hour (0-23), day of month (1-31), month
//! (1-12 or JAN-DEC), day of week (0-7 or SUN-SAT; 0 and 7 are Sunday).
//! Each is a comma list of `*`, `N`, `A-B`, `*/S`, `A-B/S` or `A/S` (A to
//! the field's maximum, step S). As in standard cron, when both the day of
//! month and the day of week are restricted (neither field starts with
//! `*`), a day matches when EITHER matches; otherwise both must.
//! Shorthands: `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
//! (`@midnight`), `@hourly`.
//!
//! `@every D`: D is one or more `<integer><unit>` with unit `ms`, `s`, `m`,
//! `h` or `d` (`500ms`, `30s`, `1h30m`); at least `MIN_EVERY_MS`. Slots lie
//! on a grid anchored where the schedule was made: made at T, the slots are
//! T + D, T + 2D, ...

use crate::error::{Error, Result};
use crate::limits::MAX_DELAY_MS;

/// The shortest `@every` interval accepted, in ms.
pub const MIN_EVERY_MS: u64 = 100;
/// The longest schedule spec accepted, in bytes.
pub const MAX_SPEC_LEN: usize = 256;

const MINUTE_MS: i64 = 60_000;
const DAY_MINUTES: i64 = 24 * 60;
/// How far ahead a cron spec's next slot is looked for: 9 years covers
/// every leap day (2096 -> 2104 skips 2100) and every weekday of every date.
const HORIZON_MINUTES: i64 = 9 * 366 * DAY_MINUTES;

/// A parsed spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Spec {
    /// A slot every this many ms.
    Every(u64),
    Cron(Cron),
}

/// A cron spec as bit sets of the allowed values of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cron {
    minutes: u64,
    hours: u32,
    /// Bits 1-31.
    days: u32,
    /// Bits 1-12.
    months: u16,
    /// Bits 0-6, Sunday 0.
    weekdays: u8,
    /// The day-of-month field starts with `*` (unrestricted for the OR rule).
    days_star: bool,
    /// The day-of-week field starts with `*`.
    weekdays_star: bool,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field { name: "minute", min: 0, max: 59, names: &[] };
const HOUR: Field = Field { name: "hour", min: 0, max: 23, names: &[] };
const DAY: Field = Field { name: "day-of-month", min: 1, max: 31, names: &[] };
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
};
const WEEKDAY: Field =
    Field { name: "day-of-week", min: 0, max: 7, names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"] };

fn bad(spec: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid(format!("schedule spec {spec:?}: {why}"))
}

impl Spec {
    /// Parses `spec`; a bad one is `InvalidArg` naming the field at fault.
    pub(crate) fn parse(spec: &str) -> Result<Spec> {
        if spec.len() > MAX_SPEC_LEN {
            return Err(Error::invalid(format!("schedule spec longer than {MAX_SPEC_LEN} bytes")));
        }
        let text = spec.trim();
        if text.is_empty() {
            return Err(bad(spec, "empty (want 5 cron fields or @every <duration>)"));
        }
        if let Some(rest) = text.strip_prefix('@') {
            let (word, arg) = match rest.split_once(char::is_whitespace) {
                Some((w, a)) => (w, a.trim()),
                None => (rest, ""),
            };
            let word = word.to_ascii_lowercase();
            let cron = match word.as_str() {
                "every" => return parse_every(spec, arg).map(Spec::Every),
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                _ => {
                    return Err(bad(
                        spec,
                        format!(
                        "unknown @{word} (@every, @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)"
                    ),
                    ))
                }
            };
            if !arg.is_empty() {
                return Err(bad(spec, format!("@{word} takes nothing after it")));
            }
            return parse_cron(spec, cron).map(Spec::Cron);
        }
        parse_cron(spec, text).map(Spec::Cron)
    }

    /// The first slot of a schedule made (or replaced) at `now`; `None`
    /// if a cron spec matches no minute within the next 9 years.
    pub(crate) fn first_slot(&self, now: i64) -> Option<i64> {
        match self {
            Spec::Every(ms) => now.checked_add(*ms as i64),
            Spec::Cron(c) => c.next_after(now),
        }
    }

    /// The slot after firing slot `fired` at `now` (`fired <= now`): the
    /// first slot later than `now`, so that slots missed while no process
    /// ran are not made up one by one. `@every` keeps its grid (`fired` +
    /// k intervals); cron takes its next matching minute.
    pub(crate) fn next_slot(&self, fired: i64, now: i64) -> Option<i64> {
        match self {
            Spec::Every(ms) => {
                let ms = (*ms).max(1) as i64;
                if fired > now {
                    return Some(fired);
                }
                let steps = (now - fired) / ms + 1;
                fired.checked_add(steps.checked_mul(ms)?)
            }
            Spec::Cron(c) => c.next_after(now),
        }
    }
}

/// `@every`'s duration: `<integer><unit>` repeated.
fn parse_every(spec: &str, arg: &str) -> Result<u64> {
    if arg.is_empty() {
        return Err(bad(spec, "@every needs a duration, such as 30s, 500ms, 5m, 1h30m"));
    }
    let mut total: u64 = 0;
    let mut rest = arg;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad(spec, format!("@every duration {arg:?}: expected a number at {rest:?}")));
        }
        let n: u64 =
            rest[..digits].parse().map_err(|_| bad(spec, format!("@every duration {arg:?}: number too large")))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let scale: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(bad(spec, format!("@every duration {arg:?}: {n} needs a unit (ms, s, m, h, d)"))),
            other => {
                return Err(bad(spec, format!("@every duration {arg:?}: unknown unit {other:?} (ms, s, m, h, d)")))
            }
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| bad(spec, format!("@every duration {arg:?} is too long")))?;
    }
    if total < MIN_EVERY_MS {
        return Err(bad(spec, format!("@every duration {arg:?} is shorter than the minimum {MIN_EVERY_MS}ms")));
    }
    if total > MAX_DELAY_MS {
        return Err(bad(spec, format!("@every duration {arg:?} is longer than the maximum {MAX_DELAY_MS}ms")));
    }
    Ok(total)
}

fn parse_cron(spec: &str, text: &str) -> Result<Cron> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(bad(
            spec,
            format!(
                "{} fields; a cron spec has 5 (minute hour day-of-month month day-of-week), or use @every <duration>",
                fields.len()
            ),
        ));
    }
    let minutes = parse_field(spec, fields[0], &MINUTE)?;
    let hours = parse_field(spec, fields[1], &HOUR)?;
    let days = parse_field(spec, fields[2], &DAY)?;
    let months = parse_field(spec, fields[3], &MONTH)?;
    let mut weekdays = parse_field(spec, fields[4], &WEEKDAY)?;
    // 7 is Sunday too.
    if weekdays & (1 << 7) != 0 {
        weekdays = (weekdays | 1) & !(1 << 7);
    }
    Ok(Cron {
        minutes,
        hours: hours as u32,
        days: days as u32,
        months: months as u16,
        weekdays: weekdays as u8,
        days_star: fields[2].starts_with('*'),
        weekdays_star: fields[4].starts_with('*'),
    })
}

/// One field as a bit set (bit v = value v allowed).
fn parse_field(spec: &str, text: &str, f: &Field) -> Result<u64> {
    let fail = |why: String| bad(spec, format!("{} field {text:?}: {why}", f.name));
    let mut set = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(fail("empty list item".into()));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| fail(format!("step {s:?} is not a number")))?;
                if step == 0 {
                    return Err(fail("step 0".into()));
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (f.min, if f.max == 7 { 6 } else { f.max })
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a, f).map_err(&fail)?, value(b, f).map_err(&fail)?);
            if a > b {
                return Err(fail(format!("range {range:?} runs backwards")));
            }
            (a, b)
        } else {
            let a = value(range, f).map_err(&fail)?;
            // `A/S`: from A to the field's maximum.
            (a, if step.is_some() { f.max } else { a })
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

/// One value of field `f`: a number in its range or (month, weekday) a name.
fn value(text: &str, f: &Field) -> std::result::Result<u32, String> {
    if let Some(i) = f.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(i as u32 + if f.name == "month" { 1 } else { 0 });
    }
    let v: u32 = text.parse().map_err(|_| {
        if f.names.is_empty() {
            format!("{text:?} is not a number")
        } else {
            format!("{text:?} is not a number or a name ({}-{})", f.names[0], f.names[f.names.len() - 1])
        }
    })?;
    if v < f.min || v > f.max {
        return Err(format!("{v} is out of range {}-{}", f.min, f.max));
    }
    Ok(v)
}

impl Cron {
    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let dom = self.days & (1 << day) != 0;
        let dow = self.weekdays & (1 << weekday) != 0;
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first matching minute strictly after `t` (ms), in ms; `None`
    /// if none within `HORIZON_MINUTES`.
    pub(crate) fn next_after(&self, t: i64) -> Option<i64> {
        let start = t.div_euclid(MINUTE_MS).checked_add(1)?;
        let end = start.checked_add(HORIZON_MINUTES)?;
        let mut m = start;
        while m < end {
            let days = m.div_euclid(DAY_MINUTES);
            let in_day = m.rem_euclid(DAY_MINUTES);
            let (hour, minute) = ((in_day / 60) as u32, (in_day % 60) as u32);
            let (year, month, day) = civil_from_days(days);
            if self.months & (1 << month) == 0 {
                let (y, mo) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                m = days_from_civil(y, mo, 1) * DAY_MINUTES;
                continue;
            }
            let weekday = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
            if !self.day_matches(day, weekday) {
                m = (days + 1) * DAY_MINUTES;
                continue;
            }
            if self.hours & (1 << hour) == 0 {
                m = days * DAY_MINUTES + (i64::from(hour) + 1) * 60;
                continue;
            }
            if self.minutes & (1 << minute) == 0 {
                // The next allowed minute of this hour, else the next hour.
                let later = self.minutes & !((1u64 << (minute + 1)) - 1) & ((1u64 << 60) - 1);
                m = if later != 0 {
                    m - i64::from(minute) + i64::from(later.trailing_zeros())
                } else {
                    m - i64::from(minute) + 60
                };
                continue;
            }
            return m.checked_mul(MINUTE_MS);
        }
        None
    }
}

/// (year, month 1-12, day 1-31) of a day count from 1970-01-01 (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The day count from 1970-01-01 of (year, month 1-12, day 1-31).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Unix ms of a UTC date and time.
    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
        (days_from_civil(y, mo, d) * DAY_MINUTES + h * 60 + mi) * MINUTE_MS
    }

    fn next(spec: &str, t: i64) -> Option<i64> {
        Spec::parse(spec).unwrap().first_slot(t)
    }

    fn err(spec: &str) -> String {
        match Spec::parse(spec) {
            Err(Error::InvalidArg(m)) => m,
            other => panic!("{spec:?} parsed: {other:?}"),
        }
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn every_minute_and_fixed_times() {
        let t = at(2024, 5, 17, 10, 30) + 15_000;
        assert_eq!(next("* * * * *", t), Some(at(2024, 5, 17, 10, 31)));
        // Exactly on a matching minute: the next one, not this one.
        assert_eq!(next("* * * * *", at(2024, 5, 17, 10, 31)), Some(at(2024, 5, 17, 10, 32)));
        assert_eq!(next("45 10 * * *", t), Some(at(2024, 5, 17, 10, 45)));
        assert_eq!(next("15 10 * * *", t), Some(at(2024, 5, 18, 10, 15)));
        assert_eq!(next("0 0 * * *", t), Some(at(2024, 5, 18, 0, 0)));
        assert_eq!(next("@daily", t), Some(at(2024, 5, 18, 0, 0)));
        assert_eq!(next("@midnight", t), Some(at(2024, 5, 18, 0, 0)));
        assert_eq!(next("@hourly", t), Some(at(2024, 5, 17, 11, 0)));
        assert_eq!(next("@monthly", t), Some(at(2024, 6, 1, 0, 0)));
        assert_eq!(next("@yearly", t), Some(at(2025, 1, 1, 0, 0)));
        assert_eq!(next("@annually", t), Some(at(2025, 1, 1, 0, 0)));
        // 2024-05-17 is a Friday: the next Sunday is the 19th.
        assert_eq!(next("@weekly", t), Some(at(2024, 5, 19, 0, 0)));
    }

    #[test]
    fn lists_ranges_and_steps() {
        let t = at(2024, 5, 17, 10, 31);
        assert_eq!(next("*/15 * * * *", t), Some(at(2024, 5, 17, 10, 45)));
        assert_eq!(next("5,20,40 * * * *", t), Some(at(2024, 5, 17, 10, 40)));
        assert_eq!(next("10-20/5 * * * *", t), Some(at(2024, 5, 17, 11, 10)));
        assert_eq!(next("50/3 * * * *", t), Some(at(2024, 5, 17, 10, 50)));
        assert_eq!(next("0 9-17/4 * * *", t), Some(at(2024, 5, 17, 13, 0)));
        assert_eq!(next("0 0 1,15 * *", t), Some(at(2024, 6, 1, 0, 0)));
        assert_eq!(next("0 0 * JAN,jul *", t), Some(at(2024, 7, 1, 0, 0)));
        assert_eq!(next("0 0 * 2-3 *", t), Some(at(2025, 2, 1, 0, 0)));
        assert_eq!(next("59 23 31 12 *", t), Some(at(2024, 12, 31, 23, 59)));
    }

    #[test]
    fn month_ends_and_leap_years() {
        // The 31st: skips months without one.
        assert_eq!(next("0 0 31 * *", at(2024, 4, 1, 0, 0)), Some(at(2024, 5, 31, 0, 0)));
        assert_eq!(next("0 0 31 * *", at(2024, 5, 31, 0, 0)), Some(at(2024, 7, 31, 0, 0)));
        // Feb 29: only in leap years; 2100 is not one.
        assert_eq!(next("0 0 29 2 *", at(2024, 3, 1, 0, 0)), Some(at(2028, 2, 29, 0, 0)));
        assert_eq!(next("0 0 29 2 *", at(2097, 1, 1, 0, 0)), Some(at(2104, 2, 29, 0, 0)));
        assert_eq!(next("0 0 29 2 *", at(2000, 1, 1, 0, 0)), Some(at(2000, 2, 29, 0, 0)));
        // Year end.
        assert_eq!(next("0 0 * * *", at(2023, 12, 31, 12, 0)), Some(at(2024, 1, 1, 0, 0)));
        // Dates that never come.
        assert_eq!(next("0 0 30 2 *", at(2024, 1, 1, 0, 0)), None);
        assert_eq!(next("0 0 31 4,6,9,11 *", at(2024, 1, 1, 0, 0)), None);
    }

    #[test]
    fn day_of_week_and_the_or_rule() {
        let fri = at(2024, 5, 17, 12, 0); // a Friday
        assert_eq!(next("0 0 * * MON", fri), Some(at(2024, 5, 20, 0, 0)));
        assert_eq!(next("0 0 * * 1", fri), Some(at(2024, 5, 20, 0, 0)));
        // 0 and 7 are both Sunday.
        assert_eq!(next("0 0 * * 0", fri), Some(at(2024, 5, 19, 0, 0)));
        assert_eq!(next("0 0 * * 7", fri), Some(at(2024, 5, 19, 0, 0)));
        assert_eq!(next("0 0 * * sun", fri), Some(at(2024, 5, 19, 0, 0)));
        assert_eq!(next("0 0 * * 6-7", fri), Some(at(2024, 5, 18, 0, 0)));
        assert_eq!(next("0 0 * * MON-FRI", fri), Some(at(2024, 5, 20, 0, 0)));
        // Both restricted: the 1st of the month OR a Monday.
        assert_eq!(next("0 0 1 * 1", fri), Some(at(2024, 5, 20, 0, 0)));
        assert_eq!(next("0 0 1 * 1", at(2024, 5, 27, 12, 0)), Some(at(2024, 6, 1, 0, 0)));
        // Only one restricted (the other starts with *): both must hold.
        assert_eq!(next("0 0 13 * */1", fri), Some(at(2024, 6, 13, 0, 0)));
        assert_eq!(next("0 0 13 * FRI", fri), Some(at(2024, 5, 24, 0, 0))); // OR: the next Friday comes first
        assert_eq!(next("0 0 */1 * 5", fri), Some(at(2024, 5, 24, 0, 0)));
        // Feb 30 OR Monday fires on February's Mondays (the month still holds).
        assert_eq!(next("0 0 30 2 MON", fri), Some(at(2025, 2, 3, 0, 0)));
    }

    #[test]
    fn every_grid_and_catch_up() {
        assert_eq!(Spec::parse("@every 30s").unwrap(), Spec::Every(30_000));
        assert_eq!(Spec::parse("@every 500ms").unwrap(), Spec::Every(500));
        assert_eq!(Spec::parse("@every 1h30m").unwrap(), Spec::Every(5_400_000));
        assert_eq!(Spec::parse("@EVERY  2d").unwrap(), Spec::Every(172_800_000));
        assert_eq!(Spec::parse("@every 1m1s1ms").unwrap(), Spec::Every(61_001));
        let s = Spec::Every(100);
        assert_eq!(s.first_slot(1000), Some(1100));
        // On time: the next grid point.
        assert_eq!(s.next_slot(1100, 1100), Some(1200));
        assert_eq!(s.next_slot(1100, 1150), Some(1200));
        // Long downtime: one fire, then the first grid point after now.
        assert_eq!(s.next_slot(1100, 5_432), Some(5_500));
        assert_eq!(s.next_slot(1100, 5_500), Some(5_600));
    }

    #[test]
    fn bad_specs_name_the_field() {
        assert!(err("").contains("empty"));
        assert!(err("* * * *").contains("4 fields"));
        assert!(err("* * * * * *").contains("6 fields"));
        assert!(err("60 * * * *").contains("minute field \"60\": 60 is out of range 0-59"));
        assert!(err("* 24 * * *").contains("hour field"));
        assert!(err("* * 0 * *").contains("day-of-month field"));
        assert!(err("* * 32 * *").contains("day-of-month field"));
        assert!(err("* * * 13 *").contains("month field"));
        assert!(err("* * * FOO *").contains("month field \"FOO\""));
        assert!(err("* * * * 8").contains("day-of-week field"));
        assert!(err("* * * * XYZ").contains("day-of-week field"));
        assert!(err("*/0 * * * *").contains("minute field \"*/0\": step 0"));
        assert!(err("5-1 * * * *").contains("runs backwards"));
        assert!(err("1,,2 * * * *").contains("empty list item"));
        assert!(err("*/x * * * *").contains("step"));
        assert!(err("a * * * *").contains("minute field"));
        assert!(err("@often").contains("unknown @often"));
        assert!(err("@daily 5").contains("@daily takes nothing"));
        assert!(err("@every").contains("needs a duration"));
        assert!(err("@every 10").contains("needs a unit"));
        assert!(err("@every 10x").contains("unknown unit"));
        assert!(err("@every 5s3").contains("needs a unit"));
        assert!(err("@every ms").contains("expected a number"));
        assert!(err("@every 99ms").contains("shorter than the minimum"));
        assert!(err("@every 0s").contains("shorter than the minimum"));
        assert!(err("@every 99999999999999999999s").contains("too"));
        assert!(err("@every 5000d").contains("longer than the maximum"));
        assert!(err(&"* ".repeat(200)).contains("longer than"));
    }

    /// The slow, obvious definition: scan minute by minute.
    fn brute_next(c: &Cron, t: i64, limit_minutes: i64) -> Option<i64> {
        let start = t.div_euclid(MINUTE_MS) + 1;
        (start..start + limit_minutes).find_map(|m| {
            let days = m.div_euclid(DAY_MINUTES);
            let in_day = m.rem_euclid(DAY_MINUTES);
            let (_, month, day) = civil_from_days(days);
            let weekday = (days + 4).rem_euclid(7) as u32;
            let ok = c.months & (1 << month) != 0
                && c.day_matches(day, weekday)
                && c.hours & (1 << (in_day / 60)) != 0
                && c.minutes & (1 << (in_day % 60)) != 0;
            ok.then_some(m * MINUTE_MS)
        })
    }

    fn field(max_items: usize, lo: u32, hi: u32) -> impl Strategy<Value = String> {
        let item = prop_oneof![
            Just("*".to_string()),
            (lo..=hi).prop_map(|v| v.to_string()),
            (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (1u32..=10).prop_map(|s| format!("*/{s}")),
            (lo..=hi, lo..=hi, 1u32..=5).prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
        ];
        proptest::collection::vec(item, 1..=max_items).prop_map(|v| v.join(","))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The fast search agrees with the minute-by-minute scan (within 40 days).
        #[test]
        fn next_after_matches_brute_force(
            m in field(2, 0, 59), h in field(2, 0, 23), d in field(2, 1, 31),
            mo in prop_oneof![Just("*".to_string()), field(3, 1, 12)],
            w in field(2, 0, 7),
            t in 0i64..4_102_444_800_000,
        ) {
            let spec = format!("{m} {h} {d} {mo} {w}");
            let Spec::Cron(c) = Spec::parse(&spec).unwrap() else { panic!("not cron") };
            let limit = 40 * DAY_MINUTES;
            let brute = brute_next(&c, t, limit);
            let fast = c.next_after(t);
            match brute {
                Some(b) => prop_assert_eq!(fast, Some(b), "{}", spec),
                None => prop_assert!(fast.is_none_or(|f| f >= t + limit * MINUTE_MS), "{}", spec),
            }
        }

        /// @every: the next slot is on the grid, after now, at most one interval later.
        #[test]
        fn every_next_slot_is_on_the_grid(ms in 100u64..100_000, fired in 0i64..1_000_000_000, late in 0i64..10_000_000) {
            let now = fired + late;
            let next = Spec::Every(ms).next_slot(fired, now).unwrap();
            prop_assert!(next > now && next <= now + ms as i64);
            prop_assert_eq!((next - fired) % ms as i64, 0);
        }

        /// Garbage never panics.
        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = Spec::parse(&s);
        }
    }
}
