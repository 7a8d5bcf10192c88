//! The serial profile's output layer (`patchdeck::tui::term`): what it
//! sends must leave a VT220 showing exactly the frame ratatui drew, using
//! only sequences a VT220 knows, and as few bytes as the budgets in the
//! issue allow. The terminal is the `vt100` crate's emulator fed the bytes.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use patchdeck::engine::demo;
use patchdeck::engine::depot::Depot;
use patchdeck::engine::fleet::Fleet;
use patchdeck::engine::fuzzy::Searcher;
use patchdeck::engine::lab::Lab;
use patchdeck::tui::app::App;
use patchdeck::tui::state::OpsState;
use patchdeck::tui::term::{self, Glyph, Screen, SerialBackend};
use patchdeck::tui::theme::Theme;
use patchdeck::tui::view;
use patchdeck::tui::{ConsoleOptions, Profile};
use proptest::prelude::*;
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::buffer::Buffer;
use ratatui::layout::{Rect, Size};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

// ---------------------------------------------------------------------------
// A VT220 on the other end of the line.

/// The ratatui backend writing into memory, and an emulated terminal that
/// every frame's bytes are fed to.
struct Line220 {
    terminal: Terminal<SerialBackend<Vec<u8>>>,
    vt: vt100::Parser,
    /// Every byte sent, for the sequence check.
    all: Vec<u8>,
}

impl Line220 {
    fn new(width: u16, height: u16) -> Line220 {
        let backend = SerialBackend::new(Vec::new(), Some(Size::new(width, height)));
        let mut terminal = Terminal::new(backend).unwrap();
        terminal.clear().unwrap();
        let mut line = Line220 {
            terminal,
            vt: vt100::Parser::new(
                std::num::NonZeroU16::new(height).unwrap(),
                std::num::NonZeroU16::new(width).unwrap(),
                0,
            ),
            all: Vec::new(),
        };
        line.take();
        line
    }

    /// Bytes written since the last call, fed to the emulator.
    fn take(&mut self) -> Vec<u8> {
        let bytes = std::mem::take(self.terminal.backend_mut().writer_mut());
        self.vt.process(&bytes);
        self.all.extend_from_slice(&bytes);
        bytes
    }

    /// Draws a frame; returns its bytes after checking the emulated screen
    /// shows exactly that frame.
    fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame)) -> Vec<u8> {
        let expected = self.terminal.draw(render).unwrap().buffer.clone();
        let bytes = self.take();
        if let Err(e) = same(&expected, self.vt.screen()) {
            panic!("{e}\nbytes: {:?}", String::from_utf8_lossy(&bytes));
        }
        assert_eq!(
            screen_of(&expected),
            *self.terminal.backend().screen(),
            "the backend's copy of the screen drifted"
        );
        bytes
    }
}

fn screen_of(buf: &Buffer) -> Screen {
    let mut s = Screen::blank(buf.area.width, buf.area.height);
    for (i, c) in buf.content.iter().enumerate() {
        s.cells[i] = term::glyph(c);
    }
    s
}

/// An emulated VT220 of `width` x `height`.
fn emulator(width: u16, height: u16) -> vt100::Parser {
    vt100::Parser::new(
        std::num::NonZeroU16::new(height).unwrap(),
        std::num::NonZeroU16::new(width).unwrap(),
        0,
    )
}

/// A screen whose rows start with `rows`' text, attributes varying by column.
fn seeded(width: u16, height: u16, rows: &[String]) -> Screen {
    let mut screen = Screen::blank(width, height);
    for (y, row) in rows.iter().take(height as usize).enumerate() {
        for (x, c) in row.bytes().take(width as usize).enumerate() {
            screen.cells[y * width as usize + x] = Glyph {
                ch: c,
                attrs: (x % 3) as u8,
            };
        }
    }
    screen
}

/// Changes the cells at `pokes` (x, y, attributes) that are on `screen`.
fn poke(screen: &mut Screen, pokes: &[(u16, u16, u8)]) {
    for &(x, y, attrs) in pokes {
        if x < screen.width && y < screen.height {
            screen.cells[y as usize * screen.width as usize + x as usize] = Glyph {
                ch: b'a' + attrs,
                attrs,
            };
        }
    }
}

/// `screen` as a ratatui buffer, for [`same`].
fn buffer_of(screen: &Screen) -> Buffer {
    let mut buf = Buffer::empty(Rect::new(0, 0, screen.width, screen.height));
    for y in 0..screen.height {
        for x in 0..screen.width {
            let g = screen.get(x, y);
            buf[(x, y)].set_char(g.ch as char).set_style(style_of(
                (g.attrs & term::BOLD != 0) as u8
                    | ((g.attrs & term::UNDERLINE != 0) as u8) << 1
                    | ((g.attrs & term::REVERSE != 0) as u8) << 2,
            ));
        }
    }
    buf
}

/// Whether the emulated screen shows `buf` as the serial console must:
/// each cell's ASCII character, bold, underline and reverse.
fn same(buf: &Buffer, vt: &vt100::Screen) -> Result<(), String> {
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let want = term::glyph(&buf[(x, y)]);
            let cell = vt
                .cell(y, x)
                .ok_or_else(|| format!("no cell {x},{y} in the emulator"))?;
            let ch = cell.contents().chars().next().unwrap_or(' ');
            let mut attrs = 0;
            if cell.bold() {
                attrs |= term::BOLD;
            }
            if cell.underline() {
                attrs |= term::UNDERLINE;
            }
            if cell.inverse() {
                attrs |= term::REVERSE;
            }
            let got = Glyph {
                ch: ch as u8,
                attrs,
            };
            if got != want || !ch.is_ascii() {
                return Err(format!(
                    "cell {x},{y}: terminal shows {:?} attrs {attrs}, frame has {:?} attrs {}\nterminal:\n{}",
                    ch,
                    want.ch as char,
                    want.attrs,
                    vt.contents()
                ));
            }
        }
    }
    Ok(())
}

/// Checks that `bytes` hold printable ASCII, CR, LF, BS and only these
/// escape sequences: CUP, CUU/CUD/CUF/CUB, ICH, DCH, ECH, ED, EL, SGR
/// 0/1/4/7, DECSTBM, RI, IND and DECTCEM (cursor hide/show).
fn vt220_only(bytes: &[u8]) -> Result<(), String> {
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            0x20..=0x7e | b'\r' | b'\n' | 0x08 => i += 1,
            0x1b => {
                let Some(&next) = bytes.get(i + 1) else {
                    return Err(format!("ESC at the end, offset {i}"));
                };
                if next == b'M' || next == b'D' {
                    i += 2;
                    continue;
                }
                if next != b'[' {
                    return Err(format!("ESC {:?} at offset {i}", next as char));
                }
                let start = i + 2;
                let mut j = start;
                while j < bytes.len()
                    && (bytes[j].is_ascii_digit() || bytes[j] == b';' || bytes[j] == b'?')
                {
                    j += 1;
                }
                let Some(&fin) = bytes.get(j) else {
                    return Err(format!("unfinished CSI at offset {i}"));
                };
                let params = std::str::from_utf8(&bytes[start..j]).unwrap_or("?");
                let nums: Vec<&str> = params.split(';').collect();
                let numeric = !params.contains('?');
                let ok = match fin {
                    b'H' => numeric && nums.len() <= 2,
                    b'A' | b'B' | b'C' | b'D' | b'@' | b'P' | b'X' => numeric && nums.len() == 1,
                    b'J' | b'K' => matches!(params, "" | "0" | "1" | "2"),
                    b'm' => {
                        numeric
                            && nums
                                .iter()
                                .all(|p| matches!(*p, "" | "0" | "1" | "4" | "7"))
                    }
                    b'r' => numeric && (params.is_empty() || nums.len() == 2),
                    b'l' | b'h' => params == "?25",
                    _ => false,
                };
                if !ok {
                    return Err(format!(
                        "ESC [ {params} {} at offset {i} is not a VT220 sequence this console may send",
                        fin as char
                    ));
                }
                i = j + 1;
            }
            _ => return Err(format!("byte {b:#04x} at offset {i}")),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The console itself.

fn args() -> ConsoleOptions {
    ConsoleOptions {
        theme: None,
        serial: false,
        refresh_ms: None,
    }
}

fn env_of(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    let pairs = pairs.to_vec();
    move |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

/// The profile a VT220 on a serial line gets.
fn serial_profile() -> Profile {
    Profile::choose(&args(), &env_of(&[("TERM", "vt220"), ("LC_ALL", "C")]))
}

struct Console {
    app: App,
    searcher: Searcher,
    _dir: tempfile::TempDir,
}

fn console(patches: usize) -> Console {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::new(dir.path().join("demo"));
    demo::write_lab(
        &lab,
        demo::DemoOptions {
            patches,
            ..Default::default()
        },
    )
    .unwrap();
    let depot = Depot::open(&lab.depot_dir()).unwrap();
    let profile = serial_profile();
    assert!(profile.serial);
    let mut theme = Theme::load(&profile.theme, None).unwrap();
    profile.adjust(&mut theme);
    let mut app = App::new("demo".into(), depot, &lab.config().unwrap(), theme);
    let fleet = Fleet::load(&lab.fleet_path()).unwrap();
    app.ops = OpsState::new(lab.clone(), fleet);
    let searcher = Searcher::new(app.lines.clone());
    Console {
        app,
        searcher,
        _dir: dir,
    }
}

impl Console {
    fn key(&mut self, code: KeyCode) {
        let effect = self.app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
        self.app.run_effect_now(effect, &mut self.searcher);
    }
    fn keys(&mut self, keys: &str) {
        for c in keys.chars() {
            self.key(KeyCode::Char(c));
        }
    }
}

// ---------------------------------------------------------------------------
// The console's own screens.

fn draw_console(line: &mut Line220, c: &mut Console) -> Vec<u8> {
    line.draw(|f| view::render(&mut c.app, f))
}

#[test]
fn console_screens_use_only_vt220_sequences_and_show_each_frame() {
    let mut c = console(80);
    let mut line = Line220::new(80, 24);
    draw_console(&mut line, &mut c);
    type Step = Box<dyn Fn(&mut Console)>;
    let steps: Vec<(&str, Step)> = vec![
        ("j x30", Box::new(|c| c.keys(&"j".repeat(30)))),
        ("k x25", Box::new(|c| c.keys(&"k".repeat(25)))),
        ("page down", Box::new(|c| c.key(KeyCode::PageDown))),
        ("mark", Box::new(|c| c.keys(" j "))),
        ("search", Box::new(|c| c.keys("/tls"))),
        ("search kept", Box::new(|c| c.key(KeyCode::Enter))),
        ("search cleared", Box::new(|c| c.key(KeyCode::Esc))),
        ("help", Box::new(|c| c.keys("?"))),
        ("help closed", Box::new(|c| c.key(KeyCode::Esc))),
        ("filters", Box::new(|c| c.keys("2jj"))),
        ("replication", Box::new(|c| c.keys("3"))),
        ("groups", Box::new(|c| c.keys("4j"))),
        ("command", Box::new(|c| c.keys(":list"))),
        ("command cancelled", Box::new(|c| c.key(KeyCode::Esc))),
        ("depot", Box::new(|c| c.keys("1G"))),
    ];
    for (what, step) in &steps {
        for _ in 0..2 {
            step(&mut c);
            let bytes = draw_console(&mut line, &mut c);
            if let Err(e) = vt220_only(&bytes) {
                panic!("{what}: {e}");
            }
        }
    }
    vt220_only(&line.all).unwrap();
}

#[test]
fn an_unchanged_frame_sends_nothing() {
    let mut c = console(80);
    let mut line = Line220::new(80, 24);
    assert!(!draw_console(&mut line, &mut c).is_empty());
    assert_eq!(draw_console(&mut line, &mut c), b"", "idle redraw");
    c.keys("j");
    assert!(!draw_console(&mut line, &mut c).is_empty());
    for _ in 0..3 {
        assert_eq!(draw_console(&mut line, &mut c), b"", "idle redraw");
    }
}

#[test]
fn serial_byte_budgets_at_80x24() {
    // The issue's budgets for a 9600-baud line: a first paint of at most
    // 3 KB, and moving the selection one row at most 200 bytes, also when
    // the list scrolls.
    let mut c = console(300);
    let mut line = Line220::new(80, 24);
    let first = draw_console(&mut line, &mut c).len();
    assert!(first <= 3072, "first paint {first} bytes");
    let mut moves = Vec::new();
    let mut scrolls = Vec::new();
    for key in ["j", "k"] {
        for _ in 0..40 {
            let offset = c.app.depot_cursor.offset;
            c.keys(key);
            let n = draw_console(&mut line, &mut c).len();
            if c.app.depot_cursor.offset == offset {
                moves.push(n);
            } else {
                scrolls.push(n);
            }
        }
    }
    moves.sort();
    scrolls.sort();
    eprintln!("first paint {first} bytes\nmoves {moves:?}\nscrolls {scrolls:?}");
    assert!(scrolls.len() >= 20, "the list scrolled: {scrolls:?}");
    let median = |v: &[usize]| v[v.len() / 2];
    assert!(median(&moves) <= 200, "moves: {moves:?}");
    assert!(median(&scrolls) <= 200, "scrolls: {scrolls:?}");
    // Without scroll regions a scroll rewrites every row (about 1.6 KB).
    assert!(scrolls.iter().all(|&n| n < 400), "scrolls: {scrolls:?}");
}

#[test]
fn small_terminals_get_the_notice_not_a_panic() {
    for (w, h) in [(1, 1), (10, 3), (39, 24), (80, 9), (40, 10)] {
        let mut c = console(20);
        let mut line = Line220::new(w, h);
        draw_console(&mut line, &mut c);
        c.keys("jjk?");
        draw_console(&mut line, &mut c);
        let text = line.vt.screen().contents();
        if w < view::MIN_WIDTH || h < view::MIN_HEIGHT {
            if w * h >= 40 {
                assert!(text.contains("too small"), "{w}x{h}: {text}");
            }
        } else {
            assert!(text.contains("Depot"), "{w}x{h}: {text}");
        }
    }
    // A 0x0 screen draws nothing and does not fail.
    let mut c = console(20);
    let backend = SerialBackend::new(Vec::new(), Some(Size::new(0, 0)));
    let mut terminal = Terminal::new(backend).unwrap();
    terminal.draw(|f| view::render(&mut c.app, f)).unwrap();
}

#[test]
fn zero_size_falls_back_to_columns_lines_then_80x24() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let none = env(&[]);
    assert_eq!(term::fallback_size(Some((0, 0)), &none), Size::new(80, 24));
    assert_eq!(term::fallback_size(None, &none), Size::new(80, 24));
    let set = env(&[("COLUMNS", "132"), ("LINES", "43")]);
    assert_eq!(term::fallback_size(Some((0, 0)), &set), Size::new(132, 43));
    assert_eq!(
        term::fallback_size(Some((100, 30)), &set),
        Size::new(100, 30)
    );
    let bad = env(&[("COLUMNS", "0"), ("LINES", "lots")]);
    assert_eq!(term::fallback_size(Some((0, 0)), &bad), Size::new(80, 24));
}

#[test]
fn non_ascii_and_control_characters_never_reach_the_line() {
    let mut line = Line220::new(20, 3);
    let bytes = line.draw(|f| {
        let text = "a\u{2500}b\u{2026}c\u{4e2d}d\u{e9}e";
        f.buffer_mut().set_string(0, 0, text, Style::default());
        f.buffer_mut()[(2, 1)]
            .set_symbol("x")
            .set_style(Style::default().bg(ratatui::style::Color::Blue));
    });
    vt220_only(&bytes).unwrap();
    let row: String = line
        .vt
        .screen()
        .contents()
        .lines()
        .next()
        .unwrap_or("")
        .into();
    assert_eq!(row.trim_end(), "a-b.c? d?e");
    let cell = line.vt.screen().cell(1, 2).unwrap();
    assert!(
        cell.inverse(),
        "a coloured background shows as reverse video"
    );
    // A wide character over narrow ones: the column it would cover is
    // blank in ratatui's buffer, and must be on the line too (Line220
    // checks every frame).
    line.draw(|f| {
        f.buffer_mut().set_string(0, 2, "wxyz", Style::default());
    });
    line.draw(|f| {
        f.buffer_mut()
            .set_string(0, 2, "w\u{4e2d}z", Style::default());
    });
    // ratatui keeps control characters out of cells; the backend would
    // send them as `?` all the same.
    for c in ["\x1b", "\u{7}", "\u{9b}", "\r"] {
        assert_eq!(term::ascii(c), b'?', "{c:?}");
    }
}

// ---------------------------------------------------------------------------
// Random frames: a list in a box that scrolls, a selection that moves,
// rows that change, and stray edits anywhere.

#[derive(Debug, Clone)]
enum Op {
    Scroll(i8),
    Move(i8),
    Edit(usize, String),
    Footer(String),
    Poke(u16, u16, char, u8),
    HeaderRows(u16),
    Highlight(bool),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (-4i8..=4).prop_map(Op::Scroll),
        4 => (-2i8..=2).prop_map(Op::Move),
        2 => (0usize..60, "[a-z ]{0,30}").prop_map(|(i, s)| Op::Edit(i, s)),
        1 => "[A-Za-z0-9 :/]{0,40}".prop_map(Op::Footer),
        2 => (0u16..60, 0u16..30, proptest::char::range('!', '~'), 0u8..8)
            .prop_map(|(x, y, c, a)| Op::Poke(x, y, c, a)),
        1 => (0u16..3).prop_map(Op::HeaderRows),
        1 => any::<bool>().prop_map(Op::Highlight),
        1 => Just(Op::Clear),
    ]
}

struct Model {
    items: Vec<String>,
    offset: usize,
    selected: usize,
    footer: String,
    pokes: Vec<(u16, u16, char, u8)>,
    header_rows: u16,
    whole_row: bool,
}

fn style_of(a: u8) -> Style {
    let mut s = Style::default();
    if a & 1 != 0 {
        s = s.add_modifier(Modifier::BOLD);
    }
    if a & 2 != 0 {
        s = s.add_modifier(Modifier::UNDERLINED);
    }
    if a & 4 != 0 {
        s = s.add_modifier(Modifier::REVERSED);
    }
    s
}

impl Model {
    fn render(&self, f: &mut ratatui::Frame) {
        let area = f.area();
        let rows = self.header_rows.min(area.height);
        for y in 0..rows {
            f.buffer_mut().set_string(
                0,
                y,
                format!("header {y} offset {}", self.offset),
                style_of(5),
            );
        }
        let body = Rect::new(0, rows, area.width, area.height.saturating_sub(rows + 1));
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(style_of(1))
            .title(" list ");
        let inner = block.inner(body);
        f.render_widget(block, body);
        let lines: Vec<Line> = self
            .items
            .iter()
            .enumerate()
            .skip(self.offset)
            .take(inner.height as usize)
            .map(|(i, s)| {
                let sel = if i == self.selected {
                    style_of(4)
                } else {
                    Style::default()
                };
                let rest = if self.whole_row {
                    sel
                } else {
                    Style::default()
                };
                Line::from(vec![
                    Span::styled(format!("{i:>3} "), sel),
                    Span::styled(format!("{s:<30}"), rest),
                    Span::styled(if i % 3 == 0 { "C" } else { " " }, rest.patch(style_of(1))),
                ])
            })
            .collect();
        f.render_widget(Paragraph::new(lines), inner);
        if area.height > 0 {
            f.buffer_mut().set_stringn(
                0,
                area.height - 1,
                &self.footer,
                area.width as usize,
                style_of(0),
            );
        }
        for &(x, y, c, a) in &self.pokes {
            if x < area.width && y < area.height {
                f.buffer_mut()[(x, y)].set_char(c).set_style(style_of(a));
            }
        }
    }

    fn apply(&mut self, op: &Op, page: usize) {
        let last = self.items.len() - 1;
        match op {
            Op::Scroll(d) => {
                let o = (self.offset as i64 + *d as i64).clamp(0, last as i64) as usize;
                self.offset = o;
                self.selected = self.selected.clamp(o, o + page.saturating_sub(1));
            }
            Op::Move(d) => {
                self.selected = (self.selected as i64 + *d as i64).clamp(0, last as i64) as usize;
                if self.selected < self.offset {
                    self.offset = self.selected;
                } else if self.selected >= self.offset + page.max(1) {
                    self.offset = self.selected + 1 - page.max(1);
                }
            }
            Op::Edit(i, s) => {
                let i = i % self.items.len();
                self.items[i] = s.clone();
            }
            Op::Footer(s) => self.footer = s.clone(),
            Op::Poke(x, y, c, a) => {
                self.pokes.push((*x, *y, *c, *a));
                if self.pokes.len() > 4 {
                    self.pokes.remove(0);
                }
            }
            Op::HeaderRows(n) => self.header_rows = *n,
            Op::Highlight(b) => self.whole_row = *b,
            Op::Clear => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// After every frame the emulated VT220 shows exactly what ratatui drew,
    /// and the bytes hold only VT220 sequences.
    #[test]
    fn emulated_terminal_matches_every_frame(
        width in 12u16..60,
        height in 4u16..26,
        items in proptest::collection::vec("[a-z ]{0,30}", 1..60),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let mut line = Line220::new(width, height);
        let mut model = Model {
            items,
            offset: 0,
            selected: 0,
            footer: String::new(),
            pokes: Vec::new(),
            header_rows: 1,
            whole_row: false,
        };
        line.draw(|f| model.render(f));
        for op in &ops {
            let page = height.saturating_sub(model.header_rows + 3) as usize;
            model.apply(op, page);
            if let Op::Clear = op {
                line.terminal.clear().unwrap();
                line.take();
            }
            line.draw(|f| model.render(f));
        }
        if let Err(e) = vt220_only(&line.all) {
            prop_assert!(false, "{}", e);
        }
    }

    /// The same for arbitrary screens: bands of rows moved by any amount,
    /// with cells changed inside and outside them.
    #[test]
    fn emulated_terminal_matches_moved_bands(
        width in 4u16..40,
        height in 2u16..20,
        seed_rows in proptest::collection::vec("[a-c ]{0,40}", 20),
        moves in proptest::collection::vec((0u16..20, 0u16..20, -6i32..=6, proptest::collection::vec((0u16..40, 0u16..20, 0u8..8), 0..6)), 1..12),
    ) {
        let mut backend = SerialBackend::new(Vec::new(), Some(Size::new(width, height)));
        backend.clear().unwrap();
        let mut vt = emulator(width, height);
        let mut screen = seeded(width, height, &seed_rows);
        for (a, b, shift, pokes) in moves {
            let (top, bottom) = (a.min(b) % height, a.max(b) % height);
            let (top, bottom) = (top.min(bottom), top.max(bottom));
            let mut next = screen.clone();
            next.scroll(top, bottom, shift);
            poke(&mut next, &pokes);
            backend.present(&next);
            backend.flush().unwrap();
            let bytes = std::mem::take(backend.writer_mut());
            if let Err(e) = vt220_only(&bytes) {
                prop_assert!(false, "{}", e);
            }
            vt.process(&bytes);
            if let Err(e) = same(&buffer_of(&next), vt.screen()) {
                prop_assert!(false, "{}\nbytes {:?}", e, String::from_utf8_lossy(&bytes));
            }
            prop_assert_eq!(backend.screen(), &next);
            screen = next;
        }
    }

    /// On a paced line a frame goes out a step at a time and a newer frame
    /// replaces the steps not sent: after every step the emulated terminal
    /// shows exactly what the backend believes it shows, and once a frame
    /// is all sent, that frame.
    #[test]
    fn frames_cut_short_leave_the_terminal_where_the_backend_believes(
        width in 4u16..40,
        height in 2u16..20,
        seed_rows in proptest::collection::vec("[a-c ]{0,40}", 20),
        frames in proptest::collection::vec((0u16..20, 0u16..20, -6i32..=6, proptest::collection::vec((0u16..40, 0u16..20, 0u8..8), 0..6), 0usize..6), 1..16),
        resize in proptest::option::of((0usize..16, 4u16..40, 2u16..20)),
    ) {
        let mut backend = SerialBackend::new(Vec::new(), Some(Size::new(width, height))).paced();
        backend.clear().unwrap();
        let mut vt = emulator(width, height);
        let mut next = seeded(width, height, &seed_rows);
        let send = |backend: &mut SerialBackend<Vec<u8>>, vt: &mut vt100::Parser| -> Result<bool, TestCaseError> {
            let sent = backend.send_step().unwrap().is_some();
            let bytes = std::mem::take(backend.writer_mut());
            if let Err(e) = vt220_only(&bytes) {
                prop_assert!(false, "{}", e);
            }
            vt.process(&bytes);
            // Between a resize and the clear that follows it, the terminal
            // is a size the backend has not drawn at yet.
            let (rows, cols) = vt.screen().size();
            let seen = backend.screen();
            if (seen.width, seen.height) == (cols.get(), rows.get())
                && let Err(e) = same(&buffer_of(seen), vt.screen())
            {
                prop_assert!(false, "after a step: {}\nbytes {:?}", e, String::from_utf8_lossy(&bytes));
            }
            Ok(sent)
        };
        let mut height = height;
        for (i, (a, b, shift, pokes, steps)) in frames.into_iter().enumerate() {
            if let Some((at, w, h)) = resize
                && at == i
            {
                // The terminal changes size at once; the console hears of
                // it and clears at the new size, while an older frame may
                // still be on its way.
                height = h;
                vt.screen_mut().set_size(std::num::NonZeroU16::new(h).unwrap(), std::num::NonZeroU16::new(w).unwrap());
                let mut resized = Screen::blank(w, h);
                for y in 0..h.min(next.height) {
                    for x in 0..w.min(next.width) {
                        resized.cells[y as usize * w as usize + x as usize] = next.get(x, y);
                    }
                }
                next = resized;
            }
            let (top, bottom) = (a.min(b) % height, a.max(b) % height);
            next.scroll(top, bottom, shift);
            poke(&mut next, &pokes);
            backend.present(&next);
            backend.flush().unwrap();
            prop_assert!(backend.writer().is_empty(), "a paced flush writes nothing");
            for _ in 0..steps {
                send(&mut backend, &mut vt)?;
            }
        }
        while send(&mut backend, &mut vt)? {}
        prop_assert_eq!(backend.screen(), &next);
        if let Err(e) = same(&buffer_of(&next), vt.screen()) {
            prop_assert!(false, "the last frame: {}", e);
        }
    }
}

#[test]
fn serial_profile_is_chosen_by_terminal_or_locale() {
    let utf8 = [("TERM", "xterm-256color"), ("LANG", "C.UTF-8")];
    let p = Profile::choose(&args(), &env_of(&utf8));
    assert!(!p.serial);
    assert_eq!(p.theme, "default");
    for term in ["vt100", "vt102", "vt220", "linux"] {
        let p = Profile::choose(&args(), &env_of(&[("TERM", term), ("LANG", "en_US.UTF-8")]));
        assert!(p.serial, "{term}");
        assert_eq!(p.theme, "mono");
        assert_eq!(p.refresh, std::time::Duration::from_secs(1));
    }
    let p = Profile::choose(
        &args(),
        &env_of(&[("TERM", "xterm"), ("LANG", "en_US.UTF-8"), ("LC_ALL", "C")]),
    );
    assert!(p.serial, "LC_ALL=C outranks LANG");
    let mut forced = args();
    forced.serial = true;
    assert!(Profile::choose(&forced, &env_of(&utf8)).serial);
}

#[test]
fn no_color_keeps_the_selection_highlight() {
    let p = Profile::choose(
        &args(),
        &env_of(&[
            ("TERM", "xterm-256color"),
            ("LANG", "C.UTF-8"),
            ("NO_COLOR", "1"),
        ]),
    );
    assert!(!p.serial);
    assert_eq!(p.theme, "mono");
    let mut c = console(40);
    let mut theme = Theme::load(&p.theme, None).unwrap();
    p.adjust(&mut theme);
    c.app.theme = theme;
    c.keys("jj");
    let mut terminal = Terminal::new(ratatui::backend::TestBackend::new(80, 24)).unwrap();
    let buffer = terminal
        .draw(|f| view::render(&mut c.app, f))
        .unwrap()
        .buffer
        .clone();
    let reversed: Vec<u16> = (0..24)
        .filter(|&y| (0..80).any(|x| buffer[(x, y)].modifier.contains(Modifier::REVERSED)))
        .collect();
    // The title bar and the selected row.
    assert_eq!(reversed.len(), 2, "rows in reverse video: {reversed:?}");
    for y in 0..24 {
        for x in 0..80 {
            let cell = &buffer[(x, y)];
            assert!(
                matches!(cell.fg, ratatui::style::Color::Reset)
                    && matches!(cell.bg, ratatui::style::Color::Reset),
                "colour at {x},{y}: {cell:?}"
            );
        }
    }
}

/// The real binary on a pseudo-terminal that says it is a VT220, in the C
/// locale: everything it sends, from opening to quitting, is VT220, and it
/// leaves a clear screen with the cursor shown.
/// The console in a pseudo-terminal of 80x24 with the serial profile, the
/// line set to `baud` (`None`: the pseudo-terminal's default).
struct PtyConsole {
    master: std::fs::File,
    child: std::process::Child,
    vt: vt100::Parser,
    /// Every byte the console sent.
    all: Vec<u8>,
}

impl PtyConsole {
    fn start(
        lab: &std::path::Path,
        home: &std::path::Path,
        baud: Option<libc::speed_t>,
    ) -> PtyConsole {
        use std::os::fd::FromRawFd;
        use std::os::unix::process::CommandExt;
        let bin = env!("CARGO_BIN_EXE_patchdeck");
        let (master, slave) = unsafe {
            let (mut m, mut s) = (0, 0);
            let size = libc::winsize {
                ws_row: 24,
                ws_col: 80,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let rc = libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            );
            assert_eq!(rc, 0, "openpty");
            if let Some(baud) = baud {
                // The line speed the console reads with tcgetattr.
                let mut t: libc::termios = std::mem::zeroed();
                assert_eq!(libc::tcgetattr(s, &mut t), 0, "tcgetattr");
                libc::cfsetospeed(&mut t, baud);
                libc::cfsetispeed(&mut t, baud);
                assert_eq!(libc::tcsetattr(s, libc::TCSANOW, &t), 0, "tcsetattr");
            }
            (std::fs::File::from_raw_fd(m), std::fs::File::from_raw_fd(s))
        };
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("--lab")
            .arg(lab)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("TERM", "vt220")
            .env("LC_ALL", "C")
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave.try_clone().unwrap());
        // SAFETY: setsid and TIOCSCTTY in the child before exec touch no
        // shared state.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        // The parent's copies of the line's other end: once they are
        // closed, the line hangs up when the console exits.
        drop(cmd);
        drop(slave);
        PtyConsole {
            master,
            child,
            vt: vt100::Parser::new(
                std::num::NonZeroU16::new(24).unwrap(),
                std::num::NonZeroU16::new(80).unwrap(),
                0,
            ),
            all: Vec::new(),
        }
    }

    /// Reads whatever has arrived within `wait_ms`; false once the line
    /// has closed.
    fn pump(&mut self, wait_ms: i32) -> bool {
        use std::io::Read;
        let mut fds = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&self.master),
            events: libc::POLLIN,
            revents: 0,
        };
        if unsafe { libc::poll(&mut fds, 1, wait_ms) } <= 0 {
            return true;
        }
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.vt.process(&buf[..n]);
                self.all.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    /// Reads until `done` holds for the emulated screen, or the line
    /// closes; returns the screen's text and whether the cursor is hidden.
    fn read_until(&mut self, done: &dyn Fn(&vt100::Screen) -> bool) -> (String, bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !done(self.vt.screen()) {
            assert!(
                std::time::Instant::now() < deadline,
                "gave up waiting; screen:\n{}",
                self.vt.screen().contents()
            );
            if !self.pump(200) {
                break;
            }
        }
        (self.vt.screen().contents(), self.vt.screen().hide_cursor())
    }

    /// Changes the terminal's size, as a window resized or `stty` would:
    /// the console hears of it by SIGWINCH.
    fn resize(&mut self, cols: u16, rows: u16) {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.master);
        assert_eq!(
            unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &size) },
            0,
            "TIOCSWINSZ"
        );
        self.vt.screen_mut().set_size(
            std::num::NonZeroU16::new(rows).unwrap(),
            std::num::NonZeroU16::new(cols).unwrap(),
        );
    }

    fn send(&mut self, keys: &[u8]) {
        use std::io::Write;
        self.master.write_all(keys).unwrap();
    }

    /// Quits; the screen must be left cleared with the cursor shown.
    fn quit(mut self) -> Vec<u8> {
        self.send(b"q");
        let (screen, hidden) = self.read_until(&|_| false);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
        assert_eq!(screen.trim(), "", "the screen is cleared on quitting");
        assert!(!hidden, "the cursor is shown again");
        self.all
    }
}

fn demo_lab(dir: &std::path::Path, patches: usize) -> std::path::PathBuf {
    let lab = dir.join("lab");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .args(["demo", "--patches", &patches.to_string(), "--lab"])
        .arg(&lab)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    lab
}

#[test]
fn the_binary_on_a_vt220_line_sends_only_vt220_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let lab = demo_lab(dir.path(), 150);
    let mut c = PtyConsole::start(&lab, dir.path(), None);
    let (screen, _) = c.read_until(&|s| s.contents().contains("Depot 150/150"));
    assert!(
        screen.contains("+ Depot 150/150 -"),
        "ASCII frame:\n{screen}"
    );
    c.send(b"j");
    c.read_until(&|s| s.cell(4, 1).is_some_and(|c| c.inverse()));
    vt220_only(&c.quit()).unwrap();
}

/// On a 9600-baud line keys typed while frames are still going out cut
/// those frames short; whatever was cut, the terminal ends showing exactly
/// the screen a console given the same keys at once shows.
#[test]
fn a_held_key_on_a_9600_baud_line_ends_on_the_screen_of_its_last_key() {
    let dir = tempfile::tempdir().unwrap();
    let lab = demo_lab(dir.path(), 150);
    let ready = |s: &vt100::Screen| s.contents().contains("Depot 150/150");
    let moves = 45;

    let mut reference = PtyConsole::start(&lab, dir.path(), None);
    reference.read_until(&ready);
    reference.send(&vec![b'j'; moves]);
    // Keys are handled in order: once the help that `?` opens has shown
    // and closed again, the screen is the one after the last `j`.
    reference.send(b"?");
    reference.read_until(&|s| s.contents().contains("+ Keys -"));
    reference.send(b"\x1b");
    // The whole frame under the help is back: the selection at the foot
    // of the list, the detail lines naming it, the frame's bottom edge.
    reference.read_until(&|s| {
        let row = |y: u16| s.contents_between(y, 0, y, 80);
        let id = row(19).get(5..13).unwrap_or("?").to_string();
        !s.contents().contains("+ Keys -")
            && s.cell(19, 1).is_some_and(|c| c.inverse())
            && row(20).starts_with(&format!("|{id}"))
            && row(21).starts_with("|supersedes")
            && row(22).starts_with("+---")
    });
    let expected = reference.vt.screen().clone();
    reference.quit();

    let mut slow = PtyConsole::start(&lab, dir.path(), Some(libc::B9600));
    slow.read_until(&ready);
    // A key about every 30 ms, as a held key repeats, read as it comes.
    for _ in 0..moves {
        slow.send(b"j");
        slow.pump(30);
    }
    settles_on(&mut slow, &expected);
    vt220_only(&slow.quit()).unwrap();
}

/// A cell as the operator sees it: a blank never written is a space.
fn seen(s: &vt100::Screen, y: u16, x: u16) -> Option<(String, bool, bool, bool)> {
    s.cell(y, x).map(|c| {
        let text = match c.contents() {
            "" => " ",
            t => t,
        };
        (text.to_string(), c.inverse(), c.bold(), c.underline())
    })
}

/// Reads until `c`'s screen is `expected` cell by cell (30 s at most),
/// else fails naming the cells that differ.
fn settles_on(c: &mut PtyConsole, expected: &vt100::Screen) {
    let (rows, cols) = expected.size();
    let (rows, cols) = (rows.get(), cols.get());
    let differ = |s: &vt100::Screen| -> Vec<String> {
        (0..rows)
            .flat_map(|y| (0..cols).map(move |x| (y, x)))
            .filter_map(|(y, x)| {
                let (got, want) = (seen(s, y, x), seen(expected, y, x));
                (got != want).then(|| format!("row {y} column {x}: {got:?}, expected {want:?}"))
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !differ(c.vt.screen()).is_empty() && std::time::Instant::now() < deadline {
        c.pump(200);
    }
    let left = differ(c.vt.screen());
    assert!(
        left.is_empty(),
        "the screen does not settle on the last key's:\n{}\n{}",
        left.join("\n"),
        c.vt.screen().contents()
    );
}

/// Whether the depot pane shows `id` selected and its whole frame is
/// drawn: the detail lines name it and the frame's bottom edge is there.
fn selected_and_drawn(s: &vt100::Screen, id: &str) -> bool {
    let (rows, cols) = s.size();
    let (rows, cols) = (rows.get(), cols.get());
    let row = |y: u16| s.contents_between(y, 0, y, cols);
    let selected = (3..=rows.saturating_sub(5)).any(|y| {
        s.cell(y, 1).is_some_and(|c| c.inverse()) && row(y).get(5..5 + id.len()) == Some(id)
    });
    selected
        && row(rows - 4).starts_with(&format!("|{id}"))
        && row(rows - 3).starts_with("|supersedes")
        && row(rows - 2).starts_with("+---")
}

/// A resize while a paced frame is still going out, with keys typed at
/// once after it: the console clears at the new size, acts on every key,
/// and ends on exactly the screen of a console that took the same keys
/// and the same resize on a fast line. (Keys that arrived in the same
/// instant as the resize once sat unread until the next key.)
#[test]
fn a_resize_on_a_9600_baud_line_mid_frame_ends_on_the_right_screen() {
    let dir = tempfile::tempdir().unwrap();
    let lab = demo_lab(dir.path(), 150);
    let ready = |s: &vt100::Screen| s.contents().contains("Depot 150/150");
    // The demo's first patches are APP_1001, APP_1002, ...
    let (first, then) = (30, 5);
    let after_first = format!("APP_{}", 1001 + first);
    let after_then = format!("APP_{}", 1001 + first + then);

    let mut reference = PtyConsole::start(&lab, dir.path(), None);
    reference.read_until(&ready);
    reference.send(&vec![b'j'; first]);
    reference.read_until(&|s| selected_and_drawn(s, &after_first));
    reference.resize(100, 30);
    reference.send(&vec![b'j'; then]);
    reference.read_until(&|s| selected_and_drawn(s, &after_then));
    let expected = reference.vt.screen().clone();
    reference.quit();

    let mut slow = PtyConsole::start(&lab, dir.path(), Some(libc::B9600));
    slow.read_until(&ready);
    for _ in 0..first {
        slow.send(b"j");
        slow.pump(30);
    }
    // The selected row goes out first; the rest of the frame is still
    // on its way when the terminal changes size.
    slow.read_until(&|s| {
        let cols = s.size().1.get();
        (3..=19).any(|y| {
            s.cell(y, 1).is_some_and(|c| c.inverse())
                && s.contents_between(y, 0, y, cols).get(5..13) == Some(after_first.as_str())
        })
    });
    slow.resize(100, 30);
    slow.send(&vec![b'j'; then]);
    settles_on(&mut slow, &expected);
    vt220_only(&slow.quit()).unwrap();
}

#[test]
fn the_sequence_check_rejects_what_a_vt220_does_not_know() {
    for bad in [
        &b"\x1b[?1049h"[..],
        b"\x1b[38;5;1m",
        b"\x1b[22m",
        b"\x1b[39m",
        b"\x1b[2S",
        b"\x1b[?1000h",
        b"\x1b]0;title\x07",
        "\u{2500}".as_bytes(),
        b"\x1b[",
    ] {
        assert!(
            vt220_only(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    vt220_only(b"\x1b[H\x1b[2J\x1b[0;1;7mx\x1b[m\x1b[4;20r\n\x1bM\x1b[r\x1b[?25l\r\x08").unwrap();
}
