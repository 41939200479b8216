#![no_main]
//! The scan-detection state machine never panics on any key stream, and in intercept mode it
//! never loses, duplicates or reorders a key: every key it takes it either drops as part of a
//! scan or gives back (replays), each device's keys in their original order.
//! Some keys "go past" the detector (the Windows hook was dropped) and are reported with
//! `input_lost` instead: the ups of such downs are given back at once (their downs already reached
//! the POS), everything else keeps the guarantee above.
use std::collections::{BTreeMap, BTreeSet};

use libfuzzer_sys::fuzz_target;
use till_agent::input::detect::{Action, DetectConfig, Detector};
use till_agent::input::keys::{Key, KeyEvent};

fuzz_target!(|data: &[u8]| {
    let intercept = data.first().is_some_and(|b| b & 1 == 1);
    // Bit 1 turns on a prefix key (KEY_F11 here: inside the fuzzed key range).
    let prefix = data.first().is_some_and(|b| b & 2 == 2).then_some(Key(87));
    let mut d = Detector::new(DetectConfig {
        intercept,
        prefix,
        ..DetectConfig::default()
    });
    let mut t = 0u64;
    let mut fed: BTreeMap<u32, Vec<KeyEvent>> = BTreeMap::new();
    // per device: keys whose latest down went past; their next fed up is exempt from ordering
    let mut leaked_down: BTreeMap<u32, BTreeSet<Key>> = BTreeMap::new();
    let mut leak_ups: BTreeMap<u32, Vec<KeyEvent>> = BTreeMap::new();
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
        let past = intercept && chunk[1] & 4 == 4 && !ev.injected;
        let ld = leaked_down.entry(ev.device).or_default();
        if past {
            if ev.down {
                ld.insert(ev.key);
            } else {
                ld.remove(&ev.key);
            }
            collect(d.input_lost(ev.device, &[ev]));
            continue;
        }
        if !ev.injected {
            if !ev.down && ld.remove(&ev.key) {
                leak_ups.entry(ev.device).or_default().push(ev);
            } else {
                if ev.down {
                    ld.remove(&ev.key);
                }
                fed.entry(ev.device).or_default().push(ev);
            }
        }
        collect(d.feed(ev));
    }
    collect(d.tick(t + 10_000));
    if intercept {
        for (dev, keys) in &fed {
            let ups = leak_ups.remove(dev).unwrap_or_default();
            let mut got = out.remove(dev).unwrap_or_default();
            for u in &ups {
                let i = got
                    .iter()
                    .position(|k| k == u)
                    .expect("the up of a key that went past was not given back");
                got.remove(i);
            }
            assert_eq!(
                &got, keys,
                "device {dev}: keys taken by the hook were lost, duplicated or reordered"
            );
        }
        for (dev, ups) in &leak_ups {
            assert_eq!(out.get(dev), Some(ups), "device {dev}: ups of keys that went past");
        }
        for (dev, got) in &out {
            assert!(
                fed.contains_key(dev) || leak_ups.contains_key(dev),
                "device {dev}: keys given back that were never taken: {got:?}"
            );
        }
    }
});
