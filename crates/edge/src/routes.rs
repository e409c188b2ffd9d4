//! Route tables: a dialect lists its routes once, in [`routes!`], and gets from that one
//! list both the axum routes it serves and a [`Route`] table of every (HTTP method,
//! path) with the scope its key needs, so tests can walk every route (a new row is
//! covered without editing them) and a route cannot be served without being listed.

use crate::SharedState;
use crate::auth::{Admin, Read, Role, Scope, Write};
use axum::Router;
use axum::routing::MethodRouter;

/// One HTTP method on one path of a dialect, relative to where its router is nested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The HTTP method, lower case (`get`, `post`, `patch`, `put`, `delete`, `head`).
    pub method: &'static str,
    /// The path as axum routes it, with `{name}` for path parameters.
    pub path: &'static str,
    /// The scope the key needs; `None` for a route that takes no key.
    pub scope: Option<Scope>,
}

/// The scope a route's key needs, as the type named in a [`routes!`] row.
pub trait RouteScope {
    const SCOPE: Option<Scope>;
}

/// A route that takes no key.
pub struct Public;

impl RouteScope for Public {
    const SCOPE: Option<Scope> = None;
}

macro_rules! role_scope {
    ($($t:ty),+) => {$(
        impl RouteScope for $t {
            const SCOPE: Option<Scope> = Some(<$t as Role>::SCOPE);
        }
    )+};
}
role_scope!(Read, Write, Admin);

/// Routes `rows` (path and its method router) into a new router.
pub fn build(rows: Vec<(&'static str, MethodRouter<SharedState>)>) -> Router<SharedState> {
    rows.into_iter()
        .fold(Router::new(), |router, (path, method)| {
            router.route(path, method)
        })
}

/// Defines, from one list of rows, `fn $rows()` (each path with its method router, for
/// [`build`]) and `$vis fn $table()` (every HTTP method of every row as a [`Route`]).
/// A row is `"path" => method(handler): Scope, ...;` where `Scope` is `Read`, `Write`,
/// `Admin` or `Public`.
#[macro_export]
macro_rules! routes {
    ($rows:ident, $vis:vis $table:ident;
     $($path:literal => $($verb:ident($f:expr): $role:ty),+;)+) => {
        /// Every path of the route table with its method router.
        fn $rows() -> Vec<(&'static str, axum::routing::MethodRouter<$crate::SharedState>)> {
            vec![$(($path, axum::routing::MethodRouter::new()$(.$verb($f))+)),+]
        }

        /// Every (HTTP method, path) of the rows, with the scope its key needs.
        $vis fn $table() -> Vec<$crate::routes::Route> {
            vec![$($($crate::routes::Route {
                method: stringify!($verb),
                path: $path,
                scope: <$role as $crate::routes::RouteScope>::SCOPE,
            }),+),+]
        }

        #[cfg(test)]
        #[test]
        fn the_route_table_is_what_the_router_serves() {
            $crate::routes::check($rows(), &$table());
        }
    };
}
pub use routes;

/// Asserts that `table` lists the paths of `rows` in order, each with one or more
/// methods and no method twice, and that `rows` make a router (axum refuses a path
/// routed twice): for the unit test every [`routes!`] defines.
#[doc(hidden)]
pub fn check(rows: Vec<(&'static str, MethodRouter<SharedState>)>, table: &[Route]) {
    let mut paths: Vec<&str> = table.iter().map(|r| r.path).collect();
    paths.dedup();
    let routed: Vec<&str> = rows.iter().map(|(p, _)| *p).collect();
    assert_eq!(paths, routed);
    let mut pairs: Vec<(&str, &str)> = table.iter().map(|r| (r.method, r.path)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    assert_eq!(pairs.len(), table.len(), "a method listed twice: {table:?}");
    let _ = build(rows);
}
