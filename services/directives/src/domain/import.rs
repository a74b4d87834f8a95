//! From a parsed document (`dondoc_docparse`) to a proposed draft: agency
//! names as written are resolved against the directory by the caller's
//! resolver; what does not fit a draft is left out and said in warnings.
//! Nothing is invented: a deadline the parser could not date stays empty.

use chrono::NaiveDate;
use dondoc_docparse::{DocumentKind, ParsedDocument, Recurrence as ParsedRecurrence};
use dondoc_time::Recurrence;

use super::agency::AgencyCode;
use super::directive::{DirectiveKind, DirectiveNumber, Signer};

/// What the directory says of a name as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameResolution {
    /// The agency to assign, with a note when it is not the one the name
    /// designated (a successor after a merge).
    Agency {
        /// The agency.
        code: AgencyCode,
        /// Why it differs from the name, if it does.
        note: Option<String>,
    },
    /// No agency to assign; why.
    Unresolved(String),
}

/// One proposed item.
#[derive(Debug, Clone, PartialEq)]
pub struct ProposedItem {
    /// Reference.
    pub reference: String,
    /// Text.
    pub text: String,
    /// Lead agencies that resolved (possibly none).
    pub lead: Vec<AgencyCode>,
    /// Coordinating agencies that resolved.
    pub coordinating: Vec<AgencyCode>,
    /// Due date.
    pub due: Option<NaiveDate>,
    /// Recurrence.
    pub recurrence: Option<Recurrence>,
    /// The deadline phrase as written.
    pub deadline_text: String,
}

/// What the importer was unsure of for one item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemNote {
    /// Reference.
    pub reference: String,
    /// 0 to 1.
    pub confidence: f32,
    /// What to check.
    pub warnings: Vec<String>,
}

/// A proposed draft.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// Kind.
    pub kind: DirectiveKind,
    /// Number, when the document gives a well-formed one.
    pub number: Option<DirectiveNumber>,
    /// Issuer, when it resolved.
    pub issuer: Option<AgencyCode>,
    /// The issuer as written.
    pub issuer_text: Option<String>,
    /// Signer.
    pub signer: Signer,
    /// Place.
    pub place: String,
    /// Issue date.
    pub issue_date: Option<NaiveDate>,
    /// Subject.
    pub subject: String,
    /// Body: the document's text.
    pub body: String,
    /// Recipients.
    pub recipients: Vec<String>,
    /// Items.
    pub items: Vec<ProposedItem>,
    /// One note per item.
    pub notes: Vec<ItemNote>,
    /// Names that did not resolve, as written, each once.
    pub unresolved: Vec<String>,
    /// About the whole document.
    pub warnings: Vec<String>,
}

/// The directive kind of a document kind.
pub fn directive_kind(kind: DocumentKind) -> DirectiveKind {
    match kind {
        DocumentKind::ThongBao => DirectiveKind::ConclusionNotice,
        DocumentKind::CongVan => DirectiveKind::OfficialLetter,
        DocumentKind::KeHoach => DirectiveKind::Plan,
        DocumentKind::ChiThi => DirectiveKind::Directive,
        DocumentKind::QuyetDinh => DirectiveKind::Decision,
        DocumentKind::NghiQuyet => DirectiveKind::Resolution,
        DocumentKind::BaoCao => DirectiveKind::Report,
        DocumentKind::Other => DirectiveKind::Other,
    }
}

fn recurrence(parsed: ParsedRecurrence) -> Result<Recurrence, String> {
    let rule = match parsed {
        ParsedRecurrence::Monthly { day } => Recurrence::Monthly { day: day.into() },
        ParsedRecurrence::Quarterly {
            day,
            month_in_quarter: Some(m),
        } => Recurrence::Quarterly {
            month_of_quarter: m.into(),
            day: day.into(),
        },
        ParsedRecurrence::Quarterly {
            month_in_quarter: None,
            ..
        } => {
            return Err(
                "a quarterly duty without its month of the quarter: set the recurrence by hand"
                    .into(),
            );
        }
        ParsedRecurrence::Yearly { month, day } => Recurrence::Yearly {
            month: month.into(),
            day: day.into(),
        },
    };
    rule.validate().map(|()| rule).map_err(str::to_string)
}

/// How much a lead that did not resolve lowers an item's confidence.
pub const UNRESOLVED_LEAD_PENALTY: f32 = 0.3;

/// Maps a parsed document to a proposal, resolving every agency name with
/// `resolve`. `body` is the document's text.
pub fn propose(
    parsed: &ParsedDocument,
    body: &str,
    resolve: &mut dyn FnMut(&str) -> NameResolution,
) -> Proposal {
    let header = &parsed.document;
    let mut warnings = parsed.warnings.clone();
    let mut unresolved: Vec<String> = Vec::new();
    let note_unresolved = |name: &str, unresolved: &mut Vec<String>| {
        if !unresolved.iter().any(|n| n == name) {
            unresolved.push(name.to_string());
        }
    };
    let number = match header.number.as_deref() {
        None => {
            warnings.push("the document has no number yet: set it before issuing".into());
            None
        }
        Some(text) => match DirectiveNumber::parse(text) {
            Ok(number) => Some(number),
            Err(e) => {
                warnings.push(format!("number left out: {e}"));
                None
            }
        },
    };
    if header.issue_date.is_none() {
        warnings.push(format!(
            "the issue date is incomplete ({}): set it before issuing",
            header.issue_date_text.as_deref().unwrap_or("not found")
        ));
    }
    let issuer = match header.issuer.as_deref() {
        None => {
            warnings.push("no issuer found".into());
            None
        }
        Some(name) => match resolve(name) {
            NameResolution::Agency { code, note } => {
                if let Some(note) = note {
                    warnings.push(format!("issuer: {note}"));
                }
                Some(code)
            }
            NameResolution::Unresolved(why) => {
                warnings.push(format!("issuer {name:?}: {why}"));
                note_unresolved(name, &mut unresolved);
                None
            }
        },
    };
    let signer = header
        .signer
        .as_ref()
        .map(|s| Signer {
            full_name: s.name.clone().unwrap_or_default(),
            title: s.title.clone().unwrap_or_default(),
            capacities: s.capacity.clone(),
        })
        .unwrap_or_default();
    let subject = header.subject.clone().unwrap_or_default();
    if subject.is_empty() {
        warnings.push("no subject (trích yếu) found".into());
    }
    let mut items = Vec::with_capacity(parsed.tasks.len());
    let mut notes = Vec::with_capacity(parsed.tasks.len());
    for task in &parsed.tasks {
        let mut item_warnings = task.warnings.clone();
        let mut confidence = task.confidence;
        let mut resolve_all = |names: &[String],
                               role: &str,
                               item_warnings: &mut Vec<String>,
                               unresolved: &mut Vec<String>| {
            let mut codes: Vec<AgencyCode> = Vec::new();
            for name in names {
                match resolve(name) {
                    NameResolution::Agency { code, note } => {
                        if let Some(note) = note {
                            item_warnings.push(format!("{role} {name:?}: {note}"));
                        }
                        if !codes.contains(&code) {
                            codes.push(code);
                        }
                    }
                    NameResolution::Unresolved(why) => {
                        item_warnings.push(format!("{role} {name:?} left out: {why}"));
                        note_unresolved(name, unresolved);
                    }
                }
            }
            codes
        };
        let lead = resolve_all(&task.lead, "lead", &mut item_warnings, &mut unresolved);
        let coordinating: Vec<AgencyCode> = resolve_all(
            &task.coordinating,
            "coordinating",
            &mut item_warnings,
            &mut unresolved,
        )
        .into_iter()
        .filter(|c| !lead.contains(c))
        .collect();
        if lead.is_empty() {
            item_warnings.push(
                "no lead agency resolved: set one with UpdateDirective before issuing".into(),
            );
            confidence -= UNRESOLVED_LEAD_PENALTY;
        }
        let mut due = task.due;
        if let (Some(d), Some(issued)) = (due, header.issue_date)
            && d < issued
        {
            item_warnings.push(format!(
                "due date {d} is before the issue date {issued}: left out"
            ));
            due = None;
        }
        let recurrence = match task.recurrence.map(recurrence) {
            None => None,
            Some(Ok(rule)) => Some(rule),
            Some(Err(why)) => {
                item_warnings.push(why);
                None
            }
        };
        let due = if recurrence.is_some() { None } else { due };
        notes.push(ItemNote {
            reference: task.reference.clone(),
            confidence: confidence.clamp(0.0, 1.0),
            warnings: item_warnings,
        });
        items.push(ProposedItem {
            reference: task.reference.clone(),
            text: task.text.clone(),
            lead,
            coordinating,
            due,
            recurrence,
            deadline_text: task.due_text.clone().unwrap_or_default(),
        });
    }
    Proposal {
        kind: directive_kind(header.kind),
        number,
        issuer,
        issuer_text: header.issuer.clone(),
        signer,
        place: header.place.clone().unwrap_or_default(),
        issue_date: header.issue_date,
        subject,
        body: body.to_string(),
        recipients: parsed.recipients.clone(),
        items,
        notes,
        unresolved,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::text::fold_name;

    const QUANG_NGAI: &str = include_str!(
        "../../../../../shared/fixtures/documents/quangngai-tb-ket-luan-sldtbxh-2024.txt"
    );

    fn directory(name: &str) -> NameResolution {
        let code = match fold_name(name).as_str() {
            "uy ban nhan dan tinh quang ngai" => "ubnd-quang-ngai",
            "so lao dong thuong binh va xa hoi" => {
                return NameResolution::Agency {
                    code: AgencyCode::parse("so-noi-vu").unwrap(),
                    note: Some("merged into agencies/so-noi-vu".into()),
                };
            }
            "so tai chinh" => "so-tai-chinh",
            "so ke hoach va dau tu" => "so-kh-dt",
            "so xay dung" => "so-xay-dung",
            "so thong tin va truyen thong" => "so-tt-tt",
            _ => return NameResolution::Unresolved("not in the agency directory".into()),
        };
        NameResolution::Agency {
            code: AgencyCode::parse(code).unwrap(),
            note: None,
        }
    }

    #[test]
    fn the_quang_ngai_notice_becomes_fifteen_items_with_resolved_leads() {
        let parsed = dondoc_docparse::parse_text(QUANG_NGAI);
        let proposal = propose(&parsed, QUANG_NGAI, &mut directory);
        assert_eq!(proposal.kind, DirectiveKind::ConclusionNotice);
        assert_eq!(proposal.number, None);
        assert_eq!(
            proposal.issuer.as_ref().unwrap().as_str(),
            "ubnd-quang-ngai"
        );
        assert_eq!(
            proposal.signer.capacities,
            ["TL. CHỦ TỊCH", "KT. CHÁNH VĂN PHÒNG"]
        );
        assert_eq!(proposal.items.len(), 15);
        assert_eq!(proposal.notes.len(), 15);
        let ii4 = &proposal.items[3];
        assert_eq!(ii4.reference, "II.4");
        assert_eq!(ii4.lead[0].as_str(), "so-noi-vu");
        assert_eq!(ii4.due, NaiveDate::from_ymd_opt(2024, 9, 30));
        assert!(
            proposal.notes[3]
                .warnings
                .iter()
                .any(|w| w.contains("merged into"))
        );
        // II.9 is addressed to groups ("các sở, ban, ngành"): no lead resolves.
        let ii9 = &proposal.items[9];
        assert!(ii9.lead.is_empty());
        assert!(
            proposal.notes[9]
                .warnings
                .iter()
                .any(|w| w.contains("no lead agency resolved"))
        );
        assert!(proposal.notes[9].confidence < parsed.tasks[9].confidence);
        assert!(
            proposal
                .unresolved
                .iter()
                .any(|n| n == "Các sở, ban, ngành")
        );
        // Nothing is invented.
        let dated = proposal.items.iter().filter(|i| i.due.is_some()).count();
        assert_eq!(dated, 3);
        assert!(proposal.warnings.iter().any(|w| w.contains("no number")));
    }

    #[test]
    fn unrepresentable_recurrences_and_early_due_dates_are_left_out_with_a_warning() {
        assert!(
            recurrence(ParsedRecurrence::Quarterly {
                day: 15,
                month_in_quarter: None
            })
            .is_err()
        );
        assert_eq!(
            recurrence(ParsedRecurrence::Yearly { month: 12, day: 25 }).unwrap(),
            Recurrence::Yearly { month: 12, day: 25 }
        );
        let text = "UBND TỈNH QUẢNG NGÃI\nSố: 12/TB-UBND\nQuảng Ngãi, ngày 10 tháng 10 năm 2024\nTHÔNG BÁO\nVề việc thử\n1. Giao Sở Tài chính chủ trì thực hiện trước ngày 30/9/2024.\n";
        let mut parsed = dondoc_docparse::parse_text(text);
        parsed.document.issue_date = NaiveDate::from_ymd_opt(2024, 10, 10);
        let proposal = propose(&parsed, text, &mut directory);
        assert_eq!(proposal.number.as_ref().unwrap().as_str(), "12/TB-UBND");
        assert_eq!(proposal.items[0].lead[0].as_str(), "so-tai-chinh");
        assert_eq!(proposal.items[0].due, None);
        assert_eq!(proposal.items[0].deadline_text, "trước ngày 30/9/2024");
        assert!(
            proposal.notes[0]
                .warnings
                .iter()
                .any(|w| w.contains("before the issue date"))
        );
    }
}
