//! What every store backend must pass, as a dev-dependency of the backends: the
//! conformance suite ([`conformance`], one test per case through
//! [`conformance_tests!`]) and the model-based tests ([`model`] and [`grants_model`],
//! random operation sequences against naive models through [`model_tests!`]).
//!
//! It lives apart from `prepaid-store` so that the server and the store library never
//! build it: only the backends' tests do.

pub mod conformance;
pub mod grants_model;
pub mod model;

#[cfg(test)]
mod tests {
    /// The public cases of the suite, by the signature every case has.
    fn cases_written() -> Vec<String> {
        let sources = [
            include_str!("conformance.rs"),
            include_str!("conformance/auto_topup.rs"),
            include_str!("conformance/ceiling.rs"),
            include_str!("conformance/credit_holds.rs"),
            include_str!("conformance/grants.rs"),
            include_str!("conformance/ids.rs"),
            include_str!("conformance/linked.rs"),
            include_str!("conformance/metadata.rs"),
            include_str!("conformance/records.rs"),
            include_str!("conformance/webhooks.rs"),
        ];
        let mut names: Vec<String> = sources
            .iter()
            .flat_map(|s| s.lines())
            .filter_map(|l| l.strip_prefix("pub async fn "))
            .filter_map(|l| l.strip_suffix("(env: &mut Env) {"))
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    /// The cases `conformance_tests!` runs: the rows of its list.
    fn cases_listed() -> Vec<String> {
        let source = include_str!("conformance.rs");
        let start = source.find("@list) => {").expect("the list");
        let list = &source[start..];
        let list = &list[list.find("($backend)").expect("the rows") + "($backend)".len()..];
        let list = &list[..list.find(");").expect("the end of the rows")];
        let mut names: Vec<String> = list.split_whitespace().map(str::to_owned).collect();
        names.sort();
        names
    }

    /// A case written but not listed would never run on any backend.
    #[test]
    fn every_case_written_is_run() {
        let written = cases_written();
        assert!(written.len() > 40, "{written:?}");
        assert_eq!(written, cases_listed());
    }
}
