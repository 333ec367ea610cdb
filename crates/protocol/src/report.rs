//! A team's figures over a period: handoffs per day (or channel, agent or label), with the median
//! and 90th percentile of the time to the first agent reply and of the time to resolution. The hub
//! (`baton-hub report`, the admin API) and the app (from its own copy, offline) count the same way.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Handoff, HandoffStatus};

/// What one row of a report stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ReportGroup {
    /// The day the handoff came in (UTC).
    Day,
    Channel,
    /// Whoever held it last (`unassigned` if nobody took it).
    Agent,
    /// How it was resolved (`none` without a label).
    Label,
}

impl ReportGroup {
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

    /// The row `h` counts in; `channel` and `agent` turn ids into the names people know.
    pub fn key(
        self,
        h: &Handoff,
        channel: impl Fn(&str) -> String,
        agent: impl Fn(&str) -> String,
    ) -> String {
        match self {
            Self::Day => h.created_at.format("%Y-%m-%d").to_string(),
            Self::Channel => channel(&h.channel_id),
            Self::Agent => h
                .assignee
                .as_deref()
                .map_or_else(|| "unassigned".into(), agent),
            Self::Label => h.label.clone().unwrap_or_else(|| "none".into()),
        }
    }
}

/// One group's figures. Times are in seconds; `None` where no handoff had one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ReportRow {
    pub key: String,
    pub handoffs: u32,
    pub resolved: u32,
    pub cancelled: u32,
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
    handoffs: u32,
    resolved: u32,
    cancelled: u32,
    first_response: Vec<f64>,
    resolution: Vec<f64>,
}

/// Counts handoffs into rows, one `add` per handoff.
#[derive(Default)]
pub struct Tally {
    groups: BTreeMap<String, Group>,
}

impl Tally {
    /// Counts `h` under `key`; `replies` are the times agents wrote in its conversation (the first
    /// while the handoff was open is its first response).
    pub fn add(&mut self, key: String, h: &Handoff, replies: &[DateTime<Utc>]) {
        let group = self.groups.entry(key).or_default();
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
        let first = replies
            .iter()
            .filter(|t| **t >= h.created_at && ended.is_none_or(|end| **t <= end))
            .min();
        if let Some(first) = first {
            group
                .first_response
                .push((*first - h.created_at).as_seconds_f64());
        }
    }

    /// One row per group, in key order.
    pub fn rows(self) -> Vec<ReportRow> {
        self.groups
            .into_iter()
            .map(|(key, mut g)| ReportRow {
                key,
                handoffs: g.handoffs,
                resolved: g.resolved,
                cancelled: g.cancelled,
                first_response_median_secs: percentile(&mut g.first_response, 50.0),
                first_response_p90_secs: percentile(&mut g.first_response, 90.0),
                resolution_median_secs: percentile(&mut g.resolution, 50.0),
                resolution_p90_secs: percentile(&mut g.resolution, 90.0),
            })
            .collect()
    }
}

/// The rows as CSV, with a header naming the grouping (`day`, `channel`, …); times in whole
/// seconds.
pub fn csv(rows: &[ReportRow], by: ReportGroup) -> Result<String, csv::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), Some(5.0));
        assert_eq!(percentile(&mut v, 90.0), Some(9.0));
        assert_eq!(percentile(&mut [42.0], 90.0), Some(42.0));
        assert_eq!(percentile(&mut [], 50.0), None);
    }
}
