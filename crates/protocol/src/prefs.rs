//! What an agent wants to be notified of: which events, with sound or not, and quiet hours. A
//! device keeps them in its cache (the `settings` table, never replaced by a snapshot) and gives
//! them to the hub with its push registration, so a phone's pushes follow the same rules.

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

/// An agent's notification settings. Every field has a default, so settings saved by an older
/// build still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct NotificationSettings {
    /// A handoff I could take.
    pub new_handoffs: bool,
    /// A handoff routed or transferred to me.
    pub assigned_to_me: bool,
    /// A customer writing in a conversation I hold (while the window is not in front).
    pub customer_messages: bool,
    /// A customer waiting past the channel's target, and escalations to me.
    pub escalations: bool,
    pub sound: bool,
    /// Quiet hours, `HH:MM` in the device's time: no notification between them (across midnight
    /// when `quiet_from` is later than `quiet_until`). Both or neither.
    #[ts(optional)]
    pub quiet_from: Option<String>,
    #[ts(optional)]
    pub quiet_until: Option<String>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            new_handoffs: true,
            assigned_to_me: true,
            customer_messages: true,
            escalations: true,
            sound: true,
            quiet_from: None,
            quiet_until: None,
        }
    }
}

/// Why settings cannot be saved, worded for the agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

fn time(value: &str) -> Result<NaiveTime, SettingsError> {
    NaiveTime::parse_from_str(value.trim(), "%H:%M").map_err(|_| {
        SettingsError(format!(
            "quiet hours are times like 22:00, not {:?}",
            value.trim()
        ))
    })
}

impl NotificationSettings {
    /// Refuses quiet hours that are half set or not times.
    pub fn check(&self) -> Result<(), SettingsError> {
        match (&self.quiet_from, &self.quiet_until) {
            (None, None) => Ok(()),
            (Some(from), Some(until)) => {
                let (from, until) = (time(from)?, time(until)?);
                if from == until {
                    return Err(SettingsError(
                        "quiet hours must start and end at different times".into(),
                    ));
                }
                Ok(())
            }
            _ => Err(SettingsError(
                "quiet hours need both a start and an end".into(),
            )),
        }
    }

    /// Whether `now` (the device's local time of day) falls in the quiet hours.
    pub fn quiet_at(&self, now: NaiveTime) -> bool {
        let (Some(from), Some(until)) = (&self.quiet_from, &self.quiet_until) else {
            return false;
        };
        let (Ok(from), Ok(until)) = (time(from), time(until)) else {
            return false;
        };
        if from < until {
            from <= now && now < until
        } else {
            now >= from || now < until
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()
    }

    fn quiet(from: &str, until: &str) -> NotificationSettings {
        NotificationSettings {
            quiet_from: Some(from.into()),
            quiet_until: Some(until.into()),
            ..NotificationSettings::default()
        }
    }

    #[test]
    fn quiet_hours_across_midnight_hold_from_the_evening_to_the_morning() {
        let night = quiet("22:00", "07:30");
        assert!(night.quiet_at(at(23, 15)));
        assert!(night.quiet_at(at(3, 0)));
        assert!(!night.quiet_at(at(7, 30)));
        assert!(!night.quiet_at(at(12, 0)));
        let lunch = quiet("12:00", "13:00");
        assert!(lunch.quiet_at(at(12, 30)));
        assert!(!lunch.quiet_at(at(13, 0)));
        assert!(!NotificationSettings::default().quiet_at(at(3, 0)));
    }

    #[test]
    fn half_set_or_unreadable_quiet_hours_are_refused_with_the_reason() {
        let half = NotificationSettings {
            quiet_from: Some("22:00".into()),
            ..NotificationSettings::default()
        };
        assert_eq!(
            half.check(),
            Err(SettingsError(
                "quiet hours need both a start and an end".into()
            ))
        );
        assert_eq!(
            quiet("late", "07:00").check(),
            Err(SettingsError(
                "quiet hours are times like 22:00, not \"late\"".into()
            ))
        );
        assert!(quiet("22:00", "07:00").check().is_ok());
    }

    #[test]
    fn settings_saved_by_an_older_build_read_with_defaults_for_what_they_lack() {
        let old: NotificationSettings =
            serde_json::from_str(r#"{"sound":false}"#).unwrap_or_default();
        assert!(!old.sound);
        assert!(old.new_handoffs);
    }
}
