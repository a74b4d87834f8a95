//! Checks the parser against the shared real documents and their expected answers,
//! by the rules of `shared/fixtures/documents/README.md`:
//! * tasks are matched to expected ones in document order, by lead (folded with
//!   `fold_name`, as a set) and deadline — not by `ref`;
//! * every expected task with an explicit deadline must be found with its lead and date;
//! * no produced task may carry a deadline that the expected answer does not have;
//! * tasks without deadlines may differ by the README's margin (one task split in two
//!   or two merged), as long as the lead is right;
//! * header fields (kind, number, symbol, issuer, issue date, signer capacity) equal;
//! * a report yields no task with a deadline.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use dondoc_docparse::fold::fold_name;
use dondoc_docparse::{parse_text, to_fixture_json};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/fixtures/documents");
    assert!(
        dir.join("expected").is_dir(),
        "fixture folder missing: {} (expected shared/fixtures/documents beside the repository)",
        dir.display()
    );
    dir
}

fn lead_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).map(fold_name).collect())
        .unwrap_or_default()
}

fn show(t: &Value) -> String {
    format!(
        "{:<8} lead={} due={} ({})",
        t["ref"].as_str().unwrap_or(""),
        t["lead"],
        t["due"],
        t["due_text"]
    )
}

struct Outcome {
    report: String,
    failures: Vec<String>,
}

fn check(name: &str) -> Outcome {
    let dir = fixtures_dir();
    let text = std::fs::read_to_string(dir.join(format!("{name}.txt")))
        .unwrap_or_else(|e| panic!("cannot read {name}.txt: {e}"));
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected").join(format!("{name}.json")))
            .unwrap_or_else(|e| panic!("cannot read expected/{name}.json: {e}")),
    )
    .unwrap_or_else(|e| panic!("expected/{name}.json is not JSON: {e}"));
    let doc = parse_text(&text);
    let got = to_fixture_json(&format!("{name}.txt"), &doc);
    let mut failures = Vec::new();
    let mut report = String::new();

    // Header.
    let (gd, ed) = (&got["document"], &expected["document"]);
    for key in [
        "kind",
        "number",
        "symbol",
        "issue_date",
        "issue_date_text",
        "place",
    ] {
        if gd[key] != ed[key] {
            failures.push(format!(
                "document.{key}: got {} expected {}",
                gd[key], ed[key]
            ));
        }
    }
    let fold_opt = |v: &Value| v.as_str().map(fold_name);
    if fold_opt(&gd["issuer"]) != fold_opt(&ed["issuer"]) {
        failures.push(format!(
            "document.issuer: got {} expected {}",
            gd["issuer"], ed["issuer"]
        ));
    }
    if gd["signer"]["capacity"] != ed["signer"]["capacity"] {
        failures.push(format!(
            "document.signer.capacity: got {} expected {}",
            gd["signer"]["capacity"], ed["signer"]["capacity"]
        ));
    }
    if ed["signer"].is_object() {
        for key in ["name", "title"] {
            let (g, e) = (&gd["signer"][key], &ed["signer"][key]);
            if g.as_str().map(|s| s.to_lowercase()) != e.as_str().map(|s| s.to_lowercase()) {
                failures.push(format!("document.signer.{key}: got {g} expected {e}"));
            }
        }
    }

    // Tasks.
    let empty = Vec::new();
    let gt = got["tasks"].as_array().unwrap_or(&empty);
    let et = expected["tasks"].as_array().unwrap_or(&empty);
    let mut used = vec![false; gt.len()];
    let mut pos = 0usize;
    let mut margin = 0usize;
    let expected_dues: BTreeSet<(BTreeSet<String>, String)> = et
        .iter()
        .filter(|t| !t["due"].is_null())
        .map(|t| (lead_set(&t["lead"]), t["due"].to_string()))
        .collect();
    let _ = writeln!(
        report,
        "{name}: {} tasks produced, {} expected",
        gt.len(),
        et.len()
    );
    for e in et {
        let el = lead_set(&e["lead"]);
        let found = (pos..gt.len())
            .find(|&k| !used[k] && lead_set(&gt[k]["lead"]) == el && gt[k]["due"] == e["due"]);
        match found {
            Some(k) => {
                used[k] = true;
                pos = k + 1;
                let _ = writeln!(report, "  ok    {}  <->  {}", show(e), show(&gt[k]));
            }
            None if e["due"].is_null() => {
                // margin: merged into a neighbouring task with the same lead
                let merged = gt.iter().any(|g| lead_set(&g["lead"]) == el);
                if merged {
                    margin += 1;
                    let _ = writeln!(
                        report,
                        "  merge {}  (no deadline; merged into a task with the same lead)",
                        show(e)
                    );
                } else {
                    failures.push(format!("expected task not found: {}", show(e)));
                    let _ = writeln!(report, "  MISS  {}", show(e));
                }
            }
            None => {
                failures.push(format!(
                    "expected task with deadline not found with its lead and date: {}",
                    show(e)
                ));
                let _ = writeln!(report, "  MISS  {}", show(e));
            }
        }
    }
    for (k, g) in gt.iter().enumerate() {
        if used[k] {
            continue;
        }
        if !g["due"].is_null() {
            let key = (lead_set(&g["lead"]), g["due"].to_string());
            if !expected_dues.contains(&key) {
                failures.push(format!("invented deadline: {}", show(g)));
            }
            let _ = writeln!(report, "  EXTRA {}", show(g));
            continue;
        }
        if !g["recurrence"].is_null() {
            failures.push(format!(
                "invented recurrence: {} {}",
                show(g),
                g["recurrence"]
            ));
            continue;
        }
        let gl = lead_set(&g["lead"]);
        if et.iter().any(|e| lead_set(&e["lead"]) == gl) {
            margin += 1;
            let _ = writeln!(
                report,
                "  split {}  (no deadline; extra part of a task with the same lead)",
                show(g)
            );
        } else {
            failures.push(format!("unexpected task: {}", show(g)));
            let _ = writeln!(report, "  EXTRA {}", show(g));
        }
    }
    let allowed = (et.len() / 5).max(1);
    if margin > allowed {
        failures.push(format!(
            "{margin} split/merged tasks, more than the margin of {allowed}"
        ));
    }
    Outcome { report, failures }
}

fn assert_fixture(name: &str) {
    let o = check(name);
    println!("{}", o.report);
    assert!(
        o.failures.is_empty(),
        "{name}: {} problem(s):\n  - {}\n\n{}",
        o.failures.len(),
        o.failures.join("\n  - "),
        o.report
    );
}

#[test]
fn quangngai_conclusion_notice() {
    assert_fixture("quangngai-tb-ket-luan-sldtbxh-2024");
}

#[test]
fn hcm_official_letter() {
    assert_fixture("hcm-cv-4085-2025");
}

#[test]
fn government_office_notice() {
    assert_fixture("vpcp-tb-659-2025");
}

#[test]
fn report_yields_no_tasks_with_deadlines() {
    let name = "bao-cao-2-thang-sldtbxh-2020";
    assert_fixture(name);
    let text = std::fs::read_to_string(fixtures_dir().join(format!("{name}.txt")))
        .unwrap_or_else(|e| panic!("cannot read {name}.txt: {e}"));
    let doc = parse_text(&text);
    assert_eq!(doc.document.kind.as_str(), "bao_cao");
    let with_deadline: Vec<_> = doc
        .tasks
        .iter()
        .filter(|t| t.due.is_some() || t.recurrence.is_some())
        .collect();
    assert!(
        with_deadline.is_empty(),
        "report produced tasks with deadlines: {with_deadline:#?}"
    );
}

#[test]
fn every_fixture_has_an_expected_answer() {
    let dir = fixtures_dir();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.map(|e| e.path()).unwrap_or_default();
        if path.extension().is_some_and(|x| x == "txt") {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            assert!(
                dir.join("expected").join(format!("{stem}.json")).is_file(),
                "no expected answer for {stem}"
            );
            n += 1;
        }
    }
    assert!(
        n >= 4,
        "expected at least four fixture documents, found {n}"
    );
}
