//! Kubernetes resource quantities: `250m`, `0.5`, `2`, `128Mi`, `1G`, `1e3`.
//!
//! Parsed exactly in integer arithmetic (thousandths of a unit) and rounded up the way
//! Kubernetes rounds: `0.1m` of CPU is `1m`, `0.5` byte is `1` byte.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Kubernetes' largest quantity: 2^63 - 1 units.
const MAX_UNITS: u128 = i64::MAX as u128;

/// A non-negative quantity, kept as written and as thousandths of a unit.
#[derive(Debug, Clone)]
pub struct Quantity {
    text: String,
    milli: u128,
}

/// Why a text is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("invalid quantity {0:?}")]
    Invalid(String),
    #[error("quantity {0:?} must not be negative")]
    Negative(String),
    #[error("quantity {0:?} is too large")]
    TooLarge(String),
}

impl Quantity {
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let invalid = || QuantityError::Invalid(text.to_owned());
        let too_large = || QuantityError::TooLarge(text.to_owned());
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(invalid());
        }
        // Exponent of ten and power of 1024 that the suffix contributes.
        let (mut pow10, pow1024): (i32, u32) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 1),
            "Mi" => (0, 2),
            "Gi" => (0, 3),
            "Ti" => (0, 4),
            "Pi" => (0, 5),
            "Ei" => (0, 6),
            _ => {
                let exponent = suffix.strip_prefix(['e', 'E']).ok_or_else(invalid)?;
                let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
                if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid());
                }
                (exponent.parse::<i32>().map_err(|_| invalid())?, 0)
            }
        };
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 30 {
            return Err(too_large());
        }
        let mantissa: u128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| invalid())? };
        if negative && mantissa != 0 {
            return Err(QuantityError::Negative(text.to_owned()));
        }
        // value in thousandths = mantissa * 1024^pow1024 * 10^(pow10 - fraction_len + 3)
        pow10 += 3 - i32::try_from(fraction.len()).map_err(|_| too_large())?;
        let mut milli = mantissa.checked_mul(1024u128.pow(pow1024)).ok_or_else(too_large)?;
        if pow10 >= 0 {
            let scale = 10u128.checked_pow(u32::try_from(pow10).map_err(|_| too_large())?);
            milli = scale.and_then(|s| milli.checked_mul(s)).ok_or_else(too_large)?;
        } else {
            let scale = 10u128.checked_pow(pow10.unsigned_abs());
            milli = match scale {
                Some(s) => milli.div_ceil(s),
                None => u128::from(milli > 0),
            };
        }
        if milli > MAX_UNITS * 1000 {
            return Err(too_large());
        }
        Ok(Quantity { text: text.to_owned(), milli })
    }

    /// The quantity as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Thousandths of a unit, rounded up: millicores for CPU.
    pub fn millis(&self) -> u64 {
        u64::try_from(self.milli).unwrap_or(u64::MAX)
    }

    /// Whole units, rounded up: bytes for memory.
    pub fn value(&self) -> u64 {
        u64::try_from(self.milli.div_ceil(1000)).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.milli == other.milli
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.milli.cmp(&other.milli)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Quantity::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_kubernetes_does() {
        let cases: &[(&str, u64, u64)] = &[
            // text, millis, value (rounded up)
            ("250m", 250, 1),
            ("0.5", 500, 1),
            ("2", 2000, 2),
            ("1.5", 1500, 2),
            (".5", 500, 1),
            ("5.", 5000, 5),
            ("100u", 1, 1), // 0.0001 rounds up to 1m
            ("1n", 1, 1),
            ("128Mi", 128 * 1024 * 1024 * 1000, 128 * 1024 * 1024),
            ("1G", 1_000_000_000_000, 1_000_000_000),
            ("512M", 512_000_000_000, 512_000_000),
            ("1Ki", 1_024_000, 1024),
            ("0.5Gi", 536_870_912_000, 536_870_912),
            ("1e3", 1_000_000, 1000),
            ("1E-3", 1, 1),
            ("12e+2", 1_200_000, 1200),
            ("+1k", 1_000_000, 1000),
            ("0", 0, 0),
            ("-0", 0, 0),
        ];
        for (text, millis, value) in cases {
            let q = Quantity::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((q.millis(), q.value()), (*millis, *value), "{text}");
            assert_eq!(q.as_str(), *text);
        }
    }

    #[test]
    fn refuses_what_kubernetes_refuses() {
        for text in
            ["12XB", "", "m", "1.2.3", "1 Gi", "Mi", "1e", "1e1000", "1mi", "0x10", "1Kb", "--1", "1e+"]
        {
            assert_eq!(Quantity::parse(text), Err(QuantityError::Invalid(text.to_owned())), "{text}");
        }
        assert_eq!(Quantity::parse("-1"), Err(QuantityError::Negative("-1".into())));
        assert_eq!(Quantity::parse("9Ei"), Err(QuantityError::TooLarge("9Ei".into())));
        assert!(matches!(Quantity::parse("1e900"), Err(QuantityError::TooLarge(_))));
    }

    #[test]
    fn compares_by_amount_not_by_text() {
        let a = Quantity::parse("1Gi").expect("valid");
        let b = Quantity::parse("1024Mi").expect("valid");
        let c = Quantity::parse("1G").expect("valid");
        assert_eq!(a, b);
        assert!(c < a);
        assert!(Quantity::parse("500m").expect("valid") == Quantity::parse("0.5").expect("valid"));
    }

    #[test]
    fn serializes_as_the_text() {
        let q = Quantity::parse("128Mi").expect("valid");
        let json = serde_json::to_string(&q).expect("serializes");
        assert_eq!(json, "\"128Mi\"");
        let back: Quantity = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, q);
        assert!(serde_json::from_str::<Quantity>("\"12XB\"").is_err());
    }
}
