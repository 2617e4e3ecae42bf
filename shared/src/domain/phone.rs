//! Phone numbers and the keywords that opt a recipient out of (or back into) messages.

/// A number in E.164 with its `+`: 8 to 15 digits, no leading zero.
pub fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// The form numbers are stored and matched in: E.164 with `+` when the provider's digits are an
/// international number, otherwise (short codes, alphanumeric senders) as given.
pub fn normalize(number: &str) -> String {
    let trimmed = number.trim();
    if is_e164(trimmed) {
        return trimmed.to_string();
    }
    let digits = trimmed.strip_prefix("00").unwrap_or(trimmed);
    let candidate = format!("+{digits}");
    if digits.len() > 6 && is_e164(&candidate) {
        candidate
    } else {
        trimmed.to_string()
    }
}

/// What an inbound text asks for, by the keywords carriers and providers honour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeywordIntent {
    OptOut,
    OptIn,
    None,
}

pub fn keyword_intent(text: &str) -> KeywordIntent {
    let word = text
        .trim()
        .trim_end_matches(['.', '!'])
        .to_ascii_uppercase();
    match word.as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "OPTOUT" | "OPT-OUT"
        | "REVOKE" | "STOPP" | "ARRET" | "ARRÊT" => KeywordIntent::OptOut,
        "START" | "UNSTOP" | "YES" | "SUBSCRIBE" => KeywordIntent::OptIn,
        _ => KeywordIntent::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164() {
        assert!(is_e164("+14155550100"));
        assert!(is_e164("+819012345678"));
        assert!(!is_e164("14155550100"));
        assert!(!is_e164("+1415555010a"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+1234567"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("+"));
    }

    #[test]
    fn normalizes_provider_forms() {
        assert_eq!(normalize("14155550100"), "+14155550100");
        assert_eq!(normalize("0014155550100"), "+14155550100");
        assert_eq!(normalize("+14155550100"), "+14155550100");
        assert_eq!(normalize("12345"), "12345");
        assert_eq!(normalize("Qualtrics"), "Qualtrics");
    }

    #[test]
    fn keywords() {
        assert_eq!(keyword_intent(" stop "), KeywordIntent::OptOut);
        assert_eq!(keyword_intent("Unsubscribe."), KeywordIntent::OptOut);
        assert_eq!(keyword_intent("start"), KeywordIntent::OptIn);
        assert_eq!(keyword_intent("5"), KeywordIntent::None);
        assert_eq!(keyword_intent("please stop texting"), KeywordIntent::None);
    }
}
