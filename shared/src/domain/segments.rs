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

/// The most septets (GSM-7) or UTF-16 units (UCS-2) one unsplit message holds, and one part
/// of a split message (the rest of each part is the concatenation header).
const GSM7_SINGLE: usize = 160;
const GSM7_PART: usize = 153;
const UCS2_SINGLE: usize = 70;
const UCS2_PART: usize = 67;

/// The encoding a body needs: GSM-7 when every character is in the basic or extension table.
pub fn encoding(body: &str) -> Encoding {
    if body.chars().all(|c| septets(c).is_some()) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// What one character costs in GSM-7: 1 septet, 2 for an extension character (the escape and
/// itself), none when GSM-7 cannot carry it.
fn septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// What one character costs in the body's encoding.
fn units(encoding: Encoding, c: char) -> usize {
    match encoding {
        Encoding::Gsm7 => septets(c).unwrap_or(2),
        Encoding::Ucs2 => c.len_utf16(),
    }
}

/// The body cut into the parts the networks carry, as senders cut it: an escape and its
/// extension character, or the two halves of a surrogate pair, always travel in one part (a
/// part that cannot take both ends a unit short). An empty body is one empty part.
pub fn split(body: &str) -> (Encoding, Vec<&str>) {
    let encoding = encoding(body);
    let (single, per_part) = match encoding {
        Encoding::Gsm7 => (GSM7_SINGLE, GSM7_PART),
        Encoding::Ucs2 => (UCS2_SINGLE, UCS2_PART),
    };
    let total: usize = body.chars().map(|c| units(encoding, c)).sum();
    if total <= single {
        return (encoding, vec![body]);
    }
    let mut parts = Vec::with_capacity(total.div_ceil(per_part));
    let (mut start, mut used) = (0, 0);
    for (at, c) in body.char_indices() {
        let cost = units(encoding, c);
        if used + cost > per_part {
            parts.push(&body[start..at]);
            (start, used) = (at, 0);
        }
        used += cost;
    }
    parts.push(&body[start..]);
    (encoding, parts)
}

/// The encoding a body needs and the number of parts it is billed as.
pub fn count(body: &str) -> (Encoding, u32) {
    let (encoding, parts) = split(body);
    (encoding, u32::try_from(parts.len()).unwrap_or(u32::MAX))
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

    /// The units a part takes in its encoding (septets, or UTF-16 units).
    fn cost(encoding: Encoding, part: &str) -> usize {
        part.chars().map(|c| units(encoding, c)).sum()
    }

    #[test]
    fn every_extension_character_costs_two_septets() {
        for c in "^{}\\[~]|€".chars() {
            assert_eq!(septets(c), Some(2), "{c}");
            assert_eq!(count(&c.to_string().repeat(80)), (Encoding::Gsm7, 1), "{c}");
            assert_eq!(count(&c.to_string().repeat(81)), (Encoding::Gsm7, 2), "{c}");
        }
    }

    #[test]
    fn an_escape_pair_is_never_split() {
        // 152 plain septets, then `€`: the escape would be the part's 153rd septet and `€` the
        // next part's first, so both move to the second part.
        let body = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let (encoding, parts) = split(&body);
        assert_eq!(encoding, Encoding::Gsm7);
        assert_eq!(
            parts,
            [&"a".repeat(152)[..], &format!("€{}", "b".repeat(10))[..]]
        );
        assert_eq!(cost(encoding, parts[0]), 152);
        // All extension characters: 76 pairs (152 septets) fit a part, the 77th does not.
        let braces = "{".repeat(200);
        let (encoding, parts) = split(&braces);
        assert_eq!(
            parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            [76, 76, 48]
        );
        assert!(parts.iter().all(|p| cost(encoding, p) <= 153));
        assert_eq!(parts.concat(), braces);
    }

    #[test]
    fn a_surrogate_pair_is_never_split() {
        // 66 units, then an emoji (two units): it goes whole into the second part.
        let body = format!("{}😀{}", "あ".repeat(66), "い".repeat(10));
        let (encoding, parts) = split(&body);
        assert_eq!(encoding, Encoding::Ucs2);
        assert_eq!(parts[0], "あ".repeat(66));
        assert!(parts[1].starts_with('😀'));
        assert_eq!(parts.concat(), body);
        // Emoji only: 33 fit a part of 67 units, never 33 and a half.
        let emoji = "😀".repeat(36);
        let (encoding, parts) = split(&emoji);
        assert_eq!(
            parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            [33, 3]
        );
        assert!(parts.iter().all(|p| cost(encoding, p) <= 67));
    }

    #[test]
    fn part_boundaries() {
        // (body, encoding, parts): 160/153 for GSM-7, 70/67 for UCS-2.
        let table: Vec<(String, Encoding, u32)> = vec![
            ("a".repeat(153 * 2), Encoding::Gsm7, 2),
            ("a".repeat(153 * 2 + 1), Encoding::Gsm7, 3),
            ("ア".repeat(70), Encoding::Ucs2, 1),
            ("ア".repeat(71), Encoding::Ucs2, 2),
            ("ア".repeat(134), Encoding::Ucs2, 2),
            ("ア".repeat(135), Encoding::Ucs2, 3),
            // One non-GSM character makes the whole body UCS-2.
            (format!("{}✓", "a".repeat(69)), Encoding::Ucs2, 1),
            (format!("{}✓", "a".repeat(70)), Encoding::Ucs2, 2),
            // 159 septets and an extension character: 161, two parts.
            (format!("{}^", "a".repeat(159)), Encoding::Gsm7, 2),
            (format!("{}^", "a".repeat(158)), Encoding::Gsm7, 1),
            // 69 units and an emoji: 71, two parts.
            (format!("{}😀", "ア".repeat(69)), Encoding::Ucs2, 2),
            (format!("{}😀", "ア".repeat(68)), Encoding::Ucs2, 1),
            (
                "アンケートにご協力ください: https://x.y/z".into(),
                Encoding::Ucs2,
                1,
            ),
            ("Ça coûte 5 € — merci".into(), Encoding::Ucs2, 1),
            (
                "Price: 5 € [20% off] {code} ~ ^ | \\".into(),
                Encoding::Gsm7,
                1,
            ),
        ];
        for (body, encoding, parts) in table {
            assert_eq!(count(&body), (encoding, parts), "{body}");
            let (_, cut) = split(&body);
            assert_eq!(cut.concat(), body);
        }
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
