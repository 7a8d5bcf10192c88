//! `fleet import --ansible`: an Ansible inventory (INI or YAML) read into
//! one model of groups, hosts and variables, resolved per host with
//! Ansible's precedence, and turned into a `fleet.toml` of ssh nodes.
//!
//! The INI dialect is Ansible's own (host lines split like a POSIX shell,
//! `[group:vars]`, `[group:children]`, host ranges), parsed here by hand;
//! YAML is read with `saphyr`, which gives every node its line. The
//! rules follow ansible-core's `ini` and `yaml` inventory plugins and its
//! variable manager; where Ansible only warns and skips (an unknown key in
//! a YAML group), this module refuses at the line, so nothing an operator
//! wrote is dropped silently. The mapping is documented in
//! docs/fleet-format.md, "Importing an Ansible inventory".

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

/// The most hosts one inventory may expand to (a mistyped range such as
/// `h[0:99999999]` is refused rather than filling memory).
pub const MAX_HOSTS: usize = 100_000;

/// How deep YAML groups may nest under `children`.
const MAX_DEPTH: usize = 100;

/// Why an inventory could not be imported. Every variant names the file;
/// errors at one place name its 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    At {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Inventory { path: String, message: String },
}

/// A problem at a line, before the file name is known.
type Bad = (usize, String);

/// The two forms of inventory file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ini,
    Yaml,
}

impl Format {
    /// `.yml`, `.yaml` and `.json` are YAML, `.ini` and `.cfg` INI; any
    /// other name is YAML when the text is a YAML mapping, else INI (as
    /// Ansible tries its YAML plugin before its INI one).
    pub fn detect(path: &Path, text: &str) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yml" | "yaml" | "json") => Format::Yaml,
            Some("ini" | "cfg") => Format::Ini,
            _ => {
                use saphyr::LoadableYamlNode;
                let mapping = saphyr::MarkedYaml::load_from_str(text).is_ok_and(|docs| {
                    docs.first()
                        .is_some_and(|d| matches!(d.data, saphyr::YamlData::Mapping(_)))
                });
                if mapping { Format::Yaml } else { Format::Ini }
            }
        }
    }
}

/// A variable's value, as far as the import cares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(String),
    /// YAML `~` or an empty value.
    Null,
    /// A list, a mapping or a tagged value (e.g. `!vault`): not a field.
    Other(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Var {
    value: Value,
    line: usize,
}

type Vars = BTreeMap<String, Var>;

#[derive(Debug, Default)]
struct Group {
    vars: Vars,
    /// Child group → line where it was made a child.
    children: BTreeMap<String, usize>,
    hosts: BTreeSet<String>,
}

#[derive(Debug)]
struct Host {
    /// Where the host first appears.
    line: usize,
    vars: Vars,
}

/// One inventory, whichever form it was written in: `all` and
/// `ungrouped` always exist.
#[derive(Debug)]
struct Inventory {
    groups: BTreeMap<String, Group>,
    hosts: BTreeMap<String, Host>,
}

impl Inventory {
    fn new() -> Inventory {
        let mut groups = BTreeMap::new();
        groups.insert("all".to_string(), Group::default());
        groups.insert("ungrouped".to_string(), Group::default());
        Inventory {
            groups,
            hosts: BTreeMap::new(),
        }
    }

    fn group(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_string()).or_default()
    }

    /// Adds the hosts of one pattern to `group` with their variables (a
    /// port in the pattern first, as Ansible sets it before the others).
    fn add_hosts(
        &mut self,
        group: &str,
        pattern: &str,
        vars: Vars,
        line: usize,
    ) -> Result<(), Bad> {
        let (names, port) = host_pattern(pattern).map_err(|m| (line, m))?;
        if self.hosts.len() + names.len() > MAX_HOSTS {
            return Err((line, format!("more than {MAX_HOSTS} hosts")));
        }
        for name in names {
            self.group(group).hosts.insert(name.clone());
            let host = self.hosts.entry(name).or_insert(Host {
                line,
                vars: Vars::new(),
            });
            if let Some(port) = port {
                host.vars.insert(
                    "ansible_port".into(),
                    Var {
                        value: Value::Text(port.to_string()),
                        line,
                    },
                );
            }
            host.vars.extend(vars.clone());
        }
        Ok(())
    }

    /// What Ansible does once every source is read: groups without a
    /// parent become children of `all`, hosts in no group but `all` join
    /// `ungrouped` (and leave it when in another group); then a group that
    /// is its own ancestor is refused.
    fn reconcile(&mut self) -> Result<(), Bad> {
        // `all` is every group's root; as a child it would make a cycle
        // through the edges added below, which have no line of their own.
        if let Some(line) = self.groups.values().find_map(|g| g.children.get("all")) {
            return Err((*line, "group \"all\" cannot be a child group".into()));
        }
        let parented: BTreeSet<String> = self
            .groups
            .values()
            .flat_map(|g| g.children.keys().cloned())
            .collect();
        let orphans: Vec<String> = self
            .groups
            .keys()
            .filter(|g| *g != "all" && !parented.contains(*g))
            .cloned()
            .collect();
        for g in orphans {
            self.group("all").children.insert(g, 0);
        }
        for name in self.hosts.keys() {
            let elsewhere = self
                .groups
                .iter()
                .any(|(g, grp)| g != "all" && g != "ungrouped" && grp.hosts.contains(name));
            let ungrouped = self.groups.entry("ungrouped".into()).or_default();
            if elsewhere {
                ungrouped.hosts.remove(name);
            } else {
                ungrouped.hosts.insert(name.clone());
            }
        }
        // A cycle: depth-first from every group, looking for a back edge.
        fn visit<'a>(
            inv: &'a Inventory,
            g: &'a str,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Result<(), Bad> {
            if done.contains(g) {
                return Ok(());
            }
            path.push(g);
            for (child, line) in inv.groups.get(g).map(|x| &x.children).into_iter().flatten() {
                if let Some(at) = path.iter().position(|p| p == child) {
                    let mut ring: Vec<&str> = path.get(at..).unwrap_or_default().to_vec();
                    ring.push(child);
                    return Err((
                        *line,
                        format!(
                            "group {} is its own ancestor ({})",
                            q(child),
                            ring.join(" -> ")
                        ),
                    ));
                }
                visit(inv, child, path, done)?;
            }
            path.pop();
            done.insert(g);
            Ok(())
        }
        let mut done = BTreeSet::new();
        for g in self.groups.keys() {
            visit(self, g, &mut Vec::new(), &mut done)?;
        }
        Ok(())
    }

    /// The variables of `host` with Ansible's precedence: its groups and
    /// their ancestors in the order (depth from `all`, then
    /// `ansible_group_priority`, then name), each overriding the one
    /// before (so `all` is lowest and a child beats its parent), then the
    /// host's own variables over all of them.
    fn resolve(&self, host: &str) -> Vars {
        let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (g, grp) in &self.groups {
            for c in grp.children.keys() {
                parents.entry(c.as_str()).or_default().push(g.as_str());
            }
        }
        // Longest path from `all` (reconcile refused cycles).
        fn depth<'a>(
            g: &'a str,
            parents: &BTreeMap<&'a str, Vec<&'a str>>,
            memo: &mut BTreeMap<&'a str, usize>,
        ) -> usize {
            if let Some(d) = memo.get(g) {
                return *d;
            }
            let d = parents
                .get(g)
                .into_iter()
                .flatten()
                .map(|p| depth(p, parents, memo) + 1)
                .max()
                .unwrap_or(0);
            memo.insert(g, d);
            d
        }
        let mut mine: BTreeSet<&str> = BTreeSet::from(["all"]);
        let mut todo: Vec<&str> = self
            .groups
            .iter()
            .filter(|(_, grp)| grp.hosts.contains(host))
            .map(|(g, _)| g.as_str())
            .collect();
        while let Some(g) = todo.pop() {
            if mine.insert(g) {
                todo.extend(parents.get(g).into_iter().flatten());
            }
        }
        let mut memo = BTreeMap::new();
        let mut order: Vec<(usize, i64, &str)> = mine
            .into_iter()
            .map(|g| {
                let priority = self
                    .groups
                    .get(g)
                    .and_then(|grp| grp.vars.get("ansible_group_priority"))
                    .and_then(|v| match &v.value {
                        Value::Text(t) => t.trim().parse().ok(),
                        _ => None,
                    })
                    .unwrap_or(1);
                (depth(g, &parents, &mut memo), priority, g)
            })
            .collect();
        order.sort();
        let mut vars = Vars::new();
        for (_, _, g) in order {
            if let Some(grp) = self.groups.get(g) {
                vars.extend(grp.vars.clone());
            }
        }
        if let Some(h) = self.hosts.get(host) {
            vars.extend(h.vars.clone());
        }
        vars
    }
}

fn q(s: &str) -> String {
    crate::engine::text::quoted(s)
}

// ---------------------------------------------------------------- host patterns

/// A host pattern as Ansible's `_expand_hostpattern` reads it: an optional
/// port (`host:22`, `[2001:db8::1]:22`; a bare IPv6 address has none),
/// then every `[a:b]` or `[a:b:step]` range expanded, numeric (`[01:20]`
/// keeps the zero padding, both ends the same width) or by letter
/// (`[a:f]`), left to right.
fn host_pattern(pattern: &str) -> Result<(Vec<String>, Option<u16>), String> {
    let (host, port) = split_port(pattern);
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).ok_or_else(|| {
            format!(
                "host {}: port {} is not a number from 1 to 65535",
                q(pattern),
                q(p)
            )
        })?),
    };
    if host.is_empty() {
        return Err(format!("host {}: no host name", q(pattern)));
    }
    let mut names = Vec::new();
    expand(host, &mut names).map_err(|m| format!("host {}: {m}", q(pattern)))?;
    Ok((names, port))
}

/// `[addr]:port`, or `name:port` with no colon outside a range.
fn split_port(pattern: &str) -> (&str, Option<&str>) {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = pattern.strip_prefix('[')
        && let Some((addr, port)) = rest.rsplit_once("]:")
        && digits(port)
    {
        return (addr, Some(port));
    }
    if let Some((host, port)) = pattern.rsplit_once(':')
        && digits(port)
    {
        let mut inside = 0i32;
        let outside_colon = host.chars().any(|c| {
            match c {
                '[' => inside += 1,
                ']' => inside -= 1,
                ':' if inside == 0 => return true,
                _ => {}
            }
            false
        });
        if !outside_colon {
            return (host, Some(port));
        }
    }
    (pattern, None)
}

fn parse_port(p: &str) -> Option<u16> {
    p.trim().parse::<u16>().ok().filter(|p| *p != 0)
}

/// Expands the first range of `name` and recurses on the rest.
fn expand(name: &str, out: &mut Vec<String>) -> Result<(), String> {
    let Some(open) = name.find('[') else {
        if out.len() >= MAX_HOSTS {
            return Err(format!("the ranges give more than {MAX_HOSTS} hosts"));
        }
        out.push(name.to_string());
        return Ok(());
    };
    let (head, rest) = name.split_at(open);
    let rest = rest.get(1..).unwrap_or_default();
    let (range, tail) = rest
        .split_once(']')
        .ok_or("a host range needs a closing ]")?;
    let bounds: Vec<&str> = range.split(':').collect();
    let (beg, end, step) = match bounds.as_slice() {
        [b, e] => (*b, *e, "1"),
        [b, e, s] => (*b, *e, *s),
        _ => return Err("a host range must be [begin:end] or [begin:end:step]".into()),
    };
    let beg = if beg.is_empty() { "0" } else { beg };
    if end.is_empty() {
        return Err("a host range must give its end".into());
    }
    let step: usize = step
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .ok_or("a host range's step must be a whole number above 0")?;
    let width = if beg.len() > 1 && beg.starts_with('0') {
        if beg.len() != end.len() {
            return Err("a zero-padded host range needs begin and end of the same width".into());
        }
        beg.len()
    } else {
        0
    };
    const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let letter = |s: &str| (s.len() == 1).then(|| LETTERS.find(s)).flatten();
    let seq: Vec<String> = match (letter(beg), letter(end)) {
        (Some(b), Some(e)) => {
            if b > e {
                return Err("a host range must have begin <= end".into());
            }
            LETTERS
                .get(b..=e)
                .unwrap_or_default()
                .chars()
                .step_by(step)
                .map(String::from)
                .collect()
        }
        _ => {
            let (Ok(b), Ok(e)) = (beg.parse::<u64>(), end.parse::<u64>()) else {
                return Err("a host range's ends must be numbers or single letters".into());
            };
            if b > e {
                return Err("a host range must have begin <= end".into());
            }
            if (e - b) / step as u64 >= MAX_HOSTS as u64 {
                return Err(format!("the ranges give more than {MAX_HOSTS} hosts"));
            }
            (b..=e)
                .step_by(step)
                .map(|n| format!("{n:0width$}"))
                .collect()
        }
    };
    for s in seq {
        expand(&format!("{head}{s}{tail}"), out)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- INI

/// Splits a host line as Python's `shlex.split(line, comments=True)`
/// does: blanks separate words, `'…'` is literal, `"…"` honours `\"` and
/// `\\`, a backslash outside quotes takes the next character as it is, and
/// `#` outside quotes ends the line.
fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => words.extend(word.take()),
            '#' => break,
            '\\' => {
                let next = chars.next().ok_or("a backslash ends the line")?;
                word.get_or_insert_default().push(next);
            }
            '\'' => {
                let w = word.get_or_insert_default();
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("no closing quotation mark".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_default();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("no closing quotation mark".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("no closing quotation mark".into()),
                    }
                }
            }
            c => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// An INI value as Ansible's `_parse_value` leaves it for a string: a
/// value written as a quoted literal (`"west"`, `'west'`) is the text
/// inside; anything else is kept as written (`True`, `2222`, `west`).
fn ini_value(v: &str, line: usize) -> Var {
    let v = v.trim();
    let inner = ['"', '\'']
        .iter()
        .find_map(|q| v.strip_prefix(*q)?.strip_suffix(*q))
        .filter(|_| v.len() >= 2);
    Var {
        value: Value::Text(inner.unwrap_or(v).to_string()),
        line,
    }
}

/// `[name]`, `[name:vars]`, `[name:children]` (a trailing `# comment`
/// allowed): Ansible's section pattern `^\[([^:\]\s]+)(?::(\w+))?\]\s*(#.*)?$`.
fn section(line: &str) -> Option<(&str, &str)> {
    let inner = line.strip_prefix('[')?;
    let (head, after) = inner.split_once(']')?;
    let after = after.trim_start();
    if !(after.is_empty() || after.starts_with('#')) {
        return None;
    }
    let (name, kind) = head.split_once(':').unwrap_or((head, ""));
    let name_ok = !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == ']');
    let kind_ok = head.contains(':') != kind.is_empty()
        && kind.chars().all(|c| c.is_alphanumeric() || c == '_');
    (name_ok && kind_ok).then_some((name, kind))
}

/// Reads Ansible's INI inventory dialect. Errors: the line and what was
/// expected there (a bad section, a host variable without `=`, a bad
/// range or port, a child or `:vars` section for a group never declared).
fn parse_ini(text: &str) -> Result<Inventory, Bad> {
    #[derive(PartialEq)]
    enum State {
        Hosts,
        Vars,
        Children,
    }
    let mut inv = Inventory::new();
    let mut declared: BTreeSet<String> = ["all", "ungrouped"].map(String::from).into();
    // Groups named only by `[g:vars]` or as a child, with the line.
    let mut wanted: Vec<(String, usize, String)> = Vec::new();
    let mut group = "ungrouped".to_string();
    let mut state = State::Hosts;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((name, kind)) = section(line) {
            state = match kind {
                "" | "hosts" => State::Hosts,
                "vars" => State::Vars,
                "children" => State::Children,
                other => {
                    return Err((
                        n,
                        format!(
                            "section [{name}:{other}] has an unknown type; use [{name}], [{name}:vars] or [{name}:children]"
                        ),
                    ));
                }
            };
            group = name.to_string();
            inv.group(name);
            if state == State::Vars {
                wanted.push((name.to_string(), n, format!("section [{name}:vars] is for a group that is never declared; declare it with [{name}] or [{name}:children]")));
            } else {
                declared.insert(name.to_string());
            }
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            return Err((
                n,
                format!(
                    "invalid section {}: a group name has no blanks, ':' or ']', and a section is [name], [name:vars] or [name:children]",
                    q(line)
                ),
            ));
        }
        match state {
            State::Hosts => {
                let words = shell_words(line).map_err(|m| (n, m))?;
                let Some((pattern, rest)) = words.split_first() else {
                    continue;
                };
                let mut vars = Vars::new();
                for w in rest {
                    let (k, v) = w.split_once('=').ok_or_else(|| {
                        (
                            n,
                            format!("expected key=value after the host name, got {}", q(w)),
                        )
                    })?;
                    vars.insert(k.to_string(), ini_value(v, n));
                }
                inv.add_hosts(&group, pattern, vars, n)?;
            }
            State::Vars => {
                let (k, v) = line
                    .split_once('=')
                    .filter(|(k, _)| !k.trim().is_empty())
                    .ok_or_else(|| (n, format!("expected key=value, got {}", q(line))))?;
                inv.group(&group)
                    .vars
                    .insert(k.trim().to_string(), ini_value(v, n));
            }
            State::Children => {
                let child = line.split_once('#').map_or(line, |(c, _)| c).trim_end();
                if child.is_empty()
                    || child
                        .chars()
                        .any(|c| c.is_whitespace() || c == ':' || c == ']')
                {
                    return Err((n, format!("expected a group name, got {}", q(line))));
                }
                inv.group(&group).children.insert(child.to_string(), n);
                wanted.push((child.to_string(), n, format!("section [{group}:children] names group {}, which is never declared; declare it with [{child}] or [{child}:children]", q(child))));
            }
        }
    }
    if let Some((_, line, message)) = wanted
        .into_iter()
        .filter(|(g, _, _)| !declared.contains(g))
        .min_by_key(|(_, line, _)| *line)
    {
        return Err((line, message));
    }
    inv.reconcile()?;
    Ok(inv)
}

// ---------------------------------------------------------------- YAML

type Node<'a> = saphyr::MarkedYaml<'a>;

fn line(node: &Node) -> usize {
    node.span.start.line()
}

/// The value of a YAML scalar as text (`1` → "1", `true` → "true").
fn yaml_value(node: &Node) -> Value {
    use saphyr::{Scalar, YamlData};
    match &node.data {
        YamlData::Value(Scalar::Null) => Value::Null,
        YamlData::Value(Scalar::Boolean(b)) => Value::Text(b.to_string()),
        YamlData::Value(Scalar::Integer(i)) => Value::Text(i.to_string()),
        YamlData::Value(Scalar::FloatingPoint(f)) => Value::Text(f.to_string()),
        YamlData::Value(Scalar::String(s)) => Value::Text(s.to_string()),
        YamlData::Representation(s, ..) => Value::Text(s.to_string()),
        YamlData::Sequence(_) => Value::Other("a list"),
        YamlData::Mapping(_) => Value::Other("a mapping"),
        YamlData::Tagged(..) => Value::Other("a tagged value (such as !vault)"),
        YamlData::Alias(_) | YamlData::BadValue => Value::Other("not a plain value"),
    }
}

/// A mapping key as a name.
fn yaml_name(node: &Node, what: &str) -> Result<String, Bad> {
    match yaml_value(node) {
        Value::Text(t) if !t.is_empty() => Ok(t),
        _ => Err((line(node), format!("a {what} name must be a plain value"))),
    }
}

/// The entries of a `vars`, `children` or `hosts` section: a mapping, a
/// single name (Ansible takes `hosts: web1` as `{web1: null}`), or null.
fn yaml_entries<'n, 'a>(
    node: &'n Node<'a>,
    section: &str,
    group: &str,
) -> Result<Vec<(&'n Node<'a>, Option<&'n Node<'a>>)>, Bad> {
    use saphyr::YamlData;
    match &node.data {
        YamlData::Mapping(m) => Ok(m.iter().map(|(k, v)| (k, Some(v))).collect()),
        _ => match yaml_value(node) {
            Value::Null => Ok(Vec::new()),
            Value::Text(_) if section != "vars" => Ok(vec![(node, None)]),
            _ => Err((
                line(node),
                format!("{section} of group {} must be a mapping", q(group)),
            )),
        },
    }
}

fn yaml_vars(node: Option<&Node>, what: &str) -> Result<Vars, Bad> {
    let mut vars = Vars::new();
    let Some(node) = node else {
        return Ok(vars);
    };
    if let saphyr::YamlData::Mapping(m) = &node.data {
        for (k, v) in m {
            vars.insert(
                yaml_name(k, "variable")?,
                Var {
                    value: yaml_value(v),
                    line: line(k),
                },
            );
        }
    } else if yaml_value(node) != Value::Null {
        return Err((
            line(node),
            format!("the variables of {what} must be a mapping"),
        ));
    }
    Ok(vars)
}

fn yaml_group(
    inv: &mut Inventory,
    name: &str,
    node: Option<&Node>,
    depth: usize,
) -> Result<(), Bad> {
    use saphyr::YamlData;
    inv.group(name);
    let Some(node) = node else {
        return Ok(());
    };
    if depth > MAX_DEPTH {
        return Err((
            line(node),
            format!("groups nest more than {MAX_DEPTH} deep"),
        ));
    }
    let YamlData::Mapping(map) = &node.data else {
        if yaml_value(node) == Value::Null {
            return Ok(());
        }
        return Err((
            line(node),
            format!(
                "group {} must be a mapping of vars, children and hosts",
                q(name)
            ),
        ));
    };
    for (k, v) in map {
        let key = yaml_name(k, "key")?;
        match key.as_str() {
            "vars" => {
                let vars = yaml_vars(Some(v), &format!("group {}", q(name)))?;
                inv.group(name).vars.extend(vars);
            }
            "children" => {
                for (ck, cv) in yaml_entries(v, "children", name)? {
                    let child = yaml_name(ck, "group")?;
                    yaml_group(inv, &child, cv, depth + 1)?;
                    inv.group(name).children.insert(child, line(ck));
                }
            }
            "hosts" => {
                for (hk, hv) in yaml_entries(v, "hosts", name)? {
                    let pattern = yaml_name(hk, "host")?;
                    let vars = yaml_vars(hv, &format!("host {}", q(&pattern)))?;
                    inv.add_hosts(name, &pattern, vars, line(hk))?;
                }
            }
            other => {
                return Err((
                    line(k),
                    format!(
                        "group {}: unexpected key {}; a group has only vars, children and hosts",
                        q(name),
                        q(other)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Reads a YAML inventory (`all: {hosts: …, children: …, vars: …}` and
/// any other top-level groups). Errors: the line and what was expected.
fn parse_yaml(text: &str) -> Result<Inventory, Bad> {
    use saphyr::{LoadableYamlNode, YamlData};
    let docs = Node::load_from_str(text)
        .map_err(|e| (e.marker().line(), format!("YAML: {}", e.info())))?;
    if let Some(extra) = docs.get(1) {
        return Err((
            line(extra),
            "a second YAML document; an inventory is one".into(),
        ));
    }
    let mut inv = Inventory::new();
    if let Some(doc) = docs.first() {
        match &doc.data {
            YamlData::Mapping(map) => {
                for (k, v) in map {
                    let name = yaml_name(k, "group")?;
                    if name == "_meta" {
                        return Err((
                            line(k),
                            "this is `ansible-inventory --list` JSON (the script format); export with `ansible-inventory -i INVENTORY --list --yaml` instead".into(),
                        ));
                    }
                    yaml_group(&mut inv, &name, Some(v), 0)?;
                }
            }
            _ if yaml_value(doc) == Value::Null => {}
            _ => {
                return Err((
                    line(doc),
                    "an inventory must be a mapping of groups (all: {hosts: …, children: …, vars: …})"
                        .into(),
                ));
            }
        }
    }
    inv.reconcile()?;
    Ok(inv)
}

// ---------------------------------------------------------------- fleet

/// What the import writes: a complete `fleet.toml` of ssh nodes. Ids of
/// data centers, organizations and clusters are declared from the values
/// the nodes use; nodes are in natural order of their ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FleetDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshDefaults>,
    pub datacenter: Vec<Decl>,
    pub organization: Vec<Decl>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<Decl>,
    pub node: Vec<SshNode>,
}

/// The fleet-wide `[ssh]` table, written only when the inventory sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshDefaults {
    /// The patchdeck binary on the nodes (`patchdeck_path`).
    pub patchdeck: String,
}

/// A `[[datacenter]]`, `[[organization]]` or `[[cluster]]` declaration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Decl {
    pub id: String,
}

/// One `[[node]]` reached over ssh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshNode {
    pub id: String,
    pub dc: String,
    pub org: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub site: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// `[user@]host[:port]`; an IPv6 address in brackets (`[2001:db8::1]:22`).
    pub ssh: String,
    /// The directory the node patches (`patchdeck_remote_root`; default `/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_root: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sudo: bool,
}

/// What the operator adds on the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The data center of hosts the inventory gives none.
    pub default_dc: Option<String>,
    /// The organization of hosts the inventory gives none.
    pub default_org: Option<String>,
}

/// The imported fleet, and what the operator should know about it
/// (hosts left out, cluster members without a member name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub fleet: FleetDoc,
    pub notes: Vec<String>,
}

impl Imported {
    /// The `fleet.toml` text (the `toml` crate writes every string, so
    /// any name is quoted safely).
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.fleet).expect("strings and booleans always serialise")
    }
}

/// Ansible's boolean words (`ansible.module_utils.parsing.convert_bool`),
/// case-insensitive.
fn ansible_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "on" | "1" | "true" | "t" | "1.0" => Some(true),
        "n" | "no" | "off" | "0" | "false" | "f" | "0.0" | "" => Some(false),
        _ => None,
    }
}

/// A problem found while mapping hosts: at one line, or across hosts.
enum Problem {
    At(Bad),
    Whole(String),
}

impl From<Bad> for Problem {
    fn from(bad: Bad) -> Problem {
        Problem::At(bad)
    }
}

/// One host's variables, resolved, read as the import needs them.
struct HostVars<'a> {
    name: &'a str,
    vars: Vars,
}

impl HostVars<'_> {
    /// A variable's text and line; unset, null and blank are `None`, a
    /// list or mapping an error at its line.
    fn text(&self, key: &str) -> Result<Option<(String, usize)>, Bad> {
        let Some(var) = self.vars.get(key) else {
            return Ok(None);
        };
        match &var.value {
            Value::Text(t) if !t.trim().is_empty() => Ok(Some((t.trim().to_string(), var.line))),
            Value::Text(_) | Value::Null => Ok(None),
            Value::Other(what) => Err((
                var.line,
                format!(
                    "host {}: {key} is {what}; it must be a single value",
                    q(self.name)
                ),
            )),
        }
    }

    /// The first of `keys` that is set.
    fn first(&self, keys: &[&str]) -> Result<Option<(String, usize)>, Bad> {
        for k in keys {
            if let Some(v) = self.text(k)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// A fleet field: `patchdeck_KEY` wins over `KEY`, each resolved with
    /// the full precedence.
    fn field(&self, key: &str) -> Result<Option<String>, Bad> {
        Ok(self
            .first(&[&format!("patchdeck_{key}"), key])?
            .map(|(t, _)| t))
    }

    /// `ansible_become` in Ansible's yes/no words.
    fn sudo(&self) -> Result<bool, Bad> {
        let Some((b, line)) = self.text("ansible_become")? else {
            return Ok(false);
        };
        ansible_bool(&b).ok_or_else(|| {
            (
                line,
                format!(
                    "host {}: ansible_become {} is not one of Ansible's yes/no words (yes, true, on, 1 / no, false, off, 0)",
                    q(self.name),
                    q(&b)
                ),
            )
        })
    }

    /// `[user@]host[:port]` from `ansible_host`, `ansible_port` and
    /// `ansible_user` (or their old `ansible_ssh_` names), the inventory
    /// name (first seen at `line`) when there is no `ansible_host`; an IPv6
    /// address in brackets. Refused: anything `ssh` could take for an
    /// option or that is not one host and one user.
    fn destination(&self, line: usize) -> Result<String, Bad> {
        let (addr, addr_line) = self
            .first(&["ansible_host", "ansible_ssh_host"])?
            .unwrap_or_else(|| (self.name.to_string(), line));
        let addr = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(&addr);
        // A colon means an IPv6 address (a scope such as `%eth0` allowed).
        let v6 = addr.contains(':');
        let v6_ok = addr
            .split('%')
            .next()
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
        if addr.starts_with('-') || unsafe_chars(addr, "@/[]") || (v6 && !v6_ok) {
            return Err((
                addr_line,
                format!(
                    "host {}: {} is not a host name or address ssh can be given",
                    q(self.name),
                    q(addr)
                ),
            ));
        }
        let mut ssh = String::new();
        if let Some((u, line)) = self.first(&["ansible_user", "ansible_ssh_user"])? {
            if u.starts_with('-') || unsafe_chars(&u, "@:/") {
                return Err((
                    line,
                    format!(
                        "host {}: ansible_user {} is not a user name",
                        q(self.name),
                        q(&u)
                    ),
                ));
            }
            ssh.push_str(&format!("{u}@"));
        }
        ssh.push_str(&if v6 {
            format!("[{addr}]")
        } else {
            addr.to_string()
        });
        if let Some((p, line)) = self.first(&["ansible_port", "ansible_ssh_port"])? {
            let port = parse_port(&p).ok_or_else(|| {
                (
                    line,
                    format!(
                        "host {}: ansible_port {} is not a number from 1 to 65535",
                        q(self.name),
                        q(&p)
                    ),
                )
            })?;
            ssh.push_str(&format!(":{port}"));
        }
        Ok(ssh)
    }
}

/// Blanks, controls or any of `also` in `s`.
fn unsafe_chars(s: &str, also: &str) -> bool {
    s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || also.contains(c))
}

/// Whether the groups rule can name this cluster member (`S_M`).
fn has_member_name(id: &str, member: Option<&String>) -> bool {
    member.is_some()
        || crate::engine::groups::member_name(&crate::engine::fleet::Node {
            id: id.to_string(),
            dc: String::new(),
            org: String::new(),
            site: String::new(),
            cluster: None,
            member: None,
            role: Default::default(),
            root: None,
            command: None,
            ssh: None,
            remote_root: None,
            sudo: None,
            offline: false,
            products: Vec::new(),
            demo: Default::default(),
        })
        .is_some()
}

/// The hosts of `inv` as ssh nodes.
fn to_fleet(inv: &Inventory, opts: &Options) -> Result<Imported, Problem> {
    let mut nodes = Vec::new();
    let mut notes = Vec::new();
    let (mut no_dc, mut no_org) = (Vec::new(), Vec::new());
    let mut paths: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, host) in &inv.hosts {
        let h = HostVars {
            name,
            vars: inv.resolve(name),
        };
        if let Some((conn, _)) = h.text("ansible_connection")?
            && !matches!(
                conn.as_str(),
                "ssh"
                    | "smart"
                    | "paramiko"
                    | "paramiko_ssh"
                    | "ansible.builtin.ssh"
                    | "ansible.builtin.paramiko_ssh"
            )
        {
            notes.push(format!(
                "host {} left out: ansible_connection={conn} is not ssh",
                q(name)
            ));
            continue;
        }
        // The host name becomes the node id: it must be one `--nodes` can name.
        crate::engine::fleet::check_node_id(name)
            .map_err(|m| (host.line, format!("host {}: {m}", q(name))))?;
        let dc = h.field("dc")?.or_else(|| opts.default_dc.clone());
        let org = h.field("org")?.or_else(|| opts.default_org.clone());
        if dc.is_none() {
            no_dc.push(format!("{name} (line {})", host.line));
        }
        if org.is_none() {
            no_org.push(format!("{name} (line {})", host.line));
        }
        if let Some((p, _)) = h.text("patchdeck_path")? {
            paths.entry(p).or_default().push(name.clone());
        }
        let node = SshNode {
            id: name.clone(),
            dc: dc.unwrap_or_default(),
            org: org.unwrap_or_default(),
            site: h.field("site")?.unwrap_or_default(),
            cluster: h.field("cluster")?,
            member: h.field("member")?,
            ssh: h.destination(host.line)?,
            remote_root: h.text("patchdeck_remote_root")?.map(|(t, _)| t),
            sudo: h.sudo()?,
        };
        if let Some(c) = &node.cluster
            && !has_member_name(name, node.member.as_ref())
        {
            notes.push(format!(
                "host {} in cluster {}: no member name S_M (set member or patchdeck_member, e.g. 1_1); rollouts of the cluster will refuse it",
                q(name),
                q(c)
            ));
        }
        nodes.push(node);
    }
    let mut missing = Vec::new();
    if !no_dc.is_empty() {
        missing.push(format!(
            "hosts without a data center (set dc or patchdeck_dc, or pass --default-dc DC): {}",
            list(&no_dc)
        ));
    }
    if !no_org.is_empty() {
        missing.push(format!(
            "hosts without an organization (set org or patchdeck_org, or pass --default-org ORG): {}",
            list(&no_org)
        ));
    }
    if !missing.is_empty() {
        return Err(Problem::Whole(missing.join("; ")));
    }
    if nodes.is_empty() {
        return Err(Problem::Whole(if inv.hosts.is_empty() {
            "no hosts in the inventory".into()
        } else {
            "no host is reached over ssh".into()
        }));
    }
    let ssh = match paths.len() {
        0 => None,
        1 if paths.values().all(|h| h.len() == nodes.len()) => paths
            .into_keys()
            .next()
            .map(|patchdeck| SshDefaults { patchdeck }),
        _ => {
            return Err(Problem::Whole(format!(
                "patchdeck_path must be the same for every host (fleet.toml has one [ssh] patchdeck for the whole fleet; set it once under all's vars): {}",
                paths
                    .iter()
                    .map(|(p, hosts)| format!("{} on {}", q(p), list(hosts)))
                    .chain(
                        (paths.values().map(Vec::len).sum::<usize>() < nodes.len())
                            .then(|| "unset on the others".to_string())
                    )
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
    };
    nodes.sort_by(|a, b| crate::engine::groups::natural_cmp(&a.id, &b.id));
    let decl = |ids: BTreeSet<&String>| ids.into_iter().map(|id| Decl { id: id.clone() }).collect();
    let fleet = FleetDoc {
        ssh,
        datacenter: decl(nodes.iter().map(|n| &n.dc).collect()),
        organization: decl(nodes.iter().map(|n| &n.org).collect()),
        cluster: decl(nodes.iter().filter_map(|n| n.cluster.as_ref()).collect()),
        node: nodes,
    };
    Ok(Imported { fleet, notes })
}

/// Names in a message: the first twenty, then how many more.
fn list(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(20)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > 20 {
        s.push_str(&format!(" and {} more", items.len() - 20));
    }
    s
}

/// Imports the inventory `text` read from `path` (the name is for errors
/// and for [`Format::detect`] when `format` is `None`). Errors: at a line
/// for what is wrong in one place, for the whole file when several hosts
/// lack a data center or organization, or disagree on `patchdeck_path`.
pub fn import_text(
    path: &Path,
    text: &str,
    format: Option<Format>,
    opts: &Options,
) -> Result<Imported, ImportError> {
    let shown = path.display().to_string();
    let at = |(line, message): Bad| ImportError::At {
        path: shown.clone(),
        line,
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let inv = match format.unwrap_or_else(|| Format::detect(path, text)) {
        Format::Ini => parse_ini(text),
        Format::Yaml => parse_yaml(text),
    }
    .map_err(at)?;
    let imported = to_fleet(&inv, opts).map_err(|p| match p {
        Problem::At(bad) => at(bad),
        Problem::Whole(message) => ImportError::Inventory {
            path: shown.clone(),
            message,
        },
    })?;
    // Only a fleet the loader takes is ever written: a value the rules above
    // let through (a remote_root, an id) is refused here, by the loader's
    // own words.
    crate::engine::fleet::Fleet::parse(&imported.to_toml()).map_err(|(_, message)| {
        ImportError::Inventory {
            path: shown.clone(),
            message: format!("the fleet it gives would not load: {message}"),
        }
    })?;
    Ok(imported)
}

/// Reads and imports the inventory file at `path` ([`import_text`]);
/// bytes that are not UTF-8 are an error at their line.
pub fn import_file(path: &Path, opts: &Options) -> Result<Imported, ImportError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: shown.clone(),
        source,
    })?;
    let text = crate::engine::text::utf8(bytes).map_err(|(line, message)| ImportError::At {
        path: shown.clone(),
        line,
        message,
    })?;
    import_text(path, &text, None, opts)
}

/// Why the fleet file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0} exists; pass --force to replace it")]
    Exists(String),
    #[error("{path}: cannot write: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `text` to `path` through a temporary file in the same directory
/// renamed into place, so a reader never sees half a fleet. Without
/// `force` an existing file is kept (the rename itself refuses to replace
/// it, so a file created meanwhile is kept too).
pub fn write_fleet(path: &Path, text: &str, force: bool) -> Result<(), WriteError> {
    use std::io::Write;
    let shown = path.display().to_string();
    let io = |source| WriteError::Io {
        path: shown.clone(),
        source,
    };
    if !force && path.symlink_metadata().is_ok() {
        return Err(WriteError::Exists(shown));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut temp = crate::engine::archive::shared_temp(dir).map_err(io)?;
    temp.write_all(text.as_bytes()).map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    if force {
        temp.persist(path).map_err(|e| io(e.error))?;
    } else {
        temp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                WriteError::Exists(shown.clone())
            } else {
                io(e.error)
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(text: &str) -> Result<Imported, ImportError> {
        import_text(
            Path::new("hosts"),
            text,
            Some(Format::Ini),
            &Options::default(),
        )
    }

    fn yaml(text: &str) -> Result<Imported, ImportError> {
        import_text(
            Path::new("hosts.yml"),
            text,
            Some(Format::Yaml),
            &Options::default(),
        )
    }

    fn node<'a>(f: &'a Imported, id: &str) -> &'a SshNode {
        f.fleet.node.iter().find(|n| n.id == id).expect(id)
    }

    /// The line and message of an error at a line.
    fn at(e: ImportError) -> (usize, String) {
        match e {
            ImportError::At { line, message, .. } => (line, message),
            other => panic!("not at a line: {other}"),
        }
    }

    const INI: &str = r#"# the edge appliances
[all:vars]
org=retail
dc=central

[west]
web[01:03].example ansible_user=ops
db1 ansible_host=10.0.0.5 ansible_port=2222 dc=override # a comment ansible_user=x

[west:vars]
dc=west
ansible_become=yes

[east]
web02.example
gw-[a:c] ansible_host=fe80::1

[east:vars]
dc="east"

[edge:children]
west
east

[edge:vars]
cluster=edge
patchdeck_org=payments
"#;

    #[test]
    fn ini_hosts_groups_children_and_precedence() {
        let f = ini(INI).unwrap();
        let ids: Vec<&str> = f.fleet.node.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "db1",
                "gw-a",
                "gw-b",
                "gw-c",
                "web01.example",
                "web02.example",
                "web03.example"
            ]
        );
        let web1 = node(&f, "web01.example");
        assert_eq!(web1.dc, "west", "a group's vars beat all's");
        assert_eq!(web1.org, "payments", "patchdeck_org beats org at any level");
        assert_eq!(
            web1.cluster.as_deref(),
            Some("edge"),
            "vars of a parent group"
        );
        assert_eq!(web1.ssh, "ops@web01.example");
        assert!(web1.sudo);
        let db1 = node(&f, "db1");
        assert_eq!(db1.dc, "override", "host vars beat group vars");
        assert_eq!(db1.ssh, "10.0.0.5:2222");
        // In two groups of the same depth: the later name (west) wins.
        let web2 = node(&f, "web02.example");
        assert_eq!(web2.dc, "west");
        assert_eq!(web2.ssh, "ops@web02.example", "one node, vars merged");
        let gw = node(&f, "gw-b");
        assert_eq!(
            (gw.dc.as_str(), gw.ssh.as_str(), gw.sudo),
            ("east", "[fe80::1]", false)
        );
        let ids = |d: &[Decl]| d.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&f.fleet.datacenter), ["east", "override", "west"]);
        assert_eq!(ids(&f.fleet.organization), ["payments"]);
        assert_eq!(ids(&f.fleet.cluster), ["edge"]);
    }

    #[test]
    fn a_child_group_beats_its_parent_however_deep() {
        let text = "[leaf]\nh1\n[mid:children]\nleaf\n[top:children]\nmid\n\
                    [top:vars]\ndc=top\norg=o\nsite=1\n[mid:vars]\ndc=mid\n[leaf:vars]\nsite=3\n";
        let f = ini(text).unwrap();
        let h = node(&f, "h1");
        assert_eq!((h.dc.as_str(), h.site.as_str()), ("mid", "3"));
        // A group that is both a child of `all` and of a deeper group
        // takes its deepest place: here `b` (depth 2) beats `a` (depth 1).
        let text = "[a]\nh1\n[b]\nh1\n[p:children]\nb\n[a:vars]\ndc=a\norg=o\n[b:vars]\ndc=b\n";
        assert_eq!(node(&ini(text).unwrap(), "h1").dc, "b");
        // ansible_group_priority orders groups of the same depth.
        let text =
            "[a]\nh1\n[b]\nh1\n[a:vars]\ndc=a\norg=o\nansible_group_priority=5\n[b:vars]\ndc=b\n";
        assert_eq!(node(&ini(text).unwrap(), "h1").dc, "a");
    }

    #[test]
    fn yaml_reads_the_same_things() {
        let text = r#"
all:
  vars:
    org: retail
  hosts:
    solo.example:
      dc: north
      ansible_port: 2200
  children:
    west:
      vars: {dc: west, ansible_become: true}
      hosts:
        web[1:2]:
          ansible_user: ops
        "[2001:db8::7]:2022":
      children:
        edge:
          vars:
            cluster: edge
            patchdeck_site: "2"
          hosts:
            web1:
              member: "2_1"
              patchdeck_member: "2_9"
"#;
        let f = yaml(text).unwrap();
        let solo = node(&f, "solo.example");
        assert_eq!(
            (solo.dc.as_str(), solo.ssh.as_str(), solo.sudo),
            ("north", "solo.example:2200", false)
        );
        let web1 = node(&f, "web1");
        assert_eq!(web1.ssh, "ops@web1");
        assert!(web1.sudo);
        assert_eq!(
            (
                web1.cluster.as_deref(),
                web1.member.as_deref(),
                web1.site.as_str()
            ),
            (Some("edge"), Some("2_9"), "2")
        );
        let v6 = node(&f, "2001:db8::7");
        assert_eq!(v6.ssh, "[2001:db8::7]:2022");
        assert_eq!(node(&f, "web2").cluster, None);
    }

    #[test]
    fn ranges_expand_as_ansible_expands_them() {
        let names = host_pattern;
        assert_eq!(
            names("web[01:03].x").unwrap().0,
            ["web01.x", "web02.x", "web03.x"]
        );
        assert_eq!(names("n[0:10:5]").unwrap().0, ["n0", "n5", "n10"]);
        assert_eq!(names("h[:2]").unwrap().0, ["h0", "h1", "h2"]);
        assert_eq!(
            names("[a:c]-[1:2]").unwrap().0,
            ["a-1", "a-2", "b-1", "b-2", "c-1", "c-2"]
        );
        assert_eq!(
            names("db[8:10]:2222").unwrap(),
            (vec!["db8".into(), "db9".into(), "db10".into()], Some(2222))
        );
        assert_eq!(names("[::1]:22").unwrap(), (vec!["::1".into()], Some(22)));
        assert_eq!(names("fe80::1").unwrap(), (vec!["fe80::1".into()], None));
        for bad in [
            "h[1:]",
            "h[01:100]",
            "h[5:1]",
            "h[1:2:0]",
            "h[a:5]",
            "h[1]",
            "h[1:2",
            "h:0",
            "h[0:999999]",
        ] {
            assert!(names(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn become_takes_ansibles_words_and_nothing_else() {
        for (word, sudo) in [
            ("yes", true),
            ("True", true),
            ("on", true),
            ("1", true),
            ("no", false),
            ("False", false),
            ("off", false),
        ] {
            let f = ini(&format!("h dc=d org=o ansible_become={word}\n")).unwrap();
            assert_eq!(f.fleet.node[0].sudo, sudo, "{word}");
        }
        let (line, message) = at(ini("\n\nh dc=d org=o ansible_become=maybe\n").unwrap_err());
        assert_eq!(line, 3);
        assert!(message.contains("yes/no"), "{message}");
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("[web]\nh1\n[web:stuff]\n", 3, "unknown type"),
            ("[web]\n[bad name]\n", 2, "invalid section"),
            ("[web]\nh1 dc\n", 2, "key=value"),
            ("[web]\nh1 dc='west\n", 2, "quotation"),
            ("[web:vars]\ndc west\n", 2, "key=value"),
            ("h1\n[ghost:vars]\ndc=x\n", 2, "never declared"),
            ("[p:children]\nghost\n", 2, "never declared"),
            ("[p:children]\na b\n", 2, "group name"),
            ("\n[w]\nh[3:1]\n", 3, "begin <= end"),
            ("h1 ansible_port=http dc=d org=o\n", 1, "ansible_port"),
            ("h1 ansible_port=70000 dc=d org=o\n", 1, "ansible_port"),
            (
                "h1 ansible_host=-oProxyCommand=x dc=d org=o\n",
                1,
                "not a host name",
            ),
            ("h1 ansible_user=a@b dc=d org=o\n", 1, "not a user name"),
            ("h1 ansible_host=web1:22 dc=d org=o\n", 1, "not a host name"),
            ("[a]\nh1\n[a:children]\nall\n", 4, "cannot be a child"),
            ("[a:children]\nb\n[b:children]\na\n", 4, "its own ancestor"),
        ];
        for (text, line, word) in cases {
            let (l, m) = at(ini(text).unwrap_err());
            assert_eq!((l, m.contains(word)), (*line, true), "{text:?}: {m}");
        }
        let cases: &[(&str, usize, &str)] = &[
            ("all:\n  hosts:\n    h1: [1, 2]\n", 3, "must be a mapping"),
            ("all:\n  chidren:\n    web: {}\n", 2, "unexpected key"),
            (
                "all:\n  hosts:\n    h1:\n      dc: [a]\n      org: o\n",
                4,
                "single value",
            ),
            ("all:\n  hosts: {h1: {dc: d, org: o}\n", 3, "YAML"),
            ("- a\n- b\n", 1, "mapping of groups"),
            ("all:\n  hosts:\n    h1:\n    h1:\n", 4, "YAML"),
            (
                "{\"all\": {},\n \"_meta\": {\"hostvars\": {}}}",
                2,
                "--yaml",
            ),
        ];
        for (text, line, word) in cases {
            let (l, m) = at(yaml(text).unwrap_err());
            assert_eq!((l, m.contains(word)), (*line, true), "{text:?}: {m}");
        }
    }

    #[test]
    fn hosts_without_dc_or_org_are_listed_or_take_the_defaults() {
        let text = "a dc=d\nb org=o\nc dc=d org=o\n";
        let e = ini(text).unwrap_err().to_string();
        assert!(
            e.contains("without a data center") && e.contains("b (line 2)"),
            "{e}"
        );
        assert!(
            e.contains("without an organization") && e.contains("a (line 1)"),
            "{e}"
        );
        assert!(!e.contains("c (line"), "{e}");
        let opts = Options {
            default_dc: Some("main".into()),
            default_org: Some("ops".into()),
        };
        let f = import_text(Path::new("h"), text, Some(Format::Ini), &opts).unwrap();
        assert_eq!(
            (
                node(&f, "a").org.as_str(),
                node(&f, "b").dc.as_str(),
                node(&f, "c").dc.as_str()
            ),
            ("ops", "main", "d")
        );
    }

    #[test]
    fn patchdeck_path_is_fleet_wide_or_refused() {
        let f = ini("[all:vars]\ndc=d\norg=o\npatchdeck_path=/opt/pd/bin/patchdeck\n[g]\na\nb\n")
            .unwrap();
        assert_eq!(
            f.fleet.ssh.as_ref().map(|s| s.patchdeck.as_str()),
            Some("/opt/pd/bin/patchdeck")
        );
        assert!(
            f.to_toml()
                .starts_with("[ssh]\npatchdeck = \"/opt/pd/bin/patchdeck\"\n"),
            "{}",
            f.to_toml()
        );
        let e = ini("[all:vars]\ndc=d\norg=o\n[g]\na patchdeck_path=/x\nb\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unset on the others"), "{e}");
        assert!(
            ini("[all:vars]\ndc=d\norg=o\n[g]\na\n")
                .unwrap()
                .fleet
                .ssh
                .is_none()
        );
    }

    #[test]
    fn other_connections_are_left_out_and_said() {
        let f =
            ini("[all:vars]\ndc=d\norg=o\n[g]\nlocalhost ansible_connection=local\nweb\n").unwrap();
        assert_eq!(f.fleet.node.len(), 1);
        assert!(
            f.notes[0].contains("localhost") && f.notes[0].contains("not ssh"),
            "{:?}",
            f.notes
        );
    }

    #[test]
    fn names_with_quotes_survive_as_toml() {
        let f = ini("\"h'1\" dc='a \"b\"' org=\"x\\\"y\" ansible_user=root\n").unwrap();
        let back: toml::Table = toml::from_str(&f.to_toml()).unwrap();
        let n = &back["node"][0];
        assert_eq!(n["id"].as_str(), Some("h'1"));
        assert_eq!(n["dc"].as_str(), Some("a \"b\""));
        assert_eq!(n["org"].as_str(), Some("x\"y"));
    }

    /// The import is a fleet today's loader accepts once each node's ssh
    /// keys are swapped for a `command` (the loader does not know `ssh`
    /// yet).
    #[test]
    fn todays_loader_accepts_the_import() {
        let f = ini(INI).unwrap();
        let mut doc: toml::Table = toml::from_str(&f.to_toml()).unwrap();
        doc.remove("ssh");
        for n in doc["node"].as_array_mut().unwrap() {
            let t = n.as_table_mut().unwrap();
            t.remove("ssh");
            t.remove("sudo");
            t.insert("command".into(), "true".into());
        }
        let fleet = crate::engine::fleet::Fleet::parse(&toml::to_string(&doc).unwrap()).unwrap();
        assert_eq!(fleet.nodes.len(), 7);
    }

    #[test]
    fn format_is_detected_from_the_name_or_the_text() {
        assert_eq!(Format::detect(Path::new("x.yml"), "[web]"), Format::Yaml);
        assert_eq!(Format::detect(Path::new("x.ini"), "all: {}"), Format::Ini);
        assert_eq!(
            Format::detect(Path::new("hosts"), "all:\n  hosts: {a: }\n"),
            Format::Yaml
        );
        assert_eq!(
            Format::detect(Path::new("hosts"), "[web]\na\n"),
            Format::Ini
        );
        assert_eq!(
            Format::detect(Path::new("hosts"), "a ansible_host=b\n"),
            Format::Ini
        );
    }

    mod same_fleet_from_both_forms {
        use super::*;
        use proptest::prelude::*;

        type Kv = Vec<(String, String)>;

        /// An inventory: groups g0..gN (gi may have children gj, j > i, so
        /// no cycles), hosts with their groups, and variables on `all`,
        /// groups and hosts.
        #[derive(Debug, Clone)]
        struct Model {
            all: Kv,
            groups: Vec<(BTreeSet<usize>, Kv)>,
            hosts: Vec<(BTreeSet<usize>, Kv)>,
        }

        fn vars() -> impl Strategy<Value = Vec<(String, String)>> {
            let var = prop_oneof![
                (
                    "(patchdeck_)?(dc|org|site|cluster|member)",
                    "[a-z][a-z0-9_-]{0,5}"
                ),
                Just("ansible_host".to_string()).prop_flat_map(|k| (
                    Just(k),
                    prop_oneof![
                        "[a-z]{1,4}\\.example",
                        "10\\.0\\.0\\.[1-9]",
                        "fe80::[1-9a-f]"
                    ]
                )),
                ("ansible_port", "[1-9][0-9]{0,3}"),
                ("ansible_user", "[a-z]{1,5}"),
                ("ansible_become", "(yes|no|true|false|on|off|1|0)"),
            ];
            proptest::collection::vec(var, 0..4).prop_map(|v| {
                let mut seen = BTreeSet::new();
                v.into_iter()
                    .filter(|(k, _)| seen.insert(k.clone()))
                    .collect()
            })
        }

        fn model() -> impl Strategy<Value = Model> {
            (1usize..5, 1usize..7).prop_flat_map(|(ng, nh)| {
                (
                    vars(),
                    proptest::collection::vec(
                        (proptest::collection::btree_set(0..ng, 0..3), vars()),
                        ng,
                    ),
                    proptest::collection::vec(
                        (proptest::collection::btree_set(0..ng, 0..3), vars()),
                        nh,
                    ),
                )
                    .prop_map(|(all, groups, hosts)| Model { all, groups, hosts })
            })
        }

        fn write_ini(m: &Model) -> String {
            let kv = |v: &[(String, String)], sep: &str| {
                v.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(sep)
            };
            let mut s = format!("[all:vars]\n{}\n", kv(&m.all, "\n"));
            for (i, (children, vars)) in m.groups.iter().enumerate() {
                s.push_str(&format!("[g{i}]\n"));
                for (h, (groups, hvars)) in m.hosts.iter().enumerate() {
                    if groups.contains(&i) {
                        s.push_str(&format!("h{h} {}\n", kv(hvars, " ")));
                    }
                }
                s.push_str(&format!(
                    "[g{i}:vars]\n{}\n[g{i}:children]\n",
                    kv(vars, "\n")
                ));
                for c in children.iter().filter(|c| **c > i) {
                    s.push_str(&format!("g{c}\n"));
                }
            }
            for (h, (groups, hvars)) in m.hosts.iter().enumerate() {
                if groups.is_empty() {
                    s.push_str(&format!("[ungrouped]\nh{h} {}\n", kv(hvars, " ")));
                }
            }
            s
        }

        /// A flow mapping, plain where YAML reads the same text back (`22`
        /// is an integer, `true` a boolean: both come back as written).
        fn flow(v: &Kv) -> String {
            let body: Vec<String> = v
                .iter()
                .map(|(k, v)| match v.contains(':') || v == "null" {
                    true => format!("{k}: \"{v}\""),
                    false => format!("{k}: {v}"),
                })
                .collect();
            format!("{{{}}}", body.join(", "))
        }

        /// Group `i` in full; written at the top and again under each
        /// parent, as Ansible merges the copies.
        fn yaml_group(m: &Model, i: usize, out: &mut String) {
            let (children, vars) = &m.groups[i];
            out.push_str(&format!("g{i}: {{vars: {}, hosts: {{", flow(vars)));
            for (h, (groups, hvars)) in m.hosts.iter().enumerate() {
                if groups.contains(&i) {
                    out.push_str(&format!("h{h}: {}, ", flow(hvars)));
                }
            }
            out.push_str("}, children: {");
            for c in children.iter().filter(|c| **c > i) {
                yaml_group(m, *c, out);
                out.push_str(", ");
            }
            out.push_str("}}");
        }

        fn write_yaml(m: &Model) -> String {
            let mut s = format!("all:\n  vars: {}\n  hosts: {{", flow(&m.all));
            for (h, (groups, hvars)) in m.hosts.iter().enumerate() {
                if groups.is_empty() {
                    s.push_str(&format!("h{h}: {}, ", flow(hvars)));
                }
            }
            s.push_str("}\n  children: {");
            for i in 0..m.groups.len() {
                yaml_group(m, i, &mut s);
                s.push_str(", ");
            }
            s.push_str("}\n");
            s
        }

        proptest! {
            #[test]
            fn ini_and_yaml_import_to_the_same_fleet(m in model()) {
                let opts = Options { default_dc: Some("d0".into()), default_org: Some("o0".into()) };
                let (i, y) = (write_ini(&m), write_yaml(&m));
                let a = import_text(Path::new("h"), &i, Some(Format::Ini), &opts).map_err(|e| e.to_string());
                let b = import_text(Path::new("h"), &y, Some(Format::Yaml), &opts).map_err(|e| e.to_string());
                prop_assert_eq!(a.as_ref().map(|f| f.to_toml()), b.as_ref().map(|f| f.to_toml()), "INI:\n{}\nYAML:\n{}", i, y);
                prop_assert!(a.is_ok(), "{:?}", a);
            }
        }
    }
}
