//! Phone numbers and the keywords that opt a recipient out of (or back into) messages.
//!
//! A recipient is checked against the numbering plan with libphonenumber's metadata (the
//! `phonenumber` crate): its country calling code must be in use and its national number of a
//! length that country's numbers have. build.rs compiles the metadata into a table, so no
//! process decodes it at run time (that took about 200 ms of CPU on the first check).

/// A number in E.164 with its `+`: 8 to 15 digits, no leading zero.
pub fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Why a recipient is not a number that can be texted, in words for the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("to must be an E.164 number: + and 8 to 15 digits")]
    NotE164,
    #[error("to has no country: +{0} is not a country calling code in use")]
    UnknownCountryCode(String),
    #[error("to has {given} digits after +{code}, but numbers of +{code} have {lengths}")]
    Length {
        code: u16,
        given: usize,
        lengths: String,
    },
}

/// Checks a recipient against the numbering plan: E.164 with its `+`, a country calling code in
/// use, and a national number of a length that country's numbers have. Ranges inside a country
/// (which prefixes are mobile) are not judged: they change faster than any copy of the data, and
/// the provider answers for them.
pub fn check_recipient(number: &str) -> Result<(), NumberError> {
    if !is_e164(number) {
        return Err(NumberError::NotE164);
    }
    let digits = &number[1..];
    // Country calling codes are prefix-free (ITU-T E.164), so at most one of the first one, two
    // or three digits is a code in use.
    let (code, lengths) = (1..=3)
        .filter_map(|len| digits.get(..len)?.parse::<u16>().ok())
        .find_map(|code| {
            let at = NUMBERING_PLAN
                .binary_search_by_key(&code, |(c, _)| *c)
                .ok()?;
            Some(NUMBERING_PLAN[at])
        })
        .ok_or_else(|| NumberError::UnknownCountryCode(unknown_code(number)))?;
    let given = digits.len() - code.to_string().len();
    if lengths.iter().any(|&n| usize::from(n) == given) {
        return Ok(());
    }
    let lengths = lengths
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(" or ");
    Err(NumberError::Length {
        code,
        given,
        lengths,
    })
}

// `NUMBERING_PLAN`: libphonenumber's codes and lengths, compiled by build.rs.
include!(concat!(env!("OUT_DIR"), "/numbering_plan.rs"));

/// The digits a parser could not read a country from: the shortest prefix is what is named.
fn unknown_code(number: &str) -> String {
    number.trim_start_matches('+').chars().take(3).collect()
}

/// How a provider writes a recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberFormat {
    /// E.164 with its `+` (Twilio, LINK Mobility, Sinch, MessageMedia).
    Plus,
    /// The E.164 digits alone, country code first (Infobip, Vonage, MessageBird).
    Digits,
}

/// A checked E.164 recipient written the provider's way.
pub fn format_recipient(e164: &str, format: NumberFormat) -> &str {
    match format {
        NumberFormat::Plus => e164,
        NumberFormat::Digits => e164.strip_prefix('+').unwrap_or(e164),
    }
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
    fn recipients_are_checked_against_the_numbering_plan() {
        let valid = [
            "+14155550100",   // US
            "+12025550123",   // US
            "+16135550123",   // CA, same +1
            "+447700900123",  // GB mobile
            "+33612345678",   // FR
            "+4915123456789", // DE mobile, 11 digits
            "+493012345",     // DE fixed line, short
            "+819012345678",  // JP mobile
            "+61491570156",   // AU
            "+393123456789",  // IT mobile
            "+390612345678",  // IT fixed line, national number with its 0
            "+35312345678",   // IE
            "+4746123456",    // NO
            "+5511912345678", // BR
            "+918123456789",  // IN
            "+8613812345678", // CN
            "+27821234567",   // ZA
        ];
        for number in valid {
            assert_eq!(check_recipient(number), Ok(()), "{number}");
        }
        let invalid = [
            ("14155550100", NumberError::NotE164),
            ("+1 415 555 0100", NumberError::NotE164),
            ("+0123456789", NumberError::NotE164),
            ("+1415555010", length_error(1, 9, "10")),
            ("+141555501000", length_error(1, 11, "10")),
            ("+4477009001", length_error(44, 8, "7 or 9 or 10")),
            ("+3361234567", length_error(33, 8, "9")),
            ("+336123456789", length_error(33, 10, "9")),
        ];
        for (number, expected) in invalid {
            let got = check_recipient(number);
            // The exact lengths are libphonenumber's; what matters is the kind of refusal.
            match (&got, &expected) {
                (
                    Err(NumberError::Length { code, given, .. }),
                    NumberError::Length {
                        code: c, given: g, ..
                    },
                ) => {
                    assert_eq!((code, given), (c, g), "{number}: {got:?}");
                }
                _ => assert_eq!(got, Err(expected.clone()), "{number}"),
            }
        }
        for unused in ["+8001234567", "+99912345678", "+2101234567"] {
            assert!(
                matches!(
                    check_recipient(unused),
                    Err(NumberError::UnknownCountryCode(_)) | Err(NumberError::Length { .. })
                ),
                "{unused}: {:?}",
                check_recipient(unused)
            );
        }
        let message = check_recipient("+1415555010").unwrap_err().to_string();
        assert_eq!(
            message,
            "to has 9 digits after +1, but numbers of +1 have 7 or 10"
        );
    }

    fn length_error(code: u16, given: usize, lengths: &str) -> NumberError {
        NumberError::Length {
            code,
            given,
            lengths: lengths.into(),
        }
    }

    #[test]
    fn recipients_are_written_the_providers_way() {
        assert_eq!(
            format_recipient("+14155550100", NumberFormat::Plus),
            "+14155550100"
        );
        assert_eq!(
            format_recipient("+14155550100", NumberFormat::Digits),
            "14155550100"
        );
        assert_eq!(
            format_recipient("+819012345678", NumberFormat::Digits),
            "819012345678"
        );
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
