//! Header, recipients and signer.

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;

use crate::agency;
use crate::fold::fold_text;
use crate::text::{LabelKind, is_capacity_line, is_upper_line, kind_word_line, parse_label};
use crate::{DocumentHeader, DocumentKind, Signer};

/// Header plus what the task extractor needs to know about the layout.
#[derive(Debug, Clone)]
pub(crate) struct ParsedHeader {
    pub header: DocumentHeader,
    pub recipients: Vec<String>,
    /// "Kính gửi" addressees.
    pub addressees: Vec<String>,
    /// First line of the body (after subject / "Kính gửi").
    pub body_start: usize,
    /// First line after the body ("Nơi nhận", signer).
    pub body_end: usize,
}

// Regexes compiled from literals: `unwrap` cannot fail (unit-tested).
static NUMBER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^Số\s*:?\s*(\d*)\s*((?:/\s*\d{4}\s*)?)/\s*(\p{Lu}[\p{L}\d&\.\-]*)").unwrap()
});
static PLACE_DATE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<place>[^,;:]{2,60}?)\s*,\s*(?P<date>ngày\s*(?P<d>\d{0,2})\s*tháng\s*(?P<m>\d{0,2})\s*năm\s*(?P<y>\d{0,4})|ngày\s*(?P<d2>\d{1,2})\s*[/\-\.]\s*(?P<m2>\d{1,2})\s*[/\-\.]\s*(?P<y2>\d{4}))").unwrap()
});

fn kind_from_word(w: &str) -> DocumentKind {
    match w {
        "thong bao" => DocumentKind::ThongBao,
        "cong van" => DocumentKind::CongVan,
        "ke hoach" => DocumentKind::KeHoach,
        "chi thi" => DocumentKind::ChiThi,
        "quyet dinh" => DocumentKind::QuyetDinh,
        "nghi quyet" => DocumentKind::NghiQuyet,
        "bao cao" => DocumentKind::BaoCao,
        _ => DocumentKind::Other,
    }
}

fn kind_from_symbol(sym: &str) -> DocumentKind {
    let first = fold_text(sym.split('-').next().unwrap_or(""));
    match first.as_str() {
        "tb" => DocumentKind::ThongBao,
        "kh" => DocumentKind::KeHoach,
        "ct" => DocumentKind::ChiThi,
        "qd" => DocumentKind::QuyetDinh,
        "nq" => DocumentKind::NghiQuyet,
        "bc" => DocumentKind::BaoCao,
        "ttr" | "hd" | "ctr" | "tt" | "nd" => DocumentKind::Other,
        _ => DocumentKind::CongVan,
    }
}

fn is_motto(line: &str) -> bool {
    let f = fold_text(line);
    f.starts_with("cong hoa xa hoi chu nghia")
        || f.starts_with("doc lap - tu do")
        || f.starts_with("doc lap tu do")
}

/// Upper-case agency names to normal case: generic phrases keep their usual case
/// ("Ủy ban nhân dân", "Văn phòng", "tỉnh"), the first word of each name part is
/// capitalised ("Sở Lao động – Thương binh và Xã hội"), and place names after an
/// administrative level are capitalised word by word ("tỉnh Quảng Ngãi").
pub(crate) fn agency_case(s: &str) -> String {
    const PHRASES: &[(&str, bool)] = &[
        ("uy ban nhan dan", true),
        ("hoi dong nhan dan", true),
        ("van phong", true),
        ("chinh phu", true),
        ("trung tam", true),
        ("cong an", true),
        ("thanh tra", true),
        ("bao hiem xa hoi", true),
        ("kho bac nha nuoc", true),
    ];
    const ADMIN: &[&str] = &[
        "thanh pho",
        "thi xa",
        "thi tran",
        "tinh",
        "huyen",
        "quan",
        "xa",
        "phuong",
    ];
    const HEAD1: &[&str] = &[
        "so", "bo", "ban", "cuc", "vu", "vien", "hoi", "dai", "bao", "truong", "phong",
    ];
    let words: Vec<&str> = s.split_whitespace().collect();
    let folded: Vec<String> = words.iter().map(|w| fold_text(w)).collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let mut next_cap = true;
    let mut place = false;
    let mut after_connector = false;
    while i < words.len() {
        let lower = words[i].to_lowercase();
        if folded[i] == "va" || words[i].chars().all(|c| !c.is_alphanumeric()) {
            out.push(lower);
            next_cap = true;
            place = false;
            after_connector = true;
            i += 1;
            continue;
        }
        if !after_connector {
            if let Some(ph) = PHRASES.iter().find(|(ph, _)| {
                let n = ph.split(' ').count();
                i + n <= words.len() && folded[i..i + n].join(" ") == *ph
            }) {
                let n = ph.0.split(' ').count();
                let txt: Vec<String> = words[i..i + n].iter().map(|w| w.to_lowercase()).collect();
                let txt = txt.join(" ");
                out.push(capitalize(&txt));
                i += n;
                next_cap = true;
                place = false;
                continue;
            }
            if let Some(ad) = ADMIN.iter().find(|ad| {
                let n = ad.split(' ').count();
                i + n <= words.len() && folded[i..i + n].join(" ") == **ad
            }) {
                let n = ad.split(' ').count();
                let txt: Vec<String> = words[i..i + n].iter().map(|w| w.to_lowercase()).collect();
                out.push(txt.join(" "));
                i += n;
                place = true;
                continue;
            }
            if out.is_empty() && HEAD1.contains(&folded[i].as_str()) {
                out.push(capitalize(&lower));
                i += 1;
                next_cap = true;
                continue;
            }
        }
        if place || next_cap {
            out.push(capitalize(&lower));
        } else {
            out.push(lower);
        }
        next_cap = false;
        after_connector = false;
        i += 1;
    }
    capitalize(&out.join(" "))
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Title case for a signer's title: "PHÓ CHÁNH VĂN PHÒNG" → "Phó Chánh Văn phòng".
pub(crate) fn title_case(s: &str) -> String {
    const COMPOUNDS: &[&str] = &[
        "chu tich",
        "van phong",
        "chu nhiem",
        "giam doc",
        "bo truong",
        "thu truong",
        "truong ban",
        "truong phong",
        "cuc truong",
        "vien truong",
        "hieu truong",
        "thu tuong",
        "tong thu ky",
        "chinh phu",
    ];
    let words: Vec<&str> = s.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if i + 1 < words.len() {
            let pair = format!("{} {}", fold_text(words[i]), fold_text(words[i + 1]));
            if COMPOUNDS.contains(&pair.as_str()) {
                out.push(capitalize(&words[i].to_lowercase()));
                out.push(words[i + 1].to_lowercase());
                i += 2;
                continue;
            }
        }
        out.push(capitalize(&words[i].to_lowercase()));
        i += 1;
    }
    out.join(" ")
}

/// An all-capitals subject in sentence case; numbers and symbols ("66-NQ/TW") kept.
fn sentence_case(s: &str) -> String {
    if !is_upper_line(s) {
        return s.to_string();
    }
    let words: Vec<String> = s
        .split_whitespace()
        .map(|w| {
            if w.chars().any(|c| c.is_ascii_digit() || c == '/') {
                w.to_string()
            } else {
                w.to_lowercase()
            }
        })
        .collect();
    capitalize(&words.join(" "))
}

fn strip_item(s: &str) -> String {
    let t = match parse_label(s) {
        Some((l, rest)) if matches!(l.kind, LabelKind::Bullet(_)) => rest,
        _ => s.to_string(),
    };
    t.trim()
        .trim_end_matches(['.', ';', ','])
        .trim()
        .to_string()
}

fn is_bullet(line: &str) -> bool {
    matches!(parse_label(line), Some((l, _)) if matches!(l.kind, LabelKind::Bullet(_)))
}

const HEADER_SCAN: usize = 40;

/// Parse the header, the recipients and the signer from logical lines.
pub(crate) fn parse_header(lines: &[String], warnings: &mut Vec<String>) -> ParsedHeader {
    let scan = lines.len().min(HEADER_SCAN);
    let first_label = lines
        .iter()
        .position(|l| matches!(parse_label(l), Some((lab, _)) if !matches!(lab.kind, LabelKind::Bullet(_))))
        .unwrap_or(lines.len());
    let scan = scan.min(first_label.max(1));

    let mut last_header_line: Option<usize> = None;
    let bump = |i: usize, last: &mut Option<usize>| {
        if last.is_none_or(|l| i > l) {
            *last = Some(i);
        }
    };

    // number and symbol
    let mut number = None;
    let mut symbol = None;
    let mut number_line = None;
    for (i, l) in lines.iter().enumerate().take(scan) {
        if let Some(c) = NUMBER_RE.captures(l) {
            let n = c.get(1).map(|m| m.as_str()).unwrap_or("");
            let mid: String = c
                .get(2)
                .map(|m| m.as_str())
                .unwrap_or("")
                .split_whitespace()
                .collect();
            let sym = c
                .get(3)
                .map(|m| m.as_str())
                .unwrap_or("")
                .trim_end_matches(['.', '-']);
            symbol = Some(sym.to_string());
            if !n.is_empty() {
                number = Some(format!("{n}{mid}/{sym}"));
            } else {
                warnings.push(format!(
                    "number is blank (\"Số: /{sym}\"): number left empty"
                ));
            }
            number_line = Some(i);
            bump(i, &mut last_header_line);
            break;
        }
    }

    // place and date
    let mut place = None;
    let mut issue_date = None;
    let mut issue_date_text = None;
    for (i, l) in lines.iter().enumerate().take(scan) {
        if let Some(c) = PLACE_DATE_RE.captures(l) {
            place = c.name("place").map(|m| m.as_str().trim().to_string());
            let raw = c.name("date").map(|m| m.as_str()).unwrap_or("");
            issue_date_text = Some(raw.split_whitespace().collect::<Vec<_>>().join(" "));
            let get = |a: &str, b: &str| {
                c.name(a)
                    .or_else(|| c.name(b))
                    .and_then(|m| m.as_str().parse::<u32>().ok())
            };
            let (d, m, y) = (get("d", "d2"), get("m", "m2"), get("y", "y2"));
            match (d, m, y) {
                (Some(d), Some(m), Some(y)) => {
                    issue_date = NaiveDate::from_ymd_opt(y as i32, m, d);
                    if issue_date.is_none() {
                        warnings.push(format!("invalid issue date \"{}\"", issue_date_text.clone().unwrap_or_default()));
                    }
                }
                _ => warnings.push(format!(
                    "issue date incomplete (\"{}\"): left empty; relative deadlines cannot be computed",
                    issue_date_text.clone().unwrap_or_default()
                )),
            }
            bump(i, &mut last_header_line);
            break;
        }
    }

    // kind line and subject
    let mut kind = None;
    let mut subject = None;
    for i in 0..scan {
        if let Some(w) = kind_word_line(&lines[i]) {
            if !is_upper_line(&lines[i]) {
                continue;
            }
            kind = Some(kind_from_word(w));
            bump(i, &mut last_header_line);
            if let Some(next) = lines.get(i + 1) {
                let f = fold_text(next);
                let starts_body = f.starts_with("kinh gui")
                    || f.starts_with("can cu")
                    || parse_label(next).is_some()
                    || PLACE_DATE_RE.is_match(next)
                    || NUMBER_RE.is_match(next);
                if !starts_body {
                    subject = Some(sentence_case(next));
                    bump(i + 1, &mut last_header_line);
                }
            }
            break;
        }
    }
    // "V/v …" subject of a công văn
    let mut vv = false;
    if subject.is_none() {
        for (i, l) in lines.iter().enumerate().take(scan) {
            let f = fold_text(l);
            if f.starts_with("v/v")
                || f.starts_with("ve viec") && i <= number_line.map_or(10, |n| n + 3)
            {
                subject = Some(l.clone());
                vv = true;
                bump(i, &mut last_header_line);
                break;
            }
        }
    }

    // Kính gửi
    let mut addressees = Vec::new();
    for i in 0..scan {
        let f = fold_text(&lines[i]);
        if let Some(rest) = f.strip_prefix("kinh gui") {
            let _ = rest;
            let orig = &lines[i];
            let after = orig.split_once(':').map(|(_, r)| r.trim()).unwrap_or("");
            if !after.is_empty() {
                for part in after.split(';') {
                    let p = strip_item(part);
                    if !p.is_empty() {
                        addressees.push(p);
                    }
                }
            }
            let mut j = i + 1;
            while j < lines.len() && is_bullet(&lines[j]) {
                let p = strip_item(&lines[j]);
                if !p.is_empty() {
                    addressees.push(p);
                }
                j += 1;
            }
            bump(j - 1, &mut last_header_line);
            break;
        }
    }

    // Issuer from the upper-case block at the top.
    let stop = [number_line, last_header_line]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(0)
        .min(scan);
    let mut block: Vec<&String> = Vec::new();
    for l in lines.iter().take(stop) {
        if is_motto(l) || kind_word_line(l).is_some() {
            continue;
        }
        if is_upper_line(l) {
            block.push(l);
        } else if !block.is_empty() {
            break;
        }
    }
    let mut issuer = None;
    if !block.is_empty() {
        let starts_head = |s: &str| {
            let toks = agency::tokenize(s);
            agency::parse_agency(s, &toks, 0).is_some()
                || [
                    "uy ban",
                    "ubnd",
                    "so ",
                    "bo ",
                    "ban ",
                    "van phong",
                    "cong an",
                    "trung tam",
                    "hoi dong",
                ]
                .iter()
                .any(|h| fold_text(s).starts_with(h))
        };
        let last = block[block.len() - 1];
        let name = if block.len() >= 2 && starts_head(last) {
            last.to_string()
        } else {
            block
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        issuer = Some(agency_case(&name));
    }

    // Kind: title line, else symbol, else "V/v", else report-like subject.
    let mut kind = kind.unwrap_or(DocumentKind::Other);
    if kind == DocumentKind::Other {
        if let Some(sym) = &symbol {
            kind = kind_from_symbol(sym);
        } else if vv {
            kind = DocumentKind::CongVan;
        }
    }
    // Untitled text: the first substantive line is the subject.
    let mut subject_line = None;
    if subject.is_none() {
        for (i, l) in lines.iter().enumerate().take(scan) {
            if l.split_whitespace().count() >= 5 && parse_label(l).is_none() && !is_motto(l) {
                subject = Some(l.clone());
                subject_line = Some(i);
                break;
            }
        }
    }
    if kind == DocumentKind::Other
        && let Some(s) = &subject
    {
        let f = fold_text(s);
        if [
            "bao cao",
            "ket qua thuc hien",
            "ket qua cong tac",
            "tinh hinh thuc hien",
            "tinh hinh va ket qua",
            "tinh hinh, ket qua",
            "so ket",
            "tong ket",
        ]
        .iter()
        .any(|p| f.starts_with(p))
        {
            kind = DocumentKind::BaoCao;
            warnings.push("no title line: kind taken as report (báo cáo) from the subject".into());
        }
    }

    // Issuer fallbacks.
    if issuer.is_none()
        && let Some(sym) = &symbol
    {
        let parts: Vec<&str> = sym.split('-').collect();
        let body = if kind_from_symbol(sym) == DocumentKind::CongVan {
            parts.first().copied()
        } else {
            parts.get(1).copied()
        };
        if let (Some(body), Some(pl)) = (body, &place)
            && matches!(fold_text(body).as_str(), "ubnd" | "hdnd")
        {
            let name = if fold_text(body) == "ubnd" {
                "Ủy ban nhân dân"
            } else {
                "Hội đồng nhân dân"
            };
            let all = fold_text(&lines.join(" "));
            let level = if all.contains("ubnd tinh")
                || all.contains("uy ban nhan dan tinh")
                || all.contains(&format!("tinh {}", fold_text(pl)))
            {
                Some("tỉnh")
            } else if all.contains(&format!("thanh pho {}", fold_text(pl)))
                || all.contains("ubnd thanh pho")
            {
                Some("thành phố")
            } else if all.contains("ubnd huyen") {
                Some("huyện")
            } else {
                None
            };
            let pl_clean = pl.trim();
            let already = fold_text(pl_clean).starts_with("thanh pho")
                || fold_text(pl_clean).starts_with("tinh");
            issuer = Some(match (level, already) {
                (Some(lv), false) => format!("{name} {lv} {pl_clean}"),
                _ => format!("{name} {pl_clean}"),
            });
            warnings.push("issuer inferred from the symbol and the place line".into());
        }
    }
    if issuer.is_none() && kind == DocumentKind::BaoCao {
        let start = subject_line.unwrap_or(0);
        for l in lines.iter().skip(start).take(6) {
            if let Some(a) = agency::reporting_subject(l) {
                issuer = Some(a);
                warnings.push("issuer inferred from the reporting body named in the text".into());
                break;
            }
        }
    }
    if issuer.is_none() {
        warnings.push("issuer not found".into());
    }

    // Body bounds.
    let body_start = last_header_line
        .map(|l| l + 1)
        .unwrap_or(subject_line.map_or(0, |s| s + 1));
    let noi_nhan = lines
        .iter()
        .enumerate()
        .skip(body_start)
        .find(|(_, l)| fold_text(l).starts_with("noi nhan"))
        .map(|(i, _)| i);
    let first_capacity = lines
        .iter()
        .enumerate()
        .skip(body_start)
        .find(|(_, l)| is_capacity_line(l))
        .map(|(i, _)| i);
    let body_end = [noi_nhan, first_capacity]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(lines.len())
        .max(body_start);

    // Nơi nhận
    let mut recipients = addressees.clone();
    if let Some(n) = noi_nhan {
        let after = lines[n]
            .split_once(':')
            .map(|(_, r)| r.trim())
            .unwrap_or("");
        let mut items: Vec<String> = after
            .split(';')
            .map(strip_item)
            .filter(|s| !s.is_empty())
            .collect();
        let mut j = n + 1;
        while j < lines.len() && is_bullet(&lines[j]) {
            items.push(strip_item(&lines[j]));
            j += 1;
        }
        for it in items {
            let f = fold_text(&it);
            if f.starts_with("luu") || f.starts_with("nhu tren") || it.is_empty() {
                continue;
            }
            if !recipients.contains(&it) {
                recipients.push(it);
            }
        }
    }

    let signer = parse_signer(lines, body_start);

    ParsedHeader {
        header: DocumentHeader {
            kind,
            number,
            symbol,
            issuer,
            place,
            issue_date,
            issue_date_text,
            subject,
            signer,
        },
        recipients,
        addressees,
        body_start,
        body_end,
    }
}

fn is_name_line(s: &str) -> bool {
    let words: Vec<&str> = s.split_whitespace().collect();
    (2..=6).contains(&words.len())
        && words.iter().all(|w| {
            w.chars().all(|c| c.is_alphabetic())
                && w.chars().next().is_some_and(|c| c.is_uppercase())
        })
        && !is_upper_line(s)
}

const SIGNER_TITLES: &[&str] = &[
    "chu tich",
    "pho chu tich",
    "giam doc",
    "pho giam doc",
    "bo truong",
    "thu truong",
    "thu tuong",
    "pho thu tuong",
    "chanh van phong",
    "pho chanh van phong",
    "truong ban",
    "pho truong ban",
    "chu nhiem",
    "pho chu nhiem",
    "cuc truong",
    "pho cuc truong",
    "tong giam doc",
    "chi cuc truong",
];

fn parse_signer(lines: &[String], from: usize) -> Option<Signer> {
    // the last block of capacity lines
    let mut cap_start = None;
    for i in (from..lines.len()).rev() {
        if is_capacity_line(&lines[i]) {
            let mut s = i;
            while s > from && is_capacity_line(&lines[s - 1]) {
                s -= 1;
            }
            cap_start = Some((s, i));
            break;
        }
    }
    let (title_idx, capacity) = match cap_start {
        Some((s, e)) => (
            e + 1,
            lines[s..=e]
                .iter()
                .map(|l| l.trim().trim_end_matches(',').to_string())
                .collect::<Vec<_>>(),
        ),
        None => {
            // a bare title line ("CHỦ TỊCH") followed by a name
            let idx = (from..lines.len()).rev().find(|&i| {
                is_upper_line(&lines[i]) && SIGNER_TITLES.contains(&fold_text(&lines[i]).as_str())
            })?;
            (idx, Vec::new())
        }
    };
    let mut title = None;
    let mut name = None;
    let mut k = title_idx;
    if k < lines.len() && is_upper_line(&lines[k]) && !is_name_line(&lines[k]) {
        title = Some(title_case(&lines[k]));
        k += 1;
    }
    for l in lines.iter().skip(k).take(4) {
        if is_name_line(l) {
            name = Some(l.trim().to_string());
            break;
        }
    }
    if title.is_none() && capacity.is_empty() && name.is_none() {
        return None;
    }
    Some(Signer {
        name,
        title,
        capacity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::logical_lines;

    #[test]
    fn draft_header_with_blank_number_and_day() {
        let lines = logical_lines(
            "Số: /TB-UBND\n\nQuảng Ngãi, ngày  tháng 9 năm 2024\n\nTHÔNG BÁO\n\nKết luận của Chủ tịch UBND tỉnh\n\nNgày 23/8/2024, UBND tỉnh họp.\n\nI. Đánh giá\n\nTL. CHỦ TỊCH\nKT. CHÁNH VĂN PHÒNG\nPHÓ CHÁNH VĂN PHÒNG\n\nLê Chí Phương",
        );
        let mut w = Vec::new();
        let h = parse_header(&lines, &mut w);
        assert_eq!(h.header.number, None);
        assert_eq!(h.header.symbol.as_deref(), Some("TB-UBND"));
        assert_eq!(h.header.kind, DocumentKind::ThongBao);
        assert_eq!(h.header.issue_date, None);
        assert_eq!(
            h.header.issue_date_text.as_deref(),
            Some("ngày tháng 9 năm 2024")
        );
        assert_eq!(h.header.place.as_deref(), Some("Quảng Ngãi"));
        assert_eq!(
            h.header.issuer.as_deref(),
            Some("Ủy ban nhân dân tỉnh Quảng Ngãi")
        );
        let s = h.header.signer.unwrap();
        assert_eq!(s.capacity, vec!["TL. CHỦ TỊCH", "KT. CHÁNH VĂN PHÒNG"]);
        assert_eq!(s.title.as_deref(), Some("Phó Chánh Văn phòng"));
        assert_eq!(s.name.as_deref(), Some("Lê Chí Phương"));
    }

    #[test]
    fn full_header() {
        let lines = logical_lines(
            "UBND TỈNH QUẢNG NGÃI\nSỞ TÀI CHÍNH\n-----\nCỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập - Tự do - Hạnh phúc\n------\nSố: 12/2024/QĐ-STC\n\nQuảng Ngãi, ngày 05/02/2024\n\nQUYẾT ĐỊNH\nVề việc giao nhiệm vụ\n\nĐiều 1. Giao",
        );
        let mut w = Vec::new();
        let h = parse_header(&lines, &mut w);
        assert_eq!(h.header.number.as_deref(), Some("12/2024/QĐ-STC"));
        assert_eq!(h.header.symbol.as_deref(), Some("QĐ-STC"));
        assert_eq!(h.header.kind, DocumentKind::QuyetDinh);
        assert_eq!(h.header.issuer.as_deref(), Some("Sở Tài chính"));
        assert_eq!(h.header.issue_date, NaiveDate::from_ymd_opt(2024, 2, 5));
        assert_eq!(h.header.subject.as_deref(), Some("Về việc giao nhiệm vụ"));
    }

    #[test]
    fn casing() {
        assert_eq!(
            agency_case("ỦY BAN NHÂN DÂN THÀNH PHỐ HỒ CHÍ MINH"),
            "Ủy ban nhân dân thành phố Hồ Chí Minh"
        );
        assert_eq!(
            agency_case("SỞ LAO ĐỘNG - THƯƠNG BINH VÀ XÃ HỘI"),
            "Sở Lao động - Thương binh và Xã hội"
        );
        assert_eq!(agency_case("VĂN PHÒNG CHÍNH PHỦ"), "Văn phòng Chính phủ");
        assert_eq!(title_case("PHÓ CHỦ TỊCH"), "Phó Chủ tịch");
    }
}
