//! Agencies of the directory.

use chrono::NaiveDate;
use dondoc_errors::{FieldViolation, Violations};

/// What kind of body an agency is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgencyKind {
    /// UBND.
    PeoplesCommittee,
    /// Văn phòng UBND.
    Office,
    /// Sở.
    Department,
    /// Ban.
    Board,
    /// Xã, phường.
    Commune,
    /// Bộ.
    Ministry,
    /// Doanh nghiệp nhà nước.
    Enterprise,
    /// Anything else.
    Other,
}

impl AgencyKind {
    /// Every kind.
    pub const ALL: [AgencyKind; 8] = [
        AgencyKind::PeoplesCommittee,
        AgencyKind::Office,
        AgencyKind::Department,
        AgencyKind::Board,
        AgencyKind::Commune,
        AgencyKind::Ministry,
        AgencyKind::Enterprise,
        AgencyKind::Other,
    ];

    /// Stored and filter form.
    pub fn as_str(self) -> &'static str {
        match self {
            AgencyKind::PeoplesCommittee => "PEOPLES_COMMITTEE",
            AgencyKind::Office => "OFFICE",
            AgencyKind::Department => "DEPARTMENT",
            AgencyKind::Board => "BOARD",
            AgencyKind::Commune => "COMMUNE",
            AgencyKind::Ministry => "MINISTRY",
            AgencyKind::Enterprise => "ENTERPRISE",
            AgencyKind::Other => "OTHER",
        }
    }

    /// Reads the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Where an agency stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgencyState {
    /// May be assigned work.
    Active,
    /// Merged into a successor.
    Merged,
    /// Split into successors.
    Split,
    /// Dissolved.
    Dissolved,
}

impl AgencyState {
    /// Stored and filter form.
    pub fn as_str(self) -> &'static str {
        match self {
            AgencyState::Active => "ACTIVE",
            AgencyState::Merged => "MERGED",
            AgencyState::Split => "SPLIT",
            AgencyState::Dissolved => "DISSOLVED",
        }
    }

    /// Reads the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Merged, Self::Split, Self::Dissolved]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A stable agency code: lowercase ASCII letters, digits and single dashes,
/// 2 to 64 characters ("so-ldtbxh").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgencyCode(String);

impl AgencyCode {
    /// Parses a code.
    pub fn parse(code: &str) -> Result<Self, String> {
        let valid = (2..=64).contains(&code.len())
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !code.starts_with('-')
            && !code.ends_with('-')
            && !code.contains("--");
        if valid {
            Ok(Self(code.to_string()))
        } else {
            Err(format!(
                "{code:?} is not an agency code: 2 to 64 lowercase letters, digits and single dashes"
            ))
        }
    }

    /// Parses "agencies/{code}".
    pub fn from_name(name: &str) -> Result<Self, String> {
        match name.strip_prefix("agencies/") {
            Some(code) => Self::parse(code),
            None => Err(format!("{name:?} is not of the form agencies/{{code}}")),
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// "agencies/{code}".
    pub fn name(&self) -> String {
        format!("agencies/{}", self.0)
    }
}

/// A new agency, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAgency {
    /// Code.
    pub code: AgencyCode,
    /// Full name.
    pub display_name: String,
    /// Short name.
    pub short_name: String,
    /// Other names.
    pub aliases: Vec<String>,
    /// Kind.
    pub kind: AgencyKind,
    /// Parent.
    pub parent: Option<AgencyCode>,
    /// First day.
    pub effective_from: Option<NaiveDate>,
}

/// Longest agency name accepted.
pub const MAX_NAME_CHARS: usize = 300;

/// The fields of a new agency before checking.
#[derive(Debug, Clone, Default)]
pub struct AgencyFields {
    /// Code.
    pub code: String,
    /// Full name.
    pub display_name: String,
    /// Short name.
    pub short_name: String,
    /// Other names.
    pub aliases: Vec<String>,
    /// Kind, if recognised.
    pub kind: Option<AgencyKind>,
    /// Parent name, "agencies/{code}" or empty.
    pub parent: String,
    /// First day.
    pub effective_from: Option<NaiveDate>,
}

impl NewAgency {
    /// Checks every field, reporting all problems at once.
    pub fn parse(fields: AgencyFields) -> Result<Self, Vec<FieldViolation>> {
        let mut v = Violations::new();
        let code = AgencyCode::parse(&fields.code)
            .map_err(|e| v.add("code", e))
            .ok();
        let display_name = fields.display_name.trim().to_string();
        if display_name.is_empty() {
            v.add("display_name", "must not be empty");
        } else if display_name.chars().count() > MAX_NAME_CHARS {
            v.add(
                "display_name",
                format!("at most {MAX_NAME_CHARS} characters"),
            );
        }
        let short_name = fields.short_name.trim().to_string();
        if short_name.chars().count() > MAX_NAME_CHARS {
            v.add("short_name", format!("at most {MAX_NAME_CHARS} characters"));
        }
        let mut aliases = Vec::new();
        for (i, alias) in fields.aliases.iter().enumerate() {
            let alias = alias.trim();
            if alias.is_empty() || alias.chars().count() > MAX_NAME_CHARS {
                v.add(
                    format!("aliases[{i}]"),
                    format!("1 to {MAX_NAME_CHARS} characters"),
                );
            } else if !aliases.iter().any(|a: &String| a == alias) {
                aliases.push(alias.to_string());
            }
        }
        if fields.kind.is_none() {
            v.add("kind", "must be set");
        }
        let parent = if fields.parent.is_empty() {
            None
        } else {
            AgencyCode::from_name(&fields.parent)
                .map_err(|e| v.add("parent", e))
                .ok()
        };
        if let (Some(code), Some(parent)) = (&code, &parent)
            && code == parent
        {
            v.add("parent", "an agency cannot be its own parent");
        }
        let violations = v.into_inner();
        match (code, fields.kind) {
            (Some(code), Some(kind)) if violations.is_empty() => Ok(NewAgency {
                code,
                display_name,
                short_name,
                aliases,
                kind,
                parent,
                effective_from: fields.effective_from,
            }),
            _ => Err(violations),
        }
    }

    /// Every name by which the agency may be found, folded for search.
    pub fn search_text(&self) -> String {
        search_text(
            &self.code,
            &self.display_name,
            &self.short_name,
            &self.aliases,
        )
    }
}

/// The folded text an agency is searched by.
pub fn search_text(
    code: &AgencyCode,
    display_name: &str,
    short_name: &str,
    aliases: &[String],
) -> String {
    let mut parts = vec![
        code.as_str().replace('-', " "),
        super::text::fold(display_name),
    ];
    if !short_name.is_empty() {
        parts.push(super::text::fold(short_name));
    }
    parts.extend(aliases.iter().map(|a| super::text::fold(a)));
    parts.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> AgencyFields {
        AgencyFields {
            code: "so-ldtbxh".into(),
            display_name: "Sở Lao động – Thương binh và Xã hội".into(),
            short_name: "Sở LĐTB&XH".into(),
            aliases: vec!["Sở Lao động, Thương binh và Xã hội".into()],
            kind: Some(AgencyKind::Department),
            parent: "agencies/ubnd-tinh".into(),
            effective_from: None,
        }
    }

    #[test]
    fn a_well_formed_agency_parses() {
        let agency = NewAgency::parse(fields()).unwrap();
        assert_eq!(agency.code.name(), "agencies/so-ldtbxh");
        assert!(
            agency
                .search_text()
                .contains("so lao dong thuong binh va xa hoi")
        );
    }

    #[test]
    fn every_bad_field_is_reported() {
        let mut bad = fields();
        bad.code = "Sở LĐ".into();
        bad.display_name = "  ".into();
        bad.kind = None;
        bad.parent = "ubnd".into();
        let fields: Vec<String> = NewAgency::parse(bad)
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["code", "display_name", "kind", "parent"]);
    }

    #[test]
    fn codes_are_plain() {
        assert!(AgencyCode::parse("so-noi-vu").is_ok());
        for bad in ["", "a", "So", "so--x", "-so", "so-", "sở"] {
            assert!(AgencyCode::parse(bad).is_err(), "{bad}");
        }
    }
}
