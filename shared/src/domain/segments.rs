//! How many SMS segments a body takes, and in which encoding (GSM 03.38 7-bit or UCS-2).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }
}

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Characters of the extension table: each costs an escape plus itself.
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{000C}";

/// The encoding a body needs and the number of segments it is billed as.
pub fn count(body: &str) -> (Encoding, u32) {
    let mut septets = 0usize;
    for c in body.chars() {
        if GSM7_BASIC.contains(c) {
            septets += 1;
        } else if GSM7_EXTENSION.contains(c) {
            septets += 2;
        } else {
            let units = body.encode_utf16().count();
            return (Encoding::Ucs2, segments(units, 70, 67));
        }
    }
    (Encoding::Gsm7, segments(septets, 160, 153))
}

fn segments(units: usize, single: usize, per_part: usize) -> u32 {
    let n = if units <= single {
        1
    } else {
        units.div_ceil(per_part)
    };
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_limits() {
        assert_eq!(count(""), (Encoding::Gsm7, 1));
        assert_eq!(count(&"a".repeat(160)), (Encoding::Gsm7, 1));
        assert_eq!(count(&"a".repeat(161)), (Encoding::Gsm7, 2));
        assert_eq!(count(&"a".repeat(306)), (Encoding::Gsm7, 2));
        assert_eq!(count(&"a".repeat(307)), (Encoding::Gsm7, 3));
    }

    #[test]
    fn extension_characters_cost_two() {
        assert_eq!(count(&"€".repeat(80)), (Encoding::Gsm7, 1));
        assert_eq!(count(&"€".repeat(81)), (Encoding::Gsm7, 2));
    }

    #[test]
    fn ucs2_limits() {
        assert_eq!(count("アンケートにご協力ください"), (Encoding::Ucs2, 1));
        assert_eq!(count(&"é✓".repeat(35)), (Encoding::Ucs2, 1));
        assert_eq!(count(&"✓".repeat(71)), (Encoding::Ucs2, 2));
        // An emoji is a surrogate pair: two UCS-2 units.
        assert_eq!(count(&"😀".repeat(35)), (Encoding::Ucs2, 1));
        assert_eq!(count(&"😀".repeat(36)), (Encoding::Ucs2, 2));
    }
}
