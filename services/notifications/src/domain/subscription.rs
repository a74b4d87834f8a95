//! Who may subscribe to what: the scope rules of subscriptions.
//!
//! A subscriber's scope is its own agency's notifications; the reading
//! roles (office, leader, inspector, admin) see every agency's. A filter may
//! narrow a scope, never widen it.

/// The notifications a principal may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every agency's (reading roles).
    All,
    /// One agency's, by code.
    Agency(String),
    /// Nothing (a principal acting for no agency without a reading role).
    Nothing,
}

impl Scope {
    /// The scope of a principal acting for `agency`, reading everything or not.
    pub fn of(reads_all: bool, agency: Option<&str>) -> Self {
        match (reads_all, agency) {
            (true, _) => Scope::All,
            (false, Some(code)) => Scope::Agency(code.to_string()),
            (false, None) => Scope::Nothing,
        }
    }

    /// True when notifications to `agency` are in this scope.
    pub fn allows(&self, agency: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Agency(own) => own == agency,
            Scope::Nothing => false,
        }
    }

    /// Checks a filter's agencies; returns the index of the first one
    /// outside the scope.
    pub fn check_agencies(&self, agencies: &[String]) -> Result<(), usize> {
        match agencies.iter().position(|a| !self.allows(a)) {
            Some(i) => Err(i),
            None => Ok(()),
        }
    }
}

/// What a subscription wants, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Recipient agencies (codes); empty: the whole scope.
    pub agencies: Vec<String>,
    /// Kind names, e.g. "DUE_SOON"; empty: all.
    pub kinds: Vec<String>,
    /// Key tasks only.
    pub key_tasks_only: bool,
    /// "directives/{id}", or empty.
    pub directive: String,
}

/// The recipients a subscription's notifications may be addressed to:
/// `None` for every agency. `scope` is the subscriber's scope now, so a
/// subscriber that lost a role also loses what it gave.
pub fn recipients(scope: &Scope, filter: &Filter) -> Option<Vec<String>> {
    let wanted: Vec<String> = filter
        .agencies
        .iter()
        .filter(|a| scope.allows(a))
        .cloned()
        .collect();
    match scope {
        Scope::All if filter.agencies.is_empty() => None,
        Scope::All => Some(wanted),
        Scope::Agency(own) if filter.agencies.is_empty() => Some(vec![own.clone()]),
        Scope::Agency(_) => Some(wanted),
        Scope::Nothing => Some(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agency_subscribes_only_to_its_own_notifications() {
        let scope = Scope::of(false, Some("so-tai-chinh"));
        assert!(scope.check_agencies(&["so-tai-chinh".into()]).is_ok());
        assert_eq!(
            scope.check_agencies(&["so-tai-chinh".into(), "so-ldtbxh".into()]),
            Err(1)
        );
        let filter = Filter::default();
        assert_eq!(
            recipients(&scope, &filter),
            Some(vec!["so-tai-chinh".to_string()])
        );
        // A stored filter naming another agency gives nothing of it.
        let widened = Filter {
            agencies: vec!["so-ldtbxh".into()],
            ..Default::default()
        };
        assert_eq!(recipients(&scope, &widened), Some(vec![]));
    }

    #[test]
    fn reading_roles_see_every_agency_or_the_ones_they_name() {
        let scope = Scope::of(true, Some("vp-ubnd"));
        assert!(scope.check_agencies(&["so-ldtbxh".into()]).is_ok());
        assert_eq!(recipients(&scope, &Filter::default()), None);
        let named = Filter {
            agencies: vec!["so-ldtbxh".into()],
            ..Default::default()
        };
        assert_eq!(
            recipients(&scope, &named),
            Some(vec!["so-ldtbxh".to_string()])
        );
        assert_eq!(
            recipients(&Scope::of(false, None), &Filter::default()),
            Some(vec![])
        );
    }
}
