//! ISO 4217 currencies and their minor units: the scale a wallet counting a currency
//! gets when its creator names none. Every dialect that makes wallets asks here, so a
//! currency has one scale whichever API made its wallet.

/// ISO 4217 codes with 2 decimal places (the common ones).
const CURRENCIES_2: &[&str] = &[
    "AED", "ARS", "AUD", "BGN", "BRL", "CAD", "CHF", "CNY", "COP", "CZK", "DKK", "EGP", "EUR",
    "GBP", "HKD", "HUF", "IDR", "ILS", "INR", "KES", "MAD", "MXN", "MYR", "NGN", "NOK", "NZD",
    "PEN", "PHP", "PLN", "QAR", "RON", "RSD", "SAR", "SEK", "SGD", "THB", "TRY", "TWD", "UAH",
    "USD", "ZAR",
];
/// ISO 4217 codes with 3 decimal places.
const CURRENCIES_3: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
/// ISO 4217 codes with no decimal places.
const CURRENCIES_0: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

/// Whether `code` is an ISO 4217 currency code prepaid knows.
pub fn is_currency(code: &str) -> bool {
    CURRENCIES_2.contains(&code) || CURRENCIES_3.contains(&code) || CURRENCIES_0.contains(&code)
}

/// The scale of a new wallet counting `code`, when its creator names none.
pub fn default_scale(code: &str) -> u8 {
    if CURRENCIES_2.contains(&code) {
        2
    } else if CURRENCIES_3.contains(&code) {
        3
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_have_their_minor_units() {
        assert_eq!(default_scale("USD"), 2);
        assert_eq!(default_scale("KWD"), 3);
        assert_eq!(default_scale("JPY"), 0);
        assert_eq!(default_scale("minutes"), 0);
        assert!(is_currency("JPY") && !is_currency("usd"));
    }
}
