//! Named investigations (`credtrail query NAME`): canned SQL under `queries/investigations`, one
//! `.sql` file each with a `-- key: value` header like the detections', embedded at compile time.
//! Each declared parameter becomes a flag of its subcommand (`access_key_id` → `--access-key-id`)
//! and a DuckDB variable the query reads with `getvariable`; rows print through `sql`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::{Arg, ArgAction, ArgMatches, FromArgMatches};

use crate::header::{QueryFile, list};
use crate::sql::{self, Format};
use crate::store::{Store, sql_string};

/// The embedded investigations: (file name, text). A test checks this list against the directory.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "key-history.sql",
        include_str!("../../queries/investigations/key-history.sql"),
    ),
    (
        "role-usage.sql",
        include_str!("../../queries/investigations/role-usage.sql"),
    ),
    (
        "source-ip.sql",
        include_str!("../../queries/investigations/source-ip.sql"),
    ),
    (
        "task-timeline.sql",
        include_str!("../../queries/investigations/task-timeline.sql"),
    ),
    (
        "who-fetched.sql",
        include_str!("../../queries/investigations/who-fetched.sql"),
    ),
];

/// Header keys every investigation must have (and the only ones allowed).
pub const REQUIRED_KEYS: &[&str] = &["id", "title", "description", "params", "reads"];

/// Variables set for every investigation (from `--since`, `--until`; NULL when not given), and
/// names a parameter cannot take because its flag is taken.
pub const RESERVED_PARAMS: &[&str] = &["since", "until", "format", "help", "store", "list"];

pub use crate::header::LoadError;

/// A declared parameter: required when it has no default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub default: Option<String>,
}

impl Param {
    /// The command-line flag: `access_key_id` → `access-key-id`.
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }
}

/// One investigation: its header and its SQL.
#[derive(Debug, Clone)]
pub struct Investigation {
    pub file: String,
    pub id: String,
    pub title: String,
    pub description: String,
    pub params: Vec<Param>,
    pub reads: Vec<String>,
    pub sql: String,
}

fn is_id(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_param(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Parse one investigation file; every problem found is returned.
pub fn parse(file: &str, text: &str) -> Result<Investigation, Vec<LoadError>> {
    let mut q = QueryFile::parse(file, text, REQUIRED_KEYS, &[]);
    let id = q.check_id(is_id, "lowercase-with-dashes");
    for k in ["title", "description", "reads"] {
        let (line, v) = q.get(k);
        if q.has(k) && v.is_empty() {
            q.error(line, format!("empty {k}"));
        }
    }
    let (line, params_text) = q.get("params");
    let mut params: Vec<Param> = Vec::new();
    for p in list(&params_text) {
        let (name, default) = match p.split_once('=') {
            Some((n, d)) => (n.trim(), Some(d.trim().to_string())),
            None => (p.as_str(), None),
        };
        if !is_param(name) || RESERVED_PARAMS.contains(&name) {
            q.error(
                line,
                format!("bad parameter {p:?}: want name (required) or name=default"),
            );
        } else if params.iter().any(|x| x.name == name) {
            q.error(line, format!("parameter {name:?} given twice"));
        } else {
            params.push(Param {
                name: name.to_string(),
                default,
            });
        }
    }
    if !q.sql.is_empty() && sql::split_statements(&q.sql).len() != 1 {
        q.file_error("more than one statement".to_string());
    }
    if !q.errors.is_empty() {
        return Err(q.errors);
    }
    Ok(Investigation {
        file: file.to_string(),
        id,
        title: q.get("title").1,
        description: q.get("description").1,
        params,
        reads: list(&q.get("reads").1),
        sql: q.sql,
    })
}

/// Investigations that loaded, and every error met.
#[derive(Debug)]
pub struct Loaded {
    pub investigations: Vec<Investigation>,
    pub errors: Vec<LoadError>,
}

fn load_all(files: impl Iterator<Item = (String, String)>) -> Loaded {
    let mut investigations: Vec<Investigation> = Vec::new();
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for (file, text) in files {
        match parse(&file, &text) {
            Ok(i) if !seen.insert(i.id.clone()) => errors.push(LoadError::File {
                file,
                message: format!("duplicate id {:?}", i.id),
            }),
            Ok(i) => investigations.push(i),
            Err(e) => errors.extend(e),
        }
    }
    Loaded {
        investigations,
        errors,
    }
}

/// The embedded investigations.
pub fn builtin() -> Loaded {
    load_all(
        BUILTIN
            .iter()
            .map(|(name, text)| (format!("queries/investigations/{name}"), text.to_string())),
    )
}

/// Every `.sql` file of `dir`, in name order (the lint test's view of the directory).
pub fn load_dir(dir: &Path) -> Result<Loaded> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for p in paths {
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        files.push((p.display().to_string(), text));
    }
    Ok(load_all(files.into_iter()))
}

/// What one run of an investigation is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Parameter values by name; missing optional ones take their defaults.
    pub params: BTreeMap<String, String>,
    /// Only rows at or after this time (anything DuckDB casts to TIMESTAMP, UTC).
    pub since: Option<String>,
    /// Only rows before this time.
    pub until: Option<String>,
}

/// Set the DuckDB variables `inv` reads: its parameters, `since` and `until`.
pub fn set_variables(store: &Store, inv: &Investigation, opts: &RunOptions) -> Result<()> {
    let conn = store.conn();
    for (flag, value) in [("since", &opts.since), ("until", &opts.until)] {
        let v = match value {
            Some(v) => {
                store.check_time(&format!("--{flag}"), Some(v))?;
                sql_string(v)
            }
            None => "NULL".to_string(),
        };
        conn.execute_batch(&format!("SET VARIABLE {flag} = {v}"))?;
    }
    for p in &inv.params {
        let value = opts.params.get(&p.name).or(p.default.as_ref());
        let Some(value) = value else {
            anyhow::bail!("{}: --{} is required", inv.id, p.flag());
        };
        // Quoted: a parameter may be named like a keyword (`limit`).
        conn.execute_batch(&format!(
            "SET VARIABLE \"{}\" = {}",
            p.name,
            sql_string(value)
        ))?;
    }
    for name in opts.params.keys() {
        anyhow::ensure!(
            inv.params.iter().any(|p| &p.name == name),
            "{}: no parameter {name:?}",
            inv.id
        );
    }
    Ok(())
}

/// Run one investigation and print its rows.
pub fn run(
    store: &Store,
    inv: &Investigation,
    opts: &RunOptions,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    set_variables(store, inv, opts)?;
    sql::run(store, &inv.sql, format, out).with_context(|| format!("{} failed", inv.file))
}

/// Prepare (not run) one investigation against the store's schema, with placeholder parameters.
pub fn prepare(store: &Store, inv: &Investigation) -> Result<()> {
    let opts = RunOptions {
        params: inv
            .params
            .iter()
            .map(|p| (p.name.clone(), p.default.clone().unwrap_or_default()))
            .collect(),
        ..RunOptions::default()
    };
    set_variables(store, inv, &opts)?;
    store
        .conn()
        .prepare(&inv.sql)
        .with_context(|| format!("{}: does not prepare", inv.file))?;
    Ok(())
}

/// `credtrail query --list`.
pub fn print_list(loaded: &Loaded, out: &mut dyn Write) -> Result<()> {
    for inv in &loaded.investigations {
        let flags: Vec<String> = inv
            .params
            .iter()
            .map(|p| match &p.default {
                None => format!("--{} {}", p.flag(), p.name.to_uppercase()),
                Some(d) => format!("[--{} {}, default {d:?}]", p.flag(), p.name.to_uppercase()),
            })
            .collect();
        writeln!(out, "{:<14} {}", inv.id, inv.title)?;
        writeln!(
            out,
            "{:<14} credtrail query {} {}",
            "",
            inv.id,
            flags.join(" ")
        )?;
    }
    writeln!(
        out,
        "\nEvery investigation also takes --since, --until and --format table|csv|json."
    )?;
    Ok(())
}

/// `credtrail query`: its subcommands are built from the embedded investigations' headers, so a
/// new `.sql` file is a new subcommand with its own flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryArgs {
    /// `--list`: print the investigations.
    pub list: bool,
    /// The investigation to run and its options.
    pub run: Option<(String, RunOptions, Format)>,
}

fn subcommand(inv: &Investigation) -> clap::Command {
    let mut cmd = clap::Command::new(inv.id.clone())
        .about(inv.title.clone())
        .long_about(format!("{}\n\n{}", inv.title, inv.description));
    for p in &inv.params {
        let help = match &p.default {
            None => format!("Value of `{}` (required).", p.name),
            Some(d) => format!("Value of `{}` (default {d:?}).", p.name),
        };
        cmd = cmd.arg(
            Arg::new(p.name.clone())
                .long(p.flag())
                .value_name(p.name.to_uppercase())
                .required(p.default.is_none())
                .help(help),
        );
    }
    cmd.arg(
        Arg::new("since")
            .long("since")
            .value_name("TIME")
            .help("Only rows at or after this time (e.g. 2026-11-20T13:00:00Z)."),
    )
    .arg(
        Arg::new("until")
            .long("until")
            .value_name("TIME")
            .help("Only rows before this time."),
    )
    .arg(
        Arg::new("format")
            .long("format")
            .value_name("FORMAT")
            .value_parser(clap::builder::EnumValueParser::<Format>::new())
            .default_value("table")
            .help("Output format."),
    )
}

impl clap::Args for QueryArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let mut cmd = cmd
            .arg(
                Arg::new("list")
                    .long("list")
                    .action(ArgAction::SetTrue)
                    .help("List the investigations and their flags."),
            )
            .args_conflicts_with_subcommands(true);
        for inv in builtin().investigations {
            cmd = cmd.subcommand(subcommand(&inv));
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for QueryArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let list = m.get_flag("list");
        let run = match m.subcommand() {
            None => None,
            Some((id, sub)) => {
                let loaded = builtin();
                let inv = loaded
                    .investigations
                    .iter()
                    .find(|i| i.id == id)
                    .ok_or_else(|| {
                        clap::Error::raw(
                            clap::error::ErrorKind::InvalidSubcommand,
                            format!("no investigation {id:?}\n"),
                        )
                    })?;
                let params = inv
                    .params
                    .iter()
                    .filter_map(|p| {
                        sub.get_one::<String>(&p.name)
                            .map(|v| (p.name.clone(), v.clone()))
                    })
                    .collect();
                let opts = RunOptions {
                    params,
                    since: sub.get_one::<String>("since").cloned(),
                    until: sub.get_one::<String>("until").cloned(),
                };
                let format = sub
                    .get_one::<Format>("format")
                    .copied()
                    .unwrap_or(Format::Table);
                Some((id.to_string(), opts, format))
            }
        };
        Ok(QueryArgs { list, run })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

/// Run `credtrail query`.
pub fn command(store_path: &Path, a: &QueryArgs, out: &mut dyn Write) -> Result<()> {
    let loaded = builtin();
    for e in &loaded.errors {
        eprintln!("warning: skipped investigation: {e}");
    }
    let Some((id, opts, format)) = &a.run else {
        return print_list(&loaded, out);
    };
    let inv = loaded
        .investigations
        .iter()
        .find(|i| &i.id == id)
        .with_context(|| format!("no investigation {id:?} (see `credtrail query --list`)"))?;
    let store = Store::open_read_only(store_path)?;
    run(&store, inv, opts, *format, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Args as _;

    fn parse_args(args: &[&str]) -> Result<QueryArgs, clap::Error> {
        let cmd = QueryArgs::augment_args(clap::Command::new("query"));
        let m = cmd.try_get_matches_from(std::iter::once("query").chain(args.iter().copied()))?;
        QueryArgs::from_arg_matches(&m)
    }

    #[test]
    fn flags_come_from_the_header_params() {
        let a = parse_args(&[
            "key-history",
            "--access-key-id",
            "ASIAX",
            "--format",
            "csv",
            "--until",
            "2026-11-20T13:00:00Z",
        ])
        .unwrap();
        let (id, opts, format) = a.run.unwrap();
        assert_eq!(id, "key-history");
        assert_eq!(opts.params["access_key_id"], "ASIAX");
        assert_eq!(opts.until.as_deref(), Some("2026-11-20T13:00:00Z"));
        assert_eq!(opts.since, None);
        assert_eq!(format, Format::Csv);
        assert!(parse_args(&["--list"]).unwrap().list);
        assert_eq!(parse_args(&[]).unwrap(), QueryArgs::default());
        // A required flag, another investigation's flag, --list with a subcommand.
        assert!(parse_args(&["key-history"]).is_err());
        assert!(parse_args(&["key-history", "--access-key-id", "A", "--task", "t"]).is_err());
        assert!(parse_args(&["--list", "role-usage", "--role", "r"]).is_err());
    }

    #[test]
    fn defaults_and_required_params() {
        let inv = parse(
            "x/demo.sql",
            "-- id: demo\n-- title: t\n-- description: d\n-- params: who, limit=5\n-- reads: calls\n\
             SELECT getvariable('who') AS who, getvariable('limit')::INT AS n, \
             getvariable('since') AS s;\n",
        )
        .unwrap();
        assert_eq!(
            inv.params,
            [
                Param {
                    name: "who".into(),
                    default: None
                },
                Param {
                    name: "limit".into(),
                    default: Some("5".into())
                }
            ]
        );
        let store = Store::open_in_memory().unwrap();
        let mut out = Vec::new();
        let err = run(&store, &inv, &RunOptions::default(), Format::Json, &mut out).unwrap_err();
        assert_eq!(err.to_string(), "demo: --who is required");
        let mut opts = RunOptions::default();
        opts.params.insert("who".into(), "it's me".into());
        run(&store, &inv, &opts, Format::Json, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{"who": "it's me", "n": 5, "s": null}])
        );
        opts.params.insert("nope".into(), "1".into());
        assert!(run(&store, &inv, &opts, Format::Json, &mut Vec::new()).is_err());
    }
}
