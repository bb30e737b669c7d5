//! report.html and compare.html in a real browser (headless Chromium): no
//! console error, no broken image, every chart drawn, and a screenshot that
//! shows something. Screenshots are kept under the target directory
//! (tmp/browser/) for people to look at.

mod browser;
mod common;
mod contract;

use std::path::{Path, PathBuf};

use browser::Browser;
use common::run;
use serde_json::Value;

/// Everything a page is checked for, measured inside the page.
const PAGE_CHECK: &str = r#"JSON.stringify({
  title: document.title,
  text: document.body.innerText.length,
  broken_images: [...document.images]
    .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
  charts: [...document.querySelectorAll('figure svg')].map(s => {
    const r = s.getBoundingClientRect();
    const points = [...s.querySelectorAll('polyline')]
      .map(p => (p.getAttribute('points') || '').trim().split(/\s+/).length);
    return { id: s.closest('figure').id, width: r.width, height: r.height,
             longest_line: Math.max(0, ...points),
             marks: s.querySelectorAll('circle').length,
             paths: s.querySelectorAll('path').length };
  })
})"#;

fn qualify_fsync(dir: &Path, out: &Path) -> PathBuf {
    let r = run(&[
        "qualify",
        "--quick",
        "--probes",
        "fsync",
        "--dir",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(matches!(r.code, 0 | 1), "qualify: {}{}", r.stdout, r.stderr);
    let report = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .expect("report path printed");
    Path::new(report).parent().unwrap().to_path_buf()
}

/// Share of pixels that are not near-white, and of pixels in the chart
/// palette's first two colours (blue A, orange B): lines actually painted.
fn ink(png_bytes: &[u8]) -> (f64, u64, u64) {
    let decoder = png::Decoder::new(png_bytes);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let px = &buf[..info.buffer_size()];
    let (mut inked, mut blue, mut orange, mut total) = (0u64, 0u64, 0u64, 0u64);
    for p in px.chunks(channels) {
        let (r, g, b) = (i32::from(p[0]), i32::from(p[1]), i32::from(p[2]));
        total += 1;
        if r < 240 || g < 240 || b < 240 {
            inked += 1;
        }
        let near = |c: (i32, i32, i32)| (r - c.0).abs() + (g - c.1).abs() + (b - c.2).abs() < 60;
        blue += u64::from(near((31, 119, 180)));
        orange += u64::from(near((255, 127, 14)));
    }
    (inked as f64 / total as f64, blue, orange)
}

fn check_page(browser: &mut Browser, file: &Path, shots: &Path, name: &str) -> Value {
    let url = format!("file://{}", file.canonicalize().unwrap().display());
    browser.load(&url);
    let page = browser.eval_json(PAGE_CHECK);
    let errors = browser.errors();
    assert!(errors.is_empty(), "{name}: console errors: {errors:?}");
    assert_eq!(
        page["broken_images"],
        serde_json::json!([]),
        "{name}: broken images"
    );
    let charts = page["charts"].as_array().unwrap();
    assert!(!charts.is_empty(), "{name}: no charts: {page}");
    for c in charts {
        assert!(
            c["width"].as_f64().unwrap() > 300.0 && c["height"].as_f64().unwrap() > 150.0,
            "{name}: chart not laid out: {c}"
        );
        // Data is a line of 3+ points (legend swatches have 2) or, for a
        // series of one or two points, its point marks.
        assert!(
            c["longest_line"].as_u64().unwrap() >= 3 || c["marks"].as_u64().unwrap() >= 1,
            "{name}: empty chart (no data drawn): {c}"
        );
    }
    let png_bytes = browser.screenshot(4000.0);
    let path = shots.join(format!("{name}.png"));
    std::fs::write(&path, &png_bytes).unwrap();
    let (inked, blue, orange) = ink(&png_bytes);
    eprintln!(
        "{name}: {} charts, {} chars of text, screenshot {} ({:.1} % inked, {blue} blue px, {orange} orange px)",
        charts.len(),
        page["text"],
        path.display(),
        inked * 100.0
    );
    assert!(
        inked > 0.02,
        "{name}: screenshot is blank ({:.2} % inked)",
        inked * 100.0
    );
    assert!(
        blue > 200,
        "{name}: no chart line painted in the screenshot"
    );
    page
}

#[test]
fn report_and_compare_pages_render_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let runs = tmp.path().join("runs");
    let a = qualify_fsync(&disk, &runs);
    let b = qualify_fsync(&disk, &runs);
    let cmp = tmp.path().join("cmp");
    let r = run(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--label-a",
        "first",
        "--label-b",
        "second",
        "--out",
        cmp.to_str().unwrap(),
    ]);
    assert!(matches!(r.code, 0 | 1), "compare: {}{}", r.stdout, r.stderr);
    assert_eq!(contract::assert_bundles_under(&runs), 2);

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots).unwrap();
    let mut browser = Browser::launch(&tmp.path().join("chromium-profile"));
    browser.open_page();
    let report = check_page(&mut browser, &a.join("report.html"), &shots, "report");
    assert!(report["title"].as_str().unwrap().starts_with("infraqual"));
    let compare = check_page(&mut browser, &cmp.join("compare.html"), &shots, "compare");
    let (_, _, orange) = ink(&std::fs::read(shots.join("compare.png")).unwrap());
    assert!(orange > 200, "compare: run B's line is painted too");
    assert!(compare["title"]
        .as_str()
        .unwrap()
        .contains("first vs second"));
}
