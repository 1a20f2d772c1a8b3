//! The HTML report's charts, drawn as SVG by plotters.
//!
//! Without plotters' `ttf` feature, text sizes are estimated from the font
//! size (no font files, nothing from the system) and the browser draws the
//! glyphs; labels are given room for that. plotters escapes the text it
//! writes into the SVG.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plotters::{
    coord::{Shift, types::RangedCoordf64},
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::{range::seconds, summary::Summary};

const WIDTH: u32 = 900;
const FONT: &str = "sans-serif";
const EGRESS: RGBColor = RGBColor(0xd9, 0x48, 0x1b);
const INGRESS: RGBColor = RGBColor(0x2b, 0x6c, 0xb0);
/// One color per tool (Tableau 10), repeating past ten tools.
const TOOL_COLORS: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];
/// Bars per chart at most, and destinations per tool.
const MAX_BARS: usize = 24;
const TOP_PER_TOOL: usize = 5;
/// Label characters kept on a bar chart's axis.
const MAX_LABEL: usize = 40;

#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart {title:?}: {message}")]
pub struct ChartError {
    title: &'static str,
    message: String,
}

/// A chart: its title (the page's heading for it) and its SVG.
pub struct Chart {
    pub id: &'static str,
    pub title: &'static str,
    pub svg: String,
}

/// The four charts: egress per tool over time, the top destinations per
/// tool, bytes by purpose, and bytes by country.
pub fn all(s: &Summary) -> Result<Vec<Chart>, ChartError> {
    let bars_of = |name: &str, per_tool: usize| -> Vec<Bar> {
        let Some(table) = s.table(name) else {
            return Vec::new();
        };
        let mut kept: Vec<Bar> = Vec::new();
        for (labels, t) in &table.rows {
            let same_tool = kept
                .iter()
                .filter(|b| labels.len() > 1 && b.group == labels[0])
                .count();
            if same_tool < per_tool && kept.len() < MAX_BARS {
                kept.push(Bar {
                    group: labels[0].clone(),
                    label: labels.join(" · "),
                    egress: t.egress,
                    ingress: t.ingress,
                });
            }
        }
        kept
    };
    let mut charts = vec![Chart {
        id: "egress-over-time",
        title: "Egress per tool over time",
        svg: over_time(s).map_err(|message| ChartError {
            title: "Egress per tool over time",
            message,
        })?,
    }];
    for (id, title, table, per_tool) in [
        (
            "top-destinations",
            "Top destinations per tool",
            "destinations",
            TOP_PER_TOOL,
        ),
        ("by-purpose", "Bytes by purpose", "purposes", MAX_BARS),
        ("by-country", "Bytes by country", "countries", MAX_BARS),
    ] {
        let svg = bar_chart(&bars_of(table, per_tool))
            .map_err(|message| ChartError { title, message })?;
        charts.push(Chart { id, title, svg });
    }
    Ok(charts)
}

/// 1536 → "1.5 KiB".
pub fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL {
        return label.to_owned();
    }
    let mut short: String = label.chars().take(MAX_LABEL - 1).collect();
    short.push('…');
    short
}

fn svg_of(
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// A chart with nothing in the range says so in its middle.
fn nothing(root: &DrawingArea<SVGBackend, Shift>) -> Result<(), String> {
    let style = TextStyle::from((FONT, 18).into_font())
        .color(&RGBColor(0x66, 0x66, 0x66))
        .pos(Pos::new(HPos::Center, VPos::Center));
    let (w, h) = root.dim_in_pixel();
    root.draw(&Text::new(
        "no traffic in this range",
        (w as i32 / 2, h as i32 / 2),
        style,
    ))
    .map_err(|e| e.to_string())
}

type Plot<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The series' names and colors, in a box at `position`.
fn legend<'a, 'b: 'a>(
    chart: &mut Plot<'a, 'b>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 13))
        .draw()
        .map_err(|e| e.to_string())
}

struct Bar {
    /// The tool, for the per-tool cut.
    group: String,
    label: String,
    egress: u64,
    ingress: u64,
}

/// Horizontal bars, egress above ingress, the biggest first (at the top).
fn bar_chart(bars: &[Bar]) -> Result<String, String> {
    let n = bars.len();
    let height = 90 + 34 * n.max(3) as u32;
    svg_of(height, |root| {
        if n == 0 {
            return nothing(root);
        }
        let max = bars
            .iter()
            .map(|b| b.egress.max(b.ingress))
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let labels: Vec<String> = bars.iter().map(|b| shorten(&b.label)).collect();
        let widest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        // Bar i is centred on y = n-1-i, so the first is at the top.
        let y_of = |i: usize| (n - 1 - i) as f64;
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(36)
            .y_label_area_size(20 + 7 * widest as u32)
            .build_cartesian_2d(0f64..max * 1.05, -0.5f64..n as f64 - 0.5)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_labels(6)
            .y_labels(0)
            .x_label_formatter(&|v| human_bytes(*v))
            .label_style((FONT, 13))
            .draw()
            .map_err(|e| e.to_string())?;
        // The labels by hand, level with their bars: a numeric axis puts
        // its labels where its tick algorithm likes.
        let style =
            TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, label) in labels.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(0.0, y_of(i)));
            root.draw(&Text::new(label.as_str(), (x - 8, y), style.clone()))
                .map_err(|e| e.to_string())?;
        }
        for (name, color, (top, bottom), value) in [
            (
                "egress",
                EGRESS,
                (0.4, 0.02),
                (|b: &Bar| b.egress) as fn(&Bar) -> u64,
            ),
            ("ingress", INGRESS, (-0.02, -0.4), |b: &Bar| b.ingress),
        ] {
            chart
                .draw_series(bars.iter().enumerate().map(|(i, b)| {
                    Rectangle::new(
                        [(0.0, y_of(i) + top), (value(b) as f64, y_of(i) + bottom)],
                        color.filled(),
                    )
                }))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// Bucket widths to choose from: the first that makes at most 60 buckets.
const STEPS: [u64; 9] = [
    60,
    300,
    900,
    3600,
    3 * 3600,
    6 * 3600,
    86_400,
    7 * 86_400,
    30 * 86_400,
];

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Egress per tool and time bucket, a line per tool. The x axis spans the
/// range (or, where it is open, the records).
fn over_time(s: &Summary) -> Result<String, String> {
    let points = s.egress_over_time.values().flatten().map(|&(t, _)| unix(t));
    let (lo, hi) = (points.clone().min(), points.max());
    let (Some(lo), Some(hi)) = (
        s.range.since.map(unix).or(lo),
        s.range.until.map(|u| unix(u).saturating_sub(1)).or(hi),
    ) else {
        return svg_of(300, nothing);
    };
    let hi = hi.max(lo);
    let step = STEPS
        .into_iter()
        .find(|step| (hi - lo) / step < 60)
        .unwrap_or(365 * 86_400);
    let first = lo - lo % step;
    let buckets = ((hi - first) / step + 1) as usize;
    let lines: Vec<(&str, Vec<u64>)> = s
        .egress_over_time
        .iter()
        .map(|(tool, points)| {
            let mut sums = vec![0u64; buckets];
            for &(t, bytes) in points {
                let i = (unix(t).saturating_sub(first) / step) as usize;
                if let Some(sum) = sums.get_mut(i) {
                    *sum += bytes;
                }
            }
            (tool.as_str(), sums)
        })
        .collect();
    let max = lines
        .iter()
        .flat_map(|(_, v)| v)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let per = humantime::format_duration(Duration::from_secs(step)).to_string();
    let label_of = move |x: f64| {
        // Ticks may fall between buckets: the time at the tick itself.
        let t = UNIX_EPOCH + Duration::from_secs(first + (x.max(0.0) * step as f64) as u64);
        let text = seconds(t);
        // "2026-11-29T10:00:00Z": the date alone once buckets are days.
        let text = if step >= 86_400 {
            &text[..10]
        } else {
            &text[5..16]
        };
        text.replace('T', " ")
    };
    svg_of(420, |root| {
        if lines.is_empty() {
            return nothing(root);
        }
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..(buckets.max(2) - 1) as f64, 0f64..max * 1.1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(8)
            .x_label_formatter(&|x| label_of(*x))
            .y_label_formatter(&|v| human_bytes(*v))
            .y_desc(format!("egress per {per}"))
            .label_style((FONT, 13))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (tool, sums)) in lines.iter().enumerate() {
            let color = TOOL_COLORS[i % TOOL_COLORS.len()];
            let points: Vec<(f64, f64)> = sums
                .iter()
                .enumerate()
                .map(|(x, &v)| (x as f64, v as f64))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(shorten(tool))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(3))
                });
            chart
                .draw_series(
                    points
                        .into_iter()
                        .filter(|&(_, v)| v > 0.0)
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(|e| e.to_string())?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}
