//! `moe report`: plots of a routing trace and its replays (the `plotters`
//! crate), SVG by default, PNG on request:
//! - `expert_use.svg`: how often each expert of each layer was chosen
//!   (a layer × expert heatmap with a colour scale; counts in the cells
//!   where they fit, so Mixtral's 32 × 8 reads as numbers and Qwen3's
//!   48 × 128 as colour, every cell at least 8 × 10 pixels);
//! - `hit_rate_per_layer.svg`: the run's hit rate per layer, and LRU's and
//!   Belady's in replay at the run's budget;
//! - `hit_rate_vs_size.svg`: hit rate against cache size for each policy,
//!   Belady's bound dashed;
//! - `bytes_per_token.svg`: MiB read per forward pass over time (per token),
//!   as recorded and in replay.
//!
//! Every number drawn comes from [`ReportData`], which `moe report` also
//! prints as tables; `tests/report_plots.rs` reads the numbers back out of
//! the SVGs. A `--stats-json` file gives the recorded plots only (no
//! replays without a trace).

use std::path::{Path, PathBuf};

use moe_offload::simulate::SimResult;
use moe_offload::trace::Outcome;
use moe_offload::Trace;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// One named line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// Everything the plots show.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub model: String,
    /// Times each expert was chosen, `[layer][expert]` (every token).
    pub usage: Vec<Vec<u64>>,
    /// The budget of the per-layer and over-time plots, bytes and % of all.
    pub budget: u64,
    pub budget_pct: f64,
    /// Hit rate (%) per layer: recorded, and replayed LRU and Belady.
    pub per_layer: Vec<Series>,
    /// Hit rate (%) against cache size (% of all experts), per policy.
    pub vs_size: Vec<Series>,
    /// MiB read per token, per forward pass (x: positions done after it).
    pub over_time: Vec<Series>,
}

fn pct(x: f64) -> f64 {
    100.0 * x
}

impl ReportData {
    /// From a trace, its sweep (`sweep[size][policy]` at `sizes`) and LRU and
    /// Belady replays at `budget`.
    pub fn new(trace: &Trace, sizes: &[u64], sweep: &[Vec<SimResult>], budget: u64, lru: &SimResult, belady: &SimResult) -> ReportData {
        let h = &trace.header;
        let mut usage = vec![vec![0u64; h.n_expert]; h.n_layer];
        for p in &trace.passes {
            for r in &p.routes {
                for &(e, _) in &r.chosen {
                    usage[r.layer as usize][e as usize] += 1;
                }
            }
        }
        let all = h.all_bytes().max(1) as f64;
        let layers = |name: &str, f: &dyn Fn(usize) -> Option<f64>, dashed| Series {
            name: name.into(),
            points: (0..h.n_layer).filter_map(|l| f(l).map(|r| (l as f64, pct(r)))).collect(),
            dashed,
        };
        let mut recorded = vec![(0u64, 0u64); h.n_layer];
        let mut known = false;
        for a in trace.accesses() {
            if a.1 != Outcome::Unknown {
                known = true;
                let r = &mut recorded[a.0.layer as usize];
                if a.1.is_hit() {
                    r.0 += 1;
                } else {
                    r.1 += 1;
                }
            }
        }
        let mut per_layer = Vec::new();
        let budget_label = format!("{:.0}%", 100.0 * budget as f64 / all);
        let recorded_label = format!(
            "recorded ({} at {})",
            h.setting("policy").unwrap_or("lru"),
            h.setting("budget").and_then(|b| b.parse::<u64>().ok()).map_or("?".into(), |b| format!("{:.0}%", 100.0 * b as f64 / all))
        );
        if known {
            per_layer.push(layers(
                &recorded_label,
                &|l| {
                    let (hit, miss) = recorded[l];
                    (hit + miss > 0).then(|| hit as f64 / (hit + miss) as f64)
                },
                false,
            ));
        }
        per_layer.push(layers(&format!("lru replay at {budget_label}"), &|l| lru.layer_hit_rate(l), false));
        per_layer.push(layers(&format!("belady at {budget_label}"), &|l| belady.layer_hit_rate(l), true));
        let n_policies = sweep.first().map_or(0, Vec::len);
        let vs_size = (0..n_policies)
            .map(|i| {
                let policy = sweep[0][i].policy;
                Series {
                    name: policy.name(),
                    points: sizes.iter().zip(sweep).map(|(&b, r)| (100.0 * b as f64 / all, pct(r[i].hit_rate()))).collect(),
                    dashed: policy == moe_offload::simulate::Policy::Belady,
                }
            })
            .collect();
        let mib = (1u64 << 20) as f64;
        let per_pass = |name: &str, bytes: &dyn Fn(usize) -> u64, dashed| Series {
            name: name.into(),
            points: trace.passes.iter().enumerate().map(|(i, p)| ((p.pos + p.n_tokens) as f64, bytes(i) as f64 / mib / p.n_tokens as f64)).collect(),
            dashed,
        };
        let mut over_time = Vec::new();
        if known {
            over_time.push(per_pass(&recorded_label, &|i| trace.passes[i].accesses().map(|a| a.2).sum(), false));
        }
        over_time.push(per_pass(&format!("lru replay at {budget_label}"), &|i| lru.pass_bytes[i], false));
        over_time.push(per_pass(&format!("belady at {budget_label}"), &|i| belady.pass_bytes[i], true));
        ReportData {
            model: h.model_name.clone(),
            usage,
            budget,
            budget_pct: 100.0 * budget as f64 / all,
            per_layer,
            vs_size,
            over_time,
        }
    }
}

impl ReportData {
    /// From a `moe run --stats-json` file: expert use (if it has routing
    /// diversity: decode steps, or the prompt with `-b 1`), the run's hit
    /// rate per layer, and MiB read per token per record. No replays: the
    /// hit-rate-vs-size plot needs a trace.
    pub fn from_stats_json(text: &str, path: &Path) -> Result<ReportData> {
        let bad = |what: &str| Error::InvalidArgument(format!("{}: not a moe --stats-json file: {what}", path.display()));
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let layers = v["cache"]["layers"].as_array().ok_or_else(|| bad("no cache.layers (was the run using an expert cache?)"))?;
        let model = v["model"].as_str().map(|m| Path::new(m).file_name().map_or(m.to_string(), |f| f.to_string_lossy().into_owned())).unwrap_or_default();
        let usage: Vec<Vec<u64>> = v["routing"]["layers"]
            .as_array()
            .map(|ls| ls.iter().map(|l| l["usage"].as_array().map_or(Vec::new(), |u| u.iter().filter_map(|x| x.as_u64()).collect())).collect())
            .unwrap_or_default();
        let budget = v["cache"]["budget_bytes"].as_u64().unwrap_or(0);
        let per_layer = vec![Series {
            name: "recorded".into(),
            points: layers.iter().enumerate().filter_map(|(l, x)| x["hit_rate"].as_f64().map(|r| (l as f64, pct(r)))).collect(),
            dashed: false,
        }];
        let mut pos = 0.0;
        let mut points = Vec::new();
        for t in v["tokens"].as_array().ok_or_else(|| bad("no tokens array"))? {
            let n = t["n_tokens"].as_f64().unwrap_or(1.0).max(1.0);
            pos += n;
            points.push((pos, t["bytes_read"].as_f64().unwrap_or(0.0) / (1u64 << 20) as f64 / n));
        }
        Ok(ReportData {
            model,
            usage,
            budget,
            budget_pct: 0.0,
            per_layer,
            vs_size: Vec::new(),
            over_time: vec![Series { name: "recorded".into(), points, dashed: false }],
        })
    }
}

/// Output format of the plots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    fn ext(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Png => "png",
        }
    }
}

/// Where `plotters` gets glyph shapes and widths from: `MOE_FONT`, else a
/// common system TrueType font.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

fn register_font() -> Result<()> {
    static DONE: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("MOE_FONT").map(PathBuf::from).into_iter().chain(FONT_PATHS.iter().map(PathBuf::from)).collect();
        let Some(path) = candidates.iter().find(|p| p.is_file()) else {
            return Err(format!(
                "moe report lays out text with a TrueType font and found none (looked at {}); set MOE_FONT=/path/to/font.ttf",
                FONT_PATHS.join(", ")
            ));
        };
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // The font lives as long as the process, as plotters requires.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{}: not a TrueType font plotters can read", path.display()))?;
        Ok(())
    })
    .clone()
    .map_err(Error::InvalidArgument)
}

/// Writes the four plots into `dir`; returns their paths.
pub fn write_plots(data: &ReportData, dir: &Path, format: Format) -> Result<Vec<PathBuf>> {
    register_font()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
    let mut written = Vec::new();
    let heat = HeatmapLayout::new(data.usage.len(), data.usage.first().map_or(0, Vec::len));
    for (name, size) in [("expert_use", heat.canvas()), ("hit_rate_per_layer", (900, 520)), ("hit_rate_vs_size", (900, 560)), ("bytes_per_token", (1000, 520))] {
        // What the data lacks is left out (a stats file has no replays, and
        // routing only with one-token passes).
        if (name == "hit_rate_vs_size" && data.vs_size.is_empty()) || (name == "expert_use" && data.usage.iter().all(Vec::is_empty)) {
            continue;
        }
        let path = dir.join(format!("{name}.{}", format.ext()));
        let r = match format {
            Format::Svg => draw_one(name, data, SVGBackend::new(&path, size).into_drawing_area()),
            Format::Png => draw_one(name, data, BitMapBackend::new(&path, size).into_drawing_area()),
        };
        r.map_err(|e| Error::InvalidArgument(format!("{}: drawing the plot: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

type PlotResult = std::result::Result<(), String>;

fn draw_one<DB: DrawingBackend>(name: &str, data: &ReportData, root: DrawingArea<DB, Shift>) -> PlotResult {
    let s = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(s)?;
    match name {
        "expert_use" => heatmap(data, &root)?,
        "hit_rate_per_layer" => lines(
            &root,
            &format!("{}: hit rate per layer", data.model),
            "layer",
            "hit rate (%)",
            &data.per_layer,
            (0.0, (data.usage.len().max(2) - 1) as f64),
            Some((0.0, 100.0)),
        )?,
        "hit_rate_vs_size" => lines(
            &root,
            &format!("{}: hit rate vs cache size (demand reads)", data.model),
            "expert cache (% of all experts)",
            "hit rate (%)",
            &data.vs_size,
            (0.0, 100.0),
            Some((0.0, 100.0)),
        )?,
        _ => {
            let last = data.over_time.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(1.0, f64::max);
            lines(
                &root,
                &format!("{}: MiB read per token, per forward pass", data.model),
                "tokens processed",
                "MiB read per token",
                &data.over_time,
                (0.0, last),
                None,
            )?
        }
    }
    root.present().map_err(s)
}

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 23, 23),
    ];
    C[i % C.len()]
}

/// Dashes of `pts` (pixel space is not known here: split in data space
/// into 60 dash segments over the x range).
fn dashes(pts: &[(f64, f64)], x_span: f64) -> Vec<Vec<(f64, f64)>> {
    let step = x_span / 60.0;
    let mut out = Vec::new();
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let n = (((b.0 - a.0).abs() / step).ceil() as usize).max(1);
        for k in (0..n).step_by(2) {
            let t0 = k as f64 / n as f64;
            let t1 = ((k + 1) as f64 / n as f64).min(1.0);
            let at = |t: f64| (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
            out.push(vec![at(t0), at(t1)]);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    x: (f64, f64),
    y: Option<(f64, f64)>,
) -> PlotResult {
    let s = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let legend = if y.is_some() { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight };
    let y = y.unwrap_or_else(|| {
        let top = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
        // Head room for the legend above the data.
        (0.0, if top > 0.0 { top * 1.35 } else { 1.0 })
    });
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(56)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(s)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .light_line_style(RGBColor(235, 235, 235))
        .label_style(("sans-serif", 13))
        .x_label_formatter(&|v| if x.1 - x.0 >= 20.0 { format!("{}", v.round() as i64) } else { format!("{v:.1}") })
        .y_label_formatter(&|v| if y.1 - y.0 >= 10.0 { format!("{v:.0}") } else { format!("{v:.2}") })
        .draw()
        .map_err(s)?;
    for (i, ser) in series.iter().enumerate() {
        let c = color(i);
        let style = c.stroke_width(2);
        // The line as one polyline (what tests read back), then dashes over it for Belady.
        let line_style = if ser.dashed { c.mix(0.25).stroke_width(1) } else { style };
        chart.draw_series(LineSeries::new(ser.points.iter().copied(), line_style)).map_err(s)?.label(&ser.name).legend(move |(lx, ly)| {
            PathElement::new(vec![(lx, ly), (lx + 22, ly)], style)
        });
        if ser.dashed {
            chart.draw_series(dashes(&ser.points, x.1 - x.0).into_iter().map(|d| PathElement::new(d, style))).map_err(s)?;
        }
        if ser.points.len() <= 40 {
            chart.draw_series(ser.points.iter().map(|&p| Circle::new(p, 2, c.filled()))).map_err(s)?;
        }
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(s)
}

/// The heatmap's geometry, from the model's shape: cells of 8–48 pixels
/// wide and 10–40 high, the canvas sized to hold them, and counts written
/// in the cells only where a count fits.
struct HeatmapLayout {
    cell_w: u32,
    cell_h: u32,
    n_layer: usize,
    n_expert: usize,
}

impl HeatmapLayout {
    /// Left, right (scale bar) and top + bottom margins around the cells.
    const LEFT: u32 = 80;
    const RIGHT: u32 = 110;
    const TOP_BOTTOM: u32 = 110;

    fn new(n_layer: usize, n_expert: usize) -> HeatmapLayout {
        let cell_w = (1100 / n_expert.max(1) as u32).clamp(8, 48);
        let cell_h = (880 / n_layer.max(1) as u32).clamp(10, 40);
        HeatmapLayout { cell_w, cell_h, n_layer, n_expert }
    }

    fn canvas(&self) -> (u32, u32) {
        (
            (Self::LEFT + Self::RIGHT + self.cell_w * self.n_expert.max(1) as u32).max(720),
            Self::TOP_BOTTOM + self.cell_h * self.n_layer.max(1) as u32,
        )
    }

    /// Counts go in the cells when four digits fit.
    fn counts_fit(&self) -> bool {
        self.cell_w >= 28 && self.cell_h >= 12
    }

    fn font_px(&self) -> f64 {
        (f64::from(self.cell_h) * 0.5).clamp(8.0, 14.0)
    }
}

/// White (unused) to dark blue (the most used), `t` in 0..=1.
fn heat_color(t: f64) -> RGBColor {
    RGBColor((255.0 - 225.0 * t) as u8, (255.0 - 185.0 * t) as u8, (255.0 - 95.0 * t) as u8)
}

fn heatmap<DB: DrawingBackend>(data: &ReportData, root: &DrawingArea<DB, Shift>) -> PlotResult {
    let s = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let (n_layer, n_expert) = (data.usage.len(), data.usage.first().map_or(0, Vec::len));
    let layout = HeatmapLayout::new(n_layer, n_expert);
    let max = data.usage.iter().flatten().copied().max().unwrap_or(1).max(1);
    let (plot, scale) = root.split_horizontally(root.dim_in_pixel().0 - HeatmapLayout::RIGHT);
    let mut chart = ChartBuilder::on(&plot)
        .caption(format!("{}: expert use (times chosen), layer x expert", data.model), ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(-0.5..n_expert as f64 - 0.5, n_layer as f64 - 0.5..-0.5)
        .map_err(s)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("expert")
        .y_desc("layer")
        .x_labels(n_expert.min(17))
        .y_labels(n_layer.min(25))
        .x_label_formatter(&|v| format!("{}", v.round() as i64))
        .y_label_formatter(&|v| format!("{}", v.round() as i64))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(s)?;
    let cells = data.usage.iter().enumerate().flat_map(|(l, row)| row.iter().enumerate().map(move |(e, &u)| (l, e, u)));
    chart
        .draw_series(cells.clone().map(|(l, e, u)| {
            Rectangle::new([(e as f64 - 0.5, l as f64 - 0.5), (e as f64 + 0.5, l as f64 + 0.5)], heat_color(u as f64 / max as f64).filled())
        }))
        .map_err(s)?;
    heat_scale(&scale, max, chart.plotting_area().get_pixel_range().1).map_err(s)?;
    if layout.counts_fit() {
        let font_px = layout.font_px();
        chart
            .draw_series(cells.map(|(l, e, u)| {
                let dark = u as f64 / max as f64 > 0.55;
                let style = TextStyle::from(("sans-serif", font_px).into_font())
                    .color(if dark { &WHITE } else { &BLACK })
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Center,
                    ));
                Text::new(u.to_string(), (e as f64, l as f64), style)
            }))
            .map_err(s)?;
    }
    Ok(())
}

/// The colour scale beside the heatmap: a bar from 0 (bottom) to `max`
/// (top) beside the cells' pixel rows `rows`, labelled at 0, the middle
/// and `max`.
fn heat_scale<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, max: u64, rows: std::ops::Range<i32>) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    const STEPS: u32 = 64;
    let (top, x0, w) = (rows.start, 14i32, 18i32);
    let h = (rows.end - rows.start).max(STEPS as i32);
    for i in 0..STEPS {
        let t = f64::from(i) / f64::from(STEPS - 1);
        let y1 = top + h - (h * i as i32) / STEPS as i32;
        let y0 = top + h - (h * (i as i32 + 1)) / STEPS as i32;
        area.draw(&Rectangle::new([(x0, y0), (x0 + w, y1)], heat_color(t).filled()))?;
    }
    area.draw(&Rectangle::new([(x0, top), (x0 + w, top + h)], RGBColor(160, 160, 160)))?;
    let label = |v: u64, y: i32| Text::new(v.to_string(), (x0 + w + 6, y - 6), ("sans-serif", 12).into_font());
    area.draw(&label(max, top))?;
    area.draw(&label(max / 2, top + h / 2))?;
    area.draw(&label(0, top + h))?;
    area.draw(&Text::new("times chosen", (x0 - 4, top - 22), ("sans-serif", 12).into_font()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The heatmap of Qwen3-30B-A3B's shape reads: 6,144 cells of at least
    /// 8 × 10 pixels, coloured by count (more use, darker), no counts
    /// crammed into them, and a scale saying what the darkest means.
    /// Mixtral's 32 × 8 keeps its counts in the cells.
    #[test]
    fn heatmap_reads_at_48_layers_by_128_experts() {
        for (n_layer, n_expert, counts_in_cells) in [(48usize, 128usize, false), (32, 8, true)] {
            let usage: Vec<Vec<u64>> =
                (0..n_layer).map(|l| (0..n_expert).map(|e| ((l * 7 + e * 13) % 97) as u64).collect()).collect();
            let data = ReportData {
                model: "shape.gguf".into(),
                usage: usage.clone(),
                budget: 0,
                budget_pct: 0.0,
                per_layer: vec![],
                vs_size: vec![],
                over_time: vec![],
            };
            let dir = std::env::temp_dir().join(format!("moe-heatmap-{}-{n_expert}", std::process::id()));
            let svg = std::fs::read_to_string(&write_plots(&data, &dir, Format::Svg).unwrap()[0]).unwrap();
            std::fs::remove_dir_all(&dir).ok();
            let doc = roxmltree::Document::parse(&svg).unwrap();
            let num = |n: &roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
            // The cells: the n_layer × n_expert filled rects drawn row by row after the frame.
            let rects: Vec<roxmltree::Node> = doc.descendants().filter(|n| n.has_tag_name("rect") && n.attribute("fill") != Some("none")).collect();
            let first = rects.iter().position(|r| num(r, "width") < 100.0).unwrap();
            let cells = &rects[first..first + n_layer * n_expert];
            let shade = |r: &roxmltree::Node| {
                let f = r.attribute("fill").unwrap().trim_start_matches('#');
                u32::from_str_radix(&f[..2], 16).unwrap()
            };
            for (i, r) in cells.iter().enumerate() {
                assert!(num(r, "width") >= 8.0 && num(r, "height") >= 10.0, "cell {i}: {:?}", r.attributes().collect::<Vec<_>>());
                let u = usage[i / n_expert][i % n_expert];
                // Red falls as use rises: 255 - 225 * u / max.
                let want = (255.0 - 225.0 * u as f64 / 96.0) as u32;
                assert_eq!(shade(r), want, "cell {i} with count {u}");
            }
            let texts: Vec<&str> = doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
            assert!(texts.contains(&"times chosen") && texts.contains(&"96") && texts.contains(&"48"), "{texts:?}");
            let numbers = texts.iter().filter(|t| t.parse::<u64>().is_ok()).count();
            if counts_in_cells {
                assert!(numbers >= n_layer * n_expert, "{numbers} numbers");
            } else {
                assert!(numbers < 100, "{numbers} numbers: counts crammed into the cells");
            }
        }
    }
}
