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

/// The folded text an agency is searched by (substring search): its code
/// and every name, folded with [`super::text::fold_name`].
pub fn search_text(
    code: &AgencyCode,
    display_name: &str,
    short_name: &str,
    aliases: &[String],
) -> String {
    let mut parts = vec![code.as_str().replace('-', " ")];
    parts.extend(folded_names(display_name, short_name, aliases));
    parts.join(" | ")
}

/// Every name of an agency folded for exact resolution, without repeats.
pub fn folded_names(display_name: &str, short_name: &str, aliases: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in std::iter::once(display_name)
        .chain(std::iter::once(short_name))
        .chain(aliases.iter().map(String::as_str))
    {
        let folded = super::text::fold_name(name);
        if !folded.is_empty() && !out.contains(&folded) {
            out.push(folded);
        }
    }
    out
}

/// The fields UpdateAgency may change.
pub const UPDATABLE_FIELDS: [&str; 5] = ["display_name", "short_name", "aliases", "kind", "parent"];

/// Overwrites the fields of `current` named in `mask` with those of `given`.
/// An empty mask or an unknown path is a violation of `update_mask`.
pub fn apply_agency_mask(
    mut current: AgencyFields,
    given: AgencyFields,
    mask: &[String],
) -> Result<AgencyFields, Vec<FieldViolation>> {
    let mut v = Violations::new();
    if mask.is_empty() {
        v.add(
            "update_mask",
            format!("list the fields to change: {}", UPDATABLE_FIELDS.join(", ")),
        );
    }
    for path in mask {
        match path.as_str() {
            "display_name" => current.display_name = given.display_name.clone(),
            "short_name" => current.short_name = given.short_name.clone(),
            "aliases" => current.aliases = given.aliases.clone(),
            "kind" => current.kind = given.kind,
            "parent" => current.parent = given.parent.clone(),
            other => v.add(
                "update_mask",
                format!(
                    "{other:?} cannot be changed here; updatable: {} (names change with RenameAgency)",
                    UPDATABLE_FIELDS.join(", ")
                ),
            ),
        }
    }
    if v.is_empty() {
        Ok(current)
    } else {
        Err(v.into_inner())
    }
}

/// How an agency was reorganised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reorganization {
    /// Merged into a successor.
    Merge,
    /// Renamed (same code).
    Rename,
    /// Split into successors.
    Split,
    /// Dissolved.
    Dissolve,
}

impl Reorganization {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Reorganization::Merge => "MERGE",
            Reorganization::Rename => "RENAME",
            Reorganization::Split => "SPLIT",
            Reorganization::Dissolve => "DISSOLVE",
        }
    }

    /// The state the sources end in (a renamed agency stays active).
    pub fn source_state(self) -> AgencyState {
        match self {
            Reorganization::Merge => AgencyState::Merged,
            Reorganization::Rename => AgencyState::Active,
            Reorganization::Split => AgencyState::Split,
            Reorganization::Dissolve => AgencyState::Dissolved,
        }
    }
}

/// What the reorganisation rules need to know of one agency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyLife {
    /// State.
    pub state: AgencyState,
    /// First day, when known.
    pub effective_from: Option<NaiveDate>,
}

/// A checked reorganisation: who ceases, who takes over, from when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reorganize {
    /// Kind.
    pub kind: Reorganization,
    /// Agencies that cease (or, for a rename, the renamed one).
    pub sources: Vec<AgencyCode>,
    /// Their successors (empty for a dissolution; the agency itself for a rename).
    pub successors: Vec<AgencyCode>,
    /// First day of the new arrangement.
    pub effective_date: NaiveDate,
}

impl Reorganize {
    /// The last day the sources exist (or bore their old name).
    pub fn last_day(&self) -> NaiveDate {
        self.effective_date
            .pred_opt()
            .unwrap_or(self.effective_date)
    }
}

fn active_party(
    field: &str,
    code: &AgencyCode,
    lookup: &dyn Fn(&AgencyCode) -> Option<AgencyLife>,
    effective: Option<NaiveDate>,
    v: &mut Violations,
) {
    match lookup(code) {
        None => v.add(
            field,
            format!("{} is not in the agency directory", code.name()),
        ),
        Some(life) if life.state != AgencyState::Active => v.add(
            field,
            format!(
                "{} is no longer active ({})",
                code.name(),
                life.state.as_str().to_lowercase()
            ),
        ),
        Some(life) => {
            if let (Some(from), Some(effective)) = (life.effective_from, effective)
                && effective <= from
            {
                v.add(
                    "effective_date",
                    format!(
                        "{effective} is not after {}'s first day {from}",
                        code.name()
                    ),
                );
            }
        }
    }
}

fn parse_names(names: &[String], field: &str, v: &mut Violations) -> Vec<AgencyCode> {
    let mut out: Vec<AgencyCode> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match AgencyCode::from_name(name) {
            Ok(code) if out.contains(&code) => {
                v.add(format!("{field}[{i}]"), format!("{name} is listed twice"))
            }
            Ok(code) => out.push(code),
            Err(e) => v.add(format!("{field}[{i}]"), e),
        }
    }
    out
}

/// Checks a reorganisation request. `lookup` tells what the directory knows
/// of an agency. Field paths are those of the request messages (`sources[1]`,
/// `successor`, `successors[0]`, `name`, `effective_date`).
pub fn check_reorganization(
    kind: Reorganization,
    sources: &[String],
    successors: &[String],
    effective_date: Option<NaiveDate>,
    lookup: &dyn Fn(&AgencyCode) -> Option<AgencyLife>,
) -> Result<Reorganize, Vec<FieldViolation>> {
    let mut v = Violations::new();
    if effective_date.is_none() {
        v.add("effective_date", "must be set");
    }
    let (source_field, successor_field) = match kind {
        Reorganization::Merge => ("sources", "successor"),
        _ => ("name", "successors"),
    };
    let source_codes = match kind {
        Reorganization::Merge => {
            if sources.is_empty() {
                v.add("sources", "name at least one agency to merge");
            }
            parse_names(sources, "sources", &mut v)
        }
        _ => match AgencyCode::from_name(sources.first().map(String::as_str).unwrap_or("")) {
            Ok(code) => vec![code],
            Err(e) => {
                v.add("name", e);
                Vec::new()
            }
        },
    };
    let successor_codes = match kind {
        Reorganization::Merge => {
            match AgencyCode::from_name(successors.first().map(String::as_str).unwrap_or("")) {
                Ok(code) => vec![code],
                Err(e) => {
                    v.add("successor", e);
                    Vec::new()
                }
            }
        }
        Reorganization::Split => {
            if successors.len() < 2 {
                v.add("successors", "a split needs at least two successors");
            }
            parse_names(successors, "successors", &mut v)
        }
        Reorganization::Rename => source_codes.clone(),
        Reorganization::Dissolve => Vec::new(),
    };
    for (i, code) in source_codes.iter().enumerate() {
        let field = if kind == Reorganization::Merge {
            format!("{source_field}[{i}]")
        } else {
            source_field.to_string()
        };
        active_party(&field, code, lookup, effective_date, &mut v);
        if kind != Reorganization::Rename && successor_codes.contains(code) {
            v.add(
                field,
                format!("{} cannot be its own successor", code.name()),
            );
        }
    }
    if kind != Reorganization::Rename {
        for (i, code) in successor_codes.iter().enumerate() {
            let field = if kind == Reorganization::Merge {
                successor_field.to_string()
            } else {
                format!("{successor_field}[{i}]")
            };
            active_party(&field, code, lookup, None, &mut v);
        }
    }
    match effective_date {
        Some(effective_date) if v.is_empty() => Ok(Reorganize {
            kind,
            sources: source_codes,
            successors: successor_codes,
            effective_date,
        }),
        _ => Err(v.into_inner()),
    }
}

/// One way a name may designate an agency: a current name, or a former one
/// with the dates it applied.
#[derive(Debug, Clone, PartialEq)]
pub struct NameCandidate {
    /// The agency.
    pub code: String,
    /// Its state now.
    pub state: AgencyState,
    /// First day of the agency.
    pub effective_from: Option<NaiveDate>,
    /// Last day of the agency.
    pub effective_until: Option<NaiveDate>,
    /// First day the name applied (`None`: since the agency began).
    pub name_from: Option<NaiveDate>,
    /// Last day the name applied (`None`: it still does).
    pub name_until: Option<NaiveDate>,
    /// The names, folded.
    pub folded: Vec<String>,
}

impl NameCandidate {
    /// How well the candidate fits a date: 3 when the agency bore the name
    /// and existed on it, 2 when it bore the name (but has since ceased), 1
    /// otherwise (a name it bore on another date).
    pub fn fit(&self, on: NaiveDate) -> u8 {
        let within = |from: Option<NaiveDate>, until: Option<NaiveDate>| {
            from.is_none_or(|f| f <= on) && until.is_none_or(|u| on <= u)
        };
        let named = within(self.name_from, self.name_until);
        let existed = within(self.effective_from, self.effective_until);
        match (named, existed) {
            (true, true) => 3,
            (true, false) => 2,
            _ => 1,
        }
    }
}

/// Why a name did not designate one agency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// No agency ever bore the name.
    Unknown,
    /// Several agencies bore it on that date.
    Ambiguous(Vec<String>),
}

/// The agency `folded` designates on `on`: among the candidates whose names
/// include it, the best fit for the date; a tie between different agencies
/// is ambiguous.
pub fn pick_candidate<'a>(
    candidates: &'a [NameCandidate],
    folded: &str,
    on: NaiveDate,
) -> Result<&'a NameCandidate, Unresolved> {
    let mut matching: Vec<&NameCandidate> = candidates
        .iter()
        .filter(|c| c.folded.iter().any(|f| f == folded))
        .collect();
    matching.sort_by(|a, b| b.fit(on).cmp(&a.fit(on)).then(a.code.cmp(&b.code)));
    let Some(best) = matching.first() else {
        return Err(Unresolved::Unknown);
    };
    let mut tied: Vec<String> = matching
        .iter()
        .filter(|c| c.fit(on) == best.fit(on))
        .map(|c| c.code.clone())
        .collect();
    tied.dedup();
    if tied.len() > 1 {
        Err(Unresolved::Ambiguous(tied))
    } else {
        Ok(best)
    }
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

    fn life(state: AgencyState) -> Option<AgencyLife> {
        Some(AgencyLife {
            state,
            effective_from: NaiveDate::from_ymd_opt(2000, 1, 1),
        })
    }

    fn directory(code: &AgencyCode) -> Option<AgencyLife> {
        match code.as_str() {
            "so-ldtbxh" | "so-noi-vu" | "so-y-te" => life(AgencyState::Active),
            "so-cu" => life(AgencyState::Merged),
            "so-giai-the" => life(AgencyState::Dissolved),
            _ => None,
        }
    }

    fn day(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn fields_of(result: Result<Reorganize, Vec<FieldViolation>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_merge_takes_active_distinct_sources_into_an_active_successor() {
        let merge = check_reorganization(
            Reorganization::Merge,
            &names(&["agencies/so-ldtbxh"]),
            &names(&["agencies/so-noi-vu"]),
            day(2025, 3, 1),
            &directory,
        )
        .unwrap();
        assert_eq!(merge.last_day(), day(2025, 2, 28).unwrap());
        assert_eq!(merge.successors[0].as_str(), "so-noi-vu");
        assert_eq!(Reorganization::Merge.source_state(), AgencyState::Merged);
    }

    #[test]
    fn bad_merges_name_every_offending_field() {
        let fields = fields_of(check_reorganization(
            Reorganization::Merge,
            &names(&[
                "agencies/so-noi-vu",
                "agencies/so-cu",
                "agencies/khong-co",
                "agencies/so-cu",
            ]),
            &names(&["agencies/so-noi-vu"]),
            None,
            &directory,
        ));
        assert_eq!(
            fields,
            [
                "effective_date",
                "sources[3]",
                "sources[0]",
                "sources[1]",
                "sources[2]"
            ]
        );
        let fields = fields_of(check_reorganization(
            Reorganization::Merge,
            &[],
            &names(&["agencies/so-giai-the"]),
            day(2025, 3, 1),
            &directory,
        ));
        assert_eq!(fields, ["sources", "successor"]);
        let fields = fields_of(check_reorganization(
            Reorganization::Merge,
            &names(&["agencies/so-ldtbxh"]),
            &names(&["agencies/so-noi-vu"]),
            day(1999, 3, 1),
            &directory,
        ));
        assert_eq!(fields, ["effective_date"]);
    }

    #[test]
    fn splits_need_two_active_successors_and_dissolutions_an_active_agency() {
        let fields = fields_of(check_reorganization(
            Reorganization::Split,
            &names(&["agencies/so-ldtbxh"]),
            &names(&["agencies/so-noi-vu"]),
            day(2025, 3, 1),
            &directory,
        ));
        assert_eq!(fields, ["successors"]);
        assert!(
            check_reorganization(
                Reorganization::Split,
                &names(&["agencies/so-ldtbxh"]),
                &names(&["agencies/so-noi-vu", "agencies/so-y-te"]),
                day(2025, 3, 1),
                &directory,
            )
            .is_ok()
        );
        let fields = fields_of(check_reorganization(
            Reorganization::Dissolve,
            &names(&["agencies/so-giai-the"]),
            &[],
            day(2025, 3, 1),
            &directory,
        ));
        assert_eq!(fields, ["name"]);
    }

    fn candidate(
        code: &str,
        name: &str,
        from: Option<NaiveDate>,
        until: Option<NaiveDate>,
    ) -> NameCandidate {
        NameCandidate {
            code: code.into(),
            state: AgencyState::Active,
            effective_from: None,
            effective_until: None,
            name_from: from,
            name_until: until,
            folded: vec![crate::domain::text::fold_name(name)],
        }
    }

    #[test]
    fn a_name_designates_the_agency_that_bore_it_on_the_date() {
        // "Sở Nội vụ" was so-a's name until 2020, then so-b's.
        let candidates = vec![
            candidate("so-a", "Sở Nội vụ", None, day(2019, 12, 31)),
            candidate("so-b", "Sở Nội vụ", day(2020, 1, 1), None),
        ];
        let folded = crate::domain::text::fold_name("SỞ NỘI VỤ");
        assert_eq!(
            pick_candidate(&candidates, &folded, day(2015, 5, 5).unwrap())
                .unwrap()
                .code,
            "so-a"
        );
        assert_eq!(
            pick_candidate(&candidates, &folded, day(2024, 5, 5).unwrap())
                .unwrap()
                .code,
            "so-b"
        );
        assert_eq!(
            pick_candidate(&candidates, "so khong co", day(2024, 5, 5).unwrap()),
            Err(Unresolved::Unknown)
        );
        let twins = vec![
            candidate("x-1", "Ban A", None, None),
            candidate("x-2", "Ban A", None, None),
        ];
        assert_eq!(
            pick_candidate(&twins, "ban a", day(2024, 5, 5).unwrap()),
            Err(Unresolved::Ambiguous(vec!["x-1".into(), "x-2".into()]))
        );
    }

    #[test]
    fn every_name_folds_once_and_masks_change_only_what_they_list() {
        let names = folded_names(
            "Sở Lao động – Thương binh và Xã hội",
            "Sở LĐTB&XH",
            &["Sở Lao động, Thương binh và Xã hội".into()],
        );
        assert_eq!(names, ["so lao dong thuong binh va xa hoi"]);
        let current = fields();
        let mut given = AgencyFields {
            short_name: "Sở LĐ".into(),
            display_name: "ignored".into(),
            ..Default::default()
        };
        let updated =
            apply_agency_mask(current.clone(), given.clone(), &["short_name".into()]).unwrap();
        assert_eq!(updated.short_name, "Sở LĐ");
        assert_eq!(updated.display_name, current.display_name);
        given.code = "x".into();
        let bad: Vec<_> = apply_agency_mask(current.clone(), given.clone(), &["code".into()])
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(bad, ["update_mask"]);
        assert!(apply_agency_mask(current, given, &[]).is_err());
    }
}
