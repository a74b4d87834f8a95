//! Segmenting the body into labelled units and turning units into tasks.

use chrono::NaiveDate;

use crate::ParsedTask;
use crate::agency::{self, LeadHow};
use crate::deadline::{self, Deadline};
use crate::fold::{fold_name, fold_text};
use crate::header::ParsedHeader;
use crate::text::{LabelKind, parse_label, split_sentences};

#[derive(Debug, Clone)]
struct Node {
    kind: Option<LabelKind>,
    value: String,
    reference: String,
    title: String,
    paras: Vec<String>,
    children: Vec<usize>,
    bullets: usize,
}

/// Titles of sections that assess or explain rather than assign ("Đánh giá chung").
const NON_TASK_TITLES: &[&str] = &[
    "danh gia",
    "ket qua",
    "tinh hinh",
    "kho khan",
    "han che",
    "ton tai",
    "nguyen nhan",
    "boi canh",
    "muc dich",
    "muc tieu",
    "quan diem",
    "can cu",
    "pham vi",
    "doi tuong ap dung",
    "thuc trang",
    "uu diem",
    "nhan xet",
    "ket luan chung",
];

fn is_closing(line: &str) -> bool {
    let t = line.trim();
    let f = fold_text(t);
    t.ends_with("./.")
        || t.ends_with("/.")
        || f.starts_with("nay thong bao")
        || f.starts_with("tren day la")
        || f.starts_with("truong hop co kho khan")
        || f.contains("thong bao de ")
        || (f.contains("neu tren") && (f.contains("de nghi") || f.contains("yeu cau")))
}

fn join_ref(parent: &str, value: &str) -> String {
    if parent.is_empty() {
        value.to_string()
    } else {
        format!("{parent}.{value}")
    }
}

fn build_tree(body: &[String]) -> Vec<Node> {
    let mut nodes = vec![Node {
        kind: None,
        value: String::new(),
        reference: String::new(),
        title: String::new(),
        paras: Vec::new(),
        children: Vec::new(),
        bullets: 0,
    }];
    let mut stack: Vec<usize> = vec![0];
    let any_label = body.iter().any(|l| parse_label(l).is_some());
    if !any_label {
        // No labels: each paragraph after the introduction ("… như sau:") is a unit.
        let start = body
            .iter()
            .rposition(|l| fold_text(l).trim_end().ends_with("nhu sau:"))
            .map_or(0, |p| p + 1);
        nodes[0].paras.extend(body[..start].iter().cloned());
        for (k, l) in body[start..].iter().enumerate() {
            let idx = nodes.len();
            nodes.push(Node {
                kind: None,
                value: format!("¶{}", k + 1),
                reference: format!("¶{}", k + 1),
                title: l.clone(),
                paras: Vec::new(),
                children: Vec::new(),
                bullets: 0,
            });
            nodes[0].children.push(idx);
        }
        return nodes;
    }
    for line in body {
        match parse_label(line) {
            Some((label, rest)) => {
                let same = stack
                    .iter()
                    .rposition(|&n| n != 0 && nodes[n].kind == Some(label.kind));
                if let Some(p) = same {
                    stack.truncate(p);
                } else if matches!(label.kind, LabelKind::Roman | LabelKind::Article) {
                    stack.truncate(1);
                } else if let LabelKind::Arabic(d) = label.kind {
                    // a shallower or equal arabic level closes deeper ones
                    if let Some(p) = stack.iter().position(
                        |&n| matches!(nodes[n].kind, Some(LabelKind::Arabic(e)) if e >= d),
                    ) {
                        stack.truncate(p);
                    }
                }
                let parent = *stack.last().unwrap_or(&0);
                let (pref, pval, pkind) = {
                    let p = &nodes[parent];
                    (p.reference.clone(), p.value.clone(), p.kind)
                };
                let reference = match label.kind {
                    LabelKind::Bullet(_) => {
                        nodes[parent].bullets += 1;
                        format!("{pref}-{}", nodes[parent].bullets)
                    }
                    LabelKind::Arabic(d)
                        if d > 1
                            && matches!(pkind, Some(LabelKind::Arabic(_)))
                            && label.value.starts_with(&format!("{pval}.")) =>
                    {
                        let prefix = pref.strip_suffix(&pval).unwrap_or("");
                        format!("{prefix}{}", label.value)
                    }
                    _ => join_ref(&pref, &label.value),
                };
                let idx = nodes.len();
                nodes.push(Node {
                    kind: Some(label.kind),
                    value: label.value,
                    reference,
                    title: rest,
                    paras: Vec::new(),
                    children: Vec::new(),
                    bullets: 0,
                });
                nodes[parent].children.push(idx);
                stack.push(idx);
            }
            None => {
                let top = *stack.last().unwrap_or(&0);
                nodes[top].paras.push(line.clone());
            }
        }
    }
    nodes
}

#[derive(Debug, Clone)]
struct Lead {
    names: Vec<String>,
    confidence: f32,
    note: Option<String>,
}

fn lead_key(names: &[String]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|n| fold_name(n)).collect();
    v.sort();
    v
}

fn how_confidence(how: LeadHow) -> f32 {
    match how {
        LeadHow::Giao | LeadHow::Request => 0.9,
        LeadHow::Subject => 0.85,
    }
}

fn capitalize_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn node_text(n: &Node) -> String {
    let mut parts = Vec::new();
    if !n.title.trim().is_empty() {
        parts.push(n.title.trim().to_string());
    }
    parts.extend(n.paras.iter().map(|p| p.trim().to_string()));
    parts.join(" ")
}

/// Sentences of a unit: its title and each paragraph are split separately, so that a
/// heading without a full stop does not run into the next paragraph.
fn node_sentences(n: &Node) -> Vec<String> {
    let mut out = Vec::new();
    if !n.title.trim().is_empty() {
        out.extend(split_sentences(n.title.trim()));
    }
    for p in &n.paras {
        out.extend(split_sentences(p.trim()));
    }
    out
}

/// Lead named by a heading: the sentence that introduces the list (ends with ":")
/// first, else the first sentence that names a lead.
fn heading_lead(sentences: &[String]) -> Option<Lead> {
    let mut first = None;
    for s in sentences {
        if let Some((names, how)) = agency::find_leads(s) {
            let lead = Lead {
                names,
                confidence: how_confidence(how) - 0.05,
                note: None,
            };
            if s.trim_end().ends_with(':') {
                return Some(lead);
            }
            if first.is_none() {
                first = Some(lead);
            }
        }
    }
    first
}

struct Ctx<'a> {
    nodes: &'a [Node],
    issue: Option<NaiveDate>,
    out: Vec<ParsedTask>,
    warnings: &'a mut Vec<String>,
}

fn is_non_task_title(title: &str) -> bool {
    let f = fold_text(title);
    title.split_whitespace().count() <= 10 && NON_TASK_TITLES.iter().any(|p| f.starts_with(p))
}

fn visit(ctx: &mut Ctx, idx: usize, inherited: Option<Lead>, skip: bool) {
    let node = &ctx.nodes[idx];
    let skip = skip || (node.kind.is_some() && is_non_task_title(&node.title));
    if !node.children.is_empty() {
        let text = node_text(node);
        let own = if idx == 0 {
            // the introduction only gives a lead through the sentence ending with ":"
            node_sentences(node)
                .iter()
                .filter(|s| s.trim_end().ends_with(':'))
                .find_map(|s| agency::find_leads(s))
                .map(|(names, how)| Lead {
                    names,
                    confidence: how_confidence(how) - 0.05,
                    note: None,
                })
        } else {
            heading_lead(&node_sentences(node))
        };
        let lead = own.or(inherited);
        if idx != 0
            && !skip
            && let Some(dl) = deadline::find_deadline(&text, ctx.issue)
            && !dl.weak
        {
            let (r, t) = (node.reference.clone(), text.clone());
            emit(ctx, r, t, lead.clone(), Some(dl), None);
        }
        let children = ctx.nodes[idx].children.clone();
        for c in children {
            visit(ctx, c, lead.clone(), skip);
        }
        return;
    }
    let text = node_text(node);
    let reference = node.reference.clone();
    if idx == 0 || text.trim().is_empty() {
        return;
    }
    // Split the unit where a sentence names a lead of its own.
    struct Seg {
        lead: Option<Lead>,
        own: bool,
        sentences: Vec<String>,
    }
    let mut segs: Vec<Seg> = vec![Seg {
        lead: inherited.clone(),
        own: false,
        sentences: Vec::new(),
    }];
    for s in node_sentences(node) {
        let found = agency::find_leads(&s).map(|(names, how)| Lead {
            names,
            confidence: how_confidence(how),
            note: None,
        });
        let Some(cur) = segs.last_mut() else { break };
        match found {
            Some(l) => {
                let differs = cur
                    .lead
                    .as_ref()
                    .is_some_and(|c| lead_key(&c.names) != lead_key(&l.names));
                if cur.sentences.is_empty() || cur.lead.is_none() || (!differs && !cur.own) {
                    cur.lead = Some(l);
                    cur.own = true;
                    cur.sentences.push(s);
                } else if differs {
                    segs.push(Seg {
                        lead: Some(l),
                        own: true,
                        sentences: vec![s],
                    });
                } else {
                    cur.sentences.push(s);
                }
            }
            None => cur.sentences.push(s),
        }
    }
    let segs: Vec<Seg> = segs
        .into_iter()
        .filter(|s| !s.sentences.is_empty())
        .collect();
    let many = segs.len() > 1;
    for (k, seg) in segs.into_iter().enumerate() {
        let r = if many {
            format!("{reference}+{}", k + 1)
        } else {
            reference.clone()
        };
        let t = seg.sentences.join(" ");
        let dl = deadline::find_deadline(&t, ctx.issue);
        // a weak phrase ("trong năm 2024") alone does not make a unit a task
        let strong = dl.as_ref().is_some_and(|d| !d.weak);
        if skip && !strong {
            continue;
        }
        let lead = match seg.lead {
            Some(mut l) if !seg.own => {
                l.confidence = l.confidence.min(0.8);
                Some(l)
            }
            other => other,
        };
        if lead.is_none() && !strong && !agency::starts_directive(&t) {
            ctx.warnings.push(format!(
                "unit {r} skipped: no lead agency, no deadline and no directive verb"
            ));
            continue;
        }
        emit(ctx, r, t, lead, dl, None);
    }
}

fn emit(
    ctx: &mut Ctx,
    reference: String,
    text: String,
    lead: Option<Lead>,
    dl: Option<Deadline>,
    extra: Option<String>,
) {
    let mut warnings = Vec::new();
    let mut confidence = lead.as_ref().map_or(0.3, |l| l.confidence);
    let names: Vec<String> = lead
        .as_ref()
        .map(|l| l.names.iter().map(|n| capitalize_first(n)).collect())
        .unwrap_or_default();
    if let Some(note) = lead.as_ref().and_then(|l| l.note.clone()) {
        warnings.push(note);
    }
    if names.is_empty() {
        warnings.push("no lead agency found".to_string());
    }
    let keys: Vec<String> = names.iter().map(|n| fold_name(n)).collect();
    let coordinating: Vec<String> = agency::find_coordinating(&text)
        .into_iter()
        .filter(|c| !keys.contains(&fold_name(c)))
        .map(|c| capitalize_first(&c))
        .collect();
    let (due, due_text, recurrence) = match dl {
        Some(d) => {
            if d.weak {
                confidence -= 0.1;
            }
            if d.due.is_none() && d.recurrence.is_none() {
                confidence -= 0.2;
            }
            confidence -= 0.05 * d.warnings.len() as f32;
            warnings.extend(d.warnings);
            (d.due, Some(d.due_text), d.recurrence)
        }
        None => (None, None, None),
    };
    if let Some(e) = extra {
        warnings.push(e);
    }
    ctx.out.push(ParsedTask {
        reference,
        text,
        lead: names,
        coordinating,
        due,
        due_text,
        recurrence,
        confidence: confidence.clamp(0.05, 1.0),
        warnings,
    });
}

/// Extract tasks from the body of a (non-report) document.
pub(crate) fn extract_tasks(
    lines: &[String],
    ph: &ParsedHeader,
    warnings: &mut Vec<String>,
) -> Vec<ParsedTask> {
    let start = ph.body_start.min(lines.len());
    let end = ph.body_end.clamp(start, lines.len());
    let mut body: Vec<String> = lines[start..end].to_vec();
    while body
        .last()
        .is_some_and(|l| parse_label(l).is_none() && is_closing(l))
    {
        body.pop();
    }
    let nodes = build_tree(&body);
    // Default lead: the only addressee of a letter ("Kính gửi: Sở Y tế").
    let default = if ph.addressees.len() == 1 {
        Some(Lead {
            names: ph.addressees.clone(),
            confidence: 0.6,
            note: Some("lead taken from the only addressee (Kính gửi)".to_string()),
        })
    } else {
        None
    };
    let mut ctx = Ctx {
        nodes: &nodes,
        issue: ph.header.issue_date,
        out: Vec::new(),
        warnings,
    };
    visit(&mut ctx, 0, default, false);
    ctx.out
}
