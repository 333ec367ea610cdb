//! How the team did: handoffs per day (or per channel, agent or label) over a period, with the
//! median and 90th percentile of the time to the first agent reply and of the time to resolution.
//! `baton-hub report` and the admin API's `GET /api/v1/admin/report` print the same rows.

use std::collections::BTreeMap;

use baton_protocol::{Handoff, HandoffStatus};
use chrono::{DateTime, Utc};

use crate::store::{Read, StoreError};

/// What one row of a report stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The day the handoff came in (UTC).
    Day,
    Channel,
    /// Whoever held it last (`unassigned` if nobody took it).
    Agent,
    /// How it was resolved (`none` without a label).
    Label,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "day" => Some(Self::Day),
            "channel" => Some(Self::Channel),
            "agent" => Some(Self::Agent),
            "label" => Some(Self::Label),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Channel => "channel",
            Self::Agent => "agent",
            Self::Label => "label",
        }
    }
}

/// One group's figures. Times are in seconds; `None` where no handoff had one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub key: String,
    pub handoffs: usize,
    pub resolved: usize,
    pub cancelled: usize,
    pub first_response_median_secs: Option<f64>,
    pub first_response_p90_secs: Option<f64>,
    pub resolution_median_secs: Option<f64>,
    pub resolution_p90_secs: Option<f64>,
}

/// The `p`th percentile (0–100) of `values`, by the nearest rank.
fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

#[derive(Default)]
struct Group {
    handoffs: usize,
    resolved: usize,
    cancelled: usize,
    first_response: Vec<f64>,
    resolution: Vec<f64>,
}

/// The report over handoffs that came in from `since` until `until`, one row per group, in key
/// order. `names` turns channel and agent ids into the names people know.
pub fn report(
    read: &dyn Read,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    by: GroupBy,
) -> Result<Vec<Row>, StoreError> {
    let agents: BTreeMap<String, String> =
        read.agents()?.into_iter().map(|a| (a.id, a.name)).collect();
    let channels: BTreeMap<String, String> = read
        .channels()?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let handoffs: Vec<Handoff> = read
        .handoffs_since(since)?
        .into_iter()
        .filter(|h| h.created_at >= since && h.created_at < until && !h.for_draft)
        .collect();
    for h in handoffs {
        let key = match by {
            GroupBy::Day => h.created_at.format("%Y-%m-%d").to_string(),
            GroupBy::Channel => channels
                .get(&h.channel_id)
                .cloned()
                .unwrap_or_else(|| h.channel_id.clone()),
            GroupBy::Agent => h
                .assignee
                .as_ref()
                .map(|id| agents.get(id).cloned().unwrap_or_else(|| id.clone()))
                .unwrap_or_else(|| "unassigned".into()),
            GroupBy::Label => h.label.clone().unwrap_or_else(|| "none".into()),
        };
        let group = groups.entry(key).or_default();
        group.handoffs += 1;
        let ended = matches!(h.status, HandoffStatus::Resolved | HandoffStatus::Cancelled)
            .then_some(h.updated_at);
        match h.status {
            HandoffStatus::Resolved => {
                group.resolved += 1;
                group
                    .resolution
                    .push((h.updated_at - h.created_at).as_seconds_f64());
            }
            HandoffStatus::Cancelled => group.cancelled += 1,
            _ => {}
        }
        // The first reply an agent wrote while this handoff was open.
        let first = read
            .agent_reply_times(&h.conversation_id)?
            .into_iter()
            .filter(|t| *t >= h.created_at && ended.is_none_or(|end| *t <= end))
            .min();
        if let Some(first) = first {
            group
                .first_response
                .push((first - h.created_at).as_seconds_f64());
        }
    }
    Ok(groups
        .into_iter()
        .map(|(key, mut g)| Row {
            key,
            handoffs: g.handoffs,
            resolved: g.resolved,
            cancelled: g.cancelled,
            first_response_median_secs: percentile(&mut g.first_response, 50.0),
            first_response_p90_secs: percentile(&mut g.first_response, 90.0),
            resolution_median_secs: percentile(&mut g.resolution, 50.0),
            resolution_p90_secs: percentile(&mut g.resolution, 90.0),
        })
        .collect())
}

/// The rows as CSV, with a header naming the grouping (`day`, `channel`, …).
pub fn csv(rows: &[Row], by: GroupBy) -> Result<String, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        by.as_str(),
        "handoffs",
        "resolved",
        "cancelled",
        "first_response_median_secs",
        "first_response_p90_secs",
        "resolution_median_secs",
        "resolution_p90_secs",
    ])?;
    let secs = |v: Option<f64>| v.map_or(String::new(), |s| format!("{s:.0}"));
    for r in rows {
        out.write_record([
            r.key.clone(),
            r.handoffs.to_string(),
            r.resolved.to_string(),
            r.cancelled.to_string(),
            secs(r.first_response_median_secs),
            secs(r.first_response_p90_secs),
            secs(r.resolution_median_secs),
            secs(r.resolution_p90_secs),
        ])?;
    }
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The longest period a report covers (each handoff in it is read).
pub const MAX_DAYS: i64 = 400;

/// A report as the CLI and the admin API ask for it: `since` and `until` as [`when`] reads them,
/// `by` a [`GroupBy`] name (`day` when absent). The error says what to fix.
pub fn asked(
    read: &dyn Read,
    now: DateTime<Utc>,
    since: &str,
    until: Option<&str>,
    by: Option<&str>,
) -> Result<(Vec<Row>, GroupBy), Asked> {
    let since = when(since, now).map_err(Asked::Invalid)?;
    let until = until
        .map_or(Ok(now), |u| when(u, now))
        .map_err(Asked::Invalid)?;
    if until - since > chrono::TimeDelta::days(MAX_DAYS) {
        return Err(Asked::Invalid(format!(
            "a report covers at most {MAX_DAYS} days; ask for several"
        )));
    }
    let by_text = by.unwrap_or("day");
    let by = GroupBy::parse(by_text).ok_or_else(|| {
        Asked::Invalid(format!(
            "by is day, channel, agent or label, not {by_text:?}"
        ))
    })?;
    Ok((report(read, since, until, by)?, by))
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Asked {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A moment as people write it: a date (`2026-11-01`, midnight UTC), an RFC 3339 time, or days
/// before `now` (`7d`).
pub fn when(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Some(days) = text.strip_suffix('d').and_then(|d| d.parse::<i64>().ok()) {
        return chrono::TimeDelta::try_days(days)
            .and_then(|d| now.checked_sub_signed(d))
            .ok_or_else(|| format!("{text:?} is too far back"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!("{text:?} is not a date (2026-11-01), a time (RFC 3339) or days ago (7d)")
        })
}

/// The rows as a plain-text table, durations as minutes and seconds.
pub fn table(rows: &[Row], by: GroupBy) -> String {
    let dur = |v: Option<f64>| {
        v.map_or("-".to_string(), |s| {
            let s = s.round() as i64;
            if s >= 3600 {
                format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
            } else {
                format!("{}m{:02}s", s / 60, s % 60)
            }
        })
    };
    let mut out = format!(
        "{:<24} {:>8} {:>8} {:>9} {:>12} {:>12} {:>12} {:>12}\n",
        by.as_str(),
        "handoffs",
        "resolved",
        "cancelled",
        "1st reply p50",
        "1st reply p90",
        "resolve p50",
        "resolve p90"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<24} {:>8} {:>8} {:>9} {:>12} {:>12} {:>12} {:>12}\n",
            r.key,
            r.handoffs,
            r.resolved,
            r.cancelled,
            dur(r.first_response_median_secs),
            dur(r.first_response_p90_secs),
            dur(r.resolution_median_secs),
            dur(r.resolution_p90_secs)
        ));
    }
    if rows.is_empty() {
        out.push_str("(no handoffs in this period)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{NewChannel, Store};
    use baton_protocol::{Agent, Author, Conversation, DeliveryStatus, EventData, Message, Role};

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default()
            + chrono::TimeDelta::minutes(minutes)
    }

    fn handoff(
        id: &str,
        minutes: i64,
        status: HandoffStatus,
        who: Option<&str>,
        ended: i64,
    ) -> Handoff {
        Handoff {
            id: id.into(),
            conversation_id: format!("c_{id}"),
            channel_id: "ch".into(),
            status,
            title: id.into(),
            description: None,
            assignee: who.map(str::to_string),
            label: (status == HandoffStatus::Resolved).then(|| "refunded".to_string()),
            tags: Vec::new(),
            priority: None,
            for_draft: false,
            escalation: None,
            created_at: at(minutes),
            updated_at: at(ended),
        }
    }

    fn reply(id: &str, conversation: &str, minutes: i64, author: Author) -> Message {
        Message {
            id: id.into(),
            conversation_id: conversation.into(),
            author,
            author_id: None,
            kind: "text".into(),
            text: Some("hi".into()),
            payload: serde_json::json!({"text": "hi"}),
            status: DeliveryStatus::Sent,
            status_reason: None,
            created_at: at(minutes),
        }
    }

    #[test]
    fn a_report_counts_handoffs_and_times_the_first_reply_and_the_resolution_per_agent() {
        let dir = tempfile::tempdir().expect("dir");
        let store: Box<dyn Store> = Box::new(SqliteStore::open(dir.path()).expect("store"));
        store
            .write(|tx| {
                tx.add_channel(&NewChannel {
                    id: "ch",
                    kind: "botpress",
                    name: "Support bot",
                    secret_hash: "s",
                    webhook_url: None,
                    created_at: at(0),
                })?;
                tx.add_agent(&Agent::new("ag_a", "a@x", "Alice", Role::Agent), "h")?;
                let handoffs = [
                    // Answered after 2 minutes, resolved after 10.
                    handoff("h1", 0, HandoffStatus::Resolved, Some("ag_a"), 10),
                    // Answered after 4 minutes (the desk's notice at 1 does not count), resolved after 30.
                    handoff("h2", 60, HandoffStatus::Resolved, Some("ag_a"), 90),
                    // Nobody took it.
                    handoff("h3", 120, HandoffStatus::Cancelled, None, 125),
                    // Before the period.
                    handoff("h0", -600, HandoffStatus::Resolved, Some("ag_a"), -590),
                ];
                for h in handoffs {
                    tx.put(EventData::Conversation(Conversation {
                        id: h.conversation_id.clone(),
                        channel_id: "ch".into(),
                        contact_id: None,
                        created_at: h.created_at,
                        channel_kind: None,
                        last_inbound_at: None,
                    }))?;
                    tx.put(EventData::Handoff(h))?;
                }
                tx.put(EventData::Message(reply("m1", "c_h1", 2, Author::Agent)))?;
                tx.put(EventData::Message(reply("m2", "c_h2", 61, Author::System)))?;
                tx.put(EventData::Message(reply("m3", "c_h2", 64, Author::Agent)))?;
                tx.put(EventData::Message(reply("m4", "c_h2", 70, Author::Agent)))?;
                Ok::<_, StoreError>(())
            })
            .expect("write");
        let read = store.reader().expect("reader");
        let rows = report(&*read, at(-1), at(24 * 60), GroupBy::Agent).expect("report");
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].key, "Alice");
        assert_eq!((rows[0].handoffs, rows[0].resolved), (2, 2));
        assert_eq!(rows[0].first_response_median_secs, Some(120.0));
        assert_eq!(rows[0].first_response_p90_secs, Some(240.0));
        assert_eq!(rows[0].resolution_median_secs, Some(600.0));
        assert_eq!(rows[0].resolution_p90_secs, Some(1800.0));
        assert_eq!(rows[1].key, "unassigned");
        assert_eq!((rows[1].handoffs, rows[1].cancelled), (1, 1));
        assert_eq!(rows[1].first_response_median_secs, None);

        let by_day = report(&*read, at(-1), at(24 * 60), GroupBy::Day).expect("report");
        assert_eq!(by_day.len(), 1);
        assert_eq!(by_day[0].handoffs, 3);
        let text = csv(&rows, GroupBy::Agent).expect("csv");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "agent,handoffs,resolved,cancelled,first_response_median_secs,first_response_p90_secs,resolution_median_secs,resolution_p90_secs");
        assert_eq!(lines[1], "Alice,2,2,0,120,240,600,1800");
        assert_eq!(lines[2], "unassigned,1,0,1,,,,");
    }

    #[test]
    fn a_period_is_written_as_a_date_a_time_or_days_ago() {
        let now = at(0);
        assert_eq!(
            when("2026-11-01", now).map(|t| t.to_rfc3339()),
            Ok("2026-11-01T00:00:00+00:00".into())
        );
        assert_eq!(when("7d", now), Ok(now - chrono::TimeDelta::days(7)));
        assert_eq!(
            when("2026-11-01T09:30:00+01:00", now).map(|t| t.to_rfc3339()),
            Ok("2026-11-01T08:30:00+00:00".into())
        );
        assert!(when("last week", now).is_err());
        assert!(when("99999999999d", now).is_err());
    }

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), Some(5.0));
        assert_eq!(percentile(&mut v, 90.0), Some(9.0));
        assert_eq!(percentile(&mut [42.0], 90.0), Some(42.0));
        assert_eq!(percentile(&mut [], 50.0), None);
    }
}
