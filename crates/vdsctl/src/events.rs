//! `vdsctl events`: follows `GET /v1/events` (text/event-stream) and prints one line per event.
//!
//! The parser is a small line-fed state machine (only `data:` fields matter here; comments are
//! keep-alives), so it is tested without a server.

use std::io::{BufRead, BufReader};

use serde_json::Value;

use crate::client::Client;
use crate::error::CliError;
use crate::render::scalar;

/// Accumulates `data:` lines until the blank line that ends an event.
#[derive(Debug, Default)]
pub struct SseParser {
    data: Vec<String>,
}

impl SseParser {
    /// Feeds one line (without its line ending); returns the event's data when the line ends one.
    pub fn feed(&mut self, line: &str) -> Option<String> {
        if line.is_empty() {
            if self.data.is_empty() {
                return None;
            }
            let data = self.data.join("\n");
            self.data.clear();
            return Some(data);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            self.data.push(value.to_string());
        }
        None
    }
}

/// One event as a human line: `TIME  OBJECT_TYPE  EVENT  CODE  ID`.
pub fn human_line(data: &str) -> String {
    match serde_json::from_str::<Value>(data) {
        Ok(v) if v.get("lagged").is_some() => format!(
            "warning: this stream fell behind and missed {} events",
            v["lagged"]
        ),
        Ok(v) => {
            let f = |k: &str| v.get(k).map(scalar).unwrap_or_else(|| "-".into());
            format!(
                "{}  {:<12}  {:<7}  {:>3}  {}",
                f("time"),
                f("object_type"),
                f("event"),
                f("code"),
                f("id")
            )
        }
        Err(_) => data.to_string(),
    }
}

/// Follows the stream until it ends (then the API is gone: exit 3).
pub fn follow(client: &Client, json: bool, out: &mut dyn FnMut(&str)) -> Result<(), CliError> {
    let reader = BufReader::new(client.stream("/v1/events")?);
    let mut parser = SseParser::default();
    for line in reader.lines() {
        let line = line.map_err(|e| CliError::Unreachable(format!("event stream: {e}")))?;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if let Some(data) = parser.feed(line) {
            if json {
                out(&data);
            } else {
                out(&human_line(&data));
            }
        }
    }
    Err(CliError::Unreachable("the event stream was closed".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_end_at_blank_lines_and_comments_are_ignored() {
        let mut p = SseParser::default();
        assert_eq!(p.feed(": keep-alive"), None);
        assert_eq!(p.feed(""), None);
        assert_eq!(p.feed("event: lun"), None);
        assert_eq!(p.feed("data: {\"code\":110}"), None);
        assert_eq!(p.feed(""), Some("{\"code\":110}".into()));
        assert_eq!(p.feed("data:a"), None);
        assert_eq!(p.feed("data: b"), None);
        assert_eq!(p.feed(""), Some("a\nb".into()));
    }

    #[test]
    fn human_line_has_the_fields() {
        let l = human_line(
            r#"{"object_type":"lun","event":"modify","code":110,"id":"u1","time":"2024-01-01T00:00:00Z"}"#,
        );
        assert_eq!(l, "2024-01-01T00:00:00Z  lun           modify   110  u1");
        assert_eq!(
            human_line(r#"{"lagged":3}"#),
            "warning: this stream fell behind and missed 3 events"
        );
    }
}
