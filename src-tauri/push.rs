//! Phones: this device registers for push with the hub (`POST /api/v1/devices`), so a handoff
//! reaches the agent while the app is closed. The token comes from FCM (Android) or APNs (iOS)
//! through the notifications plugin; the registration carries this device's notification settings,
//! time zone and language, so the hub mutes what the agent muted here, keeps their quiet hours and
//! writes pushes in the app's language. Sent
//! again at every start and after the settings change (the same token replaces its row).

use baton_core::prefs::NotificationSettings;
use serde_json::{json, Value};

/// What the hub is told about this device.
pub fn registration(
    platform: &str,
    token: &str,
    settings: &NotificationSettings,
    time_zone: Option<String>,
    language: &str,
) -> Value {
    let mut body =
        json!({"platform": platform, "token": token, "settings": settings, "language": language});
    if let Some(zone) = time_zone.filter(|z| !z.is_empty()) {
        body["time_zone"] = Value::String(zone);
    }
    body
}

/// Gets this device's push token and registers it with the hub, in the background; a failure is
/// logged (the desk still works, the phone is just not woken).
#[cfg(mobile)]
pub fn register(
    app: &tauri::AppHandle,
    client: baton_core::HubClient,
    settings: NotificationSettings,
) {
    use tauri_plugin_notifications::NotificationsExt;
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let platform = if cfg!(target_os = "android") {
            "fcm"
        } else {
            "apns"
        };
        let token = match app.notifications().register_for_push_notifications().await {
            Ok(token) => token,
            Err(e) => {
                tracing::warn!(error = %e, "push: no token from the platform; this phone will not be woken");
                return;
            }
        };
        let body = registration(
            platform,
            &token,
            &settings,
            iana_time_zone::get_timezone().ok(),
            crate::words::current().code(),
        );
        match client
            .call(reqwest::Method::POST, "/devices", Some(body))
            .await
        {
            Ok(_) => tracing::info!(platform, "push: this device is registered with the hub"),
            Err(e) => tracing::warn!(error = %e, "push: the hub did not take this device"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_registers_its_token_with_its_settings_time_zone_and_language() {
        let settings = NotificationSettings {
            new_handoffs: false,
            ..NotificationSettings::default()
        };
        let body = registration("fcm", "tok", &settings, Some("Europe/Paris".into()), "fr");
        assert_eq!(body["platform"], "fcm");
        assert_eq!(body["token"], "tok");
        assert_eq!(body["settings"]["new_handoffs"], false);
        assert_eq!(body["time_zone"], "Europe/Paris");
        assert_eq!(body["language"], "fr");
        assert!(registration("apns", "t", &settings, None, "en")
            .get("time_zone")
            .is_none());
    }
}
