//! Migration files: `V<to>__<description>.sql` in a folder named for the schema id
//! (`migrations/sensorData/V2__add_features.sql`), Flyway's naming. A file migrates from the
//! version of the file before it in the folder (version 1 for the first) to its own.

use sha2::{Digest, Sha256};

use crate::error::SqlError;

/// One migration file, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFile {
    /// Where it was read from (a path or a URL), for messages.
    pub location: String,
    /// The schema id: the folder's name.
    pub schema: String,
    /// The version it reads.
    pub from: u32,
    /// The version it writes (`V<to>`).
    pub to: u32,
    /// The description after `__`.
    pub description: String,
    /// The query, as written.
    pub text: String,
}

impl MigrationFile {
    /// The query with comments dropped and whitespace collapsed, so a reformatted file keeps
    /// its checksum and any other edit changes it.
    pub fn normalized(&self) -> String {
        normalize(&self.text)
    }

    /// SHA-256 of the normalized query, hex: what the journal and `validate` compare.
    pub fn checksum(&self) -> String {
        let digest = Sha256::digest(self.normalized().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// `(to, description)` of a migration file name, `None` for a name of another shape (other
/// files in the folder are ignored, as Flyway does).
///
/// ```
/// assert_eq!(pqmigrate_sql::file_version("V2__add_features.sql"), Some((2, "add_features".to_string())));
/// assert_eq!(pqmigrate_sql::file_version("README.md"), None);
/// ```
pub fn file_version(name: &str) -> Option<(u32, String)> {
    let stem = name.strip_suffix(".sql")?.strip_prefix('V')?;
    let (version, description) = stem.split_once("__")?;
    let version: u32 = version.parse().ok().filter(|v| *v >= 2)?;
    Some((version, description.replace('_', " ").trim().replace(' ', "_")))
}

/// The files of one schema's folder, as `(name, text)`, in any order: ordered by version,
/// each reading the version of the one before. Two files for one version are refused.
///
/// # Errors
/// [`SqlError::File`] naming both files of a repeated version.
pub fn chain_files(location: &str, schema: &str, files: Vec<(String, String)>) -> Result<Vec<MigrationFile>, SqlError> {
    let mut versioned: Vec<(u32, String, String, String)> = files
        .into_iter()
        .filter_map(|(name, text)| file_version(&name).map(|(to, description)| (to, name, description, text)))
        .collect();
    versioned.sort_by_key(|(to, ..)| *to);
    let mut chain = Vec::with_capacity(versioned.len());
    let mut from = 1;
    for pair in versioned.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(SqlError::File {
                location: format!("{location}/{schema}/{}", pair[1].1),
                message: format!("version {} is also migrated to by {}", pair[1].0, pair[0].1),
            });
        }
    }
    for (to, name, description, text) in versioned {
        chain.push(MigrationFile {
            location: format!("{location}/{schema}/{name}"),
            schema: schema.to_string(),
            from,
            to,
            description,
            text,
        });
        from = to;
    }
    Ok(chain)
}

/// Drops `--` and `/* */` comments outside string literals and collapses whitespace outside
/// them to single spaces; a trailing `;` goes too.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut space = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for inner in chars.by_ref() {
                    if inner == '\n' {
                        break;
                    }
                }
                space = true;
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for inner in chars.by_ref() {
                    if last == '*' && inner == '/' {
                        break;
                    }
                    last = inner;
                }
                space = true;
            }
            c if c.is_whitespace() => space = true,
            c => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                out.push(c);
            }
        }
    }
    out.trim_end_matches(';').trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> MigrationFile {
        MigrationFile {
            location: "m/s/V2__x.sql".into(),
            schema: "s".into(),
            from: 1,
            to: 2,
            description: "x".into(),
            text: text.into(),
        }
    }

    #[test]
    fn reformatting_and_comments_keep_the_checksum_and_any_other_edit_changes_it() {
        let a = file("SELECT *, x + y AS s FROM input;");
        let b = file("-- the sum\nSELECT *,\n    x + y AS s /* of both */\nFROM   input\n");
        let c = file("SELECT *, x - y AS s FROM input");
        let d = file("SELECT *, 'a  b' AS s FROM input");
        let e = file("SELECT *, 'a b' AS s FROM input");
        assert_eq!(a.checksum(), b.checksum());
        assert_ne!(a.checksum(), c.checksum());
        assert_ne!(d.checksum(), e.checksum(), "spaces inside a literal count");
    }

    #[test]
    fn files_chain_by_version_and_a_repeated_version_is_refused() {
        let files = vec![
            ("V3__rename.sql".to_string(), "SELECT * FROM input".to_string()),
            ("notes.txt".to_string(), String::new()),
            ("V2__add.sql".to_string(), "SELECT * FROM input".to_string()),
        ];
        let chain = chain_files("m", "s", files).unwrap();
        let steps: Vec<_> = chain.iter().map(|f| (f.from, f.to, f.description.as_str())).collect();
        assert_eq!(steps, [(1, 2, "add"), (2, 3, "rename")]);

        let twice = vec![
            ("V2__add.sql".to_string(), String::new()),
            ("V2__other.sql".to_string(), String::new()),
        ];
        let err = chain_files("m", "s", twice).unwrap_err().to_string();
        assert!(
            err.contains("m/s/V2__other.sql") && err.contains("V2__add.sql"),
            "{err}"
        );
    }
}
