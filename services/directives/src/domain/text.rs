//! Folding Vietnamese text for comparison and search. One piece of code
//! serves the parser, the directory's search and resolution, and the
//! directives' full-text search: `dondoc_docparse::fold`.
//!
//! * [`fold_name`]: agency names ("Sở LĐTB&XH" and "Sở Lao động – Thương
//!   binh và Xã hội" fold alike: case, diacritics, punctuation and common
//!   abbreviations ignored).
//! * [`fold_text`]: running text (case, diacritics and dash variants ignored).

pub use dondoc_docparse::fold::{fold_name, fold_text};

/// The fold used for agency names and directory search (kept under its old
/// name for the handlers that used it).
pub fn fold(text: &str) -> String {
    fold_name(text)
}

/// The words of a text, folded for full-text search: [`fold_text`] with
/// every character that is not a letter or a digit made a space.
pub fn search_words(text: &str) -> String {
    fold_text(text)
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A short extract of `text` around the first word that matches one of the
/// folded `terms`, with matching words marked `**like this**`; diacritics
/// are kept as written. `None` when no word matches.
pub fn snippet(text: &str, terms: &[String], radius: usize) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let matches = |word: &str| {
        let folded = search_words(word);
        folded
            .split(' ')
            .any(|w| !w.is_empty() && terms.iter().any(|t| t == w))
    };
    let first = words.iter().position(|w| matches(w))?;
    let start = first.saturating_sub(radius);
    let end = (first + radius + 1).min(words.len());
    let mut out: Vec<String> = Vec::with_capacity(end - start + 2);
    if start > 0 {
        out.push("…".into());
    }
    for word in &words[start..end] {
        if matches(word) {
            out.push(format!("**{word}**"));
        } else {
            out.push((*word).to_string());
        }
    }
    if end < words.len() {
        out.push("…".into());
    }
    Some(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_ignores_case_diacritics_dashes_and_abbreviations() {
        assert_eq!(
            fold("Sở Lao động – Thương binh và Xã hội"),
            "so lao dong thuong binh va xa hoi"
        );
        assert_eq!(fold("ĐÀ NẴNG"), "da nang");
        assert_eq!(fold("Sở Lao động – TB&XH"), fold("Sở LĐTB&XH"));
        assert_eq!(
            fold("Sở Lao động, Thương binh và Xã hội"),
            fold("Sở LĐTB&XH")
        );
    }

    #[test]
    fn search_words_drop_punctuation_and_diacritics() {
        assert_eq!(
            search_words("Nghĩa trang liệt sỹ; (đền ơn) – đáp nghĩa."),
            "nghia trang liet sy den on dap nghia"
        );
    }

    #[test]
    fn snippets_keep_the_text_as_written_and_mark_matches() {
        let text = "Chủ trì, phối hợp với Sở Tài chính trong công tác tham mưu, sửa chữa nghĩa trang liệt sỹ";
        let s = snippet(text, &["nghia".into()], 2).unwrap();
        assert_eq!(s, "… sửa chữa **nghĩa** trang liệt …");
        assert!(snippet(text, &["khong".into()], 2).is_none());
    }
}
