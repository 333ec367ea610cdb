//! The TypeScript the UI reads these types as, generated from the Rust types (ts-rs), so the two
//! cannot drift: `ui/src/lib/generated.ts` is checked in, and a test fails when it differs from
//! what the types produce. `BATON_UPDATE_TYPES=1 cargo test -p baton-core typescript` rewrites it.

use ts_rs::{Config, TS};

use crate::{
    Backfill, ConnectionState, CustomerView, FailureClass, HandoffCounts, HandoffSummary,
    HandoffView, OutboxItem, OutboxState, SearchHit, UnreadableEvent, Update,
};
use baton_protocol::{
    Agent, AgentCommand, Author, Contact, Conversation, DeliveryStatus, Escalation,
    EscalationLevel, Handoff, HandoffStatus, Message, Note, Presence, Priority, Role, Template,
    Upload, WhatsAppTemplate,
};

/// The file, as the Rust types declare it.
pub fn bindings() -> String {
    // Ids and seqs are JSON numbers, well inside what a JS number holds exactly.
    let cfg = Config::new().with_large_int("number");
    let decls = [
        HandoffStatus::decl(&cfg),
        Priority::decl(&cfg),
        Author::decl(&cfg),
        DeliveryStatus::decl(&cfg),
        Presence::decl(&cfg),
        Role::decl(&cfg),
        Contact::decl(&cfg),
        Conversation::decl(&cfg),
        Handoff::decl(&cfg),
        Escalation::decl(&cfg),
        EscalationLevel::decl(&cfg),
        Message::decl(&cfg),
        Agent::decl(&cfg),
        Note::decl(&cfg),
        Template::decl(&cfg),
        WhatsAppTemplate::decl(&cfg),
        Upload::decl(&cfg),
        AgentCommand::decl(&cfg),
        HandoffView::decl(&cfg),
        HandoffSummary::decl(&cfg),
        HandoffCounts::decl(&cfg),
        crate::HandoffSort::decl(&cfg),
        crate::HandoffFilter::decl(&cfg),
        crate::HandoffPage::decl(&cfg),
        baton_protocol::ReadMark::decl(&cfg),
        crate::prefs::NotificationSettings::decl(&cfg),
        baton_protocol::report::ReportGroup::decl(&cfg),
        baton_protocol::report::ReportRow::decl(&cfg),
        CustomerView::decl(&cfg),
        Backfill::decl(&cfg),
        FailureClass::decl(&cfg),
        OutboxState::decl(&cfg),
        OutboxItem::decl(&cfg),
        crate::search::HitKind::decl(&cfg),
        SearchHit::decl(&cfg),
        ConnectionState::decl(&cfg),
        UnreadableEvent::decl(&cfg),
        Update::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from baton-protocol and baton-core by ts-rs; do not edit.\n\
         // Regenerate: BATON_UPDATE_TYPES=1 cargo test -p baton-core typescript\n",
    );
    for decl in decls {
        out.push_str("\nexport ");
        out.push_str(&decl);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn the_ui_types_are_what_the_rust_types_generate() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/lib/generated.ts");
        let wanted = super::bindings();
        if std::env::var_os("BATON_UPDATE_TYPES").is_some() {
            std::fs::write(&path, &wanted).expect("write generated.ts");
            return;
        }
        let found = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            found == wanted,
            "ui/src/lib/generated.ts differs from the Rust types: run \
             BATON_UPDATE_TYPES=1 cargo test -p baton-core typescript, and check in the result"
        );
    }
}
