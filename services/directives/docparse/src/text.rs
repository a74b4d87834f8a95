//! Cleaning raw text and rebuilding logical lines (paragraphs or sentences that were
//! hard-wrapped), and recognising unit labels (I., 1., 1.1., a), -, +, •, Điều 1.).

use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use crate::fold::fold_text;

/// Kind of a unit label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabelKind {
    /// I., II., IV)…
    Roman,
    /// 1. / 1) (depth 1), 1.1. (depth 2), 1.1.1. (depth 3)…
    Arabic(usize),
    /// a) / a. / đ)
    Letter,
    /// A. / B) (letters that are not roman numerals)
    UpperLetter,
    /// Điều 1.
    Article,
    /// -, –, +, •… (the char identifies the bullet family)
    Bullet(char),
}

/// A label found at the start of a logical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Label {
    pub kind: LabelKind,
    /// "II", "1", "1.1", "a", "Điều 1"; empty for bullets.
    pub value: String,
}

// Regexes compiled from literals: `unwrap` cannot fail (checked by the unit tests).
static ROMAN_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^((?:X{0,3})(?:IX|IV|V?I{0,3}))\s*[\.\)]\s*(\S.*)?$").unwrap());
static ARABIC_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d{1,2}(?:\.\d{1,2}){0,4})\s*(?:\.|\))\s+(\S.*)$").unwrap());
static ARABIC_BARE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d{1,2}(?:\.\d{1,2}){0,4})\s*(?:\.|\))$").unwrap());
static LETTER_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([a-zđ])\s*[\)\.]\s+(\S.*)$").unwrap());
static UPPER_LETTER_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-HJ-UWYĐ])\s*[\)\.]\s+(\S.*)$").unwrap());
static ARTICLE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(Điều\s+\d{1,3})\s*[\.:]\s*(\S.*)?$").unwrap());
static BULLET_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([\-–—+•·◦▪○●►✓])\s*(\S.*)$").unwrap());
static CAPACITY_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:TL|KT|TM|TUQ|Q|QUYỀN|THỪA LỆNH|THỪA ỦY QUYỀN|THỪA UỶ QUYỀN)\s*[\.:]?\s+\p{Lu}")
        .unwrap()
});

/// Parse a label at the start of `line`; returns the label and the rest of the line.
pub(crate) fn parse_label(line: &str) -> Option<(Label, String)> {
    let line = line.trim();
    if let Some(c) = ARTICLE_RE.captures(line) {
        let value = c[1].split_whitespace().collect::<Vec<_>>().join(" ");
        let rest = c.get(2).map(|m| m.as_str().to_string()).unwrap_or_default();
        return Some((
            Label {
                kind: LabelKind::Article,
                value,
            },
            rest,
        ));
    }
    if let Some(c) = ROMAN_RE.captures(line) {
        let v = &c[1];
        if !v.is_empty() {
            let rest = c.get(2).map(|m| m.as_str().to_string()).unwrap_or_default();
            // "I. " needs text after it or an upper-case heading; a lone "V." is fine too.
            return Some((
                Label {
                    kind: LabelKind::Roman,
                    value: v.to_string(),
                },
                rest,
            ));
        }
    }
    if let Some(c) = ARABIC_RE.captures(line) {
        let v = c[1].to_string();
        let depth = v.split('.').count();
        return Some((
            Label {
                kind: LabelKind::Arabic(depth),
                value: v,
            },
            c[2].to_string(),
        ));
    }
    if let Some(c) = ARABIC_BARE_RE.captures(line) {
        let v = c[1].to_string();
        let depth = v.split('.').count();
        return Some((
            Label {
                kind: LabelKind::Arabic(depth),
                value: v,
            },
            String::new(),
        ));
    }
    if let Some(c) = LETTER_RE.captures(line) {
        return Some((
            Label {
                kind: LabelKind::Letter,
                value: c[1].to_string(),
            },
            c[2].to_string(),
        ));
    }
    if let Some(c) = UPPER_LETTER_RE.captures(line) {
        return Some((
            Label {
                kind: LabelKind::UpperLetter,
                value: c[1].to_string(),
            },
            c[2].to_string(),
        ));
    }
    if let Some(c) = BULLET_RE.captures(line) {
        let rest = c[2].to_string();
        let first = rest.chars().next().unwrap_or(' ');
        // "- 2025" in a wrapped range is not a bullet.
        if first.is_alphabetic() || first == '(' || first == '"' || first == '“' {
            let ch = match c[1].chars().next().unwrap_or('-') {
                '–' | '—' => '-',
                '·' | '●' | '▪' | '◦' | '○' | '►' | '✓' => '•',
                other => other,
            };
            return Some((
                Label {
                    kind: LabelKind::Bullet(ch),
                    value: String::new(),
                },
                rest,
            ));
        }
    }
    None
}

/// True when the line starts a signing-capacity block ("TL. CHỦ TỊCH", "KT. GIÁM ĐỐC").
pub(crate) fn is_capacity_line(line: &str) -> bool {
    CAPACITY_RE.is_match(line.trim())
}

/// True for an all-capitals line (at least 90% of at least two letters).
pub(crate) fn is_upper_line(s: &str) -> bool {
    let mut letters = 0usize;
    let mut upper = 0usize;
    for c in s.chars() {
        if c.is_alphabetic() {
            letters += 1;
            if c.is_uppercase() {
                upper += 1;
            }
        }
    }
    letters >= 2 && upper * 10 >= letters * 9
}

fn starts_lowercase(s: &str) -> bool {
    s.chars()
        .find(|c| c.is_alphanumeric())
        .is_some_and(|c| c.is_lowercase())
}

fn ends_terminal(s: &str) -> bool {
    let t = s.trim_end();
    t.ends_with('.') || t.ends_with(';') || t.ends_with(':') || t.ends_with('!') || t.ends_with('?')
}

const KIND_WORDS: &[&str] = &[
    "thong bao",
    "cong van",
    "ke hoach",
    "chi thi",
    "quyet dinh",
    "nghi quyet",
    "bao cao",
    "to trinh",
    "huong dan",
    "chuong trinh",
];

/// Upper-case words that begin a multi-word agency head in a header ("ỦY" of "ỦY BAN").
const HEAD_FIRST_WORDS: &[&str] = &[
    "uy", "van", "hoi", "cong", "trung", "bao", "kho", "thanh", "tong", "chi", "benh", "ngan",
    "mat", "lien", "bo", "so",
];

const UPPER_HEADS: &[&str] = &[
    "so ",
    "ban ",
    "bo ",
    "uy ban",
    "ubnd",
    "van phong",
    "cong an",
    "thanh tra",
    "kho bac",
    "bao hiem",
    "cuc ",
    "chi cuc",
    "tong cuc",
    "trung tam",
    "truong ",
    "benh vien",
    "cong ty",
    "tong cong ty",
    "hoi dong",
    "hdnd",
    "phong ",
];

/// True for lines such as "THÔNG BÁO" that are exactly a kind of document.
pub(crate) fn kind_word_line(s: &str) -> Option<&'static str> {
    let f = fold_text(s);
    let f = f.trim_matches(|c: char| !c.is_alphanumeric());
    KIND_WORDS.iter().copied().find(|k| *k == f)
}

fn is_separator(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty()
        && t.chars().all(|c| {
            matches!(c, '-' | '–' | '—' | '_' | '=' | '.' | '|' | '*' | '~') || c.is_whitespace()
        })
        && t.chars()
            .filter(|c| *c != '|' && !c.is_whitespace())
            .count()
            >= 3
}

struct RawLine {
    text: String,
    blank_before: bool,
    separator_before: bool,
    opens_emphasis: bool,
    closes_emphasis: bool,
}

/// Normalise the whole text (NFC, odd spaces) and clean every line of crawl artefacts.
fn raw_lines(text: &str) -> Vec<RawLine> {
    let text: String = text
        .nfc()
        .map(|c| match c {
            '\u{a0}' | '\u{2007}' | '\u{202f}' | '\t' => ' ',
            c => c,
        })
        .filter(|c| !matches!(c, '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{feff}' | '\r'))
        .collect();
    let mut out = Vec::new();
    let mut blank = false;
    let mut sep = false;
    for raw in text.split('\n') {
        let t = raw.trim();
        if is_separator(t) {
            sep = true;
            continue;
        }
        let t = t.trim_matches('|').trim();
        if t.is_empty() {
            blank = true;
            continue;
        }
        let opens = t.starts_with('*') || t.starts_with('_');
        let closes = t.ends_with('*');
        let cleaned: String = t.replace("**", "").replace(['*'], "");
        let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
        if cleaned.is_empty() {
            blank = true;
            continue;
        }
        out.push(RawLine {
            text: cleaned,
            blank_before: blank,
            separator_before: sep,
            opens_emphasis: opens,
            closes_emphasis: closes,
        });
        blank = false;
        sep = false;
    }
    out
}

fn forced_start(s: &str) -> bool {
    if parse_label(s).is_some() || is_capacity_line(s) {
        return true;
    }
    let f = fold_text(s);
    [
        "noi nhan", "kinh gui", "so:", "so :", "v/v", "ve viec:", "luu:", "luu :",
    ]
    .iter()
    .any(|p| f.starts_with(p))
}

fn starts_upper_head(s: &str) -> bool {
    let f = fold_text(s);
    UPPER_HEADS.iter().any(|h| f.starts_with(h))
}

fn last_word_folded(s: &str) -> String {
    fold_text(s.split_whitespace().last().unwrap_or(""))
}

/// Rebuild logical lines: a line break is kept when the next line starts a label, a
/// capacity line or a known header item, when the previous line ends a sentence
/// (`.`, `;`, `:`, `!`, `?`), at a table/emphasis boundary, at a change between an
/// all-capitals line and a normal line, or at a blank line (unless the next line starts
/// in lower case, i.e. the sentence goes on). Otherwise the lines are joined with a space.
pub(crate) fn logical_lines(text: &str) -> Vec<String> {
    let raws = raw_lines(text);
    // Texts whose paragraphs are separated by blank lines ("paragraph mode") keep
    // every line break unless the next line starts in lower case.
    let blanks = raws.iter().skip(1).filter(|r| r.blank_before).count();
    let paragraph_mode = raws.len() > 4 && blanks * 10 >= (raws.len() - 1) * 6;
    let mut out: Vec<String> = Vec::new();
    let mut prev: Option<&RawLine> = None;
    for r in &raws {
        let join = match (prev, out.last()) {
            (Some(p), Some(cur)) => {
                if paragraph_mode && !r.blank_before {
                    starts_lowercase(&r.text) && !ends_terminal(cur) && should_join(p, cur, r)
                } else {
                    should_join(p, cur, r)
                }
            }
            _ => false,
        };
        if join {
            if let Some(cur) = out.last_mut() {
                cur.push(' ');
                cur.push_str(&r.text);
            }
        } else {
            out.push(r.text.clone());
        }
        prev = Some(r);
    }
    out
}

fn should_join(prev: &RawLine, cur: &str, next: &RawLine) -> bool {
    let n = next.text.as_str();
    if next.separator_before || forced_start(n) {
        return false;
    }
    if kind_word_line(cur).is_some() {
        return false;
    }
    if ends_terminal(cur) && !cur.trim_end().ends_with(',') {
        return false;
    }
    if next.blank_before {
        return starts_lowercase(n) && !is_upper_line(cur);
    }
    if prev.closes_emphasis || next.opens_emphasis {
        return starts_lowercase(n) && !prev.closes_emphasis;
    }
    let cu = is_upper_line(cur);
    let nu = is_upper_line(n);
    if cu != nu {
        return starts_lowercase(n) && !cu;
    }
    if cu && nu {
        if is_capacity_line(cur) && !cur.trim_end().ends_with(',') {
            return false;
        }
        if starts_upper_head(n) && !HEAD_FIRST_WORDS.contains(&last_word_folded(cur).as_str()) {
            return false;
        }
    }
    true
}

static SENTENCE_END_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\.!?](?:\s*\.\s*/\s*\.)?\s+").unwrap());

/// Split a text into sentences at `.`, `!` or `?` followed by a space and an upper-case
/// letter (abbreviations such as "TP. " or "KT. " are not split).
pub(crate) fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for m in SENTENCE_END_RE.find_iter(text) {
        let after = &text[m.end()..];
        let next_upper = after.chars().next().is_some_and(|c| c.is_uppercase());
        if !next_upper {
            continue;
        }
        // Do not split after short upper-case abbreviations ("TP.", "KT.", "Q.").
        let before = &text[start..m.start()];
        let last = before.split_whitespace().last().unwrap_or("");
        if last.chars().count() <= 3 && last.chars().all(|c| c.is_uppercase()) {
            continue;
        }
        let s = text[start..m.end()].trim();
        if !s.is_empty() {
            out.push(s.to_string());
        }
        start = m.end();
    }
    let s = text[start..].trim();
    if !s.is_empty() {
        out.push(s.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let k = |s: &str| parse_label(s).map(|(l, _)| (l.kind, l.value));
        assert_eq!(k("II. Nhiệm vụ"), Some((LabelKind::Roman, "II".into())));
        assert_eq!(k("IV) Tổ chức"), Some((LabelKind::Roman, "IV".into())));
        assert_eq!(k("1. Cập nhật"), Some((LabelKind::Arabic(1), "1".into())));
        assert_eq!(k("1) Cập nhật"), Some((LabelKind::Arabic(1), "1".into())));
        assert_eq!(
            k("1.1. Giao Sở"),
            Some((LabelKind::Arabic(2), "1.1".into()))
        );
        assert_eq!(k("3.2 Công tác"), None);
        assert_eq!(k("a) Rà soát"), Some((LabelKind::Letter, "a".into())));
        assert_eq!(k("b. Rà soát"), Some((LabelKind::Letter, "b".into())));
        assert_eq!(k("đ) Rà soát"), Some((LabelKind::Letter, "đ".into())));
        assert_eq!(
            k("- Phối hợp"),
            Some((LabelKind::Bullet('-'), String::new()))
        );
        assert_eq!(
            k("– Phối hợp"),
            Some((LabelKind::Bullet('-'), String::new()))
        );
        assert_eq!(
            k("+ Phối hợp"),
            Some((LabelKind::Bullet('+'), String::new()))
        );
        assert_eq!(
            k("• Phối hợp"),
            Some((LabelKind::Bullet('•'), String::new()))
        );
        assert_eq!(k("- 2025 trong năm"), None);
        assert_eq!(
            k("Điều 2. Giao"),
            Some((LabelKind::Article, "Điều 2".into()))
        );
        assert_eq!(k("2026, kế hoạch"), None);
        assert_eq!(k("Ủy ban"), None);
        assert_eq!(k("V/v rà soát"), None);
    }

    #[test]
    fn joins_wrapped_lines_and_strips_artefacts() {
        let t = "**1. Về việc rà soát,\nlàm sạch dữ liệu**\n1.1. Giao Sở Nông nghiệp\nvà Môi trường\nKhẩn trương chia sẻ toàn\nbộ dữ liệu. Thời gian hoàn thành trước ngày 05 tháng 12\nnăm 2025.\n|\n- Phối hợp với Công\nan phường;";
        let l = logical_lines(t);
        assert_eq!(
            l,
            vec![
                "1. Về việc rà soát, làm sạch dữ liệu",
                "1.1. Giao Sở Nông nghiệp và Môi trường Khẩn trương chia sẻ toàn bộ dữ liệu. Thời gian hoàn thành trước ngày 05 tháng 12 năm 2025.",
                "- Phối hợp với Công an phường;",
            ]
        );
    }

    #[test]
    fn blank_line_inside_sentence_is_joined() {
        let l = logical_lines("7. Hỗ trợ cho đối tượng\n\nngười có công.\n\nII. Tiếp");
        assert_eq!(
            l,
            vec!["7. Hỗ trợ cho đối tượng người có công.", "II. Tiếp"]
        );
    }

    #[test]
    fn header_lines() {
        let l = logical_lines(
            "**ỦY\nBAN NHÂN DÂN **\nTHÀNH PHỐ HỒ CHÍ MINH\n--------\n|\n**CỘNG\nHÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM**\nSố: 4085/UBND-ĐT\n*V/v rà soát và\nchuẩn hóa dữ liệu*\n|\n*Thành\nphố Hồ Chí Minh, ngày 25 tháng 11 năm 2025*\n**KT. CHỦ TỊCH**\nPHÓ CHỦ TỊCH\n**Bùi\nXuân Cường**",
        );
        assert_eq!(
            l,
            vec![
                "ỦY BAN NHÂN DÂN",
                "THÀNH PHỐ HỒ CHÍ MINH",
                "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
                "Số: 4085/UBND-ĐT",
                "V/v rà soát và chuẩn hóa dữ liệu",
                "Thành phố Hồ Chí Minh, ngày 25 tháng 11 năm 2025",
                "KT. CHỦ TỊCH",
                "PHÓ CHỦ TỊCH",
                "Bùi Xuân Cường",
            ]
        );
        let l = logical_lines(
            "TL. CHỦ TỊCH\nKT. CHÁNH VĂN PHÒNG\nPHÓ CHÁNH VĂN PHÒNG\n\nLê Chí Phương",
        );
        assert_eq!(l.len(), 4);
        let l = logical_lines("KT. BỘ TRƯỞNG,\nCHỦ NHIỆM\n");
        assert_eq!(l, vec!["KT. BỘ TRƯỞNG, CHỦ NHIỆM"]);
        let l = logical_lines("UBND TỈNH QUẢNG NGÃI\nSỞ TÀI CHÍNH\n");
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn sentences() {
        let s = split_sentences(
            "Gửi Bộ Tư pháp trước ngày 05/12/2025. Trên cơ sở đó, Bộ Tư pháp tổng hợp. thời gian hoàn thành trước ngày 30/9/2024.",
        );
        assert_eq!(s.len(), 2);
    }
}
