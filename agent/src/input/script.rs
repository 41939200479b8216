//! A tiny key-event script language (kanata style) to test the scan detector without any OS hook:
//!
//! ```text
//! # comment to end of line
//! dev:3           set the source device for the following events (default 1)
//! d:KEY_1         key down            u:KEY_1   key up
//! t:8             advance the clock by 8 ms
//! inj:1           following events are marked injected (our own replays); inj:0 ends that
//! ```
//!
//! Tokens are separated by whitespace. Errors name the line, the token and what is wrong.

use super::keys::{Key, KeyEvent};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("trace line {line}: token {token:?}: {message}")]
pub struct ScriptError {
    pub line: usize,
    pub token: String,
    pub message: String,
}

pub fn parse(text: &str) -> Result<Vec<KeyEvent>, ScriptError> {
    let mut out = Vec::new();
    let mut now = 0u64;
    let mut device = 1u32;
    let mut injected = false;
    for (i, raw_line) in text.lines().enumerate() {
        let line = raw_line.split('#').next().unwrap_or("");
        for tok in line.split_whitespace() {
            let err = |message: String| ScriptError {
                line: i + 1,
                token: tok.to_string(),
                message,
            };
            let (op, arg) = tok
                .split_once(':')
                .ok_or_else(|| err("expected op:arg (d:, u:, t:, dev:, inj:)".into()))?;
            match op {
                "d" | "u" => {
                    let key = Key::from_name(arg).ok_or_else(|| err(format!("unknown key name {arg:?}")))?;
                    out.push(KeyEvent {
                        time_ms: now,
                        device,
                        key,
                        down: op == "d",
                        injected,
                    });
                }
                "t" => {
                    now += arg
                        .parse::<u64>()
                        .map_err(|e| err(format!("time advance must be whole milliseconds: {e}")))?
                }
                "dev" => device = arg.parse().map_err(|e| err(format!("device must be a number: {e}")))?,
                "inj" => {
                    injected = match arg {
                        "1" => true,
                        "0" => false,
                        _ => return Err(err("inj: takes 0 or 1".into())),
                    }
                }
                _ => return Err(err(format!("unknown op {op:?} (d, u, t, dev, inj)"))),
            }
        }
    }
    Ok(out)
}

/// Render events back into the script language (for `reader-test` recordings and fixtures).
pub fn render(events: &[KeyEvent]) -> String {
    let mut out = Vec::new();
    let mut now = events.first().map(|e| e.time_ms).unwrap_or(0);
    let mut device = 1;
    for e in events {
        if e.device != device {
            out.push(format!("dev:{}", e.device));
            device = e.device;
        }
        if e.time_ms > now {
            out.push(format!("t:{}", e.time_ms - now));
            now = e.time_ms;
        }
        out.push(format!("{}:{}", if e.down { "d" } else { "u" }, e.key.name()));
    }
    out.join(" ")
}

/// How a scanner (or a person) types `text` on a US-programmed device: per character
/// (shift down), key down, `hold` ms, key up, (shift up), then `gaps[i]` ms to the next key-down
/// (the last gap leads to the Enter key). `gaps` cycles if shorter than the text.
pub fn typed(text: &str, gaps: &[u64], hold: u64, device: u32, enter: bool) -> String {
    let mut s = vec![format!("dev:{device}")];
    let n = text.chars().count();
    for (i, c) in text.chars().enumerate() {
        let (key, shift) = Key::for_us_char(c).unwrap_or_else(|| panic!("{c:?} cannot be typed on a US layout"));
        let gap = gaps[i % gaps.len()];
        if shift {
            s.push("d:KEY_LEFTSHIFT t:1".into());
        }
        s.push(format!("d:{} t:{hold} u:{}", key.name(), key.name()));
        let mut rest = gap.saturating_sub(hold);
        if shift {
            s.push("u:KEY_LEFTSHIFT".into());
            rest = rest.saturating_sub(1);
        }
        if i + 1 < n || enter {
            s.push(format!("t:{rest}"));
        }
    }
    if enter {
        s.push(format!("d:KEY_ENTER t:{hold} u:KEY_ENTER"));
    }
    s.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ops_and_times() {
        let ev = parse("d:KEY_1 t:8 u:KEY_1 # comment\n dev:3 t:2 d:KEY_ENTER inj:1 u:ENTER").unwrap();
        assert_eq!(ev.len(), 4);
        assert_eq!((ev[0].time_ms, ev[0].device, ev[0].down), (0, 1, true));
        assert_eq!((ev[1].time_ms, ev[1].down), (8, false));
        assert_eq!((ev[2].time_ms, ev[2].device, ev[2].key), (10, 3, Key::ENTER));
        assert!(ev[3].injected && !ev[2].injected);
    }

    #[test]
    fn errors_name_line_and_token() {
        let e = parse("d:KEY_1\nd:KEY_BOGUS").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.token, "d:KEY_BOGUS");
        assert!(e.to_string().contains("unknown key name"), "{e}");
        assert!(parse("t:x").unwrap_err().message.contains("milliseconds"));
        assert!(parse("q:1").unwrap_err().message.contains("unknown op"));
        assert!(parse("KEY_1").unwrap_err().message.contains("op:arg"));
    }

    #[test]
    fn typed_and_render_round_trip() {
        let s = typed("A1", &[10], 3, 2, true);
        let ev = parse(&s).unwrap();
        let downs: Vec<String> = ev.iter().filter(|e| e.down).map(|e| e.key.name()).collect();
        assert_eq!(downs, ["KEY_LEFTSHIFT", "KEY_A", "KEY_1", "KEY_ENTER"]);
        assert_eq!(parse(&render(&ev)).unwrap(), ev);
    }
}
