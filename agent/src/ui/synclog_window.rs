//! The sync-log window (egui): a timeline of the last 7 days per hour (receipts sent, still
//! queued, rejected; hours the server was unreachable shaded) above a table (local time, kind,
//! item, message; card numbers masked) with filters by kind, "problems only" and a search.
//! A support person answers "did this till sync yesterday afternoon?" by looking at the bars.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use chrono::{Local, Timelike};
use egui::{Align, Color32, Layout, RichText, Sense, TextWrapMode};

use super::human;
use super::i18n::{t, Key, Lang};
use super::synclog_view::{self, Filter, Hour, Loaded, LogEntry, SyncLogSource};

pub const SENT: Color32 = Color32::from_rgb(0x2e, 0x9d, 0x4a);
pub const QUEUED: Color32 = Color32::from_rgb(0xf0, 0xa2, 0x02);
pub const REJECTED: Color32 = Color32::from_rgb(0xd3, 0x2f, 0x2f);
pub const UNREACHABLE: Color32 = Color32::from_rgb(0xc8, 0xc8, 0xc8);

/// A fetch from the service still running on a thread of its own (not the GUI thread: a hung
/// service must not freeze the windows); `again` when another reload was asked meanwhile.
struct Pending {
    answer: mpsc::Receiver<anyhow::Result<Loaded>>,
    from: String,
    again: bool,
}

#[derive(Default)]
pub(super) struct LogWindow {
    entries: Vec<LogEntry>,
    hours: Vec<Hour>,
    error: Option<String>,
    filter: Filter,
    selected: BTreeSet<i64>,
    pending: Option<Pending>,
}

impl LogWindow {
    /// Load the rows again: outbox.db at once; from the service in the background (the window
    /// keeps what it shows until the answer is in, see [`LogWindow::poll`]).
    pub fn reload(&mut self, source: Option<&SyncLogSource>) {
        match source {
            Some(SyncLogSource::Fetch(f)) => {
                if let Some(p) = self.pending.as_mut() {
                    p.again = true;
                    return;
                }
                let (tx, rx) = mpsc::channel();
                let f = f.clone();
                let spawned = std::thread::Builder::new()
                    .name("sync-log-fetch".into())
                    .spawn(move || {
                        let _ = tx.send(f());
                    });
                match spawned {
                    Ok(_) => {
                        self.pending = Some(Pending {
                            answer: rx,
                            from: source.map(SyncLogSource::name).unwrap_or_default(),
                            again: false,
                        })
                    }
                    Err(e) => self.error = Some(format!("sync-log fetch: {e}")),
                }
            }
            Some(source) => self.apply(source.load(), &source.name()),
            None => self.error = Some("outbox.db ?".into()),
        }
    }

    /// A fetch from the service is running.
    pub fn fetching(&self) -> bool {
        self.pending.is_some()
    }

    /// Take a finished background fetch's answer (true while one is still running); a reload
    /// asked for meanwhile starts the next fetch.
    pub fn poll(&mut self, source: Option<&SyncLogSource>) -> bool {
        let Some(p) = self.pending.as_ref() else { return false };
        let answer = match p.answer.try_recv() {
            Ok(a) => a,
            Err(mpsc::TryRecvError::Empty) => return true,
            Err(mpsc::TryRecvError::Disconnected) => Err(anyhow::anyhow!("the fetch ended without an answer")),
        };
        let p = self.pending.take().expect("pending");
        self.apply(answer, &p.from);
        if p.again {
            self.reload(source);
        }
        self.pending.is_some()
    }

    fn apply(&mut self, loaded: anyhow::Result<Loaded>, from: &str) {
        match loaded {
            Ok((e, h)) => {
                tracing::debug!(target: "till_agent::ui", rows = e.len(), hours = h.len(), sent = h.iter().map(|h| h.sent).sum::<u32>(), from = %from, "sync log loaded");
                self.entries = e;
                self.hours = h;
                self.error = None;
            }
            Err(e) => self.error = Some(format!("{from}: {e:#}")),
        }
    }
}

/// Whether `used` (what was laid out) reaches outside `win` (half a point of rounding allowed).
pub(super) fn is_clipped(used: egui::Rect, win: egui::Rect) -> bool {
    used.max.x > win.max.x + 0.5 || used.max.y > win.max.y + 0.5 || used.min.x < win.min.x - 0.5
}

/// Log (debug, target `till_agent::ui`) when what a window drew no longer fits it, or fits
/// again: `screen`, the used size and the window size in points. The e2e tests read it.
pub(super) fn check_fit(ui: &egui::Ui, screen: &'static str, used: egui::Rect) {
    let win = ui.ctx().content_rect();
    let clipped = is_clipped(used, win);
    let id = egui::Id::new(("fit", screen));
    let key = (
        clipped,
        used.width().round() as i32,
        used.height().round() as i32,
        win.width().round() as i32,
    );
    let before: Option<(bool, i32, i32, i32)> = ui.ctx().data(|d| d.get_temp(id));
    if before != Some(key) {
        ui.ctx().data_mut(|d| d.insert_temp(id, key));
        tracing::debug!(target: "till_agent::ui", screen, clipped, used_w = used.width(), used_h = used.height(), win_w = win.width(), win_h = win.height(), "screen fit");
    }
}

/// The hours as bars: sent (green) up from the base line, rejected (red) on top, queued as
/// an amber line (own scale), unreachable hours shaded grey; a label per day (local time).
fn timeline_ui(ui: &mut egui::Ui, lang: Lang, hours: &[Hour]) {
    ui.label(RichText::new(t(lang, Key::Last7Days)).strong());
    let h = 90.0;
    let (rect, resp) = ui.allocate_exact_size(egui::vec2(ui.available_width(), h + 16.0), Sense::hover());
    let p = ui.painter_at(rect);
    let plot = egui::Rect::from_min_size(rect.min, egui::vec2(rect.width(), h));
    p.rect_filled(plot, 0.0, Color32::from_gray(250));
    if hours.is_empty() {
        return;
    }
    let n = hours.len() as f32;
    let bw = plot.width() / n;
    let max_sent = hours.iter().map(|x| x.sent + x.rejected).max().unwrap_or(0).max(1) as f32;
    let max_q = hours.iter().map(|x| x.queued).max().unwrap_or(0).max(1) as f32;
    let mut q_line = Vec::with_capacity(hours.len());
    for (i, x) in hours.iter().enumerate() {
        let x0 = plot.min.x + i as f32 * bw;
        let col = egui::Rect::from_min_max(egui::pos2(x0, plot.min.y), egui::pos2(x0 + bw, plot.max.y));
        if x.unreachable {
            p.rect_filled(col, 0.0, UNREACHABLE);
        }
        let s_h = x.sent as f32 / max_sent * (h - 6.0);
        let r_h = x.rejected as f32 / max_sent * (h - 6.0);
        let bar = |from: f32, height: f32, c: Color32| {
            if height > 0.0 {
                p.rect_filled(
                    egui::Rect::from_min_max(
                        egui::pos2(x0 + bw * 0.1, plot.max.y - from - height.max(1.5)),
                        egui::pos2(x0 + bw * 0.9, plot.max.y - from),
                    ),
                    0.0,
                    c,
                );
            }
        };
        bar(0.0, s_h, SENT);
        bar(s_h, r_h, REJECTED);
        q_line.push(egui::pos2(
            x0 + bw / 2.0,
            plot.max.y - x.queued as f32 / max_q * (h - 6.0),
        ));
        let local = x.start.with_timezone(&Local);
        if local.hour() == 0 {
            p.line_segment(
                [egui::pos2(x0, plot.min.y), egui::pos2(x0, rect.max.y)],
                egui::Stroke::new(1.0, Color32::GRAY),
            );
            let label = match lang {
                Lang::En => local.format("%a %m-%d").to_string(),
                Lang::Hr => local.format("%-d. %-m.").to_string(),
                _ => local.format("%-d. %-m.").to_string(),
            };
            // The last day's label would run past the right edge: anchor it there instead.
            let (pos, align) = if x0 + 60.0 > rect.max.x {
                (egui::pos2(rect.max.x, plot.max.y + 2.0), egui::Align2::RIGHT_TOP)
            } else {
                (egui::pos2(x0 + 3.0, plot.max.y + 2.0), egui::Align2::LEFT_TOP)
            };
            p.text(pos, align, label, egui::FontId::proportional(11.0), Color32::DARK_GRAY);
        }
    }
    if hours.iter().any(|x| x.queued > 0) {
        p.add(egui::Shape::line(q_line, egui::Stroke::new(2.0, QUEUED)));
    }
    // Hover: the hour's figures.
    if let Some(pos) = resp.hover_pos() {
        let i = (((pos.x - plot.min.x) / bw) as usize).min(hours.len() - 1);
        let x = &hours[i];
        let local = x.start.with_timezone(&Local);
        resp.on_hover_text(format!(
            "{}\n{}: {}\n{}: {}\n{}: {}{}",
            human::local(lang, &local),
            t(lang, Key::Sent),
            x.sent,
            t(lang, Key::QueueDepth),
            x.queued,
            t(lang, Key::Rejected),
            x.rejected,
            if x.unreachable {
                format!("\n{}", t(lang, Key::StateUnreachable))
            } else {
                String::new()
            }
        ));
    }
    // Legend.
    ui.horizontal_wrapped(|ui| {
        for (c, k) in [
            (SENT, Key::Sent),
            (QUEUED, Key::QueueDepth),
            (REJECTED, Key::Rejected),
            (UNREACHABLE, Key::StateUnreachable),
        ] {
            let (r, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), Sense::hover());
            ui.painter().rect_filled(r, 2.0, c);
            ui.label(t(lang, k));
            ui.add_space(8.0);
        }
    });
}

pub(super) fn sync_log_ui(
    ui: &mut egui::Ui,
    lang: Lang,
    log: &mut LogWindow,
    db: Option<&SyncLogSource>,
    dir: Option<&Path>,
    open_dir: impl Fn(&Path),
) {
    if log.poll(db) {
        // A fetch from the service is running: look again shortly (it answers within 3 s).
        ui.ctx().request_repaint_after(Duration::from_millis(50));
    }
    let top = ui.min_rect();
    timeline_ui(ui, lang, &log.hours);
    ui.separator();
    ui.horizontal_wrapped(|ui| {
        ui.label(t(lang, Key::ColKind));
        let kinds = synclog_view::kinds(&log.entries);
        egui::ComboBox::from_id_salt("kind")
            .selected_text(log.filter.kind.clone().unwrap_or_else(|| t(lang, Key::All).into()))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut log.filter.kind, None, t(lang, Key::All));
                for k in kinds {
                    ui.selectable_value(&mut log.filter.kind, Some(k.clone()), k);
                }
            });
        ui.checkbox(&mut log.filter.problems_only, t(lang, Key::ProblemsOnly));
        ui.label(t(lang, Key::Filter));
        ui.add(egui::TextEdit::singleline(&mut log.filter.needle).desired_width(140.0));
        if ui.button("⟳").clicked() {
            log.reload(db);
        }
        if ui.button(t(lang, Key::Copy)).clicked() {
            let text: Vec<String> = synclog_view::filter(&log.entries, &log.filter)
                .iter()
                .filter(|e| log.selected.is_empty() || log.selected.contains(&e.id))
                .map(|e| e.line())
                .collect();
            ui.ctx().copy_text(text.join("\n"));
        }
        if ui.button(t(lang, Key::OpenLogFolder)).clicked() {
            if let Some(d) = dir {
                open_dir(d);
            }
        }
    });
    if let Some(e) = &log.error {
        ui.colored_label(Color32::RED, e);
    }
    // The table: fixed columns for time, kind and item, the message wraps in the rest.
    let full = ui.available_width();
    let widths = [175.0_f32, 70.0, 110.0];
    let msg_w = (full - widths.iter().sum::<f32>() - 4.0 * ui.spacing().item_spacing.x - 16.0).max(120.0);
    let header = [
        t(lang, Key::ColTime),
        t(lang, Key::ColKind),
        t(lang, Key::ColItem),
        t(lang, Key::ColMessage),
    ];
    let cell = |ui: &mut egui::Ui, w: f32, text: RichText, wrap: TextWrapMode| {
        ui.allocate_ui_with_layout(egui::vec2(w, 0.0), Layout::top_down(Align::Min), |ui| {
            ui.set_width(w);
            ui.add(egui::Label::new(text).wrap_mode(wrap))
        })
        .inner
    };
    ui.horizontal(|ui| {
        for (i, h) in header.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(msg_w);
            cell(ui, w, RichText::new(*h).strong(), TextWrapMode::Truncate);
        }
    });
    let out = egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
        for e in synclog_view::filter(&log.entries, &log.filter) {
            let colour = match synclog_view::rank(&e.severity) {
                3 => Color32::from_rgb(0xc6, 0x28, 0x28),
                2 => Color32::from_rgb(0xb0, 0x6a, 0x00),
                _ => ui.visuals().text_color(),
            };
            let sel = log.selected.contains(&e.id);
            let row = ui.horizontal_top(|ui| {
                cell(
                    ui,
                    widths[0],
                    RichText::new(human::local_secs(lang, &e.at)),
                    TextWrapMode::Truncate,
                );
                cell(
                    ui,
                    widths[1],
                    RichText::new(&e.kind).color(colour),
                    TextWrapMode::Truncate,
                );
                let item = cell(
                    ui,
                    widths[2],
                    RichText::new(&e.item).monospace(),
                    TextWrapMode::Truncate,
                );
                if !e.item.is_empty() {
                    item.on_hover_text(&e.item);
                }
                let mut m = e.message.clone();
                if !e.detail.is_empty() {
                    m.push_str("  ");
                    m.push_str(&e.detail);
                }
                cell(ui, msg_w, RichText::new(m).color(colour), TextWrapMode::Wrap);
            });
            let r = row.response.rect;
            if sel {
                ui.painter()
                    .rect_filled(r, 2.0, ui.visuals().selection.bg_fill.gamma_multiply(0.35));
            }
            if ui
                .interact(r, egui::Id::new(("logrow", e.id)), Sense::click())
                .clicked()
            {
                if sel {
                    log.selected.remove(&e.id);
                } else {
                    log.selected.insert(e.id);
                }
            }
        }
    });
    // Wider content than the table = text cut off on the right.
    let used = egui::Rect::from_min_size(
        top.min,
        egui::vec2(
            out.content_size.x.max(full) + (out.inner_rect.min.x - top.min.x),
            out.inner_rect.max.y - top.min.y,
        ),
    );
    check_fit(ui, "sync_log", used);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service that does not answer does not block the window: `reload` returns at once, the
    /// window keeps its rows until the answer is in, and reloads asked meanwhile become one more
    /// fetch after it (not one per status change).
    #[test]
    fn a_slow_service_fetch_runs_off_the_gui_thread_and_reloads_coalesce() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let source = SyncLogSource::Fetch(Arc::new({
            let (calls, gate) = (calls.clone(), gate.clone());
            move || {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                gate.lock()
                    .unwrap()
                    .recv()
                    .map_err(|_| anyhow::anyhow!("gate dropped"))?;
                let row = synclog_view::LogEntry {
                    id: n as i64,
                    at: "2026-11-30T10:00:00Z".into(),
                    severity: "info".into(),
                    kind: "sync".into(),
                    item: "-".into(),
                    message: format!("fetch {n}"),
                    detail: String::new(),
                };
                Ok((vec![row; n], Vec::new()))
            }
        }));
        let mut w = LogWindow::default();
        w.reload(Some(&source)); // returns although the service has not answered
        assert!(w.poll(Some(&source)), "still fetching");
        w.reload(Some(&source));
        w.reload(Some(&source));
        assert!(w.entries.is_empty());
        release.send(()).unwrap();
        let wait = |w: &mut LogWindow, rows: usize| {
            let t0 = std::time::Instant::now();
            while w.entries.len() != rows {
                assert!(t0.elapsed() < Duration::from_secs(10), "no answer taken: {:?}", w.error);
                w.poll(Some(&source));
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        wait(&mut w, 1);
        // The two reloads asked while the first fetch ran: one more fetch, now running.
        assert!(w.poll(Some(&source)));
        release.send(()).unwrap();
        wait(&mut w, 2);
        assert!(!w.poll(Some(&source)));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(w.error, None);
        // A fetch that fails shows the service's reason and keeps the rows.
        drop(release);
        w.reload(Some(&source));
        let t0 = std::time::Instant::now();
        while w.poll(Some(&source)) {
            assert!(t0.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(w.entries.len(), 2);
        assert!(
            w.error
                .as_deref()
                .is_some_and(|e| e.contains("the till-agent service") && e.contains("gate dropped")),
            "{:?}",
            w.error
        );
    }

    /// The window laid out headlessly (egui without a display) at its default size in every
    /// language, with long messages: the table fits the window's width (nothing cut off).
    #[test]
    fn sync_log_table_fits_its_window_in_every_language() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("outbox.db");
        drop(crate::sync::outbox::Outbox::open(&db).unwrap());
        let log = crate::synclog::SyncLog::open(&db).unwrap();
        for i in 0..30 {
            log.warn(
                "retry",
                Some(&format!("{i:064x}")),
                &format!("{i} item(s) not sent: server unreachable: error sending request for url (http://127.0.0.1:9/v1/receipts/batch): client error (Connect); retrying with backoff"),
            );
        }
        for lang in Lang::ALL {
            let mut w = LogWindow::default();
            w.reload(Some(&SyncLogSource::File(db.clone())));
            assert_eq!(w.entries.len(), 30);
            let ctx = egui::Context::default();
            let input = egui::RawInput {
                screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(900.0, 520.0))),
                ..Default::default()
            };
            let mut used = egui::Rect::NOTHING;
            let mut content_w = 0.0;
            let _ = ctx.run_ui(input, |ui| {
                egui::CentralPanel::default().show_inside(ui, |ui| {
                    sync_log_ui(ui, lang, &mut w, Some(&SyncLogSource::File(db.clone())), None, |_| {});
                    used = ui.min_rect();
                    content_w = ui.available_width();
                });
            });
            let win = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(900.0, 520.0));
            assert!(!is_clipped(used, win), "{lang:?}: drawn to {used:?}");
            assert!(content_w > 0.0);
        }
        // The check sees it when a window is too narrow for the table's fixed columns.
        let mut w = LogWindow::default();
        w.reload(Some(&SyncLogSource::File(db.clone())));
        let ctx = egui::Context::default();
        let win = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(300.0, 520.0));
        let mut used = egui::Rect::NOTHING;
        let _ = ctx.run_ui(
            egui::RawInput {
                screen_rect: Some(win),
                ..Default::default()
            },
            |ui| {
                egui::CentralPanel::default().show_inside(ui, |ui| {
                    sync_log_ui(
                        ui,
                        Lang::Cs,
                        &mut w,
                        Some(&SyncLogSource::File(db.clone())),
                        None,
                        |_| {},
                    );
                    used = ui.min_rect();
                });
            },
        );
        assert!(
            is_clipped(used, win),
            "a 300 pt window must be reported as clipped: {used:?}"
        );
    }
}
