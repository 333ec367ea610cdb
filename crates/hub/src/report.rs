//! How the team did: handoffs per day (or per channel, agent or label) over a period, with the
//! median and 90th percentile of the time to the first agent reply and of the time to resolution.
//! `baton-hub report` and the admin API's `GET /api/v1/admin/report` print the same rows.

use std::collections::BTreeMap;

pub use baton_protocol::report::{csv, ReportGroup as GroupBy, ReportRow as Row};
use baton_protocol::Handoff;
use chrono::{DateTime, Utc};

use crate::store::{Read, StoreError};

/// The report over handoffs that came in from `since` until `until`, one row per group, in key
/// order, channels and agents by name.
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
    let name = |names: &BTreeMap<String, String>, id: &str| {
        names.get(id).cloned().unwrap_or_else(|| id.to_string())
    };
    let mut tally = baton_protocol::report::Tally::default();
    let handoffs: Vec<Handoff> = read
        .handoffs_since(since)?
        .into_iter()
        .filter(|h| h.created_at >= since && h.created_at < until && !h.for_draft)
        .collect();
    for h in handoffs {
        let key = by.key(&h, |id| name(&channels, id), |id| name(&agents, id));
        tally.add(key, &h, &read.agent_reply_times(&h.conversation_id)?);
    }
    Ok(tally.rows())
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
    use baton_protocol::{
        Agent, Author, Conversation, DeliveryStatus, EventData, HandoffStatus, Message, Role,
    };

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
            assigned_by: None,
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
}
