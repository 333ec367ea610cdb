//! The app's own words outside the window — notifications, the tray, the status lines the window
//! shows from the core — in the language the window speaks.
//!
//! The window tells us its language (`set_language`) when it starts and whenever the agent picks
//! another in Settings; until then we follow the system's locale, as the window does. The two
//! tables below are the native counterpart of `ui/src/lib/i18n/{en,fr}.ts`: a few dozen words
//! that cannot live in the UI because the OS shows them while the window may be closed.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    En,
    Fr,
}

impl Language {
    /// The language for a locale or a UI language code: French for any `fr*`, else English (the
    /// UI's own rule, so the window and its notifications never disagree).
    pub fn for_locale(locale: &str) -> Self {
        if locale.trim().to_ascii_lowercase().starts_with("fr") {
            Self::Fr
        } else {
            Self::En
        }
    }

    /// The system's language, by POSIX precedence: `LC_ALL`, then `LC_MESSAGES`, then `LANG`.
    pub fn of_system() -> Self {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .find(|value| !value.is_empty())
            .map_or(Self::En, |locale| Self::for_locale(&locale))
    }

    /// The UI's code for it (`en`, `fr`): what the hub is told a phone's pushes should speak.
    #[cfg_attr(not(mobile), allow(dead_code))]
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Fr => "fr",
        }
    }

    pub fn words(self) -> &'static Words {
        match self {
            Self::En => &EN,
            Self::Fr => &FR,
        }
    }
}

// 0: not told yet (the system's), 1: English, 2: French.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// The language the window speaks (the system's until it has said).
pub fn current() -> Language {
    match CHOSEN.load(Ordering::Relaxed) {
        1 => Language::En,
        2 => Language::Fr,
        _ => Language::of_system(),
    }
}

pub fn set(language: Language) {
    CHOSEN.store(
        match language {
            Language::En => 1,
            Language::Fr => 2,
        },
        Ordering::Relaxed,
    );
}

/// The words in the current language.
pub fn words() -> &'static Words {
    current().words()
}

/// Every native sentence, as text or as a function of what fills it. Counts are at least 1 where
/// a count is shown (French, like English, takes the singular for 1).
// Phones have no tray and no built-in hub (solo mode is desktop only).
#[cfg_attr(mobile, allow(dead_code))]
pub struct Words {
    pub assigned_to_you: fn(&str) -> String,
    pub waiting_for_reply: &'static str,
    pub escalated_to_you: fn(&str) -> String,
    pub still_waiting: fn(&str) -> String,
    pub waited_past_target: &'static str,
    pub new_messages: fn(usize) -> String,
    pub new_handoffs: fn(usize) -> String,
    pub assigned_count: fn(usize) -> String,
    pub messages_in_yours: fn(usize) -> String,
    pub waiting_too_long: fn(usize) -> String,
    pub your_customer: &'static str,
    pub is_waiting: fn(&str) -> String,
    pub someone_is_waiting: &'static str,
    pub tray_open: &'static str,
    pub tray_online: &'static str,
    pub tray_offline: &'static str,
    pub tray_quit: &'static str,
    pub tray_unread: fn(u32) -> String,
    /// Phones only: a desktop without a hub address runs its own.
    #[cfg_attr(not(mobile), allow(dead_code))]
    pub set_hub_address: &'static str,
    pub solo_failed: fn(&str) -> String,
    pub signed_out_by_hub: &'static str,
}

pub static EN: Words = Words {
    assigned_to_you: |title| format!("Assigned to you: {title}"),
    waiting_for_reply: "The customer is waiting for your reply",
    escalated_to_you: |title| format!("Escalated to you: {title}"),
    still_waiting: |title| format!("Still waiting: {title}"),
    waited_past_target: "The customer has waited longer than the team's target",
    new_messages: |n| format!("{n} new {}", if n == 1 { "message" } else { "messages" }),
    new_handoffs: |n| format!("{n} new {}", if n == 1 { "handoff" } else { "handoffs" }),
    assigned_count: |n| format!("{n} assigned to you"),
    messages_in_yours: |n| {
        format!(
            "{n} {} in yours",
            if n == 1 { "message" } else { "messages" }
        )
    },
    waiting_too_long: |n| format!("{n} waiting too long"),
    your_customer: "Your customer",
    is_waiting: |name| format!("{name} is waiting for an agent"),
    someone_is_waiting: "A customer is waiting for an agent",
    tray_open: "Open Baton",
    tray_online: "Go online",
    tray_offline: "Go offline",
    tray_quit: "Quit Baton",
    tray_unread: |n| match n {
        0 => "Baton: nothing unread".into(),
        1 => "Baton: 1 conversation unread".into(),
        n => format!("Baton: {n} conversations unread"),
    },
    set_hub_address: "Set the team's hub address (BATON_HUB_URL) to sign in.",
    solo_failed: |e| format!("The built-in hub could not start: {e}"),
    signed_out_by_hub: "The hub signed this device out; sign in again.",
};

// French typography as in the UI's catalog: a no-break space (U+00A0) before : ; ? !
pub static FR: Words = Words {
    assigned_to_you: |title| format!("Attribué à vous\u{a0}: {title}"),
    waiting_for_reply: "Le client attend votre réponse",
    escalated_to_you: |title| format!("Remonté jusqu’à vous\u{a0}: {title}"),
    still_waiting: |title| format!("Toujours en attente\u{a0}: {title}"),
    waited_past_target: "Le client attend depuis plus longtemps que l’objectif de l’équipe",
    new_messages: |n| {
        if n <= 1 {
            format!("{n} nouveau message")
        } else {
            format!("{n} nouveaux messages")
        }
    },
    new_handoffs: |n| {
        if n <= 1 {
            format!("{n} nouveau transfert")
        } else {
            format!("{n} nouveaux transferts")
        }
    },
    assigned_count: |n| {
        if n <= 1 {
            format!("{n} attribué à vous")
        } else {
            format!("{n} attribués à vous")
        }
    },
    messages_in_yours: |n| {
        if n <= 1 {
            format!("{n} message dans les vôtres")
        } else {
            format!("{n} messages dans les vôtres")
        }
    },
    waiting_too_long: |n| format!("{n} en attente trop longue"),
    your_customer: "Votre client",
    is_waiting: |name| format!("{name} attend un agent"),
    someone_is_waiting: "Un client attend un agent",
    tray_open: "Ouvrir Baton",
    tray_online: "Passer en ligne",
    tray_offline: "Passer hors ligne",
    tray_quit: "Quitter Baton",
    tray_unread: |n| match n {
        0 => "Baton\u{a0}: rien de non lu".into(),
        1 => "Baton\u{a0}: 1 conversation non lue".into(),
        n => format!("Baton\u{a0}: {n} conversations non lues"),
    },
    set_hub_address: "Indiquez l’adresse du hub de l’équipe (BATON_HUB_URL) pour vous connecter.",
    solo_failed: |e| format!("Le hub intégré n’a pas pu démarrer\u{a0}: {e}"),
    signed_out_by_hub: "Le hub a déconnecté cet appareil\u{a0}; reconnectez-vous.",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_french_locale_speaks_french_and_every_other_english() {
        for locale in ["fr", "fr_FR.UTF-8", "fr-CA", "FR_be"] {
            assert_eq!(Language::for_locale(locale), Language::Fr, "{locale}");
        }
        for locale in ["en_GB.UTF-8", "C.UTF-8", "de_DE", "", "POSIX"] {
            assert_eq!(Language::for_locale(locale), Language::En, "{locale}");
        }
    }

    #[test]
    fn french_says_every_sentence_in_french() {
        let (en, fr) = (&EN, &FR);
        let pairs = [
            (
                (en.assigned_to_you)("Refund"),
                (fr.assigned_to_you)("Refund"),
            ),
            (
                (en.escalated_to_you)("Refund"),
                (fr.escalated_to_you)("Refund"),
            ),
            ((en.still_waiting)("Refund"), (fr.still_waiting)("Refund")),
            ((en.new_messages)(3), (fr.new_messages)(3)),
            ((en.new_handoffs)(12), (fr.new_handoffs)(12)),
            ((en.assigned_count)(2), (fr.assigned_count)(2)),
            ((en.messages_in_yours)(3), (fr.messages_in_yours)(3)),
            ((en.waiting_too_long)(1), (fr.waiting_too_long)(1)),
            ((en.is_waiting)("Zoë"), (fr.is_waiting)("Zoë")),
            ((en.tray_unread)(4), (fr.tray_unread)(4)),
            (
                (en.solo_failed)("port taken"),
                (fr.solo_failed)("port taken"),
            ),
        ];
        for (english, french) in pairs {
            assert_ne!(english, french);
            assert!(!french.trim().is_empty());
        }
        let texts = [
            (en.waiting_for_reply, fr.waiting_for_reply),
            (en.waited_past_target, fr.waited_past_target),
            (en.your_customer, fr.your_customer),
            (en.someone_is_waiting, fr.someone_is_waiting),
            (en.tray_open, fr.tray_open),
            (en.tray_online, fr.tray_online),
            (en.tray_offline, fr.tray_offline),
            (en.tray_quit, fr.tray_quit),
            (en.set_hub_address, fr.set_hub_address),
            (en.signed_out_by_hub, fr.signed_out_by_hub),
        ];
        for (english, french) in texts {
            assert_ne!(english, french);
        }
        assert_eq!((fr.new_handoffs)(1), "1 nouveau transfert");
        assert_eq!((fr.new_handoffs)(12), "12 nouveaux transferts");
        assert_eq!((fr.tray_unread)(2), "Baton\u{a0}: 2 conversations non lues");
    }
}
