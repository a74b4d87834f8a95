//! The authorization matrix: every method of every service, called through
//! the gateway with every role, is allowed or refused exactly as
//! `policy::POLICY` says; and every backend refuses every method without the
//! gateway's assertion.

mod support;

use std::collections::BTreeSet;

use dondoc_gateway::GatewayExtras;
use dondoc_gateway::policy::roles_for;
use dondoc_identity::Role;
use prost::Message;
use prost_types::FileDescriptorSet;
use tonic::{Code, Request};
use tonic_types::StatusExt;

use support::{raw_unary, start_generic, test_jwt, with_token};

/// Every `/package.Service/Method` of the contracts.
fn contract_methods() -> BTreeSet<String> {
    let set = FileDescriptorSet::decode(dondoc_contracts::FILE_DESCRIPTOR_SET).unwrap();
    let mut methods = BTreeSet::new();
    for file in set
        .file
        .iter()
        .filter(|f| f.package().starts_with("dondoc."))
    {
        for service in &file.service {
            for method in &service.method {
                methods.insert(format!(
                    "/{}.{}/{}",
                    file.package(),
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    methods
}

const ROLES: [Role; 6] = [
    Role::Office,
    Role::Leader,
    Role::Agency,
    Role::Inspector,
    Role::Subscriber,
    Role::Admin,
];

#[tokio::test]
async fn every_method_with_every_role_is_allowed_or_denied_as_the_policy_says() {
    let mut extras = GatewayExtras::default();
    extras.limits.rate_per_second = 0.0; // the matrix is a burst of calls
    let (env, recorders) = start_generic(extras, test_jwt()).await;
    let channel = env.channel().await;
    let methods = contract_methods();
    assert!(methods.len() > 50);
    let mut checked = 0;
    for method in &methods {
        let allowed_roles = roles_for(method).unwrap_or_default();
        for role in ROLES {
            let token = env.token(&format!("users/{role}"), Some("so-noi-vu"), &[role]);
            let result = raw_unary(channel.clone(), method, with_token((), &token)).await;
            if allowed_roles.contains(&role) {
                assert!(result.is_ok(), "{method} as {role}: {result:?}");
            } else {
                let status = result.expect_err(&format!("{method} must be denied to {role}"));
                assert_eq!(status.code(), Code::PermissionDenied, "{method} as {role}");
                let info = status.get_error_details().error_info().unwrap().clone();
                assert_eq!(info.reason, "ROLE_NOT_ALLOWED");
                assert!(status.message().contains(method), "{}", status.message());
            }
            checked += 1;
        }
    }
    assert_eq!(checked, methods.len() * ROLES.len());
    // Each allowed call reached its backend once, as the caller.
    let reached: usize = recorders
        .iter()
        .map(|(_, r)| r.calls.lock().unwrap().len())
        .sum();
    let expected: usize = methods
        .iter()
        .map(|m| roles_for(m).unwrap_or_default().len())
        .sum();
    assert_eq!(reached, expected);
    for (_, recorder) in &recorders {
        for (path, _, principal) in recorder.calls.lock().unwrap().iter() {
            assert_eq!(principal.roles.len(), 1);
            assert_eq!(principal.subject, format!("users/{}", principal.roles[0]));
            assert!(roles_for(path).unwrap().contains(&principal.roles[0]));
        }
    }
}

#[tokio::test]
async fn every_backend_refuses_every_method_without_the_gateways_assertion() {
    let (_env, backends) = start_generic(GatewayExtras::default(), test_jwt()).await;
    // Straight to the backends, as an attacker inside the network would.
    for method in contract_methods() {
        let backend = if method.starts_with("/dondoc.directives.") {
            backends[0].0
        } else if method.starts_with("/dondoc.assignments.") {
            backends[1].0
        } else {
            backends[2].0
        };
        let channel = tonic::transport::Channel::from_shared(format!("http://{backend}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("x-dondoc-assertion", "forged".parse().unwrap());
        let status = raw_unary(channel, &method, request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{method}");
    }
    assert!(
        backends
            .iter()
            .all(|(_, r)| r.calls.lock().unwrap().is_empty())
    );
}
