//! Typed TOML configuration with errors that say where: every failure names the file, the line
//! and column, and the dotted field path (`data.transactions`), so an operator can fix a config
//! without reading code.
//!
//! Owns loading and locating only. The config *types* live with the crate that uses them
//! (`fedprof-node`, `fedprof-coordinator`, ...) and must use `#[serde(deny_unknown_fields)]`,
//! so a misspelt key is an error rather than a silently ignored setting.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A configuration problem, located as precisely as possible.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read, but a field is missing, unknown, of the wrong type or invalid.
    #[error("{location}: {message}")]
    Invalid {
        /// File, line, column and field.
        location: Location,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// Where the problem is, when it is in the file's content.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { location, .. } => Some(location),
        }
    }
}

/// A place in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub path: PathBuf,
    /// 1-based line and column, when known.
    pub line_col: Option<(usize, usize)>,
    /// The dotted field path, or empty for the whole document.
    pub field: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, col)) = self.line_col {
            write!(f, ":{line}:{col}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        Ok(())
    }
}

/// A config file's text, kept so that later checks (a path that does not exist, a value out of
/// range) can still be reported with a line number.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    text: String,
}

impl ConfigFile {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(ConfigFile {
            path: path.to_owned(),
            text,
        })
    }

    /// A config held in memory, reported under the name `path`.
    pub fn from_text(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        ConfigFile {
            path: path.into(),
            text: text.into(),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory relative paths in this file are resolved against.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Resolves a path written in this file: relative paths are relative to the file's
    /// directory, not to the process's working directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_relative() {
            self.dir().join(p)
        } else {
            p.to_owned()
        }
    }

    /// Deserializes the whole file into `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let de = toml::Deserializer::parse(&self.text).map_err(|e| self.toml_error(&e, ""))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            self.toml_error(e.inner(), &field)
        })
    }

    fn toml_error(&self, e: &toml::de::Error, field: &str) -> ConfigError {
        let line_col = e
            .span()
            .map(|s| self.line_col(s.start))
            .or_else(|| self.locate(field));
        ConfigError::Invalid {
            location: Location {
                path: self.path.clone(),
                line_col,
                field: field.to_owned(),
            },
            message: e.message().trim().to_owned(),
        }
    }

    /// An error about `field` (dotted path) found after parsing, located in the file when the
    /// field is written there.
    pub fn error(&self, field: &str, message: impl fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            location: Location {
                path: self.path.clone(),
                line_col: self.locate(field),
                field: field.to_owned(),
            },
            message: message.to_string(),
        }
    }

    /// Checks that the file named by `field` (already resolved with [`ConfigFile::resolve`])
    /// exists and is a regular file.
    pub fn require_file(&self, field: &str, path: &Path) -> Result<(), ConfigError> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(self.error(field, format!("{} is not a regular file", path.display()))),
            Err(e) => Err(self.error(field, format!("cannot use {}: {e}", path.display()))),
        }
    }

    /// Line and column of the value of a dotted field path, if present.
    fn locate(&self, field: &str) -> Option<(usize, usize)> {
        use toml::de::{DeTable, DeValue};
        if field.is_empty() {
            return None;
        }
        let root = DeTable::parse(&self.text).ok()?;
        let mut table: &DeTable<'_> = root.get_ref();
        let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
        let mut span = None;
        for key in field.split('.') {
            let value = match (array, key.parse::<usize>()) {
                (Some(items), Ok(i)) => items.get(i)?,
                _ => table
                    .iter()
                    .find(|(k, _)| k.get_ref().as_ref() == key)
                    .map(|(_, v)| v)?,
            };
            span = Some(value.span());
            array = None;
            match value.get_ref() {
                DeValue::Table(t) => table = t,
                DeValue::Array(a) => array = Some(a.as_ref()),
                _ => {}
            }
        }
        span.map(|s| self.line_col(s.start))
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(&self.text);
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        data: Data,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Data {
        file: PathBuf,
        #[serde(default)]
        rows: u32,
    }

    fn err(text: &str) -> ConfigError {
        ConfigFile::from_text("/etc/x.toml", text)
            .parse::<Sample>()
            .unwrap_err()
    }

    #[test]
    fn parses_valid_config() {
        let f = ConfigFile::from_text("/etc/x.toml", "name = \"a\"\n[data]\nfile = \"t.csv\"\n");
        let s: Sample = f.parse().unwrap();
        assert_eq!(s.name, "a");
        assert_eq!(s.data.rows, 0);
        assert_eq!(f.resolve(&s.data.file), PathBuf::from("/etc/t.csv"));
    }

    #[test]
    fn unknown_key_names_file_line_and_field() {
        let e = err("name = \"a\"\n[data]\nfile = \"t.csv\"\nrowz = 3\n");
        let msg = e.to_string();
        assert!(msg.starts_with("/etc/x.toml:4:1: field `data"), "{msg}");
        assert!(msg.contains("rowz"), "{msg}");
    }

    #[test]
    fn wrong_type_names_file_line_and_field() {
        let e = err("name = \"a\"\n[data]\nfile = \"t.csv\"\nrows = \"many\"\n");
        let loc = e.location().unwrap();
        assert_eq!(loc.field, "data.rows");
        assert_eq!(loc.line_col.map(|(l, _)| l), Some(4));
        assert!(e.to_string().contains("invalid type"), "{e}");
    }

    #[test]
    fn missing_field_is_named() {
        let e = err("name = \"a\"\n[data]\nrows = 1\n");
        assert!(e.to_string().contains("missing field `file`"), "{e}");
        assert_eq!(e.location().unwrap().field, "data");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = err("name = \"a\n");
        assert_eq!(e.location().unwrap().line_col.map(|(l, _)| l), Some(1));
    }

    #[test]
    fn later_checks_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "name = \"a\"\n\n[data]\nfile = \"missing.csv\"\n").unwrap();
        let f = ConfigFile::read(&path).unwrap();
        let s: Sample = f.parse().unwrap();
        let e = f
            .require_file("data.file", &f.resolve(&s.data.file))
            .unwrap_err();
        let loc = e.location().unwrap();
        assert_eq!(loc.line_col, Some((4, 8)));
        assert!(e.to_string().contains("missing.csv"), "{e}");
    }

    #[test]
    fn unreadable_file_is_named() {
        let e = ConfigFile::read(Path::new("/nonexistent/fedprof.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/fedprof.toml"), "{e}");
    }
}
