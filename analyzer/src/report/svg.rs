//! Inline SVG pictures for `report.html`, written by hand: the activity of each task over time,
//! and granted vs used actions per role. Sizes are bounded by the lane, bucket and role limits,
//! whatever the store holds. Text and tooltips go through [`esc`] like the rest of the page.

use std::fmt::Write as _;

use super::html::esc;
use super::{Lane, RolePrivilege, Timeline, clip, iso, short_arn};
use crate::detect::Severity;

const WIDTH: f64 = 1180.0;
const LABEL: f64 = 250.0;
const PLOT_X: f64 = 262.0;
const PLOT_W: f64 = WIDTH - PLOT_X - 16.0;
const AXIS: f64 = 30.0;
const LANE: f64 = 36.0;
/// Roles drawn in the privilege chart, at most.
pub const MAX_ROLES: usize = 40;

const FETCH: &str = "#2e6fdb";
const FETCH_ERR: &str = "#f79009";
const CALL: &str = "#12a150";
const CALL_ERR: &str = "#d92d20";
const UNVERIFIABLE: &str = "#98a2b3";

pub fn colour(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "#b42318",
        Severity::High => "#c4320a",
        Severity::Medium => "#a15c07",
        Severity::Low => "#175cd3",
    }
}

/// `family:revision` of a lane's task, or its cluster when the family is unknown.
pub fn family(l: &Lane) -> String {
    match (&l.family, l.revision) {
        (Some(f), Some(r)) => format!("{f}:{r}"),
        (Some(f), None) => f.clone(),
        _ => "(family unknown)".to_string(),
    }
}

/// A tick interval giving at most about 12 ticks over `span` seconds.
fn tick_secs(span: i64) -> i64 {
    const STEPS: [i64; 13] = [
        300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172_800, 604_800, 2_592_000,
    ];
    STEPS
        .into_iter()
        .find(|s| span / s <= 12)
        .unwrap_or(2_592_000)
}

fn num(v: f64) -> String {
    format!("{v:.1}")
}

/// Bar height in `0..=max_h` for `n` of at most `max`: logarithmic, so one fetch is visible
/// next to a thousand calls.
fn height(n: i64, max: i64, max_h: f64) -> f64 {
    if n <= 0 || max <= 0 {
        return 0.0;
    }
    (1.5 + (max_h - 1.5) * ((n as f64).ln_1p() / (max as f64).ln_1p())).min(max_h)
}

/// Activity per task lane over the timeline's buckets.
pub fn timeline(t: &Timeline) -> String {
    let height_px = AXIS + LANE * t.lanes.len() as f64 + 8.0;
    let span = (t.buckets * t.bucket_secs).max(1);
    let x = |unix: i64| PLOT_X + ((unix - t.start) as f64 / span as f64).clamp(0.0, 1.0) * PLOT_W;
    let bw = PLOT_W / t.buckets.max(1) as f64;
    let max_fetch = t
        .lanes
        .iter()
        .flat_map(|l| l.fetches.values().map(|(a, b)| a + b))
        .max()
        .unwrap_or(0);
    let max_call = t
        .lanes
        .iter()
        .flat_map(|l| l.calls.values().map(|(a, b)| a + b))
        .max()
        .unwrap_or(0);
    let mut o = String::with_capacity(32 * 1024);
    let _ = write!(
        o,
        "<svg viewBox=\"0 0 {WIDTH} {h}\" width=\"{WIDTH}\" height=\"{h}\" role=\"img\" \
         aria-label=\"credential fetches and API calls per task over time\">",
        h = num(height_px)
    );
    // Lanes: stripe, running span, centre line.
    for (i, l) in t.lanes.iter().enumerate() {
        let y = AXIS + LANE * i as f64;
        let _ = write!(
            o,
            "<rect x=\"0\" y=\"{}\" width=\"{WIDTH}\" height=\"{LANE}\" fill=\"{}\"/>",
            num(y),
            if i % 2 == 0 { "#ffffff" } else { "#f8f9fb" }
        );
        let from = l.started.unwrap_or(t.start);
        let to = l.stopped.unwrap_or(t.start + span);
        if l.started.is_some() || l.stopped.is_some() {
            let _ = write!(
                o,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#e9ecf2\" rx=\"3\"><title>running {} → {}</title></rect>",
                num(x(from)),
                num(y + 4.0),
                num((x(to) - x(from)).max(1.0)),
                num(LANE - 8.0),
                l.started.map_or_else(|| "?".to_string(), iso),
                l.stopped.map_or_else(|| "(still running)".to_string(), iso)
            );
        }
        let _ = write!(
            o,
            "<line x1=\"{PLOT_X}\" x2=\"{}\" y1=\"{c}\" y2=\"{c}\" stroke=\"#d0d5dd\" stroke-width=\"1\"/>",
            num(PLOT_X + PLOT_W),
            c = num(y + LANE / 2.0)
        );
    }
    // Axis ticks and grid.
    let step = tick_secs(span);
    let mut tick = t.start - t.start.rem_euclid(step);
    if tick < t.start {
        tick += step;
    }
    let mut last_day = String::new();
    while tick <= t.start + span {
        let tx = x(tick);
        let stamp = iso(tick);
        let day = stamp.get(5..10).unwrap_or("").to_string();
        let hm = stamp.get(11..16).unwrap_or("");
        let label = if day != last_day {
            format!("{day} {hm}")
        } else {
            hm.to_string()
        };
        last_day = day;
        let _ = write!(
            o,
            "<line x1=\"{tx}\" x2=\"{tx}\" y1=\"{}\" y2=\"{}\" stroke=\"#e4e7ec\"/>\
             <text x=\"{tx}\" y=\"{}\" font-size=\"11\" fill=\"#667085\" text-anchor=\"middle\">{}</text>",
            num(AXIS - 6.0),
            num(height_px - 8.0),
            num(AXIS - 10.0),
            esc(&label),
            tx = num(tx)
        );
        tick += step;
    }
    let _ = write!(
        o,
        "<text x=\"8\" y=\"{}\" font-size=\"11\" fill=\"#667085\">UTC · {}-min buckets</text>",
        num(AXIS - 10.0),
        t.bucket_secs / 60
    );
    let half = LANE / 2.0 - 4.0;
    for (i, l) in t.lanes.iter().enumerate() {
        let y = AXIS + LANE * i as f64;
        let c = y + LANE / 2.0;
        // Finding spans under the bars.
        for m in &l.marks {
            let x0 = x(m.start);
            let w = (x(m.end) - x0).max(3.0);
            let col = colour(m.severity);
            let _ = write!(
                o,
                "<a href=\"#finding-{}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{col}\" \
                 fill-opacity=\"0.2\" stroke=\"{col}\" stroke-width=\"1.2\" rx=\"2\"><title>{} {} {} → {}</title></rect>\
                 <path d=\"M{} {}h9l-4.5 6z\" fill=\"{col}\"/></a>",
                m.finding,
                num(x0),
                num(y + 1.5),
                num(w),
                num(LANE - 3.0),
                m.severity.as_str(),
                esc(&m.kind),
                iso(m.start),
                iso(m.end),
                num(x0 - 4.5),
                num(y + 1.5)
            );
        }
        for (b, (ok, err)) in &l.fetches {
            let bx = PLOT_X + bw * *b as f64;
            let total = ok + err;
            let h = height(total, max_fetch, half);
            let he = if total > 0 {
                h * *err as f64 / total as f64
            } else {
                0.0
            };
            let _ = write!(
                o,
                "<g><title>{} · {ok} fetches, {err} refused</title>\
                 <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{FETCH}\"/>",
                iso(t.start + b * t.bucket_secs),
                num(bx + 0.5),
                num(c - h),
                num((bw - 1.0).max(1.0)),
                num(h - he)
            );
            if he > 0.0 {
                let _ = write!(
                    o,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{FETCH_ERR}\"/>",
                    num(bx + 0.5),
                    num(c - he),
                    num((bw - 1.0).max(1.0)),
                    num(he)
                );
            }
            o.push_str("</g>");
        }
        for (b, (ok, err)) in &l.calls {
            let bx = PLOT_X + bw * *b as f64;
            let total = ok + err;
            let h = height(total, max_call, half);
            let he = if total > 0 {
                h * *err as f64 / total as f64
            } else {
                0.0
            };
            let _ = write!(
                o,
                "<g><title>{} · {ok} API calls, {err} failed</title>\
                 <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{CALL}\"/>",
                iso(t.start + b * t.bucket_secs),
                num(bx + 0.5),
                num(c + 1.0),
                num((bw - 1.0).max(1.0)),
                num(h - he)
            );
            if he > 0.0 {
                let _ = write!(
                    o,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{CALL_ERR}\"/>",
                    num(bx + 0.5),
                    num(c + 1.0 + h - he),
                    num((bw - 1.0).max(1.0)),
                    num(he)
                );
            }
            o.push_str("</g>");
        }
        // Label: family and short task id; the full ARN as tooltip.
        let id = short_arn(&l.task_arn);
        let _ = write!(
            o,
            "<g><title>{}</title><text x=\"8\" y=\"{}\" font-size=\"12.5\" font-weight=\"600\" fill=\"{}\">{}</text>\
             <text x=\"8\" y=\"{}\" font-size=\"11\" fill=\"#667085\">{}{}</text></g>",
            esc(&l.task_arn),
            num(y + 15.0),
            if l.in_finding { "#101828" } else { "#475467" },
            esc(&clip(&family(l), 30)),
            num(y + 29.0),
            esc(&clip(id, 14)),
            if l.in_finding { "" } else { " · context" }
        );
    }
    let _ = write!(
        o,
        "<line x1=\"{LABEL}\" x2=\"{LABEL}\" y1=\"{AXIS}\" y2=\"{}\" stroke=\"#e4e7ec\"/>",
        num(height_px - 8.0)
    );
    o.push_str("</svg>");
    o
}

/// Granted vs used per role: one horizontal bar per role, split into used, unverifiable and
/// unused actions.
pub fn privilege(roles: &[RolePrivilege]) -> String {
    const ROW: f64 = 30.0;
    const BAR_X: f64 = 262.0;
    const BAR_W: f64 = 560.0;
    let shown = &roles[..roles.len().min(MAX_ROLES)];
    let h = 12.0 + ROW * shown.len() as f64 + if roles.len() > MAX_ROLES { 20.0 } else { 0.0 };
    let mut o = String::new();
    let _ = write!(
        o,
        "<svg viewBox=\"0 0 {WIDTH} {hh}\" width=\"{WIDTH}\" height=\"{hh}\" role=\"img\" \
         aria-label=\"granted, used, unverifiable and unused actions per role\">",
        hh = num(h)
    );
    for (i, r) in shown.iter().enumerate() {
        let y = 6.0 + ROW * i as f64;
        let granted = r.granted();
        let parts = [
            (r.used.len(), CALL, "used"),
            (r.unverifiable.len(), UNVERIFIABLE, "unverifiable"),
            (r.unused.len(), CALL_ERR, "unused"),
        ];
        let _ = write!(
            o,
            "<a href=\"#role-{}\"><g><title>{}</title><text x=\"8\" y=\"{}\" font-size=\"12.5\" font-weight=\"600\" fill=\"#101828\">{}</text></g></a>",
            r.finding,
            esc(&r.role_arn),
            num(y + 17.0),
            esc(&clip(short_arn(&r.role_arn), 34))
        );
        let _ = write!(
            o,
            "<rect x=\"{BAR_X}\" y=\"{}\" width=\"{BAR_W}\" height=\"18\" fill=\"#f2f4f7\" rx=\"3\"/>",
            num(y + 4.0)
        );
        // Every non-empty part gets at least 3 px; the rest is shared in proportion.
        let nonzero = parts.iter().filter(|p| p.0 > 0).count() as f64;
        let spare = (BAR_W - 3.0 * nonzero).max(0.0);
        let mut bx = BAR_X;
        for (n, col, what) in parts {
            if n == 0 || granted == 0 {
                continue;
            }
            let w = 3.0 + spare * n as f64 / granted as f64;
            let _ = write!(
                o,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"18\" fill=\"{col}\"><title>{n} {what}</title></rect>",
                num(bx),
                num(y + 4.0),
                num(w)
            );
            bx += w;
        }
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"#344054\">{} used · {} unverifiable · {} unused · {} granted</text>",
            num(BAR_X + BAR_W + 12.0),
            num(y + 17.5),
            r.used.len(),
            r.unverifiable.len(),
            r.unused.len(),
            granted
        );
    }
    if roles.len() > MAX_ROLES {
        let _ = write!(
            o,
            "<text x=\"8\" y=\"{}\" font-size=\"12\" fill=\"#667085\">… {} more roles below</text>",
            num(h - 6.0),
            roles.len() - MAX_ROLES
        );
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Mark;

    #[test]
    fn lane_text_is_escaped() {
        let mut lane = Lane {
            task_arn: "arn:aws:ecs:r:1:task/c/<script>alert(1)</script>".into(),
            family: Some("fam\"ily'<b>".into()),
            in_finding: true,
            ..Lane::default()
        };
        lane.fetches.insert(0, (3, 1));
        lane.calls.insert(2, (10, 0));
        lane.marks.push(Mark {
            start: 1_000,
            end: 1_100,
            severity: Severity::High,
            kind: "<k>".into(),
            finding: 0,
        });
        let t = Timeline {
            start: 900,
            bucket_secs: 300,
            buckets: 4,
            lanes: vec![lane],
            omitted: 0,
        };
        let s = timeline(&t);
        assert!(
            !s.contains("<script") && !s.contains("<b>") && !s.contains("<k>"),
            "{s}"
        );
        assert!(s.contains("&lt;script&gt;") && s.contains("fam&quot;ily&#39;&lt;b&gt;"));
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
    }

    #[test]
    fn ticks_stay_few() {
        for span in [600, 7200, 86_400, 30 * 86_400] {
            assert!(span / tick_secs(span) <= 12, "{span}");
        }
    }
}
