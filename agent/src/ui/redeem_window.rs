//! The small confirm window of the popup's Redeem button. Like the enrol form it may take the
//! keyboard focus while open (the cashier asked for it; Enter confirms, Esc cancels) and gives it
//! back when it closes. Confirm sends `UiRequest::Redeem` and closes at once: the answer
//! (`AgentEvent::Redeem` with the request id) is shown by the popup (`redeem_view::result_view`).
//! Buttons are logged with their rectangles (`forms::RectLog`): `redeem.confirm`, `redeem.cancel`.
use std::sync::Arc;

use egui::{Color32, RichText};
use protocol::{StoreId, TillId};

use super::forms::RectLog;
use super::i18n::{rdm, Lang, Rdm};
use super::redeem_view::Offer;
use super::UiRequest;

pub(super) struct RedeemConfirm {
    pub offer: Offer,
    store: StoreId,
    till: TillId,
    /// The request sent on confirm (its id is what the popup waits for).
    pub sent: Option<String>,
    rects: RectLog,
}

impl RedeemConfirm {
    pub fn new(offer: Offer, store: StoreId, till: TillId) -> RedeemConfirm {
        RedeemConfirm {
            offer,
            store,
            till,
            sent: None,
            rects: RectLog::default(),
        }
    }

    pub fn title(&self, lang: Lang) -> String {
        format!("{} – {}", rdm(lang, Rdm::ConfirmTitle), self.offer.card.masked())
    }

    /// Confirmed: the request to send (once; a second confirm sends nothing).
    pub fn confirm(&mut self) -> Option<protocol::v1::RedeemRequest> {
        if self.sent.is_some() {
            return None;
        }
        let req = self.offer.request(&self.store, &self.till);
        self.sent = Some(req.request_id.clone());
        Some(req)
    }
}

/// Draw the confirm window; true when it should close (confirmed or cancelled).
pub(super) fn confirm_ui(
    ui: &mut egui::Ui,
    lang: Lang,
    w: &mut RedeemConfirm,
    requests: &Arc<dyn Fn(UiRequest) + Send + Sync>,
) -> bool {
    let ctx = ui.ctx().clone();
    let big = 22.0;
    ui.label(RichText::new(rdm(lang, Rdm::ConfirmQuestion)).size(big));
    ui.label(
        RichText::new(w.offer.text(lang))
            .size(28.0)
            .strong()
            .color(Color32::from_rgb(0x1b, 0x5e, 0x20)),
    );
    ui.label(
        RichText::new(w.offer.card.masked())
            .size(16.0)
            .color(Color32::DARK_GRAY),
    );
    let (mut confirm, mut cancel) = ui.input(|i| (i.key_pressed(egui::Key::Enter), i.key_pressed(egui::Key::Escape)));
    ui.horizontal(|ui| {
        let r = ui.button(RichText::new(rdm(lang, Rdm::Confirm)).size(big));
        w.rects.log(&ctx, "redeem.confirm", r.rect);
        confirm |= r.clicked();
        let r = ui.button(RichText::new(rdm(lang, Rdm::Cancel)).size(big));
        w.rects.log(&ctx, "redeem.cancel", r.rect);
        cancel |= r.clicked();
    });
    if confirm {
        if let Some(req) = w.confirm() {
            tracing::info!(target: "till_agent::ui", request = %req.request_id, card = %req.card, points = %req.points, "redemption confirmed");
            requests(UiRequest::Redeem(Box::new(req)));
        }
        return true;
    }
    if cancel {
        tracing::info!(target: "till_agent::ui", card = %w.offer.card, "redemption cancelled");
    }
    cancel
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn offer() -> Offer {
        Offer {
            card: protocol::CardId::normalise("1900000009001016").unwrap(),
            option: protocol::v1::RedeemOption {
                points: dec!(100),
                value: dec!(50),
                reward: protocol::v1::RewardKind::Voucher,
            },
            currency: protocol::Currency::CZK,
        }
    }

    fn run(
        w: &mut RedeemConfirm,
        requests: &Arc<dyn Fn(UiRequest) + Send + Sync>,
        events: Vec<egui::Event>,
        ctx: &egui::Context,
    ) -> bool {
        let mut close = false;
        let _ = ctx.run_ui(
            egui::RawInput {
                events,
                ..Default::default()
            },
            |ui| close = confirm_ui(ui, Lang::Cs, w, requests),
        );
        close
    }

    type Sent = Arc<std::sync::Mutex<Vec<UiRequest>>>;

    fn recorder() -> (Sent, Arc<dyn Fn(UiRequest) + Send + Sync>) {
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = sent.clone();
        (sent, Arc::new(move |r| s.lock().unwrap().push(r)))
    }

    fn click(at: egui::Pos2) -> Vec<egui::Event> {
        let b = |pressed| egui::Event::PointerButton {
            pos: at,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Default::default(),
        };
        vec![egui::Event::PointerMoved(at), b(true), b(false)]
    }

    #[test]
    fn clicking_confirm_sends_one_redemption_of_the_offer() {
        let ctx = egui::Context::default();
        let (sent, requests) = recorder();
        let mut w = RedeemConfirm::new(offer(), StoreId::from("S1"), TillId::from("T2"));
        assert_eq!(w.title(Lang::Cs), "Uplatnění bodů – 1900-****-****-1016");
        assert!(!run(&mut w, &requests, vec![], &ctx));
        let [x, y, bw, bh] = w.rects.get("redeem.confirm").expect("confirm laid out");
        assert!(bw > 0 && bh > 0);
        assert!(w.rects.get("redeem.cancel").is_some());
        let ppp = ctx.pixels_per_point();
        let at = egui::pos2((x + bw / 2) as f32 / ppp, (y + bh / 2) as f32 / ppp);
        assert!(run(&mut w, &requests, click(at), &ctx), "closes on confirm");
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        let UiRequest::Redeem(req) = &sent[0] else {
            panic!("{:?}", sent[0])
        };
        assert_eq!(req.points, dec!(100));
        assert_eq!(req.card, offer().card);
        assert_eq!(
            (req.store_id.to_string(), req.till_id.to_string()),
            ("S1".into(), "T2".into())
        );
        assert_eq!(w.sent.as_deref(), Some(req.request_id.as_str()));
        assert!(w.confirm().is_none(), "a second confirm sends nothing");
    }

    #[test]
    fn cancel_and_escape_send_nothing() {
        let ctx = egui::Context::default();
        let (sent, requests) = recorder();
        let mut w = RedeemConfirm::new(offer(), StoreId::from("S1"), TillId::from("T2"));
        assert!(!run(&mut w, &requests, vec![], &ctx));
        let [x, y, bw, bh] = w.rects.get("redeem.cancel").unwrap();
        let ppp = ctx.pixels_per_point();
        let at = egui::pos2((x + bw / 2) as f32 / ppp, (y + bh / 2) as f32 / ppp);
        assert!(run(&mut w, &requests, click(at), &ctx));
        let esc = egui::Event::Key {
            key: egui::Key::Escape,
            physical_key: None,
            pressed: true,
            repeat: false,
            modifiers: Default::default(),
        };
        assert!(run(&mut w, &requests, vec![esc], &ctx));
        assert!(sent.lock().unwrap().is_empty());
        assert!(w.sent.is_none());
    }
}
