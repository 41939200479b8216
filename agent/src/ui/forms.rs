//! The register / migration-code form for an unknown card (opened from the popup's action
//! buttons). A normal window — unlike the popup it may take the keyboard focus: the cashier
//! asked for it. Validation is `enrol` (the same as `till-agent register|pair`); errors are shown
//! in the form, each naming its field. Submit sends `UiRequest::Enrol`; the form shows "saving"
//! until the background answers with `AgentEvent::Enrol` for its request id, then "queued" and
//! closes by itself (the server's answer goes to the sync log).
//!
//! Layout log: each field and button, once laid out (and whenever it moves), is logged at debug
//! level under target `till_agent::ui` with its rectangle in physical pixels relative to the
//! window's client area (`widget=… x=… y=… w=… h=…`): support can see what the cashier had on
//! screen, and the Xvfb test clicks exactly there.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Color32, RichText};
use protocol::CardId;

use super::i18n::{self, field_error, field_label, Form, Lang};
use super::viewmodel::ActionId;
use super::UiRequest;
use crate::enrol::{self, Field, FieldError, RegistrationForm, Request};

/// How long "queued" stays on screen before the form closes.
pub(super) const QUEUED_SHOWN: Duration = Duration::from_millis(1500);

#[derive(Clone, Debug, PartialEq)]
pub(super) enum FormState {
    Editing,
    /// Submitted; waiting for the background to queue request `.0`.
    Saving(String),
    Queued(Instant),
    Failed(String),
}

pub(super) struct EnrolForm {
    pub action: ActionId,
    pub card: CardId,
    pub reg: RegistrationForm,
    pub code: String,
    pub errors: Vec<FieldError>,
    pub state: FormState,
    focus_set: bool,
    rects: RectLog,
}

impl EnrolForm {
    pub fn new(action: ActionId, card: CardId) -> EnrolForm {
        EnrolForm {
            action,
            card,
            reg: RegistrationForm::default(),
            code: String::new(),
            errors: Vec::new(),
            state: FormState::Editing,
            focus_set: false,
            rects: RectLog::default(),
        }
    }

    pub fn title(&self, lang: Lang) -> String {
        let what = match self.action {
            ActionId::Register => i18n::form(lang, Form::RegisterTitle),
            ActionId::MigrationCode => i18n::form(lang, Form::MigrationTitle),
        };
        format!("{what} – {}", self.card.masked())
    }

    /// Validate what was typed and build the request (errors are kept for display).
    pub fn submit(&mut self, today: chrono::NaiveDate) -> Option<Request> {
        let r = match self.action {
            ActionId::Register => self
                .reg
                .validate(today)
                .map(|d| Request::register(self.card.clone(), d)),
            ActionId::MigrationCode => enrol::validate_code(&self.code)
                .map(|c| Request::pair(self.card.clone(), c))
                .map_err(|e| vec![e]),
        };
        match r {
            Ok(req) => {
                self.errors.clear();
                self.state = FormState::Saving(req.request_id().to_string());
                Some(req)
            }
            Err(e) => {
                tracing::info!(target: "till_agent::ui", errors = ?e.iter().map(|e| e.english()).collect::<Vec<_>>(), "form not submitted");
                self.errors = e;
                None
            }
        }
    }

    /// The background's answer for our request.
    pub fn answered(&mut self, request_id: &str, error: Option<&str>) -> bool {
        if self.state != FormState::Saving(request_id.to_string()) {
            return false;
        }
        self.state = match error {
            None => FormState::Queued(Instant::now()),
            Some(e) => FormState::Failed(e.to_string()),
        };
        true
    }

    fn error_for(&self, f: Field) -> Option<&FieldError> {
        self.errors.iter().find(|e| e.field == f)
    }
}

/// Remembers the last logged rectangle of each widget so only changes are logged.
#[derive(Default)]
pub(super) struct RectLog(HashMap<&'static str, [i32; 4]>);

impl RectLog {
    /// Log `rect` (points, window-relative) as physical pixels if it changed.
    pub fn log(&mut self, ctx: &egui::Context, widget: &'static str, rect: egui::Rect) {
        let ppp = ctx.pixels_per_point();
        let r = [
            (rect.min.x * ppp).round() as i32,
            (rect.min.y * ppp).round() as i32,
            (rect.width() * ppp).round() as i32,
            (rect.height() * ppp).round() as i32,
        ];
        if self.0.get(widget) != Some(&r) {
            self.0.insert(widget, r);
            tracing::debug!(target: "till_agent::ui", widget, x = r[0], y = r[1], w = r[2], h = r[3], ppp, "laid out");
        }
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The last logged rectangle of `widget` (physical pixels: x, y, w, h).
    #[cfg(test)]
    pub fn get(&self, widget: &str) -> Option<[i32; 4]> {
        self.0.get(widget).copied()
    }
}

/// Draw the form; true when it should close.
/// Field labels and messages in error.
const RED: Color32 = Color32::from_rgb(0xc6, 0x28, 0x28);

pub(super) fn form_ui(
    ui: &mut egui::Ui,
    lang: Lang,
    f: &mut EnrolForm,
    requests: &Arc<dyn Fn(UiRequest) + Send + Sync>,
) -> bool {
    let ctx = ui.ctx().clone();
    let big = 18.0;
    ui.spacing_mut().item_spacing = egui::vec2(10.0, 8.0);
    ui.label(RichText::new(f.title(lang)).size(22.0).strong());
    let editable = matches!(f.state, FormState::Editing | FormState::Failed(_));
    let mut submit = false;
    let mut first: Option<egui::Response> = None;
    // One labelled text field; its error goes as soon as the cashier changes it (the others stay
    // until submit).
    let row = |ui: &mut egui::Ui,
               rects: &mut RectLog,
               errors: &mut Vec<FieldError>,
               which: Field,
               name: &'static str,
               value: &mut String,
               hint: &str| {
        let t = RichText::new(field_label(lang, which)).size(big);
        ui.label(if errors.iter().any(|e| e.field == which) {
            t.color(RED)
        } else {
            t
        });
        let r = ui.add_enabled(
            editable,
            egui::TextEdit::singleline(value)
                .hint_text(hint)
                .font(egui::FontId::proportional(big))
                .desired_width(300.0),
        );
        rects.log(&ctx, name, r.rect);
        if r.changed() {
            errors.retain(|e| e.field != which);
        }
        ui.end_row();
        r
    };
    egui::Grid::new("enrol_form")
        .num_columns(2)
        .spacing([12.0, 10.0])
        .show(ui, |ui| match f.action {
            ActionId::Register => {
                ui.label("");
                let r = ui.add_enabled(
                    editable,
                    egui::Checkbox::new(
                        &mut f.reg.company,
                        RichText::new(i18n::form(lang, Form::Company)).size(big),
                    ),
                );
                f.rects.log(&ctx, "form.company", r.rect);
                ui.end_row();
                if f.reg.company {
                    first = Some(row(
                        ui,
                        &mut f.rects,
                        &mut f.errors,
                        Field::CompanyName,
                        "form.company_name",
                        &mut f.reg.company_name,
                        "",
                    ));
                } else {
                    first = Some(row(
                        ui,
                        &mut f.rects,
                        &mut f.errors,
                        Field::FirstName,
                        "form.first_name",
                        &mut f.reg.first_name,
                        "",
                    ));
                    row(
                        ui,
                        &mut f.rects,
                        &mut f.errors,
                        Field::Surname,
                        "form.surname",
                        &mut f.reg.surname,
                        "",
                    );
                }
                row(
                    ui,
                    &mut f.rects,
                    &mut f.errors,
                    Field::Email,
                    "form.email",
                    &mut f.reg.email,
                    "",
                );
                row(
                    ui,
                    &mut f.rects,
                    &mut f.errors,
                    Field::Phone,
                    "form.phone",
                    &mut f.reg.phone,
                    "",
                );
                row(
                    ui,
                    &mut f.rects,
                    &mut f.errors,
                    Field::Birthday,
                    "form.birthday",
                    &mut f.reg.birthday,
                    i18n::form(lang, Form::DateHint),
                );
                ui.label("");
                let consent = RichText::new(i18n::form(lang, Form::ConsentRules)).size(big);
                let consent = if f.error_for(Field::ConsentRules).is_some() {
                    consent.color(RED)
                } else {
                    consent
                };
                let r = ui.add_enabled(editable, egui::Checkbox::new(&mut f.reg.consent_rules, consent));
                if r.changed() {
                    f.errors.retain(|e| e.field != Field::ConsentRules);
                }
                f.rects.log(&ctx, "form.consent_rules", r.rect);
                ui.end_row();
                ui.label("");
                let r = ui.add_enabled(
                    editable,
                    egui::Checkbox::new(
                        &mut f.reg.consent_marketing,
                        RichText::new(i18n::form(lang, Form::ConsentMarketing)).size(big),
                    ),
                );
                f.rects.log(&ctx, "form.consent_marketing", r.rect);
                ui.end_row();
            }
            ActionId::MigrationCode => {
                let r = row(
                    ui,
                    &mut f.rects,
                    &mut f.errors,
                    Field::Code,
                    "form.code",
                    &mut f.code,
                    "",
                );
                // Enter in the code field submits.
                submit |= r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                first = Some(r);
            }
        });
    if !f.focus_set {
        if let Some(r) = &first {
            r.request_focus();
            f.focus_set = true;
        }
    }
    for e in &f.errors {
        ui.label(RichText::new(field_error(lang, e)).size(16.0).color(RED));
    }
    let mut close = false;
    ui.horizontal(|ui| {
        let r = ui.add_enabled(
            editable,
            egui::Button::new(RichText::new(i18n::form(lang, Form::Submit)).size(big)),
        );
        f.rects.log(&ctx, "form.submit", r.rect);
        submit |= r.clicked();
        let r = ui.button(RichText::new(i18n::form(lang, Form::Cancel)).size(big));
        f.rects.log(&ctx, "form.cancel", r.rect);
        close |= r.clicked();
    });
    if submit && editable {
        if let Some(req) = f.submit(chrono::Local::now().date_naive()) {
            tracing::info!(target: "till_agent::ui", request = req.request_id(), card = %req.card(), "{} submitted from the form", req.what());
            requests(UiRequest::Enrol(Box::new(req)));
        }
    }
    match &f.state {
        FormState::Editing => {}
        FormState::Saving(_) => {
            ui.label(RichText::new(i18n::form(lang, Form::Saving)).size(big).italics());
            // The answer (AgentEvent::Enrol) reaches the root viewport; look again shortly.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
        FormState::Queued(at) => {
            ui.label(
                RichText::new(i18n::form(lang, Form::Queued))
                    .size(big)
                    .strong()
                    .color(Color32::from_rgb(0x2e, 0x7d, 0x32)),
            );
            let left = QUEUED_SHOWN.saturating_sub(at.elapsed());
            if left.is_zero() {
                close = true;
            } else {
                ctx.request_repaint_after(left);
            }
        }
        FormState::Failed(e) => {
            ui.label(
                RichText::new(format!("{}: {e}", i18n::form(lang, Form::NotQueued)))
                    .size(16.0)
                    .color(RED),
            );
        }
    }
    close
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> CardId {
        CardId::normalise("1900000009001016").unwrap()
    }

    #[test]
    fn submit_validates_then_waits_for_its_own_answer() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let mut f = EnrolForm::new(ActionId::Register, card());
        assert_eq!(f.title(Lang::Cs), "Registrace zákazníka – 1900-****-****-1016");
        assert!(f.submit(today).is_none());
        assert_eq!(
            f.errors.iter().map(|e| e.field).collect::<Vec<_>>(),
            vec![Field::FirstName, Field::Surname, Field::ConsentRules]
        );
        assert_eq!(f.state, FormState::Editing);
        f.reg.first_name = "Jiří".into();
        f.reg.surname = "Dvořák".into();
        f.reg.consent_rules = true;
        let req = f.submit(today).expect("valid");
        assert!(f.errors.is_empty());
        let Request::Register { card: c, details, .. } = &req else {
            panic!("{req:?}")
        };
        assert_eq!((c, details.name.display().as_str()), (&card(), "Jiří Dvořák"));
        assert!(!f.answered("reg-someone-else", None), "another form's answer");
        assert!(f.answered(req.request_id(), None));
        assert!(matches!(f.state, FormState::Queued(_)));

        let mut m = EnrolForm::new(ActionId::MigrationCode, card());
        assert_eq!(m.title(Lang::En), "Code from the old card – 1900-****-****-1016");
        assert!(m.submit(today).is_none());
        assert_eq!(m.errors[0].field, Field::Code);
        m.code = " KLUB-4821 ".into();
        let req = m.submit(today).unwrap();
        assert!(matches!(&req, Request::Pair { code, .. } if code == "KLUB-4821"));
        assert!(m.answered(req.request_id(), Some("disk full")));
        assert_eq!(m.state, FormState::Failed("disk full".into()));
    }

    #[test]
    fn form_lays_out_and_logs_every_field_and_button() {
        let ctx = egui::Context::default();
        let mut f = EnrolForm::new(ActionId::Register, card());
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests: Arc<dyn Fn(UiRequest) + Send + Sync> = {
            let sent = sent.clone();
            Arc::new(move |r| sent.lock().unwrap().push(r))
        };
        let _ = ctx.run_ui(egui::RawInput::default(), |ui| {
            assert!(!form_ui(ui, Lang::Cs, &mut f, &requests));
        });
        for w in [
            "form.company",
            "form.first_name",
            "form.surname",
            "form.email",
            "form.phone",
            "form.birthday",
            "form.consent_rules",
            "form.submit",
            "form.cancel",
        ] {
            let r = f.rects.0.get(w).unwrap_or_else(|| panic!("{w} not laid out"));
            assert!(r[2] > 0 && r[3] > 0, "{w}: {r:?}");
        }
        // Fields are stacked top to bottom in form order.
        let y = |w| f.rects.0[w][1];
        assert!(
            y("form.first_name") < y("form.surname")
                && y("form.surname") < y("form.email")
                && y("form.consent_rules") < y("form.submit")
        );
        assert!(sent.lock().unwrap().is_empty());
    }

    #[test]
    fn a_fields_error_goes_when_that_field_is_edited() {
        let ctx = egui::Context::default();
        let mut f = EnrolForm::new(ActionId::Register, card());
        let requests: Arc<dyn Fn(UiRequest) + Send + Sync> = Arc::new(|_| {});
        let frame = |f: &mut EnrolForm, events: Vec<egui::Event>| {
            let _ = ctx.run_ui(
                egui::RawInput {
                    events,
                    ..Default::default()
                },
                |ui| {
                    form_ui(ui, Lang::Cs, f, &requests);
                },
            );
        };
        frame(&mut f, vec![]); // the first field asks for the focus
        frame(&mut f, vec![]);
        assert!(f
            .submit(chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap())
            .is_none());
        assert_eq!(
            f.errors.iter().map(|e| e.field).collect::<Vec<_>>(),
            vec![Field::FirstName, Field::Surname, Field::ConsentRules]
        );
        frame(&mut f, vec![]); // errors shown, nothing typed: all stay
        assert_eq!(f.errors.len(), 3);
        frame(&mut f, vec![egui::Event::Text("J".into())]);
        assert_eq!(f.reg.first_name, "J");
        assert_eq!(
            f.errors.iter().map(|e| e.field).collect::<Vec<_>>(),
            vec![Field::Surname, Field::ConsentRules]
        );
    }
}
