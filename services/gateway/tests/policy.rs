//! The policy table lists exactly the methods of the contracts.

use std::collections::BTreeSet;

use dondoc_gateway::policy::{POLICY, allowed};
use dondoc_identity::Role;
use prost::Message;
use prost_types::FileDescriptorSet;

/// Every `/package.Service/Method` of every dondoc service.
fn contract_methods() -> BTreeSet<String> {
    let set = FileDescriptorSet::decode(dondoc_contracts::FILE_DESCRIPTOR_SET)
        .expect("the contracts' descriptor set decodes");
    let mut methods = BTreeSet::new();
    for file in &set.file {
        let package = file.package();
        if !package.starts_with("dondoc.") {
            continue;
        }
        for service in &file.service {
            for method in &service.method {
                methods.insert(format!("/{package}.{}/{}", service.name(), method.name()));
            }
        }
    }
    methods
}

#[test]
fn the_policy_lists_exactly_the_contract_methods() {
    let contract = contract_methods();
    assert!(
        contract.len() > 50,
        "descriptor set looks incomplete: {contract:?}"
    );
    let listed: BTreeSet<String> = POLICY.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(listed.len(), POLICY.len(), "a method is listed twice");
    let missing: Vec<_> = contract.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&contract).collect();
    assert!(
        missing.is_empty(),
        "methods missing from the policy: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "policy entries for methods that no longer exist: {stale:?}"
    );
}

#[test]
fn every_method_is_open_to_some_role_but_never_to_service() {
    for (method, roles) in POLICY {
        assert!(!roles.is_empty(), "{method} is open to nobody");
        assert!(
            !roles.contains(&Role::Service),
            "{method} lists the service role"
        );
        assert!(allowed(method, roles).is_ok());
    }
}

#[test]
fn event_streams_are_for_roles_that_read_everything() {
    for method in [
        "/dondoc.directives.v1.DirectiveEventService/WatchEvents",
        "/dondoc.assignments.v1.TaskEventService/WatchEvents",
    ] {
        for role in [Role::Office, Role::Leader, Role::Admin, Role::Inspector] {
            assert!(
                allowed(method, &[role]).is_ok(),
                "{method} closed to {role}"
            );
        }
        for role in [Role::Agency, Role::Subscriber, Role::Service] {
            assert!(allowed(method, &[role]).is_err(), "{method} open to {role}");
        }
    }
}

#[test]
fn subscribers_get_notifications_and_nothing_about_tasks() {
    assert!(
        allowed(
            "/dondoc.notifications.v1.NotificationService/Subscribe",
            &[Role::Subscriber]
        )
        .is_ok()
    );
    assert!(
        allowed(
            "/dondoc.assignments.v1.TaskService/ListTasks",
            &[Role::Subscriber]
        )
        .is_err()
    );
    assert!(
        allowed(
            "/dondoc.assignments.v1.TaskService/SubmitTask",
            &[Role::Office]
        )
        .is_err()
    );
    assert!(
        allowed(
            "/dondoc.assignments.v1.TaskService/ConfirmTask",
            &[Role::Agency]
        )
        .is_err()
    );
}
