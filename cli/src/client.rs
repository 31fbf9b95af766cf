//! The coordinator's HTTP API as `bramble` reaches it: where (`--server`, `BRAMBLE_SERVER`,
//! or the config file) and with which token (`--token`, `BRAMBLE_TOKEN`, or the config file).
//!
//! The config file, `~/.config/bramble/config` (or `$BRAMBLE_CONFIG`), has `key: value` lines:
//!
//! ```text
//! server: http://pi-hub:6443
//! token: 4f1c…
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct Connection {
    /// The coordinator's API, e.g. http://pi-hub:6443.
    #[arg(long, global = true, env = "BRAMBLE_SERVER")]
    pub server: Option<String>,
    /// The API token the coordinator printed at its first start.
    #[arg(long, global = true, env = "BRAMBLE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub fn config_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BRAMBLE_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("bramble").join("config"))
}

/// The value of `key:` in a config file's text.
fn config_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned()).filter(|v| !v.is_empty())
    })
}

#[derive(Debug)]
pub struct Client {
    server: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(connection: &Connection) -> anyhow::Result<Client> {
        let path = config_path();
        let file = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
        let shown =
            path.map(|p| p.display().to_string()).unwrap_or_else(|| "~/.config/bramble/config".into());
        let server = connection.server.clone().or_else(|| config_value(&file, "server")).with_context(|| {
            format!("no coordinator: pass --server http://HOST:6443, set BRAMBLE_SERVER, or write `server:` in {shown}")
        })?;
        let token = connection.token.clone().or_else(|| config_value(&file, "token")).with_context(|| {
            format!("no API token: pass --token, set BRAMBLE_TOKEN, or write `token:` in {shown} (the coordinator keeps it in DATA_DIR/api-token)")
        })?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(Client { server: server.trim_end_matches('/').to_owned(), token, agent })
    }

    fn answer(
        &self,
        what: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Value> {
        let mut response =
            result.with_context(|| format!("{what}: cannot reach the coordinator at {}", self.server))?;
        let status = response.status();
        let text =
            response.body_mut().read_to_string().with_context(|| format!("{what}: reading the answer"))?;
        let body: Value = serde_json::from_str(&text).with_context(|| {
            format!("{what}: the coordinator answered {status} with something that is not JSON")
        })?;
        if !status.is_success() {
            let message = body["message"].as_str().unwrap_or("no message");
            bail!("{message} ({} {})", status.as_u16(), body["reason"].as_str().unwrap_or(""));
        }
        Ok(body)
    }

    /// An answer read as it comes (`logs -f`, `exec`): no overall time limit, only for the
    /// answer to begin; an error status is reported as [`Client::answer`] does.
    fn opened(
        &self,
        what: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<ureq::Body> {
        let response =
            result.with_context(|| format!("{what}: cannot reach the coordinator at {}", self.server))?;
        if response.status().is_success() {
            return Ok(response.into_body());
        }
        let status = response.status();
        self.answer(what, Ok(response))?;
        bail!("{what}: the coordinator answered {status}")
    }

    /// GET whose answer is read as it comes.
    pub fn get_stream(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<ureq::Body> {
        let request = query.iter().fold(self.agent.get(self.url(path)), |r, (k, v)| r.query(*k, *v));
        let request = request.config().timeout_global(None).build();
        self.opened(&format!("GET {path}"), request.header("Authorization", self.bearer()).call())
    }

    /// POST whose answer is read as it comes.
    pub fn post_stream(&self, path: &str, body: &[u8]) -> anyhow::Result<ureq::Body> {
        let request = self.agent.post(self.url(path)).config().timeout_global(None).build();
        self.opened(&format!("POST {path}"), request.header("Authorization", self.bearer()).send(body))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let result = self.agent.get(self.url(path)).header("Authorization", self.bearer()).call();
        self.answer(&format!("GET {path}"), result)
    }

    /// GET of one object; `None` when the coordinator has no such object (404).
    pub fn get_if_present(&self, path: &str) -> anyhow::Result<Option<Value>> {
        let result = self.agent.get(self.url(path)).header("Authorization", self.bearer()).call();
        if let Ok(response) = &result
            && response.status() == ureq::http::StatusCode::NOT_FOUND
        {
            return Ok(None);
        }
        self.answer(&format!("GET {path}"), result).map(Some)
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let result = self.agent.delete(self.url(path)).header("Authorization", self.bearer()).call();
        self.answer(&format!("DELETE {path}"), result)
    }

    /// POST with query parameters (ureq encodes them).
    pub fn post(&self, path: &str, query: &[(&str, &str)], body: &[u8]) -> anyhow::Result<Value> {
        let request = query.iter().fold(self.agent.post(self.url(path)), |r, (k, v)| r.query(*k, *v));
        self.with_body(&format!("POST {path}"), request, body)
    }

    pub fn put(&self, path: &str, body: &[u8]) -> anyhow::Result<Value> {
        self.with_body(&format!("PUT {path}"), self.agent.put(self.url(path)), body)
    }

    pub fn patch(&self, path: &str, body: &[u8]) -> anyhow::Result<Value> {
        self.with_body(&format!("PATCH {path}"), self.agent.patch(self.url(path)), body)
    }

    fn with_body(
        &self,
        what: &str,
        request: ureq::RequestBuilder<ureq::typestate::WithBody>,
        body: &[u8],
    ) -> anyhow::Result<Value> {
        self.answer(what, request.header("Authorization", self.bearer()).send(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines() {
        let text = "# mine\nserver: http://hub:6443\ntoken:  abc \n";
        assert_eq!(config_value(text, "server").as_deref(), Some("http://hub:6443"));
        assert_eq!(config_value(text, "token").as_deref(), Some("abc"));
        assert_eq!(config_value(text, "other"), None);
        assert_eq!(config_value("token:\n", "token"), None);
    }
}
