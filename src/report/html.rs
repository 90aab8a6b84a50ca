//! The few pieces of HTML a report is made of: escaped text, figures whose pictures are inlined
//! as data URIs (so the page is one file that needs no network), and tables.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::files::figure::Canvas;
use crate::files::pngio;

/// `text` with the characters that mean something in HTML escaped.
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

/// An `<img>` of the gray picture `canvas`, shown `scale` times its size, pixels kept square.
pub fn png(canvas: &Canvas, scale: usize, alt: &str) -> std::io::Result<String> {
    let bytes = pngio::encode((canvas.height, canvas.width), &canvas.pixels)?;
    Ok(format!(
        r#"<img class="pixels" src="data:image/png;base64,{}" width="{}" height="{}" alt="{}">"#,
        STANDARD.encode(bytes),
        canvas.width * scale,
        canvas.height * scale,
        escape(alt)
    ))
}

/// An `<img>` of the SVG `svg`.
pub fn svg(svg: &str, alt: &str) -> String {
    format!(
        r#"<img class="chart" src="data:image/svg+xml;base64,{}" alt="{}">"#,
        STANDARD.encode(svg),
        escape(alt)
    )
}

/// A `<figure>` of `content` (HTML) with the caption `caption` (HTML).
pub fn figure(content: &str, caption: &str) -> String {
    format!("<figure>\n{content}\n<figcaption>{caption}</figcaption>\n</figure>\n")
}

/// A table with the header `head` and the rows `rows`, each cell HTML already.
pub fn table(class: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let cells = |tag: &str, row: &[String]| -> String {
        row.iter().map(|c| format!("<{tag}>{c}</{tag}>")).collect::<Vec<_>>().join("")
    };
    let head: Vec<String> = head.iter().map(|h| h.to_string()).collect();
    let body: Vec<String> = rows.iter().map(|r| format!("<tr>{}</tr>", cells("td", r))).collect();
    format!(
        "<table class=\"{class}\">\n<thead><tr>{}</tr></thead>\n<tbody>\n{}\n</tbody>\n</table>\n",
        cells("th", &head),
        body.join("\n")
    )
}

/// At most `most` of the indices `0..n`, evenly spread and always with the first and the last.
pub fn spread(n: usize, most: usize) -> Vec<usize> {
    if n <= most {
        return (0..n).collect();
    }
    let mut picked: Vec<usize> = (0..most).map(|i| i * (n - 1) / (most - 1)).collect();
    picked.dedup();
    picked
}
