#![no_main]
//! The card payload decoder never panics, and never carries a payment card's number out.
use libfuzzer_sys::fuzz_target;
use till_agent::events::Classified;
use till_agent::input::payload::classify;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let c = classify(&raw, &protocol::CardPolicy::default());
    if let Classified::PaymentCard { last4 } = &c {
        assert!(
            last4.len() <= 4,
            "payment card classification carries more than 4 digits"
        );
        let json = format!("{c:?}");
        let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
        if digits.len() >= 12 {
            assert!(
                !json.contains(&digits[..12]),
                "payment card number leaked into the classification"
            );
        }
    }
});
