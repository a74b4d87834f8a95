//! The coarse authorization policy: which roles may call which method.
//!
//! [`POLICY`] is the one table. It is deny-by-default: a method that is not
//! listed is refused with PERMISSION_DENIED (reason `METHOD_NOT_IN_POLICY`),
//! and a test checks that the table lists exactly the methods of the
//! contracts, no more, no fewer.

use std::collections::HashMap;
use std::sync::OnceLock;

use dondoc_errors::Error;
use dondoc_identity::Role;
use dondoc_identity::Role::{Admin, Agency, Inspector, Leader, Office, Subscriber};

/// Every role a person or system may hold (never `service`).
const EVERYONE: &[Role] = &[Office, Leader, Agency, Inspector, Subscriber, Admin];
/// Everyone but subscribers, who only receive notifications.
const READERS: &[Role] = &[Office, Leader, Agency, Inspector, Admin];
/// Who reads directives.
const DIRECTIVE_READERS: &[Role] = &[Office, Leader, Agency, Inspector];
/// Who drafts, issues and revokes directives.
const DIRECTIVE_WRITERS: &[Role] = &[Office, Leader];
/// Who turns document text into directives.
const DIRECTIVE_IMPORTERS: &[Role] = &[Office, Leader];
/// Who manages the agency directory.
const DIRECTORY_MANAGERS: &[Role] = &[Office, Admin];
/// Who may follow a service's raw change stream.
const EVENT_WATCHERS: &[Role] = &[Office, Leader, Admin, Inspector];
/// Who manages subscriptions and their deliveries.
const SUBSCRIPTION_MANAGERS: &[Role] = &[Office, Agency, Subscriber, Admin];
/// The office: assigns, reviews, decides.
const OFFICE: &[Role] = &[Office];
/// Agencies: carry out their tasks.
const AGENCY: &[Role] = &[Agency];

/// Which roles may call each fully qualified method through the gateway.
///
/// This table holds only the coarse rules, by role. The fine-grained rules,
/// which depend on the data (an agency reads only its own and its
/// coordinated tasks, a subscriber sees only notifications in its scope, an
/// agency reports only on tasks it leads), live in the services, which see
/// the caller's principal in the gateway's signed assertion.
///
/// The role `service` appears nowhere: services call each other directly,
/// never through the gateway, and the gateway refuses tokens claiming it.
#[rustfmt::skip]
pub const POLICY: &[(&str, &[Role])] = &[
    // dondoc.directives.v1.AgencyService: the agency directory.
    ("/dondoc.directives.v1.AgencyService/CreateAgency",            DIRECTORY_MANAGERS),
    ("/dondoc.directives.v1.AgencyService/GetAgency",               EVERYONE),
    ("/dondoc.directives.v1.AgencyService/ListAgencies",            EVERYONE),
    ("/dondoc.directives.v1.AgencyService/UpdateAgency",            DIRECTORY_MANAGERS),
    ("/dondoc.directives.v1.AgencyService/ResolveAgency",           EVERYONE),
    ("/dondoc.directives.v1.AgencyService/MergeAgencies",           DIRECTORY_MANAGERS),
    ("/dondoc.directives.v1.AgencyService/RenameAgency",            DIRECTORY_MANAGERS),
    ("/dondoc.directives.v1.AgencyService/SplitAgency",             DIRECTORY_MANAGERS),
    ("/dondoc.directives.v1.AgencyService/DissolveAgency",          DIRECTORY_MANAGERS),
    // dondoc.directives.v1.DirectiveService: directive documents.
    ("/dondoc.directives.v1.DirectiveService/CreateDirective",      DIRECTIVE_WRITERS),
    ("/dondoc.directives.v1.DirectiveService/GetDirective",         DIRECTIVE_READERS),
    ("/dondoc.directives.v1.DirectiveService/ListDirectives",       DIRECTIVE_READERS),
    ("/dondoc.directives.v1.DirectiveService/UpdateDirective",      DIRECTIVE_WRITERS),
    ("/dondoc.directives.v1.DirectiveService/IssueDirective",       DIRECTIVE_WRITERS),
    ("/dondoc.directives.v1.DirectiveService/RevokeDirective",      DIRECTIVE_WRITERS),
    ("/dondoc.directives.v1.DirectiveService/SearchDirectives",     DIRECTIVE_READERS),
    ("/dondoc.directives.v1.DirectiveService/ParseDirective",       DIRECTIVE_IMPORTERS),
    ("/dondoc.directives.v1.DirectiveService/ImportDirective",      DIRECTIVE_IMPORTERS),
    // dondoc.directives.v1.DirectiveEventService: the change stream.
    ("/dondoc.directives.v1.DirectiveEventService/WatchEvents",     EVENT_WATCHERS),
    // dondoc.assignments.v1.TaskService: the office assigns and reviews…
    ("/dondoc.assignments.v1.TaskService/CreateTask",               OFFICE),
    ("/dondoc.assignments.v1.TaskService/UpdateTask",               OFFICE),
    ("/dondoc.assignments.v1.TaskService/ConfirmTask",              OFFICE),
    ("/dondoc.assignments.v1.TaskService/ReturnTask",               OFFICE),
    ("/dondoc.assignments.v1.TaskService/ReassignTask",             OFFICE),
    ("/dondoc.assignments.v1.TaskService/WithdrawTask",             OFFICE),
    ("/dondoc.assignments.v1.TaskService/DecideExtension",          OFFICE),
    // …agencies carry out…
    ("/dondoc.assignments.v1.TaskService/StartTask",                AGENCY),
    ("/dondoc.assignments.v1.TaskService/SubmitTask",               AGENCY),
    ("/dondoc.assignments.v1.TaskService/RefuseTask",               AGENCY),
    ("/dondoc.assignments.v1.TaskService/ReportProgress",           AGENCY),
    ("/dondoc.assignments.v1.TaskService/RequestExtension",         AGENCY),
    // …and every role but subscribers reads.
    ("/dondoc.assignments.v1.TaskService/GetTask",                  READERS),
    ("/dondoc.assignments.v1.TaskService/ListTasks",                READERS),
    ("/dondoc.assignments.v1.TaskService/ListProgressReports",      READERS),
    ("/dondoc.assignments.v1.TaskService/ListExtensionRequests",    READERS),
    ("/dondoc.assignments.v1.TaskService/ListTaskHistory",          READERS),
    // dondoc.assignments.v1.StatisticsService: report figures.
    ("/dondoc.assignments.v1.StatisticsService/GetTaskStatistics",  READERS),
    ("/dondoc.assignments.v1.StatisticsService/ListDirectiveRollups", READERS),
    // dondoc.assignments.v1.IndicatorService: indicators and targets.
    ("/dondoc.assignments.v1.IndicatorService/CreateIndicator",     OFFICE),
    ("/dondoc.assignments.v1.IndicatorService/GetIndicator",        READERS),
    ("/dondoc.assignments.v1.IndicatorService/ListIndicators",      READERS),
    ("/dondoc.assignments.v1.IndicatorService/SetIndicatorTarget",  OFFICE),
    ("/dondoc.assignments.v1.IndicatorService/ReportIndicatorActual", AGENCY),
    // dondoc.assignments.v1.TaskEventService: the change stream.
    ("/dondoc.assignments.v1.TaskEventService/WatchEvents",         EVENT_WATCHERS),
    // dondoc.notifications.v1.NotificationService: one's own notifications.
    ("/dondoc.notifications.v1.NotificationService/Subscribe",      EVERYONE),
    ("/dondoc.notifications.v1.NotificationService/ListNotifications", EVERYONE),
    ("/dondoc.notifications.v1.NotificationService/MarkNotificationsRead", EVERYONE),
    // dondoc.notifications.v1.SubscriptionService: webhooks and e-mail.
    ("/dondoc.notifications.v1.SubscriptionService/CreateSubscription",  SUBSCRIPTION_MANAGERS),
    ("/dondoc.notifications.v1.SubscriptionService/GetSubscription",     SUBSCRIPTION_MANAGERS),
    ("/dondoc.notifications.v1.SubscriptionService/ListSubscriptions",   SUBSCRIPTION_MANAGERS),
    ("/dondoc.notifications.v1.SubscriptionService/DeleteSubscription",  SUBSCRIPTION_MANAGERS),
    ("/dondoc.notifications.v1.SubscriptionService/RotateWebhookSecret", SUBSCRIPTION_MANAGERS),
    ("/dondoc.notifications.v1.SubscriptionService/ListDeliveries",      SUBSCRIPTION_MANAGERS),
    ("/dondoc.notifications.v1.SubscriptionService/ReplayDeliveries",    SUBSCRIPTION_MANAGERS),
];

/// [`POLICY`] by method, built on first use: every call looks its method
/// up here (and the metrics their label), so a hash lookup rather than a
/// scan of the table.
fn index() -> &'static HashMap<&'static str, &'static [Role]> {
    static INDEX: OnceLock<HashMap<&'static str, &'static [Role]>> = OnceLock::new();
    INDEX.get_or_init(|| POLICY.iter().copied().collect())
}

/// The roles [`POLICY`] allows to call `method`, if it lists the method.
pub fn roles_for(method: &str) -> Option<&'static [Role]> {
    index().get(method).copied()
}

/// The table's own copy of `method`, if it lists the method.
pub(crate) fn listed_method(method: &str) -> Option<&'static str> {
    index().get_key_value(method).map(|(listed, _)| *listed)
}

/// `Ok(())` when one of `roles` may call `method` (a path such as
/// `/dondoc.directives.v1.DirectiveService/CreateDirective`); otherwise
/// PERMISSION_DENIED, with reason `METHOD_NOT_IN_POLICY` for a method the
/// table does not list and `ROLE_NOT_ALLOWED` for a caller without a
/// listed role. The role `service` never grants anything here.
pub fn allowed(method: &str, roles: &[Role]) -> Result<(), Error> {
    let Some(allowed) = roles_for(method) else {
        return Err(Error::denied(
            "METHOD_NOT_IN_POLICY",
            format!("{method} is not open to callers through the gateway"),
        ));
    };
    if roles
        .iter()
        .any(|role| *role != Role::Service && allowed.contains(role))
    {
        return Ok(());
    }
    let held = if roles.is_empty() {
        "no role".to_string()
    } else {
        format!("roles {}", join(roles))
    };
    Err(Error::denied(
        "ROLE_NOT_ALLOWED",
        format!(
            "{method} needs one of the roles {}; your token grants {held}",
            join(allowed)
        ),
    ))
}

fn join(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn office_creates_directives_and_subscribers_do_not() {
        let method = "/dondoc.directives.v1.DirectiveService/CreateDirective";
        assert!(allowed(method, &[Office]).is_ok());
        assert!(allowed(method, &[Subscriber, Leader]).is_ok());
        let refused = allowed(method, &[Subscriber]).unwrap_err();
        assert_eq!(refused.reason(), "ROLE_NOT_ALLOWED");
        assert!(refused.to_string().contains("office, leader"), "{refused}");
    }

    #[test]
    fn unknown_methods_are_refused() {
        let refused = allowed("/dondoc.directives.v1.AgencyService/Nope", EVERYONE).unwrap_err();
        assert_eq!(refused.reason(), "METHOD_NOT_IN_POLICY");
    }

    #[test]
    fn the_service_role_grants_nothing() {
        for (method, roles) in POLICY {
            assert!(!roles.contains(&Role::Service), "{method}");
            assert!(allowed(method, &[Role::Service]).is_err(), "{method}");
        }
    }

    #[test]
    fn no_method_is_listed_twice() {
        let mut methods: Vec<_> = POLICY.iter().map(|(m, _)| *m).collect();
        methods.sort_unstable();
        let before = methods.len();
        methods.dedup();
        assert_eq!(before, methods.len());
    }
}
