//! Text folding used to compare Vietnamese text and agency names.
//!
//! One piece of code serves the parser, the agency directory's search and the
//! importer's agency resolution, so that "Sở LĐTB&XH", "Sở Lao động, Thương binh
//! và Xã hội" and "Sở Lao động – TB&XH" are recognised as the same body.
//!
//! * [`fold_text`] lowercases, removes Vietnamese diacritics (Unicode NFD, combining
//!   marks dropped, `đ`/`Đ` → `d`), turns every dash variant (`-`, `‐`, `‑`, `–`, `—`,
//!   `−`) into `-` and collapses whitespace runs into one space.
//! * [`fold_name`] does the same, then writes `&` as `va`, removes all punctuation
//!   (commas, dashes, dots, brackets, slashes…) and expands the common abbreviations of
//!   Vietnamese agency names (see [`ABBREVIATIONS`]).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Abbreviations expanded by [`fold_name`], as sequences of folded words
/// (after `&` → `va` and punctuation removal) and their folded expansion.
///
/// Only abbreviations that are unambiguous in agency names are listed.
pub const ABBREVIATIONS: &[(&str, &str)] = &[
    ("ubnd", "uy ban nhan dan"),
    ("hdnd", "hoi dong nhan dan"),
    ("ubmttq", "uy ban mat tran to quoc"),
    ("mttq", "mat tran to quoc"),
    ("vpub", "van phong uy ban nhan dan"),
    ("vpubnd", "van phong uy ban nhan dan"),
    ("ld tb va xh", "lao dong thuong binh va xa hoi"),
    ("ldtb va xh", "lao dong thuong binh va xa hoi"),
    ("ldtbxh", "lao dong thuong binh va xa hoi"),
    ("tb va xh", "thuong binh va xa hoi"),
    ("tbxh", "thuong binh va xa hoi"),
    ("kh va dt", "ke hoach va dau tu"),
    ("khdt", "ke hoach va dau tu"),
    ("gd va dt", "giao duc va dao tao"),
    ("gddt", "giao duc va dao tao"),
    ("tt va tt", "thong tin va truyen thong"),
    ("tttt", "thong tin va truyen thong"),
    ("tn va mt", "tai nguyen va moi truong"),
    ("tnmt", "tai nguyen va moi truong"),
    ("nn va ptnt", "nong nghiep va phat trien nong thon"),
    ("nnptnt", "nong nghiep va phat trien nong thon"),
    ("nn va mt", "nong nghiep va moi truong"),
    ("nnmt", "nong nghiep va moi truong"),
    ("kh va cn", "khoa hoc va cong nghe"),
    ("khcn", "khoa hoc va cong nghe"),
    ("vh tt va dl", "van hoa the thao va du lich"),
    ("vhttdl", "van hoa the thao va du lich"),
    ("gtvt", "giao thong van tai"),
    ("bhxh", "bao hiem xa hoi"),
    ("kbnn", "kho bac nha nuoc"),
    ("nhnn", "ngan hang nha nuoc"),
    ("bqlda", "ban quan ly du an"),
    ("bql", "ban quan ly"),
    ("dtxd", "dau tu xay dung"),
    ("pccc", "phong chay chua chay"),
    ("tp", "thanh pho"),
];

fn is_dash(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{2010}'
            | '\u{2011}'
            | '\u{2012}'
            | '\u{2013}'
            | '\u{2014}'
            | '\u{2015}'
            | '\u{2212}'
    )
}

/// Lowercase, strip diacritics (`đ` → `d`), fold dash variants to `-` and collapse
/// whitespace runs into a single space (leading and trailing whitespace removed).
///
/// ```
/// assert_eq!(dondoc_docparse::fold::fold_text("  Sở  Lao động – Thương binh "), "so lao dong - thuong binh");
/// ```
pub fn fold_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        match c {
            'đ' | 'Đ' => out.push('d'),
            c if is_dash(c) => out.push('-'),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Fold an agency name for comparison: [`fold_text`], then `&` → ` va `, every
/// character that is not a letter or digit becomes a space, and the abbreviations in
/// [`ABBREVIATIONS`] are expanded (longest match first, on whole words).
///
/// ```
/// use dondoc_docparse::fold::fold_name;
/// let a = fold_name("Sở LĐTB&XH");
/// assert_eq!(a, fold_name("Sở Lao động, Thương binh và Xã hội"));
/// assert_eq!(a, fold_name("Sở Lao động – TB&XH"));
/// assert_eq!(a, "so lao dong thuong binh va xa hoi");
/// assert_eq!(fold_name("UBND tỉnh"), "uy ban nhan dan tinh");
/// ```
pub fn fold_name(s: &str) -> String {
    let folded = fold_text(s).replace('&', " va ");
    let cleaned: String = folded
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let patterns: Vec<Vec<&str>> = ABBREVIATIONS
        .iter()
        .map(|(abbr, _)| abbr.split(' ').collect())
        .collect();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let mut best: Option<(usize, &str)> = None;
        for (pat, (_, expansion)) in patterns.iter().zip(ABBREVIATIONS.iter()) {
            let n = pat.len();
            if i + n <= words.len()
                && words[i..i + n] == pat[..]
                && best.is_none_or(|(len, _)| n > len)
            {
                best = Some((n, expansion));
            }
        }
        match best {
            Some((n, expansion)) => {
                out.extend(expansion.split(' '));
                i += n;
            }
            None => {
                out.push(words[i]);
                i += 1;
            }
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_diacritics_case_dashes_and_spaces() {
        assert_eq!(fold_text("ĐẦU TƯ"), "dau tu");
        assert_eq!(fold_text("Ủy  ban\n nhân\tdân"), "uy ban nhan dan");
        assert_eq!(fold_text("Uỷ ban"), fold_text("Ủy ban"));
        assert_eq!(fold_text("a – b — c - d"), "a - b - c - d");
    }

    #[test]
    fn names_with_abbreviations_fold_together() {
        let want = "so lao dong thuong binh va xa hoi";
        for s in [
            "Sở LĐTB&XH",
            "Sở LĐTBXH",
            "Sở LĐ-TB&XH",
            "Sở Lao động, Thương binh và Xã hội",
            "Sở Lao động – Thương binh và Xã hội",
            "Sở Lao động - Thương binh và Xã hội",
            "Sở Lao động – TB&XH",
            "SỞ LAO ĐỘNG - THƯƠNG BINH VÀ XÃ HỘI",
        ] {
            assert_eq!(fold_name(s), want, "{s}");
        }
        assert_eq!(
            fold_name("UBND các huyện, thị xã, thành phố"),
            fold_name("Ủy ban nhân dân các huyện, thị xã, thành phố")
        );
        assert_eq!(fold_name("Sở KH&ĐT"), fold_name("Sở Kế hoạch và Đầu tư"));
        assert_eq!(fold_name("HĐND tỉnh"), "hoi dong nhan dan tinh");
        assert_eq!(
            fold_name("UBND TP. Hồ Chí Minh"),
            fold_name("Ủy ban nhân dân Thành phố Hồ Chí Minh")
        );
    }
}
