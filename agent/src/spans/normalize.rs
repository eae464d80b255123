//! Grouping statements and URLs that differ only in their values: `WHERE id = 42` and
//! `WHERE id = 7` are one statement run twice, which is what makes an N+1 pattern visible.

/// Replaces literals with `?`, collapses `IN (…)` lists, `ARRAY[…]` and white space.
///
/// `SELECT * FROM t WHERE a = 'x' AND b IN (1, 2, 3)` becomes `SELECT * FROM t WHERE a = ? AND b IN (?)`.
///
/// Postgres: casts keep their type (`$1::text[]` becomes `?::text[]`), dollar-quoted strings
/// (`$$…$$`, `$tag$…$tag$`) and escape strings (`E'it\'s'`) are literals like any other, and
/// double-quoted identifiers stay as written.
pub fn statement(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut last_word_char = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                // An escape string's `E` prefix is part of the literal.
                let escapes = out.ends_with(['E', 'e'])
                    && !out[..out.len() - 1].ends_with(|c: char| c.is_alphanumeric() || c == '_');
                if escapes {
                    out.pop();
                }
                // A string literal, with '' as an escaped quote (and \' in an escape string).
                while let Some(d) = chars.next() {
                    if escapes && d == '\\' {
                        chars.next();
                    } else if d == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push('?');
                last_word_char = false;
            }
            '"' => {
                // A quoted identifier, kept as written.
                out.push('"');
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '"' {
                        break;
                    }
                }
                last_word_char = true;
            }
            ':' if chars.peek() == Some(&':') => {
                // A Postgres cast: the type name that follows is kept.
                chars.next();
                out.push_str("::");
                last_word_char = false;
            }
            '$' if !last_word_char && dollar_quote(&mut chars) => {
                out.push('?');
                last_word_char = false;
            }
            '$' | '?' | ':' if !last_word_char && is_parameter(c, chars.peek()) => {
                // Bind parameters: ?, ?1, $1, :name.
                while chars
                    .peek()
                    .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_')
                {
                    chars.next();
                }
                out.push('?');
                last_word_char = false;
            }
            d if d.is_ascii_digit() && !last_word_char => {
                while chars
                    .peek()
                    .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '.')
                {
                    chars.next();
                }
                out.push('?');
                last_word_char = false;
            }
            w if w.is_whitespace() => {
                while chars.peek().is_some_and(|d| d.is_whitespace()) {
                    chars.next();
                }
                if !out.is_empty() {
                    out.push(' ');
                }
                last_word_char = false;
            }
            other => {
                out.push(other);
                last_word_char = other.is_alphanumeric() || other == '_';
            }
        }
    }
    let out = collapse_lists(out.trim_end(), '(', ')');
    collapse_lists(&out, '[', ']')
}

/// `?`, `$` and `:` start a parameter when a name or number follows (`?` also alone); a `:`
/// before anything else is an operator or a slice (`a[1:2]`).
fn is_parameter(start: char, next: Option<&char>) -> bool {
    match start {
        '?' => true,
        '$' => next.is_some_and(char::is_ascii_digit),
        _ => next.is_some_and(|d| d.is_ascii_alphabetic() || *d == '_'),
    }
}

/// After a `$`: if a dollar-quoted string starts here (`$$…$$` or `$tag$…$tag$`), consumes it up
/// to its closing tag (or the end) and returns true; otherwise consumes nothing.
fn dollar_quote(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> bool {
    let mut ahead = chars.clone();
    let mut tag = String::from("$");
    if ahead.peek().is_some_and(|c| c.is_alphabetic() || *c == '_') {
        while let Some(c) = ahead.next_if(|c| c.is_alphanumeric() || *c == '_') {
            tag.push(c);
        }
    }
    if ahead.next() != Some('$') {
        return false;
    }
    tag.push('$');
    let mut body = String::new();
    for c in ahead.by_ref() {
        body.push(c);
        if body.ends_with(&tag) {
            break;
        }
    }
    *chars = ahead;
    true
}

/// `IN (?, ?, ?)`, `VALUES (?, ?), (?, ?)` and `ARRAY[?, ?]` become `IN (?)`, `VALUES (?)` and
/// `ARRAY[?]`.
fn collapse_lists(s: &str, open: char, close: char) -> String {
    let repeated = format!("{close}, {open}");
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(open) {
        out.push_str(&rest[..at + 1]);
        rest = &rest[at + 1..];
        let end = rest.find(close).unwrap_or(rest.len());
        let inner = &rest[..end];
        if !inner.is_empty() && inner.split(',').all(|part| part.trim() == "?") {
            out.push('?');
            rest = &rest[end..];
            // Repeated tuples of placeholders: `(?), (?)`.
            while let Some(more) = rest.strip_prefix(repeated.as_str()) {
                let end = more.find(close).unwrap_or(more.len());
                if more[..end].split(',').all(|p| p.trim() == "?") {
                    rest = &more[end..];
                } else {
                    break;
                }
            }
        }
    }
    out.push_str(rest);
    out
}

/// Replaces path segments that are ids (numbers, UUIDs, long hex) with `{id}` and drops query
/// values: `http://h/users/42/orders?page=3` becomes `http://h/users/{id}/orders?page=?`.
pub fn url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme_host, path) = match before_query.find("://") {
        Some(i) => {
            let after = &before_query[i + 3..];
            let slash = after.find('/').map_or(before_query.len(), |j| i + 3 + j);
            before_query.split_at(slash)
        }
        None => ("", before_query),
    };
    let mut out = String::from(scheme_host);
    let segments: Vec<String> = path
        .split('/')
        .map(|segment| {
            if is_id(segment) {
                "{id}".to_string()
            } else {
                segment.to_string()
            }
        })
        .collect();
    out.push_str(&segments.join("/"));
    if let Some(query) = query {
        let keys: Vec<&str> = query
            .split('&')
            .map(|pair| pair.split_once('=').map_or(pair, |(k, _)| k))
            .collect();
        out.push('?');
        out.push_str(
            &keys
                .iter()
                .map(|k| format!("{k}=?"))
                .collect::<Vec<_>>()
                .join("&"),
        );
    }
    out
}

fn is_id(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    let digits = segment.bytes().all(|b| b.is_ascii_digit());
    let hex = segment.len() >= 16 && segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    digits || hex
}

/// The columns a statement's WHERE clause compares, for the slow-query hint.
pub fn where_columns(sql: &str) -> Vec<String> {
    const OPERATORS: &[&str] = &["LIKE", "IN", "IS", "BETWEEN", "GLOB", "NOT"];
    let upper = sql.to_ascii_uppercase();
    let Some(start) = upper.find(" WHERE ") else {
        return Vec::new();
    };
    let end = [" ORDER BY ", " GROUP BY ", " LIMIT ", " HAVING "]
        .iter()
        .filter_map(|k| upper[start..].find(k).map(|i| start + i))
        .min()
        .unwrap_or(sql.len());
    // Split comparison operators off so that `a=?` reads as `a`, `=`, `?`.
    let spaced: String = sql[start + 7..end]
        .chars()
        .flat_map(|c| match c {
            '=' | '<' | '>' | '!' | '(' | ')' | ',' => vec![' ', c, ' '],
            c => vec![c],
        })
        .collect();
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut columns: Vec<String> = Vec::new();
    for pair in tokens.windows(2) {
        let (word, next) = (pair[0], pair[1]);
        let compared = matches!(next, "=" | "<" | ">" | "!")
            || OPERATORS.contains(&next.to_ascii_uppercase().as_str());
        let identifier = word.starts_with(|c: char| c.is_alphabetic() || c == '_')
            && word
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.');
        let keyword = ["AND", "OR", "NOT", "NULL"].contains(&word.to_ascii_uppercase().as_str());
        if compared && identifier && !keyword && !columns.iter().any(|c| c == word) {
            columns.push(word.to_string());
        }
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_lose_their_values() {
        assert_eq!(
            statement("SELECT * FROM lines  WHERE order_id = 42 AND note = 'it''s'"),
            "SELECT * FROM lines WHERE order_id = ? AND note = ?"
        );
        assert_eq!(
            statement("select id from t where a in (1, 2, 3) and b = ?1 and c = $2 and d = :name"),
            "select id from t where a in (?) and b = ? and c = ? and d = ?"
        );
        assert_eq!(
            statement("INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"),
            "INSERT INTO t (a, b) VALUES (?)"
        );
        // Digits inside identifiers stay.
        assert_eq!(statement("SELECT col1 FROM t2"), "SELECT col1 FROM t2");
        assert_eq!(statement("SELECT 1.5e3"), "SELECT ?");
    }

    #[test]
    fn postgres_casts_arrays_and_any_keep_their_shape() {
        assert_eq!(
            statement("SELECT * FROM t WHERE tags && $1::text[] AND id = ANY($2)"),
            "SELECT * FROM t WHERE tags && ?::text[] AND id = ANY(?)"
        );
        assert_eq!(
            statement("SELECT $1::int4, '2024-01-01'::timestamp with time zone, x::numeric(10, 2)"),
            "SELECT ?::int4, ?::timestamp with time zone, x::numeric(?)"
        );
        assert_eq!(
            statement("SELECT * FROM t WHERE id = ANY(ARRAY[1, 2, 3]) AND a[1:2] = '{1,2}'"),
            "SELECT * FROM t WHERE id = ANY(ARRAY[?]) AND a[?:?] = ?"
        );
        assert_eq!(
            statement("SELECT * FROM t WHERE id = ANY(ARRAY[7])"),
            statement("SELECT * FROM t WHERE id = ANY(ARRAY[7, 8, 9, 10])")
        );
        assert_eq!(
            statement(r#"SELECT "Col1", "2fa" FROM "Order" WHERE "Col1" = 3"#),
            r#"SELECT "Col1", "2fa" FROM "Order" WHERE "Col1" = ?"#
        );
    }

    #[test]
    fn postgres_dollar_quoted_and_escape_strings_are_literals() {
        assert_eq!(
            statement("SELECT $$it's a $1 'string'$$, $2"),
            "SELECT ?, ?"
        );
        assert_eq!(
            statement("SELECT $body$ a $$ b $body$ || $t1$x$t1$ FROM t"),
            "SELECT ? || ? FROM t"
        );
        assert_eq!(
            statement(r"SELECT E'it\'s', e'\\', name FROM t WHERE note = 'E'"),
            "SELECT ?, ?, name FROM t WHERE note = ?"
        );
        // A word ending in E before a string is not an escape prefix.
        assert_eq!(
            statement(r"SELECT date '2024\', 'x' FROM t"),
            "SELECT date ?, ? FROM t"
        );
        // Unterminated quotes end the statement instead of panicking.
        assert_eq!(statement("SELECT $$never closed"), "SELECT ?");
        assert_eq!(statement("SELECT $tag$never closed"), "SELECT ?");
        assert_eq!(statement("SELECT a$b FROM t"), "SELECT a$b FROM t");
    }

    #[test]
    fn urls_lose_their_ids_and_query_values() {
        assert_eq!(
            url("http://127.0.0.1:9000/inventory/42?fields=all&x=1"),
            "http://127.0.0.1:9000/inventory/{id}?fields=?&x=?"
        );
        assert_eq!(
            url("/users/3fa85f64-5717-4562-b3fc-2c963f66afa6/orders"),
            "/users/{id}/orders"
        );
        assert_eq!(url("http://h"), "http://h");
    }

    #[test]
    fn where_columns_are_found() {
        assert_eq!(
            where_columns(
                "SELECT * FROM orders WHERE customer_email = ? AND status IN (?) ORDER BY id"
            ),
            ["customer_email", "status"]
        );
        assert_eq!(
            where_columns("SELECT * FROM t WHERE a.b=? OR c > ?"),
            ["a.b", "c"]
        );
        assert!(where_columns("SELECT 1").is_empty());
    }
}
