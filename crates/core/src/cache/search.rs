//! Offline search over the cache: message text, notes, customer names and handoff titles, through
//! SQLite FTS5. Results are ranked (bm25), carry a highlighted snippet, and can be narrowed by
//! channel, handoff status, tag, agent and date.
//!
//! Ranking every match of a common word over a million messages is what makes naive FTS slow (FTS5's
//! own bm25 counts every row holding each word, for every query), so each source takes its newest
//! [`WINDOW`] matches (FTS5 walks its index newest-first and stops), and those are ranked here by
//! BM25's term-frequency part: how often the words occur, for the text's length. Every hit holds
//! every word, so the part left out (how rare each word is) would only reweigh words against each
//! other. Snippets are cut from the hits' text here too (FTS5's `snippet()` costs a query each).

use baton_protocol::HandoffStatus;
use chrono::{DateTime, Utc};
use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;
use serde::Serialize;

use crate::cache::{Cache, CacheError};

/// How many of the newest matches per source are ranked.
pub const WINDOW: usize = 100;

/// Marks around the matched words in a snippet.
pub const MARK_OPEN: &str = "[";
pub const MARK_CLOSE: &str = "]";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchQuery {
    pub text: String,
    pub channel: Option<String>,
    pub status: Option<HandoffStatus>,
    pub tag: Option<String>,
    /// An agent id: the conversation has a handoff assigned to them.
    pub agent: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    Message,
    Note,
    Customer,
    Handoff,
}

impl HitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HitKind::Message => "message",
            HitKind::Note => "note",
            HitKind::Customer => "customer",
            HitKind::Handoff => "handoff",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct SearchHit {
    pub conversation_id: String,
    pub kind: HitKind,
    /// The message, note, contact or handoff id.
    pub id: String,
    /// The matched text around the match, the matched words between [`MARK_OPEN`] and [`MARK_CLOSE`].
    pub snippet: String,
    pub at: Option<String>,
    /// Relevance: higher is better.
    pub score: f64,
    /// Whose conversation it is, once known: results from many customers read apart.
    #[serde(default)]
    pub customer: Option<String>,
}

struct Source {
    kind: HitKind,
    fts: &'static str,
    /// Selects `rowid, id, conversation_id, at, text` for the FTS match `?1`.
    select: &'static str,
    /// The expression for the row's date (for date filters), if it has one.
    date: Option<&'static str>,
}

const SOURCES: &[Source] = &[
    Source {
        kind: HitKind::Message,
        fts: "messages_fts",
        select: "SELECT m.rowid, m.id, m.conversation_id, m.created_at, m.text
                 FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid
                 LEFT JOIN conversations c ON c.id = m.conversation_id
                 WHERE messages_fts MATCH ?1",
        date: Some("m.created_at"),
    },
    Source {
        kind: HitKind::Note,
        fts: "notes_fts",
        select: "SELECT m.rowid, m.id, m.conversation_id, m.created_at, m.text
                 FROM notes_fts JOIN notes m ON m.rowid = notes_fts.rowid
                 LEFT JOIN conversations c ON c.id = m.conversation_id
                 WHERE notes_fts MATCH ?1",
        date: Some("m.created_at"),
    },
    Source {
        kind: HitKind::Handoff,
        fts: "handoffs_fts",
        select: "SELECT m.rowid, m.id, m.conversation_id, m.created_at, m.title
                 FROM handoffs_fts JOIN handoffs m ON m.rowid = handoffs_fts.rowid
                 LEFT JOIN conversations c ON c.id = m.conversation_id
                 WHERE handoffs_fts MATCH ?1",
        date: Some("m.created_at"),
    },
    Source {
        kind: HitKind::Customer,
        fts: "contacts_fts",
        // A customer hit points at their newest conversation.
        select: "SELECT ct.rowid, ct.id, c.id, NULL, ct.name
                 FROM contacts_fts JOIN contacts ct ON ct.rowid = contacts_fts.rowid
                 JOIN conversations c ON c.id = (SELECT id FROM conversations WHERE contact_id = ct.id
                                                 ORDER BY rowid DESC LIMIT 1)
                 WHERE contacts_fts MATCH ?1",
        date: None,
    },
];

/// Turns the query's words (see [`terms`]) into FTS5 queries: every word must match, quotes and operators taken
/// as plain words. The first query matches whole words; the second also takes the last word as a prefix
/// (results while typing), and runs only when whole words found too little — a prefix over a large
/// index is the one expensive kind of query.
pub fn fts_queries(words: &[String]) -> Option<(String, Option<String>)> {
    let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
    let exact = quoted.join(" ");
    if exact.is_empty() {
        return None;
    }
    let last = words.last()?;
    // One or two letters would match half the dictionary: whole words only.
    let prefix = (last.chars().count() >= 3).then(|| format!("{exact}*"));
    Some((exact, prefix))
}

impl Cache {
    /// Searches everything cached; best matches first, at most `query.limit` (20 if 0).
    pub fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>, CacheError> {
        // Words as the tokenizer splits them ("crushed-box" is two), so every query term is a
        // single token and no agent input can form FTS5 syntax.
        let terms = terms(&query.text);
        let Some((exact, prefix)) = fts_queries(&terms) else {
            return Ok(Vec::new());
        };
        let limit = if query.limit == 0 { 20 } else { query.limit };
        let hits = self.search_with(&exact, &terms, false, query, limit)?;
        match prefix {
            Some(prefix) if hits.len() < limit => {
                self.search_with(&prefix, &terms, true, query, limit)
            }
            _ => Ok(hits),
        }
    }

    fn search_with(
        &self,
        fts: &str,
        terms: &[String],
        last_is_prefix: bool,
        query: &SearchQuery,
        limit: usize,
    ) -> Result<Vec<SearchHit>, CacheError> {
        let fts = fts.to_string();
        // (rowid, hit) for every source's newest matches that pass the filters.
        let mut ranked: Vec<(String, SearchHit)> = Vec::new();
        for source in SOURCES {
            if source.date.is_none() && (query.since.is_some() || query.until.is_some()) {
                continue;
            }
            let mut sql = source.select.to_string();
            let mut args: Vec<SqlValue> = vec![SqlValue::Text(fts.clone())];
            filters(query, source, &mut sql, &mut args);
            sql.push_str(&format!(
                " ORDER BY {}.rowid DESC LIMIT {WINDOW}",
                source.fts
            ));
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?;
            for row in rows {
                let (_rowid, id, conversation_id, at, text) = row?;
                let text = text.unwrap_or_default();
                let score = relevance(&text, terms, last_is_prefix);
                ranked.push((
                    text,
                    SearchHit {
                        conversation_id,
                        kind: source.kind,
                        id,
                        snippet: String::new(),
                        at,
                        score,
                        customer: None,
                    },
                ));
            }
        }
        // Best first; among equals, newest first (rowids grow with arrival).
        ranked.sort_by(|(_, a), (_, b)| b.score.total_cmp(&a.score).then_with(|| b.at.cmp(&a.at)));
        ranked.truncate(limit);
        let mut customer = self.conn.prepare_cached(
            "SELECT json_extract(ct.data, '$.name') FROM conversations c
             JOIN contacts ct ON ct.id = c.contact_id WHERE c.id = ?1",
        )?;
        Ok(ranked
            .into_iter()
            .map(|(text, mut hit)| {
                hit.snippet = snippet(&text, terms, last_is_prefix);
                hit.customer = customer
                    .query_row([&hit.conversation_id], |r| r.get::<_, Option<String>>(0))
                    .ok()
                    .flatten();
                hit
            })
            .collect())
    }
}

/// How many words a snippet shows.
const SNIPPET_WORDS: usize = 12;

/// The part of `text` around the first matched word, the matched words between [`MARK_OPEN`] and
/// [`MARK_CLOSE`], "…" where text was cut.
pub fn snippet(text: &str, terms: &[String], last_is_prefix: bool) -> String {
    // Byte ranges of the words, as the tokenizer splits them.
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                words.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push((s, text.len()));
    }
    let matches = |w: &str| -> bool {
        let w: String = w.chars().flat_map(char::to_lowercase).map(fold).collect();
        terms.iter().enumerate().any(|(i, t)| {
            if last_is_prefix && i + 1 == terms.len() {
                w.starts_with(t.as_str())
            } else {
                &w == t
            }
        })
    };
    let hit: Vec<bool> = words.iter().map(|&(a, b)| matches(&text[a..b])).collect();
    let first = hit.iter().position(|&h| h).unwrap_or(0);
    let from = first.saturating_sub(SNIPPET_WORDS / 3);
    let to = (from + SNIPPET_WORDS).min(words.len());
    let (Some(&(begin, _)), Some(&(_, end))) = (words.get(from), words.get(to.saturating_sub(1)))
    else {
        return text.chars().take(80).collect();
    };
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut at = begin;
    for (k, &(a, b)) in words.iter().enumerate().take(to).skip(from) {
        out.push_str(&text[at..a]);
        if hit[k] {
            out.push_str(MARK_OPEN);
            out.push_str(&text[a..b]);
            out.push_str(MARK_CLOSE);
        } else {
            out.push_str(&text[a..b]);
        }
        at = b;
    }
    out.push_str(&text[at..end]);
    if to < words.len() {
        out.push('…');
    }
    out.replace(['\n', '\r'], " ")
}

/// The query's words as the index sees them: lower case, accents folded.
fn terms(text: &str) -> Vec<String> {
    tokens(text).collect()
}

/// Splits text into lower-case, accent-folded words, like the index's `unicode61` tokenizer.
fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().flat_map(char::to_lowercase).map(fold).collect())
}

/// The common Latin letters with accents, as their base letter (what `remove_diacritics` does).
fn fold(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        other => other,
    }
}

/// BM25's term-frequency part (k1 = 1.2, b = 0.75, against a typical chat message of 12 words):
/// more occurrences count, with diminishing returns, and a short text counts more than a long
/// one with the same occurrences.
fn relevance(text: &str, terms: &[String], last_is_prefix: bool) -> f64 {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;
    const AVERAGE_WORDS: f64 = 12.0;
    let words: Vec<String> = tokens(text).collect();
    let length = words.len().max(1) as f64;
    let norm = K1 * (1.0 - B + B * length / AVERAGE_WORDS);
    terms
        .iter()
        .enumerate()
        .map(|(i, term)| {
            let prefix = last_is_prefix && i + 1 == terms.len();
            let tf = words
                .iter()
                .filter(|w| {
                    if prefix {
                        w.starts_with(term.as_str())
                    } else {
                        *w == term
                    }
                })
                .count() as f64;
            tf * (K1 + 1.0) / (tf + norm)
        })
        .sum()
}

fn filters(query: &SearchQuery, source: &Source, sql: &mut String, args: &mut Vec<SqlValue>) {
    let mut arg = |sql: &mut String, clause: &str, value: SqlValue| {
        args.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(channel) = &query.channel {
        arg(
            sql,
            " AND c.channel_id = ?",
            SqlValue::Text(channel.clone()),
        );
    }
    // A handoff hit is filtered by itself; other hits by any handoff of their conversation.
    let handoff = if source.kind == HitKind::Handoff {
        "m.rowid IN (SELECT h.rowid FROM handoffs h WHERE h.id = m.id"
    } else {
        "EXISTS (SELECT 1 FROM handoffs h WHERE h.conversation_id = c.id"
    };
    if let Some(status) = query.status {
        arg(
            sql,
            &format!(" AND {handoff} AND h.status = ?)"),
            SqlValue::Text(status.as_str().to_string()),
        );
    }
    if let Some(tag) = &query.tag {
        arg(
            sql,
            &format!(
                " AND {handoff} AND EXISTS (SELECT 1 FROM json_each(h.tags) WHERE json_each.value = ?))"
            ),
            SqlValue::Text(tag.clone()),
        );
    }
    if let Some(agent) = &query.agent {
        arg(
            sql,
            &format!(" AND {handoff} AND h.assignee = ?)"),
            SqlValue::Text(agent.clone()),
        );
    }
    if let Some(date) = source.date {
        if let Some(since) = query.since {
            arg(
                sql,
                &format!(" AND {date} >= ?"),
                SqlValue::Text(since.to_rfc3339()),
            );
        }
        if let Some(until) = query.until {
            arg(
                sql,
                &format!(" AND {date} < ?"),
                SqlValue::Text(until.to_rfc3339()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_protocol::{
        Author, Contact, Conversation, DeliveryStatus, Event, EventData, Handoff, Message, Note,
    };

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minutes * 60, 0).unwrap_or_default()
    }

    fn desk() -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().expect("dir");
        let mut cache = Cache::open(&dir.path().join("c.sqlite")).expect("open");
        let conversation = |id: &str, channel: &str, contact: &str| {
            EventData::Conversation(Conversation {
                id: id.into(),
                channel_id: channel.into(),
                contact_id: Some(contact.into()),
                created_at: at(0),
                channel_kind: None,
                last_inbound_at: None,
            })
        };
        let handoff = |id: &str,
                       conv: &str,
                       title: &str,
                       status: HandoffStatus,
                       assignee: Option<&str>,
                       tags: &[&str]| {
            EventData::Handoff(Handoff {
                id: id.into(),
                conversation_id: conv.into(),
                channel_id: "ch".into(),
                status,
                title: title.into(),
                description: None,
                assignee: assignee.map(str::to_string),
                assigned_by: None,
                label: None,
                tags: tags.iter().map(|t| t.to_string()).collect(),
                priority: None,
                for_draft: false,
                escalation: None,
                created_at: at(1),
                updated_at: at(1),
            })
        };
        let message = |id: &str, conv: &str, text: &str, minute: i64| {
            EventData::Message(Message {
                id: id.into(),
                conversation_id: conv.into(),
                author: Author::EndUser,
                author_id: None,
                kind: "text".into(),
                text: Some(text.into()),
                payload: serde_json::json!({"text": text}),
                status: DeliveryStatus::Received,
                status_reason: None,
                created_at: at(minute),
            })
        };
        let data = vec![
            EventData::Contact(Contact {
                id: "u_1".into(),
                channel_id: "web".into(),
                name: "Dana Reyes".into(),
                email: None,
                picture_url: None,
                attributes: serde_json::json!({}),
                created_at: at(0),
            }),
            conversation("c_1", "web", "u_1"),
            conversation("c_2", "whatsapp", "u_2"),
            handoff(
                "h_1",
                "c_1",
                "Refund for a crushed box",
                HandoffStatus::Resolved,
                Some("ag_alice"),
                &["refund"],
            ),
            handoff(
                "h_2",
                "c_2",
                "Where is my parcel",
                HandoffStatus::Pending,
                None,
                &[],
            ),
            message(
                "m_1",
                "c_1",
                "The box arrived crushed and the lamp is broken",
                2,
            ),
            message(
                "m_2",
                "c_2",
                "My parcel is late; is the box crushed too?",
                60 * 24 * 3,
            ),
            message("m_3", "c_2", "Café crème order", 5),
            EventData::Note(Note {
                id: "n_1".into(),
                conversation_id: "c_1".into(),
                agent_id: "ag_alice".into(),
                text: "Refunded via the crushed-box policy".into(),
                created_at: at(3),
            }),
        ];
        let events: Vec<Event> = data
            .into_iter()
            .enumerate()
            .map(|(i, data)| Event {
                seq: i as u64 + 1,
                data,
            })
            .collect();
        cache.apply(&events).expect("apply");
        (dir, cache)
    }

    fn search(cache: &Cache, query: SearchQuery) -> Vec<(String, HitKind, String)> {
        cache
            .search(&query)
            .expect("search")
            .into_iter()
            .map(|h| (h.conversation_id, h.kind, h.snippet))
            .collect()
    }

    fn text(t: &str) -> SearchQuery {
        SearchQuery {
            text: t.into(),
            ..Default::default()
        }
    }

    #[test]
    fn messages_notes_titles_and_customer_names_are_found_with_the_words_marked() {
        let (_dir, cache) = desk();
        let hits = search(&cache, text("crushed"));
        let kinds: Vec<HitKind> = hits.iter().map(|h| h.1).collect();
        assert!(kinds.contains(&HitKind::Message));
        assert!(kinds.contains(&HitKind::Note));
        assert!(kinds.contains(&HitKind::Handoff));
        assert!(hits.iter().all(|h| h.2.contains("[crushed]")), "{hits:?}");
        let dana = search(&cache, text("dana"));
        assert_eq!(dana[0].0, "c_1");
        assert_eq!(dana[0].1, HitKind::Customer);
        assert_eq!(dana[0].2, "[Dana] Reyes");
        // Every hit says whose conversation it is (none while the customer is unknown).
        let whose: Vec<(String, Option<String>)> = cache
            .search(&text("crushed"))
            .expect("search")
            .into_iter()
            .map(|h| (h.conversation_id, h.customer))
            .collect();
        assert!(
            whose
                .iter()
                .filter(|(c, _)| c == "c_1")
                .all(|(_, who)| who.as_deref() == Some("Dana Reyes")),
            "{whose:?}"
        );
        assert!(whose.iter().any(|(c, _)| c == "c_1"), "{whose:?}");
    }

    #[test]
    fn the_last_word_matches_as_a_prefix_and_accents_do_not_matter() {
        let (_dir, cache) = desk();
        assert_eq!(
            search(&cache, text("parc")).len(),
            2,
            "parcel: a message and a title"
        );
        assert_eq!(search(&cache, text("cafe creme"))[0].0, "c_2");
    }

    #[test]
    fn filters_narrow_by_channel_status_tag_agent_and_date() {
        let (_dir, cache) = desk();
        let only = |q: SearchQuery| -> Vec<String> {
            let mut c: Vec<String> = search(&cache, q).into_iter().map(|h| h.0).collect();
            c.sort();
            c.dedup();
            c
        };
        let crushed = || text("crushed");
        assert_eq!(
            only(SearchQuery {
                channel: Some("whatsapp".into()),
                ..crushed()
            }),
            ["c_2"]
        );
        assert_eq!(
            only(SearchQuery {
                status: Some(HandoffStatus::Resolved),
                ..crushed()
            }),
            ["c_1"]
        );
        assert_eq!(
            only(SearchQuery {
                tag: Some("refund".into()),
                ..crushed()
            }),
            ["c_1"]
        );
        assert_eq!(
            only(SearchQuery {
                agent: Some("ag_alice".into()),
                ..crushed()
            }),
            ["c_1"]
        );
        assert_eq!(
            only(SearchQuery {
                since: Some(at(60 * 24)),
                ..crushed()
            }),
            ["c_2"]
        );
        assert!(only(SearchQuery {
            tag: Some("vip".into()),
            ..crushed()
        })
        .is_empty());
    }

    #[test]
    fn more_and_denser_occurrences_rank_first() {
        let terms = vec!["box".to_string()];
        let short = relevance("crushed box", &terms, false);
        let long = relevance(
            "the box arrived late and the courier was rude about it all",
            &terms,
            false,
        );
        let twice = relevance("box inside a box", &terms, false);
        assert!(short > long);
        assert!(twice > relevance("a box inside a bag", &terms, false));
        assert!(relevance("Café", &["cafe".to_string()], false) > 0.0);
        assert!(relevance("parcel", &["parc".to_string()], true) > 0.0);
        assert_eq!(relevance("parcel", &["parc".to_string()], false), 0.0);
    }

    #[test]
    fn what_the_agent_types_can_never_break_the_query() {
        let (_dir, cache) = desk();
        for q in [
            "\"",
            "AND",
            "box OR",
            "crushed*)",
            "NEAR(",
            "-",
            "''",
            "👍",
            "  ",
        ] {
            assert!(cache.search(&text(q)).is_ok(), "{q:?}");
        }
        assert!(search(&cache, text("   ")).is_empty());
    }
}
