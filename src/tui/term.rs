//! The terminal layer: which ratatui backend draws, and how big the screen
//! is.
//!
//! The default profile draws through crossterm. The serial profile draws
//! through [`SerialBackend`], which speaks only what a VT220 understands
//! and spends as few bytes as it can, because at 9600 baud every byte is a
//! millisecond:
//!
//! - characters: printable ASCII only (anything else is transliterated, or
//!   `?`), one byte per cell;
//! - attributes: SGR 0, 1, 4 and 7 only (bold, underline, reverse; a reset
//!   is `0`, never 22/24/27 and never a colour);
//! - cursor: CUP, CUU/CUD/CUF (`ESC[nA` …), CR, LF and BS, whichever is
//!   shortest, and none while writing contiguous cells; short gaps of
//!   unchanged cells are re-sent rather than jumped over when that is
//!   shorter;
//! - erasing: EL (`ESC[K`) for a row's blank tail, ECH (`ESC[nX`) for a
//!   blank run inside a row, ED (`ESC[2J`) to clear;
//! - sideways: DCH/ICH (`ESC[nP`/`ESC[n@`) when text moved left or right
//!   within a row;
//! - scrolling: when a band of rows moved up or down (a list scrolled), the
//!   backend sets a scroll region (DECSTBM) around it and scrolls it with LF
//!   at the bottom margin (what IND does, in one byte) or RI (`ESC M`) at
//!   the top, then writes only the rows that really changed. The region
//!   stays set for the next scroll. VT220s have no SU/SD
//!   (`ESC[nS`/`ESC[nT`), so those are never sent;
//! - cursor visibility: `ESC[?25l` / `ESC[?25h`, only when it changes.
//!
//! On a line whose speed it knows (`tcgetattr`), the console hands the
//! line a frame a step at a time (a scroll, a row, a cursor change: each
//! leaves the terminal in a known state) only as fast as the line carries
//! it ([`SerialBackend::paced`]). A newer frame replaces the steps not sent
//! yet and starts from what was sent, so keys typed while the line is busy
//! never queue stale rows; the rows a scroll brought in go first, as they
//! stay on screen longest.
//!
//! The backend keeps its own copy of the screen (what the terminal shows).
//! ratatui's `Terminal` hands it only the cells that changed since the last
//! frame; applied to that copy they give the whole next frame, which the
//! backend compares with the copy itself, so an unchanged frame writes
//! nothing at all.

use std::collections::VecDeque;
use std::io::{self, Write};

use ratatui::backend::{Backend, ClearType, CrosstermBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};
use ratatui::style::{Color, Modifier};

/// The cells a clear covers, in the order they are cleared.
type CellIter = Box<dyn Iterator<Item = (u16, u16)>>;
/// Bold (SGR 1).
pub const BOLD: u8 = 1;
/// Underline (SGR 4).
pub const UNDERLINE: u8 = 2;
/// Reverse video (SGR 7).
pub const REVERSE: u8 = 4;

/// The most rows a band may move in one frame and still be scrolled
/// rather than rewritten (more than that is a page jump: rewriting costs
/// about the same).
const MAX_SHIFT: u16 = 12;

/// The most cells text may move sideways within a row and still be
/// shifted with DCH/ICH rather than rewritten.
const MAX_SIDEWAYS: usize = 24;

/// A cell whose content the terminal does not reliably report: never
/// equal to anything drawn, so it is always written.
const UNKNOWN: Glyph = Glyph { ch: 0, attrs: 0xff };

/// One cell as a VT220 shows it: an ASCII byte and the attributes above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Glyph {
    pub ch: u8,
    pub attrs: u8,
}

impl Glyph {
    /// What erasing and scrolling leave behind (with attributes reset).
    pub const BLANK: Glyph = Glyph { ch: b' ', attrs: 0 };
}

/// A ratatui cell as the serial console shows it.
pub fn glyph(cell: &Cell) -> Glyph {
    Glyph {
        ch: ascii(cell.symbol()),
        attrs: attrs(cell),
    }
}

/// The attributes a VT220 can show for `cell`: bold, underline, reverse.
/// A coloured background (a theme that highlights with colour, forced on a
/// serial console) becomes reverse video so the highlight survives.
pub fn attrs(cell: &Cell) -> u8 {
    let m = cell.modifier;
    let mut a = 0;
    if m.contains(Modifier::BOLD) {
        a |= BOLD;
    }
    if m.contains(Modifier::UNDERLINED) {
        a |= UNDERLINE;
    }
    if m.contains(Modifier::REVERSED) || !matches!(cell.bg, Color::Reset) {
        a |= REVERSE;
    }
    a
}

/// One printable ASCII byte for a cell's symbol: ASCII as it is, line
/// drawing and common punctuation by look-alikes, anything else `?`.
/// Control characters never reach the terminal.
pub fn ascii(symbol: &str) -> u8 {
    let Some(c) = symbol.chars().next() else {
        // The cell after a wide character.
        return b' ';
    };
    if c.is_ascii() {
        return if (' '..='~').contains(&c) {
            c as u8
        } else {
            b'?'
        };
    }
    match c {
        '─' | '━' | '═' | '╌' | '╍' | '┄' | '┅' | '—' | '–' | '‒' | '−' | '⎯' => {
            b'-'
        }
        '│' | '┃' | '║' | '╎' | '╏' | '┆' | '┇' | '▏' | '▕' => b'|',
        '┌' | '┐' | '└' | '┘' | '├' | '┤' | '┬' | '┴' | '┼' | '╭' | '╮' | '╯' | '╰' | '╔' | '╗'
        | '╚' | '╝' | '╠' | '╣' | '╦' | '╩' | '╬' | '┏' | '┓' | '┗' | '┛' => {
            b'+'
        }
        '█' | '▉' | '▊' | '▋' | '▌' | '▍' | '▎' | '▓' | '▒' | '■' | '▰' => {
            b'#'
        }
        '░' | '▱' | '□' => b'.',
        '…' | '·' | '⋯' => b'.',
        '•' | '●' | '◆' | '★' | '×' => b'*',
        '○' | '◇' | '☆' => b'o',
        '✓' | '✔' => b'+',
        '✗' | '✘' => b'x',
        '←' | '◀' | '‹' | '«' => b'<',
        '→' | '▶' | '›' | '»' => b'>',
        '↑' | '▲' => b'^',
        '↓' | '▼' => b'v',
        '‘' | '’' | '′' => b'\'',
        '“' | '”' | '″' => b'"',
        '\u{a0}' => b' ',
        _ => b'?',
    }
}

/// The screen as the terminal shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screen {
    pub width: u16,
    pub height: u16,
    pub cells: Vec<Glyph>,
}

impl Screen {
    pub fn blank(width: u16, height: u16) -> Screen {
        Screen {
            width,
            height,
            cells: vec![Glyph::BLANK; width as usize * height as usize],
        }
    }

    pub fn row(&self, y: u16) -> &[Glyph] {
        let w = self.width as usize;
        &self.cells[y as usize * w..(y as usize + 1) * w]
    }

    pub fn get(&self, x: u16, y: u16) -> Glyph {
        self.cells[y as usize * self.width as usize + x as usize]
    }

    fn set(&mut self, x: u16, y: u16, g: Glyph) {
        if x < self.width && y < self.height {
            let w = self.width as usize;
            self.cells[y as usize * w + x as usize] = g;
        }
    }

    /// What the terminal does to rows `top..=bottom` when they scroll by
    /// `shift` (up when positive): rows move, the rows left behind go blank.
    pub fn scroll(&mut self, top: u16, bottom: u16, shift: i32) {
        let w = self.width as usize;
        let (top, bottom) = (top as usize, bottom as usize);
        let n = shift.unsigned_abs() as usize;
        if shift > 0 {
            for y in top..=bottom {
                let src = y + n;
                if src <= bottom {
                    self.cells.copy_within(src * w..(src + 1) * w, y * w);
                } else {
                    self.cells[y * w..(y + 1) * w].fill(Glyph::BLANK);
                }
            }
        } else if shift < 0 {
            for y in (top..=bottom).rev() {
                if y >= top + n {
                    let src = y - n;
                    self.cells.copy_within(src * w..(src + 1) * w, y * w);
                } else {
                    self.cells[y * w..(y + 1) * w].fill(Glyph::BLANK);
                }
            }
        }
    }
}

/// A band of rows that moved between two frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scroll {
    /// First row of the scroll region.
    pub top: u16,
    /// Last row of the scroll region.
    pub bottom: u16,
    /// Rows moved: up when positive, down when negative.
    pub shift: i32,
}

/// The byte stream being built, and what the terminal's cursor and
/// attributes are after it (`None`: not known, so set them explicitly).
#[derive(Debug, Clone)]
struct Writer {
    bytes: Vec<u8>,
    cursor: Option<(u16, u16)>,
    sgr: Option<u8>,
    /// The scroll region (first and last row), `None` when not known.
    region: Option<(u16, u16)>,
    /// The cursor sits in the last column after writing there, with a wrap
    /// pending: terminals agree only that CR (or CUP) leaves that state.
    wrap_pending: bool,
    width: u16,
    height: u16,
}

fn push_num(out: &mut Vec<u8>, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `ESC [ n X`, with `n` left out when it is 1.
fn csi_n(out: &mut Vec<u8>, n: u16, fin: u8) {
    out.extend_from_slice(b"\x1b[");
    if n != 1 {
        push_num(out, n as u32);
    }
    out.push(fin);
}

/// SGR from attributes `cur` (`None`: not known) to `attrs`: nothing when
/// they are the same, only the additions when nothing is taken away, else
/// a reset (0) first. Only 0, 1, 4 and 7 are ever sent.
fn sgr_to(b: &mut Vec<u8>, cur: Option<u8>, attrs: u8) {
    if cur == Some(attrs) {
        return;
    }
    if attrs == 0 {
        b.extend_from_slice(b"\x1b[m");
        return;
    }
    let (reset, add) = match cur {
        Some(cur) if cur & !attrs == 0 => (false, attrs & !cur),
        _ => (true, attrs),
    };
    b.extend_from_slice(b"\x1b[");
    let mut first = true;
    for (on, p) in [
        (reset, b'0'),
        (add & BOLD != 0, b'1'),
        (add & UNDERLINE != 0, b'4'),
        (add & REVERSE != 0, b'7'),
    ] {
        if on {
            if !first {
                b.push(b';');
            }
            b.push(p);
            first = false;
        }
    }
    b.push(b'm');
}

/// How many bytes [`sgr_to`] takes.
fn sgr_len(cur: Option<u8>, attrs: u8) -> usize {
    if cur == Some(attrs) {
        return 0;
    }
    if attrs == 0 {
        return 3;
    }
    let (reset, add) = match cur {
        Some(cur) if cur & !attrs == 0 => (false, attrs & !cur),
        _ => (true, attrs),
    };
    let params = usize::from(reset) + add.count_ones() as usize;
    3 + 2 * params - 1
}

/// Moves along a row from column `from` to `to` (cursor position known).
fn horizontal(out: &mut Vec<u8>, from: u16, to: u16) {
    if to == from {
        return;
    }
    if to == 0 {
        out.push(b'\r');
        return;
    }
    let mut best = Vec::new();
    if to > from {
        csi_n(&mut best, to - from, b'C');
        let mut alt = vec![b'\r'];
        csi_n(&mut alt, to, b'C');
        if alt.len() < best.len() {
            best = alt;
        }
    } else {
        let n = from - to;
        if n <= 4 {
            best.resize(n as usize, 0x08);
        } else {
            csi_n(&mut best, n, b'D');
        }
        let mut alt = vec![b'\r'];
        csi_n(&mut alt, to, b'C');
        if alt.len() < best.len() {
            best = alt;
        }
    }
    out.extend_from_slice(&best);
}

impl Writer {
    fn new(width: u16, height: u16) -> Writer {
        Writer {
            bytes: Vec::new(),
            cursor: None,
            sgr: None,
            region: None,
            wrap_pending: false,
            width,
            height,
        }
    }

    /// A copy of the state with no bytes, to try something on.
    fn fork(&self) -> Writer {
        Writer {
            bytes: Vec::new(),
            ..*self
        }
    }

    /// The shortest way from where the cursor is to (x, y). Relative
    /// vertical moves never cross a margin of the scroll region: LF there
    /// would scroll, CUU/CUD would stop.
    fn movement(&self, x: u16, y: u16) -> Vec<u8> {
        let mut best = Vec::with_capacity(10);
        best.extend_from_slice(b"\x1b[");
        if (x, y) != (0, 0) {
            push_num(&mut best, y as u32 + 1);
            if x > 0 {
                best.push(b';');
                push_num(&mut best, x as u32 + 1);
            }
        }
        best.push(b'H');
        let (Some((cx, cy)), Some((top, bottom))) = (self.cursor, self.region) else {
            return best;
        };
        // From a pending wrap, every relative move starts with CR.
        let (cx, start): (u16, &[u8]) = if self.wrap_pending {
            (0, b"\r")
        } else {
            (cx, b"")
        };
        let mut consider = |alt: Vec<u8>| {
            if alt.len() < best.len() {
                best = alt;
            }
        };
        if cy == y {
            let mut alt = start.to_vec();
            horizontal(&mut alt, cx, x);
            consider(alt);
        } else if y > cy {
            if cy <= bottom && y > bottom {
                return best;
            }
            let dy = y - cy;
            // Line feeds keep the column (the terminal is in raw mode).
            let mut alt = start.to_vec();
            alt.extend(std::iter::repeat_n(b'\n', dy as usize));
            horizontal(&mut alt, cx, x);
            consider(alt);
            let mut alt = start.to_vec();
            csi_n(&mut alt, dy, b'B');
            horizontal(&mut alt, cx, x);
            consider(alt);
        } else {
            if cy >= top && y < top {
                return best;
            }
            let mut alt = start.to_vec();
            csi_n(&mut alt, cy - y, b'A');
            horizontal(&mut alt, cx, x);
            consider(alt);
        }
        best
    }

    fn move_to(&mut self, x: u16, y: u16) {
        if self.cursor == Some((x, y)) && !self.wrap_pending {
            return;
        }
        let m = self.movement(x, y);
        self.bytes.extend_from_slice(&m);
        self.cursor = Some((x, y));
        self.wrap_pending = false;
    }

    fn set_sgr(&mut self, attrs: u8) {
        sgr_to(&mut self.bytes, self.sgr, attrs);
        self.sgr = Some(attrs);
    }

    /// Writes `g` at the cursor, which must be known.
    fn put(&mut self, g: Glyph) {
        self.set_sgr(g.attrs);
        self.bytes.push(g.ch);
        if let Some((x, y)) = self.cursor {
            // In the last column the cursor stays put with a wrap pending:
            // the next write moves first (see `movement`).
            if x + 1 >= self.width {
                self.wrap_pending = true;
            } else {
                self.cursor = Some((x + 1, y));
            }
        }
    }

    /// Writes what differs between `from` and `to` on row `y`.
    fn row(&mut self, y: u16, from: &[Glyph], to: &[Glyph]) {
        let w = from.len();
        let Some(first) = (0..w).find(|&x| from[x] != to[x]) else {
            return;
        };
        // A blank tail that needs changing is erased with EL when that is
        // shorter than writing its changed cells.
        let tail = to
            .iter()
            .rposition(|g| *g != Glyph::BLANK)
            .map_or(0, |i| i + 1);
        let mut limit = w;
        let mut erase_at = None;
        if let Some(ft) = (tail.max(first)..w).find(|&x| from[x] != to[x]) {
            let last = (ft..w).rev().find(|&x| from[x] != to[x]).unwrap_or(ft);
            let write_cost = last - ft + 1;
            let reset_cost = if self.sgr == Some(0) { 0 } else { 3 };
            if 3 + reset_cost < write_cost {
                limit = ft;
                erase_at = Some(ft as u16);
            }
        }
        let mut x = first;
        while x < limit {
            if from[x] == to[x] {
                x += 1;
                continue;
            }
            let at = x as u16;
            // A run of blanks to make: ECH (`ESC[nX`) when that is shorter
            // than sending the spaces. It leaves the cursor where it is.
            let run = (x..limit).take_while(|&i| to[i] == Glyph::BLANK).count();
            if run >= 5 {
                let mut ech = Vec::new();
                csi_n(&mut ech, run as u16, b'X');
                let reset = if self.sgr == Some(0) { 0 } else { 3 };
                let spaces = (x..x + run)
                    .rposition(|i| from[i] != to[i])
                    .map_or(0, |i| i + 1);
                if ech.len() + reset < spaces {
                    self.move_to(at, y);
                    self.set_sgr(0);
                    self.bytes.extend_from_slice(&ech);
                    x += run;
                    continue;
                }
            }
            match self.cursor {
                Some((cx, cy))
                    if cy == y && cx < at && !self.wrap_pending && x - (cx as usize) <= 12 =>
                {
                    // Re-send the unchanged cells in between when that is
                    // shorter than moving over them.
                    let gap = &to[cx as usize..x];
                    let mut sgr = self.sgr;
                    let mut resend = 0;
                    for g in gap.iter().chain(std::iter::once(&to[x])) {
                        resend += sgr_len(sgr, g.attrs) + 1;
                        sgr = Some(g.attrs);
                    }
                    let jump = self.movement(at, y).len() + sgr_len(self.sgr, to[x].attrs) + 1;
                    if resend <= jump {
                        for g in gap.iter().copied() {
                            self.put(g);
                        }
                    } else {
                        self.move_to(at, y);
                    }
                }
                _ => self.move_to(at, y),
            }
            self.put(to[x]);
            x += 1;
        }
        if let Some(at) = erase_at {
            self.move_to(at, y);
            self.set_sgr(0);
            self.bytes.extend_from_slice(b"\x1b[K");
        }
    }

    /// Writes every row that differs.
    fn diff(&mut self, from: &Screen, to: &Screen) {
        for y in 0..to.height {
            self.row_with_shifts(y, from.row(y), to.row(y));
        }
    }

    /// Writes row `y`, first shifting text sideways with DCH (`ESC[nP`)
    /// or ICH (`ESC[n@`) where text moved left or right within the row
    /// (a value in a detail line got longer or shorter), when that makes
    /// the row shorter to send. Cells shifted in at either end count as
    /// unknown (terminals fill them differently) and are always written.
    fn row_with_shifts(&mut self, y: u16, from: &[Glyph], to: &[Glyph]) {
        let w = from.len();
        if from == to {
            return;
        }
        let mut from = from.to_vec();
        for _ in 0..3 {
            let mut trial = self.fork();
            trial.row(y, &from, to);
            let mut best_len = trial.bytes.len();
            let mut best: Option<(usize, usize, bool, Vec<Glyph>)> = None;
            // Where mismatches start.
            let starts: Vec<usize> = (0..w)
                .filter(|&x| from[x] != to[x] && (x == 0 || from[x - 1] == to[x - 1]))
                .collect();
            for &p in &starts {
                let alike = |row: &[Glyph]| (p..w).filter(|&i| row[i] == to[i]).count();
                let now = alike(&from);
                for n in 1..=MAX_SIDEWAYS.min(w - p - 1) {
                    for delete in [true, false] {
                        let mut shifted = from.clone();
                        if delete {
                            shifted.copy_within(p + n..w, p);
                            shifted[w - n..].fill(UNKNOWN);
                        } else {
                            shifted.copy_within(p..w - n, p + n);
                            shifted[p..p + n].fill(UNKNOWN);
                        }
                        // Worth an exact trial only when it lines up
                        // noticeably more of the row.
                        if alike(&shifted) < now + 4 {
                            continue;
                        }
                        let mut t = self.fork();
                        t.sideways(p as u16, y, n as u16, delete);
                        t.row(y, &shifted, to);
                        if t.bytes.len() < best_len {
                            best_len = t.bytes.len();
                            best = Some((p, n, delete, shifted));
                        }
                    }
                }
            }
            let Some((p, n, delete, shifted)) = best else {
                break;
            };
            self.sideways(p as u16, y, n as u16, delete);
            from = shifted;
        }
        self.row(y, &from, to);
    }

    /// DCH or ICH of `n` cells at (x, y), with attributes reset so the
    /// cells shifted in come plain where terminals agree on that.
    fn sideways(&mut self, x: u16, y: u16, n: u16, delete: bool) {
        self.move_to(x, y);
        self.set_sgr(0);
        csi_n(&mut self.bytes, n, if delete { b'P' } else { b'@' });
    }

    /// Scrolls a band with the terminal's scroll region. Lines scrolled in
    /// are blank, with attributes reset first so they come in plain. The
    /// region stays set afterwards (the next scroll of the same list needs
    /// no DECSTBM); moves keep clear of its margins.
    fn scroll(&mut self, s: Scroll) {
        self.set_sgr(0);
        let n = s.shift.unsigned_abs() as usize;
        if self.region != Some((s.top, s.bottom)) {
            if s.top == 0 && s.bottom + 1 == self.height {
                self.bytes.extend_from_slice(b"\x1b[r");
            } else {
                self.bytes.extend_from_slice(b"\x1b[");
                push_num(&mut self.bytes, s.top as u32 + 1);
                self.bytes.push(b';');
                push_num(&mut self.bytes, s.bottom as u32 + 1);
                self.bytes.push(b'r');
            }
            self.region = Some((s.top, s.bottom));
            // DECSTBM homes the cursor; terminals disagree whether home is
            // the screen's corner or the region's, so position explicitly.
            self.cursor = None;
        }
        if s.shift > 0 {
            // LF at the bottom margin scrolls the region up, like IND.
            self.move_to(0, s.bottom);
            self.bytes.extend(std::iter::repeat_n(b'\n', n));
        } else {
            self.move_to(0, s.top);
            for _ in 0..n {
                self.bytes.extend_from_slice(b"\x1bM");
            }
        }
    }
}

/// The bands of rows in `to` that are rows of `from` moved by up to
/// [`MAX_SHIFT`] rows, as scroll regions worth trying. A band is a maximal
/// run of rows that are alike once moved (at least half their cells the
/// same: a row that only lost its highlight still belongs to the band, and
/// scrolling it costs less than rewriting it), at least two of which are
/// exactly a moved row that the screen does not show in place now.
pub fn scroll_candidates(from: &Screen, to: &Screen) -> Vec<Scroll> {
    let h = to.height as i32;
    let w = to.width as usize;
    let mut out = Vec::new();
    if from.width != to.width || from.height != to.height || w == 0 {
        return out;
    }
    let blank: Vec<bool> = (0..to.height)
        .map(|y| to.row(y).iter().all(|g| *g == Glyph::BLANK))
        .collect();
    for d in 1..=(MAX_SHIFT as i32).min(h - 1) {
        for shift in [d, -d] {
            // Row y of `to` shows row y + shift of `from`.
            let alike = |y: i32| {
                let src = y + shift;
                if !(0..h).contains(&src) || blank[y as usize] {
                    return false;
                }
                let (a, b) = (to.row(y as u16), from.row(src as u16));
                let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
                2 * same >= w
            };
            let gains = |y: i32| {
                let row = to.row(y as u16);
                row == from.row((y + shift) as u16) && row != from.row(y as u16)
            };
            let mut y = 0;
            while y < h {
                if !alike(y) {
                    y += 1;
                    continue;
                }
                let start = y;
                let mut gained = 0;
                while y < h && alike(y) {
                    gained += usize::from(gains(y));
                    y += 1;
                }
                let end = y - 1;
                if gained >= 2 {
                    let (top, bottom) = if shift > 0 {
                        (start, end + shift)
                    } else {
                        (start + shift, end)
                    };
                    out.push(Scroll {
                        top: top as u16,
                        bottom: bottom as u16,
                        shift,
                    });
                }
            }
        }
    }
    out
}

/// The scroll region left set by an earlier frame, moved by the shift that
/// lines up most of its rows: a list scrolled again. A frame cut short can
/// leave that list with rows not drawn yet, which [`scroll_candidates`]
/// would not see as one band.
fn region_candidate(from: &Screen, to: &Screen, region: Option<(u16, u16)>) -> Option<Scroll> {
    let (top, bottom) = region?;
    let whole = top == 0 && bottom + 1 >= to.height;
    if whole || bottom <= top || bottom >= to.height || from.width != to.width {
        return None;
    }
    // Cells that match once the region is moved by `shift`: rows drawn
    // highlighted by a cut-short frame still count for most of theirs.
    let lined_up = |shift: i32| -> usize {
        (top as i32..=bottom as i32)
            .filter(|&y| (top as i32..=bottom as i32).contains(&(y + shift)))
            .map(|y| {
                let (a, b) = (to.row(y as u16), from.row((y + shift) as u16));
                a.iter()
                    .zip(b)
                    .filter(|(x, y)| x == y && **x != Glyph::BLANK)
                    .count()
            })
            .sum()
    };
    let in_place = lined_up(0);
    let span = (bottom - top).min(MAX_SHIFT) as i32;
    (1..=span)
        .flat_map(|d| [d, -d])
        .map(|shift| (lined_up(shift), shift))
        .filter(|&(n, _)| n > in_place)
        .max_by_key(|&(n, shift)| (n, -shift.abs()))
        .map(|(_, shift)| Scroll { top, bottom, shift })
}

/// The terminal as it is after some prefix of the bytes sent to it: its
/// screen, cursor, attributes and scroll region (in the writer, whose
/// bytes are what is still to be cut into a step), and cursor visibility.
#[derive(Debug, Clone)]
struct State {
    screen: Screen,
    w: Writer,
    cursor_visible: Option<bool>,
}

impl State {
    fn blank(width: u16, height: u16) -> State {
        State {
            screen: Screen::blank(width, height),
            w: Writer::new(width, height),
            cursor_visible: None,
        }
    }

    /// Ends a step at the bytes written so far: the terminal's state after
    /// them is known exactly, so a frame can stop here.
    fn cut(&mut self, steps: &mut VecDeque<Step>) {
        if self.w.bytes.is_empty() {
            return;
        }
        steps.push_back(Step {
            bytes: std::mem::take(&mut self.w.bytes),
            keep: false,
            after: State {
                screen: self.screen.clone(),
                w: self.w.fork(),
                cursor_visible: self.cursor_visible,
            },
        });
    }
}

/// A piece of a frame after which the terminal's state is known: a scroll,
/// one row, a cursor change.
#[derive(Debug)]
struct Step {
    bytes: Vec<u8>,
    /// Not dropped when a newer frame comes (a clear at a new size).
    keep: bool,
    after: State,
}

/// How the screen goes from `st.screen` to `to`: at most a couple of
/// scrolls, each kept only when it makes the whole update shorter, then
/// the rows that differ, one step each. With `newest_first`, the rows a
/// scroll brought in are written first, nearest the edge they came in at:
/// a frame cut short (keys arrived while the line was busy) has then drawn
/// the rows that stay on screen longest. Leaves `st.screen` equal to `to`.
fn update(st: &mut State, to: &Screen, newest_first: bool, steps: &mut VecDeque<Step>) {
    let mut scrolled_up = None;
    for _ in 0..2 {
        let mut trial = st.w.fork();
        trial.diff(&st.screen, to);
        let mut best_len = trial.bytes.len();
        let mut best = None;
        let mut candidates = scroll_candidates(&st.screen, to);
        if let Some(s) = region_candidate(&st.screen, to, st.w.region)
            && !candidates.contains(&s)
        {
            candidates.push(s);
        }
        for s in candidates {
            for fix_first in [false, true] {
                let mut t = st.w.fork();
                let mut shifted = st.screen.clone();
                scroll_band(&mut t, &mut shifted, to, s, fix_first);
                t.diff(&shifted, to);
                if t.bytes.len() < best_len {
                    best_len = t.bytes.len();
                    best = Some((s, fix_first));
                }
            }
        }
        let Some((s, fix_first)) = best else { break };
        scroll_band(&mut st.w, &mut st.screen, to, s, fix_first);
        st.cut(steps);
        if s.shift > 0 {
            scrolled_up = Some((s.top, s.bottom));
        }
    }
    let band: Vec<u16> = match scrolled_up {
        Some((top, bottom)) if newest_first => (top..=bottom).rev().collect(),
        _ => Vec::new(),
    };
    let rest = (0..to.height).filter(|y| !band.contains(y));
    for y in band.iter().copied().chain(rest) {
        st.w.row_with_shifts(y, st.screen.row(y), to.row(y));
        let width = to.width as usize;
        let row = y as usize * width..(y as usize + 1) * width;
        st.screen.cells[row.clone()].copy_from_slice(&to.cells[row]);
        st.cut(steps);
    }
}

/// Scrolls band `s` of `screen` towards `to`. With `fix_first`, the row
/// at the margin the cursor scrolls from (the bottom row when scrolling
/// up) is first given the content it must have after the scroll: the
/// cursor is there anyway, so that row costs no extra move.
fn scroll_band(w: &mut Writer, screen: &mut Screen, to: &Screen, s: Scroll, fix_first: bool) {
    if fix_first {
        let d = s.shift.unsigned_abs() as u16;
        let (row, lands) = if s.shift > 0 {
            (s.bottom, s.bottom.checked_sub(d))
        } else {
            (s.top, Some(s.top + d).filter(|&r| r <= s.bottom))
        };
        if let Some(lands) = lands {
            let want = to.row(lands).to_vec();
            w.row_with_shifts(row, screen.row(row), &want);
            let width = screen.width as usize;
            screen.cells[row as usize * width..(row as usize + 1) * width].copy_from_slice(&want);
        }
    }
    w.scroll(s);
    screen.scroll(s.top, s.bottom, s.shift);
}

/// The screen size: what the terminal on standard output reports, and for
/// a terminal that reports 0x0 (common on serial lines) `COLUMNS` x
/// `LINES`, else 80x24.
pub fn tty_size() -> Size {
    fallback_size(stdout_size(), &|k| std::env::var(k).ok())
}

fn stdout_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ fills the winsize it is given and nothing else.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 {
            Some((ws.ws_col, ws.ws_row))
        } else {
            None
        }
    }
}

/// `reported` (columns, rows) when both are non-zero, else `COLUMNS` and
/// `LINES` from `env` when they are positive numbers, else 80 and 24.
pub fn fallback_size(reported: Option<(u16, u16)>, env: &dyn Fn(&str) -> Option<String>) -> Size {
    if let Some((w, h)) = reported
        && w > 0
        && h > 0
    {
        return Size::new(w, h);
    }
    let dim = |k: &str, d: u16| {
        env(k)
            .and_then(|v| v.trim().parse::<u16>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(d)
    };
    Size::new(dim("COLUMNS", 80), dim("LINES", 24))
}

/// A ratatui backend for VT220-class terminals; see the module docs.
pub struct SerialBackend<W: Write> {
    out: W,
    /// The frame ratatui drew last: what the terminal is heading for.
    target: Screen,
    /// The terminal once every queued step has arrived; new steps are
    /// encoded from here.
    queued: State,
    /// The terminal once every step written so far has arrived.
    sent: State,
    pending: VecDeque<Step>,
    /// Whether `flush` leaves the steps for [`SerialBackend::send_step`].
    paced: bool,
    /// `None`: ask the terminal each time ([`tty_size`]).
    fixed: Option<Size>,
    /// Where ratatui last put the cursor.
    wanted: Position,
    written: u64,
}

impl<W: Write> SerialBackend<W> {
    /// A backend writing to `out`. With `size`, the screen is that size
    /// (tests); without, the terminal is asked ([`tty_size`]).
    pub fn new(out: W, size: Option<Size>) -> SerialBackend<W> {
        let s = size.unwrap_or_else(tty_size);
        SerialBackend {
            out,
            target: Screen::blank(s.width, s.height),
            queued: State::blank(s.width, s.height),
            sent: State::blank(s.width, s.height),
            pending: VecDeque::new(),
            paced: false,
            fixed: size,
            wanted: Position::ORIGIN,
            written: 0,
        }
    }

    /// A backend whose `flush` writes nothing: the caller hands the line
    /// one step at a time ([`SerialBackend::send_step`]) as it has room.
    /// A frame drawn before the last one is all sent replaces what is left
    /// of it, so keys typed while a slow line carries a frame cost no
    /// stale rows: the next frame starts from what was really sent.
    pub fn paced(mut self) -> SerialBackend<W> {
        self.paced = true;
        self
    }

    /// Bytes written to the terminal so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// What the terminal shows once the bytes written so far have arrived.
    pub fn screen(&self) -> &Screen {
        &self.sent.screen
    }

    /// Whether steps of the last frame are still to be sent.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes the next step of the frame; returns its length in bytes
    /// (`None`: the frame is all sent).
    pub fn send_step(&mut self) -> io::Result<Option<usize>> {
        let Some(step) = self.pending.pop_front() else {
            return Ok(None);
        };
        self.out.write_all(&step.bytes)?;
        self.out.flush()?;
        self.written += step.bytes.len() as u64;
        self.sent = step.after;
        Ok(Some(step.bytes.len()))
    }

    pub fn writer(&self) -> &W {
        &self.out
    }

    pub fn writer_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Applies a whole next frame.
    pub fn present(&mut self, next: &Screen) {
        if next.width != self.target.width || next.height != self.target.height {
            self.erase_all(Size::new(next.width, next.height));
        }
        self.target.clone_from(next);
        self.encode();
    }

    /// Drops the steps not sent yet, all but a clear of the screen and what
    /// came before it: the terminal is where the kept steps leave it.
    fn abandon(&mut self) {
        match self.pending.iter().rposition(|s| s.keep) {
            Some(last) => {
                self.pending.truncate(last + 1);
                self.queued.clone_from(&self.pending[last].after);
            }
            None => {
                self.pending.clear();
                self.queued.clone_from(&self.sent);
            }
        }
    }

    /// Queues the steps from where the terminal will be to the target,
    /// replacing what was left of the previous frame.
    fn encode(&mut self) {
        self.abandon();
        if self.queued.screen != self.target {
            update(
                &mut self.queued,
                &self.target,
                self.paced,
                &mut self.pending,
            );
        }
    }

    /// Forgets the screen and clears it (and any scroll region left by
    /// someone else).
    fn erase_all(&mut self, s: Size) {
        self.abandon();
        let st = &mut self.queued;
        st.w.width = s.width;
        st.w.height = s.height;
        st.screen = Screen::blank(s.width, s.height);
        st.w.set_sgr(0);
        st.w.bytes.extend_from_slice(b"\x1b[r\x1b[2J");
        st.w.region = Some((0, s.height.saturating_sub(1)));
        st.w.cursor = Some((0, 0));
        st.w.wrap_pending = false;
        st.cut(&mut self.pending);
        // The screen's new size holds from here on: never dropped.
        if let Some(step) = self.pending.back_mut() {
            step.keep = true;
        }
        self.target = Screen::blank(s.width, s.height);
    }
}

impl<W: Write> Backend for SerialBackend<W> {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        let (width, height) = (self.target.width, self.target.height);
        let target = &mut self.target;
        let mut put = |x: u16, y: u16, g: Glyph| {
            if x < width && y < height {
                target.set(x, y, g);
            }
        };
        for (x, y, cell) in content {
            put(x, y, glyph(cell));
            // A wide character takes one column here, not two: the cells
            // it would cover are blank in ratatui's buffer, but ratatui
            // does not send them, so blank them here.
            let symbol = cell.symbol();
            if !symbol.is_ascii() {
                let wide = ratatui::text::Span::raw(symbol).width() as u16;
                for dx in 1..wide {
                    put(x.saturating_add(dx), y, Glyph::BLANK);
                }
            }
        }
        self.encode();
        Ok(())
    }

    fn hide_cursor(&mut self) -> io::Result<()> {
        if self.queued.cursor_visible != Some(false) {
            self.queued.w.bytes.extend_from_slice(b"\x1b[?25l");
            self.queued.cursor_visible = Some(false);
            self.queued.cut(&mut self.pending);
        }
        Ok(())
    }

    fn show_cursor(&mut self) -> io::Result<()> {
        if self.queued.cursor_visible != Some(true) {
            self.queued.w.bytes.extend_from_slice(b"\x1b[?25h");
            self.queued.cursor_visible = Some(true);
            self.queued.cut(&mut self.pending);
        }
        Ok(())
    }

    fn get_cursor_position(&mut self) -> io::Result<Position> {
        Ok(match self.queued.w.cursor {
            Some((x, y)) => Position { x, y },
            None => self.wanted,
        })
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        let p = position.into();
        self.wanted = p;
        let st = &mut self.queued;
        if p.x < st.w.width && p.y < st.w.height {
            st.w.move_to(p.x, p.y);
            st.cut(&mut self.pending);
        }
        Ok(())
    }

    fn clear(&mut self) -> io::Result<()> {
        self.clear_region(ClearType::All)
    }

    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        if clear_type == ClearType::All {
            self.erase_all(self.fixed.unwrap_or_else(tty_size));
            return Ok(());
        }
        let st = &mut self.queued;
        let (x, y) = match st.w.cursor {
            Some(c) if !st.w.wrap_pending => c,
            _ => {
                let (x, y) = (
                    self.wanted.x.min(st.w.width.saturating_sub(1)),
                    self.wanted.y.min(st.w.height.saturating_sub(1)),
                );
                st.w.move_to(x, y);
                (x, y)
            }
        };
        st.w.set_sgr(0);
        let (width, height) = (st.screen.width, st.screen.height);
        let (code, cells): (&[u8], CellIter) = match clear_type {
            ClearType::AfterCursor => (
                b"\x1b[J",
                Box::new(
                    (x..width)
                        .map(move |c| (c, y))
                        .chain((y + 1..height).flat_map(move |r| (0..width).map(move |c| (c, r)))),
                ),
            ),
            ClearType::BeforeCursor => (
                b"\x1b[1J",
                Box::new(
                    (0..y)
                        .flat_map(move |r| (0..width).map(move |c| (c, r)))
                        .chain((0..=x).map(move |c| (c, y))),
                ),
            ),
            ClearType::CurrentLine => (b"\x1b[2K", Box::new((0..width).map(move |c| (c, y)))),
            ClearType::UntilNewLine => (b"\x1b[K", Box::new((x..width).map(move |c| (c, y)))),
            ClearType::All => unreachable!("handled above"),
        };
        st.w.bytes.extend_from_slice(code);
        for (c, r) in cells.collect::<Vec<_>>() {
            st.screen.set(c, r, Glyph::BLANK);
            self.target.set(c, r, Glyph::BLANK);
        }
        st.cut(&mut self.pending);
        Ok(())
    }

    fn size(&self) -> io::Result<Size> {
        Ok(self.fixed.unwrap_or_else(tty_size))
    }

    fn window_size(&mut self) -> io::Result<WindowSize> {
        Ok(WindowSize {
            columns_rows: self.size()?,
            pixels: Size::default(),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.queued.cut(&mut self.pending);
        if !self.paced {
            while self.send_step()?.is_some() {}
        }
        self.out.flush()
    }
}

/// Bytes the console has written to standard output (one per process, as
/// standard output is).
static STDOUT_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Standard output, counting the bytes written, so the event loop knows
/// how long the line needs to carry a frame.
#[derive(Debug)]
pub struct MeteredStdout {
    out: io::Stdout,
}

impl MeteredStdout {
    pub fn new() -> MeteredStdout {
        MeteredStdout { out: io::stdout() }
    }

    /// Bytes written through any `MeteredStdout` so far.
    pub fn written() -> u64 {
        STDOUT_BYTES.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Default for MeteredStdout {
    fn default() -> MeteredStdout {
        MeteredStdout::new()
    }
}

impl Write for MeteredStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        STDOUT_BYTES.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// What [`line_bytes_per_second`] says of a pseudo-terminal nobody set a
/// speed on (38400 baud, the kernel's default).
pub const PTY_DEFAULT_BYTES_PER_SECOND: f64 = 3840.0;

/// The output speed of the terminal on standard output, in bytes a second
/// (a character is 10 bits on an asynchronous line: start, 8 data, stop);
/// `None` when it is not a terminal or reports no speed.
pub fn line_bytes_per_second() -> Option<f64> {
    // SAFETY: tcgetattr writes into the zeroed struct we own; fd 1 is only read.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(1, &mut t) } != 0 {
        return None;
    }
    // SAFETY: reads the speed field of the struct filled above.
    let speed = unsafe { libc::cfgetospeed(&t) };
    let baud = match speed {
        libc::B300 => 300,
        libc::B1200 => 1200,
        libc::B2400 => 2400,
        libc::B4800 => 4800,
        libc::B9600 => 9600,
        libc::B19200 => 19200,
        libc::B38400 => 38400,
        libc::B57600 => 57600,
        libc::B115200 => 115200,
        libc::B230400 => 230400,
        _ => return None,
    };
    Some(baud as f64 / 10.0)
}

/// The console's backend: crossterm for the default profile, the VT220
/// backend for the serial profile. Both take their size from
/// [`tty_size`], so a terminal reporting 0x0 gets a usable screen.
pub enum ConsoleBackend {
    Plain(CrosstermBackend<MeteredStdout>),
    Serial(Box<SerialBackend<MeteredStdout>>),
}

macro_rules! each {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            ConsoleBackend::Plain($b) => $e,
            ConsoleBackend::Serial($b) => $e,
        }
    };
}

impl ConsoleBackend {
    /// Whether frames go out a step at a time ([`SerialBackend::paced`]).
    pub fn is_paced(&self) -> bool {
        matches!(self, ConsoleBackend::Serial(b) if b.paced)
    }

    /// Whether steps of a paced frame are still to be sent.
    pub fn has_pending(&self) -> bool {
        matches!(self, ConsoleBackend::Serial(b) if b.has_pending())
    }

    /// Writes the next step of a paced frame; returns its length in bytes
    /// (`None`: nothing is left to send).
    pub fn send_step(&mut self) -> io::Result<Option<usize>> {
        match self {
            ConsoleBackend::Serial(b) => b.send_step(),
            ConsoleBackend::Plain(_) => Ok(None),
        }
    }
}

impl Backend for ConsoleBackend {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        each!(self, b => b.draw(content))
    }

    fn hide_cursor(&mut self) -> io::Result<()> {
        each!(self, b => b.hide_cursor())
    }

    fn show_cursor(&mut self) -> io::Result<()> {
        each!(self, b => b.show_cursor())
    }

    fn get_cursor_position(&mut self) -> io::Result<Position> {
        each!(self, b => b.get_cursor_position())
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        each!(self, b => b.set_cursor_position(position))
    }

    fn clear(&mut self) -> io::Result<()> {
        each!(self, b => b.clear())
    }

    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        each!(self, b => b.clear_region(clear_type))
    }

    fn size(&self) -> io::Result<Size> {
        Ok(tty_size())
    }

    fn window_size(&mut self) -> io::Result<WindowSize> {
        Ok(WindowSize {
            columns_rows: tty_size(),
            pixels: Size::default(),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ConsoleBackend::Plain(b) => Backend::flush(b),
            ConsoleBackend::Serial(b) => Backend::flush(&mut **b),
        }
    }
}
