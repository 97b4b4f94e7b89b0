//! `moe report TRACE -o DIR`: the plots of `moe::report` plus the tables of
//! `moe simulate`, from the same replays.

use std::path::PathBuf;

use clap::Args;
use moe::offload_setup::Size;
use moe::report::{write_plots, Format, ReportData};
use moe::{Error, Result};
use moe_offload::simulate::Policy;

#[derive(Args)]
#[command(after_help = "Examples:
  moe run -m MODEL.gguf -p \"...\" -n 256 --trace run.trace && moe report run.trace -o plots
  moe report run.trace -o plots --png --sizes 10%,25%,50%,75%,100%
  moe report stats.json -o plots          (a --stats-json file: the recorded plots only)")]
pub struct ReportArgs {
    /// Trace written by `moe run --trace`, or a `moe run --stats-json` file (fewer plots: no replays).
    pub trace: PathBuf,
    /// Folder to write the plots and tables.txt into (created if missing).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
    /// PNG images instead of SVG.
    #[arg(long)]
    pub png: bool,
    /// Cache sizes of the hit-rate-vs-size plot.
    #[arg(long, value_delimiter = ',', default_value = "5%,10%,15%,20%,25%,30%,40%,50%,60%,70%,80%,90%,100%", value_parser = Size::parse)]
    pub sizes: Vec<Size>,
    /// Policies of that plot.
    #[arg(long = "policy", value_delimiter = ',', default_value = "lru,lfu,lrfu,static-hot,per-layer,belady", value_parser = Policy::parse)]
    pub policies: Vec<Policy>,
    /// Budget of the per-layer and over-time plots (default: the trace's).
    #[arg(long = "at", value_name = "SIZE", value_parser = Size::parse)]
    pub at: Option<Size>,
}

pub fn report_cmd(a: ReportArgs) -> Result<()> {
    let head = std::fs::read(&a.trace).map_err(|e| Error::Io { path: a.trace.clone(), source: e })?;
    if head.first() == Some(&b'{') {
        let text = String::from_utf8_lossy(&head);
        let data = ReportData::from_stats_json(&text, &a.trace)?;
        let files = write_plots(&data, &a.output, if a.png { Format::Png } else { Format::Svg })?;
        for f in &files {
            eprintln!("moe: report: wrote {}", f.display());
        }
        eprintln!("moe: report: a stats file has no replays; record with --trace for the hit-rate-vs-size plot and tables");
        return Ok(());
    }
    let trace = moe::trace::read_for(&a.trace, None)?;
    if let Some(note) = moe::trace::cut_note(&trace, &a.trace) {
        eprintln!("moe: note: {note}");
    }
    let sim = moe::simulation::Simulation::run(trace, &a.sizes, &a.policies, a.at, None, None)?;
    let data = ReportData::new(&sim.trace, &sim.sizes, &sim.results, sim.layers_at, &sim.lru_at, &sim.belady_at);
    let files = write_plots(&data, &a.output, if a.png { Format::Png } else { Format::Svg })?;
    let tables = a.output.join("tables.txt");
    let mut out = Vec::new();
    crate::simulate::print_tables(&mut out, &sim).map_err(|e| Error::Io { path: tables.clone(), source: e })?;
    std::fs::write(&tables, out).map_err(|e| Error::Io { path: tables.clone(), source: e })?;
    for f in files.iter().chain([&tables]) {
        eprintln!("moe: report: wrote {}", f.display());
    }
    Ok(())
}
