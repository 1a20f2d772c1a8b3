//! The live terminal UI: a tools table, the selected tool's destinations,
//! and a help line. Redraws on every key, resize and snapshot.

use std::time::{Duration, Instant};

use ratatui::{
    DefaultTerminal, Frame,
    crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers},
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::Line,
    widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState},
};

use super::{
    snapshot::Snapshot,
    view::{self, DestLine, Rate, View},
};

const HELP_LINE: &str = "q quit  ↑↓ tool  s sort  r rates/totals  / filter  f freeze  ? help";

const HELP: &[&str] = &[
    "↑ ↓  j k   select a tool: its destinations show below",
    "s          sort by sent, received, connections, last seen, name",
    "r          byte columns: rates (per second) or totals",
    "/          filter tools by name (Enter keeps it, Esc clears it)",
    "f  space   freeze the screen (again: go on)",
    "q  Esc     quit",
    "",
    "Flags: ! policy violation   T telemetry   G geolocation",
    "Totals are agentmon's counters (a restart continues them).",
];

/// The screen's state besides the view.
struct Screen {
    view: View,
    /// The filter being typed, when `/` was pressed.
    editing: bool,
    help: bool,
    /// The last snapshot that could not be read, and why.
    error: Option<String>,
}

/// Runs until `q`. `source` is called every `every` for a new snapshot.
pub fn run(
    source: &mut dyn FnMut() -> anyhow::Result<Snapshot>,
    view: View,
    every: Duration,
) -> anyhow::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, source, view, every);
    ratatui::restore();
    result
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    source: &mut dyn FnMut() -> anyhow::Result<Snapshot>,
    view: View,
    every: Duration,
) -> anyhow::Result<()> {
    let mut screen = Screen {
        view,
        editing: false,
        help: false,
        error: None,
    };
    let mut next = Instant::now() + every;
    loop {
        terminal.draw(|f| draw(f, &screen))?;
        // A resize needs nothing but the redraw at the loop's top.
        if event::poll(next.saturating_duration_since(Instant::now()))?
            && let Event::Key(key) = event::read()?
            && key.kind == KeyEventKind::Press
            && !screen.key(key)
        {
            return Ok(());
        }
        if Instant::now() >= next {
            next = Instant::now() + every;
            if !screen.view.frozen {
                match source() {
                    Ok(s) => {
                        screen.view.update(s);
                        screen.error = None;
                    }
                    Err(e) => screen.error = Some(format!("{e:#}")),
                }
            }
        }
    }
}

impl Screen {
    /// Applies a key; false: quit.
    fn key(&mut self, key: KeyEvent) -> bool {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return false;
        }
        let view = &mut self.view;
        if self.editing {
            match key.code {
                KeyCode::Enter => self.editing = false,
                KeyCode::Esc => {
                    self.editing = false;
                    view.set_filter(String::new());
                }
                KeyCode::Backspace => {
                    let mut f = view.filter.clone();
                    f.pop();
                    view.set_filter(f);
                }
                KeyCode::Char(c) => {
                    let f = format!("{}{c}", view.filter);
                    view.set_filter(f);
                }
                _ => {}
            }
            return true;
        }
        if self.help {
            // Any key closes the help; q still quits.
            self.help = false;
            return !matches!(key.code, KeyCode::Char('q'));
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return false,
            KeyCode::Up | KeyCode::Char('k') => view.select(-1),
            KeyCode::Down | KeyCode::Char('j') => view.select(1),
            KeyCode::Char('s') => {
                view.sort = view.sort.next();
                view.keep_selection();
            }
            KeyCode::Char('r') => view.rates = !view.rates,
            KeyCode::Char('f') | KeyCode::Char(' ') => view.frozen = !view.frozen,
            KeyCode::Char('/') => self.editing = true,
            KeyCode::Char('?') | KeyCode::Char('h') => self.help = true,
            _ => {}
        }
        true
    }
}

fn draw(f: &mut Frame<'_>, screen: &Screen) {
    let view = &screen.view;
    let tools = view.tools();
    let tools_height = tools.len().clamp(1, 6) as u16 + 2;
    let [top, tools_area, dests_area, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(tools_height),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());

    f.render_widget(Paragraph::new(header(view)), top);

    let bytes = if view.rates {
        ["SENT/s", "RECV/s"]
    } else {
        ["SENT", "RECEIVED"]
    };
    let selected = tools
        .iter()
        .position(|l| Some(&l.tool.name) == view.selected.as_ref());
    let rows = tools.iter().map(|l| {
        let t = l.tool;
        let [sent, received] = byte_cells(view.rates, l.rate, (t.egress_bytes, t.ingress_bytes));
        let tls = if t.tls.is_empty() {
            "-".to_owned()
        } else {
            t.tls.join(",")
        };
        let row = Row::new(vec![
            Cell::from(t.name.clone()),
            Cell::from(format!("{:>5}", t.processes)),
            Cell::from(format!("{sent:>10}")),
            Cell::from(format!("{received:>10}")),
            Cell::from(format!("{:>6}", t.connections)),
            Cell::from(format!("{:>4}", t.violations)),
            Cell::from(tls),
        ]);
        if t.violations > 0 {
            row.style(Style::new().fg(Color::Red))
        } else {
            row
        }
    });
    let title = if view.filter.is_empty() {
        " Tools ".to_owned()
    } else {
        format!(" Tools matching {:?} ", view.filter)
    };
    let table = Table::new(
        rows,
        [
            Constraint::Length(16),
            Constraint::Length(5),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(6),
            Constraint::Length(4),
            Constraint::Fill(1),
        ],
    )
    .header(
        Row::new([
            "TOOL".to_owned(),
            "PROCS".to_owned(),
            format!("{:>10}", bytes[0]),
            format!("{:>10}", bytes[1]),
            " CONNS".to_owned(),
            "VIOL".to_owned(),
            "TLS".to_owned(),
        ])
        .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .block(Block::new().borders(Borders::TOP).title(title));
    let mut state = TableState::new().with_selected(selected);
    if tools.is_empty() {
        let empty = if view.filter.is_empty() {
            "no agent processes and no agent traffic yet".to_owned()
        } else {
            format!("no tool matches {:?} (Esc after / clears it)", view.filter)
        };
        f.render_widget(
            Paragraph::new(empty).block(Block::new().borders(Borders::TOP).title(" Tools ")),
            tools_area,
        );
    } else {
        f.render_stateful_widget(table, tools_area, &mut state);
    }

    draw_dests(f, dests_area, view, bytes);
    f.render_widget(Paragraph::new(footer(screen)), bottom);
    if screen.help {
        draw_help(f);
    }
}

fn draw_dests(f: &mut Frame<'_>, area: Rect, view: &View, bytes: [&str; 2]) {
    let Some(tool) = &view.selected else {
        f.render_widget(
            Block::new().borders(Borders::TOP).title(" Destinations "),
            area,
        );
        return;
    };
    let dests = view.dests(tool);
    let now = view.current.time_ms;
    // What the fixed columns and the spaces between the nine leave.
    let width = usize::from(area.width).saturating_sub(55 + 8);
    let rows = dests.iter().map(|l| dest_row(l, view.rates, now, width));
    let table = Table::new(
        rows,
        [
            Constraint::Length(2),
            Constraint::Fill(1),
            // Country codes, or `private`, `anycast`, `unknown`.
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(11),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(5),
            Constraint::Length(4),
        ],
    )
    .header(
        Row::new([
            String::new(),
            "DESTINATION".to_owned(),
            "CC".to_owned(),
            "ASN".to_owned(),
            "PURPOSE".to_owned(),
            format!("{:>9}", bytes[0]),
            format!("{:>9}", bytes[1]),
            "CONNS".to_owned(),
            "LAST".to_owned(),
        ])
        .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .block(Block::new().borders(Borders::TOP).title(format!(
        " {tool}: {} destination{} (sort: {}) ",
        dests.len(),
        if dests.len() == 1 { "" } else { "s" },
        view.sort.label()
    )));
    f.render_widget(table, area);
}

fn dest_row<'a>(l: &DestLine<'a>, rates: bool, now_ms: u64, width: usize) -> Row<'a> {
    let d = l.dest;
    let [sent, received] = byte_cells(rates, l.rate, (d.egress_bytes, d.ingress_bytes));
    let flags = l.flags();
    let style = if flags.starts_with('!') {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else if !flags.is_empty() {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new()
    };
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    Row::new(vec![
        Cell::from(flags),
        Cell::from(view::fit_left(&d.dest, width)),
        Cell::from(dash(&d.country)),
        Cell::from(dash(&d.asn)),
        Cell::from(dash(&d.purpose)),
        Cell::from(format!("{sent:>9}")),
        Cell::from(format!("{received:>9}")),
        Cell::from(format!("{:>5}", d.connections)),
        Cell::from(format!("{:>4}", view::ago(now_ms, d.last_seen_ms))),
    ])
    .style(style)
}

/// The two byte cells: rates (`-` before the second snapshot) or totals.
fn byte_cells(rates: bool, rate: Option<Rate>, totals: (u64, u64)) -> [String; 2] {
    match (rates, rate) {
        (true, Some(r)) => [view::bytes(r.sent), view::bytes(r.received)],
        (true, None) => ["-".to_owned(), "-".to_owned()],
        (false, _) => [view::bytes(totals.0 as f64), view::bytes(totals.1 as f64)],
    }
}

fn header(view: &View) -> Line<'static> {
    let clock =
        crate::clock::rfc3339(std::time::UNIX_EPOCH + Duration::from_millis(view.current.time_ms));
    // hh:mm:ss of the RFC 3339 time.
    let time = clock.get(11..19).unwrap_or(&clock).to_owned();
    let mut text = format!(
        "agentmon top {time}  {}  sort: {}",
        if view.rates { "rates" } else { "totals" },
        view.sort.label()
    );
    if view.frozen {
        text.push_str("  FROZEN (f: go on)");
    }
    Line::from(text).style(Style::new().add_modifier(Modifier::BOLD))
}

fn footer(screen: &Screen) -> Line<'static> {
    if screen.editing {
        return Line::from(format!(
            "filter tools: {}_  (Enter keep, Esc clear)",
            screen.view.filter
        ));
    }
    match &screen.error {
        Some(e) => Line::from(e.clone()).style(Style::new().fg(Color::Red)),
        None => Line::from(HELP_LINE).style(Style::new().add_modifier(Modifier::DIM)),
    }
}

fn draw_help(f: &mut Frame<'_>) {
    let area = f.area();
    let width =
        (HELP.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u16 + 4).min(area.width);
    let height = (HELP.len() as u16 + 2).min(area.height);
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(HELP.iter().map(|l| Line::from(*l)).collect::<Vec<_>>())
            .block(Block::bordered().title(" keys (any key closes) ")),
        rect,
    );
}
