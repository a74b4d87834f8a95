//! Reading the text of a .docx file (word/document.xml).

use std::fmt;
use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::ParsedDocument;

/// Why a .docx could not be read.
#[derive(Debug)]
pub enum DocxError {
    /// Not a zip archive, or a damaged one.
    Zip(String),
    /// The archive has no `word/document.xml`.
    MissingDocument,
    /// `word/document.xml` is not well-formed XML.
    Xml(String),
}

impl fmt::Display for DocxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocxError::Zip(e) => write!(f, "not a readable .docx (zip) file: {e}"),
            DocxError::MissingDocument => write!(f, "the .docx has no word/document.xml"),
            DocxError::Xml(e) => write!(f, "word/document.xml is not valid XML: {e}"),
        }
    }
}

impl std::error::Error for DocxError {}

/// Upper bound on the size of word/document.xml we are willing to read (64 MiB).
const MAX_XML: u64 = 64 * 1024 * 1024;

/// The text of a .docx: each paragraph (`w:p`) becomes one line, separated from the
/// next by a blank line (paragraph ends are real ends, unlike hard-wrapped web text);
/// `w:t` is text, `w:tab` a space, `w:br`/`w:cr` a line break inside the paragraph.
/// Empty paragraphs are dropped.
pub fn docx_to_text(bytes: &[u8]) -> Result<String, DocxError> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| DocxError::Zip(e.to_string()))?;
    let file = archive.by_name("word/document.xml").map_err(|e| match e {
        zip::result::ZipError::FileNotFound => DocxError::MissingDocument,
        other => DocxError::Zip(other.to_string()),
    })?;
    let mut xml = String::new();
    file.take(MAX_XML)
        .read_to_string(&mut xml)
        .map_err(|e| DocxError::Zip(e.to_string()))?;
    xml_to_text(&xml)
}

fn xml_to_text(xml: &str) -> Result<String, DocxError> {
    let mut reader = Reader::from_str(xml);
    let mut paragraphs: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_text = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => match e.name().as_ref() {
                b"w:t" => in_text = true,
                b"w:p" => cur.clear(),
                b"w:tab" => cur.push(' '),
                b"w:br" | b"w:cr" => cur.push('\n'),
                _ => {}
            },
            Ok(Event::Empty(e)) => match e.name().as_ref() {
                b"w:tab" => cur.push(' '),
                b"w:br" | b"w:cr" => cur.push('\n'),
                b"w:p" => {}
                _ => {}
            },
            Ok(Event::End(e)) => match e.name().as_ref() {
                b"w:t" => in_text = false,
                b"w:p" => {
                    let p = cur.trim().to_string();
                    if !p.is_empty() {
                        paragraphs.push(p);
                    }
                    cur.clear();
                }
                _ => {}
            },
            Ok(Event::Text(t)) if in_text => {
                let s = t.decode().map_err(|e| DocxError::Xml(e.to_string()))?;
                let s =
                    quick_xml::escape::unescape(&s).map_err(|e| DocxError::Xml(e.to_string()))?;
                cur.push_str(&s);
            }
            Ok(Event::GeneralRef(r)) if in_text => {
                let name = r.decode().map_err(|e| DocxError::Xml(e.to_string()))?;
                let s = match name.as_ref() {
                    "amp" => "&".to_string(),
                    "lt" => "<".to_string(),
                    "gt" => ">".to_string(),
                    "quot" => "\"".to_string(),
                    "apos" => "'".to_string(),
                    other => {
                        let code = other
                            .strip_prefix("#x")
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .or_else(|| other.strip_prefix('#').and_then(|d| d.parse().ok()));
                        code.and_then(char::from_u32)
                            .map(String::from)
                            .unwrap_or_default()
                    }
                };
                cur.push_str(&s);
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(DocxError::Xml(e.to_string())),
        }
    }
    Ok(paragraphs.join("\n\n"))
}

/// Parse a .docx document: [`docx_to_text`], then [`crate::parse_text`].
pub fn parse_docx(bytes: &[u8]) -> Result<ParsedDocument, DocxError> {
    Ok(crate::parse_text(&docx_to_text(bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_paragraphs_tabs_breaks_and_entities() {
        let xml = r#"<w:document><w:body><w:p><w:r><w:t>Số: 12/TB-UBND</w:t></w:r></w:p><w:p><w:r><w:t xml:space="preserve">A &amp; </w:t><w:tab/><w:t>B</w:t><w:br/><w:t>C</w:t></w:r></w:p><w:p></w:p></w:body></w:document>"#;
        assert_eq!(xml_to_text(xml).unwrap(), "Số: 12/TB-UBND\n\nA &  B\nC");
    }

    #[test]
    fn not_a_zip() {
        assert!(matches!(docx_to_text(b"hello"), Err(DocxError::Zip(_))));
    }
}
