//! Infobip's message statuses (`status{groupId, groupName, id, name}` in send answers and delivery
//! reports), normalized. `status.id` decides where it is known, because it tells the intermediate
//! `DELIVERED_TO_OPERATOR` (2) from the final `DELIVERED_TO_HANDSET` (5); the group decides
//! otherwise. Sources: the OpenAPI enum `MessageGeneralStatus`, Infobip's status-code docs (the
//! REJECTED list as extracted by api-evangelist/infobip), `providers/infobip.md` §4.

use crate::domain::Status;

/// Infobip's status groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Accepted,
    Pending,
    Undeliverable,
    Delivered,
    Expired,
    Rejected,
}

impl Group {
    pub fn from_id(id: i64) -> Option<Group> {
        match id {
            1 => Some(Group::Pending),
            2 => Some(Group::Undeliverable),
            3 => Some(Group::Delivered),
            4 => Some(Group::Expired),
            5 => Some(Group::Rejected),
            _ => None,
        }
    }

    /// Compared without regard to case: Infobip's examples vary (`"OK"` and `"Ok"`).
    pub fn from_name(name: &str) -> Option<Group> {
        let name = name.trim().to_ascii_uppercase();
        match name.as_str() {
            "ACCEPTED" => Some(Group::Accepted),
            "PENDING" => Some(Group::Pending),
            "UNDELIVERABLE" => Some(Group::Undeliverable),
            "DELIVERED" => Some(Group::Delivered),
            "EXPIRED" => Some(Group::Expired),
            "REJECTED" => Some(Group::Rejected),
            _ => None,
        }
    }

    /// `(groupId, groupName)` as Infobip writes them (ACCEPTED has no id in the sources).
    pub fn wire(self) -> (i64, &'static str) {
        match self {
            Group::Accepted => (0, "ACCEPTED"),
            Group::Pending => (1, "PENDING"),
            Group::Undeliverable => (2, "UNDELIVERABLE"),
            Group::Delivered => (3, "DELIVERED"),
            Group::Expired => (4, "EXPIRED"),
            Group::Rejected => (5, "REJECTED"),
        }
    }

    /// A delivery report's group, normalized (where no status id says more). EXPIRED is a final
    /// `undelivered` (courier keeps it non-final as "sent"; see `providers/infobip.md` §4).
    pub fn status(self) -> Status {
        match self {
            Group::Accepted => Status::Accepted,
            Group::Pending => Status::Queued,
            Group::Delivered => Status::Delivered,
            Group::Undeliverable | Group::Expired => Status::Undelivered,
            Group::Rejected => Status::Failed,
        }
    }
}

/// One known status: Infobip's id, name and group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownStatus {
    pub id: i64,
    pub name: &'static str,
    pub group: Group,
}

const fn known(id: i64, name: &'static str, group: Group) -> KnownStatus {
    KnownStatus { id, name, group }
}

/// Every status id the sources name.
pub const KNOWN: [KnownStatus; 27] = [
    known(3, "PENDING_WAITING_DELIVERY", Group::Pending),
    known(7, "PENDING_ENROUTE", Group::Pending),
    known(26, "PENDING_ACCEPTED", Group::Pending),
    known(2, "DELIVERED_TO_OPERATOR", Group::Delivered),
    known(5, "DELIVERED_TO_HANDSET", Group::Delivered),
    known(4, "UNDELIVERABLE_REJECTED_OPERATOR", Group::Undeliverable),
    known(9, "UNDELIVERABLE_NOT_DELIVERED", Group::Undeliverable),
    known(31, "UNDELIVERABLE_NOT_SENT", Group::Undeliverable),
    known(15, "EXPIRED_EXPIRED", Group::Expired),
    known(29, "EXPIRED_DLR_UNKNOWN", Group::Expired),
    known(6, "REJECTED_NETWORK", Group::Rejected),
    known(8, "REJECTED_PREFIX_MISSING", Group::Rejected),
    known(10, "REJECTED_DND", Group::Rejected),
    known(11, "REJECTED_SOURCE", Group::Rejected),
    known(12, "REJECTED_NOT_ENOUGH_CREDITS", Group::Rejected),
    known(13, "REJECTED_SENDER", Group::Rejected),
    known(14, "REJECTED_DESTINATION_BLOCKLISTED", Group::Rejected),
    known(17, "REJECTED_PREPAID_PACKAGE_EXPIRED", Group::Rejected),
    known(18, "REJECTED_DESTINATION_NOT_REGISTERED", Group::Rejected),
    known(19, "REJECTED_ROUTE_NOT_AVAILABLE", Group::Rejected),
    known(20, "REJECTED_FLOODING_FILTER", Group::Rejected),
    known(21, "REJECTED_SYSTEM_ERROR", Group::Rejected),
    known(23, "REJECTED_DUPLICATE_MESSAGE_ID", Group::Rejected),
    known(25, "REJECTED_MESSAGE_TOO_LONG", Group::Rejected),
    // The one REJECTED status whose name lacks the prefix.
    known(51, "MISSING_TO", Group::Rejected),
    known(52, "REJECTED_DESTINATION", Group::Rejected),
    known(87, "REJECTED_SIGNALS_BLOCKED", Group::Rejected),
];

pub fn by_id(id: i64) -> Option<KnownStatus> {
    KNOWN.into_iter().find(|s| s.id == id)
}

pub fn by_name(name: &str) -> Option<KnownStatus> {
    KNOWN
        .into_iter()
        .find(|s| s.name.eq_ignore_ascii_case(name.trim()))
}

/// What a status object says, as read from the wire (any part may be missing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusFields {
    pub id: Option<i64>,
    pub name: Option<String>,
    pub group_id: Option<i64>,
    pub group_name: Option<String>,
}

impl StatusFields {
    /// The known status these fields name: by id, else by name.
    pub fn known(&self) -> Option<KnownStatus> {
        self.id
            .and_then(by_id)
            .or_else(|| self.name.as_deref().and_then(by_name))
    }

    /// The status's group: the known status's, else the group id's, else the group name's.
    pub fn group(&self) -> Option<Group> {
        self.known().map(|k| k.group).or_else(|| {
            self.group_id
                .and_then(Group::from_id)
                .or_else(|| self.group_name.as_deref().and_then(Group::from_name))
        })
    }

    /// Infobip's word for the status, as recorded: its name, else its group's name, else the
    /// numbers it came with.
    pub fn word(&self) -> String {
        let given = [&self.name, &self.group_name]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .find(|s| !s.is_empty());
        if let Some(word) = given {
            return word.to_string();
        }
        match (self.id, self.group_id) {
            (Some(id), _) => format!("status {id}"),
            (None, Some(group)) => format!("group {group}"),
            (None, None) => "(no status)".to_string(),
        }
    }

    /// A delivery report's status, normalized per `providers/infobip.md` §4.
    pub fn normalize(&self) -> Status {
        match self.known() {
            Some(k) => known_status(k),
            None => self.group().map_or(Status::Unknown, Group::status),
        }
    }
}

fn known_status(k: KnownStatus) -> Status {
    match k.id {
        26 | 7 => Status::Queued,
        // Handed to the operator, not yet to the handset: a further report follows.
        3 | 2 => Status::Sent,
        _ => k.group.status(),
    }
}
