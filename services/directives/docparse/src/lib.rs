//! # dondoc-docparse
//!
//! A deterministic, rule-based and explained parser for Vietnamese administrative
//! documents (thông báo, công văn, kế hoạch, chỉ thị, quyết định, nghị quyết, báo cáo).
//! It finds the document header (kind, number and symbol, issuer, place and date,
//! subject, signer), the recipients, and the tasks the document assigns: for each task
//! its reference, text, lead and coordinating agencies, and its deadline (a date, with
//! the raw phrase kept) or recurrence, with a confidence and warnings where unsure.
//!
//! No machine learning is involved; every rule is listed in the crate's `README.md`.
//! The parser never invents a deadline: a phrase it cannot turn into a calendar date
//! gives `due = None` and a warning.
//!
//! Entry points: [`parse_text`], [`parse_docx`], [`docx_to_text`], [`to_fixture_json`],
//! and [`fold`] for comparing agency names.
#![forbid(unsafe_code)]

mod agency;
mod deadline;
mod docx;
pub mod fold;
mod header;
mod json;
mod tasks;
mod text;

use serde::Serialize;

pub use chrono::NaiveDate;
pub use docx::{DocxError, docx_to_text, parse_docx};
pub use json::to_fixture_json;

/// The kind of an administrative document, read from its title line ("THÔNG BÁO",
/// "KẾ HOẠCH"…), else from its symbol ("TB-", "KH-"…), else from a "V/v" subject line
/// (a công văn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// Thông báo (notice, e.g. conclusions of a meeting).
    ThongBao,
    /// Công văn (official letter).
    CongVan,
    /// Kế hoạch (plan).
    KeHoach,
    /// Chỉ thị (directive).
    ChiThi,
    /// Quyết định (decision).
    QuyetDinh,
    /// Nghị quyết (resolution).
    NghiQuyet,
    /// Báo cáo (report): no tasks are extracted from a report.
    BaoCao,
    /// Anything else.
    Other,
}

impl DocumentKind {
    /// The snake-case name used in JSON: `"thong_bao"`, `"cong_van"`, `"ke_hoach"`,
    /// `"chi_thi"`, `"quyet_dinh"`, `"nghi_quyet"`, `"bao_cao"` or `"other"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DocumentKind::ThongBao => "thong_bao",
            DocumentKind::CongVan => "cong_van",
            DocumentKind::KeHoach => "ke_hoach",
            DocumentKind::ChiThi => "chi_thi",
            DocumentKind::QuyetDinh => "quyet_dinh",
            DocumentKind::NghiQuyet => "nghi_quyet",
            DocumentKind::BaoCao => "bao_cao",
            DocumentKind::Other => "other",
        }
    }
}

/// The signer block at the end of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signer {
    /// The signer's name, e.g. "Lê Chí Phương".
    pub name: Option<String>,
    /// The signer's own title in normal case, e.g. "Phó Chánh Văn phòng".
    pub title: Option<String>,
    /// Signing capacity lines as written, outermost first, e.g.
    /// `["TL. CHỦ TỊCH", "KT. CHÁNH VĂN PHÒNG"]`.
    pub capacity: Vec<String>,
}

/// The document header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentHeader {
    /// Kind of document.
    pub kind: DocumentKind,
    /// Full number and symbol, e.g. "659/TB-VPCP"; `None` when the number is blank
    /// ("Số: /TB-UBND" in a draft).
    pub number: Option<String>,
    /// The symbol part, e.g. "TB-VPCP" (kept even when the number is blank).
    pub symbol: Option<String>,
    /// Full name of the issuing body.
    pub issuer: Option<String>,
    /// Place line, e.g. "Hà Nội".
    pub place: Option<String>,
    /// Issue date; `None` when the day, month or year is blank or invalid.
    pub issue_date: Option<NaiveDate>,
    /// The raw date phrase, e.g. "ngày tháng 9 năm 2024".
    pub issue_date_text: Option<String>,
    /// Subject (trích yếu).
    pub subject: Option<String>,
    /// Signer block.
    pub signer: Option<Signer>,
}

/// A repeating duty instead of a one-off deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "every", rename_all = "snake_case")]
pub enum Recurrence {
    /// Every month on `day` ("trước ngày 15 hằng tháng"). JSON `{"every":"month","day":15}`.
    #[serde(rename = "month")]
    Monthly {
        /// Day of the month.
        day: u8,
    },
    /// Every quarter on `day` of a month of the quarter ("trước ngày 20 tháng cuối
    /// quý" → month 3; "hằng quý, trước ngày 10 tháng đầu quý sau" → month 1).
    /// `month_in_quarter` is `None` when the document names no month of the quarter.
    /// JSON `{"every":"quarter","day":20,"month_in_quarter":3}`.
    #[serde(rename = "quarter")]
    Quarterly {
        /// Day of the month.
        day: u8,
        /// 1, 2 or 3: which month of the quarter; `None` if not stated.
        month_in_quarter: Option<u8>,
    },
    /// Every year on `day`/`month` ("trước ngày 25/12 hằng năm").
    /// JSON `{"every":"year","month":12,"day":25}`.
    #[serde(rename = "year")]
    Yearly {
        /// Month (1–12).
        month: u8,
        /// Day of the month.
        day: u8,
    },
}

/// One task assigned by the document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedTask {
    /// The document's own reference, e.g. "II.4", "III.3.a", "2-1" (`-k` = k-th
    /// bullet, `+k` = k-th part of a unit split because a sentence names its own lead).
    /// Informative only.
    pub reference: String,
    /// The task's text (labels and crawl artefacts removed, line breaks joined).
    pub text: String,
    /// Lead agencies as written (a group such as "các sở, ban, ngành" is one lead).
    pub lead: Vec<String>,
    /// Coordinating agencies ("phối hợp với …").
    pub coordinating: Vec<String>,
    /// Deadline as a local calendar date; never guessed.
    pub due: Option<NaiveDate>,
    /// The raw deadline phrase, e.g. "trước ngày 30/9/2024".
    pub due_text: Option<String>,
    /// Recurrence for a repeating duty (then `due` is `None`).
    pub recurrence: Option<Recurrence>,
    /// Confidence in this reading, 0..1.
    pub confidence: f32,
    /// What the parser was unsure about.
    pub warnings: Vec<String>,
}

/// The result of parsing one document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedDocument {
    /// Header fields.
    pub document: DocumentHeader,
    /// Tasks in document order (empty for a report).
    pub tasks: Vec<ParsedTask>,
    /// Recipients ("Kính gửi" and "Nơi nhận" entries, "Lưu" and "Như trên" left out).
    pub recipients: Vec<String>,
    /// Document-level warnings.
    pub warnings: Vec<String>,
}

/// Parse the plain text of a document. Never panics, whatever the input.
pub fn parse_text(text: &str) -> ParsedDocument {
    let lines = text::logical_lines(text);
    let mut warnings = Vec::new();
    let parsed_header = header::parse_header(&lines, &mut warnings);
    let recipients = parsed_header.recipients.clone();
    let tasks = if parsed_header.header.kind == DocumentKind::BaoCao {
        warnings.push("document is a report (báo cáo): no tasks extracted".to_string());
        Vec::new()
    } else {
        tasks::extract_tasks(&lines, &parsed_header, &mut warnings)
    };
    ParsedDocument {
        document: parsed_header.header,
        tasks,
        recipients,
        warnings,
    }
}
