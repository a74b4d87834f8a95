//! Folding Vietnamese text for search: case, diacritics and dash variants
//! are ignored, so "so lao dong" finds "Sở Lao động".

use unicode_normalization::UnicodeNormalization;

/// Lowercase, without diacritics (đ → d), dashes folded to spaces and
/// whitespace collapsed.
pub fn fold(text: &str) -> String {
    let stripped: String = text
        .nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .map(|c| match c {
            'đ' | 'Đ' => 'd',
            '–' | '—' | '-' | '‐' | '/' | ',' | '.' | ';' | ':' | '(' | ')' => ' ',
            other => other,
        })
        .flat_map(char::to_lowercase)
        .collect();
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_ignores_case_diacritics_and_dashes() {
        assert_eq!(
            fold("Sở Lao động – Thương binh và Xã hội"),
            "so lao dong thuong binh va xa hoi"
        );
        assert_eq!(fold("ĐÀ NẴNG"), "da nang");
        assert!(fold("Sở Lao động – TB&XH").starts_with("so lao dong"));
    }
}
