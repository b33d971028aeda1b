//! Authorization: deny by default. A caller may use a tool when it holds one of the groups or
//! scopes the tool's catalog entry names.

use crate::auth::Caller;
use crate::catalog::Tool;

/// Whether `caller` may see and call `tool`.
pub fn may_call(tool: &Tool, caller: &Caller) -> bool {
    tool.allow.groups.iter().any(|g| caller.groups.contains(g))
        || tool.allow.scopes.iter().any(|s| caller.scopes.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Allow, BackendKind};

    fn tool(groups: &[&str], scopes: &[&str]) -> Tool {
        serde_json::from_value(serde_json::json!({
            "name": "t", "description": "d", "input_schema": {"type": "object"},
            "backend": BackendKind::Local, "local": {"command": ["x"]},
            "allow": Allow {
                groups: groups.iter().map(|s| s.to_string()).collect(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
            }
        }))
        .expect("tool")
    }

    fn caller(groups: &[&str], scopes: &[&str]) -> Caller {
        Caller {
            subject: "s".into(),
            tenant: None,
            groups: groups.iter().map(|s| s.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn group_or_scope_grants_and_nothing_else_does() {
        let t = tool(&["ops"], &["tools:t"]);
        assert!(may_call(&t, &caller(&["ops"], &[])));
        assert!(may_call(&t, &caller(&[], &["tools:t"])));
        assert!(!may_call(&t, &caller(&["dev"], &["tools:other"])));
        assert!(!may_call(&t, &caller(&[], &[])));
        // a scope named like a group does not count as the group
        assert!(!may_call(&t, &caller(&[], &["ops"])));
    }
}
