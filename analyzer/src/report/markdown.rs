//! `report.md`: the same content as the HTML page without pictures, for a pull request, a ticket
//! or a terminal. Untrusted strings go through [`md`]: control characters shown escaped, Markdown
//! punctuation backslash-escaped and `& < >` as character references, so nothing a log holds can
//! become a link, an image, raw HTML or a table cell boundary.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Data, MAX_CHANGES, RolePrivilege, clip, short_arn};
use crate::detect::{Finding, Severity};
use crate::terminal::{escape_control, thousands};

const MAX_ROWS: usize = 20;
const MAX_ITEMS: usize = 30;
const MAX_STR: usize = 200;
const MAX_ACTIONS: usize = 150;
const MAX_POLICY: usize = 20_000;

/// `s` safe as Markdown inline text and inside a table cell.
pub fn md(s: &str) -> String {
    let s = escape_control(s);
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 16);
    for (i, &c) in chars.iter().enumerate() {
        let alnum = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        match c {
            // An underscore between letters or digits never delimits emphasis (CommonMark
            // intraword rule): `use_after_stop` stays readable.
            '_' if alnum(i.checked_sub(1)) && alnum(Some(i + 1)) => out.push('_'),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' | '{' | '}' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "—".to_string(), md)
}

fn range(a: &Option<String>, b: &Option<String>) -> String {
    match (a, b) {
        (None, None) => "—".to_string(),
        (a, b) if a == b => opt(a),
        _ => format!("{} → {}", opt(a), opt(b)),
    }
}

/// One value on one line (table cells, list items).
fn inline(v: &Value) -> String {
    match v {
        Value::Null => "—".to_string(),
        Value::String(s) => md(&clip(s, MAX_STR)),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            let mut items: Vec<String> = a.iter().take(MAX_ITEMS).map(inline).collect();
            if a.len() > MAX_ITEMS {
                items.push(format!("… {} more", a.len() - MAX_ITEMS));
            }
            if items.is_empty() {
                "none".to_string()
            } else {
                items.join(", ")
            }
        }
        Value::Bool(_) | Value::Number(_) => md(&v.to_string()),
        other => md(&clip(&other.to_string(), MAX_STR)),
    }
}

fn table(o: &mut String, rows: &[Value]) {
    let (cols, constant) =
        super::html::split_constant(rows, super::html::columns(rows, MAX_ROWS), MAX_ROWS);
    if !constant.is_empty() {
        let same: Vec<String> = constant
            .iter()
            .map(|(c, v)| format!("{} {}", md(c), inline(v)))
            .collect();
        let _ = writeln!(o, "In every row: {}\n", same.join(" · "));
    }
    let head: Vec<String> = cols.iter().map(|c| md(c)).collect();
    let _ = writeln!(o, "| {} |", head.join(" | "));
    let _ = writeln!(o, "|{}", "---|".repeat(cols.len()));
    for r in rows.iter().take(MAX_ROWS) {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| r.get(*c).map_or_else(String::new, inline))
            .collect();
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
    if rows.len() > MAX_ROWS {
        let _ = writeln!(o, "\n… {} more rows", rows.len() - MAX_ROWS);
    }
    o.push('\n');
}

/// Evidence: scalars and short lists as a bullet list, arrays of objects as tables after it.
pub fn evidence(o: &mut String, v: &Value) {
    let Some(m) = v.as_object() else {
        let _ = writeln!(o, "- {}\n", inline(v));
        return;
    };
    let mut blocks = Vec::new();
    for (k, v) in m {
        match v {
            Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object) => {
                blocks.push((k, a));
            }
            Value::Object(inner) => {
                let _ = writeln!(o, "- **{}**:", md(k));
                for (ik, iv) in inner {
                    let _ = writeln!(o, "  - {}: {}", md(ik), inline(iv));
                }
            }
            _ => {
                let _ = writeln!(o, "- **{}**: {}", md(k), inline(v));
            }
        }
    }
    o.push('\n');
    for (k, rows) in blocks {
        let _ = writeln!(o, "**{}** ({}):\n", md(k), rows.len());
        table(o, rows);
    }
}

fn sev_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Critical",
        Severity::High => "High",
        Severity::Medium => "Medium",
        Severity::Low => "Low",
    }
}

/// The whole document.
pub fn render(d: &Data) -> String {
    let mut o = String::with_capacity(32 * 1024);
    o.push_str("# credtrail report\n\n");
    let window = match (&d.since, &d.until) {
        (None, None) => "all data in the store".to_string(),
        (s, u) => format!(
            "events from {} until {}",
            s.as_deref().map_or("the first".to_string(), md),
            u.as_deref().map_or("the last".to_string(), md)
        ),
    };
    let _ = writeln!(
        o,
        "Generated by credtrail {} at {} over {window}. The pictures are in `report.html`.\n",
        env!("CARGO_PKG_VERSION"),
        md(&d.generated_at)
    );
    changes(&mut o, d);
    summary(&mut o, d);
    reach(&mut o, d);
    activity(&mut o, d);
    privilege(&mut o, d);
    findings(&mut o, d);
    o
}

fn changes(o: &mut String, d: &Data) {
    let Some(c) = &d.changes else { return };
    o.push_str(
        "## Since the last run

",
    );
    let _ = writeln!(o, "{}.\n", md(&c.summary()));
    for (title, list) in c.groups() {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(
            o,
            "### {title} ({})\n\n| severity | kind | task / role / host | title |\n|---|---|---|---|",
            list.len()
        );
        for f in list.iter().take(MAX_CHANGES) {
            let severity = match f.change.as_ref().and_then(|c| c.previous_severity) {
                Some(p) => format!("{} (was {})", f.severity.as_str(), p.as_str()),
                None => f.severity.as_str().to_string(),
            };
            let _ = writeln!(
                o,
                "| {severity} | {} | {} | {} |",
                md(&f.kind),
                md(&subject(f)),
                md(&f.title)
            );
        }
        if list.len() > MAX_CHANGES {
            let _ = writeln!(o, "\n… and {} more.", list.len() - MAX_CHANGES);
        }
        o.push('\n');
    }
}

/// The task, else the role, else the host (and address) a finding is about.
pub fn subject(f: &Finding) -> String {
    f.task_arn
        .clone()
        .or_else(|| f.role_arn.clone())
        .or_else(|| {
            f.host
                .as_ref()
                .map(|h| format!("{h} {}", f.source_ip.as_deref().unwrap_or("")))
        })
        .unwrap_or_default()
}

fn summary(o: &mut String, d: &Data) {
    o.push_str("## Summary\n\n| severity | findings |\n|---|---:|\n");
    for (s, n) in d.by_severity() {
        let _ = writeln!(o, "| {} | {n} |", s.as_str());
    }
    let c = &d.coverage;
    let _ = write!(
        o,
        "\n| source | time range | holds |\n|---|---|---|\n\
         | credential audit log | {} | {} requests, {} hosts, {} rejected lines |\n\
         | CloudTrail | {} | {} events, {} rejected records |\n\
         | ECS tasks | | {} tasks in {} clusters |\n\
         | IAM | | {} roles |\n\n",
        range(&c.audit_first, &c.audit_last),
        thousands(c.audit_rows.max(0) as u64),
        c.audit_hosts,
        thousands(c.rejected_lines.max(0) as u64),
        range(&c.trail_first, &c.trail_last),
        thousands(c.trail_events.max(0) as u64),
        thousands(c.trail_rejects.max(0) as u64),
        thousands(c.tasks.max(0) as u64),
        c.clusters,
        c.roles
    );
    let kinds = d.by_kind();
    if !kinds.is_empty() {
        o.push_str("| kind | severity | findings |\n|---|---|---:|\n");
        for (k, s, n) in kinds {
            let _ = writeln!(o, "| {} | {} | {n} |", md(&k), s.as_str());
        }
        o.push('\n');
    }
    if !d.failed.is_empty() {
        o.push_str("**Detections that did not run:**\n\n");
        for (file, e) in &d.failed {
            let _ = writeln!(o, "- {}: {}", md(file), md(&clip(e, 600)));
        }
        o.push('\n');
    }
}

/// `credtrail coverage` as a section: what the findings below could and could not judge.
fn reach(o: &mut String, d: &Data) {
    let Some(c) = &d.reach else { return };
    o.push_str("## Coverage: what this report can judge\n\n");
    let rows = |v: serde_json::Result<Value>| match v {
        Ok(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    if c.hosts.is_empty() {
        o.push_str("No host is covered: no collector segments and no raw audit files.\n\n");
    } else {
        let _ = writeln!(
            o,
            "Hosts covered (collector running and tailing, or raw audit files):\n"
        );
        table(o, &rows(serde_json::to_value(&c.hosts)));
        if c.hosts.len() > MAX_ROWS {
            o.push_str("`credtrail coverage --format json` lists every interval.\n\n");
        }
    }
    if !c.shared_host_names.is_empty() {
        o.push_str(
            "Host names shared by several container instances (kept apart, never merged):\n\n",
        );
        for s in &c.shared_host_names {
            let arns: Vec<String> = s.container_instance_arns.iter().map(|a| md(a)).collect();
            let _ = writeln!(o, "- {}: {}", md(&s.host), arns.join(", "));
        }
        o.push('\n');
    }
    let t = &c.tasks;
    let _ = writeln!(
        o,
        "Tasks: {} known, {} covered, {} on a covered host but never covered, {} on no covered host.\n",
        thousands(t.total.max(0) as u64),
        thousands(t.covered.max(0) as u64),
        thousands(t.on_covered_host_never_covered.max(0) as u64),
        thousands(t.on_no_covered_host.max(0) as u64)
    );
    if !c.tasks_on_no_covered_host.is_empty() {
        o.push_str("Tasks on no covered host (a missing fetch there is no evidence):\n\n");
        table(o, &rows(serde_json::to_value(&c.tasks_on_no_covered_host)));
    }
    o.push_str("Inputs missing:\n\n");
    if c.missing_inputs.is_empty() {
        o.push_str("- none\n");
    }
    for m in &c.missing_inputs {
        let _ = writeln!(o, "- **{}**: {}", md(m.input), md(m.consequence));
    }
    let tr = &c.time_ranges;
    o.push_str("\n| input | first | last |\n|---|---|---|\n");
    for (name, r) in [
        ("CloudTrail", &tr.cloudtrail),
        ("credential audit log", &tr.audit_log),
        ("host coverage", &tr.coverage),
    ] {
        match r {
            Some(r) => {
                let _ = writeln!(o, "| {name} | {} | {} |", md(&r.first), md(&r.last));
            }
            None => {
                let _ = writeln!(o, "| {name} | — | — |");
            }
        }
    }
    o.push('\n');
    for n in &tr.notes {
        let _ = writeln!(o, "- {}", md(n));
    }
    if !tr.notes.is_empty() {
        o.push('\n');
    }
}

fn activity(o: &mut String, d: &Data) {
    let t = &d.timeline;
    o.push_str("## Activity per task\n\n");
    if t.lanes.is_empty() {
        o.push_str("No task activity in the store.\n\n");
        return;
    }
    let _ = writeln!(
        o,
        "Tasks in findings first, then the busiest others (the timeline picture is in `report.html`).{}\n",
        if t.omitted > 0 {
            format!(" {} more tasks in findings are not listed.", t.omitted)
        } else {
            String::new()
        }
    );
    o.push_str("| task | family | role | fetches | refused | calls | failed | findings |\n|---|---|---|---:|---:|---:|---:|---|\n");
    for l in &t.lanes {
        let (fo, fe, co, ce) = l.totals();
        let marks: Vec<String> = l
            .marks
            .iter()
            .map(|m| format!("{} {}", m.severity.as_str(), md(&m.kind)))
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {fo} | {fe} | {co} | {ce} | {} |",
            md(short_arn(&l.task_arn)),
            md(&super::svg::family(l)),
            l.role_arn
                .as_deref()
                .map_or_else(String::new, |r| md(short_arn(r))),
            if marks.is_empty() {
                "context".to_string()
            } else {
                marks.join(", ")
            }
        );
    }
    o.push('\n');
}

fn list(o: &mut String, title: &str, items: &[String]) {
    let _ = writeln!(o, "**{title}** ({}):", items.len());
    if items.is_empty() {
        o.push_str("none\n\n");
        return;
    }
    let shown: Vec<&str> = items.iter().take(MAX_ACTIONS).map(String::as_str).collect();
    let _ = write!(o, "{}", shown.join(", "));
    if items.len() > MAX_ACTIONS {
        let _ = write!(o, ", … {} more", items.len() - MAX_ACTIONS);
    }
    o.push_str("\n\n");
}

fn role(o: &mut String, r: &RolePrivilege) {
    let _ = writeln!(
        o,
        "### {} ({})\n\n{} · window {}\n",
        md(short_arn(&r.role_arn)),
        r.severity.unwrap_or(Severity::Low).as_str(),
        md(&r.role_arn),
        range(&r.window_start, &r.window_end)
    );
    let _ = writeln!(
        o,
        "| granted | used | unverifiable | unused |\n|---:|---:|---:|---:|\n| {} | {} | {} | {} |\n",
        r.granted(),
        r.used.len(),
        r.unverifiable.len(),
        r.unused.len()
    );
    if !r.used.is_empty() {
        let _ = writeln!(
            o,
            "**Used** ({}):\n\n| action | calls | last used |\n|---|---:|---|",
            r.used.len()
        );
        for u in r.used.iter().take(MAX_ACTIONS) {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                md(&u.action),
                u.count.map_or_else(String::new, |c| c.to_string()),
                opt(&u.last_used)
            );
        }
        o.push('\n');
    }
    let unverifiable: Vec<String> = r
        .unverifiable
        .iter()
        .map(|(a, why)| match why {
            Some(w) => format!("{} ({})", md(a), md(w)),
            None => md(a),
        })
        .collect();
    list(
        o,
        "Unverifiable (granted, not observable in this trail; never call these unused)",
        &unverifiable,
    );
    let unused: Vec<String> = r.unused.iter().map(|a| md(a)).collect();
    list(o, "Unused (granted, observable, never used)", &unused);
    if let Some(f) = &r.families {
        o.push_str("**Which task family used what:**\n\n");
        evidence(o, f);
    }
    let n = r.recommended_policy.len();
    for (i, p) in r.recommended_policy.iter().enumerate() {
        let text = super::policy_text(p);
        let _ = writeln!(
            o,
            "**Recommended policy{}**:\n\n~~~json\n{}\n~~~\n",
            if n > 1 {
                format!(", document {} of {n}", i + 1)
            } else {
                String::new()
            },
            fenced(&clip(&text, MAX_POLICY))
        );
    }
}

/// Text for a `~~~` fenced block: a code block shows `<` and `*` as written, so only what could
/// end the fence or drive a terminal is escaped: control and bidirectional characters, and a
/// line that starts with `~~~` or a backtick fence (pretty JSON never does).
fn fenced(text: &str) -> String {
    text.split('\n')
        .map(|l| {
            let l = escape_control(l);
            if l.trim_start().starts_with("~~~") || l.trim_start().starts_with("```") {
                format!("\\{l}")
            } else {
                l.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn privilege(o: &mut String, d: &Data) {
    o.push_str("## Least privilege per role\n\n");
    let unused_roles: Vec<&Finding> = d
        .findings
        .iter()
        .filter(|f| f.kind == "unused_role")
        .collect();
    if !unused_roles.is_empty() {
        let _ = writeln!(o, "**Roles nobody used** ({}):\n", unused_roles.len());
        for f in unused_roles {
            let _ = writeln!(
                o,
                "- {} ({}): {}",
                opt(&f.role_arn),
                f.severity.as_str(),
                md(&f.title)
            );
        }
        o.push('\n');
    }
    if d.roles.is_empty() {
        o.push_str("No `unused_permissions` findings in this run.\n\n");
        return;
    }
    for r in &d.roles {
        role(o, r);
    }
}

fn finding(o: &mut String, n: usize, f: &Finding) {
    let _ = writeln!(o, "#### {n}. {} — {}\n", md(&f.kind), md(&f.title));
    if let Some(s) = &f.suppressed {
        let _ = writeln!(
            o,
            "- **suppressed** until {}: {} ({})",
            md(&s.expires),
            md(&s.reason),
            md(&s.origin)
        );
    }
    if let Some(d) = f.detected_severity {
        let _ = writeln!(
            o,
            "- detected as {} (severity set by the configuration)",
            d.as_str()
        );
    }
    for (k, v) in [
        ("task", &f.task_arn),
        ("role", &f.role_arn),
        ("host", &f.host),
        ("source ip", &f.source_ip),
        ("cluster", &f.cluster_arn),
    ] {
        if let Some(v) = v {
            let _ = writeln!(o, "- {k}: {}", md(v));
        }
    }
    let _ = writeln!(
        o,
        "- seen: {} · count {}\n",
        range(&f.first_seen, &f.last_seen),
        f.count
    );
    if f.kind == "unused_permissions" {
        o.push_str("Lists and recommended policy under \"Least privilege per role\".\n\n");
    } else if !f.evidence.is_null() {
        o.push_str("Evidence:\n\n");
        evidence(o, &f.evidence);
    }
}

fn findings(o: &mut String, d: &Data) {
    let _ = writeln!(o, "## Findings ({})\n", d.findings.len());
    let suppressed = d.findings.iter().filter(|f| f.suppressed.is_some()).count();
    if suppressed > 0 {
        let _ = writeln!(
            o,
            "{suppressed} of them suppressed by the configuration (marked below).\n"
        );
    }
    for e in &d.expired {
        let _ = writeln!(o, "- **expired suppression**: {}", md(&e.to_string()));
    }
    if !d.expired.is_empty() {
        o.push('\n');
    }
    if d.findings.is_empty() {
        o.push_str("No findings.\n");
    }
    let mut n = 0;
    for (sev, count) in d.by_severity() {
        if count == 0 {
            continue;
        }
        let _ = writeln!(o, "### {} ({count})\n", sev_name(sev));
        for f in d.findings.iter().filter(|f| f.severity == sev) {
            n += 1;
            finding(o, n, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_markdown_and_html() {
        assert_eq!(
            md("use_after_stop _x_ a__b"),
            "use_after_stop \\_x\\_ a\\_\\_b"
        );
        assert_eq!(
            md("<img src=x onerror=alert(1)>[a](b) *x* |y| `z`\x1b"),
            "&lt;img src=x onerror=alert(1)&gt;\\[a\\](b) \\*x\\* \\|y\\| \\`z\\`\\\\x1b"
        );
    }

    #[test]
    fn fenced_blocks_cannot_be_closed_or_drive_a_terminal() {
        assert_eq!(
            fenced("{\n  \"a\": \"x\u{202e}y\"\n~~~\n}"),
            "{\n  \"a\": \"x\\u{202e}y\"\n\\~~~\n}"
        );
    }

    #[test]
    fn evidence_tables_escape_cells() {
        let mut o = String::new();
        evidence(
            &mut o,
            &json!({"total": 2, "calls": [{"user_agent": "a|b<script>", "n": 1}, {"n": 2}]}),
        );
        assert!(o.contains("- **total**: 2"), "{o}");
        assert!(o.contains("| a\\|b&lt;script&gt; | 1 |"), "{o}");
        assert!(o.contains("|  | 2 |"), "{o}");
    }
}
