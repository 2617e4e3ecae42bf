//! The seven providers, their route slugs and aliases.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Twilio,
    Linkmobility,
    Sinch,
    Infobip,
    Messagemedia,
    Vonage,
    Messagebird,
}

impl Provider {
    pub const ALL: [Provider; 7] = [
        Provider::Twilio,
        Provider::Linkmobility,
        Provider::Sinch,
        Provider::Infobip,
        Provider::Messagemedia,
        Provider::Vonage,
        Provider::Messagebird,
    ];

    /// The provider's name in connections, events and `BYOSMS_<NAME>_API_URL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::Linkmobility => "linkmobility",
            Provider::Sinch => "sinch",
            Provider::Infobip => "infobip",
            Provider::Messagemedia => "messagemedia",
            Provider::Vonage => "vonage",
            Provider::Messagebird => "messagebird",
        }
    }

    /// The `{provider}` segment of the webhook routes that admins are told to configure.
    pub fn route_slug(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio-sms",
            Provider::Linkmobility => "linkmobility-sms",
            Provider::Sinch => "sinch",
            Provider::Infobip => "infobip-sms",
            Provider::Messagemedia => "messagemedia-sms",
            Provider::Vonage => "vonage-sms",
            Provider::Messagebird => "messagebird-sms",
        }
    }

    /// Accepts a route slug or the bare provider name.
    pub fn from_route_slug(slug: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|p| p.route_slug() == slug || p.as_str() == slug)
    }

    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Which connections a request on this provider's route may belong to. The seed's MessageBird
    /// guide tells admins to use the `twilio-sms` path, so that route also serves MessageBird.
    pub fn route_candidates(self) -> &'static [Provider] {
        match self {
            Provider::Twilio => &[Provider::Twilio, Provider::Messagebird],
            Provider::Linkmobility => &[Provider::Linkmobility],
            Provider::Sinch => &[Provider::Sinch],
            Provider::Infobip => &[Provider::Infobip],
            Provider::Messagemedia => &[Provider::Messagemedia],
            Provider::Vonage => &[Provider::Vonage],
            Provider::Messagebird => &[Provider::Messagebird],
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_aliases_resolve() {
        assert_eq!(
            Provider::from_route_slug("twilio-sms"),
            Some(Provider::Twilio)
        );
        assert_eq!(Provider::from_route_slug("twilio"), Some(Provider::Twilio));
        assert_eq!(Provider::from_route_slug("sinch"), Some(Provider::Sinch));
        assert_eq!(
            Provider::from_route_slug("infobip-sms"),
            Some(Provider::Infobip)
        );
        assert_eq!(Provider::from_route_slug("vonage"), Some(Provider::Vonage));
        assert_eq!(Provider::from_route_slug("sinch-sms"), None);
        assert_eq!(Provider::from_route_slug("Twilio-SMS"), None);
        assert_eq!(Provider::from_route_slug(""), None);
    }

    #[test]
    fn twilio_route_also_serves_messagebird() {
        assert!(
            Provider::Twilio
                .route_candidates()
                .contains(&Provider::Messagebird)
        );
        assert_eq!(Provider::Vonage.route_candidates(), &[Provider::Vonage]);
    }
}
