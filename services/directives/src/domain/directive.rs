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
) -> Result<DraftItem, Vec<FieldViolation>> {
    let mut v = Violations::new();
    let text = fields.text.trim().to_string();
    if text.is_empty() {
        v.add("text", "must not be empty");
    } else if text.chars().count() > MAX_ITEM_CHARS {
        v.add("text", format!("at most {MAX_ITEM_CHARS} characters"));
    }
    if fields.lead.is_empty() {
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
            if let Some(item) = v.check(&format!("items[{i}]"), parse_item(item, fields.issue_date))
            {
                items.push(item);
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
}
