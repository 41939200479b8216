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
    // per device: the ups of keys that went past, each with where the output of its own feed
    // begins (it is given back at once: found from there, not mistaken for an equal earlier key)
    let mut leak_ups: BTreeMap<u32, Vec<(KeyEvent, usize)>> = BTreeMap::new();
    let mut out: BTreeMap<u32, Vec<KeyEvent>> = BTreeMap::new();
    fn collect(out: &mut BTreeMap<u32, Vec<KeyEvent>>, actions: Vec<Action>) {
        for a in actions {
            if let Action::Replay(keys) | Action::Swallow(keys) = a {
                for k in keys {
                    out.entry(k.device).or_default().push(k);
                }
            }
        }
    }
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
            collect(&mut out, d.input_lost(ev.device, &[ev]));
            continue;
        }
        if !ev.injected {
            if !ev.down && ld.remove(&ev.key) {
                let at = out.get(&ev.device).map_or(0, Vec::len);
                leak_ups.entry(ev.device).or_default().push((ev, at));
            } else {
                if ev.down {
                    ld.remove(&ev.key);
                }
                fed.entry(ev.device).or_default().push(ev);
            }
        }
        collect(&mut out, d.feed(ev));
    }
    collect(&mut out, d.tick(t + 10_000));
    if intercept {
        for (dev, keys) in &fed {
            let ups = leak_ups.remove(dev).unwrap_or_default();
            let mut got = out.remove(dev).unwrap_or_default();
            // Latest first: removing one does not move where an earlier one is.
            for (u, at) in ups.iter().rev() {
                let i = got
                    .iter()
                    .skip(*at)
                    .position(|k| k == u)
                    .expect("the up of a key that went past was not given back when it came");
                got.remove(at + i);
            }
            assert_eq!(
                &got, keys,
                "device {dev}: keys taken by the hook were lost, duplicated or reordered"
            );
        }
        for (dev, ups) in &leak_ups {
            let ups: Vec<KeyEvent> = ups.iter().map(|(u, _)| *u).collect();
            assert_eq!(out.get(dev), Some(&ups), "device {dev}: ups of keys that went past");
        }
        for (dev, got) in &out {
            assert!(
                fed.contains_key(dev) || leak_ups.contains_key(dev),
                "device {dev}: keys given back that were never taken: {got:?}"
            );
        }
    }
});
