//! What `login` remembers in the data directory (`cli.json`): which hub, who, and where the token
//! is. Never the token itself.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::TokenStoreKind;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Config {
    pub hub_url: Option<String>,
    pub agent_id: Option<String>,
    pub email: Option<String>,
    pub token_store: Option<TokenStoreKind>,
}

impl Config {
    pub fn load(data: &Path) -> anyhow::Result<Self> {
        let path = data.join("cli.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not a baton-cli settings file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, data: &Path) -> anyhow::Result<()> {
        baton_protocol::private_fs::private_dir(data, "cli.json")
            .with_context(|| format!("cannot create {}", data.display()))?;
        let path = data.join("cli.json");
        let tmp = data.join("cli.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .and_then(|()| baton_protocol::private_fs::private_file(&tmp))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }
}
