//! The rules a catalog (with the deployment's bindings, when there are any) must pass before a
//! gateway starts: one function, [`check`], that `switchboard check` and `switchboard serve` both
//! run, so that `check` refuses what `serve` would refuse. It reports every problem at once.
//!
//! A catalog that does not load ([`crate::catalog::load`]) is refused by the loader alone, with
//! its first error; these rules start from a loaded catalog:
//!
//! - every tool with permissions has a session policy that fits STS's limit whatever the
//!   deadline ([`crate::credentials::check_session_policy_fits`]);
//! - the catalog's auth section names keys the gateway may fetch
//!   ([`crate::auth::setup::check_settings`]), unless `serve --dev` replaces it;
//! - the bindings, when given, match the catalog ([`crate::bindings::check`]), the approvals'
//!   table included when a tool asks for approval (a gateway with bindings is a deployed one, run
//!   as replicas: approvals in one process's memory would be neither shared nor kept);
//! - a tool that asks for approval needs a sign-in for the approval page: `serve --dev`'s own,
//!   or through the authorization server (`gateway.auth.approval_sign_in`). A catalog with an
//!   auth section is one to be served without `--dev`, so `check` wants the latter there.

use std::fmt;

use crate::auth::SettingsError;
use crate::bindings::{self, Bindings};
use crate::catalog::Catalog;
use crate::credentials::CredentialError;

/// Whose authentication settings the gateway would use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFrom {
    /// The catalog's `gateway.auth` (`check`, and `serve` without `--dev`).
    Catalog,
    /// The dev key's (`serve --dev`): the catalog's auth section is not used.
    DevKey,
}

/// One rule a catalog breaks.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// A tool could never be given credentials.
    #[error("{0}")]
    SessionPolicy(CredentialError),
    #[error("gateway.auth: {0}")]
    Auth(SettingsError),
    /// The deployment differs from the catalog.
    #[error("{0}")]
    Binding(bindings::Problem),
    #[error(
        "tool {0:?}: approval needs a sign-in for the approval page: set gateway.auth.approval_sign_in (the page's own client at the authorization server), or serve with --dev"
    )]
    ApprovalWithoutSignIn(String),
}

impl Problem {
    fn is_binding(&self) -> bool {
        matches!(self, Self::Binding(_))
    }
}

/// Every problem [`check`] found, in the catalog's order: the catalog's own first, then the
/// bindings'.
#[derive(Debug)]
pub struct Refusal {
    pub problems: Vec<Problem>,
}

impl std::error::Error for Refusal {}

impl Refusal {
    /// The problems of the catalog itself (not of its bindings).
    pub fn catalog_problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.is_binding())
    }

    /// Where the bindings differ from the catalog.
    pub fn binding_problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_binding())
    }

    /// The refusal as lines: one block for the catalog's problems and one for the bindings',
    /// each problem indented under its block's heading. `bindings_origin` names where the
    /// bindings came from, when known.
    pub fn report(&self, bindings_origin: Option<&str>) -> String {
        let mut blocks = Vec::new();
        let block = |heading: String, problems: Vec<&Problem>| {
            let mut text = format!("{heading} ({} problem(s)):", problems.len());
            for problem in problems {
                text.push_str(&format!("\n  {problem}"));
            }
            text
        };
        let own: Vec<_> = self.catalog_problems().collect();
        if !own.is_empty() {
            blocks.push(block("the catalog would be refused at start".into(), own));
        }
        let deployed: Vec<_> = self.binding_problems().collect();
        if !deployed.is_empty() {
            let heading = match bindings_origin {
                Some(origin) => format!("the bindings from {origin} do not match the catalog"),
                None => "the bindings do not match the catalog".into(),
            };
            blocks.push(block(heading, deployed));
        }
        blocks.join("\n")
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report(None))
    }
}

/// Checks a loaded catalog, and the deployment's bindings against it when there are any, by the
/// rules in the module's documentation; every problem found is in the refusal.
pub fn check(
    catalog: &Catalog,
    bindings: Option<&Bindings>,
    auth: AuthFrom,
) -> Result<(), Refusal> {
    let mut problems: Vec<Problem> = catalog
        .tools
        .iter()
        .filter_map(|tool| crate::credentials::check_session_policy_fits(tool).err())
        .map(Problem::SessionPolicy)
        .collect();
    if auth == AuthFrom::Catalog
        && let Some(settings) = &catalog.gateway.auth
        && let Err(e) = crate::auth::setup::check_settings(settings)
    {
        problems.push(Problem::Auth(e));
    }
    if auth == AuthFrom::Catalog
        && catalog
            .gateway
            .auth
            .as_ref()
            .is_some_and(|a| a.approval_sign_in.is_none())
    {
        problems.extend(
            catalog
                .tools
                .iter()
                .filter(|t| t.approval.is_some())
                .map(|t| Problem::ApprovalWithoutSignIn(t.name.clone())),
        );
    }
    if let Some(bindings) = bindings
        && let Err(mismatch) = bindings::check(catalog, bindings)
    {
        problems.extend(mismatch.problems.into_iter().map(Problem::Binding));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Refusal { problems })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const WITH_APPROVAL: &str = r#"
version: 1
tools:
  - name: apply
    description: Applies.
    input_schema: {type: object}
    backend: local
    local: {command: [/bin/cat]}
    allow: {groups: [dev]}
    approval: {groups: [approvers]}
"#;

    #[test]
    fn a_tool_that_needs_approval_is_refused_where_the_catalogs_auth_has_no_page_sign_in() {
        let dev_only = crate::catalog::parse(Path::new("c.yaml"), WITH_APPROVAL).expect("catalog");
        check(&dev_only, None, AuthFrom::Catalog).expect("no auth section: served by --dev only");
        check(&dev_only, None, AuthFrom::DevKey).expect("--dev serves it");
        let production = WITH_APPROVAL.replace(
            "version: 1\n",
            "version: 1\ngateway:\n  auth: {issuer: https://i, jwks: {url: https://i/jwks}}\n",
        );
        let production = crate::catalog::parse(Path::new("c.yaml"), &production).expect("catalog");
        let refusal = check(&production, None, AuthFrom::Catalog).expect_err("refused");
        let report = refusal.report(None);
        assert!(
            report.contains("tool \"apply\": approval needs"),
            "{report}"
        );
        check(&production, None, AuthFrom::DevKey).expect("--dev serves it");
        let signed_in = WITH_APPROVAL.replace(
            "version: 1\n",
            "version: 1\ngateway:\n  auth: {issuer: https://i, jwks: {url: https://i/jwks}, approval_sign_in: {client_id: page}}\n",
        );
        let signed_in = crate::catalog::parse(Path::new("c.yaml"), &signed_in).expect("catalog");
        check(&signed_in, None, AuthFrom::Catalog).expect("the page has a sign-in");
    }
}
