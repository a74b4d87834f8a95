//! Directive documents and their items.

use chrono::{Datelike, NaiveDate};
use dondoc_errors::{Error, FieldViolation, Violations};
use dondoc_time::Recurrence;

use super::agency::AgencyCode;

/// The kind of an administrative document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectiveKind {
    /// Thông báo (kết luận).
    ConclusionNotice,
    /// Chỉ thị.
    Directive,
    /// Quyết định.
    Decision,
    /// Kế hoạch.
    Plan,
    /// Công văn.
    OfficialLetter,
    /// Nghị quyết.
    Resolution,
    /// Báo cáo.
    Report,
    /// Anything else.
    Other,
}

impl DirectiveKind {
    /// Every kind.
    pub const ALL: [DirectiveKind; 8] = [
        DirectiveKind::ConclusionNotice,
        DirectiveKind::Directive,
        DirectiveKind::Decision,
        DirectiveKind::Plan,
        DirectiveKind::OfficialLetter,
        DirectiveKind::Resolution,
        DirectiveKind::Report,
        DirectiveKind::Other,
    ];

    /// Stored and filter form.
    pub fn as_str(self) -> &'static str {
        match self {
            DirectiveKind::ConclusionNotice => "CONCLUSION_NOTICE",
            DirectiveKind::Directive => "DIRECTIVE",
            DirectiveKind::Decision => "DECISION",
            DirectiveKind::Plan => "PLAN",
            DirectiveKind::OfficialLetter => "OFFICIAL_LETTER",
            DirectiveKind::Resolution => "RESOLUTION",
            DirectiveKind::Report => "REPORT",
            DirectiveKind::Other => "OTHER",
        }
    }

    /// Reads the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Where a directive stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectiveState {
    /// Editable.
    Draft,
    /// Immutable; items tracked.
    Issued,
    /// Revoked.
    Revoked,
}

impl DirectiveState {
    /// Stored and filter form.
    pub fn as_str(self) -> &'static str {
        match self {
            DirectiveState::Draft => "DRAFT",
            DirectiveState::Issued => "ISSUED",
            DirectiveState::Revoked => "REVOKED",
        }
    }

    /// Reads the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Draft, Self::Issued, Self::Revoked]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// "534/TB-UBND": a number, a slash, and a symbol of uppercase letters and
/// digits in dash-separated parts ("UBND-ĐT" keeps its Vietnamese letters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectiveNumber(String);

impl DirectiveNumber {
    /// Parses a number and symbol.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let malformed = || format!("{text:?} is not a number and symbol such as \"534/TB-UBND\"");
        let (number, symbol) = text.split_once('/').ok_or_else(malformed)?;
        let number_ok =
            (1..=6).contains(&number.len()) && number.chars().all(|c| c.is_ascii_digit());
        let symbol_ok = !symbol.is_empty()
            && symbol.chars().count() <= 40
            && symbol.split('-').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_uppercase() || c.is_ascii_digit() || c == '&')
            });
        if number_ok && symbol_ok {
            Ok(Self(text.to_string()))
        } else {
            Err(malformed())
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who signed, with capacities such as "TL. CHỦ TỊCH".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signer {
    /// Full name.
    pub full_name: String,
    /// Title.
    pub title: String,
    /// Capacities, in order.
    pub capacities: Vec<String>,
}

/// The signing capacities dondoc recognises (Decree 30/2020/NĐ-CP).
pub const CAPACITY_PREFIXES: [&str; 4] = ["TM.", "KT.", "TL.", "TUQ."];

/// One item, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct DraftItem {
    /// The document's own reference, e.g. "III.3".
    pub reference: String,
    /// What must be done.
    pub text: String,
    /// Lead agencies, at least one.
    pub lead: Vec<AgencyCode>,
    /// Coordinating agencies.
    pub coordinating: Vec<AgencyCode>,
    /// Due date.
    pub due: Option<NaiveDate>,
    /// A repeating deadline instead.
    pub recurrence: Option<Recurrence>,
    /// The phrase as written.
    pub deadline_text: String,
    /// Nhiệm vụ trọng tâm.
    pub key_task: bool,
}

/// A directive as drafted, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Kind.
    pub kind: DirectiveKind,
    /// Number and symbol; a draft may not have one yet.
    pub number: Option<DirectiveNumber>,
    /// Issuer.
    pub issuer: AgencyCode,
    /// Signer.
    pub signer: Signer,
    /// Place line.
    pub place: String,
    /// Issue date.
    pub issue_date: Option<NaiveDate>,
    /// Trích yếu.
    pub subject: String,
    /// Full text.
    pub body: String,
    /// Nơi nhận.
    pub recipients: Vec<String>,
    /// The concluded meeting: date and chair.
    pub meeting: Option<(Option<NaiveDate>, String)>,
    /// Items.
    pub items: Vec<DraftItem>,
    /// Directives this one implements or amends.
    pub links: Vec<Link>,
    /// Changes to items of earlier directives, applied on issue.
    pub amendments: Vec<Amendment>,
}

/// How one directive relates to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Implements the target (a plan implementing a resolution).
    Implements,
    /// Amends the target's items.
    Amends,
}

impl LinkKind {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Implements => "IMPLEMENTS",
            LinkKind::Amends => "AMENDS",
        }
    }

    /// Reads the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Implements, Self::Amends]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A link to another directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Kind.
    pub kind: LinkKind,
    /// Target directive id.
    pub target: i64,
}

/// New values for some fields of an item; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemPatch {
    /// Text.
    pub text: Option<String>,
    /// Lead agencies.
    pub lead: Option<Vec<AgencyCode>>,
    /// Coordinating agencies.
    pub coordinating: Option<Vec<AgencyCode>>,
    /// Due date (`Some(None)` clears it).
    pub due: Option<Option<NaiveDate>>,
    /// Recurrence (`Some(None)` clears it).
    pub recurrence: Option<Option<Recurrence>>,
    /// Deadline phrase.
    pub deadline_text: Option<String>,
    /// Key task.
    pub key_task: Option<bool>,
}

/// The fields an amendment may change.
pub const ITEM_CHANGE_FIELDS: [&str; 7] = [
    "text",
    "lead_agencies",
    "coordinating_agencies",
    "due_date",
    "recurrence",
    "deadline_text",
    "key_task",
];

impl ItemPatch {
    /// The fields it changes, in [`ITEM_CHANGE_FIELDS`] order.
    pub fn mask(&self) -> Vec<&'static str> {
        let set = [
            self.text.is_some(),
            self.lead.is_some(),
            self.coordinating.is_some(),
            self.due.is_some(),
            self.recurrence.is_some(),
            self.deadline_text.is_some(),
            self.key_task.is_some(),
        ];
        ITEM_CHANGE_FIELDS
            .iter()
            .zip(set)
            .filter_map(|(f, on)| on.then_some(*f))
            .collect()
    }

    /// Builds a patch from a mask and the values of an item.
    pub fn from_mask(mask: &[String], values: &DraftItem) -> Result<Self, Vec<FieldViolation>> {
        let mut v = Violations::new();
        let mut patch = ItemPatch::default();
        if mask.is_empty() {
            v.add(
                "update_mask",
                format!(
                    "list the fields to change: {}",
                    ITEM_CHANGE_FIELDS.join(", ")
                ),
            );
        }
        for path in mask {
            match path.as_str() {
                "text" => patch.text = Some(values.text.clone()),
                "lead_agencies" => patch.lead = Some(values.lead.clone()),
                "coordinating_agencies" => patch.coordinating = Some(values.coordinating.clone()),
                "due_date" => patch.due = Some(values.due),
                "recurrence" => patch.recurrence = Some(values.recurrence),
                "deadline_text" => patch.deadline_text = Some(values.deadline_text.clone()),
                "key_task" => patch.key_task = Some(values.key_task),
                other => v.add(
                    "update_mask",
                    format!(
                        "{other:?} is not a field an amendment changes: {}",
                        ITEM_CHANGE_FIELDS.join(", ")
                    ),
                ),
            }
        }
        if v.is_empty() {
            Ok(patch)
        } else {
            Err(v.into_inner())
        }
    }

    /// The item after the change, checked again by every item rule against
    /// the target's issue date.
    pub fn apply(
        &self,
        item: &DraftItem,
        target_issue_date: Option<NaiveDate>,
    ) -> Result<DraftItem, Vec<FieldViolation>> {
        let names = |codes: &[AgencyCode]| codes.iter().map(AgencyCode::name).collect();
        let fields = ItemFields {
            reference: item.reference.clone(),
            text: self.text.clone().unwrap_or_else(|| item.text.clone()),
            lead: names(self.lead.as_deref().unwrap_or(&item.lead)),
            coordinating: names(self.coordinating.as_deref().unwrap_or(&item.coordinating)),
            due: self.due.unwrap_or(item.due),
            recurrence: self.recurrence.unwrap_or(item.recurrence),
            deadline_text: self
                .deadline_text
                .clone()
                .unwrap_or_else(|| item.deadline_text.clone()),
            key_task: self.key_task.unwrap_or(item.key_task),
        };
        parse_item(fields, target_issue_date, false)
    }
}

/// What an amendment does.
#[derive(Debug, Clone, PartialEq)]
pub enum AmendmentChange {
    /// A new item for the target directive.
    Add(DraftItem),
    /// New values for some fields of the target item.
    Change(ItemPatch),
    /// The target item no longer applies.
    Cancel {
        /// Why.
        reason: String,
    },
}

/// A checked change to an earlier directive.
#[derive(Debug, Clone, PartialEq)]
pub struct Amendment {
    /// The target directive's id.
    pub directive: i64,
    /// The target item's id (change and cancel).
    pub item: Option<i64>,
    /// What changes.
    pub change: AmendmentChange,
}

impl Amendment {
    /// Stored form of the kind.
    pub fn kind(&self) -> &'static str {
        match self.change {
            AmendmentChange::Add(_) => "ADD",
            AmendmentChange::Change(_) => "CHANGE",
            AmendmentChange::Cancel { .. } => "CANCEL",
        }
    }

    /// A due date that falls before the target's issue date, described.
    pub fn date_violation(&self, target_issue_date: Option<NaiveDate>) -> Option<(String, String)> {
        let due = match &self.change {
            AmendmentChange::Add(item) => item.due.map(|d| ("add_item.due_date", d)),
            AmendmentChange::Change(patch) => patch
                .due
                .flatten()
                .map(|d| ("change_item.item.due_date", d)),
            AmendmentChange::Cancel { .. } => None,
        };
        match (due, target_issue_date) {
            (Some((field, due)), Some(issued)) if due < issued => Some((
                field.to_string(),
                format!("{due} is before the target's issue date {issued}"),
            )),
            _ => None,
        }
    }
}

/// The raw fields of an amendment.
#[derive(Debug, Clone)]
pub enum ChangeFields {
    /// Add an item.
    Add(ItemFields),
    /// Change fields of an item under a mask.
    Change {
        /// Values.
        item: ItemFields,
        /// Which fields.
        mask: Vec<String>,
    },
    /// Cancel an item.
    Cancel {
        /// Why.
        reason: String,
    },
}

/// The raw fields of an amendment: a target name and the change, if set.
#[derive(Debug, Clone)]
pub struct AmendmentFields {
    /// "directives/{id}" or "directives/{id}/items/{item}".
    pub target: String,
    /// What changes.
    pub change: Option<ChangeFields>,
}

fn parse_target(target: &str) -> Option<(i64, Option<i64>)> {
    let rest = target.strip_prefix("directives/")?;
    let positive = |s: &str| s.parse::<i64>().ok().filter(|n| *n > 0);
    match rest.split_once("/items/") {
        Some((d, i)) => Some((positive(d)?, Some(positive(i)?))),
        None => Some((positive(rest)?, None)),
    }
}

fn parse_amendment(fields: AmendmentFields) -> Result<Amendment, Vec<FieldViolation>> {
    let mut v = Violations::new();
    let target = parse_target(&fields.target);
    if target.is_none() {
        v.add(
            "target",
            format!(
                "{:?} is not directives/{{id}} nor directives/{{id}}/items/{{item}}",
                fields.target
            ),
        );
    }
    let change = match fields.change {
        None => {
            v.add("change", "set one of add_item, change_item, cancel_item");
            None
        }
        Some(ChangeFields::Add(item)) => {
            if matches!(target, Some((_, Some(_)))) {
                v.add(
                    "target",
                    format!(
                        "{:?}: an added item targets a directive, directives/{{id}}",
                        fields.target
                    ),
                );
            }
            v.check("add_item", parse_item(item, None, false))
                .map(AmendmentChange::Add)
        }
        Some(ChangeFields::Change { item, mask }) => {
            if matches!(target, Some((_, None))) {
                v.add(
                    "target",
                    format!(
                        "{:?}: a change targets an item, directives/{{id}}/items/{{item}}",
                        fields.target
                    ),
                );
            }
            let mut nested = Violations::new();
            let values = DraftItem {
                reference: String::new(),
                text: item.text.trim().to_string(),
                lead: agency_list(&item.lead, "item.lead_agencies", &mut nested),
                coordinating: agency_list(
                    &item.coordinating,
                    "item.coordinating_agencies",
                    &mut nested,
                ),
                due: item.due,
                recurrence: item.recurrence,
                deadline_text: item.deadline_text.trim().to_string(),
                key_task: item.key_task,
            };
            let patch = ItemPatch::from_mask(&mask, &values);
            if let Ok(patch) = &patch {
                if patch.text.as_deref().is_some_and(str::is_empty) {
                    nested.add("item.text", "must not be empty");
                }
                if patch.lead.as_ref().is_some_and(Vec::is_empty) {
                    nested.add(
                        "item.lead_agencies",
                        "at least one lead agency (chủ trì) is required",
                    );
                }
                if patch.due.flatten().is_some() && patch.recurrence.flatten().is_some() {
                    nested.add(
                        "item.recurrence",
                        "an item has a due date or a recurrence, not both",
                    );
                }
            }
            v.extend_under("change_item", nested.into_inner());
            v.check("change_item", patch).map(AmendmentChange::Change)
        }
        Some(ChangeFields::Cancel { reason }) => {
            if matches!(target, Some((_, None))) {
                v.add(
                    "target",
                    format!(
                        "{:?}: a cancellation targets an item, directives/{{id}}/items/{{item}}",
                        fields.target
                    ),
                );
            }
            let reason = reason.trim().to_string();
            if reason.chars().count() > MAX_SUBJECT_CHARS {
                v.add(
                    "cancel_item.reason",
                    format!("at most {MAX_SUBJECT_CHARS} characters"),
                );
            }
            Some(AmendmentChange::Cancel { reason })
        }
    };
    match (target, change) {
        (Some((directive, item)), Some(change)) if v.is_empty() => Ok(Amendment {
            directive,
            item,
            change,
        }),
        _ => Err(v.into_inner()),
    }
}

/// Longest subject accepted.
pub const MAX_SUBJECT_CHARS: usize = 1000;
/// Longest item text accepted.
pub const MAX_ITEM_CHARS: usize = 10_000;
/// Most items in one directive.
pub const MAX_ITEMS: usize = 500;

/// The raw fields of an item, before checking.
#[derive(Debug, Clone, Default)]
pub struct ItemFields {
    /// Reference.
    pub reference: String,
    /// Text.
    pub text: String,
    /// Lead names, "agencies/{code}".
    pub lead: Vec<String>,
    /// Coordinating names.
    pub coordinating: Vec<String>,
    /// Due date, already a calendar date.
    pub due: Option<NaiveDate>,
    /// Recurrence, already checked.
    pub recurrence: Option<Recurrence>,
    /// Deadline phrase.
    pub deadline_text: String,
    /// Key task.
    pub key_task: bool,
}

/// The raw fields of a draft.
#[derive(Debug, Clone, Default)]
pub struct DraftFields {
    /// Kind, if recognised.
    pub kind: Option<DirectiveKind>,
    /// Number text; empty when not yet numbered.
    pub number: String,
    /// Issuer name.
    pub issuer: String,
    /// Signer.
    pub signer: Signer,
    /// Place.
    pub place: String,
    /// Issue date.
    pub issue_date: Option<NaiveDate>,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Recipients.
    pub recipients: Vec<String>,
    /// Meeting.
    pub meeting: Option<(Option<NaiveDate>, String)>,
    /// Items.
    pub items: Vec<ItemFields>,
    /// Links: the kind (when recognised) and the target name.
    pub links: Vec<(Option<LinkKind>, String)>,
    /// Amendments.
    pub amendments: Vec<AmendmentFields>,
    /// Items may lack a lead agency: only for a draft made by import (or an
    /// edit of one that leaves its items alone). Such a draft cannot be
    /// issued until every item has a lead (see [`check_leads`]).
    pub lead_optional: bool,
}

fn agency_list(names: &[String], field: &str, v: &mut Violations) -> Vec<AgencyCode> {
    let mut codes: Vec<AgencyCode> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match AgencyCode::from_name(name) {
            Ok(code) if codes.contains(&code) => {
                v.add(format!("{field}[{i}]"), format!("{name} is listed twice"));
            }
            Ok(code) => codes.push(code),
            Err(e) => v.add(format!("{field}[{i}]"), e),
        }
    }
    codes
}

fn parse_item(
    fields: ItemFields,
    issue_date: Option<NaiveDate>,
    lead_optional: bool,
) -> Result<DraftItem, Vec<FieldViolation>> {
    let mut v = Violations::new();
    let text = fields.text.trim().to_string();
    if text.is_empty() {
        v.add("text", "must not be empty");
    } else if text.chars().count() > MAX_ITEM_CHARS {
        v.add("text", format!("at most {MAX_ITEM_CHARS} characters"));
    }
    if fields.lead.is_empty() && !lead_optional {
        v.add(
            "lead_agencies",
            "at least one lead agency (chủ trì) is required",
        );
    }
    let lead = agency_list(&fields.lead, "lead_agencies", &mut v);
    let coordinating = agency_list(&fields.coordinating, "coordinating_agencies", &mut v);
    for (i, code) in coordinating.iter().enumerate() {
        if lead.contains(code) {
            v.add(
                format!("coordinating_agencies[{i}]"),
                format!("{} is already a lead agency", code.name()),
            );
        }
    }
    if let (Some(due), Some(issued)) = (fields.due, issue_date)
        && due < issued
    {
        v.add(
            "due_date",
            format!("{due} is before the issue date {issued}"),
        );
    }
    if fields.due.is_some() && fields.recurrence.is_some() {
        v.add(
            "recurrence",
            "an item has a due date or a recurrence, not both",
        );
    }
    if fields.reference.chars().count() > 40 {
        v.add("reference", "at most 40 characters");
    }
    if fields.deadline_text.chars().count() > 500 {
        v.add("deadline_text", "at most 500 characters");
    }
    v.finish().map_err(|e| match e {
        Error::InvalidArgument(violations) => violations,
        _ => Vec::new(),
    })?;
    Ok(DraftItem {
        reference: fields.reference.trim().to_string(),
        text,
        lead,
        coordinating,
        due: fields.due,
        recurrence: fields.recurrence,
        deadline_text: fields.deadline_text.trim().to_string(),
        key_task: fields.key_task,
    })
}

impl Draft {
    /// Checks every field of a draft, reporting all problems at once with
    /// their paths (`items[2].lead_agencies`).
    pub fn parse(fields: DraftFields) -> Result<Self, Vec<FieldViolation>> {
        let mut v = Violations::new();
        if fields.kind.is_none() {
            v.add("kind", "must be set");
        }
        let number = if fields.number.trim().is_empty() {
            None
        } else {
            DirectiveNumber::parse(&fields.number)
                .map_err(|e| v.add("number", e))
                .ok()
        };
        let issuer = AgencyCode::from_name(&fields.issuer)
            .map_err(|e| v.add("issuer", e))
            .ok();
        let subject = fields.subject.trim().to_string();
        if subject.is_empty() {
            v.add("subject", "must not be empty");
        } else if subject.chars().count() > MAX_SUBJECT_CHARS {
            v.add("subject", format!("at most {MAX_SUBJECT_CHARS} characters"));
        }
        for (i, capacity) in fields.signer.capacities.iter().enumerate() {
            if !CAPACITY_PREFIXES
                .iter()
                .any(|p| capacity.trim_start().starts_with(p))
            {
                v.add(
                    format!("signer.capacities[{i}]"),
                    format!("{capacity:?} does not start with TM., KT., TL. or TUQ."),
                );
            }
        }
        if fields.items.len() > MAX_ITEMS {
            v.add("items", format!("at most {MAX_ITEMS} items"));
        }
        let mut items = Vec::with_capacity(fields.items.len());
        for (i, item) in fields.items.into_iter().enumerate() {
            if let Some(item) = v.check(
                &format!("items[{i}]"),
                parse_item(item, fields.issue_date, fields.lead_optional),
            ) {
                items.push(item);
            }
        }
        let mut links: Vec<Link> = Vec::new();
        for (i, (kind, target)) in fields.links.iter().enumerate() {
            let Some(kind) = kind else {
                v.add(format!("links[{i}].kind"), "must be IMPLEMENTS or AMENDS");
                continue;
            };
            match parse_target(target) {
                Some((id, None)) if links.iter().any(|l| l.target == id && l.kind == *kind) => {
                    v.add(format!("links[{i}]"), format!("{target} is linked twice"))
                }
                Some((id, None)) => links.push(Link {
                    kind: *kind,
                    target: id,
                }),
                _ => v.add(
                    format!("links[{i}].target"),
                    format!("{target:?} is not a name of the form directives/{{id}}"),
                ),
            }
        }
        let mut amendments = Vec::with_capacity(fields.amendments.len());
        for (i, amendment) in fields.amendments.into_iter().enumerate() {
            if let Some(amendment) =
                v.check(&format!("amendments[{i}]"), parse_amendment(amendment))
            {
                if !links
                    .iter()
                    .any(|l| l.kind == LinkKind::Amends && l.target == amendment.directive)
                {
                    v.add(
                        format!("amendments[{i}].target"),
                        format!(
                            "directives/{} must also be linked with AMENDS in links",
                            amendment.directive
                        ),
                    );
                }
                amendments.push(amendment);
            }
        }
        let violations = v.into_inner();
        match (fields.kind, issuer) {
            (Some(kind), Some(issuer)) if violations.is_empty() => Ok(Draft {
                kind,
                number,
                issuer,
                signer: fields.signer,
                place: fields.place.trim().to_string(),
                issue_date: fields.issue_date,
                subject,
                body: fields.body,
                recipients: fields.recipients,
                meeting: fields.meeting,
                items,
                links,
                amendments,
            }),
            _ => Err(violations),
        }
    }

    /// Every agency the draft names (issuer and items), for existence checks,
    /// each with the field path that names it.
    pub fn agency_references(&self) -> Vec<(String, &AgencyCode)> {
        let mut refs = vec![("issuer".to_string(), &self.issuer)];
        for (i, item) in self.items.iter().enumerate() {
            refs.extend(
                item.lead
                    .iter()
                    .enumerate()
                    .map(|(j, c)| (format!("items[{i}].lead_agencies[{j}]"), c)),
            );
            refs.extend(
                item.coordinating
                    .iter()
                    .enumerate()
                    .map(|(j, c)| (format!("items[{i}].coordinating_agencies[{j}]"), c)),
            );
        }
        for (i, amendment) in self.amendments.iter().enumerate() {
            let (path, lead, coordinating): (&str, &[AgencyCode], &[AgencyCode]) =
                match &amendment.change {
                    AmendmentChange::Add(item) => ("add_item", &item.lead, &item.coordinating),
                    AmendmentChange::Change(patch) => (
                        "change_item.item",
                        patch.lead.as_deref().unwrap_or(&[]),
                        patch.coordinating.as_deref().unwrap_or(&[]),
                    ),
                    AmendmentChange::Cancel { .. } => continue,
                };
            refs.extend(
                lead.iter()
                    .enumerate()
                    .map(|(j, c)| (format!("amendments[{i}].{path}.lead_agencies[{j}]"), c)),
            );
            refs.extend(coordinating.iter().enumerate().map(|(j, c)| {
                (
                    format!("amendments[{i}].{path}.coordinating_agencies[{j}]"),
                    c,
                )
            }));
        }
        refs
    }

    /// The year a number must be unique in.
    pub fn issue_year(&self) -> Option<i32> {
        self.issue_date.map(|d| d.year())
    }
}

/// Why a directive cannot be issued now, if it cannot.
pub fn check_issuable(
    state: DirectiveState,
    number: Option<&str>,
    issue_date: Option<NaiveDate>,
) -> Result<(), Error> {
    match state {
        DirectiveState::Draft => {}
        DirectiveState::Issued => {
            return Err(Error::precondition(
                "DIRECTIVE_ALREADY_ISSUED",
                "the directive is already issued; an issued directive is changed only by an amending directive",
            ));
        }
        DirectiveState::Revoked => {
            return Err(Error::precondition(
                "DIRECTIVE_REVOKED",
                "the directive was revoked",
            ));
        }
    }
    let mut v = Violations::new();
    if number.is_none_or(str::is_empty) {
        v.add(
            "number",
            "a directive needs its number and symbol before it is issued",
        );
    }
    if issue_date.is_none() {
        v.add(
            "issue_date",
            "a directive needs its issue date before it is issued",
        );
    }
    if v.is_empty() {
        Ok(())
    } else {
        Err(Error::FailedPrecondition {
            reason: "DIRECTIVE_INCOMPLETE",
            message: format!(
                "the draft is incomplete: {}",
                v.into_inner()
                    .into_iter()
                    .map(|x| x.description)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        })
    }
}

/// Refuses to issue a draft with an item that has no lead agency (an
/// imported item whose lead did not resolve), naming the first such item.
pub fn check_leads<'a>(items: impl Iterator<Item = (&'a str, bool)>) -> Result<(), Error> {
    let missing: Vec<String> = items
        .enumerate()
        .filter(|(_, (_, has_lead))| !has_lead)
        .map(|(i, (reference, _))| {
            if reference.is_empty() {
                format!("items[{i}]")
            } else {
                format!("items[{i}] ({reference})")
            }
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::precondition(
            "ITEM_WITHOUT_LEAD",
            format!(
                "{} {} no lead agency (chủ trì): set one with UpdateDirective before issuing",
                missing.join(", "),
                if missing.len() == 1 { "has" } else { "have" }
            ),
        ))
    }
}

/// Checks a revocation: only an issued directive, with a reason.
pub fn check_revocable(state: DirectiveState, reason: &str) -> Result<String, Error> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_SUBJECT_CHARS {
        return Err(Error::invalid(
            "reason",
            format!("say why it is revoked, 1 to {MAX_SUBJECT_CHARS} characters"),
        ));
    }
    match state {
        DirectiveState::Issued => Ok(reason.to_string()),
        DirectiveState::Draft => Err(Error::precondition(
            "DIRECTIVE_NOT_ISSUED",
            "a draft is not revoked; it is simply never issued",
        )),
        DirectiveState::Revoked => Err(Error::precondition(
            "DIRECTIVE_REVOKED",
            "the directive was already revoked",
        )),
    }
}

/// The fields UpdateDirective may change in a draft.
pub const UPDATABLE_FIELDS: [&str; 13] = [
    "kind",
    "number",
    "issuer",
    "signer",
    "place",
    "issue_date",
    "subject",
    "body",
    "recipients",
    "meeting",
    "links",
    "items",
    "amendments",
];

/// Checks an update mask: non-empty, known paths only.
pub fn check_update_mask(mask: &[String]) -> Result<(), Error> {
    let mut v = Violations::new();
    if mask.is_empty() {
        v.add(
            "update_mask",
            format!("list the fields to change: {}", UPDATABLE_FIELDS.join(", ")),
        );
    }
    for path in mask {
        if !UPDATABLE_FIELDS.contains(&path.as_str()) {
            v.add(
                "update_mask",
                format!(
                    "{path:?} is not a field of a draft that can be changed: {}",
                    UPDATABLE_FIELDS.join(", ")
                ),
            );
        }
    }
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn item() -> ItemFields {
        ItemFields {
            reference: "II.4".into(),
            text: "Tham mưu trình HĐND tỉnh".into(),
            lead: vec!["agencies/so-ldtbxh".into()],
            coordinating: vec!["agencies/so-tai-chinh".into()],
            due: Some(date(2024, 9, 30)),
            ..Default::default()
        }
    }

    fn fields() -> DraftFields {
        DraftFields {
            kind: Some(DirectiveKind::ConclusionNotice),
            number: "534/TB-UBND".into(),
            issuer: "agencies/ubnd-quang-ngai".into(),
            signer: Signer {
                full_name: "Lê Chí Phương".into(),
                title: "Phó Chánh Văn phòng".into(),
                capacities: vec!["TL. CHỦ TỊCH".into(), "KT. CHÁNH VĂN PHÒNG".into()],
            },
            issue_date: Some(date(2024, 9, 5)),
            subject: "Kết luận của Chủ tịch UBND tỉnh".into(),
            items: vec![item()],
            ..Default::default()
        }
    }

    fn violated_fields(fields: DraftFields) -> Vec<String> {
        Draft::parse(fields)
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn a_complete_draft_parses() {
        let draft = Draft::parse(fields()).unwrap();
        assert_eq!(draft.items[0].lead[0].name(), "agencies/so-ldtbxh");
        assert_eq!(draft.agency_references().len(), 3);
        assert_eq!(draft.issue_year(), Some(2024));
    }

    #[test]
    fn numbers_keep_vietnamese_symbols_and_refuse_malformed_ones() {
        assert!(DirectiveNumber::parse("4085/UBND-ĐT").is_ok());
        assert!(DirectiveNumber::parse("659/TB-VPCP").is_ok());
        for bad in [
            "534",
            "/TB-UBND",
            "534/",
            "534/tb-ubnd",
            "53a/TB",
            "534/TB--UBND",
        ] {
            assert!(DirectiveNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_item_without_a_lead_is_refused_with_its_path() {
        let mut f = fields();
        f.items.push(ItemFields {
            text: "Phối hợp".into(),
            ..Default::default()
        });
        assert_eq!(violated_fields(f), ["items[1].lead_agencies"]);
    }

    #[test]
    fn a_due_date_before_the_issue_date_is_refused() {
        let mut f = fields();
        f.items[0].due = Some(date(2024, 8, 1));
        assert_eq!(violated_fields(f), ["items[0].due_date"]);
    }

    #[test]
    fn empty_and_overlong_subjects_malformed_numbers_and_capacities_are_refused() {
        let mut f = fields();
        f.subject = " ".into();
        f.number = "534-TB".into();
        f.signer.capacities = vec!["CHỦ TỊCH".into()];
        assert_eq!(
            violated_fields(f),
            ["number", "subject", "signer.capacities[0]"]
        );
        let mut f = fields();
        f.subject = "x".repeat(MAX_SUBJECT_CHARS + 1);
        assert_eq!(violated_fields(f), ["subject"]);
    }

    #[test]
    fn a_lead_may_not_also_coordinate_nor_appear_twice() {
        let mut f = fields();
        f.items[0].coordinating = vec!["agencies/so-ldtbxh".into()];
        f.items[0].lead.push("agencies/so-ldtbxh".into());
        assert_eq!(
            violated_fields(f),
            [
                "items[0].lead_agencies[1]",
                "items[0].coordinating_agencies[0]"
            ]
        );
    }

    #[test]
    fn only_complete_drafts_are_issued_and_only_once() {
        assert!(
            check_issuable(
                DirectiveState::Draft,
                Some("1/TB-UBND"),
                Some(date(2024, 1, 1))
            )
            .is_ok()
        );
        let twice = check_issuable(
            DirectiveState::Issued,
            Some("1/TB-UBND"),
            Some(date(2024, 1, 1)),
        );
        assert!(matches!(
            twice,
            Err(Error::FailedPrecondition {
                reason: "DIRECTIVE_ALREADY_ISSUED",
                ..
            })
        ));
        let incomplete = check_issuable(DirectiveState::Draft, None, None);
        assert!(matches!(
            incomplete,
            Err(Error::FailedPrecondition {
                reason: "DIRECTIVE_INCOMPLETE",
                ..
            })
        ));
    }

    fn amending() -> DraftFields {
        let mut f = fields();
        f.kind = Some(DirectiveKind::OfficialLetter);
        f.number = "612/UBND-KGVX".into();
        f.items.clear();
        f.links = vec![(Some(LinkKind::Amends), "directives/7".into())];
        f.amendments = vec![AmendmentFields {
            target: "directives/7/items/40".into(),
            change: Some(ChangeFields::Change {
                item: ItemFields {
                    due: Some(date(2024, 10, 31)),
                    deadline_text: "trước ngày 31/10/2024".into(),
                    ..Default::default()
                },
                mask: vec!["due_date".into(), "deadline_text".into()],
            }),
        }];
        f
    }

    #[test]
    fn an_amendment_changes_only_its_masked_fields_and_rechecks_the_item() {
        let draft = Draft::parse(amending()).unwrap();
        assert_eq!(
            draft.links,
            [Link {
                kind: LinkKind::Amends,
                target: 7
            }]
        );
        let amendment = &draft.amendments[0];
        assert_eq!(
            (amendment.directive, amendment.item, amendment.kind()),
            (7, Some(40), "CHANGE")
        );
        let AmendmentChange::Change(patch) = &amendment.change else {
            panic!("a change");
        };
        assert_eq!(patch.mask(), ["due_date", "deadline_text"]);
        let before = Draft::parse(fields()).unwrap().items.remove(0);
        let after = patch.apply(&before, Some(date(2024, 9, 5))).unwrap();
        assert_eq!(after.due, Some(date(2024, 10, 31)));
        assert_eq!(after.text, before.text);
        assert_eq!(after.lead, before.lead);
        // The same change against a target issued later is refused.
        assert_eq!(
            amendment.date_violation(Some(date(2024, 11, 1))).unwrap().0,
            "change_item.item.due_date"
        );
        let refused: Vec<_> = patch
            .apply(&before, Some(date(2024, 11, 1)))
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(refused, ["due_date"]);
    }

    #[test]
    fn amendments_need_their_link_a_well_formed_target_and_a_change() {
        let mut f = amending();
        f.links.clear();
        assert_eq!(violated_fields(f), ["amendments[0].target"]);
        let mut f = amending();
        f.amendments[0].target = "directives/7".into();
        assert_eq!(violated_fields(f), ["amendments[0].target"]);
        let mut f = amending();
        f.amendments[0].change = None;
        assert_eq!(violated_fields(f), ["amendments[0].change"]);
        let mut f = amending();
        f.amendments[0].change = Some(ChangeFields::Change {
            item: ItemFields::default(),
            mask: vec!["reference".into()],
        });
        assert_eq!(
            violated_fields(f),
            ["amendments[0].change_item.update_mask"]
        );
        let mut f = amending();
        f.amendments[0].change = Some(ChangeFields::Change {
            item: ItemFields::default(),
            mask: vec!["lead_agencies".into()],
        });
        assert_eq!(
            violated_fields(f),
            ["amendments[0].change_item.item.lead_agencies"]
        );
        let mut f = amending();
        f.amendments[0] = AmendmentFields {
            target: "directives/7".into(),
            change: Some(ChangeFields::Add(ItemFields {
                text: "Bổ sung".into(),
                ..Default::default()
            })),
        };
        assert_eq!(violated_fields(f), ["amendments[0].add_item.lead_agencies"]);
        let mut f = amending();
        f.links.push((None, "directives/8".into()));
        f.links
            .push((Some(LinkKind::Implements), "nghi-quyet/3".into()));
        assert_eq!(violated_fields(f), ["links[1].kind", "links[2].target"]);
    }

    #[test]
    fn imported_items_may_lack_a_lead_but_are_not_issued_without_one() {
        let mut f = fields();
        f.items[0].lead.clear();
        f.lead_optional = true;
        let draft = Draft::parse(f).unwrap();
        let refused = check_leads(
            draft
                .items
                .iter()
                .map(|i| (i.reference.as_str(), !i.lead.is_empty())),
        );
        match refused {
            Err(Error::FailedPrecondition { reason, message }) => {
                assert_eq!(reason, "ITEM_WITHOUT_LEAD");
                assert!(
                    message.starts_with("items[0] (II.4) has no lead"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(check_leads([("II.4", true)].into_iter()).is_ok());
    }

    #[test]
    fn only_issued_directives_are_revoked_and_with_a_reason() {
        assert_eq!(
            check_revocable(DirectiveState::Issued, " sai sót ").unwrap(),
            "sai sót"
        );
        assert!(matches!(
            check_revocable(DirectiveState::Issued, "  "),
            Err(Error::InvalidArgument(v)) if v[0].field == "reason"
        ));
        assert!(matches!(
            check_revocable(DirectiveState::Draft, "x"),
            Err(Error::FailedPrecondition {
                reason: "DIRECTIVE_NOT_ISSUED",
                ..
            })
        ));
        assert!(matches!(
            check_revocable(DirectiveState::Revoked, "x"),
            Err(Error::FailedPrecondition {
                reason: "DIRECTIVE_REVOKED",
                ..
            })
        ));
    }

    #[test]
    fn update_masks_list_known_fields() {
        assert!(check_update_mask(&["number".into(), "items".into()]).is_ok());
        assert!(check_update_mask(&[]).is_err());
        assert!(matches!(
            check_update_mask(&["state".into()]),
            Err(Error::InvalidArgument(v)) if v[0].field == "update_mask"
        ));
    }
}
