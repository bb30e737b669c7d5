//! report.html and compare.html in a real browser (headless Chromium): no
//! console error, no broken image, every chart drawn, a screenshot that
//! shows something, the answers block first after the title, and no raw
//! fact key of run.json visible outside the folded `<details>` blocks. The
//! 3-node lab report is at most half as tall as before the answers-first
//! layout. Screenshots are kept under the target directory (tmp/browser/)
//! for people to look at.

mod browser;
mod common;
mod contract;
mod junit;

use std::path::{Path, PathBuf};

use browser::Browser;
use common::run;
use infraqual::lab::{self, LabGuard, LabSpec, Region};
use infraqual_probes::require_caps;
use serde_json::Value;

/// The page height (CSS pixels) of the 3-node Oslo/Frankfurt lab report
/// (2 regions, native and overlay paths, the lab's plan) before the
/// answers-first layout, measured in this browser at 1280 px wide.
const LAB_REPORT_HEIGHT_BEFORE: f64 = 23_534.0;

/// What comes first after the title (h1 and its meta line), the page
/// height, and the text a reader sees outside `<details>` (SVG text
/// included, styles left out).
const LAYOUT_CHECK: &str = r#"(() => {
  let e = document.querySelector('h1').nextElementSibling;
  while (e && e.matches('p.meta')) e = e.nextElementSibling;
  const body = document.body.cloneNode(true);
  body.querySelectorAll('details, style').forEach(d => d.remove());
  return JSON.stringify({
    first_after_title: e ? (e.id || e.tagName) : null,
    height: document.documentElement.scrollHeight,
    visible_text: body.textContent
  });
})()"#;

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
             rects: s.querySelectorAll('rect').length,
             paths: s.querySelectorAll('path').length };
  })
})"#;

fn qualify(probes: &str, dir: &Path, out: &Path) -> PathBuf {
    common::qualify_bundle(&[
        "--quick",
        "--probes",
        probes,
        "--dir",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
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
        // series of one or two points, its point marks; a heatmap's data is
        // its cells, drawn as rectangles on the one background rectangle.
        let heatmap_cells =
            c["id"].as_str().unwrap().contains("heatmap") && c["rects"].as_u64().unwrap() >= 5;
        assert!(
            c["longest_line"].as_u64().unwrap() >= 3
                || c["marks"].as_u64().unwrap() >= 1
                || heatmap_cells,
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

/// Every key with an underscore in the facts and parameters of a run.json
/// (at any depth): what a reader must not meet outside `<details>`.
fn raw_keys(run_json: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    if k.contains('_') && !out.contains(k) {
                        out.push(k.clone());
                    }
                    walk(child, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut keys = Vec::new();
    for node in run_json["nodes"].as_array().unwrap() {
        let results = node["results"].as_array().unwrap().iter();
        for r in results.chain(std::iter::once(&node["inventory"])) {
            walk(&r["facts"], &mut keys);
            walk(&r["params"], &mut keys);
        }
    }
    keys
}

/// How many verdicts a run.json holds over all nodes, and how many failed.
fn checks_and_failures(run_json: &Value) -> (usize, usize) {
    let verdicts: Vec<&Value> = run_json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| {
            let results = n["results"].as_array().unwrap().iter();
            results.chain(std::iter::once(&n["inventory"]))
        })
        .flat_map(|r| r["verdicts"].as_array().unwrap().iter())
        .collect();
    let failed = verdicts.iter().filter(|v| v["status"] == "fail").count();
    (verdicts.len(), failed)
}

/// `key` as a whole word of `text` (not part of a longer identifier).
fn contains_word(text: &str, key: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(key).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + key.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// The answers block comes first and no raw key is visible; returns the
/// page height.
fn check_layout(browser: &mut Browser, name: &str, keys: &[String]) -> f64 {
    let layout = browser.eval_json(LAYOUT_CHECK);
    assert_eq!(
        layout["first_after_title"], "answers",
        "{name}: the answers block is the first thing after the title"
    );
    let text = layout["visible_text"].as_str().unwrap();
    let visible: Vec<&String> = keys.iter().filter(|k| contains_word(text, k)).collect();
    assert!(
        visible.is_empty(),
        "{name}: raw keys visible outside <details>: {visible:?}"
    );
    let height = layout["height"].as_f64().unwrap();
    eprintln!("{name}: page height {height} px");
    height
}

fn run_json(bundle: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(bundle.join("run.json")).unwrap()).unwrap()
}

fn shots_dir() -> PathBuf {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots).unwrap();
    shots
}

#[test]
fn report_and_compare_pages_render_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let runs = tmp.path().join("runs");
    let a = qualify("inventory,steal,fsync", &disk, &runs);
    let b = qualify("inventory,fsync", &disk, &runs);
    let c = qualify("inventory,fsync", &disk, &runs);
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
    let cmp3 = tmp.path().join("cmp3");
    let r = run(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
        "--label",
        "first",
        "--label",
        "second",
        "--label",
        "third",
        "--out",
        cmp3.to_str().unwrap(),
    ]);
    assert!(matches!(r.code, 0 | 1), "compare: {}{}", r.stdout, r.stderr);
    assert_eq!(contract::assert_bundles_under(&runs), 3);

    let shots = shots_dir();
    let mut browser = Browser::launch(&tmp.path().join("chromium-profile"));
    browser.open_page();
    let report = check_page(&mut browser, &a.join("report.html"), &shots, "report");
    assert!(report["title"].as_str().unwrap().starts_with("infraqual"));
    check_layout(&mut browser, "report", &raw_keys(&run_json(&a)));
    let compare = check_page(&mut browser, &cmp.join("compare.html"), &shots, "compare");
    let (_, _, orange) = ink(&std::fs::read(shots.join("compare.png")).unwrap());
    assert!(orange > 200, "compare: run B's line is painted too");
    assert!(compare["title"]
        .as_str()
        .unwrap()
        .contains("first vs second"));
    let compare3 = check_page(
        &mut browser,
        &cmp3.join("compare.html"),
        &shots,
        "compare-3",
    );
    assert!(compare3["title"]
        .as_str()
        .unwrap()
        .contains("first vs second vs third"));
    let mut keys = raw_keys(&run_json(&a));
    keys.extend(raw_keys(&run_json(&b)));
    check_layout(&mut browser, "compare-3", &keys);
}

/// A 3-node lab in two regions, run through its own plan: the report opens
/// with the answers, hides raw keys, and is at most half as tall as before.
#[test]
fn lab_report_is_answers_first_and_half_as_tall() {
    require_caps!(NetAdmin, SysAdmin);
    let tmp = tempfile::tempdir().unwrap();
    let spec = LabSpec {
        nodes: 3,
        regions: vec![
            Region {
                name: "oslo".into(),
                one_way_delay: std::time::Duration::from_millis(1),
                rate_bps: None,
            },
            Region {
                name: "frankfurt".into(),
                one_way_delay: std::time::Duration::from_millis(12),
                rate_bps: None,
            },
        ],
        fault: None,
        base: tmp.path().join("lab"),
        agents: true,
        exe: PathBuf::from(env!("CARGO_BIN_EXE_infraqual")),
        echo_port: 7073,
    };
    let lab = LabGuard(lab::up(&spec).unwrap());
    let plan = lab.state.plan.clone().expect("a plan with agents");
    // Fewer round trips than the written plan: the layout is the same.
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("count = 500", "count = 40");
    std::fs::write(&plan, text).unwrap();
    let out = tmp.path().join("runs");
    let junit_file = tmp.path().join("run.xml");
    let r = run(&[
        "run",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--junit",
        junit_file.to_str().unwrap(),
    ]);
    // 1 is a failed check (a loaded machine can push the WAN p99 past the
    // profile's bound): the report is still the one under test.
    assert!(matches!(r.code, 0 | 1), "{}\n{}", r.stdout, r.stderr);
    let bundle = common::only_bundle(&out);
    drop(lab);
    // `run --junit`: one suite per node, every check of the run a testcase,
    // a failure for each failed check.
    let junit = junit::read(&junit_file);
    let suites: Vec<&str> = junit["suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(suites, ["oslo-1", "oslo-2", "frankfurt-1"], "{junit}");
    let (checks, failed) = checks_and_failures(&run_json(&bundle));
    assert_eq!(junit["tests"].as_u64().unwrap() as usize, checks, "{junit}");
    assert_eq!(
        junit["failures"].as_u64().unwrap() as usize,
        failed,
        "{junit}"
    );
    assert_eq!(r.code, i32::from(failed > 0), "exit code unchanged");

    let shots = shots_dir();
    let mut browser = Browser::launch(&tmp.path().join("chromium-profile"));
    browser.open_page();
    check_page(
        &mut browser,
        &bundle.join("report.html"),
        &shots,
        "lab-report",
    );
    let height = check_layout(&mut browser, "lab-report", &raw_keys(&run_json(&bundle)));
    assert!(
        height <= LAB_REPORT_HEIGHT_BEFORE / 2.0,
        "lab report is {height} px tall, more than half of the {LAB_REPORT_HEIGHT_BEFORE} px before"
    );
}
