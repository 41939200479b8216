//! "Find customer…" (a small search box: card number, phone or e-mail → the same popup as a scan)
//! and "Add purchase to card…" (POS receipt number, date, optional total, card → a receipt tag in
//! the outbox). Both are normal windows that may take the keyboard focus while open (the cashier
//! asked for them) and give it back to the POS when they close (`gui.rs` remembers the window).
//!
//! The search box sends `UiRequest::Find` and waits for `AgentEvent::Lookup` with its request id:
//! found → it closes and the popup shows the quote; not found / bad input → the reason in the box.
//! The tag form sends `UiRequest::Tag`, waits for `AgentEvent::Tag`: queued → says so and closes;
//! refused → the reason in the form. A card scanned while the tag form is open goes into its card
//! field (`TagForm::scanned`), whatever field has the focus, and no popup is shown for it.
//! Widgets are logged with their rectangles (`forms::RectLog`): `find.query`, `find.search`,
//! `find.close`, `tag.receipt`, `tag.date`, `tag.total`, `tag.card`, `tag.submit`, `tag.cancel`.
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Color32, RichText};
use protocol::CardId;

use super::find_i18n::{fx, Fx};
use super::forms::RectLog;
use super::i18n::Lang;
use super::{TagInput, UiRequest};
use crate::tag::{TagError, TagField, TagProblem};

const RED: Color32 = Color32::from_rgb(0xc6, 0x28, 0x28);
const GREEN: Color32 = Color32::from_rgb(0x2e, 0x7d, 0x32);
/// How long "added" stays on screen before the tag form closes.
const QUEUED_SHOWN: Duration = Duration::from_millis(1500);

fn request_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum State {
    Editing,
    /// Sent; waiting for the answer to request `.0`.
    Waiting(String),
    Done(Instant),
    Failed(String),
}

impl State {
    /// The answer for request `request_id`: Done or Failed when it is the one we wait for
    /// (true), else nothing changes (false).
    fn answer(&mut self, request_id: &str, error: Option<&str>) -> bool {
        if *self != State::Waiting(request_id.to_string()) {
            return false;
        }
        *self = match error {
            None => State::Done(Instant::now()),
            Some(e) => State::Failed(e.to_string()),
        };
        true
    }
}

pub(super) struct FindBox {
    pub query: String,
    pub state: State,
    focus_set: bool,
    rects: RectLog,
}

impl FindBox {
    pub fn new() -> FindBox {
        FindBox {
            query: String::new(),
            state: State::Editing,
            focus_set: false,
            rects: RectLog::default(),
        }
    }

    /// Submit what was typed: the request to send (nothing for an empty box or while waiting).
    pub fn submit(&mut self) -> Option<(String, String)> {
        let q = self.query.trim();
        if q.is_empty() || matches!(self.state, State::Waiting(_)) {
            return None;
        }
        let id = request_id("find");
        self.state = State::Waiting(id.clone());
        Some((id, q.to_string()))
    }

    /// The answer for our request: `None` = found (the box closes), `Some(reason)` = shown.
    pub fn answered(&mut self, request_id: &str, error: Option<&str>) -> bool {
        self.state.answer(request_id, error)
    }
}

/// Draw the search box; true when it should close.
pub(super) fn find_ui(
    ui: &mut egui::Ui,
    lang: Lang,
    f: &mut FindBox,
    requests: &Arc<dyn Fn(UiRequest) + Send + Sync>,
) -> bool {
    let ctx = ui.ctx().clone();
    let big = 20.0;
    ui.spacing_mut().item_spacing = egui::vec2(10.0, 10.0);
    ui.label(RichText::new(fx(lang, Fx::FindTitle)).size(22.0).strong());
    ui.label(RichText::new(fx(lang, Fx::FindHint)).size(18.0));
    let waiting = matches!(f.state, State::Waiting(_));
    let r = ui.add_enabled(
        !waiting,
        egui::TextEdit::singleline(&mut f.query)
            .font(egui::FontId::proportional(big))
            .desired_width(f32::INFINITY),
    );
    f.rects.log(&ctx, "find.query", r.rect);
    if !f.focus_set {
        r.request_focus();
        f.focus_set = true;
    }
    if r.changed() && matches!(f.state, State::Failed(_)) {
        f.state = State::Editing;
    }
    let mut submit = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    let mut close = ui.input(|i| i.key_pressed(egui::Key::Escape));
    ui.horizontal(|ui| {
        let b = ui.add_enabled(
            !waiting,
            egui::Button::new(RichText::new(fx(lang, Fx::FindButton)).size(big)),
        );
        f.rects.log(&ctx, "find.search", b.rect);
        submit |= b.clicked();
        let b = ui.button(RichText::new(fx(lang, Fx::Cancel)).size(big));
        f.rects.log(&ctx, "find.close", b.rect);
        close |= b.clicked();
    });
    if submit {
        if let Some((id, query)) = f.submit() {
            tracing::info!(target: "till_agent::ui", request = %id, "customer search submitted from the search box");
            requests(UiRequest::Find { request_id: id, query });
        } else {
            // Enter in an empty box: keep the focus there.
            r.request_focus();
        }
    }
    match &f.state {
        State::Editing => {}
        State::Waiting(_) => {
            ui.label(RichText::new(fx(lang, Fx::Searching)).size(18.0).italics());
            ctx.request_repaint_after(Duration::from_millis(100));
        }
        State::Done(_) => close = true,
        State::Failed(e) => {
            let l = ui.label(RichText::new(e).size(18.0).strong().color(RED));
            f.rects.log(&ctx, "find.error", l.rect);
            // Enter again after a correction: the field has the focus back.
            if r.lost_focus() {
                r.request_focus();
            }
        }
    }
    close
}

pub(super) struct TagForm {
    pub receipt: String,
    pub date: String,
    pub total: String,
    pub card: String,
    /// The customer of the scanned card, when its quote came (shown beside the field).
    pub customer: Option<String>,
    pub errors: Vec<(TagField, String)>,
    pub state: State,
    /// A card just scanned: its digits also reach the focused field as key presses on a
    /// passthrough keyboard wedge; they are taken out of the other fields for a moment.
    scanned: Option<(String, Instant)>,
    focus_set: bool,
    rects: RectLog,
}

impl TagForm {
    pub fn new(lang: Lang, today: chrono::NaiveDate, card: Option<&CardId>) -> TagForm {
        TagForm {
            receipt: String::new(),
            date: super::find_i18n::date(lang, today).replace('\u{a0}', " "),
            total: String::new(),
            card: card.map(|c| c.expose().to_string()).unwrap_or_default(),
            customer: None,
            errors: Vec::new(),
            state: State::Editing,
            scanned: None,
            focus_set: false,
            rects: RectLog::default(),
        }
    }

    pub fn title(&self, lang: Lang) -> String {
        fx(lang, Fx::TagTitle).to_string()
    }

    /// A loyalty card was scanned while the form is open: it goes into the card field.
    pub fn scanned(&mut self, card: &CardId) {
        self.card = card.expose().to_string();
        self.customer = None;
        self.errors.retain(|e| e.0 != TagField::Card);
        self.scanned = Some((card.expose().to_string(), Instant::now()));
        self.strip_scan_keys();
    }

    /// The customer of the scanned card (its quote).
    pub fn customer_of(&mut self, card: &CardId, name: &str) {
        if self.card == card.expose() {
            self.customer = Some(name.to_string());
        }
    }

    /// Take the scan's digits (typed into whatever field had the focus) out of the other fields.
    fn strip_scan_keys(&mut self) {
        let Some((digits, at)) = &self.scanned else { return };
        if at.elapsed() > Duration::from_secs(2) {
            self.scanned = None;
            return;
        }
        for f in [&mut self.receipt, &mut self.date, &mut self.total] {
            if f.contains(digits.as_str()) {
                *f = f.replacen(digits.as_str(), "", 1);
            }
        }
        self.card = digits.clone();
    }

    /// What to send: the fields as typed (the date without a trailing `.` and no-break spaces);
    /// the background checks them. Nothing while waiting for the previous answer.
    pub fn submit(&mut self) -> Option<TagInput> {
        if matches!(self.state, State::Waiting(_)) {
            return None;
        }
        let id = request_id("tag");
        self.state = State::Waiting(id.clone());
        let date = self.date.replace('\u{a0}', " ");
        Some(TagInput {
            request_id: id,
            form: crate::tag::TagForm {
                receipt: self.receipt.clone(),
                card: self.card.clone(),
                date: date.trim().trim_end_matches('.').to_string(),
                total: self.total.clone(),
            },
        })
    }

    /// The background's answer for our request: queued, refused field by field, or not queued.
    pub fn answered_tag(&mut self, lang: Lang, ev: &crate::events::TagEvent) -> bool {
        if !self.answered(&ev.request_id, ev.error.as_deref()) {
            return false;
        }
        if ev.item_id.is_none() && ev.error.is_none() {
            self.state = State::Editing;
        }
        self.errors = ev.errors.iter().map(|e| (e.field, problem(lang, e))).collect();
        true
    }

    pub fn answered(&mut self, request_id: &str, error: Option<&str>) -> bool {
        self.state.answer(request_id, error)
    }

    fn error(&self, f: TagField) -> Option<&str> {
        self.errors.iter().find(|e| e.0 == f).map(|e| e.1.as_str())
    }
}

/// A field's problem in the screen's language (the English detail goes to the log).
fn problem(lang: Lang, e: &TagError) -> String {
    use Lang::*;
    use TagProblem::*;
    let t = match (e.problem, lang) {
        (Missing, Cs | Sk) => "vyplňte",
        (Missing, Hr) => "obavezno",
        (Missing, En) => "required",
        (ReceiptTooLong, Cs) => "nejvýše 40 znaků",
        (ReceiptTooLong, Sk) => "najviac 40 znakov",
        (ReceiptTooLong, Hr) => "najviše 40 znakova",
        (ReceiptTooLong, En) => "at most 40 characters",
        (BadCard, Cs | Sk) => "neplatné číslo karty",
        (BadCard, Hr) => "neispravan broj kartice",
        (BadCard, En) => "not a card number of the programme",
        (BadDate, Cs) => "není datum (např. 23. 11. 2026)",
        (BadDate, Sk) => "nie je dátum (napr. 23. 11. 2026)",
        (BadDate, Hr) => "nije datum (npr. 23. 11. 2026.)",
        (BadDate, En) => "not a date (e.g. 2026-11-23)",
        (FutureDate, Cs) => "datum je v budoucnosti",
        (FutureDate, Sk) => "dátum je v budúcnosti",
        (FutureDate, Hr) => "datum je u budućnosti",
        (FutureDate, En) => "the date is in the future",
        (TooOld, Cs) => "účtenka je starší než 400 dní",
        (TooOld, Sk) => "bloček je starší ako 400 dní",
        (TooOld, Hr) => "račun je stariji od 400 dana",
        (TooOld, En) => "the receipt is more than 400 days old",
        (BadTotal, Cs) => "není částka (např. 1 234,50)",
        (BadTotal, Sk) => "nie je suma (napr. 1 234,50)",
        (BadTotal, Hr) => "nije iznos (npr. 1234,50)",
        (BadTotal, En) => "not an amount (e.g. 1234.50)",
        (NotPositive, Cs) => "částka musí být kladná",
        (NotPositive, Sk) => "suma musí byť kladná",
        (NotPositive, Hr) => "iznos mora biti pozitivan",
        (NotPositive, En) => "the amount must be positive",
    };
    t.to_string()
}

/// Draw the tag form; true when it should close.
pub(super) fn tag_ui(
    ui: &mut egui::Ui,
    lang: Lang,
    f: &mut TagForm,
    requests: &Arc<dyn Fn(UiRequest) + Send + Sync>,
) -> bool {
    let ctx = ui.ctx().clone();
    let big = 18.0;
    f.strip_scan_keys();
    ui.spacing_mut().item_spacing = egui::vec2(10.0, 8.0);
    ui.label(RichText::new(f.title(lang)).size(22.0).strong());
    let editable = matches!(f.state, State::Editing | State::Failed(_));
    let mut first = None;
    egui::Grid::new("tag_form")
        .num_columns(2)
        .spacing([12.0, 10.0])
        .show(ui, |ui| {
            let fields: [(TagField, &'static str, Fx, String); 4] = [
                (TagField::Receipt, "tag.receipt", Fx::TagReceipt, String::new()),
                (TagField::Date, "tag.date", Fx::TagDate, String::new()),
                (
                    TagField::Total,
                    "tag.total",
                    Fx::TagTotal,
                    fx(lang, Fx::Optional).to_string(),
                ),
                (
                    TagField::Card,
                    "tag.card",
                    Fx::TagCard,
                    fx(lang, Fx::TagCardHint).to_string(),
                ),
            ];
            for (which, name, label, hint) in fields {
                let t = RichText::new(fx(lang, label)).size(big);
                ui.label(if f.error(which).is_some() { t.color(RED) } else { t });
                let value = match which {
                    TagField::Receipt => &mut f.receipt,
                    TagField::Date => &mut f.date,
                    TagField::Total => &mut f.total,
                    TagField::Card => &mut f.card,
                };
                let r = ui.add_enabled(
                    editable,
                    egui::TextEdit::singleline(value)
                        .hint_text(hint)
                        .font(egui::FontId::proportional(big))
                        .desired_width(300.0),
                );
                f.rects.log(&ctx, name, r.rect);
                if r.changed() {
                    f.errors.retain(|e| e.0 != which);
                    if which == TagField::Card {
                        f.customer = None;
                    }
                }
                if which == TagField::Receipt {
                    first = Some(r);
                }
                ui.end_row();
            }
        });
    if let Some(c) = &f.customer {
        ui.label(RichText::new(c).size(big).strong().color(GREEN));
    }
    if !f.focus_set {
        if let Some(r) = &first {
            r.request_focus();
            f.focus_set = true;
        }
    }
    for (which, e) in &f.errors {
        let name = match which {
            TagField::Receipt => fx(lang, Fx::TagReceipt),
            TagField::Date => fx(lang, Fx::TagDate),
            TagField::Total => fx(lang, Fx::TagTotal),
            TagField::Card => fx(lang, Fx::TagCard),
        };
        ui.label(RichText::new(format!("{name}: {e}")).size(16.0).color(RED));
    }
    let (mut submit, mut close) = (false, false);
    ui.horizontal(|ui| {
        let r = ui.add_enabled(
            editable,
            egui::Button::new(RichText::new(fx(lang, Fx::TagSubmit)).size(big)),
        );
        f.rects.log(&ctx, "tag.submit", r.rect);
        submit = r.clicked();
        let r = ui.button(RichText::new(fx(lang, Fx::Cancel)).size(big));
        f.rects.log(&ctx, "tag.cancel", r.rect);
        close = r.clicked();
    });
    if submit && editable {
        if let Some(req) = f.submit() {
            tracing::info!(target: "till_agent::ui", request = %req.request_id, "receipt tag submitted from the form");
            requests(UiRequest::Tag(Box::new(req)));
        }
    }
    match &f.state {
        State::Editing => {}
        State::Waiting(_) => {
            ui.label(RichText::new(fx(lang, Fx::TagSaving)).size(big).italics());
            ctx.request_repaint_after(Duration::from_millis(100));
        }
        State::Done(at) => {
            let l = ui.label(RichText::new(fx(lang, Fx::TagQueued)).size(big).strong().color(GREEN));
            f.rects.log(&ctx, "tag.queued", l.rect);
            let left = QUEUED_SHOWN.saturating_sub(at.elapsed());
            if left.is_zero() {
                close = true;
            } else {
                ctx.request_repaint_after(left);
            }
        }
        State::Failed(e) => {
            let l = ui.label(
                RichText::new(format!("{}: {e}", fx(lang, Fx::TagNotQueued)))
                    .size(16.0)
                    .color(RED),
            );
            f.rects.log(&ctx, "tag.error", l.rect);
        }
    }
    if f.scanned.is_some() {
        ctx.request_repaint_after(Duration::from_millis(100));
    }
    close
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    #[test]
    fn tag_form_sends_what_was_typed_and_shows_the_checks_answer_in_its_language() {
        let mut f = TagForm::new(Lang::Hr, today(), None);
        assert_eq!(f.date, "23. 11. 2026.", "today by default");
        f.receipt = " 2026/0815 ".into();
        f.total = "12,5x".into();
        f.card = "1900 12x".into();
        let req = f.submit().unwrap();
        assert!(req.request_id.starts_with("tag-"));
        assert_eq!(req.form.date, "23. 11. 2026", "the Croatian date's last dot is dropped");
        assert!(f.submit().is_none(), "once while waiting");
        // The background's check (the real one) refuses two fields.
        let policy = protocol::ids::CardPolicy {
            min_len: 16,
            max_len: 16,
            prefixes: vec!["1900".into()],
            luhn: true,
        };
        let errors = req.form.validate(&policy, today()).unwrap_err();
        let ev = crate::events::TagEvent {
            request_id: req.request_id.clone(),
            item_id: None,
            errors,
            error: None,
        };
        assert!(!f.answered_tag(
            Lang::Hr,
            &crate::events::TagEvent {
                request_id: "tag-other".into(),
                ..ev.clone()
            }
        ));
        assert!(f.answered_tag(Lang::Hr, &ev));
        assert_eq!(f.state, State::Editing, "editable again");
        assert_eq!(
            f.errors,
            vec![
                (TagField::Card, "neispravan broj kartice".to_string()),
                (TagField::Total, "nije iznos (npr. 1234,50)".to_string())
            ]
        );
        f.card = "1900000009001016".into();
        f.total = "1 234,50".into();
        let req = f.submit().unwrap();
        let tag = req.form.validate(&policy, today()).expect("valid now");
        assert_eq!(
            (tag.receipt.as_str(), tag.date, tag.total),
            ("2026/0815", today(), Some(dec!(1234.50)))
        );
        let ok = crate::events::TagEvent {
            request_id: req.request_id,
            item_id: Some("tag-1".into()),
            errors: Vec::new(),
            error: None,
        };
        assert!(f.answered_tag(Lang::Hr, &ok));
        assert!(matches!(f.state, State::Done(_)) && f.errors.is_empty());
    }

    #[test]
    fn a_scanned_card_goes_into_the_card_field_and_out_of_the_focused_one() {
        let mut f = TagForm::new(Lang::En, today(), None);
        assert_eq!(f.date, "2026-11-23");
        // The wedge typed the scan into the receipt field (passthrough) before the scan event.
        f.receipt = "R-151900000009001016".into();
        let card = CardId::normalise("1900000009001016").unwrap();
        f.scanned(&card);
        assert_eq!((f.receipt.as_str(), f.card.as_str()), ("R-15", "1900000009001016"));
        // ... or just after it.
        f.receipt.push_str("1900000009001016");
        f.strip_scan_keys();
        assert_eq!(f.receipt, "R-15");
        f.customer_of(&card, "Jiří Dvořák");
        assert_eq!(f.customer.as_deref(), Some("Jiří Dvořák"));
    }

    #[test]
    fn search_box_sends_once_and_shows_its_own_answer() {
        let mut b = FindBox::new();
        assert!(b.submit().is_none(), "empty box");
        b.query = " 601 111 222 ".into();
        let (id, q) = b.submit().unwrap();
        assert_eq!(q, "601 111 222");
        assert!(b.submit().is_none(), "once while waiting");
        assert!(!b.answered("find-other", None));
        assert!(b.answered(&id, Some("Zákazník nenalezen")));
        assert_eq!(b.state, State::Failed("Zákazník nenalezen".into()));
        let (id, _) = b.submit().unwrap();
        assert!(b.answered(&id, None));
        assert!(matches!(b.state, State::Done(_)));
    }

    #[test]
    fn both_windows_lay_out_every_widget() {
        let ctx = egui::Context::default();
        let requests: Arc<dyn Fn(UiRequest) + Send + Sync> = Arc::new(|_| {});
        let mut t = TagForm::new(Lang::Cs, today(), None);
        let mut b = FindBox::new();
        let _ = ctx.run_ui(egui::RawInput::default(), |ui| {
            assert!(!tag_ui(ui, Lang::Cs, &mut t, &requests));
            assert!(!find_ui(ui, Lang::Cs, &mut b, &requests));
        });
        for w in [
            "tag.receipt",
            "tag.date",
            "tag.total",
            "tag.card",
            "tag.submit",
            "tag.cancel",
        ] {
            assert!(t.rects.get(w).is_some(), "{w}");
        }
        for w in ["find.query", "find.search", "find.close"] {
            assert!(b.rects.get(w).is_some(), "{w}");
        }
    }
}
