#![no_main]
//! The scan-detection state machine never panics on any key stream, and in intercept mode it
//! never loses, duplicates or reorders a key: every key it takes it either drops as part of a
//! scan or gives back (replays), each device's keys in their original order.
use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use till_agent::input::detect::{Action, DetectConfig, Detector};
use till_agent::input::keys::{Key, KeyEvent};

fuzz_target!(|data: &[u8]| {
    let intercept = data.first().is_some_and(|b| b & 1 == 1);
    // Bit 1 turns on a prefix key (KEY_F11 here: inside the fuzzed key range).
    let prefix = data.first().is_some_and(|b| b & 2 == 2).then_some(Key(87));
    let mut d = Detector::new(DetectConfig { intercept, prefix, ..DetectConfig::default() });
    let mut t = 0u64;
    let mut fed: BTreeMap<u32, Vec<KeyEvent>> = BTreeMap::new();
    let mut out: BTreeMap<u32, Vec<KeyEvent>> = BTreeMap::new();
    let mut collect = |actions: Vec<Action>| {
        for a in actions {
            if let Action::Replay(keys) | Action::Swallow(keys) = a {
                for k in keys {
                    out.entry(k.device).or_default().push(k);
                }
            }
        }
    };
    for chunk in data[1.min(data.len())..].chunks_exact(3) {
        t += u64::from(chunk[0]);
        let ev = KeyEvent {
            time_ms: t,
            device: u32::from(chunk[1] >> 6),
            key: Key(u16::from(chunk[2] % 128)),
            down: chunk[1] & 1 == 0,
            injected: chunk[1] & 2 == 2,
        };
        if !ev.injected {
            fed.entry(ev.device).or_default().push(ev);
        }
        collect(d.feed(ev));
    }
    collect(d.tick(t + 10_000));
    if intercept {
        for (dev, keys) in &fed {
            let got = out.get(dev).cloned().unwrap_or_default();
            assert_eq!(&got, keys, "device {dev}: keys taken by the hook were lost, duplicated or reordered");
        }
    }
});
