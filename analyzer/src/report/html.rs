//! `report.html`: one self-contained file. Inline CSS and inline SVG only: no script, no external
//! URL, and a Content-Security-Policy that forbids both should anything slip through. Every string
//! that came from a log or the store goes through [`esc`], in text and in attributes alike.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Data, MAX_CHANGES, RolePrivilege, clip, short_arn, svg};
use crate::detect::{Finding, Severity};
use crate::terminal::{escape_control, thousands};

/// Rows of an evidence table shown, at most.
const MAX_ROWS: usize = 25;
/// Items of an evidence list shown, at most.
const MAX_ITEMS: usize = 40;
/// Characters of one evidence string shown, at most.
const MAX_STR: usize = 400;
/// Characters of one string shown in an evidence table cell, at most.
const MAX_CELL: usize = 160;
/// Nesting rendered as lists and tables; deeper values are shown as clipped JSON.
const MAX_DEPTH: usize = 4;
/// Actions listed per role and list, at most.
const MAX_ACTIONS: usize = 300;
/// Characters of one recommended policy document shown, at most.
const MAX_POLICY: usize = 40_000;

pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// `s` safe as HTML text and as a quoted attribute value: control characters are shown escaped
/// (`\x1b`), and `& < > " '` become character references.
pub fn esc(s: &str) -> String {
    let s = escape_control(s);
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
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

/// [`esc`] for `<pre>` text: line breaks kept, every other control character escaped.
pub fn esc_lines(s: &str) -> String {
    s.split('\n').map(esc).collect::<Vec<_>>().join("\n")
}

fn badge(s: Severity) -> String {
    format!("<span class=\"badge {0}\">{0}</span>", s.as_str())
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "—".to_string(), esc)
}

fn range(a: &Option<String>, b: &Option<String>) -> String {
    match (a, b) {
        (None, None) => "—".to_string(),
        (a, b) if a == b => opt(a),
        _ => format!("{} → {}", opt(a), opt(b)),
    }
}

/// A JSON value from evidence: objects as definition lists, arrays of objects as tables, other
/// arrays as lists, everything bounded.
pub fn value(out: &mut String, v: &Value, depth: usize) {
    if depth > MAX_DEPTH {
        let _ = write!(out, "<code>{}</code>", esc(&clip(&v.to_string(), MAX_STR)));
        return;
    }
    match v {
        Value::Null => out.push_str("<span class=\"muted\">—</span>"),
        Value::Bool(b) => out.push_str(if *b { "yes" } else { "no" }),
        Value::Number(n) => out.push_str(&esc(&n.to_string())),
        Value::String(s) => out.push_str(&esc(&clip(s, MAX_STR))),
        Value::Array(a) if a.is_empty() => out.push_str("<span class=\"muted\">none</span>"),
        Value::Array(a) if a.iter().all(Value::is_object) => table(out, a, depth),
        Value::Array(a) => {
            out.push_str("<ul class=\"list\">");
            for item in a.iter().take(MAX_ITEMS) {
                out.push_str("<li>");
                value(out, item, depth + 1);
                out.push_str("</li>");
            }
            if a.len() > MAX_ITEMS {
                let _ = write!(
                    out,
                    "<li class=\"muted\">… {} more</li>",
                    a.len() - MAX_ITEMS
                );
            }
            out.push_str("</ul>");
        }
        Value::Object(m) if m.is_empty() => out.push_str("<span class=\"muted\">{}</span>"),
        Value::Object(m) => {
            out.push_str("<dl class=\"kv\">");
            let is_table = |v: &Value| matches!(v, Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object));
            // Short facts first, then the tables, which take the whole width under their name.
            let entries = m
                .iter()
                .filter(|(_, v)| !is_table(v))
                .chain(m.iter().filter(|(_, v)| is_table(v)));
            for (k, v) in entries {
                let wide = is_table(v);
                let class = if wide { " class=\"wide\"" } else { "" };
                let _ = write!(out, "<dt{class}>{}</dt><dd{class}>", esc(k));
                value(out, v, depth + 1);
                out.push_str("</dd>");
            }
            out.push_str("</dl>");
        }
    }
}

fn cell(out: &mut String, v: &Value, depth: usize) {
    match v {
        Value::Object(_) | Value::Array(_) if depth >= 2 => {
            let _ = write!(out, "<code>{}</code>", esc(&clip(&v.to_string(), MAX_STR)));
        }
        _ => value(out, v, depth + 1),
    }
}

/// Evidence columns in reading order; others follow alphabetically.
const COLUMN_ORDER: &[&str] = &[
    "time",
    "event_time",
    "first_seen",
    "last_seen",
    "covered_from",
    "covered_until",
    "status",
    "event_source",
    "event_name",
    "error_code",
    "how",
    "owner",
    "host",
    "container_instance_arn",
    "task_arn",
    "source",
    "source_ip",
    "vpc_endpoint_id",
    "user_agent",
    "request_parameters",
    "access_key_id",
    "event_id",
];

/// The columns of a table of objects: every key of the first rows, in reading order.
pub fn columns(rows: &[Value], max_rows: usize) -> Vec<&str> {
    let mut cols: Vec<&str> = Vec::new();
    for r in rows.iter().take(max_rows) {
        if let Some(o) = r.as_object() {
            for k in o.keys() {
                if !cols.contains(&k.as_str()) {
                    cols.push(k);
                }
            }
        }
    }
    let rank = |c: &str| {
        COLUMN_ORDER
            .iter()
            .position(|o| *o == c)
            .unwrap_or(COLUMN_ORDER.len())
    };
    cols.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    cols
}

/// Splits `cols` into those that vary and those with one value in every shown row (at least 3
/// rows): a constant column is said once above the table instead of in every row.
pub fn split_constant<'a>(
    rows: &'a [Value],
    cols: Vec<&'a str>,
    max_rows: usize,
) -> (Vec<&'a str>, Vec<(&'a str, &'a Value)>) {
    let shown = &rows[..rows.len().min(max_rows)];
    if shown.len() < 3 {
        return (cols, Vec::new());
    }
    let mut varying = Vec::new();
    let mut constant = Vec::new();
    for c in cols {
        let first = shown[0].get(c).unwrap_or(&Value::Null);
        if shown
            .iter()
            .all(|r| r.get(c).unwrap_or(&Value::Null) == first)
        {
            constant.push((c, first));
        } else {
            varying.push(c);
        }
    }
    (varying, constant)
}

fn table(out: &mut String, rows: &[Value], depth: usize) {
    let (cols, constant) = split_constant(rows, columns(rows, MAX_ROWS), MAX_ROWS);
    if !constant.is_empty() {
        out.push_str("<p class=\"same\">in every row: ");
        for (i, (c, v)) in constant.iter().enumerate() {
            if i > 0 {
                out.push_str(" · ");
            }
            let _ = write!(out, "<b>{}</b> <span class=\"mono\">", esc(c));
            cell(out, v, depth);
            out.push_str("</span>");
        }
        out.push_str("</p>");
    }
    out.push_str("<div class=\"scroll\"><table class=\"evidence\"><thead><tr>");
    for c in &cols {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows.iter().take(MAX_ROWS) {
        out.push_str("<tr>");
        for c in &cols {
            let v = r.get(*c);
            let len = match v {
                Some(Value::String(s)) => s.chars().count(),
                Some(Value::Array(_) | Value::Object(_)) => usize::MAX,
                _ => 0,
            };
            match v {
                // Long strings are cut in the cell; the tooltip holds up to MAX_STR characters.
                Some(Value::String(s)) if len > MAX_CELL => {
                    let _ = write!(
                        out,
                        "<td class=\"long\" title=\"{}\">{}",
                        esc(&clip(s, MAX_STR)),
                        esc(&clip(s, MAX_CELL))
                    );
                }
                Some(v) => {
                    out.push_str(match len {
                        0..=24 => "<td class=\"short\">",
                        25..=48 => "<td class=\"mid\">",
                        _ => "<td class=\"long\">",
                    });
                    cell(out, v, depth);
                }
                None => out.push_str("<td class=\"short\"><span class=\"muted\">—</span>"),
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    if rows.len() > MAX_ROWS {
        let _ = write!(
            out,
            "<p class=\"muted\">… {} more rows</p>",
            rows.len() - MAX_ROWS
        );
    }
}

const STYLE: &str = r#"
:root{--critical:#b42318;--high:#c4320a;--medium:#a15c07;--low:#175cd3;--ok:#067647;
--ink:#101828;--muted:#475467;--line:#e4e7ec;--bg:#f5f6f8;--card:#fff}
*{box-sizing:border-box}
html{background:var(--bg)}
body{margin:0;color:var(--ink);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
a{color:#1849a9;text-decoration:none}a:hover{text-decoration:underline}
.top{background:#101828;color:#f2f4f7;padding:22px 0 18px}
.top .wrap,main{max-width:1280px;margin:0 auto;padding:0 32px}
.top h1{margin:0 0 4px;font-size:26px;letter-spacing:-.01em}
.top p{margin:0;color:#d0d5dd}
nav.toc{margin:14px 0 0;display:flex;gap:18px;flex-wrap:wrap}
nav.toc a{color:#fff;opacity:.85}
main{padding-top:8px;padding-bottom:64px}
h2{font-size:21px;margin:34px 0 10px;padding-bottom:6px;border-bottom:2px solid var(--line)}
h3{font-size:17px;margin:0}
.muted{color:var(--muted)}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 18px;margin:12px 0}
.tiles{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:12px;margin:14px 0}
.tile{background:var(--card);border:1px solid var(--line);border-top:5px solid var(--c);border-radius:10px;padding:10px 16px}
.tile .n{font-size:32px;font-weight:700;color:var(--c);line-height:1.1}
.tile .l{color:var(--muted);text-transform:uppercase;font-size:12px;letter-spacing:.06em;font-weight:600}
.critical{--c:var(--critical)}.high{--c:var(--high)}.medium{--c:var(--medium)}.low{--c:var(--low)}
.grid2{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:16px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f9fafb;color:var(--muted);font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.n,th.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto;max-width:100%}
.badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:11.5px;font-weight:700;color:#fff;background:var(--c);text-transform:uppercase;letter-spacing:.05em;vertical-align:2px}
article.finding{background:var(--card);border:1px solid var(--line);border-left:6px solid var(--c);border-radius:10px;padding:14px 20px;margin:14px 0}
article.finding header{display:flex;gap:10px;align-items:baseline;flex-wrap:wrap}
article.finding h3{flex:1 1 420px;overflow-wrap:anywhere}
code.kind{background:#f2f4f7;border-radius:4px;padding:1px 6px;color:#344054}
dl{margin:8px 0}
dl.fields,dl.kv{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 16px}
dl.kv{font-size:13px}
dt{color:var(--muted);font-weight:600}
dd{margin:0;min-width:0;overflow-wrap:anywhere}
dl.fields dd{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
details{margin-top:8px}
summary{cursor:pointer;font-weight:600;color:#344054}
table.evidence td{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12px}
table.evidence td.short{white-space:nowrap}
table.evidence td.mid{min-width:11em;overflow-wrap:anywhere}
table.evidence td.long{min-width:18em;overflow-wrap:anywhere}
dl.kv dt.wide,dl.kv dd.wide{grid-column:1/-1}
dl.kv dd.wide{margin-bottom:6px}
p.same{margin:2px 0 4px;font-size:12.5px;color:var(--muted)}
p.same b{color:#344054;font-weight:600}
table.evidence th{white-space:nowrap}
ul.list{margin:0;padding-left:18px}
ul.actions{columns:3 240px;column-gap:24px;list-style:none;padding:0;margin:6px 0}
ul.actions li{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12px;overflow-wrap:anywhere;break-inside:avoid}
pre{background:#0f172a;color:#e2e8f0;padding:12px 14px;border-radius:8px;overflow:auto;max-height:520px;margin:6px 0}
.warn{border-left:6px solid var(--high)}
.legend{display:flex;gap:18px;flex-wrap:wrap;font-size:13px;color:var(--muted);margin:6px 0}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-right:5px}
svg{max-width:100%;height:auto;display:block}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
.nums b{font-variant-numeric:tabular-nums}
footer{color:var(--muted);font-size:13px;margin-top:40px}
"#;

/// The whole page.
pub fn render(d: &Data) -> String {
    let mut o = String::with_capacity(64 * 1024);
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    let _ = writeln!(
        o,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
    );
    o.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    o.push_str("<title>credtrail report</title>\n<style>");
    o.push_str(STYLE);
    o.push_str("</style></head>\n<body>\n");
    header(&mut o, d);
    o.push_str("<main>\n");
    changes(&mut o, d);
    summary(&mut o, d);
    reach(&mut o, d);
    timeline(&mut o, d);
    privilege(&mut o, d);
    findings(&mut o, d);
    let _ = writeln!(
        o,
        "<footer>Generated by credtrail {} at {}. Strings from logs are untrusted and shown escaped; \
         evidence lists are cut to {MAX_ROWS} rows.</footer>",
        env!("CARGO_PKG_VERSION"),
        esc(&d.generated_at)
    );
    o.push_str("</main>\n</body></html>\n");
    o
}

fn window_text(d: &Data) -> String {
    match (&d.since, &d.until) {
        (None, None) => "all data in the store".to_string(),
        (s, u) => format!(
            "events from {} until {}",
            s.as_deref().map_or("the first".to_string(), esc),
            u.as_deref().map_or("the last".to_string(), esc)
        ),
    }
}

fn header(o: &mut String, d: &Data) {
    let _ = writeln!(
        o,
        "<div class=\"top\"><div class=\"wrap\"><h1>credtrail report</h1>\
         <p>Who used the ECS tasks' IAM credentials, from where, and which permissions nobody needs · \
         {} · generated {}</p>\
         <nav class=\"toc\"><a href=\"#summary\">Summary</a><a href=\"#coverage\">Coverage</a><a href=\"#activity\">Activity</a>\
         <a href=\"#privilege\">Least privilege</a><a href=\"#findings\">Findings ({})</a></nav>\
         </div></div>",
        window_text(d),
        esc(&d.generated_at),
        d.findings.len()
    );
}

fn changes(o: &mut String, d: &Data) {
    let Some(c) = &d.changes else { return };
    let _ = write!(
        o,
        "<section id=\"changes\"><h2>Since the last run</h2><p>{}.</p>",
        esc(&c.summary())
    );
    for (title, list) in c.groups() {
        if list.is_empty() {
            continue;
        }
        let _ = write!(
            o,
            "<h3>{title} ({})</h3><table><thead><tr><th>severity</th><th>kind</th>\
             <th>task / role / host</th><th>title</th></tr></thead><tbody>",
            list.len()
        );
        for f in list.iter().take(MAX_CHANGES) {
            let was = f
                .change
                .as_ref()
                .and_then(|c| c.previous_severity)
                .map_or(String::new(), |p| format!(" (was {})", p.as_str()));
            let _ = write!(
                o,
                "<tr><td>{}{was}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                badge(f.severity),
                esc(&f.kind),
                esc(&super::markdown::subject(f)),
                esc(&f.title)
            );
        }
        o.push_str("</tbody></table>");
        if list.len() > MAX_CHANGES {
            let _ = write!(
                o,
                "<p class=\"muted\">… and {} more.</p>",
                list.len() - MAX_CHANGES
            );
        }
    }
    o.push_str("</section>\n");
}

fn summary(o: &mut String, d: &Data) {
    o.push_str("<section id=\"summary\"><h2>Summary</h2><div class=\"tiles\">");
    for (s, n) in d.by_severity() {
        let _ = write!(
            o,
            "<div class=\"tile {0}\"><div class=\"n\">{1}</div><div class=\"l\">{0}</div></div>",
            s.as_str(),
            n
        );
    }
    o.push_str(
        "</div><div class=\"grid2\"><div class=\"card\"><h3>Inputs in the store</h3><table><tbody>",
    );
    let c = &d.coverage;
    let _ = write!(
        o,
        "<tr><th>credential audit log</th><td>{}</td><td class=\"n\">{} requests · {} hosts · {} rejected lines</td></tr>\
         <tr><th>CloudTrail</th><td>{}</td><td class=\"n\">{} events · {} rejected records</td></tr>\
         <tr><th>ECS tasks</th><td>{} clusters</td><td class=\"n\">{} tasks</td></tr>\
         <tr><th>IAM</th><td></td><td class=\"n\">{} roles</td></tr>",
        range(&c.audit_first, &c.audit_last),
        thousands(c.audit_rows.max(0) as u64),
        c.audit_hosts,
        thousands(c.rejected_lines.max(0) as u64),
        range(&c.trail_first, &c.trail_last),
        thousands(c.trail_events.max(0) as u64),
        thousands(c.trail_rejects.max(0) as u64),
        c.clusters,
        thousands(c.tasks.max(0) as u64),
        c.roles
    );
    o.push_str("</tbody></table></div><div class=\"card\"><h3>Findings by kind</h3>");
    let kinds = d.by_kind();
    if kinds.is_empty() {
        o.push_str("<p class=\"muted\">No findings.</p>");
    } else {
        o.push_str("<table><tbody>");
        for (k, s, n) in kinds {
            let first = d.findings.iter().position(|f| f.kind == k).unwrap_or(0);
            let _ = write!(
                o,
                "<tr class=\"{}\"><td>{}</td><td><a href=\"#finding-{first}\"><code>{}</code></a></td><td class=\"n\">{n}</td></tr>",
                s.as_str(),
                badge(s),
                esc(&k)
            );
        }
        o.push_str("</tbody></table>");
    }
    o.push_str("</div></div>");
    if !d.failed.is_empty() {
        o.push_str("<div class=\"card warn\"><h3>Detections that did not run</h3><ul>");
        for (file, e) in &d.failed {
            let _ = write!(
                o,
                "<li><code>{}</code>: {}</li>",
                esc(file),
                esc(&clip(e, 600))
            );
        }
        o.push_str("</ul></div>");
    }
    o.push_str("</section>\n");
}

/// `credtrail coverage` as a section: what the findings could and could not judge.
fn reach(o: &mut String, d: &Data) {
    let Some(c) = &d.reach else { return };
    o.push_str("<section id=\"coverage\"><h2>Coverage: what this report can judge</h2>");
    let rows = |v: serde_json::Result<Value>| match v {
        Ok(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    o.push_str("<div class=\"card\"><h3>Hosts covered</h3>");
    if c.hosts.is_empty() {
        o.push_str(
            "<p class=\"muted\">No host is covered: no collector segments and no raw audit files.</p>",
        );
    } else {
        table(o, &rows(serde_json::to_value(&c.hosts)), 0);
        if c.hosts.len() > MAX_ROWS {
            o.push_str(
                "<p><code>credtrail coverage --format json</code> lists every interval.</p>",
            );
        }
    }
    if !c.shared_host_names.is_empty() {
        o.push_str("<h3>Host names shared by several container instances</h3><p>Kept apart, never merged.</p><ul>");
        for s in &c.shared_host_names {
            let arns: Vec<String> = s.container_instance_arns.iter().map(|a| esc(a)).collect();
            let _ = write!(
                o,
                "<li><code>{}</code>: {}</li>",
                esc(&s.host),
                arns.join(", ")
            );
        }
        o.push_str("</ul>");
    }
    let t = &c.tasks;
    let _ = write!(
        o,
        "</div><div class=\"card\"><h3>Tasks</h3><p class=\"nums\"><b>{}</b> known · <b>{}</b> covered · \
         <b>{}</b> on a covered host but never covered · <b>{}</b> on no covered host</p>",
        thousands(t.total.max(0) as u64),
        thousands(t.covered.max(0) as u64),
        thousands(t.on_covered_host_never_covered.max(0) as u64),
        thousands(t.on_no_covered_host.max(0) as u64)
    );
    if !c.tasks_on_no_covered_host.is_empty() {
        o.push_str("<p>On no covered host (a missing fetch there is no evidence):</p>");
        table(
            o,
            &rows(serde_json::to_value(&c.tasks_on_no_covered_host)),
            0,
        );
    }
    o.push_str("</div><div class=\"card\"><h3>Inputs missing</h3>");
    if c.missing_inputs.is_empty() {
        o.push_str("<p class=\"muted\">None.</p>");
    } else {
        o.push_str("<ul>");
        for m in &c.missing_inputs {
            let _ = write!(
                o,
                "<li><b>{}</b>: {}</li>",
                esc(m.input),
                esc(m.consequence)
            );
        }
        o.push_str("</ul>");
    }
    let tr = &c.time_ranges;
    o.push_str("<h3>Time ranges</h3><table><thead><tr><th>input</th><th>first</th><th>last</th></tr></thead><tbody>");
    for (name, r) in [
        ("CloudTrail", &tr.cloudtrail),
        ("credential audit log", &tr.audit_log),
        ("host coverage", &tr.coverage),
    ] {
        match r {
            Some(r) => {
                let _ = write!(
                    o,
                    "<tr><th>{name}</th><td>{}</td><td>{}</td></tr>",
                    esc(&r.first),
                    esc(&r.last)
                );
            }
            None => {
                let _ = write!(o, "<tr><th>{name}</th><td>—</td><td>—</td></tr>");
            }
        }
    }
    o.push_str("</tbody></table>");
    if !tr.notes.is_empty() {
        o.push_str("<ul>");
        for n in &tr.notes {
            let _ = write!(o, "<li>{}</li>", esc(n));
        }
        o.push_str("</ul>");
    }
    o.push_str("</div></section>\n");
}

fn timeline(o: &mut String, d: &Data) {
    let t = &d.timeline;
    o.push_str("<section id=\"activity\"><h2>Credential fetches and API calls per task</h2>");
    if t.lanes.is_empty() {
        o.push_str("<p class=\"muted\">No task activity in the store.</p></section>\n");
        return;
    }
    let _ = write!(
        o,
        "<p class=\"muted\">One lane per task: credential fetches above the line, API calls made with the \
         task's own role session below, per {}-minute bucket (bar height grows with the log of the count). \
         Shaded spans are findings; tasks in findings come first, then the busiest others.{}</p>",
        t.bucket_secs / 60,
        if t.omitted > 0 {
            format!(
                " {} more tasks in findings are not drawn (at most {} lanes).",
                t.omitted,
                super::MAX_LANES
            )
        } else {
            String::new()
        }
    );
    o.push_str(
        "<div class=\"legend\"><span><i class=\"sw\" style=\"background:#2e6fdb\"></i>fetch</span>\
         <span><i class=\"sw\" style=\"background:#f79009\"></i>refused fetch</span>\
         <span><i class=\"sw\" style=\"background:#12a150\"></i>API call</span>\
         <span><i class=\"sw\" style=\"background:#d92d20\"></i>failed API call</span>\
         <span><i class=\"sw\" style=\"background:#e9ecf2\"></i>task running</span>\
         <span><i class=\"sw\" style=\"background:rgba(180,35,24,.22)\"></i>finding (colour = severity)</span></div>",
    );
    let _ = write!(o, "<div class=\"card\">{}</div>", svg::timeline(t));
    o.push_str(
        "<div class=\"card\"><div class=\"scroll\"><table><thead><tr><th>task</th><th>family</th>\
         <th>role</th><th class=\"n\">fetches</th><th class=\"n\">refused</th><th class=\"n\">calls</th>\
         <th class=\"n\">failed</th><th>findings</th></tr></thead><tbody>",
    );
    for l in &t.lanes {
        let (fo, fe, co, ce) = l.totals();
        let mut marks = String::new();
        for m in &l.marks {
            let _ = write!(
                marks,
                "<a href=\"#finding-{}\"><span class=\"badge {}\">{}</span></a> ",
                m.finding,
                m.severity.as_str(),
                esc(&m.kind)
            );
        }
        let _ = write!(
            o,
            "<tr><td class=\"mono\" title=\"{}\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{fo}</td>\
             <td class=\"n\">{fe}</td><td class=\"n\">{co}</td><td class=\"n\">{ce}</td><td>{}</td></tr>",
            esc(&l.task_arn),
            esc(short_arn(&l.task_arn)),
            esc(&super::svg::family(l)),
            l.role_arn
                .as_deref()
                .map_or_else(String::new, |r| esc(short_arn(r))),
            if marks.is_empty() {
                "<span class=\"muted\">context</span>".to_string()
            } else {
                marks
            }
        );
    }
    o.push_str("</tbody></table></div></div></section>\n");
}

fn action_list(o: &mut String, title: &str, items: &[String]) {
    let _ = write!(o, "<h4>{} ({})</h4>", esc(title), items.len());
    if items.is_empty() {
        o.push_str("<p class=\"muted\">none</p>");
        return;
    }
    // Long lists start folded (no script: <details>).
    let _ = write!(
        o,
        "<details{}><summary>{} actions</summary><ul class=\"actions\">",
        if items.len() <= 60 { " open" } else { "" },
        items.len()
    );
    for a in items.iter().take(MAX_ACTIONS) {
        let _ = write!(o, "<li>{a}</li>");
    }
    o.push_str("</ul></details>");
    if items.len() > MAX_ACTIONS {
        let _ = write!(
            o,
            "<p class=\"muted\">… {} more (all of them are in the finding's evidence: \
             <code>credtrail analyze --format json</code>)</p>",
            items.len() - MAX_ACTIONS
        );
    }
}

fn role(o: &mut String, r: &RolePrivilege) {
    let sev = r.severity.unwrap_or(Severity::Low);
    let _ = write!(
        o,
        "<article class=\"finding {}\" id=\"role-{}\"><header>{}<h3>{}</h3>\
         <a href=\"#finding-{}\">finding</a></header>",
        sev.as_str(),
        r.finding,
        badge(sev),
        esc(short_arn(&r.role_arn)),
        r.finding
    );
    let _ = write!(
        o,
        "<dl class=\"fields\"><dt>role</dt><dd>{}</dd><dt>window</dt><dd>{}</dd></dl>",
        esc(&r.role_arn),
        range(&r.window_start, &r.window_end)
    );
    let _ = write!(
        o,
        "<table class=\"nums\" style=\"width:auto\"><thead><tr><th class=\"n\">granted</th><th class=\"n\">used</th>\
         <th class=\"n\">unverifiable</th><th class=\"n\">unused</th></tr></thead><tbody><tr>\
         <td class=\"n\"><b>{}</b></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr></tbody></table>",
        r.granted(),
        r.used.len(),
        r.unverifiable.len(),
        r.unused.len()
    );
    let _ = write!(o, "<h4>Used ({})</h4>", r.used.len());
    if r.used.is_empty() {
        o.push_str("<p class=\"muted\">none</p>");
    } else {
        o.push_str("<div class=\"scroll\"><table><thead><tr><th>action</th><th class=\"n\">calls</th><th>last used</th></tr></thead><tbody>");
        for u in r.used.iter().take(MAX_ACTIONS) {
            let _ = write!(
                o,
                "<tr><td class=\"mono\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&u.action),
                u.count
                    .map_or_else(String::new, |c| thousands(c.max(0) as u64)),
                opt(&u.last_used)
            );
        }
        o.push_str("</tbody></table></div>");
    }
    let unverifiable: Vec<String> = r
        .unverifiable
        .iter()
        .map(|(a, why)| match why {
            Some(w) => format!("{} <span class=\"muted\">({})</span>", esc(a), esc(w)),
            None => esc(a),
        })
        .collect();
    action_list(
        o,
        "Unverifiable: granted, not observable in this trail (never call these unused)",
        &unverifiable,
    );
    let unused: Vec<String> = r.unused.iter().map(|a| esc(a)).collect();
    action_list(o, "Unused: granted, observable, never used", &unused);
    if let Some(f) = &r.families {
        o.push_str("<h4>Which task family used what</h4>");
        value(o, f, 1);
    }
    let n = r.recommended_policy.len();
    if n == 0 {
        o.push_str("<p class=\"muted\">No recommended policy in the finding.</p>");
    }
    for (i, p) in r.recommended_policy.iter().enumerate() {
        let text = super::policy_text(p);
        let _ = write!(
            o,
            "<h4>Recommended policy{} ({} characters without whitespace)</h4><pre>{}</pre>",
            if n > 1 {
                format!(", document {} of {n}", i + 1)
            } else {
                String::new()
            },
            thousands(p.to_string().chars().count() as u64),
            esc_lines(&clip(&text, MAX_POLICY))
        );
    }
    o.push_str("</article>");
}

fn privilege(o: &mut String, d: &Data) {
    o.push_str("<section id=\"privilege\"><h2>Least privilege per role</h2>");
    let unused_roles: Vec<(usize, &Finding)> = d
        .findings
        .iter()
        .enumerate()
        .filter(|(_, f)| f.kind == "unused_role")
        .collect();
    if !unused_roles.is_empty() {
        let _ = write!(
            o,
            "<div class=\"card\"><h3>Roles nobody used ({})</h3><table><tbody>",
            unused_roles.len()
        );
        for (i, f) in unused_roles {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"mono\"><a href=\"#finding-{i}\">{}</a></td><td>{}</td></tr>",
                badge(f.severity),
                f.role_arn.as_deref().map_or_else(|| "—".to_string(), esc),
                esc(&f.title)
            );
        }
        o.push_str("</tbody></table></div>");
    }
    if d.roles.is_empty() {
        o.push_str(
            "<p class=\"muted\">No <code>unused_permissions</code> findings in this run: no role \
             grants more than it used, or the detection is not part of this build.</p></section>\n",
        );
        return;
    }
    o.push_str(
        "<div class=\"legend\"><span><i class=\"sw\" style=\"background:#12a150\"></i>used</span>\
         <span><i class=\"sw\" style=\"background:#98a2b3\"></i>unverifiable</span>\
         <span><i class=\"sw\" style=\"background:#d92d20\"></i>unused</span></div>",
    );
    let _ = write!(o, "<div class=\"card\">{}</div>", svg::privilege(&d.roles));
    for r in &d.roles {
        role(o, r);
    }
    o.push_str("</section>\n");
}

fn finding(o: &mut String, i: usize, f: &Finding) {
    let s = f.severity.as_str();
    let _ = write!(
        o,
        "<article class=\"finding {s}\" id=\"finding-{i}\"><header>{}<code class=\"kind\">{}</code><h3>{}</h3></header>",
        badge(f.severity),
        esc(&f.kind),
        esc(&f.title)
    );
    if let Some(s) = &f.suppressed {
        let _ = write!(
            o,
            "<p class=\"suppressed\"><strong>Suppressed</strong> until {}: {} <span class=\"muted\">({})</span></p>",
            esc(&s.expires),
            esc(&s.reason),
            esc(&s.origin)
        );
    }
    if let Some(d) = f.detected_severity {
        let _ = write!(
            o,
            "<p class=\"muted\">Detected as {} (severity set by the configuration)</p>",
            d.as_str()
        );
    }
    o.push_str("<dl class=\"fields\">");
    let fields = [
        ("task", &f.task_arn),
        ("role", &f.role_arn),
        ("host", &f.host),
        ("source ip", &f.source_ip),
        ("cluster", &f.cluster_arn),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            let _ = write!(o, "<dt>{k}</dt><dd>{}</dd>", esc(v));
        }
    }
    let _ = write!(
        o,
        "<dt>seen</dt><dd>{}</dd><dt>count</dt><dd>{}</dd></dl>",
        range(&f.first_seen, &f.last_seen),
        thousands(f.count.max(0) as u64)
    );
    if f.kind == "unused_permissions" {
        let _ = write!(
            o,
            "<p><a href=\"#role-{i}\">Least privilege of this role</a> (lists and recommended policy).</p>"
        );
    } else if !f.evidence.is_null() {
        o.push_str("<details open><summary>Evidence</summary>");
        value(o, &f.evidence, 0);
        o.push_str("</details>");
    }
    o.push_str("</article>\n");
}

fn findings(o: &mut String, d: &Data) {
    let _ = write!(
        o,
        "<section id=\"findings\"><h2>Findings ({})</h2>",
        d.findings.len()
    );
    if d.findings.is_empty() {
        o.push_str("<p class=\"muted\">No findings.</p>");
    }
    let suppressed = d.findings.iter().filter(|f| f.suppressed.is_some()).count();
    if suppressed > 0 {
        let _ = write!(
            o,
            "<p>{suppressed} of them suppressed by the configuration (marked below).</p>"
        );
    }
    for e in &d.expired {
        let _ = write!(
            o,
            "<p class=\"expired\"><strong>Expired suppression</strong>: {}</p>",
            esc(&e.to_string())
        );
    }
    for (sev, n) in d.by_severity() {
        if n == 0 {
            continue;
        }
        let _ = write!(
            o,
            "<h3 class=\"{0}\" style=\"margin-top:22px;color:var(--c)\">{1} ({n})</h3>",
            sev.as_str(),
            match sev {
                Severity::Critical => "Critical",
                Severity::High => "High",
                Severity::Medium => "Medium",
                Severity::Low => "Low",
            }
        );
        for (i, f) in d.findings.iter().enumerate() {
            if f.severity == sev {
                finding(o, i, f);
            }
        }
    }
    o.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_markup_quotes_and_controls() {
        assert_eq!(
            esc("<a href=\"x\" title='y'>&\x1b[31m</a>"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;\\x1b[31m&lt;/a&gt;"
        );
        assert_eq!(esc_lines("a\n<b>\r\n"), "a\n&lt;b&gt;\\x0d\n");
    }

    #[test]
    fn evidence_is_bounded_and_escaped() {
        let rows: Vec<Value> = (0..30)
            .map(|i| json!({"time": i, "user_agent": "<script>x</script>"}))
            .collect();
        let mut o = String::new();
        value(
            &mut o,
            &json!({"calls": rows, "ips": ["1.2.3.4"], "deep": {"a": {"b": {"c": {"d": {"e": 1}}}}}}),
            0,
        );
        assert!(!o.contains("<script"), "{o}");
        assert!(o.contains("&lt;script&gt;"));
        assert!(o.contains("… 5 more rows"));
        assert_eq!(o.matches("<tr>").count(), 26, "header and 25 rows");
        assert!(o.contains("{&quot;e&quot;:1}"), "deep values as JSON: {o}");
    }
}
