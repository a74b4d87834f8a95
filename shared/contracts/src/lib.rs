//! Protobuf contracts shared by every dondoc service, the gateway and clients.
//!
//! One crate for all packages so that services talk to each other through the
//! same generated types, and reflection serves one descriptor set.

#![forbid(unsafe_code)]
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Serialized `FileDescriptorSet` of every dondoc proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/dondoc_descriptor.bin"));

/// `dondoc.common.v1`: dates, recurrences, audit stamps, checkpoints.
pub mod common {
    pub mod v1 {
        tonic::include_proto!("dondoc.common.v1");
    }
}

/// `dondoc.directives.v1`: agencies, directives and their event stream.
pub mod directives {
    pub mod v1 {
        tonic::include_proto!("dondoc.directives.v1");
    }
}

/// `dondoc.assignments.v1`: tasks, statistics, indicators and their event stream.
pub mod assignments {
    pub mod v1 {
        tonic::include_proto!("dondoc.assignments.v1");
    }
}

/// `dondoc.notifications.v1`: notifications, subscriptions and deliveries.
pub mod notifications {
    pub mod v1 {
        tonic::include_proto!("dondoc.notifications.v1");
    }
}

/// Fully qualified gRPC service names, for routing and policy.
pub mod service_names {
    pub const AGENCY: &str = "dondoc.directives.v1.AgencyService";
    pub const DIRECTIVE: &str = "dondoc.directives.v1.DirectiveService";
    pub const DIRECTIVE_EVENTS: &str = "dondoc.directives.v1.DirectiveEventService";
    pub const TASK: &str = "dondoc.assignments.v1.TaskService";
    pub const STATISTICS: &str = "dondoc.assignments.v1.StatisticsService";
    pub const INDICATOR: &str = "dondoc.assignments.v1.IndicatorService";
    pub const TASK_EVENTS: &str = "dondoc.assignments.v1.TaskEventService";
    pub const NOTIFICATION: &str = "dondoc.notifications.v1.NotificationService";
    pub const SUBSCRIPTION: &str = "dondoc.notifications.v1.SubscriptionService";
}
