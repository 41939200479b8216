//! New cards at the till: customer registration and migration-code pairing (issue 6).
//!
//! One path for the cashier's form (GUI) and the support CLI (`till-agent register` / `pair`):
//! what was typed → [`RegistrationForm::validate`] / [`validate_code`] (errors name the field)
//! → [`Request`] (with a fresh request id) → [`enqueue`] into the outbox as a
//! `SyncPayload::Registration` / `MigrationPairing` item → the replicator sends it like any
//! receipt (idempotent by request id on the server) and logs the server's ack.
//!
//! The running agent gets GUI requests as `runtime::Command::Enrol`; the CLI writes into the
//! same `outbox.db` directly (the running agent's replicator looks for due items at least every
//! 5 s, so items queued by another process are sent without a restart).
use chrono::{Datelike, NaiveDate};
use protocol::v1::{Consents, Contact, CustomerName, MigrationPairing, Registration, SyncItem, SyncPayload};
use protocol::{CardId, StoreId, TillId};

use crate::sync::outbox::Outbox;
use crate::synclog::SyncLog;

/// Longest value accepted in a text field (names, e-mail, code).
pub const MAX_LEN: usize = 100;

/// A field of the registration / migration-code form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    FirstName,
    Surname,
    CompanyName,
    Email,
    Phone,
    Birthday,
    ConsentRules,
    Code,
}

impl Field {
    /// The wire name (`body.name.first_name` …) of the field, used in logs and the CLI.
    pub fn key(self) -> &'static str {
        match self {
            Field::FirstName => "first_name",
            Field::Surname => "surname",
            Field::CompanyName => "company_name",
            Field::Email => "email",
            Field::Phone => "phone",
            Field::Birthday => "birthday",
            Field::ConsentRules => "consent_rules",
            Field::Code => "code",
        }
    }

    /// The `till-agent register|pair` option that fills the field.
    pub fn cli_flag(self) -> &'static str {
        match self {
            Field::FirstName => "--first-name (or --name)",
            Field::Surname => "--surname (or --name)",
            Field::CompanyName => "--company",
            Field::Email => "--email",
            Field::Phone => "--phone",
            Field::Birthday => "--birthday",
            Field::ConsentRules => "--consent",
            Field::Code => "--code",
        }
    }
}

/// What is wrong with a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    Required,
    TooLong,
    ControlChars,
    NotEmail,
    NotPhone,
    NotDate,
    DateOutOfRange,
    ConsentRequired,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: Field,
    pub problem: Problem,
}

impl FieldError {
    fn new(field: Field, problem: Problem) -> FieldError {
        FieldError { field, problem }
    }

    /// English text (CLI, logs); the form shows `ui::i18n::field_error` in the cashier's language.
    pub fn english(&self) -> String {
        let what = match self.problem {
            Problem::Required => "is required".to_string(),
            Problem::TooLong => format!("is longer than {MAX_LEN} characters"),
            Problem::ControlChars => "contains control characters".into(),
            Problem::NotEmail => "is not an e-mail address (name@domain.tld)".into(),
            Problem::NotPhone => "is not a phone number (6–15 digits, optional +, spaces, dashes)".into(),
            Problem::NotDate => "is not a date (YYYY-MM-DD or D.M.YYYY)".into(),
            Problem::DateOutOfRange => "is not a plausible birthday (1900 … today)".into(),
            Problem::ConsentRequired => "must be given: consent to the program rules is required to enrol".into(),
        };
        format!("{} {what}", self.field.key())
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.english())
    }
}

/// The registration form as typed (GUI text fields or CLI options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrationForm {
    /// A company card: `company_name` instead of first name + surname.
    pub company: bool,
    pub first_name: String,
    pub surname: String,
    pub company_name: String,
    pub email: String,
    pub phone: String,
    pub birthday: String,
    pub consent_rules: bool,
    pub consent_marketing: bool,
}

/// A validated registration (everything of `protocol::v1::Registration` the cashier fills).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Details {
    pub name: CustomerName,
    pub contact: Contact,
    pub consents: Consents,
    pub birthday: Option<NaiveDate>,
}

fn text(field: Field, v: &str, required: bool, errors: &mut Vec<FieldError>) -> Option<String> {
    let v = v.trim();
    if v.is_empty() {
        if required {
            errors.push(FieldError::new(field, Problem::Required));
        }
        return None;
    }
    if v.chars().count() > MAX_LEN {
        errors.push(FieldError::new(field, Problem::TooLong));
        return None;
    }
    if v.chars().any(char::is_control) {
        errors.push(FieldError::new(field, Problem::ControlChars));
        return None;
    }
    Some(v.to_string())
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

fn is_phone(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let body = s.strip_prefix('+').unwrap_or(s);
    (6..=15).contains(&digits)
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '/' | '(' | ')'))
}

/// `1985-03-07`, `7.3.1985`, `7. 3. 1985`, `07.03.1985.` (Croatian trailing dot).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d);
    }
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let compact = compact.strip_suffix('.').unwrap_or(&compact);
    let parts: Vec<&str> = compact.split('.').collect();
    if let [d, m, y] = parts[..] {
        if y.len() == 4 {
            return NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        }
    }
    None
}

impl RegistrationForm {
    /// Check every field; all problems at once, in form order. `today` bounds the birthday.
    pub fn validate(&self, today: NaiveDate) -> Result<Details, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = if self.company {
            text(Field::CompanyName, &self.company_name, true, &mut errors)
                .map(|company_name| CustomerName::Company { company_name })
        } else {
            let first = text(Field::FirstName, &self.first_name, true, &mut errors);
            let last = text(Field::Surname, &self.surname, true, &mut errors);
            first
                .zip(last)
                .map(|(first_name, surname)| CustomerName::Person { first_name, surname })
        };
        let email = text(Field::Email, &self.email, false, &mut errors);
        if email.as_deref().is_some_and(|e| !is_email(e)) {
            errors.push(FieldError::new(Field::Email, Problem::NotEmail));
        }
        let phone = text(Field::Phone, &self.phone, false, &mut errors);
        if phone.as_deref().is_some_and(|p| !is_phone(p)) {
            errors.push(FieldError::new(Field::Phone, Problem::NotPhone));
        }
        let birthday = match text(Field::Birthday, &self.birthday, false, &mut errors) {
            None => None,
            Some(b) => match parse_date(&b) {
                None => {
                    errors.push(FieldError::new(Field::Birthday, Problem::NotDate));
                    None
                }
                Some(d) if d > today || d.year() < 1900 => {
                    errors.push(FieldError::new(Field::Birthday, Problem::DateOutOfRange));
                    None
                }
                Some(d) => Some(d),
            },
        };
        if !self.consent_rules {
            errors.push(FieldError::new(Field::ConsentRules, Problem::ConsentRequired));
        }
        match name {
            Some(name) if errors.is_empty() => Ok(Details {
                name,
                contact: Contact {
                    email,
                    phone,
                    address: None,
                },
                consents: Consents {
                    program_rules: true,
                    marketing: self.consent_marketing,
                },
                birthday,
            }),
            _ => Err(errors),
        }
    }
}

/// A migration code as typed: trimmed, required, one word.
pub fn validate_code(code: &str) -> Result<String, FieldError> {
    let mut errors = Vec::new();
    let c = text(Field::Code, code, true, &mut errors);
    if let Some(e) = errors.pop() {
        return Err(e);
    }
    let c = c.unwrap_or_default();
    if c.chars().any(char::is_whitespace) {
        return Err(FieldError::new(Field::Code, Problem::ControlChars));
    }
    Ok(c)
}

/// What the cashier (or support) asked for, ready to queue. Carries its request id, so the
/// same request queued twice is one item (and one customer on the server). Serde: it travels from
/// the session app to the service (`ipc`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    Register {
        request_id: String,
        card: CardId,
        details: Details,
    },
    Pair {
        request_id: String,
        card: CardId,
        code: String,
    },
}

/// `reg-<32 hex>` / `pair-<32 hex>`: random, so two tills never collide.
pub fn new_request_id(prefix: &str) -> String {
    format!("{prefix}-{:032x}", rand::random::<u128>())
}

impl Request {
    pub fn register(card: CardId, details: Details) -> Request {
        Request::Register {
            request_id: new_request_id("reg"),
            card,
            details,
        }
    }

    pub fn pair(card: CardId, code: String) -> Request {
        Request::Pair {
            request_id: new_request_id("pair"),
            card,
            code,
        }
    }

    pub fn request_id(&self) -> &str {
        match self {
            Request::Register { request_id, .. } | Request::Pair { request_id, .. } => request_id,
        }
    }

    pub fn card(&self) -> &CardId {
        match self {
            Request::Register { card, .. } | Request::Pair { card, .. } => card,
        }
    }

    /// The registration with its phone number in E.164, national numbers read in `phone_country`
    /// (the till's; see `lookup::till_phone_country`): what the server stores and hashes for the
    /// phone search, the same on every till of the chain whatever its country.
    pub fn with_e164_phone(self, phone_country: &str) -> Result<Request, protocol::contact::ContactError> {
        match self {
            Request::Register {
                request_id,
                card,
                mut details,
            } => {
                if let Some(p) = details.contact.phone.take() {
                    details.contact.phone = Some(protocol::contact::normalise_phone(&p, phone_country)?);
                }
                Ok(Request::Register {
                    request_id,
                    card,
                    details,
                })
            }
            pair @ Request::Pair { .. } => Ok(pair),
        }
    }

    /// `registration` / `migration pairing` (log lines).
    pub fn what(&self) -> &'static str {
        match self {
            Request::Register { .. } => "registration",
            Request::Pair { .. } => "migration pairing",
        }
    }

    /// The outbox item (item id = request id, as the server requires).
    pub fn to_item(&self, store_id: &StoreId, till_id: &TillId) -> SyncItem {
        let payload = match self.clone() {
            Request::Register {
                request_id,
                card,
                details,
            } => SyncPayload::Registration(Registration {
                request_id,
                card,
                name: details.name,
                contact: details.contact,
                consents: details.consents,
                birthday: details.birthday,
                store_id: store_id.clone(),
                till_id: till_id.clone(),
            }),
            Request::Pair { request_id, card, code } => SyncPayload::MigrationPairing(MigrationPairing {
                request_id,
                card,
                code,
                store_id: store_id.clone(),
                till_id: till_id.clone(),
            }),
        };
        SyncItem {
            item_id: self.request_id().to_string(),
            payload,
        }
    }
}

/// Queue `req` in the outbox (its phone in E.164, national numbers in `phone_country`) and write
/// a sync-log line (card masked). Returns false when the request id was already queued (nothing
/// changed). The caller wakes the replicator.
pub fn enqueue(
    outbox: &mut Outbox,
    log: &SyncLog,
    req: &Request,
    store_id: &StoreId,
    till_id: &TillId,
    phone_country: &str,
) -> anyhow::Result<bool> {
    let item = req.clone().with_e164_phone(phone_country)?.to_item(store_id, till_id);
    let new = outbox.enqueue(&item)?;
    let msg = if new {
        format!("{} for card {} queued for the server", req.what(), req.card())
    } else {
        format!("{} for card {} was already queued", req.what(), req.card())
    };
    log.info("enrol", Some(req.request_id()), &msg);
    Ok(new)
}

/// The sync-log line for the server's answer to a registration / pairing item, if it is one.
pub fn ack_message(payload: &SyncPayload, result: &protocol::v1::AckResult) -> Option<String> {
    use protocol::v1::AckResult;
    let (what, card) = match payload {
        SyncPayload::Registration(r) => ("registration", &r.card),
        SyncPayload::MigrationPairing(p) => ("migration pairing", &p.card),
        SyncPayload::Redemption(r) => ("offline redemption", &r.card),
        SyncPayload::ReceiptTag(t) => ("receipt tag", &t.card),
        SyncPayload::Receipt(_) | SyncPayload::MessageAck(_) => return None,
    };
    Some(match result {
        AckResult::Applied => format!("{what} for card {card} applied on the server"),
        AckResult::Duplicate => format!("{what} for card {card} was already applied on the server"),
        AckResult::Rejected { code, reason } => {
            format!("{what} for card {card} refused by the server: {code}: {reason}")
        }
        AckResult::Retry { reason } => format!("{what} for card {card} not applied yet: {reason}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::v1::AckResult;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }
    fn card() -> CardId {
        CardId::normalise("1900000009001016").unwrap()
    }
    fn person() -> RegistrationForm {
        RegistrationForm {
            first_name: " Jiří ".into(),
            surname: "Dvořák".into(),
            consent_rules: true,
            ..Default::default()
        }
    }
    fn fields(e: &[FieldError]) -> Vec<(Field, Problem)> {
        e.iter().map(|e| (e.field, e.problem)).collect()
    }

    #[test]
    fn minimal_person_is_valid_and_trimmed() {
        let d = person().validate(today()).unwrap();
        assert_eq!(
            d.name,
            CustomerName::Person {
                first_name: "Jiří".into(),
                surname: "Dvořák".into()
            }
        );
        assert_eq!(d.name.display(), "Jiří Dvořák");
        assert_eq!(d.contact, Contact::default());
        assert_eq!(
            d.consents,
            Consents {
                program_rules: true,
                marketing: false
            }
        );
        assert_eq!(d.birthday, None);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let f = RegistrationForm {
            email: "jiri.example.cz".into(),
            phone: "12ab".into(),
            birthday: "31.2.1980".into(),
            ..Default::default()
        };
        let e = f.validate(today()).unwrap_err();
        assert_eq!(
            fields(&e),
            vec![
                (Field::FirstName, Problem::Required),
                (Field::Surname, Problem::Required),
                (Field::Email, Problem::NotEmail),
                (Field::Phone, Problem::NotPhone),
                (Field::Birthday, Problem::NotDate),
                (Field::ConsentRules, Problem::ConsentRequired),
            ]
        );
        assert_eq!(e[2].to_string(), "email is not an e-mail address (name@domain.tld)");
        let f = RegistrationForm {
            company: true,
            first_name: "ignored".into(),
            consent_rules: true,
            ..Default::default()
        };
        assert_eq!(
            fields(&f.validate(today()).unwrap_err()),
            vec![(Field::CompanyName, Problem::Required)]
        );
        let f = RegistrationForm {
            surname: "x".repeat(MAX_LEN + 1),
            ..person()
        };
        assert_eq!(
            fields(&f.validate(today()).unwrap_err()),
            vec![(Field::Surname, Problem::TooLong)]
        );
        let f = RegistrationForm {
            first_name: "a\u{7}b".into(),
            ..person()
        };
        assert_eq!(
            fields(&f.validate(today()).unwrap_err()),
            vec![(Field::FirstName, Problem::ControlChars)]
        );
        let f = RegistrationForm {
            birthday: "2027-01-01".into(),
            ..person()
        };
        assert_eq!(
            fields(&f.validate(today()).unwrap_err()),
            vec![(Field::Birthday, Problem::DateOutOfRange)]
        );
        let f = RegistrationForm {
            birthday: "1.1.1850".into(),
            ..person()
        };
        assert_eq!(
            fields(&f.validate(today()).unwrap_err()),
            vec![(Field::Birthday, Problem::DateOutOfRange)]
        );
    }

    #[test]
    fn full_form_and_date_formats() {
        let f = RegistrationForm {
            email: " jiri@example.cz ".into(),
            phone: "+420 603 123-456".into(),
            birthday: "7. 3. 1985".into(),
            consent_marketing: true,
            ..person()
        };
        let d = f.validate(today()).unwrap();
        assert_eq!(d.contact.email.as_deref(), Some("jiri@example.cz"));
        assert_eq!(d.contact.phone.as_deref(), Some("+420 603 123-456"));
        assert_eq!(d.birthday, NaiveDate::from_ymd_opt(1985, 3, 7));
        assert!(d.consents.marketing);
        for s in ["1985-03-07", "7.3.1985", "07.03.1985.", " 7. 3. 1985 "] {
            assert_eq!(parse_date(s), NaiveDate::from_ymd_opt(1985, 3, 7), "{s}");
        }
        for s in ["1985/03/07", "7.3.85", "x", "32.1.1985"] {
            assert_eq!(parse_date(s), None, "{s}");
        }
        let c = RegistrationForm {
            company: true,
            company_name: "Pekařství Novák s.r.o.".into(),
            consent_rules: true,
            ..Default::default()
        };
        assert_eq!(
            c.validate(today()).unwrap().name,
            CustomerName::Company {
                company_name: "Pekařství Novák s.r.o.".into()
            }
        );
    }

    #[test]
    fn migration_code() {
        assert_eq!(validate_code("  KLUB-4821 ").unwrap(), "KLUB-4821");
        assert_eq!(
            validate_code(" ").unwrap_err(),
            FieldError::new(Field::Code, Problem::Required)
        );
        assert_eq!(validate_code("KLUB 4821").unwrap_err().field, Field::Code);
    }

    #[test]
    fn request_maps_onto_the_wire_payload() {
        let (store, till) = (StoreId::new("CZ-PRG-01"), TillId::new("T1"));
        let r = Request::register(card(), person().validate(today()).unwrap());
        assert!(
            r.request_id().starts_with("reg-") && r.request_id().len() == 36,
            "{}",
            r.request_id()
        );
        let item = r.to_item(&store, &till);
        assert_eq!(item.item_id, r.request_id());
        let SyncPayload::Registration(reg) = &item.payload else {
            panic!("{item:?}")
        };
        assert_eq!((reg.request_id.as_str(), &reg.card), (r.request_id(), &card()));
        assert_eq!((reg.store_id.as_str(), reg.till_id.as_str()), ("CZ-PRG-01", "T1"));
        assert_eq!(reg.name.display(), "Jiří Dvořák");
        assert!(reg.consents.program_rules);
        // The JSON the server gets (deny_unknown_fields on its side).
        let j = serde_json::to_value(&item).unwrap();
        assert_eq!(j["type"], "registration");
        assert_eq!(
            j["body"]["name"],
            serde_json::json!({"type": "person", "first_name": "Jiří", "surname": "Dvořák"})
        );
        assert_eq!(j["body"]["card"], "1900000009001016");

        let p = Request::pair(card(), "KLUB-4821".into());
        assert!(p.request_id().starts_with("pair-"));
        assert_ne!(
            Request::pair(card(), "K".into()).request_id(),
            Request::pair(card(), "K".into()).request_id()
        );
        let item = p.to_item(&store, &till);
        let SyncPayload::MigrationPairing(mp) = &item.payload else {
            panic!()
        };
        assert_eq!(
            (mp.code.as_str(), mp.request_id.as_str()),
            ("KLUB-4821", p.request_id())
        );
        assert_eq!(item.item_id, p.request_id());
    }

    #[test]
    fn a_registration_is_queued_with_its_phone_in_e164_read_in_the_tills_country() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("outbox.db");
        let mut o = Outbox::open(&db).unwrap();
        let log = SyncLog::open(&db).unwrap();
        let (store, till) = (StoreId::new("S"), TillId::new("T"));
        let phone_of = |typed: &str, country: &str| {
            let f = RegistrationForm {
                phone: typed.into(),
                ..person()
            };
            let r = Request::register(card(), f.validate(today()).unwrap());
            r.with_e164_phone(country).map(|r| match r {
                Request::Register { details, .. } => details.contact.phone,
                Request::Pair { .. } => unreachable!(),
            })
        };
        assert_eq!(
            phone_of("0903 123 456", "SK").unwrap().as_deref(),
            Some("+421903123456")
        );
        assert_eq!(phone_of("603 123 456", "CZ").unwrap().as_deref(), Some("+420603123456"));
        assert_eq!(
            phone_of("+420 603 123-456", "SK").unwrap().as_deref(),
            Some("+420603123456")
        );
        assert!(
            phone_of("0 12345", "SK").is_err(),
            "too short once the trunk 0 is dropped"
        );
        // No phone stays none; a pairing has none to change.
        let r = Request::register(card(), person().validate(today()).unwrap());
        let Request::Register { details, .. } = r.clone().with_e164_phone("SK").unwrap() else {
            panic!()
        };
        assert_eq!(details.contact.phone, None);
        let p = Request::pair(card(), "KLUB-4821".into());
        assert_eq!(p.clone().with_e164_phone("SK").unwrap(), p);
        // What reaches the outbox.
        let f = RegistrationForm {
            phone: "0903/123 456".into(),
            ..person()
        };
        let r = Request::register(card(), f.validate(today()).unwrap());
        assert!(enqueue(&mut o, &log, &r, &store, &till, "SK").unwrap());
        let due = o.due(10, i64::MAX).unwrap();
        let SyncPayload::Registration(reg) = &due[0].payload().unwrap() else {
            panic!("{:?}", due[0].payload)
        };
        assert_eq!(reg.contact.phone.as_deref(), Some("+421903123456"));
    }

    #[test]
    fn enqueue_is_idempotent_and_logs_masked() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("outbox.db");
        let mut o = Outbox::open(&db).unwrap();
        let log = SyncLog::open(&db).unwrap();
        let (store, till) = (StoreId::new("S"), TillId::new("T"));
        let r = Request::pair(card(), "KLUB-4821".into());
        assert!(enqueue(&mut o, &log, &r, &store, &till, "CZ").unwrap());
        assert!(!enqueue(&mut o, &log, &r, &store, &till, "CZ").unwrap());
        let due = o.due(10, i64::MAX).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].item().unwrap(), r.to_item(&store, &till));
        let lines = o.log_tail(10).unwrap();
        assert!(
            lines.iter().any(|l| l.kind == "enrol"
                && l.message == "migration pairing for card 1900-****-****-1016 queued for the server"),
            "{lines:?}"
        );
        assert!(lines.iter().all(|l| !l.message.contains("1900000009001016")));
    }

    #[test]
    fn ack_messages_name_the_request() {
        let r = Request::register(card(), person().validate(today()).unwrap())
            .to_item(&StoreId::new("S"), &TillId::new("T"));
        assert_eq!(
            ack_message(&r.payload, &AckResult::Applied).unwrap(),
            "registration for card 1900-****-****-1016 applied on the server"
        );
        let rej = AckResult::Rejected {
            code: "card_taken".into(),
            reason: "body.card already belongs to a customer".into(),
        };
        assert!(ack_message(&r.payload, &rej)
            .unwrap()
            .ends_with("refused by the server: card_taken: body.card already belongs to a customer"));
    }
}
