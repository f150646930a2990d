//! answers.toml: the student's written answers, read with the line of each
//! key so that a wrong answer is named with file:line.

use std::path::{Path, PathBuf};

use super::{Ctx, Problem};

/// A parsed answers.toml.
pub struct Answers {
    shown: PathBuf,
    text: String,
    table: toml::Table,
}

impl Answers {
    /// Reads `answers.toml` of the checked copy; a syntax error is a problem at its line.
    pub fn load(ctx: &Ctx) -> Result<Answers, Problem> {
        let shown = ctx.shown("answers.toml");
        let text = ctx.read("answers.toml").map_err(|e| Problem::at(&shown, None, e.to_string()))?;
        match text.parse::<toml::Table>() {
            Ok(table) => Ok(Answers { shown, text, table }),
            Err(e) => {
                let line = e.span().map(|s| line_of_offset(&text, s.start));
                Err(Problem::at(&shown, line, format!("not valid TOML: {}", e.message())))
            }
        }
    }

    /// [`Answers::load`], recorded as the check "answers.toml parses"; None
    /// when it failed, and the lab's other checks cannot run.
    pub fn load_checked(ctx: &Ctx, checks: &mut super::Checks) -> Option<Answers> {
        match Answers::load(ctx) {
            Ok(a) => {
                checks.record("answers.toml parses", Vec::new());
                Some(a)
            }
            Err(p) => {
                checks.record("answers.toml parses", vec![p]);
                None
            }
        }
    }

    /// The line where `key = ...` is written.
    #[must_use]
    pub fn line(&self, key: &str) -> Option<u32> {
        self.text
            .lines()
            .position(|l| l.trim_start().strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('=')))
            .map(|i| i as u32 + 1)
    }

    /// A problem at the line of `key`.
    #[must_use]
    pub fn problem(&self, key: &str, message: impl Into<String>) -> Problem {
        Problem::at(&self.shown, self.line(key), format!("{key}: {}", message.into()))
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// A non-empty string answer.
    pub fn string(&self, key: &str) -> Result<String, Problem> {
        match self.table.get(key) {
            None => Err(Problem::at(&self.shown, None, format!("`{key}` is missing (`leaklab lab reset` restores the starter)"))),
            Some(toml::Value::String(s)) if s.trim().is_empty() => Err(self.problem(key, "not answered yet")),
            Some(toml::Value::String(s)) => Ok(s.trim().to_string()),
            Some(other) => Err(self.problem(key, format!("must be a string in quotes, found {}", other.type_str()))),
        }
    }

    /// A positive number answer (integer or float).
    pub fn number(&self, key: &str) -> Result<f64, Problem> {
        let v = match self.table.get(key) {
            None => return Err(Problem::at(&self.shown, None, format!("`{key}` is missing (`leaklab lab reset` restores the starter)"))),
            Some(toml::Value::Integer(i)) => *i as f64,
            Some(toml::Value::Float(f)) => *f,
            Some(other) => return Err(self.problem(key, format!("must be a number, found {}", other.type_str()))),
        };
        if v <= 0.0 {
            return Err(self.problem(key, "not answered yet (give a positive number)"));
        }
        Ok(v)
    }
}

impl Answers {
    /// The `line` answer: a positive whole number.
    pub fn line_answer(&self) -> Result<u32, Problem> {
        match self.table.get("line") {
            None => Err(Problem::at(&self.shown, None, "`line` is missing (`leaklab lab reset` restores the starter)")),
            Some(toml::Value::Integer(i)) if *i > 0 && *i <= i64::from(u32::MAX) => Ok(*i as u32),
            Some(toml::Value::Integer(_)) => Err(self.problem("line", "not answered yet (a line number of the source)")),
            Some(other) => Err(self.problem("line", format!("must be a whole number, found {}", other.type_str()))),
        }
    }
}

fn line_of_offset(text: &str, offset: usize) -> u32 {
    text[..offset.min(text.len())].matches('\n').count() as u32 + 1
}
