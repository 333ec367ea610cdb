//! A channel's business hours, in its own time zone: `Europe/Madrid mon-fri 09:00-18:00`. Outside
//! them a queued customer is told nobody is available (as when no agent is online).

use chrono::{DateTime, Datelike, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// When a channel's team works. Kept as the text an admin wrote; parsed when set, so it is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BusinessHours(String);

struct Parsed {
    zone: chrono_tz::Tz,
    days: Vec<Weekday>,
    open: NaiveTime,
    close: NaiveTime,
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

fn day(name: &str) -> Option<usize> {
    DAYS.iter().position(|(n, _)| *n == name)
}

fn parse(text: &str) -> Result<Parsed, String> {
    let usage =
        "business hours are `ZONE DAYS HH:MM-HH:MM`, e.g. `Europe/Madrid mon-fri 09:00-18:00`";
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [zone, days, times] = parts.as_slice() else {
        return Err(format!("{usage}, not {text:?}"));
    };
    let zone: chrono_tz::Tz = zone
        .parse()
        .map_err(|_| format!("{zone:?} is not a time zone (an IANA name such as Europe/Madrid)"))?;
    let mut list = Vec::new();
    for span in days.to_lowercase().split(',') {
        let (from, to) = span.split_once('-').unwrap_or((span, span));
        let (Some(from), Some(to)) = (day(from), day(to)) else {
            return Err(format!(
                "{span:?} is not a day or a span of days (mon-fri, sat, …)"
            ));
        };
        let mut i = from;
        loop {
            list.push(DAYS[i].1);
            if i == to {
                break;
            }
            i = (i + 1) % 7;
        }
    }
    let (open, close) = times
        .split_once('-')
        .ok_or_else(|| format!("{usage}, not {text:?}"))?;
    let time = |t: &str| {
        NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| format!("{t:?} is not a time (HH:MM)"))
    };
    let (open, close) = (time(open)?, time(close)?);
    if open >= close {
        return Err(format!("the day must open before it closes: {times}"));
    }
    Ok(Parsed {
        zone,
        days: list,
        open,
        close,
    })
}

impl BusinessHours {
    /// Checks `text`; the error says what is wrong.
    pub fn new(text: &str) -> Result<Self, String> {
        parse(text.trim())?;
        Ok(Self(text.trim().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `at` falls within the hours (a setting that no longer parses counts as open).
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let Ok(p) = parse(&self.0) else {
            return true;
        };
        let local = at.with_timezone(&p.zone);
        p.days.contains(&local.weekday()) && local.time() >= p.open && local.time() < p.close
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn hours_are_open_on_the_listed_days_between_the_times_in_the_channels_zone() {
        let madrid = BusinessHours::new("Europe/Madrid mon-fri 09:00-18:00").expect("valid");
        // Monday 2026-11-30: 08:30 UTC is 09:30 in Madrid (winter, UTC+1).
        assert!(madrid.is_open(at("2026-11-30T08:30:00Z")));
        assert!(
            !madrid.is_open(at("2026-11-30T07:30:00Z")),
            "08:30 in Madrid"
        );
        assert!(
            !madrid.is_open(at("2026-11-30T17:00:00Z")),
            "18:00 in Madrid: closed"
        );
        assert!(!madrid.is_open(at("2026-11-29T12:00:00Z")), "a Sunday");
        // Summer time: 07:30 UTC is 09:30 in Madrid.
        assert!(madrid.is_open(at("2026-07-01T07:30:00Z")));
        let weekend = BusinessHours::new("UTC sat-sun,wed 10:00-12:00").expect("valid");
        assert!(weekend.is_open(at("2026-11-29T11:00:00Z")));
        assert!(weekend.is_open(at("2026-12-02T11:00:00Z")), "a Wednesday");
        assert!(!weekend.is_open(at("2026-11-30T11:00:00Z")), "a Monday");
    }

    #[test]
    fn bad_hours_are_refused_with_what_is_wrong() {
        for (text, says) in [
            ("Mars/Olympus mon-fri 09:00-18:00", "not a time zone"),
            ("UTC someday 09:00-18:00", "not a day"),
            ("UTC mon-fri 9am-6pm", "not a time"),
            ("UTC mon-fri 18:00-09:00", "open before it closes"),
            ("mon-fri 09:00-18:00", "ZONE DAYS"),
        ] {
            let err = BusinessHours::new(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
