//! Typed reads of TOML items that report a wrong type as a located error instead of failing.

use std::ops::Range;

use toml_edit::{Array, Item, TableLike, Value};

use super::diag::Sink;

/// One `key = value` of a table (a `[table]`, an inline `{ … }` or a dotted key), with the key's span.
pub(crate) struct Entry<'d> {
    pub key: &'d str,
    pub key_span: Option<Range<usize>>,
    pub item: &'d Item,
}

/// The entries of a table-like item in file order; `None` when the item is not a table.
pub(crate) fn entries(item: &Item) -> Option<Vec<Entry<'_>>> {
    Some(table_entries(item.as_table_like()?))
}

/// The entries of a table in file order.
pub(crate) fn table_entries(table: &dyn TableLike) -> Vec<Entry<'_>> {
    table.iter().map(|(key, item)| Entry { key, key_span: table.key(key).and_then(|k| k.span()), item }).collect()
}

/// Where a value is; a value without a span of its own (an implicit table) falls back to its key.
pub(crate) fn span_of(item: &Item, key_span: &Option<Range<usize>>) -> Option<Range<usize>> {
    item.span().or_else(|| key_span.clone())
}

fn found(item: &Item) -> &'static str {
    match item {
        Item::Value(v) => found_value(v),
        Item::ArrayOfTables(_) => "an array",
        Item::Table(_) => "a table",
        Item::None => "nothing",
    }
}

pub(crate) fn found_value(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

/// Reports "`key` must be WANT, found …" at the value.
pub(crate) fn wrong_type(sink: &mut Sink<'_>, e: &Entry<'_>, want: &str) {
    sink.error(
        span_of(e.item, &e.key_span),
        format!("wrong type: `{}` must be {want}, found {}", e.key, found(e.item)),
    );
}

pub(crate) fn string<'d>(sink: &mut Sink<'_>, e: &Entry<'d>) -> Option<&'d str> {
    match e.item {
        Item::Value(Value::String(s)) => Some(s.value().as_str()),
        _ => {
            wrong_type(sink, e, "a string");
            None
        }
    }
}

/// An integer or a float (TOML's `inf` included), as f64.
pub(crate) fn number(sink: &mut Sink<'_>, e: &Entry<'_>) -> Option<f64> {
    match e.item {
        Item::Value(Value::Integer(i)) => Some(*i.value() as f64),
        Item::Value(Value::Float(f)) => Some(*f.value()),
        _ => {
            wrong_type(sink, e, "a number");
            None
        }
    }
}

pub(crate) fn integer(sink: &mut Sink<'_>, e: &Entry<'_>) -> Option<i64> {
    match e.item {
        Item::Value(Value::Integer(i)) => Some(*i.value()),
        _ => {
            wrong_type(sink, e, "an integer");
            None
        }
    }
}

pub(crate) fn boolean(sink: &mut Sink<'_>, e: &Entry<'_>) -> Option<bool> {
    match e.item {
        Item::Value(Value::Boolean(b)) => Some(*b.value()),
        _ => {
            wrong_type(sink, e, "true or false");
            None
        }
    }
}

pub(crate) fn array<'d>(sink: &mut Sink<'_>, e: &Entry<'d>) -> Option<&'d Array> {
    match e.item {
        Item::Value(Value::Array(a)) => Some(a),
        _ => {
            wrong_type(sink, e, "an array");
            None
        }
    }
}

/// A string and where it was written.
pub(crate) type Named<'d> = (&'d str, Option<Range<usize>>);

/// The strings of an array of strings with their spans; a non-string element is reported and skipped.
pub(crate) fn strings<'d>(sink: &mut Sink<'_>, e: &Entry<'d>) -> Option<Vec<Named<'d>>> {
    let a = array(sink, e)?;
    let mut out = Vec::with_capacity(a.len());
    for v in a.iter() {
        match v {
            Value::String(s) => out.push((s.value().as_str(), v.span())),
            _ => sink.error(
                v.span(),
                format!("wrong type: the elements of `{}` must be strings, found {}", e.key, found_value(v)),
            ),
        }
    }
    Some(out)
}
