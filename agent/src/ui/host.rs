//! The window host: our own winit event loop running egui's viewports, with egui's output
//! rasterised on the CPU (`egui_software_backend`) and presented with softbuffer (X11: MIT-SHM or
//! `PutImage`; Windows: GDI). No GL driver is loaded, so an idle agent does not carry mesa/LLVM.
//!
//! The root viewport is the popup; every other viewport is a *deferred* one registered by the
//! root pass (`Context::show_viewport_deferred`): its window is created when it first appears in
//! egui's viewport output and closed when a pass no longer lists it. A viewport runs a pass (and
//! paints) when egui asks for a repaint of it (its own input, `request_repaint_of`, a timer) or
//! when the window system asks for a redraw (expose). Repaints are never throttled: a wake-up of
//! the hidden popup runs its pass at once.
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use egui::{ViewportBuilder, ViewportCommand, ViewportId, ViewportIdPair, ViewportInfo, ViewportOutput};
use egui_software_backend::{BufferMutRef, ColorFieldOrder, EguiSoftwareRender};
use winit::application::ApplicationHandler;
use winit::event::{DeviceEvent, DeviceId, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoopProxy, OwnedDisplayHandle};
use winit::window::{Window, WindowId};

/// What the host runs in the root viewport (the popup).
pub(super) trait HostApp {
    /// Every root pass, whether the popup shows or not (messages, timers, registering windows).
    fn logic(&mut self, ctx: &egui::Context, root: &Window);
    /// The popup's content (a pass of the root viewport, after `logic`).
    fn ui(&mut self, ui: &mut egui::Ui);
}

/// Built once the root window exists (it needs the egui context and the window).
pub(super) type MakeApp<A> = Box<dyn FnOnce(&egui::Context, &Window) -> anyhow::Result<A>>;

#[derive(Debug)]
pub(super) enum HostEvent {
    /// egui asked for a pass of `viewport` at `when` (from `Context::set_request_repaint_callback`).
    Repaint {
        viewport: ViewportId,
        when: Instant,
        pass_nr: u64,
    },
}

type Surface = softbuffer::Surface<OwnedDisplayHandle, Rc<Window>>;

struct Viewport {
    ids: ViewportIdPair,
    builder: ViewportBuilder,
    ui_cb: Option<Arc<egui::DeferredViewportUiCallback>>,
    info: ViewportInfo,
    commands: Vec<ViewportCommand>,
    actions: Vec<egui_winit::ActionRequested>,
    window: Option<Rc<Window>>,
    state: Option<egui_winit::State>,
    surface: Option<Surface>,
}

impl Viewport {
    fn new(
        ids: ViewportIdPair,
        builder: ViewportBuilder,
        ui_cb: Option<Arc<egui::DeferredViewportUiCallback>>,
    ) -> Self {
        Viewport {
            ids,
            builder,
            ui_cb,
            info: ViewportInfo::default(),
            commands: Vec::new(),
            actions: Vec::new(),
            window: None,
            state: None,
            surface: None,
        }
    }
}

pub(super) struct Host<A: HostApp, F: Fn()> {
    ctx: egui::Context,
    make: Option<MakeApp<A>>,
    app: Option<A>,
    softbuffer: Option<softbuffer::Context<OwnedDisplayHandle>>,
    /// One rasteriser for every window: egui's textures (the font atlas) are shared by all
    /// viewports, and each delta arrives with whichever pass produced it.
    render: EguiSoftwareRender,
    viewports: BTreeMap<ViewportId, Viewport>,
    by_window: HashMap<WindowId, ViewportId>,
    due: HashMap<ViewportId, Instant>,
    start: Instant,
    /// Esc seen as a raw keyboard device event (the popup never has the focus).
    on_escape: F,
    /// Why the loop ended early (window or app creation failed).
    pub error: Option<anyhow::Error>,
}

impl<A: HostApp, F: Fn()> Host<A, F> {
    pub fn new(
        ctx: egui::Context,
        root: ViewportBuilder,
        make: MakeApp<A>,
        proxy: EventLoopProxy<HostEvent>,
        on_escape: F,
    ) -> Self {
        ctx.set_embed_viewports(false);
        ctx.options_mut(|o| o.max_passes = std::num::NonZeroUsize::new(2).expect("2 > 0"));
        ctx.set_request_repaint_callback(move |info| {
            let _ = proxy.send_event(HostEvent::Repaint {
                viewport: info.viewport_id,
                when: Instant::now() + info.delay,
                pass_nr: info.current_cumulative_pass_nr,
            });
        });
        let mut viewports = BTreeMap::new();
        viewports.insert(ViewportId::ROOT, Viewport::new(ViewportIdPair::ROOT, root, None));
        Host {
            ctx,
            make: Some(make),
            app: None,
            softbuffer: None,
            render: EguiSoftwareRender::new(ColorFieldOrder::Bgra),
            viewports,
            by_window: HashMap::new(),
            due: HashMap::new(),
            start: Instant::now(),
            on_escape,
            error: None,
        }
    }

    fn fail(&mut self, el: &ActiveEventLoop, e: anyhow::Error) {
        tracing::error!("GUI: {e:#}");
        self.error.get_or_insert(e);
        el.exit();
    }

    /// Create the window, input state and surface of every viewport that lacks them.
    fn create_windows(&mut self, el: &ActiveEventLoop) -> anyhow::Result<()> {
        let ctx = self.ctx.clone();
        if self.softbuffer.is_none() {
            self.softbuffer = Some(
                softbuffer::Context::new(el.owned_display_handle())
                    .map_err(|e| anyhow::anyhow!("cannot open a softbuffer context: {e}"))?,
            );
        }
        let Some(sb) = self.softbuffer.as_ref() else {
            return Ok(());
        };
        for (id, vp) in self.viewports.iter_mut() {
            let window = match &vp.window {
                Some(w) => w.clone(),
                None => {
                    let w = egui_winit::create_window(&ctx, el, &vp.builder)
                        .map_err(|e| anyhow::anyhow!("cannot create a window for {id:?}: {e}"))?;
                    egui_winit::update_viewport_info(&mut vp.info, &ctx, &w, true);
                    let w = Rc::new(w);
                    tracing::debug!(target: "till_agent::ui", viewport = ?id, title = ?vp.builder.title, "window created");
                    vp.window = Some(w.clone());
                    vp.surface = None;
                    vp.state = None;
                    w
                }
            };
            self.by_window.insert(window.id(), *id);
            if vp.state.is_none() {
                vp.state = Some(egui_winit::State::new(
                    ctx.clone(),
                    *id,
                    el,
                    Some(window.scale_factor() as f32),
                    el.system_theme(),
                    None,
                ));
            }
            if vp.surface.is_none() {
                vp.surface = Some(
                    softbuffer::Surface::new(sb, window.clone())
                        .map_err(|e| anyhow::anyhow!("cannot open a softbuffer surface: {e}"))?,
                );
            }
        }
        Ok(())
    }

    /// Run one pass of `id` and paint it.
    fn run_pass(&mut self, el: &ActiveEventLoop, id: ViewportId) {
        self.due.remove(&id);
        let Some(app) = self.app.as_mut() else { return };
        let Some(vp) = self.viewports.get_mut(&id) else { return };
        let (Some(window), Some(state)) = (vp.window.clone(), vp.state.as_mut()) else {
            return;
        };
        egui_winit::update_viewport_info(&mut vp.info, &self.ctx, &window, false);
        let mut input = state.take_egui_input(&window);
        input.time = Some(self.start.elapsed().as_secs_f64());
        let ui_cb = vp.ui_cb.clone();
        input.viewports = self.viewports.iter().map(|(id, v)| (*id, v.info.clone())).collect();
        let close_requested = input.viewport().close_requested();
        let output = self.ctx.run_ui(input, |ui| match &ui_cb {
            Some(cb) => cb(ui),
            None => {
                app.logic(ui.ctx(), &window);
                app.ui(ui);
            }
        });
        let egui::FullOutput {
            platform_output,
            textures_delta,
            shapes,
            pixels_per_point,
            viewport_output,
        } = output;
        if id == ViewportId::ROOT && close_requested {
            let cancelled = viewport_output
                .get(&ViewportId::ROOT)
                .is_some_and(|o| o.commands.contains(&ViewportCommand::CancelClose));
            if !cancelled {
                tracing::info!(target: "till_agent::ui", "root window closed: leaving the GUI loop");
                el.exit();
            }
        }
        if let Some(vp) = self.viewports.get_mut(&id) {
            vp.info.events.clear();
            if let Some(state) = vp.state.as_mut() {
                state.handle_platform_output(&window, platform_output);
            }
        }
        // Window changes first (map, move, resize), then the paint lands in the window as it now is.
        self.handle_viewport_output(el, viewport_output);
        let primitives = self.ctx.tessellate(shapes, pixels_per_point);
        self.paint(id, &primitives, &textures_delta, pixels_per_point);
        self.take_actions(id);
    }

    fn paint(&mut self, id: ViewportId, primitives: &[egui::ClippedPrimitive], delta: &egui::TexturesDelta, ppp: f32) {
        let Some(vp) = self.viewports.get_mut(&id) else {
            // The window closed in this pass; its texture changes still count.
            self.render.render_to_canvas(1, 1, &[], delta, ppp.max(0.1));
            return;
        };
        let (Some(window), Some(surface)) = (vp.window.as_ref(), vp.surface.as_mut()) else {
            return;
        };
        let size = window.inner_size();
        let (Some(w), Some(h)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else {
            return;
        };
        if let Err(e) = surface.resize(w, h) {
            tracing::warn!("GUI: cannot resize the window buffer to {}x{}: {e}", w, h);
            return;
        }
        let mut buffer = match surface.buffer_mut() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("GUI: no window buffer: {e}");
                return;
            }
        };
        rasterise(
            &mut self.render,
            &mut buffer,
            (w.get() as usize, h.get() as usize),
            primitives,
            delta,
            ppp,
        );
        if let Err(e) = buffer.present() {
            tracing::warn!("GUI: cannot present the window buffer: {e}");
        }
    }

    /// Clipboard requests a pass made through viewport commands go back as input events.
    fn take_actions(&mut self, id: ViewportId) {
        let Some(vp) = self.viewports.get_mut(&id) else { return };
        let Some(state) = vp.state.as_mut() else { return };
        for a in std::mem::take(&mut vp.actions) {
            let ev = match a {
                egui_winit::ActionRequested::Cut => egui::Event::Cut,
                egui_winit::ActionRequested::Copy => egui::Event::Copy,
                egui_winit::ActionRequested::Paste => match state.clipboard_text() {
                    Some(t) if !t.is_empty() => egui::Event::Paste(t.replace("\r\n", "\n")),
                    _ => continue,
                },
                egui_winit::ActionRequested::Screenshot(_) => continue,
            };
            state.egui_input_mut().events.push(ev);
            self.ctx.request_repaint_of(id);
        }
    }

    /// Create, update and close windows as the pass's viewport output says.
    fn handle_viewport_output(&mut self, el: &ActiveEventLoop, output: egui::OrderedViewportIdMap<ViewportOutput>) {
        for (id, out) in &output {
            let ids = ViewportIdPair::from_self_and_parent(*id, out.parent);
            let vp = match self.viewports.entry(*id) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    tracing::debug!(target: "till_agent::ui", viewport = ?id, title = ?out.builder.title, "viewport opened");
                    e.insert(Viewport::new(ids, out.builder.clone(), out.viewport_ui_cb.clone()))
                }
                std::collections::btree_map::Entry::Occupied(e) => {
                    let vp = e.into_mut();
                    vp.ids.parent = ids.parent;
                    if out.viewport_ui_cb.is_some() || *id == ViewportId::ROOT {
                        vp.ui_cb = out.viewport_ui_cb.clone();
                    }
                    let (mut delta, recreate) = vp.builder.patch(out.builder.clone());
                    if recreate {
                        if let Some(w) = vp.window.take() {
                            self.by_window.remove(&w.id());
                        }
                        vp.state = None;
                        vp.surface = None;
                    }
                    vp.commands.append(&mut delta);
                    vp
                }
            };
            vp.commands.extend(out.commands.iter().cloned());
            if let Some(window) = vp.window.clone() {
                egui_winit::process_viewport_commands(
                    &self.ctx,
                    &mut vp.info,
                    std::mem::take(&mut vp.commands),
                    &window,
                    &mut vp.actions,
                );
            }
        }
        // Viewports no pass registers any more: their windows close.
        let gone: Vec<ViewportId> = self
            .viewports
            .keys()
            .filter(|id| **id != ViewportId::ROOT && !output.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(vp) = self.viewports.remove(&id) {
                tracing::debug!(target: "till_agent::ui", viewport = ?id, "viewport closed");
                if let Some(w) = vp.window {
                    self.by_window.remove(&w.id());
                }
            }
            self.due.remove(&id);
        }
        let missing = self.viewports.values().any(|v| v.window.is_none());
        if missing {
            if let Err(e) = self.create_windows(el) {
                tracing::warn!("GUI: {e:#}");
            }
            // A new window runs its first pass right away (its content, its size).
            let new: Vec<ViewportId> = self
                .viewports
                .iter()
                .filter(|(_, v)| v.window.is_some())
                .map(|(id, _)| *id)
                .filter(|id| self.ctx.cumulative_pass_nr_for(*id) == 0)
                .collect();
            for id in new {
                self.due.entry(id).or_insert_with(Instant::now);
            }
        }
    }

    fn schedule(&mut self, id: ViewportId, when: Instant) {
        if !self.viewports.contains_key(&id) {
            return;
        }
        let at = self.due.entry(id).or_insert(when);
        if when < *at {
            *at = when;
        }
    }
}

/// Draw egui's primitives into a window buffer of `size` pixels: white, then egui's canvas
/// blended over it, as softbuffer's 0RGB words (`0x00RRGGBB`).
fn rasterise(
    render: &mut EguiSoftwareRender,
    buffer: &mut [u32],
    size: (usize, usize),
    primitives: &[egui::ClippedPrimitive],
    delta: &egui::TexturesDelta,
    ppp: f32,
) {
    buffer.fill(0x00ff_ffff);
    {
        // Bgra bytes in memory are 0xAARRGGBB as a little-endian word: the alpha byte is cleared below.
        let pixels: &mut [[u8; 4]] = bytemuck::cast_slice_mut(buffer);
        let mut target = BufferMutRef::new(pixels, size.0, size.1);
        render.render(&mut target, primitives, delta, ppp);
    }
    for p in buffer.iter_mut() {
        *p &= 0x00ff_ffff;
    }
}

impl<A: HostApp, F: Fn()> ApplicationHandler<HostEvent> for Host<A, F> {
    fn resumed(&mut self, el: &ActiveEventLoop) {
        if self.app.is_some() || self.error.is_some() {
            return;
        }
        if let Err(e) = self.create_windows(el) {
            return self.fail(el, e);
        }
        let Some(root) = self.viewports.get(&ViewportId::ROOT).and_then(|v| v.window.clone()) else {
            return self.fail(el, anyhow::anyhow!("no root window"));
        };
        let Some(make) = self.make.take() else { return };
        match make(&self.ctx, &root) {
            Ok(app) => self.app = Some(app),
            Err(e) => return self.fail(el, e),
        }
        self.schedule(ViewportId::ROOT, Instant::now());
    }

    fn user_event(&mut self, _el: &ActiveEventLoop, ev: HostEvent) {
        match ev {
            HostEvent::Repaint {
                viewport,
                when,
                pass_nr,
            } => {
                let now_nr = self.ctx.cumulative_pass_nr_for(viewport);
                if now_nr == pass_nr || now_nr == pass_nr + 1 {
                    self.schedule(viewport, when);
                }
            }
        }
    }

    fn window_event(&mut self, el: &ActiveEventLoop, wid: WindowId, ev: WindowEvent) {
        let Some(id) = self.by_window.get(&wid).copied() else {
            return;
        };
        match &ev {
            WindowEvent::RedrawRequested => {
                self.run_pass(el, id);
                return;
            }
            WindowEvent::CloseRequested => {
                if let Some(vp) = self.viewports.get_mut(&id) {
                    vp.info.events.push(egui::ViewportEvent::Close);
                    let parent = vp.ids.parent;
                    self.ctx.request_repaint_of(id);
                    self.ctx.request_repaint_of(parent);
                }
            }
            WindowEvent::Resized(_) | WindowEvent::ScaleFactorChanged { .. } => {
                self.schedule(id, Instant::now());
            }
            _ => {}
        }
        let Some(vp) = self.viewports.get_mut(&id) else { return };
        let (Some(window), Some(state)) = (vp.window.as_ref(), vp.state.as_mut()) else {
            return;
        };
        if state.on_window_event(window, &ev).repaint {
            self.schedule(id, Instant::now());
        }
    }

    fn device_event(&mut self, _el: &ActiveEventLoop, _id: DeviceId, ev: DeviceEvent) {
        use winit::keyboard::{KeyCode, PhysicalKey};
        if let DeviceEvent::Key(k) = &ev {
            if k.physical_key == PhysicalKey::Code(KeyCode::Escape) && k.state == winit::event::ElementState::Pressed {
                (self.on_escape)();
            }
        }
    }

    fn about_to_wait(&mut self, el: &ActiveEventLoop) {
        // Due passes, the root first (it registers the other windows); a pass may make more due.
        for _ in 0..8 {
            let now = Instant::now();
            let mut ready: Vec<ViewportId> = self.due.iter().filter(|(_, t)| **t <= now).map(|(id, _)| *id).collect();
            if ready.is_empty() {
                break;
            }
            ready.sort_by_key(|id| *id != ViewportId::ROOT);
            for id in ready {
                self.run_pass(el, id);
            }
        }
        match self.due.values().min() {
            Some(t) => el.set_control_flow(ControlFlow::WaitUntil(*t)),
            None => el.set_control_flow(ControlFlow::Wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU path the windows use: a red block, a green stroke and black text on white come out
    /// as 0RGB words in the right places (a swapped colour order or an empty canvas fails here).
    #[test]
    fn rasterise_draws_egui_text_and_colours_as_0rgb() {
        let ctx = egui::Context::default();
        let (w, h) = (240usize, 120usize);
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(w as f32, h as f32),
            )),
            ..Default::default()
        };
        let out = ctx.run_ui(input, |ui| {
            let p = ui.painter();
            p.rect_filled(
                egui::Rect::from_min_size(egui::pos2(10.0, 10.0), egui::vec2(40.0, 30.0)),
                0.0,
                egui::Color32::from_rgb(0xc6, 0x28, 0x28),
            );
            p.rect_filled(
                egui::Rect::from_min_size(egui::pos2(60.0, 10.0), egui::vec2(40.0, 30.0)),
                0.0,
                egui::Color32::from_rgb(0x2e, 0x7d, 0x32),
            );
            p.text(
                egui::pos2(10.0, 60.0),
                egui::Align2::LEFT_TOP,
                "Jiří Čermák",
                egui::FontId::proportional(28.0),
                egui::Color32::BLACK,
            );
        });
        let prims = ctx.tessellate(out.shapes, out.pixels_per_point);
        let mut render = EguiSoftwareRender::new(ColorFieldOrder::Bgra);
        let mut buf = vec![0u32; w * h];
        rasterise(
            &mut render,
            &mut buf,
            (w, h),
            &prims,
            &out.textures_delta,
            out.pixels_per_point,
        );
        let at = |x: usize, y: usize| buf[y * w + x];
        assert_eq!(at(30, 25), 0x00c6_2828, "red block");
        assert_eq!(at(80, 25), 0x002e_7d32, "green block");
        assert_eq!(at(200, 25), 0x00ff_ffff, "background");
        // The text row: some dark pixels (glyphs from the font atlas), and mostly still white.
        let row = &buf[60 * w..100 * w];
        let dark = row.iter().filter(|p| (**p & 0xff) < 0x40).count();
        assert!(dark > 200, "text not drawn: {dark} dark pixels");
        assert!(buf.iter().all(|p| p >> 24 == 0), "the top byte must stay 0 (0RGB)");
        // A second frame with nothing new keeps the same picture (the renderer's cache).
        let before = buf.clone();
        let out2 = ctx.run_ui(
            egui::RawInput {
                screen_rect: Some(egui::Rect::from_min_size(
                    egui::Pos2::ZERO,
                    egui::vec2(w as f32, h as f32),
                )),
                ..Default::default()
            },
            |ui| {
                let p = ui.painter();
                p.rect_filled(
                    egui::Rect::from_min_size(egui::pos2(10.0, 10.0), egui::vec2(40.0, 30.0)),
                    0.0,
                    egui::Color32::from_rgb(0xc6, 0x28, 0x28),
                );
            },
        );
        let prims = ctx.tessellate(out2.shapes, out2.pixels_per_point);
        rasterise(
            &mut render,
            &mut buf,
            (w, h),
            &prims,
            &out2.textures_delta,
            out2.pixels_per_point,
        );
        assert_eq!(buf[25 * w + 30], before[25 * w + 30]);
        assert_eq!(
            buf[25 * w + 80],
            0x00ff_ffff,
            "the green block is gone in the second frame"
        );
    }
}
