//! The expected-answer JSON format of the shared fixtures.

use serde_json::{Value, json};

use crate::ParsedDocument;

/// Render a parsed document in the fixtures' expected-answer format:
/// `{"source", "document": {kind, number, symbol, issuer, place, issue_date,
/// issue_date_text, subject, signer{name,title,capacity}}, "tasks": [{ref, lead,
/// coordinating, due, due_text, recurrence, text, confidence, warnings}],
/// "recipients", "warnings"}`. Dates are `YYYY-MM-DD`; recurrences are
/// `{"every":"month","day":15}`, `{"every":"year","month":12,"day":25}` or
/// `{"every":"quarter","day":20,"month_in_quarter":3}`.
pub fn to_fixture_json(source: &str, doc: &ParsedDocument) -> Value {
    let d = &doc.document;
    let signer = d
        .signer
        .as_ref()
        .map(|s| json!({"name": s.name, "title": s.title, "capacity": s.capacity}));
    let tasks: Vec<Value> = doc
        .tasks
        .iter()
        .map(|t| {
            json!({
                "ref": t.reference,
                "lead": t.lead,
                "coordinating": t.coordinating,
                "due": t.due.map(|x| x.format("%Y-%m-%d").to_string()),
                "due_text": t.due_text,
                "recurrence": t.recurrence.map(|r| serde_json::to_value(r).unwrap_or(Value::Null)),
                "text": t.text,
                "confidence": (f64::from(t.confidence) * 100.0).round() / 100.0,
                "warnings": t.warnings,
            })
        })
        .collect();
    json!({
        "source": source,
        "document": {
            "kind": d.kind.as_str(),
            "number": d.number,
            "symbol": d.symbol,
            "issuer": d.issuer,
            "place": d.place,
            "issue_date": d.issue_date.map(|x| x.format("%Y-%m-%d").to_string()),
            "issue_date_text": d.issue_date_text,
            "subject": d.subject,
            "signer": signer,
        },
        "tasks": tasks,
        "recipients": doc.recipients,
        "warnings": doc.warnings,
    })
}
