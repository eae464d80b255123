//! The one error type of the viewer: what went wrong, with the file it concerns and, when reading,
//! the position (line, byte, or protobuf entry) where it went wrong, so that a user can open the
//! file at that place. Every error makes the command exit with status 2.

use std::fmt;

/// Where in a file reading failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// A 1-based line of text input.
    Line(usize),
    /// A 1-based line and column of JSON input.
    LineColumn(usize, usize),
    /// A 0-based byte offset into the file as given (compressed or not, as said in the message).
    Byte(u64),
    /// An entry of a structured format, such as `sample #12` of a pprof profile.
    Entry(String),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(line) => write!(f, "line {line}"),
            Position::LineColumn(line, column) => write!(f, "line {line}, column {column}"),
            Position::Byte(offset) => write!(f, "byte {offset}"),
            Position::Entry(entry) => f.write_str(entry),
        }
    }
}

/// A failure, shown as `FILE: POSITION: MESSAGE` (or `FILE: MESSAGE` without a position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The file, URL or stream the error concerns (`-` is shown as `<stdin>` or `<stdout>`).
    pub subject: String,
    pub position: Option<Position>,
    pub message: String,
}

impl Error {
    pub fn new(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            subject: subject.into(),
            position: None,
            message: message.into(),
        }
    }

    pub fn at(subject: impl Into<String>, position: Position, message: impl Into<String>) -> Self {
        Error {
            subject: subject.into(),
            position: Some(position),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.position {
            Some(position) => write!(f, "{}: {position}: {}", self.subject, self.message),
            None => write!(f, "{}: {}", self.subject, self.message),
        }
    }
}

impl std::error::Error for Error {}
