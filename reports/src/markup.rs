//! The HTML both pages are made of (report.html and compare.html): escaping,
//! the one style sheet, the document frame, tables, badges and inline SVG
//! figures. Both pages are single self-contained files, so everything here
//! is inline: no scripts, no links to fetch.

use std::fmt::Write as _;

/// Text as HTML character data or a quoted attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Badge colours: a probe check's status (pass .. incomplete) and a
/// comparison's change verdict (regressed .. not_judged).
pub const STYLE: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#222}\
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}\
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.badge{display:inline-block;padding:.1rem .6rem;border-radius:.3rem;font-weight:bold;color:#fff;white-space:nowrap}\
.pass{background:#2e7d32}.warn{background:#ef6c00}.fail{background:#c62828}.skip{background:#757575}.incomplete{background:#6a1b9a}\
.regressed{background:#c62828}.improved{background:#2e7d32}.no_change{background:#757575}.not_judged{background:#9e9e9e}\
.warning{background:#fff8e1;border-left:4px solid #ef6c00;padding:.3rem .6rem;margin:.3rem 0}\
.error{background:#ffebee;border-left:4px solid #c62828;padding:.3rem .6rem;margin:.3rem 0}\
figure{margin:1rem 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}\
.meta{color:#555}\
.answer{margin:0 0 1.2rem}.answer h3{margin:.8rem 0 .3rem}.answer p{margin:.2rem 0}.answer figure svg{max-width:620px}\
.charts{display:flex;flex-wrap:wrap;gap:0 1rem}.charts figure{flex:1 1 45%;max-width:calc(50% - .5rem);margin:.5rem 0}\
details{margin:.3rem 0}summary{cursor:pointer;color:#444}td.best{background:#e8f5e9}";

/// The document up to and including `<body>`.
pub fn document_start(h: &mut String, title: &str) {
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        escape(title)
    );
}

pub fn document_end(h: &mut String) {
    h.push_str("</body></html>\n");
}

/// `<span class="badge {class}">text</span>`; `class` is one of the
/// badge classes in [`STYLE`].
pub fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", escape(text))
}

/// Opens a table and writes its header row; the caller writes the rows and
/// closes it with `</table>`.
pub fn table_start(h: &mut String, header: &[&str]) {
    h.push_str("<table><tr>");
    for c in header {
        let _ = write!(h, "<th>{}</th>", escape(c));
    }
    h.push_str("</tr>");
}

/// One row of plain text cells.
pub fn text_row<S: AsRef<str>>(h: &mut String, cells: &[S]) {
    h.push_str("<tr>");
    for c in cells {
        let _ = write!(h, "<td>{}</td>", escape(c.as_ref()));
    }
    h.push_str("</tr>");
}

/// An SVG drawn inline with its caption; `caption_html` is markup already
/// (it may hold a badge).
pub fn figure(h: &mut String, id: &str, svg: &str, caption_html: &str) {
    let _ = write!(
        h,
        "<figure id=\"{}\">{}<figcaption>{caption_html}</figcaption></figure>",
        escape(id),
        strip_xml_prolog(svg)
    );
}

/// An SVG file's text without the `<?xml ...?>` line, which is not allowed
/// inside an HTML document.
pub fn strip_xml_prolog(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn figures_drop_the_xml_prolog() {
        let mut h = String::new();
        figure(
            &mut h,
            "a\"b",
            "<?xml version=\"1.0\"?>\n<svg></svg>",
            "<b>t</b>",
        );
        assert_eq!(
            h,
            "<figure id=\"a&quot;b\"><svg></svg><figcaption><b>t</b></figcaption></figure>"
        );
        assert_eq!(strip_xml_prolog("no svg here"), "no svg here");
    }

    #[test]
    fn tables_escape_their_header_and_cells() {
        let mut h = String::new();
        table_start(&mut h, &["a<b"]);
        text_row(&mut h, &["x&y"]);
        assert_eq!(
            h,
            "<table><tr><th>a&lt;b</th></tr><tr><td>x&amp;y</td></tr>"
        );
    }

    #[test]
    fn every_badge_class_the_pages_use_has_a_colour() {
        for class in [
            "pass",
            "warn",
            "fail",
            "skip",
            "incomplete",
            "regressed",
            "improved",
            "no_change",
            "not_judged",
        ] {
            assert!(STYLE.contains(&format!(".{class}{{")), "{class}");
        }
    }
}
