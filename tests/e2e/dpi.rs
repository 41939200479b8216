//! End-to-end: the popup is DPI aware and grows with `[popup] font_scale` (real popup under
//! Xvfb via the `popup-demo` hook). Scale factor 2 is what winit 0.30 reads from
//! `WINIT_X11_SCALE_FACTOR` (it also honours `Xft.dpi`; the env variable needs no xrdb).
//! Checked: physical size ≈ 2× the 1× size, fully on screen at the configured corner (margins
//! in logical pixels, so 2× as many physical ones), and no text clipped (the content's
//! non-white bounding box lies inside the frame's margin).
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::*;

const SCREEN: (i64, i64) = (1920, 1200);

struct Shown {
    x: i64,
    y: i64,
    w: i64,
    h: i64,
    shot: std::path::PathBuf,
}

/// Run `popup-demo` for the Czech customer quote on a fresh X server; geometry + screenshot.
fn show(name: &str, scale: Option<&str>, popup_toml: &str) -> Shown {
    let xv = start_xvfb(SCREEN.0 as u32, SCREEN.1 as u32);
    let d = xv.display.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("popup.toml");
    std::fs::write(&cfg, popup_toml).unwrap();
    let err = tmp.path().join("err.txt");
    let mut cmd = Command::new(bin("till-agent"));
    cmd.args([
        "popup-demo",
        "--quote",
        fixture("ui/quote-customer-cs.json").to_str().unwrap(),
        "--lang",
        "cs",
        "--no-tray",
        "--popup-config",
    ])
    .arg(&cfg)
    .env("DISPLAY", d)
    .env("XDG_RUNTIME_DIR", tmp.path())
    .env("TILL_AGENT_LOG", "info,till_agent::ui=debug")
    .env_remove("WINIT_X11_SCALE_FACTOR")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&err).unwrap());
    if let Some(s) = scale {
        cmd.env("WINIT_X11_SCALE_FACTOR", s);
    }
    let mut gui = Proc::spawn("till-agent popup-demo", &mut cmd);
    let stderr = || std::fs::read_to_string(&err).unwrap_or_default();
    let win = wait_for(Duration::from_secs(30), || {
        stderr().contains("popup fitted").then_some(())?;
        find_window(d, "till-agent popup")
    })
    .unwrap_or_else(|| panic!("{name}: no popup; log:\n{}", stderr()));
    std::thread::sleep(Duration::from_millis(800)); // resize, move and paint settle
    let geo = win_info(d, win);
    let shots = e2e::bin_dir().join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(format!("popup-{name}.png"));
    x_ok(d, "import", &["-window", "root", shot.to_str().unwrap()]);
    if let Some(s) = scale {
        assert!(
            stderr().contains(&format!("ppp={s}")),
            "{name}: scale factor {s} not applied:\n{}",
            stderr()
        );
    }
    gui.kill();
    Shown {
        x: geo.x,
        y: geo.y,
        w: geo.w,
        h: geo.h,
        shot,
    }
}

/// `convert … -format %@` of the non-white content inside the frame (stroke shaved off):
/// (x, y, w, h) relative to the inner area of size (iw, ih).
fn content_bbox(shot: &Path, s: &Shown, stroke: i64) -> ((i64, i64, i64, i64), (i64, i64)) {
    let crop = format!(
        "{}x{}+{}+{}",
        s.w - 2 * stroke,
        s.h - 2 * stroke,
        s.x + stroke,
        s.y + stroke
    );
    let out = Command::new("convert")
        .arg(shot)
        .args(["-crop", &crop, "+repage", "-fuzz", "8%", "-format", "%@", "info:"])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (wh, rest) = t.split_once('+').unwrap_or_else(|| panic!("convert said {t:?}"));
    let (w, h) = wh.split_once('x').unwrap();
    let (x0, y0) = rest.split_once('+').unwrap();
    (
        (
            x0.parse().unwrap(),
            y0.parse().unwrap(),
            w.parse().unwrap(),
            h.parse().unwrap(),
        ),
        (s.w - 2 * stroke, s.h - 2 * stroke),
    )
}

fn assert_not_clipped(name: &str, s: &Shown, k: i64) {
    // Frame: stroke 6, inner margin 18 (logical) × font_scale × DPI factor `k`.
    let (stroke, margin) = (6 * k, 18 * k);
    let ((bx, by, bw, bh), (iw, ih)) = content_bbox(&s.shot, s, stroke);
    assert!(
        bw > iw / 3 && bh > ih / 2,
        "{name}: hardly any text drawn: bbox {bw}x{bh}+{bx}+{by} in {iw}x{ih}"
    );
    // All text inside the margin (with a little tolerance for anti-aliasing): nothing cut off.
    let tol = 3 * k;
    assert!(
        bx >= margin - tol && by >= margin - tol,
        "{name}: text starts in the margin: +{bx}+{by}"
    );
    assert!(
        bx + bw <= iw - margin + tol && by + bh <= ih - margin + tol,
        "{name}: text runs into the edge: {bw}x{bh}+{bx}+{by} in {iw}x{ih} (margin {margin})"
    );
}

fn assert_bottom_right(name: &str, s: &Shown, k: i64) {
    assert!(
        s.x >= 0 && s.y >= 0 && s.x + s.w <= SCREEN.0 && s.y + s.h <= SCREEN.1,
        "{name}: not fully on screen: {}x{}+{}+{}",
        s.w,
        s.h,
        s.x,
        s.y
    );
    // margin 16, plus 40 for a bottom panel — logical pixels.
    assert_eq!(
        (s.x + s.w, s.y + s.h),
        (SCREEN.0 - 16 * k, SCREEN.1 - 56 * k),
        "{name}: {}x{}+{}+{}",
        s.w,
        s.h,
        s.x,
        s.y
    );
}

fn near(a: i64, b: i64, tol_percent: i64) -> bool {
    (a - b).abs() * 100 <= b.abs() * tol_percent
}

#[test]
fn popup_is_dpi_aware_and_grows_with_font_scale() {
    if !need_tools(&["Xvfb", "xdpyinfo", "xdotool", "xwininfo", "import", "convert"]) {
        return;
    }
    let one = show("cs-dpi1", None, "");
    assert_bottom_right("1x", &one, 1);
    assert_not_clipped("1x", &one, 1);

    // Scale factor 2: twice the physical size, same corner, nothing clipped.
    let two = show("cs-dpi2", Some("2"), "");
    eprintln!(
        "1x: {}x{}+{}+{}  2x: {}x{}+{}+{}",
        one.w, one.h, one.x, one.y, two.w, two.h, two.x, two.y
    );
    assert!(
        near(two.w, 2 * one.w, 2) && near(two.h, 2 * one.h, 5),
        "2x popup {}x{} vs 1x {}x{}",
        two.w,
        two.h,
        one.w,
        one.h
    );
    assert_bottom_right("2x", &two, 2);
    assert_not_clipped("2x", &two, 2);

    // font_scale 2 at DPI 1: the same layout, twice as big; at the same corner.
    let big = show("cs-font2", None, "font_scale = 2.0\n");
    assert!(
        near(big.w, 2 * one.w, 2) && near(big.h, 2 * one.h, 5),
        "font_scale 2 popup {}x{} vs {}x{}",
        big.w,
        big.h,
        one.w,
        one.h
    );
    assert_bottom_right("font_scale 2", &big, 1);
    assert_not_clipped("font_scale 2", &big, 2);

    // Both together, top-left: still fully on screen.
    let both = show(
        "cs-dpi2-font1_5-topleft",
        Some("2"),
        "font_scale = 1.5\nposition = \"top-left\"\n",
    );
    assert_eq!((both.x, both.y), (32, 32), "top-left margin 16 logical = 32 physical");
    assert!(
        both.x + both.w <= SCREEN.0 && both.y + both.h <= SCREEN.1,
        "{}x{}+{}+{}",
        both.w,
        both.h,
        both.x,
        both.y
    );
    // 3 × the 1× width would not fit: capped at the screen minus both margins, the text wraps.
    assert!(
        both.w > 2 * one.w && both.w <= SCREEN.0 - 2 * 32,
        "{} vs 3 × {}",
        both.w,
        one.w
    );
    assert!(
        both.h > 3 * one.h,
        "wrapped text is taller: {} vs 3 × {}",
        both.h,
        one.h
    );
    assert_not_clipped("2x + font_scale 1.5", &both, 3);
}
